//! The memory a parsed document may take: a budget proportional to its text.
//!
//! A document's text bounds its parsed size only loosely: YAML aliases repeat a value for a few
//! bytes each (a "billion laughs"), and in either language a one-entry map of four bytes (`{a}`,
//! `{"":0}`) costs a whole B-tree leaf. Both parsers charge what they build against one budget
//! and refuse the document, at the key where it runs out, before building past it.

use crate::{ParseError, Value};

/// Parsed bytes allowed per byte of text. Real documents stay far below it (an index ~3, a
/// config ~5 to 10); the densest plain lists (`[0,0,...]`: a 32-byte value per 2 bytes) reach 16.
pub const BYTES_PER_TEXT_BYTE: usize = 16;

/// Parsed bytes allowed whatever the text's length, so small documents are never refused for
/// their shape (a few aliases of a block config, a handful of one-entry maps).
pub const FLOOR_BYTES: usize = 1 << 20;

/// One value held in a list (its slot in the list's buffer).
pub(crate) const ITEM: usize = size_of::<Value>();

/// One B-tree node of a map: std's nodes hold 11 keys and values (plus links), and maps filled
/// in key order, as documents are, split them about half full; one internal node per six leaves.
pub(crate) const MAP_NODE: usize = (11 * (size_of::<String>() + ITEM) + 16) * 7 / 6;

/// Entries per node of a map filled in key order.
pub(crate) const ENTRIES_PER_NODE: usize = 6;

/// What a charge to the budget builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spent {
    /// Values parsed from the text.
    Parsed,
    /// A value an alias repeats.
    ByAlias,
}

/// What a document's parse has spent of its budget.
#[derive(Debug)]
pub(crate) struct Budget {
    text: usize,
    limit: usize,
    spent: usize,
}

impl Budget {
    /// The budget of a document of `text` bytes.
    pub(crate) fn for_text(text: usize) -> Self {
        Budget {
            text,
            limit: text.saturating_mul(BYTES_PER_TEXT_BYTE).saturating_add(FLOOR_BYTES),
            spent: 0,
        }
    }

    /// Charges `bytes` about to be allocated, parsed from the text or repeating an anchored value.
    pub(crate) fn spend(&mut self, bytes: usize, source: Spent) -> Result<(), ParseError> {
        let by_alias = source == Spent::ByAlias;
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.limit {
            return Err(ParseError::TooLarge {
                limit: self.limit,
                text: self.text,
                by_alias,
            });
        }
        Ok(())
    }

    /// Bytes charged so far.
    pub(crate) fn spent(&self) -> usize {
        self.spent
    }

    /// Charges the `index`th entry (from 0) of a map: a node for every [`ENTRIES_PER_NODE`].
    pub(crate) fn spend_entry(&mut self, index: usize) -> Result<(), ParseError> {
        if index.is_multiple_of(ENTRIES_PER_NODE) {
            self.spend(MAP_NODE, Spent::Parsed)?;
        }
        Ok(())
    }
}
