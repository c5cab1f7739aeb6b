//! [`Fl`]: a section's typed Fast-LLM config, as the export side of a table reads it.
//!
//! Export runs on the typed config itself (no full-form dict is written): primitives, Customs
//! and validators read it typed ([`Fl::config`]) or by a Fast-LLM path ([`Fl::value`]) through
//! the accessor `#[derive(Config)]` generates. A path its class does not declare is a problem
//! naming the path, never a `null`.

use fastllm_config::{
    ActivationType, AffineLinearConfig, AttentionConfig, CausalConv1dConfig, Field, FieldType, GptBaseModelConfig,
    MambaConfig, MlpConfig, MoeMlpConfig, MultiModalBaseModelConfig, NoField, OptionalParameterConfig, Reflect,
    TextModel, Value,
};

use crate::Problem;

/// A section's Fast-LLM config on export.
#[derive(Clone, Copy)]
pub struct Fl<'a>(&'a dyn Reflect);

/// What a validator or a read finds: nothing wrong, or the problems (paths relative to the
/// section).
pub type Checked = Result<(), Vec<Problem>>;

impl<'a> Fl<'a> {
    /// The config `config`, read as a section's.
    pub fn new(config: &'a dyn Reflect) -> Self {
        Fl(config)
    }

    /// The typed config: the config class `T` itself, or the polymorphic config `T` whose variant
    /// it is; another class is a problem naming both.
    pub fn config<T: FieldType + 'static>(self) -> Result<&'a T, Problem> {
        self.0
            .downcast::<T>()
            .ok_or_else(|| Problem::at_fast_llm("", format!("expected a {}, found a {}", T::KIND, self.0.class_name())))
    }

    /// The text model of a root config (GPT or multimodal), typed.
    pub fn text_model(self) -> Result<TextModel<'a>, Problem> {
        if let Some(root) = self.0.downcast::<GptBaseModelConfig>() {
            return Ok(root.text_model());
        }
        if let Some(root) = self.0.downcast::<MultiModalBaseModelConfig>() {
            return Ok(root.text_model());
        }
        let message = format!("expected a base-model config, found a {}", self.0.class_name());
        Err(Problem::at_fast_llm("", message))
    }

    /// The field at the dotted `path` below the config.
    pub fn field(self, path: &str) -> Result<Field<'a>, Problem> {
        self.0.get(path).map_err(undeclared)
    }

    /// The value at the dotted `path`, as the full form holds it (`null` below an absent optional
    /// config; a sub-config as its full-form dict).
    pub fn value(self, path: &str) -> Result<Value, Problem> {
        self.field(path).map(Field::into_value)
    }

    /// The sub-config at the dotted `path`; `None` when it is absent (`null`).
    pub fn config_at(self, path: &str) -> Result<Option<Fl<'a>>, Problem> {
        match self.field(path)? {
            Field::Config(config) => Ok(Some(Fl(config))),
            Field::Value(Value::Null) => Ok(None),
            other => Err(Problem::at_fast_llm(
                path,
                format!("expected a config, found {}", crate::dict::show(&other.into_value())),
            )),
        }
    }

    /// The typed sub-config `T` at `path`, chosen by name (a layer, an optional parameter);
    /// `None` when it is absent (`null`). Another class is a problem naming the path.
    pub fn config_in<T: FieldType + 'static>(self, path: &str) -> Result<Option<&'a T>, Problem> {
        match self.config_at(path)? {
            Some(sub) => sub.config::<T>().map(Some).map_err(|problem| under_path(path, problem)),
            None => Ok(None),
        }
    }

    /// `add_linear_biases` of an attention, MLP or Mamba config: the default of its layers' biases.
    pub fn linear_biases(self) -> Result<bool, Problem> {
        let config = self.0;
        (config.downcast::<AttentionConfig>().map(|c| c.add_linear_biases))
            .or_else(|| config.downcast::<MlpConfig>().map(|c| c.add_linear_biases))
            .or_else(|| config.downcast::<MoeMlpConfig>().map(|c| c.add_linear_biases))
            .or_else(|| config.downcast::<MambaConfig>().map(|c| c.add_linear_biases))
            .ok_or_else(|| self.lacks("add_linear_biases"))
    }

    /// The bias flag (`bias.enabled`) of the layer at `layer` (a linear layer or a convolution);
    /// `None` when the layer is absent or its flag unset.
    pub fn bias_enabled(self, layer: &str) -> Result<Option<bool>, Problem> {
        let Some(sub) = self.config_at(layer)? else {
            return Ok(None);
        };
        let bias = (sub.0.downcast::<AffineLinearConfig>().map(|l| &l.bias))
            .or_else(|| sub.0.downcast::<CausalConv1dConfig>().map(|l| &l.bias))
            .ok_or_else(|| under_path(layer, sub.lacks("bias")))?;
        Ok(bias.enabled)
    }

    /// `enabled` of the optional parameter at `path`; `None` when it is absent or unset.
    pub fn parameter_enabled(self, path: &str) -> Result<Option<bool>, Problem> {
        Ok(self.config_in::<OptionalParameterConfig>(path)?.and_then(|p| p.enabled))
    }

    /// `activation` of an MLP config (dense or MoE).
    pub fn activation(self) -> Result<Option<ActivationType>, Problem> {
        let config = self.0;
        (config.downcast::<MlpConfig>().map(|c| c.activation))
            .or_else(|| config.downcast::<MoeMlpConfig>().map(|c| c.activation))
            .ok_or_else(|| self.lacks("activation"))
    }

    /// The problem of a read of `field`, which its class does not have: a declaration bug.
    fn lacks(self, field: &'static str) -> Problem {
        undeclared(NoField {
            path: field.into(),
            class: self.0.class_name(),
            field: field.into(),
        })
    }

    /// Its dynamic `type` name (the held variant's), if its class has one.
    pub fn type_name(self) -> Option<&'static str> {
        self.0.dynamic_type()
    }

    /// Its `type` as the full form writes it: the name, or `null`.
    pub fn type_value(self) -> Value {
        self.type_name().map_or(Value::Null, |name| Value::Str(name.into()))
    }

    /// Its class name (the held variant's).
    pub fn class_name(self) -> &'static str {
        self.0.class_name()
    }
}

/// `problem`, its Fast-LLM path made relative to the config that holds `path`.
fn under_path(path: &str, mut problem: Problem) -> Problem {
    problem.fast_llm = problem.fast_llm.map(|inner| crate::dict::join(path, &inner));
    problem
}

/// A read of a field the class does not declare: a declaration bug, named by its path.
fn undeclared(error: NoField) -> Problem {
    let message = format!(
        "{} has no field `{}` (a declaration of this format reads it)",
        error.class, error.field
    );
    Problem::at_fast_llm(error.path, message)
}

/// The problems found, as a validator's outcome.
pub fn checked(problems: Vec<Problem>) -> Checked {
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}
