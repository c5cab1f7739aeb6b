//! The Apriel family of HF checkpoint formats: `apriel_hybrid_ssm` (Mistral with Mamba2 / GDN
//! blocks in a positional layout), `apriel2_text` (a modular layout mirroring Fast-LLM's config)
//! and `apriel2` (apriel2_text plus a vision encoder).
//!
//! Sections ([`hybrid`], [`apriel2`], [`multimodal`]) and HF classes ([`classes`]) are public so
//! other crates can reuse them: `llava_hybrid_ssm`'s text model is [`hybrid::base_model`] read
//! with [`classes::apriel_hybrid_ssm`]. Weight declarations ([`weights`]) are added only to the
//! registered formats' trees, so those shared tables stay weight-free.

pub mod apriel2;
pub mod classes;
pub mod hybrid;
pub mod multimodal;
mod samples;
pub mod weights;

use std::sync::OnceLock;

use fastllm_core::config::ModelKind;
use fastllm_core::{Converter, Handler, inventory};

/// The family name in the registry.
pub const FAMILY: &str = "apriel";

fn apriel_hybrid_ssm() -> &'static Converter {
    static CONVERTER: OnceLock<Converter> = OnceLock::new();
    CONVERTER.get_or_init(|| Converter {
        base_model: weights::hybrid_base_model().build(),
        hf_class: classes::apriel_hybrid_ssm(),
        samples: samples::apriel_hybrid_ssm(),
    })
}

fn apriel2() -> &'static Converter {
    static CONVERTER: OnceLock<Converter> = OnceLock::new();
    CONVERTER.get_or_init(|| Converter {
        base_model: weights::multimodal_base_model().build(),
        hf_class: classes::apriel2(),
        samples: samples::apriel2(),
    })
}

inventory::submit! {
    Handler {
        name: "apriel2",
        family: FAMILY,
        model_types: &["apriel2"],
        architecture: "Apriel2ForConditionalGeneration",
        auto_map: &[
            ("AutoConfig", "configuration_apriel2.Apriel2Config"),
            ("AutoModel", "modeling_apriel2.Apriel2Model"),
            ("AutoModelForCausalLM", "modeling_apriel2.Apriel2ForConditionalGeneration"),
            ("AutoModelForImageTextToText", "modeling_apriel2.Apriel2ForConditionalGeneration"),
        ],
        model: ModelKind::MultiModal,
        extra_files: &["configuration_apriel2.py", "modeling_apriel2.py"],
        converter: apriel2,
    }
}

fn apriel2_text() -> &'static Converter {
    static CONVERTER: OnceLock<Converter> = OnceLock::new();
    CONVERTER.get_or_init(|| Converter {
        base_model: weights::apriel2_base_model().build(),
        hf_class: classes::apriel2_text(),
        samples: samples::apriel2_text(),
    })
}

inventory::submit! {
    Handler {
        name: "apriel2_text",
        family: FAMILY,
        model_types: &["apriel2_text"],
        architecture: "Apriel2ForCausalLM",
        auto_map: &[
            ("AutoConfig", "configuration_apriel2.Apriel2TextConfig"),
            ("AutoModel", "modeling_apriel2.Apriel2TextModel"),
            ("AutoModelForCausalLM", "modeling_apriel2.Apriel2ForCausalLM"),
        ],
        model: ModelKind::Gpt,
        extra_files: &["configuration_apriel2.py", "modeling_apriel2.py"],
        converter: apriel2_text,
    }
}

inventory::submit! {
    Handler {
        name: "apriel_hybrid_ssm",
        family: FAMILY,
        model_types: &["apriel_hybrid_ssm"],
        architecture: "AprielHybridSSMForCausalLM",
        auto_map: &[
            ("AutoConfig", "configuration_apriel_hybrid_ssm.AprielHybridSSMConfig"),
            ("AutoModel", "modeling_apriel_hybrid_ssm.AprielHybridSSMModel"),
            ("AutoModelForCausalLM", "modeling_apriel_hybrid_ssm.AprielHybridSSMForCausalLM"),
        ],
        model: ModelKind::Gpt,
        extra_files: &["configuration_apriel_hybrid_ssm.py", "modeling_apriel_hybrid_ssm.py"],
        converter: apriel_hybrid_ssm,
    }
}
