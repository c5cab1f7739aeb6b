//! Every Llama-family handler: registered once, coverage-clean, and explainable.

use fastllm_core::coverage::check_handler;
use fastllm_core::explain;
use fastllm_core::{handlers, registry_errors};
use rstest::rstest;

// Integration tests link the family explicitly (a crate nothing names keeps no registrations).
use fastllm_llama as _;

#[test]
fn the_family_registers_seven_formats() {
    let names: Vec<&str> = handlers()
        .iter()
        .filter(|h| h.family == fastllm_llama::FAMILY)
        .map(|h| h.name)
        .collect();
    assert_eq!(
        names,
        [
            "diffusion_llama",
            "dream",
            "llama",
            "mistral",
            "mixtral",
            "mtp_llama",
            "qwen2"
        ]
    );
    assert!(registry_errors().is_empty(), "{:?}", registry_errors());
}

#[rstest]
fn every_handler_passes_coverage(
    #[values("llama", "mistral", "qwen2", "mixtral", "mtp_llama", "diffusion_llama", "dream")] name: &str,
) {
    let handler = fastllm_core::find(name).unwrap();
    let report = check_handler(handler);
    assert!(report.failures.is_empty(), "{name}: {:#?}", report.failures);
    assert!(report.samples > 0);
}

#[rstest]
#[case("llama", "decoder.block.mixer.heads", "num_attention_heads")]
#[case("mistral", "decoder.block.mixer.window_size", "sliding_window")]
#[case("mixtral", "decoder.block.mlp.experts", "num_local_experts")]
#[case("mtp_llama", "head.prediction_heads", "prediction_heads")]
fn explain_lists_the_mappings(#[case] name: &str, #[case] fast_llm: &str, #[case] hf: &str) {
    let handler = fastllm_core::find(name).unwrap();
    let rows = explain::rows(&handler.converter().base_model);
    assert!(
        rows.iter()
            .any(|r| r.fast_llm == fast_llm && r.hf == hf && r.primitive == "Rename"),
        "{rows:#?}"
    );
}

#[test]
fn a_mistral_like_format_is_a_short_table() {
    // The Mistral tables are the Llama ones with entries replaced (issue 18: at most 40 lines,
    // its registration included).
    let source = include_str!("../src/sections.rs");
    let start = source.find("// Mistral:").unwrap();
    let end = source[start..].find("// MTP-Llama").unwrap();
    let registration = include_str!("../src/lib.rs");
    let entry = registration.find("\"mistral\" in FAMILY").unwrap();
    let entry_end = entry + registration[entry..].find("}\n").unwrap();
    let lines = source[start..start + end].lines().count() + registration[entry..entry_end].lines().count();
    assert!(lines <= 40, "the Mistral format takes {lines} lines");
}

/// A key two declarations write with different values: the export is first run without
/// recording writers, and rerun to name both.
#[test]
fn an_export_conflict_names_both_writers() {
    use fastllm_core::config::{Value, load_base_model};
    use fastllm_core::{ConvertError, HfLayout};
    let handler = fastllm_core::find("llama").unwrap();
    // A sample the format holds, with the head's norm epsilon changed (the blocks' is 1e-5).
    let mut dict = handler.converter().samples[0].clone();
    let Value::Map(root) = &mut dict else {
        panic!("the sample is a dict");
    };
    let Some(Value::Map(head)) = root.get_mut("head") else {
        panic!("the sample has a head");
    };
    let norm = Value::from_json_str(r#"{"type": "rms_norm", "epsilon": 1e-6}"#).unwrap();
    head.insert("normalization".into(), norm);
    let config = load_base_model(handler.model, &dict).unwrap();
    let Err(ConvertError::Rejected { problems, .. }) = handler.export(&config, HfLayout::V4) else {
        panic!("a conflicting rms_norm_eps must be rejected");
    };
    let [problem] = problems.as_slice() else {
        panic!("one problem expected: {problems:#?}");
    };
    assert_eq!(problem.hf.as_deref(), Some("rms_norm_eps"));
    assert!(
        problem.message.contains("`head.normalization.epsilon` gives 1e-6")
            && problem
                .message
                .contains("`decoder.block.normalization.epsilon` gives 1e-5"),
        "{}",
        problem.message
    );
}

/// Qwen2's sliding-window keys are read as ints: a `null` layer count is a problem naming it,
/// not a window starting at layer 0.
#[rstest]
#[case(
    r#"{"use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 28}"#,
    None
)]
#[case(
    r#"{"use_sliding_window": true, "sliding_window": 4096, "max_window_layers": null}"#,
    Some(("max_window_layers", "expected an int, found null"))
)]
fn qwen2_reads_its_window_layer_count_as_an_int(#[case] keys: &str, #[case] refused: Option<(&str, &str)>) {
    use fastllm_core::config::Value;
    use fastllm_core::{ConvertError, HfLayout};
    let handler = fastllm_core::find("qwen2").unwrap();
    let sample = &handler.converter().samples[0];
    let config = fastllm_core::config::load_base_model(handler.model, sample).unwrap();
    let mut hf = handler.export(&config, HfLayout::V4).unwrap();
    let Value::Map(extra) = Value::from_json_str(keys).unwrap() else {
        panic!("the keys are a dict");
    };
    hf.extend(extra);
    hf.insert("num_hidden_layers".into(), Value::Int(28));
    match (handler.import(&hf), refused) {
        (Ok(_), None) => {}
        (Err(ConvertError::Rejected { problems, .. }), Some((key, message))) => {
            assert!(
                problems
                    .iter()
                    .any(|p| p.hf.as_deref() == Some(key) && p.message == message),
                "{problems:#?}"
            );
        }
        (outcome, expected) => panic!("expected {expected:?}, got {outcome:?}"),
    }
}
