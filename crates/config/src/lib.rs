//! A typed model of Fast-LLM's base-model configuration.
//!
//! Every config class reachable from `GPTBaseModelConfig` and `MultiModalBaseModelConfig` is a
//! Rust struct (polymorphic bases are enums dispatching on `type`), with Fast-LLM's field hints,
//! defaults and validation rules. One reflection mechanism, `#[derive(Config)]`, gives each class
//! its dict IO in Fast-LLM's three forms ([`Form`]) and the architecture-path walker
//! ([`ConfigClass::architecture_paths`]).
//!
//! ```
//! use fastllm_config::{load_base_model, Form, ModelKind, Value};
//! let dict = Value::from_json_str(r#"{"hidden_size": 64, "decoder": {"num_blocks": 2}}"#).unwrap();
//! let config = load_base_model(ModelKind::Gpt, &dict).unwrap();
//! let architecture = config.to_form(Form::Architecture);
//! assert_eq!(architecture["embeddings"].as_map().unwrap()["vocab_size"], Value::Int(49152));
//! ```

// Polymorphic configs are enums of their classes. They are built once per conversion, so
// variant sizes do not matter, and boxing would only make every match noisier.
#![allow(clippy::large_enum_variant)]

mod budget;
pub mod checks;
pub mod classes;
pub mod dict;
mod error;
pub mod field_types;
#[cfg(test)]
mod inherit;
mod json;
mod json_path;
mod printable;
mod reflect;
mod value;
mod yaml;

pub use classes::attention::*;
pub use classes::block::*;
pub use classes::common::*;
pub use classes::language_model::*;
pub use classes::mixer::*;
pub use classes::model::*;
pub use error::{ConfigErrors, Ctx, ErrorKind, ValidationError};
pub use fastllm_config_derive::Config;
pub use printable::{printable, printable_lines};
pub use reflect::{
    ClassRules, ConfigClass, Field, FieldHint, FieldInfo, FieldSet, FieldType, FieldWrite, Fields, Form, NoField,
    Presence, Prior, Reflect, Reported, Serialized, SubConfig, Unwritable, Verbosity, WriteSlot, check_type_key,
    config_map, dynamic_type_name, emit_field, inherited_fields, parse_config_value, report_unknown_keys, split_path,
    type_name_of, unknown_dynamic_type, write_whole,
};
pub use value::{BLOCK_DEPTH, Map, ParseError, Value};

/// Reads a config of class `T` from a dict and validates it, collecting every error.
pub fn load<T: ConfigClass>(value: &Value) -> Result<T, ConfigErrors> {
    let mut config = T::default();
    load_into(&mut config, value)?;
    Ok(config)
}

/// [`load`] into `config`, which holds `T::default()`: the config is large, so it is read
/// where it will stay rather than moved there.
fn load_into<T: ConfigClass>(config: &mut T, value: &Value) -> Result<(), ConfigErrors> {
    let mut ctx = Ctx::new();
    if !ctx.with_class(T::CLASS_NAME, |ctx| T::parse_default_into(config, value, ctx)) {
        return Err(ctx.finish(()).expect_err("a failed parse records an error"));
    }
    // Validating defaults that stand in for unparsable values would only add noise.
    if ctx.error_count() == 0 {
        config.validate_in(&mut ctx);
    }
    ctx.finish(())
}

/// Which root config a base-model dict is read as (Fast-LLM's model type name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `gpt`: [`GptBaseModelConfig`].
    Gpt,
    /// `multimodal`: [`MultiModalBaseModelConfig`].
    MultiModal,
}

impl ModelKind {
    /// Fast-LLM's name for the model type.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Gpt => "gpt",
            ModelKind::MultiModal => "multimodal",
        }
    }

    /// The kind named `name` (`gpt` or `multimodal`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gpt" => Some(ModelKind::Gpt),
            "multimodal" => Some(ModelKind::MultiModal),
            _ => None,
        }
    }
}

/// A validated base-model config of either kind.
///
/// The multimodal root is boxed: at about 22 kB it made the enum that size, and every move of a
/// GPT config (into the enum, out of a `Result`) copied 22 kB. The GPT root (9 kB) stays inline:
/// boxing it too costs an allocation large enough to make glibc consolidate its free lists, which
/// took back more than the copies saved (`normalize` 8 → 9 µs).
#[derive(Debug, Clone, PartialEq)]
pub enum BaseModelConfig {
    Gpt(GptBaseModelConfig),
    MultiModal(Box<MultiModalBaseModelConfig>),
}

impl BaseModelConfig {
    /// The dict in `form`.
    pub fn to_form(&self, form: Form) -> Map {
        match self {
            BaseModelConfig::Gpt(c) => c.to_form(form),
            BaseModelConfig::MultiModal(c) => c.to_form(form),
        }
    }

    /// Every architecture-hint field path, in Fast-LLM's order.
    pub fn architecture_paths(&self) -> Vec<Vec<String>> {
        match self {
            BaseModelConfig::Gpt(c) => c.architecture_paths(),
            BaseModelConfig::MultiModal(c) => c.architecture_paths(),
        }
    }

    /// The root config, read field by field.
    pub fn reflect(&self) -> &dyn Reflect {
        match self {
            BaseModelConfig::Gpt(c) => c,
            BaseModelConfig::MultiModal(c) => &**c,
        }
    }

    /// Which root class this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            BaseModelConfig::Gpt(_) => ModelKind::Gpt,
            BaseModelConfig::MultiModal(_) => ModelKind::MultiModal,
        }
    }
}

impl BaseModelConfig {
    /// The default config of `kind`, which typed writes ([`BaseModelConfig::write`]) fill as
    /// a parse of their dict would.
    // Inlined, so the default is built in the caller's slot rather than returned and copied.
    #[inline]
    pub fn unwritten(kind: ModelKind) -> Self {
        match kind {
            ModelKind::Gpt => BaseModelConfig::Gpt(Default::default()),
            ModelKind::MultiModal => BaseModelConfig::MultiModal(Default::default()),
        }
    }

    /// Stores `value` at the dotted Fast-LLM `path` (not empty) as the parse of a dict holding
    /// it there would: the variant of a polymorphic config chosen by its first write, the fields
    /// written marked explicit. Whatever the dict would not simply hold and parse (a second
    /// write of one path, a value its field rejects, an unknown key or `type`) is
    /// [`Unwritable`], and the config is then to be dropped.
    pub fn write(&mut self, path: &str, value: &Value, ctx: &mut Ctx) -> Result<(), Unwritable> {
        match self {
            BaseModelConfig::Gpt(c) => c.write(path, value, Prior::Written, ctx),
            BaseModelConfig::MultiModal(c) => (**c).write(path, value, Prior::Written, ctx),
        }
    }

    /// The root config as the slot a typed import's root section writes into (writes below it
    /// are [`BaseModelConfig::write`]s).
    pub fn root_slot(&mut self) -> &mut dyn WriteSlot {
        match self {
            BaseModelConfig::Gpt(c) => c,
            BaseModelConfig::MultiModal(c) => &mut **c,
        }
    }

    /// Validates a config built by [`BaseModelConfig::write`]s (derived defaults, then the
    /// rules), as loading their dict does: [`Unwritable`] when that load would report anything
    /// (a missing required field, a rule), for the dict's load to report it.
    pub fn finish_writes(&mut self) -> Result<(), Unwritable> {
        let lacks_required = match self {
            BaseModelConfig::Gpt(c) => c.lacks_required(),
            BaseModelConfig::MultiModal(c) => c.lacks_required(),
        };
        if lacks_required {
            return Err(Unwritable);
        }
        let mut ctx = Ctx::new();
        match self {
            BaseModelConfig::Gpt(c) => c.validate_in(&mut ctx),
            BaseModelConfig::MultiModal(c) => c.validate_in(&mut ctx),
        }
        if ctx.error_count() == 0 {
            Ok(())
        } else {
            Err(Unwritable)
        }
    }
}

/// Reads and validates a base-model dict as `kind`.
pub fn load_base_model(kind: ModelKind, value: &Value) -> Result<BaseModelConfig, ConfigErrors> {
    load_base_model_or(kind, value, |errors| errors)
}

/// [`load_base_model`], its errors turned into the caller's by `on_error`.
///
/// The GPT root is 9 kB: read in place in the result this returns, it is not copied again
/// into a caller's `Result` of another error type, as `map_err` on [`load_base_model`]'s would.
#[inline]
pub fn load_base_model_or<E>(
    kind: ModelKind,
    value: &Value,
    on_error: impl FnOnce(ConfigErrors) -> E,
) -> Result<BaseModelConfig, E> {
    let mut loaded = Ok(match kind {
        ModelKind::Gpt => BaseModelConfig::Gpt(Default::default()),
        ModelKind::MultiModal => BaseModelConfig::MultiModal(Default::default()),
    });
    if let Ok(config) = &mut loaded {
        let read = match config {
            BaseModelConfig::Gpt(c) => load_into(c, value),
            BaseModelConfig::MultiModal(c) => load_into(&mut **c, value),
        };
        if let Err(errors) = read {
            return Err(on_error(errors));
        }
    }
    loaded
}

/// Parses a JSON or YAML document: by extension when known (`.json`, `.yaml`, `.yml`), else
/// JSON first and YAML when that fails.
pub fn parse_document(text: &str, extension: Option<&str>) -> Result<Value, ParseError> {
    let value = match extension.map(str::to_ascii_lowercase).as_deref() {
        Some("json") => Value::from_json_str(text)?,
        Some("yaml" | "yml") => Value::from_yaml_str(text)?,
        _ => Value::from_json_str(text).or_else(|_| Value::from_yaml_str(text))?,
    };
    if !matches!(value, Value::Map(_)) {
        return Err(ParseError::NotAMapping(value.kind()));
    }
    Ok(value)
}
