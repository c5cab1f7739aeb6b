//! The parallel layout of a training run: the fields of Fast-LLM's `distributed` and `multi_stage`
//! configs that decide where a parameter lives.

use fastllm_config::{Map, Value};

/// The fields of a checkpoint's `config.distributed` and `config.multi_stage` that place
/// parameters, with Fast-LLM's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Parallelism {
    pub world_size: usize,
    pub tensor_parallel: usize,
    pub pipeline_parallel: usize,
    /// `world_size / (tensor_parallel · pipeline_parallel)`: the ZeRO sharding group.
    pub data_parallel: usize,
    /// Ranks of one data-parallel group are spread over pipeline groups rather than after them.
    pub pipeline_first: bool,
    pub sequence_data_parallel: usize,
    /// `multi_stage.layers_per_stage`: the layer weight per stage.
    pub layers_per_stage: f64,
    /// `multi_stage.zero_stage`, if set (it decides buffers, not where parameters are stored).
    pub zero_stage: Option<usize>,
    /// The safetensors dtype of every shard (`distributed.optimization_dtype`).
    pub shard_dtype: &'static str,
    /// Frozen weights are stored in the compute dtype instead
    /// (`multi_stage.store_frozen_weights_in_optimization_precision: false`).
    pub frozen_dtype: &'static str,
}

/// A rank's place in the parallel groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coordinates {
    pub tensor: usize,
    pub data: usize,
    pub pipeline: usize,
}

impl Parallelism {
    /// Reads the parallel layout from a checkpoint's `config` (metadata.yaml's `config`). Errors
    /// name the field.
    pub fn from_config(config: &Map) -> Result<Parallelism, String> {
        let distributed = Section::of(config, "distributed")?;
        let multi_stage = Section::of(config, "multi_stage")?;
        let world_size = distributed.positive("world_size", None)?;
        let tensor_parallel = distributed.positive("tensor_parallel", Some(1))?;
        let pipeline_parallel = distributed.positive("pipeline_parallel", Some(1))?;
        let sequence_data_parallel = distributed.positive("sequence_data_parallel", Some(1))?;
        // Offsets are computed in elements up to `data_parallel · 32` per group: keep them in range.
        let model_parallel = tensor_parallel
            .checked_mul(pipeline_parallel)
            .filter(|_| world_size.checked_mul(super::SHARD_PAD_TO_MULTIPLE).is_some())
            .ok_or_else(|| format!("distributed.world_size {world_size}: too many ranks"))?;
        if !world_size.is_multiple_of(model_parallel) {
            return Err(format!(
                "distributed.world_size {world_size} is not a multiple of tensor_parallel × pipeline_parallel = {model_parallel}"
            ));
        }
        let data_parallel = world_size / model_parallel;
        if !data_parallel.is_multiple_of(sequence_data_parallel) {
            return Err(format!(
                "the data-parallel size {data_parallel} is not a multiple of distributed.sequence_data_parallel {sequence_data_parallel}"
            ));
        }
        let stages_per_pipeline_stage = multi_stage.positive("stages_per_pipeline_stage", Some(1))?;
        if stages_per_pipeline_stage != 1 {
            return Err(format!(
                "multi_stage.stages_per_pipeline_stage is {stages_per_pipeline_stage}; Fast-LLM only accepts 1"
            ));
        }
        let layers_per_stage = multi_stage
            .field("layers_per_stage", "a positive number", |value| match value {
                Value::Int(i) if *i > 0 => Some(*i as f64),
                Value::Float(f) if *f > 0.0 => Some(*f),
                _ => None,
            })?
            .unwrap_or(1.0);
        let zero_stage = multi_stage.field("zero_stage", "1, 2 or 3", |value| match value {
            Value::Int(i @ 1..=3) => Some(*i as usize),
            _ => None,
        })?;
        let pipeline_first = distributed.field("pipeline_first", "a bool", bool_of)?.unwrap_or(false);
        let shard_dtype = distributed.data_type("optimization_dtype")?;
        let store_frozen_in_optimization_precision = multi_stage
            .field("store_frozen_weights_in_optimization_precision", "a bool", bool_of)?
            .unwrap_or(true);
        let frozen_dtype = if store_frozen_in_optimization_precision {
            shard_dtype
        } else {
            distributed.data_type("compute_dtype")?
        };
        Ok(Parallelism {
            world_size,
            tensor_parallel,
            pipeline_parallel,
            data_parallel,
            pipeline_first,
            sequence_data_parallel,
            layers_per_stage,
            zero_stage,
            shard_dtype,
            frozen_dtype,
        })
    }

    /// The groups rank `rank` belongs to.
    pub fn coordinates(&self, rank: usize) -> Coordinates {
        let model_rank = rank / self.tensor_parallel;
        let (data, pipeline) = if self.pipeline_first {
            (model_rank / self.pipeline_parallel, model_rank % self.pipeline_parallel)
        } else {
            (model_rank % self.data_parallel, model_rank / self.data_parallel)
        };
        Coordinates {
            tensor: rank % self.tensor_parallel,
            data,
            pipeline,
        }
    }

    /// The rank at `coordinates`.
    pub fn rank(&self, coordinates: Coordinates) -> usize {
        let model_rank = if self.pipeline_first {
            coordinates.pipeline + self.pipeline_parallel * coordinates.data
        } else {
            coordinates.data + self.data_parallel * coordinates.pipeline
        };
        coordinates.tensor + self.tensor_parallel * model_rank
    }
}

/// One of the checkpoint config's sections (`distributed`, `multi_stage`), named in messages.
#[derive(Clone, Copy)]
struct Section<'a> {
    name: &'a str,
    fields: &'a Map,
}

impl<'a> Section<'a> {
    /// The section `name` of `config` (empty when absent or null).
    fn of(config: &'a Map, name: &'a str) -> Result<Self, String> {
        static EMPTY: std::sync::OnceLock<Map> = std::sync::OnceLock::new();
        let fields = match config.get(name) {
            None | Some(Value::Null) => EMPTY.get_or_init(Map::new),
            Some(Value::Map(map)) => map,
            Some(other) => return Err(format!("{name}: expected a mapping, found {}", other.describe())),
        };
        Ok(Section { name, fields })
    }

    /// The value of `field` that `pick` accepts, `None` when absent or null; any other value is
    /// an error saying what was `expected`.
    fn field<T>(
        self,
        field: &str,
        expected: &str,
        pick: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, String> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => pick(value)
                .map(Some)
                .ok_or_else(|| format!("{}.{field}: expected {expected}, found {}", self.name, value.describe())),
        }
    }

    /// A positive integer `field`, `default` when absent (required when `None`).
    fn positive(self, field: &str, default: Option<usize>) -> Result<usize, String> {
        let name = self.name;
        let value = self.field(field, "a positive integer", |value| match value {
            Value::Int(i) if *i > 0 => Some(*i),
            _ => None,
        })?;
        match (value, default) {
            (Some(i), _) => usize::try_from(i).map_err(|_| format!("{name}.{field}: {i} is too large")),
            (None, Some(default)) => Ok(default),
            (None, None) => Err(format!("{name}.{field} is missing")),
        }
    }

    /// A Fast-LLM `DataType` field (canonical, short or prefixed name) as a safetensors dtype.
    fn data_type(self, field: &str) -> Result<&'static str, String> {
        let name = self.field(field, "a data type name", |value| match value {
            Value::Str(name) => Some(name.as_str()),
            _ => None,
        })?;
        let Some(name) = name else {
            return Ok("F32");
        };
        data_type(name).ok_or_else(|| format!("{}.{field}: unknown data type `{name}`", self.name))
    }
}

fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

/// A Fast-LLM `DataType` name (canonical, short or prefixed) as a safetensors dtype.
fn data_type(name: &str) -> Option<&'static str> {
    let bare = name.rsplit_once('.').map_or(name, |(_, bare)| bare);
    Some(match bare {
        "float64" | "fp64" => "F64",
        "float32" | "fp32" => "F32",
        "float16" | "fp16" => "F16",
        "bfloat16" | "bf16" => "BF16",
        "int64" => "I64",
        "int32" => "I32",
        "int16" => "I16",
        "int8" => "I8",
        "uint64" => "U64",
        "uint32" => "U32",
        "uint16" => "U16",
        "uint8" => "U8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parallelism(json: &str) -> Result<Parallelism, String> {
        match Value::from_json_str(json).unwrap() {
            Value::Map(map) => Parallelism::from_config(&map),
            _ => unreachable!(),
        }
    }

    #[rstest]
    #[case(false)]
    #[case(true)]
    fn ranks_and_coordinates_are_inverse(#[case] pipeline_first: bool) {
        let layout = parallelism(&format!(
            r#"{{"distributed": {{"world_size": 24, "tensor_parallel": 2, "pipeline_parallel": 3,
                 "pipeline_first": {pipeline_first}}}}}"#
        ))
        .unwrap();
        assert_eq!(layout.data_parallel, 4);
        let mut seen = std::collections::BTreeSet::new();
        for rank in 0..24 {
            let at = layout.coordinates(rank);
            assert!(at.tensor < 2 && at.data < 4 && at.pipeline < 3);
            assert_eq!(layout.rank(at), rank);
            seen.insert((at.tensor, at.data, at.pipeline));
        }
        assert_eq!(seen.len(), 24);
    }

    #[test]
    fn fast_llm_rank_order() {
        // Tensor ranks are neighbours; then data ranks (or pipeline ranks with pipeline_first).
        let layout =
            parallelism(r#"{"distributed": {"world_size": 8, "tensor_parallel": 2, "pipeline_parallel": 2}}"#).unwrap();
        let at = layout.coordinates(5);
        assert_eq!((at.tensor, at.data, at.pipeline), (1, 0, 1));
        let layout = parallelism(
            r#"{"distributed": {"world_size": 8, "tensor_parallel": 2, "pipeline_parallel": 2, "pipeline_first": true}}"#,
        )
        .unwrap();
        let at = layout.coordinates(5);
        assert_eq!((at.tensor, at.data, at.pipeline), (1, 1, 0));
    }

    #[rstest]
    #[case(r#"{"distributed": {}}"#, "distributed.world_size is missing")]
    #[case(r#"{"distributed": {"world_size": 6, "tensor_parallel": 4}}"#, "not a multiple")]
    #[case(
        r#"{"distributed": {"world_size": 2, "tensor_parallel": true}}"#,
        "tensor_parallel: expected a positive integer"
    )]
    #[case(
        r#"{"distributed": {"world_size": 2, "optimization_dtype": "float8"}}"#,
        "unknown data type `float8`"
    )]
    #[case(
        r#"{"distributed": {"world_size": 2}, "multi_stage": {"stages_per_pipeline_stage": 2}}"#,
        "only accepts 1"
    )]
    #[case(
        r#"{"distributed": {"world_size": 2}, "multi_stage": 3}"#,
        "multi_stage: expected a mapping, found int 3"
    )]
    #[case(
        r#"{"distributed": {"world_size": 1180591620717411303424}}"#,
        "distributed.world_size: 1180591620717411303424 is too large"
    )]
    #[case(
        r#"{"distributed": {"world_size": 2}, "multi_stage": {"layers_per_stage": 0}}"#,
        "multi_stage.layers_per_stage: expected a positive number, found int 0"
    )]
    #[case(
        r#"{"distributed": {"world_size": 2}, "multi_stage": {"zero_stage": 4}}"#,
        "multi_stage.zero_stage: expected 1, 2 or 3, found int 4"
    )]
    #[case(
        r#"{"distributed": {"world_size": 2, "pipeline_first": 1}}"#,
        "distributed.pipeline_first: expected a bool, found int 1"
    )]
    #[case(
        r#"{"distributed": {"world_size": 2}, "multi_stage": {"store_frozen_weights_in_optimization_precision": 0}}"#,
        "multi_stage.store_frozen_weights_in_optimization_precision: expected a bool, found int 0"
    )]
    #[case(
        r#"{"distributed": {"world_size": 2, "compute_dtype": 16}, "multi_stage": {"store_frozen_weights_in_optimization_precision": false}}"#,
        "distributed.compute_dtype: expected a data type name, found int 16"
    )]
    fn bad_configs_are_named(#[case] json: &str, #[case] message: &str) {
        let error = parallelism(json).unwrap_err();
        assert!(error.contains(message), "{error}");
    }

    #[test]
    fn absent_and_null_fields_take_fast_llms_defaults() {
        let layout = parallelism(
            r#"{"distributed": {"world_size": 2, "pipeline_first": null}, "multi_stage": {"zero_stage": null}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                layout.tensor_parallel,
                layout.pipeline_parallel,
                layout.sequence_data_parallel
            ),
            (1, 1, 1)
        );
        assert_eq!(
            (layout.layers_per_stage, layout.zero_stage, layout.pipeline_first),
            (1.0, None, false)
        );
        assert_eq!((layout.shard_dtype, layout.frozen_dtype), ("F32", "F32"));
    }

    #[test]
    fn dtypes_follow_fast_llm_names() {
        let layout = parallelism(
            r#"{"distributed": {"world_size": 1, "optimization_dtype": "bf16", "compute_dtype": "torch.float16"},
                "multi_stage": {"store_frozen_weights_in_optimization_precision": false}}"#,
        )
        .unwrap();
        assert_eq!((layout.shard_dtype, layout.frozen_dtype), ("BF16", "F16"));
    }
}
