//! How much may be held: the byte limits of every document and header a command reads, and of
//! what a conversion writes (so that it reads back). Parsing is bounded by these bytes and by
//! `fastllm_config`'s budget of what a parse may build.

/// The largest safetensors header read. Parsed, a header of tiny tensors takes about 15 to 17
/// times its bytes (measured: 1.29 GB peak for an 89 MB header of 1.5 million tensors, 260 MB
/// for a 15.4 MiB one of 275,000); real headers hold about 150 bytes per tensor, so 16 MiB is
/// over 100,000 tensors in one file.
pub const MAX_HEADER_BYTES: usize = 16 << 20;

/// The most the safetensors headers of one checkpoint may hold in all (about 550 MB parsed at
/// worst): DeepSeek-V3's 91,000 tensors in 163 shards have about 14 MB of headers.
pub const MAX_HEADERS_TOTAL: u64 = 32 << 20;

/// What the safetensors headers of one checkpoint may still take, charged file by file before
/// each header is parsed, so that memory stays bounded however many files an index names.
#[derive(Debug)]
pub struct HeaderBudget {
    left: u64,
}

impl Default for HeaderBudget {
    fn default() -> Self {
        HeaderBudget::new()
    }
}

impl HeaderBudget {
    pub fn new() -> Self {
        HeaderBudget {
            left: MAX_HEADERS_TOTAL,
        }
    }

    /// Charges the header of the mapped file `map`; refuses a header past [`MAX_HEADER_BYTES`]
    /// or one that would take the checkpoint's headers past [`MAX_HEADERS_TOTAL`].
    pub(crate) fn charge(&mut self, map: &[u8]) -> Result<(), String> {
        // A file too short to say its header length is the parser's to name.
        let Some(length) = map.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))) else {
            return Ok(());
        };
        if length > MAX_HEADER_BYTES as u64 {
            return Err(format!(
                "header too large: {length} bytes, more than the {MAX_HEADER_BYTES} a safetensors header may have \
                 (a limit of this converter: parsed, a header takes about 15 times its size)"
            ));
        }
        if length > self.left {
            return Err(format!(
                "header of {length} bytes: the checkpoint's safetensors headers would pass the {MAX_HEADERS_TOTAL} \
                 bytes they may hold in all (a limit of this converter)"
            ));
        }
        self.left -= length;
        Ok(())
    }
}

/// The largest config document read (config.json, metadata.yaml, a config given to `config`):
/// real ones are kilobytes. Parsing one may take 16 bytes per byte of text (fastllm_config's
/// budget) and a conversion holds about three copies of the parsed config, so this keeps a
/// conversion's memory to a few hundred MiB whatever the document.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// The largest `model.safetensors.index.json` read: 10^5 tensors take about 10 MB, and its
/// parse is not copied.
pub const MAX_INDEX_BYTES: u64 = 32 << 20;

/// What a document is, for the limit it is read within (and, so that it reads back, written
/// within).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// config.json, metadata.yaml: [`MAX_CONFIG_BYTES`].
    Config,
    /// model.safetensors.index.json: [`MAX_INDEX_BYTES`].
    Index,
}

impl DocumentKind {
    pub fn limit(self) -> u64 {
        match self {
            DocumentKind::Config => MAX_CONFIG_BYTES,
            DocumentKind::Index => MAX_INDEX_BYTES,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DocumentKind::Config => "config document",
            DocumentKind::Index => "tensor index",
        }
    }

    /// Why a document of `size` bytes is refused.
    pub fn too_big(self, size: u64) -> String {
        format!(
            "{size} bytes, more than the {} a {} may have",
            self.limit(),
            self.name()
        )
    }
}
