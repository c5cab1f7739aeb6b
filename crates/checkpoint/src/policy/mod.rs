//! The filesystem policy: every file `convert`, `inspect` and `config` read, and everything they
//! create or remove, goes through this module. It answers three questions, each in one place.
//!
//! * **What may be read** ([`InputDir`], [`open_named`]): regular files only, opened once without
//!   blocking (a FIFO cannot hang the open), their type, filesystem and size checked on the open
//!   handle, never on a path that may change. A file of a checkpoint is read only if it lies in
//!   the input directory once symlinks are resolved, or in the `blobs/` directory of the Hugging
//!   Face cache the input is a snapshot of (`…/models--org--name/snapshots/REV` links its files
//!   to `…/models--org--name/blobs/HASH`). Anything else — a symlink leaving the input, to
//!   `/proc/self/environ` or a FIFO, a dangling symlink, a loop, a device — is described as what
//!   it truly is and refused (a weight or config) or listed as not copied (a companion file).
//!   Files on kernel pseudo-filesystems (`/proc`, `/sys`, ...) are never read, whatever links
//!   lead there. A copy gets the output's mode (0644) narrowed to its source's, never wider.
//! * **What may be written or removed** ([`Protected`], [`OutputDir`]): only what this process
//!   created, identified by device and inode recorded at creation, and the old output under
//!   `--force`. Nothing is removed that is, or contains, a file or directory of the input (every
//!   entry of the input tree, every symlink target it points to, every directory on its path),
//!   and no removal crosses a mount point. The sweep of a killed run's staging directories obeys
//!   the same rule and only considers names this tool generates, with their random part.
//!   Parent directories created for an output are removed again when the conversion fails or is
//!   interrupted ([`abandon_live_outputs`] is what a SIGINT / SIGTERM handler calls).
//! * **How much may be held** ([`DocumentKind`], [`HeaderBudget`]): every document is read
//!   within the byte limit of its kind, checked on the open handle ([`Opened::read_text`]), for
//!   every command, and what a conversion writes is checked against the same limits; safetensors
//!   headers are charged before they are parsed; what parsing may build is bounded by the parsers
//!   (`fastllm_config`).

mod limits;
mod output;
mod overlap;
mod protect;
mod read;

pub use limits::{DocumentKind, HeaderBudget, MAX_CONFIG_BYTES, MAX_HEADER_BYTES, MAX_HEADERS_TOTAL, MAX_INDEX_BYTES};
pub use output::{Existing, OutputDir, abandon_live_outputs};
pub use overlap::{Overlap, check_output_path, resolve_future};
pub use protect::Protected;
pub use read::{Entry, FileId, InputDir, Opened, describe, document_text, open_named};
