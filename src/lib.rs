//! fastllm-convert: convert LLM checkpoints between HuggingFace formats and Fast-LLM's format.
//!
//! This umbrella crate re-exports the workspace crates; the `fastllm-convert` binary is its CLI.

pub use fastllm_config as config;
