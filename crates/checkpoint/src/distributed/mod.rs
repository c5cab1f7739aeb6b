//! Fast-LLM's distributed (training) checkpoints, read without torch: where each parameter of each
//! rank's shards lives ([`DistributedLayout`], as data), and a reader ([`DistributedCheckpoint`])
//! that validates the rank files and reassembles any one parameter by mmap.
//!
//! # The format
//!
//! Facts from Fast-LLM 7d61a1ba (`fast_llm/engine/multi_stage/{multi_stage,stage_base,fsdp}.py`,
//! `fast_llm/engine/checkpoint/distributed.py`, `fast_llm/engine/distributed/config.py`); the
//! parameters themselves (order, tensor-parallel axes, weight decay, frozen, tied) are in
//! [`fastllm_layout`].
//!
//! **Files.** `metadata.yaml`: `format: distributed`, `fast_llm_version`, `model` (`gpt` or
//! `multimodal`), `config` (the model config: `base_model`, `multi_stage`, `distributed`, the
//! latter with the saving rank's `rank`), `shards` (`weights`, then the optimizer's, e.g.
//! `exp_avgs`, `exp_avgs_sq`) and `metadata` (what the trainer adds: `completed_steps`,
//! `documents_seen`, `optimizer`). Each rank `r` of the world writes `rank_<r>.safetensors`: one 1-D
//! tensor `<shard>_shard` per shard, in the shard dtype (`distributed.optimization_dtype`, default
//! float32), and in its header `__metadata__` the whole metadata, each value a string (YAML for
//! structured ones), whose `config.distributed.rank` is the saving rank. Fast-LLM's loader opens
//! `rank_<r>.safetensors` for rank `r` and never reads that metadata.
//!
//! **Ranks.** With tensor-parallel size `tp`, pipeline size `pp` and data-parallel size
//! `dp = world_size / (tp·pp)`: the tensor rank of `r` is `r % tp`; with `m = r / tp`, the data and
//! pipeline ranks are `m % dp` and `m / dp`, or `m / pp` and `m % pp` with `pipeline_first`.
//! Sequence-data parallelism is part of the data group; ZeRO stages only change buffers.
//!
//! **Stages.** The engine layers are cut greedily: a stage closes after the layer that brings the
//! running layer weight to at least the previous cut's plus `multi_stage.layers_per_stage`
//! (default 1), and after the last layer; the embeddings weigh 1000, so they are always alone.
//! Stage `s` belongs to pipeline rank `s % pp` (`stages_per_pipeline_stage` must be 1), and there
//! must be at least `pp` stages.
//!
//! **Groups (FSDPs).** A stage's stored parameters (tied duplicates excluded) form a trained group
//! `stage_<s>` then a frozen one `stage_<s>_frozen` (either may be absent). Each group re-orders
//! its parameters with a stable sort on (weight decay, weight decay = tensor-parallel,
//! weight decay ≠ sequence-tensor-parallel), lays them end to end (each parameter its local
//! tensor-parallel slice, flattened row-major, no gaps), pads with zeros to a multiple of
//! `dp·32` elements and cuts that into `dp` equal shards: data rank `d` stores elements
//! `[d·S, (d+1)·S)`, so the padding is at the end of the last shards.
//!
//! **Rank shards.** Rank `r`'s `<shard>_shard` concatenates, over the stages on its device in
//! stage order, each group's data-rank shard. The stages on its device are its pipeline rank's,
//! plus the storing stage of each tied group (embeddings and output weights) used by a stage of its
//! pipeline rank: a full copy, kept in sync, which the reader never reads. `weights` holds every
//! group; an optimizer shard holds only trained groups (a frozen group has no optimizer state, its
//! size there is 0).
//!
//! **Tensor parallelism.** A parameter has at most one tensor-parallel axis, split in `tp` equal
//! contiguous blocks; a product axis (head groups × head size) splits on its parallel factor; a
//! concatenated axis (key|value, gate|up, Mamba's z|x|B|C) splits part by part, so a rank holds
//! its slice of the first part, then of the next. A parameter without one is duplicated on every
//! tensor rank and read from rank 0. Tied parameters are read from their storing stage's own
//! pipeline rank.
//!
//! **Padding** is zero: Fast-LLM zeroes it when initializing and on every load, the optimizer
//! state starts at zero and the optimizer only touches parameter slices. A non-zero padding
//! means the file is not the layout metadata.yaml describes, and is refused.
//!
//! # Reading
//!
//! [`DistributedCheckpoint::open`] reads `metadata.yaml`, builds the layout and maps every rank
//! file, checking each before returning; a `rank_<r>.safetensors` with `r` at or past the world
//! size is refused (Fast-LLM would ignore it, and with it whatever it holds), and so is a rank
//! file whose header says it is another rank, or of another world size: same-sized rank files
//! swapped would otherwise convert to the wrong weights. A header without a rank is read by the
//! file's name, as Fast-LLM reads every rank file. [`DistributedCheckpoint::read_into`] then rebuilds one
//! global tensor from its [`Piece`]s, releasing the pages it read: memory stays at one tensor.

mod error;
mod layout;
mod parallel;
mod reader;
mod spec;
mod writer;

pub use error::DistributedError;
pub use layout::{DistributedLayout, Group, LayoutError, Piece, Placed, SHARD_PAD_TO_MULTIPLE, ShardKind, Stage};
pub use parallel::{Coordinates, Parallelism};
pub use reader::{DistributedCheckpoint, rank_file};
pub use spec::{LayoutSpec, SpecError};
pub use writer::{DistributedWrite, ShardSource, SourceTensor, TensorSlice};
