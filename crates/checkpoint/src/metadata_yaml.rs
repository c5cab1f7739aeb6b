//! Reading the documents a checkpoint describes itself with: Fast-LLM's `metadata.yaml`, whose
//! `format` says which layout the directory holds (checked here, once, for every reader of it),
//! and typed lookups of any parsed document's keys, so that a key present with a value of the
//! wrong type is reported as such instead of as missing.

use std::path::Path;

use fastllm_config::{Map, ModelKind, Value};

use crate::CheckpointError;
use crate::read::read_document;

/// The checkpoint layouts a Fast-LLM `metadata.yaml` declares in its `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetadataFormat {
    /// `fast_llm`: the state dict (`<parameter>/weights` tensors listed in `state_index`).
    StateDict,
    /// `distributed`: a training checkpoint, one `rank_<r>.safetensors` per rank.
    Distributed,
}

impl MetadataFormat {
    const ALL: [MetadataFormat; 2] = [MetadataFormat::StateDict, MetadataFormat::Distributed];

    /// Its `format` value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            MetadataFormat::StateDict => "fast_llm",
            MetadataFormat::Distributed => "distributed",
        }
    }

    /// What it is, and the `--from` that reads it.
    fn description(self) -> &'static str {
        match self {
            MetadataFormat::StateDict => "a state dict, read with --from fast_llm",
            MetadataFormat::Distributed => "a distributed training checkpoint, read with --from fast_llm_distributed",
        }
    }

    /// The format `metadata` declares. Fast-LLM takes a missing `format` for `distributed`, a
    /// default from before the key existed (checkpoints older than any this tool reads), so here
    /// it is refused like any value this tool does not read.
    fn of(metadata: &Map) -> Result<MetadataFormat, String> {
        let accepted = || {
            Self::ALL
                .iter()
                .map(|f| format!("`{}` ({})", f.name(), f.description()))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let expected = format!("a string, {}", accepted());
        let Some(name) = string(metadata, "format", &expected)? else {
            return Err(format!("no `format` (expected {})", accepted()));
        };
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| format!("`format` is `{name}`: this tool reads {}", accepted()))
    }
}

/// `dir/metadata.yaml`, parsed, with the format its `format` declares; with `expected`, any
/// other format is refused, naming the one it declares and the reading it needs.
pub(crate) fn read_metadata(
    dir: &Path,
    expected: Option<MetadataFormat>,
) -> Result<(Map, MetadataFormat), CheckpointError> {
    let path = dir.join("metadata.yaml");
    let metadata = read_document(&path)?;
    let format = MetadataFormat::of(&metadata).map_err(|message| CheckpointError::invalid(&path, message))?;
    match expected {
        Some(expected) if expected != format => Err(CheckpointError::invalid(
            &path,
            format!(
                "`format` is `{}`: {}, not `{}` ({})",
                format.name(),
                format.description(),
                expected.name(),
                expected.description()
            ),
        )),
        _ => Ok((metadata, format)),
    }
}

/// The model class `metadata.yaml` names in `model`.
pub(crate) fn model_kind(metadata: &Map) -> Result<ModelKind, String> {
    const EXPECTED: &str = "a model name (gpt or multimodal)";
    match string(metadata, "model", EXPECTED)? {
        Some(model) => ModelKind::from_name(model).ok_or_else(|| format!("unknown model `{model}`")),
        None => Err(format!("no `model` (expected {EXPECTED})")),
    }
}

/// The value at dotted `path` of `map`, read by `pick` (`None`: not the type `expected` says).
/// Absent is `Ok(None)`; present with another type, or under a parent that is not a mapping, is
/// an error naming the path, what was expected and what was found.
pub(crate) fn lookup<'a, T>(
    map: &'a Map,
    path: &str,
    expected: &str,
    pick: impl FnOnce(&'a Value) -> Option<T>,
) -> Result<Option<T>, String> {
    let mut current = map;
    let mut walked = 0;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let Some(value) = current.get(segment) else {
            return Ok(None);
        };
        walked += segment.len() + usize::from(walked > 0);
        let at = &path[..walked];
        if segments.peek().is_none() {
            return pick(value)
                .map(Some)
                .ok_or_else(|| format!("`{at}`: expected {expected}, found {}", value.describe()));
        }
        current = value
            .as_map()
            .ok_or_else(|| format!("`{at}`: expected a mapping, found {}", value.describe()))?;
    }
    Ok(None)
}

/// A string at dotted `path` (see [`lookup`]).
pub(crate) fn string<'a>(map: &'a Map, path: &str, expected: &str) -> Result<Option<&'a str>, String> {
    lookup(map, path, expected, |value| match value {
        Value::Str(text) => Some(text.as_str()),
        _ => None,
    })
}

/// A mapping at dotted `path` (see [`lookup`]).
pub(crate) fn mapping<'a>(map: &'a Map, path: &str) -> Result<Option<&'a Map>, String> {
    lookup(map, path, "a mapping", Value::as_map)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;

    /// The mapping `yaml` writes (a test's metadata document, here and in the distributed
    /// reader's tests).
    pub(crate) fn map(yaml: &str) -> Map {
        match Value::from_yaml_str(yaml).unwrap() {
            Value::Map(map) => map,
            other => panic!("{yaml:?} is not a mapping: {other:?}"),
        }
    }

    #[rstest]
    #[case("format: fast_llm", Ok(MetadataFormat::StateDict))]
    #[case("format: distributed", Ok(MetadataFormat::Distributed))]
    #[case("format: huggingface", Err("`format` is `huggingface`: this tool reads `fast_llm`"))]
    #[case(
        "format: 3",
        Err("`format`: expected a string, `fast_llm` (a state dict, read with --from fast_llm) or")
    )]
    #[case("{}", Err("no `format` (expected `fast_llm`"))]
    fn formats(#[case] yaml: &str, #[case] expected: Result<MetadataFormat, &str>) {
        match (MetadataFormat::of(&map(yaml)), expected) {
            (Ok(found), Ok(expected)) => assert_eq!(found, expected),
            (Err(message), Err(expected)) => assert!(message.starts_with(expected), "{message}"),
            (found, expected) => panic!("{yaml}: {found:?}, expected {expected:?}"),
        }
    }

    #[rstest]
    #[case("a: {b: x}", Ok(Some("x")))]
    #[case("a: {}", Ok(None))]
    #[case("{}", Ok(None))]
    #[case("a: {b: 3}", Err("`a.b`: expected a name, found int 3"))]
    #[case("a: 3", Err("`a`: expected a mapping, found int 3"))]
    #[case("a: {b: 0.4}", Err("`a.b`: expected a name, found float 0.4"))]
    fn present_keys_of_another_type_are_not_missing(#[case] yaml: &str, #[case] expected: Result<Option<&str>, &str>) {
        let map = map(yaml);
        let found = string(&map, "a.b", "a name");
        assert_eq!(found, expected.map_err(String::from), "{yaml}");
    }
}
