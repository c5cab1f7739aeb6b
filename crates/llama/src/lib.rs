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

use fastllm_core::register_format;

use crate::sections::{
    Llama, mistral_attention, mistral_mlp, moe_mlp, mtp_base_model, mtp_head, qwen2_attention, qwen2_base_model,
};

/// The family name in the registry.
pub const FAMILY: &str = "llama";

register_format! {
    "llama" in FAMILY,
    architecture: "LlamaForCausalLM",
    base_model: Llama::named("llama.base_model"),
    hf_class: classes::llama(),
    samples: samples::llama(),
}

register_format! {
    "mistral" in FAMILY,
    architecture: "MistralForCausalLM",
    base_model: Llama { attention: mistral_attention(), mlp: mistral_mlp(), ..Llama::named("mistral.base_model") },
    hf_class: classes::mistral(),
    samples: samples::mistral(),
}

register_format! {
    "mixtral" in FAMILY,
    architecture: "MixtralForCausalLM",
    base_model: Llama {
        attention: mistral_attention(),
        mlp: moe_mlp(),
        mlp_module: "block_sparse_moe",
        ..Llama::named("mixtral.base_model")
    },
    hf_class: classes::mixtral(),
    samples: samples::mixtral(),
}

/// Qwen2: Mistral's MLP, Qwen2's attention and root guards.
fn qwen2() -> Llama {
    Llama {
        attention: qwen2_attention(),
        mlp: mistral_mlp(),
        root: |root, _, _| qwen2_base_model(root),
        ..Llama::named("qwen2.base_model")
    }
}

register_format! {
    "qwen2" in FAMILY,
    architecture: "Qwen2ForCausalLM",
    base_model: qwen2(),
    hf_class: classes::qwen2(),
    samples: samples::qwen2(),
}

register_format! {
    "mtp_llama" in FAMILY,
    architecture: "MTPLlamaForCausalLM",
    auto_map: [
        ("AutoConfig", "configuration_mtp_llama.MTPLlamaConfig"),
        ("AutoModel", "modeling_mtp_llama.MTPLlamaModel"),
        ("AutoModelForCausalLM", "modeling_mtp_llama.MTPLlamaForCausalLM"),
    ],
    extra_files: ["configuration_mtp_llama.py", "modeling_mtp_llama.py"],
    base_model: Llama { head: mtp_head, root: mtp_base_model, ..Llama::named("mtp_llama.base_model") },
    hf_class: classes::mtp_llama(),
    samples: samples::mtp_llama(),
}

register_format! {
    "diffusion_llama" in FAMILY,
    architecture: "DiffusionLlamaModel",
    auto_map: [
        ("AutoConfig", "configuration_diffusion_llama.DiffusionLlamaConfig"),
        ("AutoModel", "modeling_diffusion_llama.DiffusionLlamaModel"),
    ],
    extra_files: ["configuration_diffusion_llama.py", "modeling_diffusion_llama.py", "generation_utils.py"],
    base_model: Llama::named("llama.base_model"),
    hf_class: classes::diffusion_llama(),
    samples: samples::llama(),
}

register_format! {
    "dream" in FAMILY,
    // Dream's published configs say `Dream`; Fast-LLM writes `dream`.
    model_types: ["dream", "Dream"],
    architecture: "DreamModel",
    auto_map: [
        ("AutoConfig", "configuration_dream.DreamConfig"),
        ("AutoModel", "modeling_dream.DreamModel"),
    ],
    extra_files: ["configuration_dream.py", "modeling_dream.py", "generation_utils.py", "generation_config.json"],
    base_model: qwen2(),
    hf_class: classes::dream(),
    samples: samples::qwen2(),
}
