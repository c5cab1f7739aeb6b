//! Where every parameter of every rank's shards lives: stages, their parameter groups (Fast-LLM's
//! FSDPs), padded offsets, and the copies ([`Piece`]s) that reassemble one global tensor.

use std::collections::{BTreeMap, BTreeSet};

use fastllm_layout::{Axis, EngineLayer, Parameter};

use super::parallel::{Coordinates, Parallelism};

/// Fast-LLM pads each group so every data rank's shard is a multiple of this many elements.
pub const SHARD_PAD_TO_MULTIPLE: usize = 32;

/// How a shard is sized: `weights` holds every group, an optimizer shard only the trained ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardKind {
    Weights,
    Optimizer,
}

impl ShardKind {
    /// The kind of the shard named `name` (`weights`, or an optimizer state such as `exp_avgs`).
    pub fn of(name: &str) -> ShardKind {
        if name == "weights" {
            ShardKind::Weights
        } else {
            ShardKind::Optimizer
        }
    }
}

/// Why a layout cannot be built: what Fast-LLM itself would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "{stages} stages for {pipeline} pipeline ranks: Fast-LLM needs at least one stage per pipeline rank \
         (lower multi_stage.layers_per_stage)"
    )]
    TooFewStages { stages: usize, pipeline: usize },
    #[error("`{parameter}`: {message}")]
    Split { parameter: String, message: String },
    #[error("tied parameter `{parameter}` has no stored parameter `{main}` before it")]
    Tied { parameter: String, main: String },
    #[error(
        "frozen parameters are stored in the compute dtype {frozen} and trained ones in {shard}: Fast-LLM needs one \
         shard dtype"
    )]
    FrozenDtype { frozen: &'static str, shard: &'static str },
}

/// A parameter placed in its group: its local (tensor-parallel) shape and its element range in
/// the group's buffer (the concatenation of every data rank's shard).
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub parameter: Parameter,
    pub local_shape: Vec<usize>,
    pub begin: usize,
    pub end: usize,
}

/// A stage's group of parameters, sharded over the data-parallel ranks (Fast-LLM's FSDP).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Fast-LLM's name: `stage_<s>` (trained) or `stage_<s>_frozen`.
    pub name: String,
    pub frozen: bool,
    /// In storage order.
    pub parameters: Vec<Placed>,
    /// Elements of parameters (local sizes), without padding.
    pub count: usize,
    /// Elements each data rank stores.
    pub shard_size: usize,
}

impl Group {
    /// Zeros appended to the parameters so that `data_parallel` equal shards are multiples of
    /// [`SHARD_PAD_TO_MULTIPLE`].
    pub fn global_pad(&self, data_parallel: usize) -> usize {
        let multiple = data_parallel * SHARD_PAD_TO_MULTIPLE;
        (multiple - self.count % multiple) % multiple
    }

    /// The padding at the end of data rank `data_rank`'s shard.
    pub fn shard_pad(&self, data_rank: usize, data_parallel: usize) -> usize {
        let after = self.shard_size * (data_parallel - data_rank - 1);
        self.global_pad(data_parallel)
            .saturating_sub(after)
            .min(self.shard_size)
    }

    /// This group's elements in a rank's shard of `kind`.
    pub fn size(&self, kind: ShardKind) -> usize {
        if self.frozen && kind == ShardKind::Optimizer {
            0
        } else {
            self.shard_size
        }
    }
}

/// A stage: consecutive engine layers, owned by one pipeline rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub index: usize,
    pub pipeline_rank: usize,
    /// The engine layers it holds.
    pub layers: Vec<String>,
    /// The trained group, then the frozen one; either may be absent.
    pub groups: Vec<Group>,
}

/// One copy of a reassembly: `len` elements at element `offset` of rank `rank`'s shard go to
/// element `target` of the global tensor (row-major).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub rank: usize,
    pub offset: usize,
    pub target: usize,
    pub len: usize,
}

/// Where a parameter is: stage, group and position in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    stage: usize,
    group: usize,
    index: usize,
}

/// The placement of every parameter of a model in the per-rank shards of one parallel layout.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributedLayout {
    pub parallelism: Parallelism,
    pub stages: Vec<Stage>,
    positions: BTreeMap<String, Position>,
    /// Per tied group: the stage storing it and the pipeline ranks that use it.
    tied: Vec<(usize, BTreeSet<usize>)>,
}

impl DistributedLayout {
    /// Places the parameters of `layers` (from [`fastllm_layout::engine_layers`], built for
    /// `parallelism.tensor_parallel`).
    pub fn new(layers: &[EngineLayer], parallelism: Parallelism) -> Result<DistributedLayout, LayoutError> {
        let splits = stage_splits(layers, parallelism.layers_per_stage);
        let pipeline = parallelism.pipeline_parallel;
        if splits.len() - 1 < pipeline {
            return Err(LayoutError::TooFewStages {
                stages: splits.len() - 1,
                pipeline,
            });
        }
        let mut stages = Vec::new();
        let mut positions = BTreeMap::new();
        let mut layer_stage = BTreeMap::new();
        for (index, bounds) in splits.windows(2).enumerate() {
            let stage_layers = &layers[bounds[0]..bounds[1]];
            let mut trained = Vec::new();
            let mut frozen = Vec::new();
            for layer in stage_layers {
                for parameter in &layer.parameters {
                    layer_stage.insert(parameter.name.clone(), index);
                    if parameter.tied_to.is_some() {
                        continue;
                    }
                    if parameter.frozen {
                        frozen.push(parameter.clone());
                    } else {
                        trained.push(parameter.clone());
                    }
                }
            }
            let mut groups = Vec::new();
            for (parameters, training) in [(trained, Training::Trained), (frozen, Training::Frozen)] {
                if parameters.is_empty() {
                    continue;
                }
                let group = group(index, training, parameters, &parallelism)?;
                for (position, placed) in group.parameters.iter().enumerate() {
                    positions.insert(
                        placed.parameter.name.clone(),
                        Position {
                            stage: index,
                            group: groups.len(),
                            index: position,
                        },
                    );
                }
                groups.push(group);
            }
            stages.push(Stage {
                index,
                pipeline_rank: index % pipeline,
                layers: stage_layers.iter().map(|l| l.name.clone()).collect(),
                groups,
            });
        }
        // Every rank's shard is a sum of some of these: bound them all at once.
        let all_groups = stages.iter().flat_map(|s| &s.groups);
        if all_groups
            .clone()
            .try_fold(0usize, |total, g| total.checked_add(g.shard_size))
            .is_none()
        {
            return Err(LayoutError::Split {
                parameter: all_groups.last().map(|g| g.name.clone()).unwrap_or_default(),
                message: "the model's size does not fit in memory addresses".into(),
            });
        }
        let has_frozen = stages.iter().flat_map(|s| &s.groups).any(|g| g.frozen);
        if has_frozen && parallelism.frozen_dtype != parallelism.shard_dtype {
            return Err(LayoutError::FrozenDtype {
                frozen: parallelism.frozen_dtype,
                shard: parallelism.shard_dtype,
            });
        }
        let tied = tied_groups(layers, &layer_stage, pipeline)?;
        Ok(DistributedLayout {
            parallelism,
            stages,
            positions,
            tied,
        })
    }

    /// The stages whose shards rank `rank` holds, in order: those of its pipeline rank, and the
    /// storing stage of each tied group its pipeline rank uses (a synchronized copy).
    pub fn stages_on_device(&self, rank: usize) -> Vec<usize> {
        let pipeline = self.parallelism.coordinates(rank).pipeline;
        let mut on_device: BTreeSet<usize> = self
            .stages
            .iter()
            .filter(|s| s.pipeline_rank == pipeline)
            .map(|s| s.index)
            .collect();
        for (stage, ranks) in &self.tied {
            if ranks.contains(&pipeline) {
                on_device.insert(*stage);
            }
        }
        on_device.into_iter().collect()
    }

    /// Each group on rank `rank`'s device with its element offset in the rank's shard of `kind`.
    pub fn rank_groups(&self, rank: usize, kind: ShardKind) -> Vec<(&Stage, &Group, usize)> {
        let mut offset = 0;
        let mut out = Vec::new();
        for index in self.stages_on_device(rank) {
            let stage = &self.stages[index];
            for group in &stage.groups {
                out.push((stage, group, offset));
                offset += group.size(kind);
            }
        }
        out
    }

    /// The length of rank `rank`'s shard of `kind`.
    pub fn shard_len(&self, rank: usize, kind: ShardKind) -> usize {
        self.rank_groups(rank, kind)
            .iter()
            .map(|(_, group, _)| group.size(kind))
            .sum()
    }

    /// Every stored parameter, in storage order (stage by stage, group by group): the order in
    /// which Fast-LLM exports them.
    pub fn parameters(&self) -> impl Iterator<Item = &Placed> {
        self.stages.iter().flat_map(|s| &s.groups).flat_map(|g| &g.parameters)
    }

    /// The stored parameter `name`, with its stage and group.
    pub fn find(&self, name: &str) -> Option<(&Stage, &Group, &Placed)> {
        let position = self.positions.get(name)?;
        let stage = &self.stages[position.stage];
        let group = &stage.groups[position.group];
        Some((stage, group, &group.parameters[position.index]))
    }

    /// The copies that rebuild parameter `name` of a shard of `kind` from the rank files, covering
    /// its global tensor exactly once. `None` for an unknown parameter or an optimizer shard of a
    /// frozen one. Tensor-parallel duplicates are read from tensor rank 0, tied copies from the
    /// owning pipeline rank.
    pub fn pieces(&self, name: &str, kind: ShardKind) -> Option<Vec<Piece>> {
        let (stage, group, placed) = self.find(name)?;
        if group.size(kind) == 0 {
            return None;
        }
        let parallelism = &self.parallelism;
        let tensor_ranks = if parallelism.tensor_parallel > 1 && placed.parameter.tensor_parallel() {
            parallelism.tensor_parallel
        } else {
            1
        };
        let mut pieces = Vec::new();
        for tensor in 0..tensor_ranks {
            // Checked when the layout was built.
            let runs = local_runs(&placed.parameter, parallelism.tensor_parallel, tensor).ok()?;
            for data in 0..parallelism.data_parallel {
                let shard_begin = data * group.shard_size;
                let low = placed.begin.max(shard_begin);
                let high = placed.end.min(shard_begin + group.shard_size);
                if low >= high {
                    continue;
                }
                let rank = parallelism.rank(Coordinates {
                    tensor,
                    data,
                    pipeline: stage.pipeline_rank,
                });
                let group_offset = self
                    .rank_groups(rank, kind)
                    .iter()
                    .find(|(s, g, _)| s.index == stage.index && g.name == group.name)
                    .map(|(_, _, offset)| *offset)?;
                // Local elements [low, high) of the buffer are at this rank's shard offset.
                let file_base = group_offset + low - shard_begin;
                let (local_low, local_high) = (low - placed.begin, high - placed.begin);
                for &(local, target, len) in &runs {
                    let start = local.max(local_low);
                    let end = (local + len).min(local_high);
                    if start < end {
                        push(
                            &mut pieces,
                            Piece {
                                rank,
                                offset: file_base + start - local_low,
                                target: target + start - local,
                                len: end - start,
                            },
                        );
                    }
                }
            }
        }
        Some(pieces)
    }
}

/// Appends `piece`, merging it into the previous one when both are contiguous.
fn push(pieces: &mut Vec<Piece>, piece: Piece) {
    if let Some(last) = pieces.last_mut()
        && last.rank == piece.rank
        && last.offset + last.len == piece.offset
        && last.target + last.len == piece.target
    {
        last.len += piece.len;
        return;
    }
    pieces.push(piece);
}

/// Fast-LLM's greedy stage split: a stage closes once the running layer weight reaches the
/// previous cut plus `layers_per_stage`, and after the last layer. Returns the cut indices.
fn stage_splits(layers: &[EngineLayer], layers_per_stage: f64) -> Vec<usize> {
    let mut splits = vec![0];
    let (mut counter, mut last) = (0.0, 0.0);
    for (i, layer) in layers.iter().enumerate() {
        counter += layer.weight;
        if counter >= last + layers_per_stage || i + 1 == layers.len() {
            splits.push(i + 1);
            last = counter;
        }
    }
    splits
}

/// Which of a stage's two parameter groups: Fast-LLM keeps the frozen parameters apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Training {
    Trained,
    Frozen,
}

/// Fast-LLM's FSDP for stage `stage`'s `training` group: the parameters reordered (stable) so
/// that non-decayed tensor-parallel ones come first and the sequence-tensor-parallel ones sit
/// together in the middle, laid end to end, padded, and cut into equal data-rank shards.
fn group(
    stage: usize,
    training: Training,
    mut parameters: Vec<Parameter>,
    parallelism: &Parallelism,
) -> Result<Group, LayoutError> {
    let (name, frozen) = match training {
        Training::Trained => (format!("stage_{stage}"), false),
        Training::Frozen => (format!("stage_{stage}_frozen"), true),
    };
    parameters.sort_by_key(|p| {
        let decay = p.weight_decay;
        (
            decay,
            decay == p.tensor_parallel(),
            decay != p.sequence_tensor_parallel(),
        )
    });
    let mut placed = Vec::new();
    let mut count = 0;
    for parameter in parameters {
        if parameter.axes.iter().filter(|a| a.parallel()).count() > 1 {
            return Err(LayoutError::Split {
                parameter: parameter.name,
                message: "more than one tensor-parallel axis".into(),
            });
        }
        let local_shape = parameter
            .axes
            .iter()
            .map(|axis| local_size(axis, parallelism.tensor_parallel))
            .collect::<Result<Vec<usize>, String>>()
            .map_err(|message| LayoutError::Split {
                parameter: parameter.name.clone(),
                message,
            })?;
        let end = local_shape
            .iter()
            .try_fold(1usize, |total, size| total.checked_mul(*size))
            .and_then(|numel| numel.checked_add(count))
            .filter(|end| {
                end.checked_add(parallelism.data_parallel * SHARD_PAD_TO_MULTIPLE)
                    .is_some()
            })
            .ok_or_else(|| LayoutError::Split {
                parameter: parameter.name.clone(),
                message: "the stage's size does not fit in memory addresses".into(),
            })?;
        placed.push(Placed {
            parameter,
            local_shape,
            begin: count,
            end,
        });
        count = end;
    }
    let mut group = Group {
        name,
        frozen,
        parameters: placed,
        count,
        shard_size: 0,
    };
    group.shard_size = (count + group.global_pad(parallelism.data_parallel)) / parallelism.data_parallel;
    Ok(group)
}

/// Per tied group (named by its stored parameter): the stage storing it and the pipeline ranks of
/// every stage using it.
fn tied_groups(
    layers: &[EngineLayer],
    layer_stage: &BTreeMap<String, usize>,
    pipeline: usize,
) -> Result<Vec<(usize, BTreeSet<usize>)>, LayoutError> {
    let mut groups: BTreeMap<&str, (usize, BTreeSet<usize>)> = BTreeMap::new();
    for parameter in layers.iter().flat_map(|l| &l.parameters) {
        let Some(main) = &parameter.tied_to else { continue };
        let (Some(&main_stage), Some(&stage)) = (layer_stage.get(main), layer_stage.get(&parameter.name)) else {
            return Err(LayoutError::Tied {
                parameter: parameter.name.clone(),
                main: main.clone(),
            });
        };
        if stage < main_stage {
            return Err(LayoutError::Tied {
                parameter: parameter.name.clone(),
                main: main.clone(),
            });
        }
        let entry = groups
            .entry(main)
            .or_insert_with(|| (main_stage, BTreeSet::from([main_stage % pipeline])));
        entry.1.insert(stage % pipeline);
    }
    Ok(groups.into_values().collect())
}

/// An axis's size on one tensor rank (the length of [`local_to_global`]'s map, computed without
/// building it).
fn local_size(axis: &Axis, tensor_parallel: usize) -> Result<usize, String> {
    let too_large = || "its size does not fit in memory addresses".to_string();
    if tensor_parallel == 1 || !axis.parallel() {
        if let Axis::Concat(parts) = axis
            && tensor_parallel > 1
            && parts.iter().any(Axis::parallel)
        {
            return Err("concatenated parts disagree on tensor parallelism".into());
        }
        return checked_size(axis).ok_or_else(too_large);
    }
    match axis {
        Axis::Plain { size, .. } => {
            if !size.is_multiple_of(tensor_parallel) {
                return Err(format!(
                    "an axis of {size} does not split over {tensor_parallel} tensor ranks"
                ));
            }
            Ok(size / tensor_parallel)
        }
        Axis::Product(factors) => factors.iter().try_fold(1usize, |total, factor| {
            total
                .checked_mul(local_size(factor, tensor_parallel)?)
                .ok_or_else(too_large)
        }),
        Axis::Concat(parts) => {
            if !parts.iter().all(Axis::parallel) {
                return Err("concatenated parts disagree on tensor parallelism".into());
            }
            parts.iter().try_fold(0usize, |total, part| {
                total
                    .checked_add(local_size(part, tensor_parallel)?)
                    .ok_or_else(too_large)
            })
        }
    }
}

/// The global size, `None` when it overflows.
fn checked_size(axis: &Axis) -> Option<usize> {
    match axis {
        Axis::Plain { size, .. } => Some(*size),
        Axis::Product(factors) => factors.iter().try_fold(1usize, |t, f| t.checked_mul(checked_size(f)?)),
        Axis::Concat(parts) => parts.iter().try_fold(0usize, |t, p| t.checked_add(checked_size(p)?)),
    }
}

/// For tensor rank `rank`, the global index of each local index of `axis`.
fn local_to_global(axis: &Axis, tensor_parallel: usize, rank: usize) -> Result<Vec<usize>, String> {
    if tensor_parallel == 1 || !axis.parallel() {
        if let Axis::Concat(parts) = axis
            && tensor_parallel > 1
            && parts.iter().any(Axis::parallel)
        {
            return Err("concatenated parts disagree on tensor parallelism".into());
        }
        return Ok((0..axis.size()).collect());
    }
    match axis {
        Axis::Plain { size, .. } => {
            if !size.is_multiple_of(tensor_parallel) {
                return Err(format!(
                    "an axis of {size} does not split over {tensor_parallel} tensor ranks"
                ));
            }
            let local = size / tensor_parallel;
            Ok((rank * local..(rank + 1) * local).collect())
        }
        Axis::Product(factors) => {
            let maps = factors
                .iter()
                .map(|f| local_to_global(f, tensor_parallel, rank))
                .collect::<Result<Vec<_>, _>>()?;
            // Row-major strides of the global factors.
            let mut strides = vec![1; factors.len()];
            for i in (0..factors.len().saturating_sub(1)).rev() {
                strides[i] = strides[i + 1] * factors[i + 1].size();
            }
            let mut out = vec![0];
            for (map, stride) in maps.iter().zip(&strides) {
                out = out
                    .iter()
                    .flat_map(|base| map.iter().map(move |g| base + g * stride))
                    .collect();
            }
            Ok(out)
        }
        Axis::Concat(parts) => {
            if !parts.iter().all(Axis::parallel) {
                return Err("concatenated parts disagree on tensor parallelism".into());
            }
            let mut out = Vec::new();
            let mut offset = 0;
            for part in parts {
                out.extend(
                    local_to_global(part, tensor_parallel, rank)?
                        .into_iter()
                        .map(|g| g + offset),
                );
                offset += part.size();
            }
            Ok(out)
        }
    }
}

/// The local tensor of `parameter` on tensor rank `rank`, as runs `(local, global, len)` of
/// elements contiguous on both sides, in local order.
pub(crate) fn local_runs(
    parameter: &Parameter,
    tensor_parallel: usize,
    rank: usize,
) -> Result<Vec<(usize, usize, usize)>, String> {
    let global: Vec<usize> = parameter.axes.iter().map(Axis::size).collect();
    let numel: usize = global.iter().product();
    let split = parameter.axes.iter().position(Axis::parallel);
    let Some(axis) = split.filter(|_| tensor_parallel > 1) else {
        return Ok(if numel == 0 { Vec::new() } else { vec![(0, 0, numel)] });
    };
    let map = local_to_global(&parameter.axes[axis], tensor_parallel, rank)?;
    let outer: usize = global[..axis].iter().product();
    let inner: usize = global[axis + 1..].iter().product();
    // Consecutive local indices that stay consecutive globally.
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for (local, &target) in map.iter().enumerate() {
        match spans.last_mut() {
            Some((start, first, len)) if *start + *len == local && *first + *len == target => *len += 1,
            _ => spans.push((local, target, 1)),
        }
    }
    let (local_size, global_size) = (map.len(), global[axis]);
    let mut runs = Vec::with_capacity(outer * spans.len());
    for o in 0..outer {
        for &(local, target, len) in &spans {
            runs.push((
                (o * local_size + local) * inner,
                (o * global_size + target) * inner,
                len * inner,
            ));
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parameter(name: &str, axes: Vec<Axis>) -> Parameter {
        Parameter {
            name: name.into(),
            axes,
            weight_decay: true,
            frozen: false,
            sequence_parallel_allowed: true,
            tied_to: None,
        }
    }

    /// Every global element is produced exactly once across the tensor ranks.
    fn assert_covers(parameter: &Parameter, tensor_parallel: usize) {
        let numel: usize = parameter.shape().iter().product();
        let mut seen = vec![0; numel];
        for rank in 0..tensor_parallel {
            let runs = local_runs(parameter, tensor_parallel, rank).unwrap();
            let mut next_local = 0;
            for (local, global, len) in runs {
                assert_eq!(local, next_local, "runs are in local order");
                next_local += len;
                for count in &mut seen[global..global + len] {
                    *count += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }

    #[test]
    fn key_value_ranks_hold_their_key_then_value_slices() {
        let per_group = Axis::Product(vec![Axis::split(2), Axis::fixed(3)]);
        let axis = Axis::Concat(vec![per_group.clone(), per_group]);
        assert_eq!(local_to_global(&axis, 2, 0).unwrap(), [0, 1, 2, 6, 7, 8]);
        assert_eq!(local_to_global(&axis, 2, 1).unwrap(), [3, 4, 5, 9, 10, 11]);
        let weight = parameter("kv", vec![axis, Axis::fixed(4)]);
        assert_eq!(
            local_runs(&weight, 2, 1).unwrap(),
            [(0, 12, 12), (12, 36, 12)],
            "rows 3..6 then 9..12 of a [12, 4] weight"
        );
        assert_covers(&weight, 2);
    }

    #[test]
    fn a_split_inner_axis_gives_one_run_per_row() {
        let dense = parameter(
            "dense",
            vec![Axis::fixed(3), Axis::Product(vec![Axis::split(4), Axis::fixed(2)])],
        );
        assert_eq!(local_runs(&dense, 2, 1).unwrap(), [(0, 4, 4), (4, 12, 4), (8, 20, 4)]);
        assert_covers(&dense, 2);
    }

    #[rstest]
    #[case(Axis::Product(vec![Axis::fixed(3), Axis::Concat(vec![Axis::split(4), Axis::split(4)])]), 2)]
    #[case(Axis::Product(vec![Axis::fixed(1), Axis::split(4), Axis::fixed(2)]), 4)]
    #[case(Axis::Concat(vec![
        Axis::Product(vec![Axis::split(2), Axis::fixed(2), Axis::fixed(4)]),
        Axis::Product(vec![Axis::split(2), Axis::fixed(4)]),
        Axis::Product(vec![Axis::split(2), Axis::fixed(4)]),
        Axis::Product(vec![Axis::split(2), Axis::fixed(2), Axis::fixed(4)]),
    ]), 2)]
    fn fused_axes_cover_every_element_once(#[case] axis: Axis, #[case] tensor_parallel: usize) {
        assert_covers(&parameter("p", vec![axis, Axis::fixed(3)]), tensor_parallel);
    }

    #[test]
    fn indivisible_and_inconsistent_splits_are_refused() {
        assert!(local_size(&Axis::split(6), 4).unwrap_err().contains("does not split"));
        let mixed = Axis::Concat(vec![Axis::fixed(4), Axis::split(4)]);
        assert!(local_size(&mixed, 2).unwrap_err().contains("disagree"));
    }

    #[rstest]
    #[case(0, 31, 1, 1)]
    #[case(0, 31, 2, 1)]
    #[case(1, 31, 2, 32)]
    #[case(0, 100, 2, 0)]
    #[case(1, 100, 2, 28)]
    fn padding_goes_to_the_last_shards(
        #[case] data_rank: usize,
        #[case] count: usize,
        #[case] data_parallel: usize,
        #[case] expected: usize,
    ) {
        let mut group = Group {
            name: "stage_0".into(),
            frozen: false,
            parameters: Vec::new(),
            count,
            shard_size: 0,
        };
        group.shard_size = (count + group.global_pad(data_parallel)) / data_parallel;
        assert_eq!(group.shard_pad(data_rank, data_parallel), expected);
        let total: usize = (0..data_parallel).map(|d| group.shard_pad(d, data_parallel)).sum();
        assert_eq!(total, group.global_pad(data_parallel));
    }

    #[test]
    fn padding_can_fill_a_whole_shard() {
        // 10 elements over 4 data ranks: 128 with padding, 32 each; ranks 1..4 are all padding
        // except rank 0's first 10.
        let group = Group {
            name: "stage_0".into(),
            frozen: false,
            parameters: Vec::new(),
            count: 10,
            shard_size: 32,
        };
        let pads: Vec<usize> = (0..4).map(|d| group.shard_pad(d, 4)).collect();
        assert_eq!(pads, [22, 32, 32, 32]);
    }

    #[test]
    fn stage_splits_follow_layer_weights() {
        let layer = |name: &str, weight: f64| EngineLayer {
            name: name.into(),
            weight,
            parameters: Vec::new(),
        };
        let layers = [
            layer("embeddings", 1000.0),
            layer("decoder.0", 1.0),
            layer("decoder.1", 1.0),
            layer("decoder.2", 1.0),
            layer("head", 1.0),
        ];
        assert_eq!(stage_splits(&layers, 1.0), [0, 1, 2, 3, 4, 5]);
        assert_eq!(stage_splits(&layers, 2.0), [0, 1, 3, 5]);
        assert_eq!(stage_splits(&layers, 3.0), [0, 1, 4, 5]);
    }
}
