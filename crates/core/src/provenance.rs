//! Which HF keys set a Fast-LLM path: read off a format's declarations, on the error path only.
//!
//! When a value an import wrote fails Fast-LLM's validation (or sizes a weight plan beyond the
//! checkpoint), the problem arises at a Fast-LLM path the user never wrote; the HF key they did
//! write is the one to name. The declarations already pair them (each writes Fast-LLM paths from
//! HF keys), so a lookup over the static tree answers without any bookkeeping while importing.

use crate::dict::join;
use crate::primitives::{Declared, Visitor, visit};
use crate::section::Section;

/// One declaration's pairing: a Fast-LLM path pattern (`*` matches one segment) ↔ the HF keys
/// it reads, relative to the format's root dict.
struct Pairing {
    fast_llm: Vec<String>,
    hf: Vec<String>,
}

/// The HF keys that set the Fast-LLM path `fast_llm` (dotted) in `root`'s format: those of the
/// most specific declarations whose Fast-LLM path is, or contains, `fast_llm`. Empty when that is
/// a constant, or no declaration writes it.
pub fn hf_keys(root: &Section, fast_llm: &str) -> Vec<String> {
    let mut pairings = Pairings(Vec::new());
    visit(root, &mut pairings);
    let pairings = pairings.0;
    let path: Vec<&str> = fast_llm.split('.').filter(|s| !s.is_empty()).collect();
    let covers =
        |pattern: &[String]| pattern.len() <= path.len() && pattern.iter().zip(&path).all(|(p, s)| p == "*" || p == s);
    let best = pairings
        .iter()
        .filter(|p| covers(&p.fast_llm))
        .map(|p| p.fast_llm.len())
        .max();
    let mut keys: Vec<String> = Vec::new();
    for pairing in &pairings {
        if Some(pairing.fast_llm.len()) == best && covers(&pairing.fast_llm) {
            for key in &pairing.hf {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
    }
    keys
}

/// The Fast-LLM paths the HF key `hf` (dotted, `*` for any entry) sets in `root`'s format: those
/// of the most specific declarations reading it or a key holding it. Empty when no Fast-LLM path
/// comes from it (a key the import only checks).
pub fn fast_llm_paths(root: &Section, hf: &str) -> Vec<String> {
    let mut pairings = Pairings(Vec::new());
    visit(root, &mut pairings);
    let key = segments(hf);
    // How many segments of `hf` a declared key holding it spells out.
    let holding = |declared: &String| {
        let declared = segments(declared);
        let holds =
            declared.len() <= key.len() && (declared.iter().zip(&key)).all(|(d, k)| d == k || d == "*" || k == "*");
        holds.then_some(declared.len())
    };
    let depth = |pairing: &Pairing| pairing.hf.iter().filter_map(holding).max();
    let best = pairings.0.iter().filter_map(depth).max();
    let mut paths: Vec<String> = Vec::new();
    for pairing in pairings.0.iter().filter(|p| best.is_some() && depth(p) == best) {
        let path = pairing.fast_llm.join(".");
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
}

fn segments(path: &str) -> Vec<String> {
    path.split('.').filter(|s| !s.is_empty()).map(String::from).collect()
}

struct Pairings(Vec<Pairing>);

impl Visitor for Pairings {
    fn declaration(&mut self, decl: &Declared, fast_llm: &str, hf: &str) {
        for (path, keys) in &decl.shape.sources {
            self.0.push(Pairing {
                fast_llm: segments(&join(fast_llm, path)),
                hf: keys.iter().map(|key| join(hf, key)).collect(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Claims;
    use crate::config::{AttentionConfig, DecoderBlockConfig, GptBaseModelConfig, StochasticMixerConfig, Value};
    use crate::primitives::LayoutEntry;
    use crate::section::Decl;
    use rstest::rstest;
    use std::sync::Arc;

    fn root() -> Section {
        let attention = Section::of::<AttentionConfig>("t.attention")
            .rename("heads", "num_attention_heads")
            .add("bias", Decl::const_import("add_linear_biases", Value::Bool(false)))
            .build();
        let mixers = Section::of::<StochasticMixerConfig>("t.stochastic")
            .add(
                "mixers",
                Decl::typed_dict("mixers", "mixers", "type", vec![attention.clone()]),
            )
            .build();
        let block = Section::of::<DecoderBlockConfig>("t.block")
            .add(
                "mixer",
                Decl::dispatch("mixer", Some("mixer"), "type", vec![attention.clone(), mixers]),
            )
            .build();
        Section::of::<GptBaseModelConfig>("t.root")
            .add("hidden", Decl::rename("hidden_size", "hidden_size"))
            .add(
                "decoder",
                Decl::custom(
                    Claims::subtree(&["decoder"], &["num_hidden_layers"]),
                    |_, _| Ok(vec![]),
                    |_, _| Ok(vec![]),
                )
                .delegating(vec![("decoder.block", block.clone())]),
            )
            .add(
                "vision",
                Decl::list_dispatch(
                    "vision.encoder",
                    "layout",
                    "layers",
                    vec![LayoutEntry {
                        layout_name: "t",
                        mixer_type: "attention",
                        section: block,
                    }],
                ),
            )
            .add("text", Decl::nested_under("text", Arc::new(root_text()), "text_config"))
    }

    fn root_text() -> Section {
        Section::of::<GptBaseModelConfig>("t.text").add("vocab", Decl::rename("embeddings.vocab_size", "vocab_size"))
    }

    #[rstest]
    #[case::rename("hidden_size", &["hidden_size"])]
    #[case::custom_recursive("decoder.num_blocks", &["num_hidden_layers"])]
    #[case::custom_delegate("decoder.block.mixer.heads", &["mixer.num_attention_heads"])]
    #[case::dispatch_type("decoder.block.mixer.type", &["mixer.type"])]
    #[case::typed_dict_entry("decoder.block.mixer.mixers.main.heads", &["mixer.mixers.*.num_attention_heads"])]
    #[case::list_dispatch_count("vision.encoder.num_blocks", &["layers"])]
    #[case::list_dispatch_pattern_block("vision.encoder.blocks.x.mixer.heads", &["mixer.num_attention_heads"])]
    #[case::nested_under("text.embeddings.vocab_size", &["text_config.vocab_size"])]
    #[case::constant("decoder.block.mixer.add_linear_biases", &[])]
    #[case::nothing("head.normalization.epsilon", &[])]
    fn the_hf_key_behind_a_fast_llm_path(#[case] path: &str, #[case] expected: &[&str]) {
        assert_eq!(hf_keys(&root(), path), expected);
    }

    #[rstest]
    #[case::rename("hidden_size", &["hidden_size"])]
    #[case::custom("num_hidden_layers", &["decoder"])]
    // The block is also mounted flat under the vision encoder: one HF key, every path it sets.
    #[case::custom_delegate("mixer.num_attention_heads", &["decoder.block.mixer.heads", "vision.encoder.block.mixer.heads", "vision.encoder.blocks.*.mixer.heads"])]
    #[case::typed_dict_entry("mixer.mixers.main.num_attention_heads", &["decoder.block.mixer.mixers.*.heads", "vision.encoder.block.mixer.mixers.*.heads", "vision.encoder.blocks.*.mixer.mixers.*.heads"])]
    #[case::typed_dict_whole("mixer.mixers", &["decoder.block.mixer.mixers", "vision.encoder.block.mixer.mixers", "vision.encoder.blocks.*.mixer.mixers"])]
    #[case::nested_under("text_config.vocab_size", &["text.embeddings.vocab_size"])]
    #[case::nothing("vocab_size", &[])]
    fn the_fast_llm_paths_an_hf_key_sets(#[case] key: &str, #[case] expected: &[&str]) {
        assert_eq!(fast_llm_paths(&root(), key), expected);
    }
}
