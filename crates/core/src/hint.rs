//! The options of a front end that core's messages name, as typed values: core says which option
//! resolves (or caused) a problem, and the front end says how its users spell it.
//!
//! Core is a library under several front ends (the command line, the Python package, other
//! crates), each with its own spelling of the same option (`--drop-key K`, `drop_keys=["K"]`).
//! A front end installs its [`Spelling`] once, before it converts anything ([`set_spelling`], in
//! the manner of `log::set_logger`); messages are rendered with it as they are made. Without one,
//! [`Neutral`] names the options in plain words.

use std::sync::OnceLock;

/// An option of the front end that a message names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint<'a> {
    /// Dropping the input's HF key (dotted) before converting: the way out of a key the format
    /// does not know.
    DropKey(&'a str),
    /// The option that drops keys itself, in a message about what it accepts.
    DropKeys,
    /// Accepting the loss of the parts a format does not convert (vision and audio towers).
    TextOnly,
    /// Writing the HF config as transformers 5 saves it.
    HfLayoutV5,
}

/// How a front end spells its options.
pub trait Spelling: Send + Sync {
    /// `hint` as the front end's users write it (`--drop-key rope_scaling`).
    fn spell(&self, hint: Hint) -> String;
}

/// The options in plain words, for a front end that installs no spelling.
#[derive(Debug, Clone, Copy, Default)]
pub struct Neutral;

impl Spelling for Neutral {
    fn spell(&self, hint: Hint) -> String {
        match hint {
            Hint::DropKey(key) => format!("dropping key {key}"),
            Hint::DropKeys => "dropping keys".into(),
            Hint::TextOnly => "the text-only option".into(),
            Hint::HfLayoutV5 => "HF layout v5".into(),
        }
    }
}

static SPELLING: OnceLock<&'static dyn Spelling> = OnceLock::new();

/// Installs the front end's spelling for every message rendered from now on. The first call
/// wins: a process has one front end, and a second spelling would make its messages disagree.
pub fn set_spelling(spelling: &'static dyn Spelling) {
    // A second installation is the same front end entering again (each API call installs it).
    let _ = SPELLING.set(spelling);
}

/// `hint` in the installed spelling ([`Neutral`] when none is installed).
pub fn spell(hint: Hint) -> String {
    match SPELLING.get() {
        Some(spelling) => spelling.spell(hint),
        None => Neutral.spell(hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_front_end_the_options_are_named_in_plain_words() {
        // Core's own tests install no spelling: nothing here names a command-line flag.
        for hint in [Hint::DropKey("k"), Hint::DropKeys, Hint::TextOnly, Hint::HfLayoutV5] {
            assert!(!spell(hint).contains("--"), "{hint:?}: {}", spell(hint));
        }
        assert_eq!(spell(Hint::DropKey("rope_scaling")), "dropping key rope_scaling");
    }
}
