//! `convert --dtype bf16|f16` against Fast-LLM's own conversions with `data_type` bfloat16 /
//! float16 of the same inputs (`crates/checkpoint/tests/data/dtype_reference`, written by
//! `scripts/make_dtype_reference.py`): every tensor bit for bit, and the config document as
//! Fast-LLM writes it, but for the differences listed in [`expected_hf_config`] and
//! [`expected_metadata`].

mod support;

use std::path::PathBuf;

use fastllm_convert::checkpoint::{Checkpoint, open_fast_llm, open_hf};
use fastllm_convert::config::{Map, Value};
use rstest::rstest;
use support::{cli, repo, scratch};

/// What a case converts, and to which format.
struct Case {
    /// The case's directory under `dtype_reference/`.
    name: &'static str,
    /// The input checkpoint, from the repository root.
    input: &'static str,
    /// `--from`.
    from: &'static str,
    /// `--to`.
    to: &'static str,
}

const LLAMA_WORLD1_TO_LLAMA: Case = Case {
    name: "llama_world1_to_llama",
    input: "crates/checkpoint/tests/data/distributed/llama_world1/checkpoint",
    from: "auto",
    to: "llama",
};
const LLAMA_TP2_PP2_DP2_TO_LLAMA: Case = Case {
    name: "llama_tp2_pp2_dp2_to_llama",
    input: "crates/checkpoint/tests/data/distributed/llama_tp2_pp2_dp2/checkpoint",
    from: "auto",
    to: "llama",
};
const LLAMA_WORLD1_TO_FAST_LLM: Case = Case {
    name: "llama_world1_to_fast_llm",
    input: "crates/checkpoint/tests/data/distributed/llama_world1/checkpoint",
    from: "auto",
    to: "fast_llm",
};
const HYBRID_WORLD1_TO_APRIEL2: Case = Case {
    name: "apriel2_hybrid_world1_to_apriel2_text",
    input: "crates/checkpoint/tests/data/distributed/apriel2_hybrid_world1/checkpoint",
    from: "auto",
    to: "apriel2_text",
};
const LLAMA_HF_TO_FAST_LLM: Case = Case {
    name: "llama_hf_to_fast_llm",
    input: "tests/fixtures/weights/llama/hf_input",
    from: "llama",
    to: "fast_llm",
};

/// `--dtype`'s value and the name torch (and Fast-LLM's `data_type`) gives it.
fn torch_name(dtype: &str) -> &'static str {
    match dtype {
        "bf16" => "bfloat16",
        "f16" => "float16",
        other => panic!("no reference for --dtype {other}"),
    }
}

fn reference(case: &Case, dtype: &str) -> PathBuf {
    repo("crates/checkpoint/tests/data/dtype_reference")
        .join(case.name)
        .join(torch_name(dtype))
}

/// Our conversion of `case` with `--dtype dtype`, its config written in transformers 5's layout
/// (the one Fast-LLM's transformers 5.24 wrote).
fn ours(case: &Case, dtype: &str) -> PathBuf {
    let output = scratch("cli_dtype_reference", &format!("{}-{dtype}", case.name)).join("out");
    let input = repo(case.input);
    let out = cli(&[
        "convert",
        "--from",
        case.from,
        "--to",
        case.to,
        "--hf-layout",
        "v5",
        "--dtype",
        dtype,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    output
}

fn open(case: &Case, dir: &std::path::Path) -> Checkpoint {
    if case.to == "fast_llm" {
        open_fast_llm(dir).unwrap()
    } else {
        open_hf(dir).unwrap()
    }
}

fn map_at<'a>(map: &'a mut Map, key: &str) -> &'a mut Map {
    match map.get_mut(key) {
        Some(Value::Map(inner)) => inner,
        other => panic!("`{key}` is not a mapping: {other:?}"),
    }
}

/// Fast-LLM's config.json as we write it. Fast-LLM's export names no dtype (its config dict has
/// none and it writes it without transformers' `save_pretrained`), where we add transformers 5's
/// `dtype` naming what was written; we do not record a `transformers_version`.
fn expected_hf_config(mut reference: Map, dtype: &str) -> Map {
    assert_eq!(reference.get("dtype"), None, "Fast-LLM now names a dtype");
    assert_eq!(reference.get("torch_dtype"), None, "Fast-LLM now names a dtype");
    reference.remove("transformers_version");
    reference.insert("dtype".into(), Value::Str(torch_name(dtype).into()));
    reference
}

/// Fast-LLM's metadata.yaml as we write it: without the `use_cuda: false` of the run that
/// converted it; from an HF input, with the HF keys Fast-LLM does not model kept under
/// `metadata.hf_metadata` (Fast-LLM drops them), whose dtype key names what was written.
fn expected_metadata(mut reference: Map, ours: &Map, dtype: &str) -> Map {
    let distributed = map_at(map_at(&mut reference, "config"), "distributed");
    assert_eq!(distributed.remove("use_cuda"), Some(Value::Bool(false)));
    if let Some(Value::Map(metadata)) = ours.get("metadata")
        && let Some(hf_metadata) = metadata.get("hf_metadata")
    {
        let Value::Map(carried) = hf_metadata else {
            panic!("hf_metadata is not a mapping")
        };
        let Some(Value::Map(generic)) = carried.get("generic") else {
            panic!("hf_metadata.generic is not a mapping")
        };
        assert_eq!(
            generic.get("dtype"),
            Some(&Value::Str(torch_name(dtype).into())),
            "the carried dtype names what was written"
        );
        map_at(&mut reference, "metadata").insert("hf_metadata".into(), hf_metadata.clone());
    }
    reference
}

#[rstest]
fn dtype_output_is_fast_llm_s(
    #[values(
        LLAMA_WORLD1_TO_LLAMA,
        LLAMA_TP2_PP2_DP2_TO_LLAMA,
        LLAMA_WORLD1_TO_FAST_LLM,
        HYBRID_WORLD1_TO_APRIEL2,
        LLAMA_HF_TO_FAST_LLM
    )]
    case: Case,
    #[values("bf16", "f16")] dtype: &str,
) {
    let (ours, reference) = (open(&case, &ours(&case, dtype)), open(&case, &reference(&case, dtype)));
    let safetensors_dtype = match dtype {
        "bf16" => "BF16",
        _ => "F16",
    };
    let names: Vec<&str> = reference.files.names().collect();
    assert!(!names.is_empty());
    for name in names {
        assert_eq!(
            reference.files.get(name).unwrap().dtype,
            safetensors_dtype,
            "{}: {name}",
            case.name
        );
    }
    if let Some(difference) = ours.files.difference(&reference.files) {
        panic!("{} --dtype {dtype}: {difference}", case.name);
    }
    let expected = if case.to == "fast_llm" {
        expected_metadata(reference.config, &ours.config, dtype)
    } else {
        expected_hf_config(reference.config, dtype)
    };
    assert_eq!(ours.config, expected, "{} --dtype {dtype}: config", case.name);
}
