//! Typed reads of one field of a Fast-LLM config class, each with its Fast-LLM path: what a
//! declaration reads instead of a string path, so that a misspelt field or a value of another
//! type fails to compile.
//!
//! [`field!`](crate::field!) writes one from the class and the field names, so the path is never
//! spelt twice: `#[derive(Config)]` names every field by its Rust name, and [`TextModel`] mirrors
//! the names of the roots' text fields. What stays a run-time check is the class of the config a
//! read meets, which depends on the config (a section is planned on whatever variant the config
//! holds): another class is a problem naming the section, never a 0.
//!
//! Which config a weight declaration's read meets follows from the field's type too: a field of
//! a root class ([`RootField`]) or of the text model ([`TextField`]) is read on the root, any
//! other ([`FieldPath`]) on the declaring section.

use fastllm_config::{Field, FieldType, GptBaseModelConfig, MultiModalBaseModelConfig, SubConfig, TextModel};

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

/// A root config class: a weight declaration in any section reads its fields on the root.
pub trait RootConfig: FieldType + 'static {}

impl RootConfig for GptBaseModelConfig {}
impl RootConfig for MultiModalBaseModelConfig {}

/// The field at `path` below a root config of class `C`, holding a `T`: a [`FieldPath`] read on
/// the root whatever section declares the read. Written by [`field!`](crate::field!) for the
/// root classes.
pub struct RootField<C, T>(FieldPath<C, T>);

impl<C, T> Clone for RootField<C, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, T> Copy for RootField<C, T> {}

impl<C: RootConfig, T> RootField<C, T> {
    /// What [`field!`](crate::field!) expands to for a root class.
    #[doc(hidden)]
    pub const fn declared(field: FieldPath<C, T>) -> Self {
        RootField(field)
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

/// Which config a field is read on, by its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The config of the section that declares the read.
    Section,
    /// The root config (its path is `""`).
    Root,
}

/// A typed read of one field of a config: [`FieldPath`], [`RootField`] or [`TextField`].
pub trait ConfigField<T>: Copy {
    /// The config the field is read on.
    const HOLDER: Holder;
    /// The field's dotted Fast-LLM path below the config it reads.
    fn path(&self) -> &'static str;
    /// The value in `config`; a config of another class is a problem at its own path (`""`).
    fn read(&self, config: Fl) -> Result<T, Problem>;
}

impl<C: FieldType + 'static, T: Copy> ConfigField<T> for FieldPath<C, T> {
    const HOLDER: Holder = Holder::Section;

    fn path(&self) -> &'static str {
        self.path
    }

    fn read(&self, config: Fl) -> Result<T, Problem> {
        config.config::<C>().map(|config| *self.of(config))
    }
}

impl<C: RootConfig, T: Copy> ConfigField<T> for RootField<C, T> {
    const HOLDER: Holder = Holder::Root;

    fn path(&self) -> &'static str {
        self.0.path
    }

    fn read(&self, config: Fl) -> Result<T, Problem> {
        self.0.read(config)
    }
}

impl<T: Copy> ConfigField<T> for TextField<T> {
    const HOLDER: Holder = Holder::Root;

    fn path(&self) -> &'static str {
        self.path
    }

    fn read(&self, config: Fl) -> Result<T, Problem> {
        config.text_model().map(|text| *(self.read)(&text))
    }
}

/// A typed field holding a sub-config ([`SubConfig`]), where a weight declaration mounts a
/// section: [`FieldPath`], [`RootField`] or [`TextField`] (`field!(DecoderBlockConfig.mixer)`).
/// A mount is always read on the declaring section: a sub-section's parameters are named below
/// it, so only the root section mounts a root's field.
pub trait ConfigMount: Send + Sync + 'static {
    /// The field's dotted Fast-LLM path below the config it reads.
    fn path(&self) -> &'static str;
    /// The field in `config`, as [`Reflect::field`](fastllm_config::Reflect::field) gives it
    /// (`null` for an absent optional config); a config of another class is a problem at its
    /// own path (`""`).
    fn mounted<'a>(&self, config: Fl<'a>) -> Result<Field<'a>, Problem>;
}

impl<C: FieldType + 'static, T: SubConfig + 'static> ConfigMount for FieldPath<C, T> {
    fn path(&self) -> &'static str {
        self.path
    }

    fn mounted<'a>(&self, config: Fl<'a>) -> Result<Field<'a>, Problem> {
        config.config::<C>().map(|config| self.of(config).reflect())
    }
}

impl<C: RootConfig, T: SubConfig + 'static> ConfigMount for RootField<C, T> {
    fn path(&self) -> &'static str {
        self.0.path
    }

    fn mounted<'a>(&self, config: Fl<'a>) -> Result<Field<'a>, Problem> {
        self.0.mounted(config)
    }
}

impl<T: SubConfig + 'static> ConfigMount for TextField<T> {
    fn path(&self) -> &'static str {
        self.path
    }

    fn mounted<'a>(&self, config: Fl<'a>) -> Result<Field<'a>, Problem> {
        // The text model names the roots' own fields, so its path is the root's: read there,
        // where the sub-config lives as long as the root (the text model is a temporary view).
        config.text_model()?;
        config.field(self.path)
    }
}

/// A field read through a reference (the text model's `decoder` is a `&BlockSequenceConfig`)
/// as the value itself, by method resolution's auto-deref: what lets `field!(TextModel.decoder)`
/// name the sub-config, not the reference.
#[doc(hidden)]
pub trait Peeled: FieldType {
    /// The value itself.
    fn peeled(&self) -> &Self {
        self
    }
}

impl<T: FieldType> Peeled for T {}

/// A typed field of a Fast-LLM config class, named by its class and its fields:
/// `field!(MlpConfig.intermediate_size)` is a [`FieldPath<MlpConfig, i64>`] at
/// `intermediate_size`, `field!(MambaConfig.convolution_layer.kernel_size)` one at
/// `convolution_layer.kernel_size`, and `field!(TextModel.embeddings.vocab_size)` a
/// [`TextField`] of either root; a field of a root class (`GptBaseModelConfig`,
/// `MultiModalBaseModelConfig`) is a [`RootField`]. The class must be in scope; a field it lacks, or a path through
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
            |text| {
                use $crate::field::Peeled as _;
                text.$first $(.$rest)*.peeled()
            },
        )
    };
    (GptBaseModelConfig $(. $path:ident)+) => {
        $crate::field::RootField::declared($crate::field!(@class GptBaseModelConfig $(. $path)+))
    };
    (MultiModalBaseModelConfig $(. $path:ident)+) => {
        $crate::field::RootField::declared($crate::field!(@class MultiModalBaseModelConfig $(. $path)+))
    };
    ($class:ident $(. $path:ident)+) => {
        $crate::field!(@class $class $(. $path)+)
    };
    (@class $class:ident . $first:ident $(. $rest:ident)*) => {
        $crate::field::FieldPath::declared(
            concat!(stringify!($first) $(, ".", stringify!($rest))*),
            |config: &$class| &config.$first $(.$rest)*,
        )
    };
}

#[cfg(test)]
mod tests {
    use fastllm_config::{
        DecoderBlockConfig, GptBaseModelConfig, MambaConfig, MlpConfig, MoeMlpConfig, MultiModalBaseModelConfig,
        Reflect,
    };

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

    /// A field a class inherits (`#[config(base)]`) reads through the subclass, at the path
    /// `Reflect` finds it: the read names the class the config holds (a MoE MLP is no
    /// `MlpConfig` to `Fl::config`), whichever class declares the field.
    #[test]
    fn an_inherited_field_reads_through_the_subclass() {
        let moe = MoeMlpConfig {
            base: MlpConfig {
                intermediate_size: 96,
                ..Default::default()
            },
            ..Default::default()
        };
        let size: FieldPath<MoeMlpConfig, i64> = field!(MoeMlpConfig.intermediate_size);
        assert_eq!(size.path(), "intermediate_size");
        assert_eq!(size.read(Fl::new(&moe)), Ok(96));
        let reflected = (&moe as &dyn Reflect).get(size.path()).unwrap().into_value();
        assert_eq!(reflected, fastllm_config::Value::Int(96));

        let root = MultiModalBaseModelConfig {
            base: GptBaseModelConfig {
                hidden_size: 48,
                ..Default::default()
            },
            ..Default::default()
        };
        let hidden = field!(MultiModalBaseModelConfig.hidden_size);
        assert_eq!(hidden.read(Fl::new(&root)), Ok(48));
        let reflected = (&root as &dyn Reflect).get(hidden.path()).unwrap().into_value();
        assert_eq!(reflected, fastllm_config::Value::Int(48));
    }

    /// A mount reads the sub-config itself, through the text model's references too, and an
    /// absent optional one as `null`.
    #[test]
    fn a_mount_reads_the_sub_config_its_path_names() {
        let root = GptBaseModelConfig::default();
        let decoder: TextField<fastllm_config::BlockSequenceConfig> = field!(TextModel.decoder);
        assert_eq!(ConfigMount::path(&decoder), "decoder");
        let Ok(Field::Config(found)) = decoder.mounted(Fl::new(&root)) else {
            panic!("the decoder is a config")
        };
        assert!(std::ptr::addr_eq(found.as_any(), &root.decoder));

        let block = DecoderBlockConfig::default();
        let post_mixer = field!(DecoderBlockConfig.post_mixer_normalization);
        assert_eq!(ConfigMount::path(&post_mixer), "post_mixer_normalization");
        let absent = post_mixer.mounted(Fl::new(&block)).unwrap();
        assert!(
            matches!(absent, Field::Value(fastllm_config::Value::Null)),
            "{absent:?}"
        );
        let mixer = field!(DecoderBlockConfig.mixer).mounted(Fl::new(&block));
        assert!(matches!(mixer, Ok(Field::Config(c)) if c.dynamic_type() == Some("attention")));

        let problem = field!(DecoderBlockConfig.mixer).mounted(Fl::new(&root)).unwrap_err();
        assert_eq!(
            problem.message,
            "expected a DecoderBlockConfig, found a GPTBaseModelConfig"
        );
    }

    #[test]
    fn a_config_of_another_class_is_a_problem_naming_both() {
        let gated: FieldPath<MlpConfig, bool> = field!(MlpConfig.gated);
        let problem = gated.read(Fl::new(&MoeMlpConfig::default())).unwrap_err();
        assert_eq!(problem.fast_llm.as_deref(), Some(""));
        assert_eq!(problem.message, "expected a MLPConfig, found a MoEMLPConfig");
    }
}
