//! Gemma 4 declares no weights yet: the routed experts' `experts.down_proj` `[E, H, I]` is
//! Fast-LLM's `mlp.routed.layer_2.weight` `[E·I, H]` transposed per expert, which no weight
//! transform expresses (`Transpose` is 2-D, `TransposeConcat` needs one HF tensor per expert,
//! `Reshape` keeps the bytes). A partial tree (dense blocks only) would be worse than none, so
//! weight conversion refuses the format by name and its config still converts.

use fastllm_checkpoint::convert::{ConversionError, write_synthetic_hf};
use fastllm_core::config::load_base_model;
use fastllm_core::find;
use rstest::rstest;

use fastllm_gemma4 as _;

#[rstest]
fn weight_conversion_is_refused_by_name(#[values(0, 1)] sample: usize) {
    let handler = find("gemma4").unwrap();
    assert!(handler.converter().base_model.weights.is_empty());
    let config = load_base_model(handler.model, &handler.converter().samples[sample]).unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gemma4-weights-{sample}"));
    let error = write_synthetic_hf(handler, &config, &dir, "BF16", 1 << 30).unwrap_err();
    assert!(
        matches!(error, ConversionError::WeightsNotDeclared { format: "gemma4" }),
        "{error}"
    );
    assert!(!dir.exists(), "nothing is written");
}
