//! `--layout`: the parallel layout a distributed checkpoint is written for, and the
//! `config.distributed` / `config.multi_stage` it implies.
//!
//! Names follow Fast-LLM 7d61a1ba: `tp`, `pp`, `sdp` are `DistributedConfig`'s
//! `tensor_parallel`, `pipeline_parallel`, `sequence_data_parallel`; `pipeline_first` its
//! rank order; `dp` the data-parallel size (`world_size / (tp·pp)`); `zero` and
//! `layers_per_stage` are `MultiStageConfig`'s `zero_stage` and `layers_per_stage`. A key left out
//! takes Fast-LLM's default (1 for the sizes, `pipeline_first` false, `zero_stage` unset,
//! `layers_per_stage` 1.0), and a default is not written, as Fast-LLM writes only explicit fields.

use std::str::FromStr;

use fastllm_config::{Map, Value};

/// A parallel layout to write, from `--layout tp=2,pp=2,dp=2,zero=3[,sdp=N][,pipeline_first][,layers_per_stage=N]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutSpec {
    pub tensor_parallel: usize,
    pub pipeline_parallel: usize,
    pub data_parallel: usize,
    pub sequence_data_parallel: usize,
    pub pipeline_first: bool,
    pub zero_stage: Option<u8>,
    pub layers_per_stage: Option<f64>,
}

impl Default for LayoutSpec {
    fn default() -> Self {
        LayoutSpec {
            tensor_parallel: 1,
            pipeline_parallel: 1,
            data_parallel: 1,
            sequence_data_parallel: 1,
            pipeline_first: false,
            zero_stage: None,
            layers_per_stage: None,
        }
    }
}

/// Why a `--layout` is refused, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("--layout: unknown key `{key}` (expected tp, pp, dp, sdp, zero, pipeline_first, layers_per_stage)")]
    UnknownKey { key: String },
    #[error("--layout: `{key}` is given twice")]
    Repeated { key: String },
    #[error("--layout: `{key}={value}`: expected {expected}")]
    Value {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("--layout: `{key}` needs a value ({key}=N)")]
    MissingValue { key: &'static str },
    #[error(
        "--layout: dp={data_parallel} is not a multiple of sdp={sequence_data_parallel} \
         (Fast-LLM's sequence_data_parallel splits the data-parallel group)"
    )]
    SequenceData {
        data_parallel: usize,
        sequence_data_parallel: usize,
    },
    #[error("--layout: tp × pp × dp is too large a world")]
    TooLarge,
}

/// The most ranks a layout may have: far beyond any run, and small enough that every offset the
/// layout computes stays in range.
const MAX_WORLD: usize = 1 << 20;

impl FromStr for LayoutSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        let mut spec = LayoutSpec::default();
        let mut seen: Vec<&str> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key.trim(), Some(value.trim())),
                None => (item, None),
            };
            let known = ["tp", "pp", "dp", "sdp", "zero", "pipeline_first", "layers_per_stage"];
            let Some(key) = known.iter().copied().find(|k| *k == key) else {
                return Err(SpecError::UnknownKey { key: key.to_string() });
            };
            if seen.contains(&key) {
                return Err(SpecError::Repeated { key: key.to_string() });
            }
            seen.push(key);
            let size = |value: Option<&str>| -> Result<usize, SpecError> {
                let value = value.ok_or(SpecError::MissingValue { key })?;
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_WORLD).contains(n))
                    .ok_or_else(|| SpecError::Value {
                        key,
                        value: value.to_string(),
                        expected: "a positive integer",
                    })
            };
            match key {
                "tp" => spec.tensor_parallel = size(value)?,
                "pp" => spec.pipeline_parallel = size(value)?,
                "dp" => spec.data_parallel = size(value)?,
                "sdp" => spec.sequence_data_parallel = size(value)?,
                "zero" => {
                    let value = value.ok_or(SpecError::MissingValue { key })?;
                    spec.zero_stage = Some(match value {
                        "1" => 1,
                        "2" => 2,
                        "3" => 3,
                        _ => {
                            return Err(SpecError::Value {
                                key,
                                value: value.to_string(),
                                expected: "a ZeRO stage: 1, 2 or 3",
                            });
                        }
                    });
                }
                "pipeline_first" => {
                    spec.pipeline_first = match value {
                        None | Some("true" | "1") => true,
                        Some("false" | "0") => false,
                        Some(other) => {
                            return Err(SpecError::Value {
                                key,
                                value: other.to_string(),
                                expected: "no value, true or false",
                            });
                        }
                    }
                }
                _ => {
                    let value = value.ok_or(SpecError::MissingValue {
                        key: "layers_per_stage",
                    })?;
                    let number = value
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite() && *n > 0.0)
                        .ok_or_else(|| SpecError::Value {
                            key: "layers_per_stage",
                            value: value.to_string(),
                            expected: "a positive number",
                        })?;
                    spec.layers_per_stage = Some(number);
                }
            }
        }
        if !spec.data_parallel.is_multiple_of(spec.sequence_data_parallel) {
            return Err(SpecError::SequenceData {
                data_parallel: spec.data_parallel,
                sequence_data_parallel: spec.sequence_data_parallel,
            });
        }
        spec.world_size_checked().ok_or(SpecError::TooLarge)?;
        Ok(spec)
    }
}

impl LayoutSpec {
    /// `tp · pp · dp`.
    pub fn world_size(&self) -> usize {
        self.world_size_checked().unwrap_or(usize::MAX)
    }

    fn world_size_checked(&self) -> Option<usize> {
        self.tensor_parallel
            .checked_mul(self.pipeline_parallel)?
            .checked_mul(self.data_parallel)
            .filter(|world| *world <= MAX_WORLD)
    }

    /// The model config (metadata.yaml's `config` without `base_model` and `type`) of rank
    /// `rank` under this layout. `kept` is a training checkpoint's own `config`: its
    /// `distributed` and `multi_stage` fields that do not place parameters (dtypes, seeds, ...)
    /// are kept; the placing ones are this layout's.
    pub fn model_config(&self, rank: usize, kept: Option<&Map>) -> Map {
        const PLACING: [&str; 7] = [
            "world_size",
            "rank",
            "local_world_size",
            "tensor_parallel",
            "pipeline_parallel",
            "sequence_data_parallel",
            "pipeline_first",
        ];
        let section = |name: &str| -> Map {
            match kept.and_then(|config| config.get(name)) {
                Some(Value::Map(map)) => map.clone(),
                _ => Map::new(),
            }
        };
        let mut distributed = section("distributed");
        distributed.retain(|key, _| !PLACING.contains(&key.as_str()));
        let world = self.world_size() as i128;
        // Every process of the written world on one node: Fast-LLM needs the local world to be a
        // multiple of the tensor-parallel size, and the loading run uses its own anyway.
        distributed.insert("local_world_size".into(), Value::Int(world));
        distributed.insert("rank".into(), Value::Int(rank as i128));
        distributed.insert("world_size".into(), Value::Int(world));
        let sizes = [
            ("tensor_parallel", self.tensor_parallel),
            ("pipeline_parallel", self.pipeline_parallel),
            ("sequence_data_parallel", self.sequence_data_parallel),
        ];
        for (key, size) in sizes {
            if size != 1 {
                distributed.insert(key.into(), Value::Int(size as i128));
            }
        }
        if self.pipeline_first {
            distributed.insert("pipeline_first".into(), Value::Bool(true));
        }
        let mut multi_stage = section("multi_stage");
        // Buffer counts follow from the ZeRO stage; an old run's would contradict the new one.
        for key in [
            "zero_stage",
            "layers_per_stage",
            "num_weight_buffers",
            "num_grad_buffers",
        ] {
            multi_stage.remove(key);
        }
        if let Some(zero) = self.zero_stage {
            multi_stage.insert("zero_stage".into(), Value::Int(zero.into()));
        }
        if let Some(layers) = self.layers_per_stage {
            multi_stage.insert("layers_per_stage".into(), Value::Float(layers));
        }
        let mut config = Map::new();
        config.insert("distributed".into(), Value::Map(distributed));
        if !multi_stage.is_empty() {
            config.insert("multi_stage".into(), Value::Map(multi_stage));
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("tp=2,pp=2,dp=2,zero=3", LayoutSpec { tensor_parallel: 2, pipeline_parallel: 2, data_parallel: 2, zero_stage: Some(3), ..Default::default() })]
    #[case("dp=4,sdp=2,pipeline_first,layers_per_stage=2", LayoutSpec { data_parallel: 4, sequence_data_parallel: 2, pipeline_first: true, layers_per_stage: Some(2.0), ..Default::default() })]
    #[case("", LayoutSpec::default())]
    #[case(" tp = 4 , pipeline_first=false ", LayoutSpec { tensor_parallel: 4, ..Default::default() })]
    fn layouts_parse(#[case] text: &str, #[case] expected: LayoutSpec) {
        assert_eq!(text.parse::<LayoutSpec>().unwrap(), expected);
    }

    #[rstest]
    #[case("tensor=2", "unknown key `tensor`")]
    #[case("tp=2,tp=4", "`tp` is given twice")]
    #[case("tp=0", "`tp=0`: expected a positive integer")]
    #[case("tp", "`tp` needs a value")]
    #[case("zero=4", "`zero=4`: expected a ZeRO stage")]
    #[case("dp=3,sdp=2", "dp=3 is not a multiple of sdp=2")]
    #[case("layers_per_stage=-1", "expected a positive number")]
    #[case("pipeline_first=maybe", "expected no value, true or false")]
    #[case("tp=1048576,pp=2", "too large")]
    fn bad_layouts_name_the_key(#[case] text: &str, #[case] message: &str) {
        let error = text.parse::<LayoutSpec>().unwrap_err().to_string();
        assert!(error.contains(message), "{error}");
    }

    #[test]
    fn a_training_config_keeps_what_does_not_place_parameters() {
        let kept = match Value::from_yaml_str(
            "distributed: {world_size: 8, rank: 3, tensor_parallel: 2, compute_dtype: bfloat16, seed: 7}\n\
             multi_stage: {zero_stage: 3, num_weight_buffers: 2, layers_per_stage: 2.0, pipeline_delay: 0.5}",
        )
        .unwrap()
        {
            Value::Map(map) => map,
            _ => unreachable!(),
        };
        let spec: LayoutSpec = "pp=2,dp=2".parse().unwrap();
        let config = Value::Map(spec.model_config(1, Some(&kept)));
        let expected = Value::from_yaml_str(
            "distributed: {compute_dtype: bfloat16, seed: 7, local_world_size: 4, rank: 1, world_size: 4, \
             pipeline_parallel: 2}\nmulti_stage: {pipeline_delay: 0.5}",
        )
        .unwrap();
        assert_eq!(config, expected);
    }
}
