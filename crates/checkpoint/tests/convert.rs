//! Whole-checkpoint conversion against the reference implementation's own conversions: HF →
//! Fast-LLM matches `fast_llm/` bit for bit with an equivalent `metadata.yaml`, Fast-LLM → HF
//! matches `hf_roundtrip/`, and HF → Fast-LLM → HF is the identity.

use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::{Conversion, Options, Side, convert};
use fastllm_checkpoint::synthetic::{fast_llm_to_hf, synthetic_to_fast_llm};
use fastllm_checkpoint::{Checkpoint, open_fast_llm, open_hf};
use fastllm_core::find;
use rstest::rstest;

use fastllm_llama as _;

fn fixture(format: &str, part: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/weights")
        .join(format)
        .join(part)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// Same tensor names, dtypes, shapes and bytes.
fn assert_same_tensors(got: &Checkpoint, want: &Checkpoint) {
    assert_eq!(got.files.difference(&want.files), None);
}

#[rstest]
fn hf_to_fast_llm_matches_the_reference(#[values("llama", "mistral", "qwen2", "mixtral")] format: &str) {
    let output = scratch(&format!("{format}-fast-llm"));
    let handler = find(format).unwrap();
    let summary = convert(
        &Conversion {
            input: &fixture(format, "hf_input"),
            from: Side::Hf(handler),
            output: &output,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    assert_eq!(summary.files, ["model_0.safetensors"]);
    let (ours, reference) = (
        open_fast_llm(&output).unwrap(),
        open_fast_llm(&fixture(format, "fast_llm")).unwrap(),
    );
    assert_same_tensors(&ours, &reference);
    // metadata.yaml: the same base model once defaults are filled in.
    let full = |c: &Checkpoint| {
        fastllm_checkpoint::convert::fast_llm_base_model(c)
            .unwrap()
            .to_form(fastllm_core::config::Form::Full)
    };
    assert_eq!(full(&ours), full(&reference));
}

#[rstest]
fn fast_llm_to_hf_matches_the_reference(#[values("llama", "mistral", "qwen2", "mixtral")] format: &str) {
    let output = scratch(&format!("{format}-hf"));
    let handler = find(format).unwrap();
    convert(
        &Conversion {
            input: &fixture(format, "fast_llm"),
            from: Side::FastLlm,
            output: &output,
            to: Side::Hf(handler),
        },
        &Options::default(),
    )
    .unwrap();
    let converted = open_hf(&output).unwrap();
    assert_same_tensors(&converted, &open_hf(&fixture(format, "hf_roundtrip")).unwrap());
    assert_eq!(
        converted.config["model_type"],
        fastllm_core::config::Value::Str(format.into())
    );
}

#[rstest]
fn hf_round_trip_is_the_identity(#[values("llama", "qwen2", "mixtral")] format: &str) {
    let handler = find(format).unwrap();
    let middle = scratch(&format!("{format}-middle"));
    let back = scratch(&format!("{format}-back"));
    convert(
        &Conversion {
            input: &fixture(format, "hf_input"),
            from: Side::Hf(handler),
            output: &middle,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    let options = Options {
        max_shard_bytes: 40_000,
        ..Options::default()
    };
    let summary = fast_llm_to_hf(handler, &middle, &back, &options).unwrap();
    assert!(summary.files.len() > 1, "small shards force an index");
    assert_same_tensors(
        &open_hf(&back).unwrap(),
        &open_hf(&fixture(format, "hf_input")).unwrap(),
    );
}

#[rstest]
fn synthetic_checkpoints_round_trip(
    #[values("llama", "qwen2", "dream", "diffusion_llama", "mixtral", "mistral")] format: &str,
) {
    // Every sample config of the format: synthetic HF → Fast-LLM → HF is the identity.
    let handler = find(format).unwrap();
    for (i, sample) in handler.converter().samples.iter().enumerate() {
        let config = fastllm_core::config::load_base_model(handler.model, sample).unwrap();
        let (input, middle, back) = (
            scratch(&format!("{format}-{i}-synthetic")),
            scratch(&format!("{format}-{i}-mid")),
            scratch(&format!("{format}-{i}-back")),
        );
        synthetic_to_fast_llm(handler, &config, &input, &middle).unwrap();
        fast_llm_to_hf(handler, &middle, &back, &Options::default()).unwrap();
        assert_same_tensors(&open_hf(&back).unwrap(), &open_hf(&input).unwrap());
    }
}

#[rstest]
fn the_layout_is_fast_llm_s(#[values("llama", "mistral", "qwen2", "mixtral")] format: &str) {
    // Fast-LLM's own checkpoint of the fixture holds exactly the parameters the layout lists.
    let checkpoint = open_fast_llm(&fixture(format, "fast_llm")).unwrap();
    let config = find(format)
        .unwrap()
        .import(&open_hf(&fixture(format, "hf_input")).unwrap().config)
        .unwrap();
    let mut layout = fastllm_layout::parameters(&config);
    layout.sort();
    let stored: Vec<(String, Vec<usize>)> = checkpoint
        .files
        .names()
        .map(|n| {
            (
                n.trim_end_matches("/weights").to_string(),
                checkpoint.files.get(n).unwrap().shape.to_vec(),
            )
        })
        .collect();
    assert_eq!(layout, stored);
}

#[test]
fn extra_files_come_along_when_the_input_has_them() {
    // diffusion_llama checkpoints carry modeling code; an HF → HF conversion keeps it, a
    // conversion from Fast-LLM (which never has it) says what is missing.
    let handler = find("diffusion_llama").unwrap();
    let sample = &handler.converter().samples[0];
    let config = fastllm_core::config::load_base_model(handler.model, sample).unwrap();
    let (input, copied, middle, back) = (
        scratch("extra-input"),
        scratch("extra-copied"),
        scratch("extra-mid"),
        scratch("extra-back"),
    );
    fastllm_checkpoint::synthetic::write_synthetic_hf(
        handler,
        &config,
        &input,
        &fastllm_checkpoint::synthetic::SyntheticStorage {
            dtype: "BF16",
            max_shard_bytes: 1 << 30,
        },
    )
    .unwrap();
    std::fs::write(input.join("modeling_diffusion_llama.py"), "# model\n").unwrap();
    let options = Options::default();
    let summary = convert(
        &Conversion {
            input: &input,
            from: Side::Hf(handler),
            output: &copied,
            to: Side::Hf(handler),
        },
        &options,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(copied.join("modeling_diffusion_llama.py")).unwrap(),
        "# model\n"
    );
    assert_eq!(
        summary.missing_extra_files,
        ["configuration_diffusion_llama.py", "generation_utils.py"]
    );
    let dry_run = Options {
        dry_run: true,
        ..Options::default()
    };
    let planned = convert(
        &Conversion {
            input: &input,
            from: Side::Hf(handler),
            output: &scratch("extra-dry"),
            to: Side::Hf(handler),
        },
        &dry_run,
    )
    .unwrap();
    assert_eq!(planned.missing_extra_files, summary.missing_extra_files);
    let config_only = scratch("extra-config-only");
    let only = Options {
        config_only: true,
        ..Options::default()
    };
    convert(
        &Conversion {
            input: &input,
            from: Side::Hf(handler),
            output: &config_only,
            to: Side::Hf(handler),
        },
        &only,
    )
    .unwrap();
    assert!(config_only.join("modeling_diffusion_llama.py").is_file());
    convert(
        &Conversion {
            input: &input,
            from: Side::Hf(handler),
            output: &middle,
            to: Side::FastLlm,
        },
        &options,
    )
    .unwrap();
    let summary = fast_llm_to_hf(handler, &middle, &back, &options).unwrap();
    assert_eq!(summary.missing_extra_files.len(), 3);
    assert!(!back.join("modeling_diffusion_llama.py").exists());
}

/// A down-projection larger than the band of rows HF → Fast-LLM reads a transposed tensor in
/// (about 1 MiB): several bands, the last one shorter, BF16 and F32. Its Fast-LLM parameter is
/// the transpose of the HF tensor, and HF → Fast-LLM → HF is the identity.
#[rstest]
#[case::bf16_two_bands(512, 4, 1536, "BF16")]
#[case::f32_three_bands(320, 5, 2048, "F32")]
fn a_transposed_tensor_read_in_bands_is_the_transpose(
    #[case] hidden: usize,
    #[case] heads: usize,
    #[case] intermediate: usize,
    #[case] dtype: &str,
) {
    let handler = find("llama").unwrap();
    let dict = fastllm_config::Value::from_json_str(&format!(
        r#"{{"hidden_size": {hidden}, "embeddings": {{"vocab_size": 64}},
            "head": {{"normalization": {{"type": "rms_norm"}}}},
            "decoder": {{"num_blocks": 1, "block": {{
              "mixer": {{"heads": {heads}, "head_groups": 1, "head_size": {}, "add_linear_biases": false,
                         "rotary": {{"type": "default"}}}},
              "mlp": {{"intermediate_size": {intermediate}, "gated": true, "add_linear_biases": false}},
              "normalization": {{"type": "rms_norm"}}}}}}}}"#,
        hidden / heads
    ))
    .unwrap();
    let config = fastllm_config::load_base_model(fastllm_config::ModelKind::Gpt, &dict).unwrap();
    let (input, middle, back) = (
        scratch(&format!("banded-{dtype}-hf")),
        scratch(&format!("banded-{dtype}-mid")),
        scratch(&format!("banded-{dtype}-back")),
    );
    let storage = fastllm_checkpoint::synthetic::SyntheticStorage {
        dtype,
        max_shard_bytes: 1 << 30,
    };
    fastllm_checkpoint::synthetic::write_synthetic_hf(handler, &config, &input, &storage).unwrap();
    let conversion = Conversion {
        input: &input,
        from: Side::Hf(handler),
        output: &middle,
        to: Side::FastLlm,
    };
    convert(&conversion, &Options::default()).unwrap();
    let (hf, fast_llm) = (open_hf(&input).unwrap(), open_fast_llm(&middle).unwrap());
    let down = hf.files.get("model.layers.0.mlp.down_proj.weight").unwrap();
    assert_eq!(down.shape, [hidden, intermediate]);
    let name = fast_llm
        .files
        .names()
        .find(|n| n.contains("layer_2"))
        .unwrap()
        .to_string();
    let layer_2 = fast_llm.files.get(&name).unwrap();
    assert_eq!(layer_2.shape, [intermediate, hidden]);
    let element = down.data.len() / (hidden * intermediate);
    assert!(down.data.len() > 1 << 20, "more than a band: {} bytes", down.data.len());
    for (r, row) in down.data.chunks(intermediate * element).enumerate() {
        for (c, value) in row.chunks(element).enumerate() {
            let at = (c * hidden + r) * element;
            assert!(layer_2.data[at..at + element] == *value, "element ({r}, {c}) of {name}");
        }
    }
    fast_llm_to_hf(handler, &middle, &back, &Options::default()).unwrap();
    assert_same_tensors(&open_hf(&back).unwrap(), &hf);
}
