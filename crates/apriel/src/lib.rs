//! The Apriel family of HF checkpoint formats: `apriel_hybrid_ssm` (Mistral with Mamba2 / GDN
//! blocks in a positional layout), `apriel2_text` (a modular layout mirroring Fast-LLM's config)
//! and `apriel2` (apriel2_text plus a vision encoder).
//!
//! Sections ([`hybrid`], [`apriel2`], [`multimodal`]) and HF classes ([`classes`]) are public so
//! other crates can reuse them: `llava_hybrid_ssm`'s text model is the `apriel_hybrid_ssm` root
//! ([`hybrid::base_model`]) read with [`classes::apriel_hybrid_ssm`]. Each table declares its
//! weights beside its config entries, replacing what the Llama tables it derives from name
//! differently.
//!
//! Every parameter exists exactly when Fast-LLM's layer creates it: a linear layer's bias is its
//! *effective* bias (`<layer>.bias.enabled`, else the mixer's or MLP's default), as
//! `fastllm_layout` derives it. Where the HF model could not hold such a bias, the config export
//! already rejects the config (Apriel2 Mamba `conv_bias` / `dt_proj_bias`, attention K/V biases
//! that differ), so every planned tensor has its HF counterpart.
//!
//! HF tensor names (relative to each section's HF prefix):
//! - `apriel_hybrid_ssm`: `model.layers.{i}`; attention under `self_attn` (Mistral's names), Mamba
//!   and GDN under `mixer` (Mamba's convolution is `conv1d`).
//! - `apriel2_text`: `model.decoder.blocks.{i}`, every mixer under `mixer`, stochastic sub-mixers
//!   under `mixer.mixers.{name}`; the MLP's `layer_1` is `gate_proj` + `up_proj` when gated, else
//!   `up_proj`.
//! - `apriel2`: apriel2_text's, plus `model.vision_encoder.{embeddings, encoder.blocks.{i},
//!   adapter}`; the patch embeddings are a `[Hv, 3, p, p]` convolution in HF; the adapter is
//!   `linear_1` / `linear_2`.

pub mod apriel2;
pub mod classes;
pub mod hybrid;
pub mod multimodal;
mod samples;

use fastllm_core::register_format;

/// The family name in the registry.
pub const FAMILY: &str = "apriel";

register_format! {
    "apriel2" in FAMILY,
    architecture: "Apriel2ForConditionalGeneration",
    auto_map: [
        ("AutoConfig", "configuration_apriel2.Apriel2Config"),
        ("AutoModel", "modeling_apriel2.Apriel2Model"),
        ("AutoModelForCausalLM", "modeling_apriel2.Apriel2ForConditionalGeneration"),
        ("AutoModelForImageTextToText", "modeling_apriel2.Apriel2ForConditionalGeneration"),
    ],
    model: MultiModal,
    extra_files: ["configuration_apriel2.py", "modeling_apriel2.py"],
    base_model: multimodal::base_model(),
    hf_class: classes::apriel2(),
    samples: samples::apriel2(),
}

register_format! {
    "apriel2_text" in FAMILY,
    architecture: "Apriel2ForCausalLM",
    auto_map: [
        ("AutoConfig", "configuration_apriel2.Apriel2TextConfig"),
        ("AutoModel", "modeling_apriel2.Apriel2TextModel"),
        ("AutoModelForCausalLM", "modeling_apriel2.Apriel2ForCausalLM"),
    ],
    extra_files: ["configuration_apriel2.py", "modeling_apriel2.py"],
    base_model: apriel2::base_model(),
    hf_class: classes::apriel2_text(),
    samples: samples::apriel2_text(),
}

register_format! {
    "apriel_hybrid_ssm" in FAMILY,
    architecture: "AprielHybridSSMForCausalLM",
    auto_map: [
        ("AutoConfig", "configuration_apriel_hybrid_ssm.AprielHybridSSMConfig"),
        ("AutoModel", "modeling_apriel_hybrid_ssm.AprielHybridSSMModel"),
        ("AutoModelForCausalLM", "modeling_apriel_hybrid_ssm.AprielHybridSSMForCausalLM"),
    ],
    extra_files: ["configuration_apriel_hybrid_ssm.py", "modeling_apriel_hybrid_ssm.py"],
    base_model: hybrid::base_model(),
    hf_class: classes::apriel_hybrid_ssm(),
    samples: samples::apriel_hybrid_ssm(),
}
