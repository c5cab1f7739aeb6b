//! Every Fast-LLM config class reachable from the GPT and multimodal base-model configs.

pub mod attention;
pub mod block;
pub mod common;
pub mod language_model;
pub mod mixer;
pub mod model;
