//! Declarative checkpoint-config conversion between HF formats and Fast-LLM.
//!
//! A format is a table: each [`Section`] maps one Fast-LLM config class to an HF dict subtree
//! through named primitives ([`Decl`], one module each in [`primitives`]) and declares its
//! weights beside them ([`weights`]); a child format is its parent's table with entries
//! replaced. The engine runs the tables both ways ([`Handler::import`], [`Handler::export`]),
//! collecting every problem; [`coverage`] proves nothing is dropped silently. Family crates
//! register their formats with [`register_format!`].

pub mod activation;
pub mod blocks;
pub mod carried;
pub mod coverage;
pub mod decoder;
pub mod engine;
mod error;
pub mod explain;
pub mod field;
pub mod fl;
pub mod hint;
pub mod multimodal;
pub mod primitives;
pub mod provenance;
mod registry;
pub mod rules;
pub mod section;
pub mod values;
pub mod weights;

pub use carried::{Carried, NotCarried, Placement};
pub use error::{ConvertError, Direction, Problem, render_problems};
pub use fastllm_config as config;
pub use fastllm_config::dict;
pub use fastllm_hf::unconverted::Unconverted;
pub use fastllm_hf::{self as hf, HfLayout, complete, unconverted};
pub use fastllm_hf::{Fill, HfClass, HfKey, HfType};
pub use fl::{Checked, Fl, checked};
pub use inventory;
pub use primitives::{Claims, Custom, LayoutEntry};
pub use registry::{Converter, GENERIC_METADATA, Handler, detect, find, handlers, registry_errors};
pub use section::{Covers, Decl, ExportContext, FlClass, HfWrite, HfWrites, ImportContext, Section, Writes};
