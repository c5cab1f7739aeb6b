//! The Llama family of HF checkpoint formats: `llama`, `mistral`, `qwen2`, `mixtral`,
//! `mtp_llama`, `diffusion_llama` and `dream`, registered with the format registry.
//!
//! Each format is a handler (identity and metadata) plus a converter: its section tables
//! ([`sections`]) and the transformers config class it reads ([`classes`]). Both are public so
//! other crates can declare child formats from them.

pub mod classes;
pub mod rotary;
mod samples;
pub mod sections;
pub mod weights;

use std::sync::OnceLock;

use fastllm_core::config::ModelKind;
use fastllm_core::{Converter, Handler, inventory};

/// The family name in the registry.
pub const FAMILY: &str = "llama";

macro_rules! converter {
    ($name:ident, $build:expr) => {
        fn $name() -> &'static Converter {
            static CONVERTER: OnceLock<Converter> = OnceLock::new();
            CONVERTER.get_or_init(|| $build)
        }
    };
}

converter!(llama, formats::llama());
converter!(mistral, formats::mistral());
converter!(mixtral, formats::mixtral());
converter!(qwen2, formats::qwen2());
converter!(mtp_llama, formats::mtp_llama());
converter!(diffusion_llama, formats::llama_with(classes::diffusion_llama()));
converter!(dream, formats::qwen2_with(classes::dream()));

inventory::submit! {
    Handler {
        name: "llama",
        family: FAMILY,
        model_types: &["llama"],
        architecture: "LlamaForCausalLM",
        auto_map: &[],
        model: ModelKind::Gpt,
        extra_files: &[],
        converter: llama,
    }
}

inventory::submit! {
    Handler {
        name: "mistral",
        family: FAMILY,
        model_types: &["mistral"],
        architecture: "MistralForCausalLM",
        auto_map: &[],
        model: ModelKind::Gpt,
        extra_files: &[],
        converter: mistral,
    }
}

inventory::submit! {
    Handler {
        name: "mixtral",
        family: FAMILY,
        model_types: &["mixtral"],
        architecture: "MixtralForCausalLM",
        auto_map: &[],
        model: ModelKind::Gpt,
        extra_files: &[],
        converter: mixtral,
    }
}

inventory::submit! {
    Handler {
        name: "qwen2",
        family: FAMILY,
        model_types: &["qwen2"],
        architecture: "Qwen2ForCausalLM",
        auto_map: &[],
        model: ModelKind::Gpt,
        extra_files: &[],
        converter: qwen2,
    }
}

inventory::submit! {
    Handler {
        name: "mtp_llama",
        family: FAMILY,
        model_types: &["mtp_llama"],
        architecture: "MTPLlamaForCausalLM",
        auto_map: &[
            ("AutoConfig", "configuration_mtp_llama.MTPLlamaConfig"),
            ("AutoModel", "modeling_mtp_llama.MTPLlamaModel"),
            ("AutoModelForCausalLM", "modeling_mtp_llama.MTPLlamaForCausalLM"),
        ],
        model: ModelKind::Gpt,
        extra_files: &["configuration_mtp_llama.py", "modeling_mtp_llama.py"],
        converter: mtp_llama,
    }
}

inventory::submit! {
    Handler {
        name: "diffusion_llama",
        family: FAMILY,
        model_types: &["diffusion_llama"],
        architecture: "DiffusionLlamaModel",
        auto_map: &[
            ("AutoConfig", "configuration_diffusion_llama.DiffusionLlamaConfig"),
            ("AutoModel", "modeling_diffusion_llama.DiffusionLlamaModel"),
        ],
        model: ModelKind::Gpt,
        extra_files: &["configuration_diffusion_llama.py", "modeling_diffusion_llama.py", "generation_utils.py"],
        converter: diffusion_llama,
    }
}

inventory::submit! {
    Handler {
        name: "dream",
        family: FAMILY,
        // Dream's published configs say `Dream`; Fast-LLM writes `dream`.
        model_types: &["dream", "Dream"],
        architecture: "DreamModel",
        auto_map: &[
            ("AutoConfig", "configuration_dream.DreamConfig"),
            ("AutoModel", "modeling_dream.DreamModel"),
        ],
        model: ModelKind::Gpt,
        extra_files: &["configuration_dream.py", "modeling_dream.py", "generation_utils.py", "generation_config.json"],
        converter: dream,
    }
}

/// Each format's tables: the parent's, with entries replaced. Formats that convert weights add
/// the weight declarations ([`weights`]) to the same tables.
mod formats {
    use std::sync::Arc;

    use fastllm_core::{Converter, HfClass, Section};

    use crate::{classes, samples, sections, weights};

    /// Builds the Llama-shaped tree with weights: `mixer` and `mlp` are config tables to which
    /// the weight declarations are added here.
    fn tree(
        mixer: Section,
        mixer_weights: fn(Section) -> Section,
        mlp: Section,
        mlp_weights: fn(Section) -> Section,
        mlp_hf: &'static str,
        head: fn(Arc<Section>) -> Section,
        base: fn(Arc<Section>, Arc<Section>) -> Section,
    ) -> Arc<Section> {
        let norm = weights::norm(sections::normalization()).build();
        let mixer = mixer_weights(mixer).build();
        let mlp = mlp_weights(mlp).build();
        let block = weights::block(
            sections::block(mixer.clone(), mlp.clone(), norm.clone()),
            &mixer,
            &mlp,
            &norm,
            mlp_hf,
        )
        .build();
        weights::base_model(base(block.clone(), head(norm.clone()).build()), &block, &norm).build()
    }

    pub(crate) fn llama() -> Converter {
        llama_with(classes::llama())
    }

    pub(crate) fn llama_with(hf_class: HfClass) -> Converter {
        let base_model = tree(
            sections::attention(),
            weights::attention,
            sections::mlp(),
            weights::mlp,
            "mlp",
            sections::head,
            sections::base_model,
        );
        Converter {
            base_model,
            hf_class,
            samples: samples::llama(),
        }
    }

    pub(crate) fn mistral() -> Converter {
        let base_model = tree(
            sections::mistral_attention(),
            weights::attention,
            sections::mistral_mlp(),
            weights::mlp,
            "mlp",
            sections::head,
            |block, head| sections::base_model(block, head).named("mistral.base_model"),
        );
        Converter {
            base_model,
            hf_class: classes::mistral(),
            samples: samples::mistral(),
        }
    }

    pub(crate) fn mixtral() -> Converter {
        let base_model = tree(
            sections::mistral_attention(),
            weights::attention,
            sections::moe_mlp(),
            weights::moe,
            "block_sparse_moe",
            sections::head,
            |block, head| sections::base_model(block, head).named("mixtral.base_model"),
        );
        Converter {
            base_model,
            hf_class: classes::mixtral(),
            samples: samples::mixtral(),
        }
    }

    pub(crate) fn qwen2() -> Converter {
        qwen2_with(classes::qwen2())
    }

    pub(crate) fn qwen2_with(hf_class: HfClass) -> Converter {
        let base_model = tree(
            sections::qwen2_attention(),
            weights::attention,
            sections::mistral_mlp(),
            weights::mlp,
            "mlp",
            sections::head,
            sections::qwen2_base_model,
        );
        Converter {
            base_model,
            hf_class,
            samples: samples::qwen2(),
        }
    }

    /// MTP-Llama: Llama's tree with its head (`prediction_heads` is a key) and, for weights,
    /// the extra prediction heads' blocks and norms ([`weights::mtp_base_model`]).
    pub(crate) fn mtp_llama() -> Converter {
        let norm = weights::norm(sections::normalization()).build();
        let mixer = weights::attention(sections::attention()).build();
        let mlp = weights::mlp(sections::mlp()).build();
        let block = weights::block(
            sections::block(mixer.clone(), mlp.clone(), norm.clone()),
            &mixer,
            &mlp,
            &norm,
            "mlp",
        )
        .build();
        let head = sections::mtp_head(norm.clone()).build();
        let base = sections::base_model(block.clone(), head).named("mtp_llama.base_model");
        Converter {
            base_model: weights::mtp_base_model(base, &block, &norm).build(),
            hf_class: classes::mtp_llama(),
            samples: samples::mtp_llama(),
        }
    }
}
