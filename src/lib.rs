//! fastllm-convert: convert LLM checkpoints between HuggingFace formats and Fast-LLM's format.
//!
//! This umbrella crate re-exports the workspace crates and links every format family enabled by
//! its cargo feature (default: all). A family crate registers its formats with `inventory`; a
//! crate that nothing names is dropped by the linker with its registrations, so each enabled
//! family is named here, and `unused_crate_dependencies` is denied: a family added to
//! Cargo.toml but not named here fails the build instead of vanishing.
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

pub mod api;
pub mod cli;
pub mod remote;
pub mod summary;

#[cfg(feature = "apriel")]
pub use fastllm_apriel as apriel;
pub use fastllm_checkpoint as checkpoint;
pub use fastllm_config as config;
pub use fastllm_core as core;
#[cfg(feature = "gemma4")]
pub use fastllm_gemma4 as gemma4;
#[cfg(feature = "llama")]
pub use fastllm_llama as llama;
#[cfg(feature = "llava")]
pub use fastllm_llava as llava;
#[cfg(feature = "object-store")]
pub use fastllm_store as store;

/// The format families linked into this build.
pub fn families() -> Vec<&'static str> {
    [
        #[cfg(feature = "llama")]
        fastllm_llama::FAMILY,
        #[cfg(feature = "apriel")]
        fastllm_apriel::FAMILY,
        #[cfg(feature = "gemma4")]
        fastllm_gemma4::FAMILY,
        #[cfg(feature = "llava")]
        fastllm_llava::FAMILY,
    ]
    .to_vec()
}
