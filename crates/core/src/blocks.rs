//! The blocks of a block sequence (a decoder, a vision encoder), read in place from its
//! full-form dict: the one place that knows how fixed and pattern sequences expand.
//!
//! Fast-LLM's `FixedBlockSequenceConfig` repeats one `block` `num_blocks` times; a
//! `PatternBlockSequenceConfig` cycles through `pattern`, a list of names of its `blocks`. The
//! typed configs expand the same way (`BlockSequenceConfig::blocks`); this view borrows the dict
//! the engines work on, so no block is cloned.

use fastllm_config::{Map, Value};

use crate::dict::join;
use crate::section::fl_value;

/// A block sequence's full-form dict, read as its type says.
#[derive(Debug, Clone)]
pub struct BlockSequence<'a> {
    kind: Kind<'a>,
    num_blocks: usize,
}

#[derive(Debug, Clone)]
enum Kind<'a> {
    Fixed(&'a Map),
    Pattern { blocks: &'a Map, pattern: Vec<&'a str> },
}

/// One block of a sequence: where it sits in the sequence's dict, and its config.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// Its name in a pattern sequence's `blocks`; `None` for a fixed sequence's `block`.
    pub name: Option<&'a str>,
    pub config: &'a Map,
}

/// The path of a block in its sequence's dict: `block` for a fixed sequence's (`name` `None`),
/// `blocks.<name>` for a pattern sequence's.
pub fn block_path(name: Option<&str>) -> String {
    match name {
        None => "block".into(),
        Some(name) => format!("blocks.{name}"),
    }
}

impl Block<'_> {
    /// Its path in the sequence's dict: `block` or `blocks.<name>`.
    pub fn path(&self) -> String {
        block_path(self.name)
    }

    /// Its path below the sequence's own path `sequence`.
    pub fn path_under(&self, sequence: &str) -> String {
        join(sequence, &self.path())
    }
}

/// A config that is absent or not a dict reads as an empty one (validation rejects it first).
static EMPTY: Map = Map::new();

fn as_map(value: &Value) -> &Map {
    value.as_map().unwrap_or(&EMPTY)
}

impl<'a> BlockSequence<'a> {
    /// Reads `sequence` by its `type` (absent means fixed, as in Fast-LLM); another type is
    /// handed back.
    pub fn read(sequence: &'a Map) -> Result<Self, &'a Value> {
        let kind = match fl_value(sequence, "type") {
            Value::Null => Kind::Fixed(as_map(fl_value(sequence, "block"))),
            Value::Str(t) if t == "fixed" => Kind::Fixed(as_map(fl_value(sequence, "block"))),
            Value::Str(t) if t == "pattern" => Kind::Pattern {
                blocks: as_map(fl_value(sequence, "blocks")),
                pattern: match fl_value(sequence, "pattern") {
                    Value::List(items) => items
                        .iter()
                        .filter_map(|v| if let Value::Str(s) = v { Some(s.as_str()) } else { None })
                        .collect(),
                    _ => Vec::new(),
                },
            },
            other => return Err(other),
        };
        let num_blocks = match fl_value(sequence, "num_blocks") {
            Value::Int(i) if *i >= 0 => usize::try_from(*i).unwrap_or(usize::MAX),
            _ => 0,
        };
        Ok(BlockSequence { kind, num_blocks })
    }

    /// `num_blocks` (a negative count is 0; one beyond `usize` saturates).
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// Each block config the sequence declares, once: a fixed sequence's `block`, or a pattern
    /// sequence's `blocks` in dict order.
    pub fn distinct(&self) -> Vec<Block<'a>> {
        match &self.kind {
            Kind::Fixed(block) => vec![Block {
                name: None,
                config: block,
            }],
            Kind::Pattern { blocks, .. } => blocks
                .iter()
                .map(|(name, config)| Block {
                    name: Some(name),
                    config: as_map(config),
                })
                .collect(),
        }
    }

    /// The repeating unit: a fixed sequence's one block, or the blocks its `pattern` names, in
    /// pattern order (not expanded to `num_blocks`).
    pub fn pattern(&self) -> Vec<Block<'a>> {
        match &self.kind {
            Kind::Fixed(block) => vec![Block {
                name: None,
                config: block,
            }],
            Kind::Pattern { pattern, .. } => pattern.iter().map(|name| self.named(name)).collect(),
        }
    }

    fn named(&self, name: &'a str) -> Block<'a> {
        let config = match &self.kind {
            Kind::Pattern { blocks, .. } => blocks.get(name).map(as_map).unwrap_or(&EMPTY),
            Kind::Fixed(block) => block,
        };
        Block {
            name: Some(name),
            config,
        }
    }

    /// The block at position `index` (`None` for a pattern sequence with an empty pattern).
    pub fn block(&self, index: usize) -> Option<Block<'a>> {
        match &self.kind {
            Kind::Fixed(block) => Some(Block {
                name: None,
                config: block,
            }),
            Kind::Pattern { pattern, .. } => {
                let name = pattern.get(index % pattern.len().max(1))?;
                Some(self.named(name))
            }
        }
    }

    /// The block at each of the `num_blocks` positions, with its index, lazily (callers bound
    /// `num_blocks` before they allocate per block).
    pub fn blocks(&self) -> impl Iterator<Item = (usize, Block<'a>)> + '_ {
        // An empty pattern has no block at any position: not even a walk over the count.
        let positions = match &self.kind {
            Kind::Pattern { pattern, .. } if pattern.is_empty() => 0,
            _ => self.num_blocks,
        };
        (0..positions).filter_map(|i| Some((i, self.block(i)?)))
    }

    /// The block at the last position (Fast-LLM's `last_block_config`).
    pub fn last(&self) -> Option<Block<'a>> {
        self.block(self.num_blocks.checked_sub(1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(json: &str) -> Map {
        Value::from_json_str(json).unwrap().as_map().unwrap().clone()
    }

    fn widths<'a>(blocks: impl Iterator<Item = Block<'a>>) -> Vec<(String, i128)> {
        blocks
            .map(|b| {
                let width = match b.config.get("width") {
                    Some(Value::Int(w)) => *w,
                    _ => -1,
                };
                (b.path(), width)
            })
            .collect()
    }

    const PATTERN: &str = r#"{"type": "pattern", "num_blocks": 5, "pattern": ["a", "b", "a"],
        "blocks": {"b": {"width": 2}, "a": {"width": 1}}}"#;

    #[test]
    fn a_fixed_sequence_repeats_its_block() {
        let map = sequence(r#"{"type": "fixed", "num_blocks": 3, "block": {"width": 8}}"#);
        let blocks = BlockSequence::read(&map).unwrap();
        assert_eq!(widths(blocks.blocks().map(|(_, b)| b)), vec![("block".into(), 8); 3]);
        assert_eq!(widths(blocks.distinct().into_iter()), [("block".into(), 8)]);
        assert_eq!(widths(blocks.pattern().into_iter()), [("block".into(), 8)]);
        assert_eq!(blocks.last().unwrap().path_under("decoder"), "decoder.block");
    }

    #[test]
    fn a_pattern_sequence_cycles_through_its_pattern() {
        let map = sequence(PATTERN);
        let blocks = BlockSequence::read(&map).unwrap();
        let expanded: Vec<i128> = widths(blocks.blocks().map(|(_, b)| b))
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert_eq!(expanded, [1, 2, 1, 1, 2]);
        assert_eq!(
            widths(blocks.distinct().into_iter()),
            [("blocks.a".into(), 1), ("blocks.b".into(), 2)],
            "dict order"
        );
        assert_eq!(
            widths(blocks.pattern().into_iter()).len(),
            3,
            "pattern order, not expanded"
        );
        // Position 4 is pattern entry 4 % 3 = 1: `b`, not the pattern's last name.
        assert_eq!(blocks.last().unwrap().name, Some("b"));
    }

    #[rstest::rstest]
    #[case::empty_pattern(r#"{"type": "pattern", "num_blocks": 3, "pattern": [], "blocks": {}}"#)]
    #[case::no_blocks(r#"{"type": "fixed", "num_blocks": 0, "block": {}}"#)]
    #[case::negative_count(r#"{"type": "fixed", "num_blocks": -2, "block": {}}"#)]
    // Returns at once: the count is not walked when no position holds a block.
    #[case::empty_pattern_huge_count(
        r#"{"type": "pattern", "num_blocks": 1000000000000000000, "pattern": [], "blocks": {}}"#
    )]
    fn nothing_to_expand(#[case] json: &str) {
        let map = sequence(json);
        let blocks = BlockSequence::read(&map).unwrap();
        assert_eq!(blocks.blocks().count(), 0);
        assert!(blocks.last().is_none());
    }

    #[test]
    fn an_absent_type_is_fixed_and_another_is_handed_back() {
        let map = sequence(r#"{"num_blocks": 2, "block": {"width": 4}}"#);
        assert_eq!(BlockSequence::read(&map).unwrap().blocks().count(), 2);
        let map = sequence(r#"{"type": "spiral"}"#);
        assert_eq!(BlockSequence::read(&map).unwrap_err(), &Value::Str("spiral".into()));
    }
}
