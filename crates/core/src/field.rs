//! Typed reads of one field of a Fast-LLM config class, each with its Fast-LLM path: what a
//! declaration reads instead of a string path, so that a misspelt field or a value of another
//! type fails to compile.
//!
//! [`field!`](crate::field!) writes one from the class and the field names, so the path is never
//! spelt twice: `#[derive(Config)]` names every field by its Rust name, and [`TextModel`] mirrors
//! the names of the roots' text fields. What stays a run-time check is the class of the config a
//! read meets, which depends on the config (a section is planned on whatever variant the config
//! holds): another class is a problem naming the section, never a 0.

use fastllm_config::{FieldType, TextModel};

use crate::Problem;
use crate::fl::Fl;

/// The field at `path` below a config of class `C`, holding a `T`. Written by
/// [`field!`](crate::field!).
pub struct FieldPath<C, T> {
    path: &'static str,
    read: fn(&C) -> &T,
}

impl<C, T> Clone for FieldPath<C, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, T> Copy for FieldPath<C, T> {}

impl<C, T> FieldPath<C, T> {
    /// What [`field!`](crate::field!) expands to; `path` must be the dotted names `read` follows.
    #[doc(hidden)]
    pub const fn declared(path: &'static str, read: fn(&C) -> &T) -> Self {
        FieldPath { path, read }
    }

    /// The value in `config`.
    pub fn of<'c>(&self, config: &'c C) -> &'c T {
        (self.read)(config)
    }
}

/// The field at `path` of the text model of a root config, GPT or multimodal alike
/// (`field!(TextModel.hidden_size)`).
pub struct TextField<T> {
    path: &'static str,
    read: for<'r, 'm> fn(&'r TextModel<'m>) -> &'r T,
}

impl<T> Clone for TextField<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for TextField<T> {}

impl<T> TextField<T> {
    /// What [`field!`](crate::field!) expands to; `path` must be the dotted names `read` follows.
    #[doc(hidden)]
    pub const fn declared(path: &'static str, read: for<'r, 'm> fn(&'r TextModel<'m>) -> &'r T) -> Self {
        TextField { path, read }
    }
}

/// A typed read of one field of a config: [`FieldPath`] or [`TextField`].
pub trait ConfigField<T>: Copy {
    /// The field's dotted Fast-LLM path below the config it reads.
    fn path(&self) -> &'static str;
    /// The value in `config`; a config of another class is a problem at its own path (`""`).
    fn read(&self, config: Fl) -> Result<T, Problem>;
}

impl<C: FieldType + 'static, T: Copy> ConfigField<T> for FieldPath<C, T> {
    fn path(&self) -> &'static str {
        self.path
    }

    fn read(&self, config: Fl) -> Result<T, Problem> {
        config.config::<C>().map(|config| *self.of(config))
    }
}

impl<T: Copy> ConfigField<T> for TextField<T> {
    fn path(&self) -> &'static str {
        self.path
    }

    fn read(&self, config: Fl) -> Result<T, Problem> {
        config.text_model().map(|text| *(self.read)(&text))
    }
}

/// A typed field of a Fast-LLM config class, named by its class and its fields:
/// `field!(MlpConfig.intermediate_size)` is a [`FieldPath<MlpConfig, i64>`] at
/// `intermediate_size`, `field!(MambaConfig.convolution_layer.kernel_size)` one at
/// `convolution_layer.kernel_size`, and `field!(TextModel.embeddings.vocab_size)` a
/// [`TextField`] of either root. The class must be in scope; a field it lacks, or a path through
/// a polymorphic config (whose variant only the config knows), does not compile; nor does a
/// read of it as another type:
///
/// ```
/// use fastllm_core::config::MlpConfig;
/// use fastllm_core::field;
/// use fastllm_core::weights::WeightContext;
///
/// fn size(c: &WeightContext) -> usize {
///     c.size(field!(MlpConfig.intermediate_size))
/// }
/// ```
///
/// ```compile_fail
/// # use fastllm_core::config::MlpConfig;
/// # use fastllm_core::field;
/// # use fastllm_core::weights::WeightContext;
/// fn size(c: &WeightContext) -> usize {
///     c.size(field!(MlpConfig.intermediate_sise))
/// }
/// ```
///
/// ```compile_fail
/// # use fastllm_core::config::MlpConfig;
/// # use fastllm_core::field;
/// # use fastllm_core::weights::WeightContext;
/// fn size(c: &WeightContext) -> usize {
///     c.size(field!(MlpConfig.gated))
/// }
/// ```
///
/// ```compile_fail
/// # use fastllm_core::config::DecoderBlockConfig;
/// # use fastllm_core::field;
/// # use fastllm_core::weights::WeightContext;
/// fn size(c: &WeightContext) -> usize {
///     c.size(field!(DecoderBlockConfig.mlp.intermediate_size))
/// }
/// ```
#[macro_export]
macro_rules! field {
    (TextModel . $first:ident $(. $rest:ident)*) => {
        $crate::field::TextField::declared(
            concat!(stringify!($first) $(, ".", stringify!($rest))*),
            |text| &text.$first $(.$rest)*,
        )
    };
    ($class:ident . $first:ident $(. $rest:ident)*) => {
        $crate::field::FieldPath::declared(
            concat!(stringify!($first) $(, ".", stringify!($rest))*),
            |config: &$class| &config.$first $(.$rest)*,
        )
    };
}

#[cfg(test)]
mod tests {
    use fastllm_config::{GptBaseModelConfig, MambaConfig, MlpConfig, MoeMlpConfig, Reflect};

    use super::*;

    /// The path `field!` writes is the one `Reflect` reads the same value at.
    #[test]
    fn a_field_s_path_is_where_reflect_finds_its_value() {
        let mut mamba = MambaConfig::default();
        mamba.convolution_layer.kernel_size = 7;
        let kernel: FieldPath<MambaConfig, i64> = field!(MambaConfig.convolution_layer.kernel_size);
        assert_eq!(kernel.path(), "convolution_layer.kernel_size");
        assert_eq!(kernel.read(Fl::new(&mamba)), Ok(7));
        let reflected = (&mamba as &dyn Reflect).get(kernel.path()).unwrap().into_value();
        assert_eq!(reflected, fastllm_config::Value::Int(7));

        let root = GptBaseModelConfig::default();
        let vocabulary: TextField<i64> = field!(TextModel.embeddings.vocab_size);
        assert_eq!(vocabulary.path(), "embeddings.vocab_size");
        assert_eq!(vocabulary.read(Fl::new(&root)), Ok(root.embeddings.vocab_size));
    }

    #[test]
    fn a_config_of_another_class_is_a_problem_naming_both() {
        let gated: FieldPath<MlpConfig, bool> = field!(MlpConfig.gated);
        let problem = gated.read(Fl::new(&MoeMlpConfig::default())).unwrap_err();
        assert_eq!(problem.fast_llm.as_deref(), Some(""));
        assert_eq!(problem.message, "expected a MLPConfig, found a MoEMLPConfig");
    }
}
