//! Where a block sits in its sequence's config: the one naming of block paths that export,
//! import and the weight planner share.
//!
//! Fast-LLM's `FixedBlockSequenceConfig` repeats one `block` `num_blocks` times; a
//! `PatternBlockSequenceConfig` cycles through `pattern`, a list of names of its `blocks`. The
//! typed `BlockSequenceConfig` of `fastllm_config` expands them (`distinct`, `unit`, `blocks`);
//! this names a block of either kind.

/// The path of a block in its sequence's config: `block` for a fixed sequence's (`name` `None`),
/// `blocks.<name>` for a pattern sequence's.
pub fn block_path(name: Option<&str>) -> String {
    match name {
        None => "block".into(),
        Some(name) => format!("blocks.{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_named_by_its_kind_of_sequence() {
        assert_eq!(block_path(None), "block");
        assert_eq!(block_path(Some("sliding_attention")), "blocks.sliding_attention");
    }
}
