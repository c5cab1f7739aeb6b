//! The gemma4 format family (in progress: no format registered yet).

/// The family name in the registry.
pub const FAMILY: &str = "gemma4";
