//! The Apriel family of HF checkpoint formats: `apriel_hybrid_ssm` (Mistral with Mamba2 / GDN
//! blocks in a positional layout), `apriel2_text` (a modular layout mirroring Fast-LLM's config)
//! and `apriel2` (apriel2_text plus a vision encoder).
//!
//! Sections ([`hybrid`], [`apriel2`], [`multimodal`]) and HF classes ([`classes`]) are public so
//! other crates can reuse them: `llava_hybrid_ssm`'s text model is the `apriel_hybrid_ssm` root
//! ([`weights::hybrid_base_model`]) read with [`classes::apriel_hybrid_ssm`]. [`weights`] adds the
//! mixers' weights to the tables and replaces what the Llama tables they derive from name
//! differently; [`hybrid::base_model`] alone is config only.

pub mod apriel2;
pub mod classes;
pub mod hybrid;
pub mod multimodal;
mod samples;
pub mod weights;

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
    base_model: weights::multimodal_base_model(),
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
    base_model: weights::apriel2_base_model(),
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
    base_model: weights::hybrid_base_model(),
    hf_class: classes::apriel_hybrid_ssm(),
    samples: samples::apriel_hybrid_ssm(),
}
