//! The Gemma 4 checkpoint formats, config and weights, registered with the format registry:
//! `gemma4` (HF `model_type` `gemma4_text`, `Gemma4ForCausalLM`) and `gemma4_conditional` (HF
//! `model_type` `gemma4`, `Gemma4ForConditionalGeneration`, the published checkpoints: the same
//! text model under `text_config`, its vision and audio towers not converted; [`conditional`]).
//!
//! A Fast-LLM pattern of `sliding_attention` and `full_attention` decoder blocks ↔ transformers'
//! flat `Gemma4TextConfig` ([`classes`]). Everything is declared in [`sections`] except these
//! Customs, each a transform no primitive expresses:
//!
//! * `decoder` ([`decoder`]) — two Fast-LLM blocks ↔ one flat HF dict plus `layer_types` and
//!   `num_hidden_layers`; the block section is chosen by layer type and by the bool
//!   `enable_moe_block`, and both blocks' writes merge through the safe set.
//! * full-attention `head_groups` — written to `num_global_key_value_heads` with shared K/V
//!   (`attention_k_eq_v`), else to `num_key_value_heads` (which must then match the sliding
//!   layers); read from `per_layer_config`, `num_global_key_value_heads` or
//!   `num_key_value_heads` by the same rule.
//! * `activation` — a value mapping (`gelu` ↔ `gelu_pytorch_tanh`, `squared_relu` ↔ `relu2`).
//! * `use_bidirectional_attention` — HF-only: `null` and `"vision"` read as a causal text
//!   decoder, `"all"` is rejected; export writes `null`.
//!
//! Import-only pieces, because HF has no key for them: `embedding_scale` and
//! `router_input_scale` (`hidden_size ** ±0.5`, checked exactly on export by root validators),
//! the frozen `output_scale`, a dense block's pre-MLP norm (a copy of the block norm), and the
//! transformers 5.24 `per_layer_config` check ([`per_layer`]).
//!
//! Weights are declared in the same tables, relative to the text model's HF module (`model` in
//! `gemma4`, `model.language_model` in `gemma4_conditional`): every Fast-LLM parameter ↔ its HF
//! tensors, including the routed experts' stacked `experts.gate_up_proj` (reshaped) and
//! `experts.down_proj` (each expert transposed).

pub mod classes;
pub mod conditional;
pub mod decoder;
pub mod per_layer;
mod samples;
pub mod sections;

use fastllm_core::register_format;

/// The family name in the registry.
pub const FAMILY: &str = "gemma4";

register_format! {
    "gemma4_conditional" in FAMILY,
    model_types: ["gemma4"],
    architecture: "Gemma4ForConditionalGeneration",
    base_model: conditional::base_model(),
    hf_class: classes::gemma4(),
    samples: samples::gemma4(),
}

register_format! {
    "gemma4" in FAMILY,
    model_types: ["gemma4_text"],
    architecture: "Gemma4ForCausalLM",
    base_model: sections::causal_lm(),
    hf_class: classes::gemma4_text(),
    samples: samples::gemma4(),
}
