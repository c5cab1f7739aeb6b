//! Transformers' config semantics, as data: how a `config.json` loads into its config class
//! ([`HfClass`]), what `save_pretrained` writes for it ([`complete`]), and the parts of an HF
//! checkpoint a format recognises but does not convert ([`Unconverted`]).
//!
//! Nothing here knows a Fast-LLM config or a conversion table: the engine (`fastllm-core`) reads
//! HF dicts through these classes, and each format declares its classes with them.

pub mod class;
pub mod complete;
pub mod unconverted;

use std::fmt;

pub use class::{Fill, HfClass, HfKey, HfType};
pub use unconverted::Unconverted;

/// Which transformers release's config layout an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfLayout {
    /// transformers 4.x: flat `rope_theta` and `rope_scaling`.
    V4,
    /// transformers 5.x: `rope_parameters`.
    V5,
}

/// One reason an HF config does not load as its class: the dotted key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    /// The HF key (dotted below the config's root).
    pub key: String,
    /// What is wrong, with expected vs found.
    pub message: String,
}

impl KeyProblem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        KeyProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HF `{}`: {}",
            fastllm_config::printable(&self.key),
            fastllm_config::printable(&self.message)
        )
    }
}
