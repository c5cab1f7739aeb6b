//! The format registry: handlers registered from family crates with [`register_format!`] (an
//! `inventory` submission), and the whole-config import/export each handler performs.

use std::sync::{Arc, OnceLock, RwLock};

use fastllm_config::{BaseModelConfig, Map, ModelKind, Value, load_base_model_or};

use crate::HfClass;
use crate::HfLayout;
use crate::complete::V5_GENERATION_KEYS;
use crate::coverage::{ClaimTree, KeySet, Reach, hf_claims, read_claims};
use crate::dict::show;
use crate::engine::{Exporter, Importer};
use crate::fl::Fl;
use crate::hint::{self, Hint};
use crate::section::Section;
use crate::unconverted::Unconverted;
use crate::{ConvertError, Direction, Problem};

/// What a handler converts with, built once on first use.
pub struct Converter {
    /// The base-model section (root of the declaration tree).
    pub base_model: Arc<Section>,
    /// How the format's HF config class loads a `config.json`.
    pub hf_class: HfClass,
    /// Fast-LLM base-model dicts the format can hold, for `cargo xtask coverage` round trips.
    pub samples: Vec<Value>,
}

/// One registered checkpoint format.
pub struct Handler {
    /// The `--format` name.
    pub name: &'static str,
    /// The family crate that registers it.
    pub family: &'static str,
    /// HF `model_type`s read; the first is written.
    pub model_types: &'static [&'static str],
    /// The HF architecture (`architectures == [architecture]`).
    pub architecture: &'static str,
    /// `auto_map` entries written on export (formats with custom modeling code).
    pub auto_map: &'static [(&'static str, &'static str)],
    /// The Fast-LLM model the format holds.
    pub model: ModelKind,
    /// Files a checkpoint of this format carries besides config and weights.
    pub extra_files: &'static [&'static str],
    /// The converter (a `OnceLock`-backed function in the family crate).
    pub converter: fn() -> &'static Converter,
}

inventory::collect!(Handler);

/// Registers a format: its [`Handler`], and its [`Converter`] built once, on first use.
///
/// ```ignore
/// fastllm_core::register_format! {
///     "mistral" in FAMILY,
///     architecture: "MistralForCausalLM",
///     base_model: tables::mistral(),
///     hf_class: classes::mistral(),
///     samples: samples::mistral(),
/// }
/// ```
///
/// Between the name and `architecture` may come `model_types: [..]` (the HF `model_type`s read,
/// the first written; default: the format's name); between `architecture` and `base_model`, in
/// this order: `auto_map: [(class, target), ..]`, `model: MultiModal` (default `Gpt`) and
/// `extra_files: [..]` (default: none of each). `base_model` is an `Arc<Section>` or a
/// `Section`.
#[macro_export]
macro_rules! register_format {
    (
        $name:literal in $family:expr,
        $(model_types: [$($model_type:literal),+ $(,)?],)?
        architecture: $architecture:literal,
        $(auto_map: [$(($auto_class:literal, $auto_target:literal)),* $(,)?],)?
        $(model: $model:ident,)?
        $(extra_files: [$($file:literal),* $(,)?],)?
        base_model: $base_model:expr,
        hf_class: $hf_class:expr,
        samples: $samples:expr $(,)?
    ) => {
        const _: () = {
            fn converter() -> &'static $crate::Converter {
                static CONVERTER: ::std::sync::OnceLock<$crate::Converter> = ::std::sync::OnceLock::new();
                CONVERTER.get_or_init(|| $crate::Converter {
                    base_model: ::std::convert::Into::into($base_model),
                    hf_class: $hf_class,
                    samples: $samples,
                })
            }
            $crate::inventory::submit! {
                $crate::Handler {
                    name: $name,
                    family: $family,
                    model_types: $crate::__given_or!([$(&[$($model_type),+])?] &[$name]),
                    architecture: $architecture,
                    auto_map: &[$($(($auto_class, $auto_target)),*)?],
                    model: $crate::__given_or!(
                        [$($crate::config::ModelKind::$model)?] $crate::config::ModelKind::Gpt
                    ),
                    extra_files: &[$($($file),*)?],
                    converter,
                }
            }
        };
    };
}

/// The given tokens, or the default when none are given (for `register_format!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __given_or {
    ([] $($default:tt)+) => { $($default)+ };
    ([$($given:tt)+] $($default:tt)+) => { $($given)+ };
}

/// Keys every HF config may carry at any depth without being converted: transformers 4.57 and
/// 5.24 `PretrainedConfig` keys, the 4.x generation keys 5.x moved out
/// ([`V5_GENERATION_KEYS`]), legacy keys, and Fast-LLM's static allowlist.
pub const GENERIC_METADATA: &[&str] = &joined::<{ NON_GENERATION_METADATA.len() + V5_GENERATION_KEYS.len() }>(
    NON_GENERATION_METADATA,
    V5_GENERATION_KEYS,
);

/// [`GENERIC_METADATA`] but the generation keys.
const NON_GENERATION_METADATA: &[&str] = &[
    "_name_or_path",
    "architectures",
    "auto_map",
    "bos_token_id",
    "chunk_size_feed_forward",
    "decoder_start_token_id",
    "dtype",
    "eos_token_id",
    "id2label",
    "initializer_range",
    "is_encoder_decoder",
    "is_llama_config",
    "label2id",
    "mask_token_id",
    "max_position_embeddings",
    "model_type",
    "output_attentions",
    "output_hidden_states",
    "pad_token_id",
    "pretraining_tp",
    "problem_type",
    "return_dict",
    "sep_token_id",
    "torch_dtype",
    "transformers_version",
    "use_cache",
    "is_composition",
    "add_cross_attention",
    "cross_attention_hidden_size",
    "finetuning_task",
    "is_decoder",
    "prefix",
    "pruned_heads",
    "task_specific_params",
    "tf_legacy_loss",
    "tie_encoder_decoder",
    "tokenizer_class",
    "torchscript",
    "use_bfloat16",
];

/// `first` then `second`, as one array of their `N` names.
const fn joined<const N: usize>(first: &[&'static str], second: &[&'static str]) -> [&'static str; N] {
    let mut all = [""; N];
    let mut i = 0;
    while i < first.len() {
        all[i] = first[i];
        i += 1;
    }
    while i < N {
        all[i] = second[i - first.len()];
        i += 1;
    }
    all
}

/// What a converter's tables compile to for the per-call checks: built once per converter, on
/// its first use, like the converter itself.
struct Compiled {
    /// The HF claims of the declaration tree.
    claims: ClaimTree,
    /// The claims its import reads (converts or checks): what `--drop-key` may not drop.
    read: ClaimTree,
    /// `GENERIC_METADATA`, hashed: every HF key the claims leave open is looked up here.
    generic: KeySet,
}

/// The compiled form of `converter`. Converters are `'static` (built once in their family
/// crate's `OnceLock`), so their address identifies them for the life of the process.
fn compiled(converter: &'static Converter) -> &'static Compiled {
    static ALL: OnceLock<RwLock<Vec<(usize, &'static Compiled)>>> = OnceLock::new();
    let all = ALL.get_or_init(Default::default);
    let id = converter as *const Converter as usize;
    let find = |all: &[(usize, &'static Compiled)]| all.iter().find(|(c, _)| *c == id).map(|(_, c)| *c);
    if let Some(found) = find(&all.read().unwrap_or_else(|e| e.into_inner())) {
        return found;
    }
    let mut all = all.write().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = find(&all) {
        return found;
    }
    let generic = GENERIC_METADATA.iter().copied().collect();
    // One per registered format, kept for the life of the process like the converter.
    let built: &'static Compiled = Box::leak(Box::new(Compiled {
        claims: ClaimTree::new(&hf_claims(&converter.base_model)),
        read: ClaimTree::new(&read_claims(&converter.base_model)),
        generic,
    }));
    all.push((id, built));
    built
}

/// Every registered handler, sorted by name.
pub fn handlers() -> Vec<&'static Handler> {
    let mut all: Vec<&'static Handler> = inventory::iter::<Handler>.into_iter().collect();
    all.sort_by_key(|h| h.name);
    all
}

/// Registry consistency: names and model types are unique. Returns every clash.
pub fn registry_errors() -> Vec<String> {
    let all = handlers();
    let mut errors = Vec::new();
    for pair in all.windows(2) {
        if pair[0].name == pair[1].name {
            errors.push(format!(
                "format `{}` is registered twice (families `{}` and `{}`)",
                pair[0].name, pair[0].family, pair[1].family
            ));
        }
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for handler in &all {
        for model_type in handler.model_types {
            if let Some((_, other)) = seen.iter().find(|(t, _)| t == model_type) {
                errors.push(format!(
                    "model_type `{model_type}` is read by both `{other}` and `{}`",
                    handler.name
                ));
            }
            seen.push((model_type, handler.name));
        }
    }
    errors
}

/// The handler named `name`.
pub fn find(name: &str) -> Result<&'static Handler, ConvertError> {
    handlers()
        .into_iter()
        .find(|h| h.name == name)
        .ok_or_else(|| ConvertError::UnknownFormat {
            name: name.to_string(),
            known: handlers().iter().map(|h| h.name.to_string()).collect(),
        })
}

/// The handler reading the config's `model_type` (`--format auto`).
pub fn detect(hf: &Map) -> Result<&'static Handler, ConvertError> {
    let model_type = hf.get("model_type");
    let known = || {
        handlers()
            .iter()
            .flat_map(|h| h.model_types.iter().map(|t| t.to_string()))
            .collect()
    };
    let Some(Value::Str(model_type)) = model_type else {
        return Err(ConvertError::UnknownModelType {
            model_type: model_type.map(show).unwrap_or_else(|| "(missing)".into()),
            known: known(),
        });
    };
    handlers()
        .into_iter()
        .find(|h| h.model_types.contains(&model_type.as_str()))
        .ok_or_else(|| ConvertError::UnknownModelType {
            model_type: format!("`{model_type}`"),
            known: known(),
        })
}

impl Handler {
    /// The converter.
    pub fn converter(&self) -> &'static Converter {
        (self.converter)()
    }

    fn rejected(&self, direction: Direction, problems: Vec<Problem>) -> ConvertError {
        ConvertError::Rejected {
            format: self.name.to_string(),
            direction,
            problems,
        }
    }

    /// The HF key(s) that set the Fast-LLM path `fast_llm` on import, from the declarations
    /// (for messages about values the user wrote under their HF name).
    pub fn hf_source(&self, fast_llm: &str) -> Option<String> {
        let keys = crate::provenance::hf_keys(&self.converter().base_model, fast_llm);
        (!keys.is_empty()).then(|| keys.join(", "))
    }

    /// Every HF path the format consumes.
    pub fn hf_claims(&self) -> Vec<crate::coverage::Claim> {
        hf_claims(&self.converter().base_model)
    }

    /// Checks `model_type` and `architectures`, and that every key is known.
    pub fn check_hf(&self, hf: &Map) -> Vec<Problem> {
        let mut problems = Vec::new();
        match hf.get("model_type") {
            Some(Value::Str(t)) if self.model_types.contains(&t.as_str()) => {}
            found => problems.push(Problem::at_hf(
                "model_type",
                format!(
                    "expected {}, found {}",
                    self.model_types
                        .iter()
                        .map(|t| format!("{t:?}"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    found.map(show).unwrap_or_else(|| "nothing".into())
                ),
            )),
        }
        match hf.get("architectures") {
            Some(Value::List(found)) if matches!(found.as_slice(), [Value::Str(a)] if a == self.architecture) => {}
            found => problems.push(Problem::at_hf(
                "architectures",
                format!(
                    "expected [{:?}], found {}",
                    self.architecture,
                    found.map(show).unwrap_or_else(|| "nothing".into())
                ),
            )),
        }
        let compiled = compiled(self.converter());
        problems.extend(compiled.claims.check(hf, |key| compiled.generic.contains(key)));
        problems
    }

    /// Removes each dotted `key` of `hf` (`--drop-key`), returning the removed values in order.
    /// `--drop-key` accepts losing a key the format does not know; a key its declarations read
    /// on import (converted or checked), a key holding one, or a key inside one read whole would
    /// instead import another model than the input's, and is refused by name, with the Fast-LLM
    /// path it sets. So is a key `hf` does not have (a typo would otherwise drop nothing).
    pub fn drop_keys(&self, hf: &mut Map, keys: &[String]) -> Result<Vec<(String, Value)>, Vec<Problem>> {
        let read = &compiled(self.converter()).read;
        let mut refused = Vec::new();
        let mut allowed = Vec::new();
        for key in keys {
            match self.refused_drop(read, key) {
                Some(problem) => refused.push(problem),
                None => allowed.push(key.clone()),
            }
        }
        match crate::carried::drop_keys(hf, &allowed) {
            Ok(dropped) if refused.is_empty() => Ok(dropped),
            Ok(_) => Err(refused),
            Err(absent) => Err(refused.into_iter().chain(absent).collect()),
        }
    }

    /// Why `--drop-key key` would change the imported model, if it would.
    fn refused_drop(&self, read: &ClaimTree, key: &str) -> Option<Problem> {
        let reach = read.reach(key)?;
        let read_key = match &reach {
            Reach::Is => key,
            Reach::Holds(other) | Reach::Inside(other) => other.as_str(),
        };
        let paths = crate::provenance::fast_llm_paths(&self.converter().base_model, read_key);
        let effect = (!paths.is_empty()).then(|| format!("sets Fast-LLM `{}`", paths.join("`, `")));
        let checked = || format!("{} checks on import", self.name);
        let what = match (&reach, effect) {
            (Reach::Is, Some(effect)) => format!("it {effect}"),
            (Reach::Is, None) => format!("{} checks it on import", self.name),
            (Reach::Holds(below), effect) => format!("it holds `{below}`, which {}", effect.unwrap_or_else(checked)),
            (Reach::Inside(above), effect) => {
                format!("it is part of `{above}`, which {}", effect.unwrap_or_else(checked))
            }
        };
        Some(Problem::at_hf(
            key,
            format!(
                "{option} refuses a key {name} reads: {what}; dropping it would import another model than the \
                 input's ({name}'s default in place of its value), and {option} only accepts losing a key {name} \
                 does not know",
                name = self.name,
                option = hint::spell(Hint::DropKeys)
            ),
        ))
    }

    /// The parts of an HF checkpoint the format recognises but does not convert.
    pub fn unconverted(&self) -> &[Unconverted] {
        &self.converter().base_model.unconverted
    }

    /// The keys of `hf` (`loaded`: as the HF class loaded it) holding something of an
    /// unconverted part, each with its part.
    fn held_keys(&self, hf: &Map, loaded: &Map) -> Vec<(&'static str, Unconverted)> {
        let class = &self.converter().hf_class;
        self.unconverted()
            .iter()
            .flat_map(|part| part.held_keys(class, hf, loaded).into_iter().map(|key| (key, *part)))
            .collect()
    }

    /// `hf` without the keys holding something of an unconverted part (what accepting their loss
    /// drops), and those keys.
    pub fn without_unconverted(&self, hf: &Map) -> (Map, Vec<String>) {
        let (loaded, _) = self.converter().hf_class.load(hf);
        let mut kept = hf.clone();
        let dropped: Vec<String> = self
            .held_keys(hf, &loaded)
            .into_iter()
            .map(|(key, _)| {
                kept.remove(key);
                key.to_string()
            })
            .collect();
        (kept, dropped)
    }

    /// The unconverted part the HF tensor `name` belongs to, if any.
    pub fn unconverted_tensor(&self, name: &str) -> Option<&Unconverted> {
        self.unconverted().iter().find(|part| part.holds_tensor(name))
    }

    /// Imports an HF config dict into a validated Fast-LLM base-model config.
    ///
    /// The sections write the typed config directly; when that run meets anything a Fast-LLM
    /// dict would not simply hold and parse (a problem, a second write of one path, a value its
    /// field rejects, a rule), the import runs again on a dict, which reports it as it always
    /// has.
    pub fn import(&self, hf: &Map) -> Result<BaseModelConfig, ConvertError> {
        let loaded = self.loaded(hf)?;
        // The GPT root is 9 kB: built in the result that holds it (`unwritten` is inlined), the
        // one copy left is the result's into the caller's slot, as the dict run's own.
        let mut imported = Ok(BaseModelConfig::unwritten(self.model));
        let typed = match &mut imported {
            Ok(config) => self.import_typed(&loaded, config),
            Err(_) => false,
        };
        if !typed {
            imported = self.import_dict(&loaded);
        }
        imported
    }

    /// Both runs of [`Handler::import`] on `hf`, for tests that compare them: the typed run's
    /// config (`None` where the import falls back on the dict), and the dict run's result.
    #[doc(hidden)]
    pub fn import_both_ways(
        &self,
        hf: &Map,
    ) -> Result<(Option<BaseModelConfig>, Result<BaseModelConfig, ConvertError>), ConvertError> {
        let loaded = self.loaded(hf)?;
        let mut config = BaseModelConfig::unwritten(self.model);
        let typed = self.import_typed(&loaded, &mut config).then_some(config);
        Ok((typed, self.import_dict(&loaded)))
    }

    /// The typed run of an import of `loaded` into `config` (a default one): whether the run
    /// stored every write as the dict would hold it and the config is valid.
    fn import_typed(&self, loaded: &Map, config: &mut BaseModelConfig) -> bool {
        let mut importer = Importer::typed(self.name, loaded);
        importer.section_typed(&self.converter().base_model, loaded, config);
        importer.finish_typed(config)
    }

    /// `hf` as its HF class loads it, or the problems of its keys.
    fn loaded(&self, hf: &Map) -> Result<Map, ConvertError> {
        let converter = self.converter();
        let mut problems = self.check_hf(hf);
        let (loaded, class_problems) = converter.hf_class.load(hf);
        problems.extend(class_problems.into_iter().map(Problem::from));
        for (key, part) in self.held_keys(hf, &loaded) {
            problems.push(Problem::at_hf(
                key,
                format!(
                    "part of the {}, which {} does not convert: Fast-LLM's {} model has no place for it \
                     (pass {} to convert without it, dropping it)",
                    part.part,
                    self.name,
                    self.model.name(),
                    hint::spell(Hint::TextOnly)
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(self.rejected(Direction::Import, problems));
        }
        Ok(loaded)
    }

    /// The dict run of an import of `loaded`: the sections write a Fast-LLM dict, which
    /// `load_base_model` parses and validates, every problem reported.
    fn import_dict(&self, loaded: &Map) -> Result<BaseModelConfig, ConvertError> {
        let converter = self.converter();
        let mut importer = Importer::new(self.name, loaded);
        let mut fast_llm = Map::new();
        importer.section(&converter.base_model, loaded, &mut fast_llm);
        if !importer.problems.is_empty() {
            return Err(self.rejected(Direction::Import, importer.problems));
        }
        load_base_model_or(self.model, &Value::Map(fast_llm), |errors| {
            self.rejected(
                Direction::Import,
                errors
                    .errors
                    .into_iter()
                    .map(|e| Problem {
                        hf: self.hf_source(&e.path),
                        fast_llm: Some(e.path),
                        message: format!("invalid imported config ({}): {}", e.class, e.kind),
                    })
                    .collect(),
            )
        })
    }

    /// Exports a Fast-LLM base-model config to the format's HF config dict.
    pub fn export(&self, config: &BaseModelConfig, layout: HfLayout) -> Result<Map, ConvertError> {
        if config.kind() != self.model {
            return Err(self.rejected(
                Direction::Export,
                vec![Problem::at_fast_llm(
                    "",
                    format!(
                        "{} holds a {} model, not {}",
                        self.name,
                        self.model.name(),
                        config.kind().name()
                    ),
                )],
            ));
        }
        let root = Fl::new(config.reflect());
        let mut exporter = Exporter::unrecorded(self.name, layout);
        let mut hf = Map::new();
        exporter.section(&self.converter().base_model, root, &mut hf);
        if exporter.conflicted() {
            // Again, recording the writers, for the messages to name both.
            exporter = Exporter::new(self.name, layout);
            exporter.section(&self.converter().base_model, root, &mut Map::new());
        }
        if !exporter.problems.is_empty() {
            return Err(self.rejected(Direction::Export, exporter.problems));
        }
        // The unconverted parts are absent: what the HF class gives their keys then.
        let class = &self.converter().hf_class;
        for key in self.unconverted().iter().flat_map(|part| part.keys) {
            if let Some(value) = Unconverted::exported(class, key) {
                hf.entry(key.to_string()).or_insert(value);
            }
        }
        hf.insert("model_type".into(), Value::Str(self.model_types[0].into()));
        hf.insert(
            "architectures".into(),
            Value::List(vec![Value::Str(self.architecture.into())]),
        );
        if !self.auto_map.is_empty() {
            let auto_map = self
                .auto_map
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                .collect();
            hf.insert("auto_map".into(), Value::Map(auto_map));
        }
        Ok(hf)
    }
}
