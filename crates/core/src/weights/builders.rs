//! Named builders for the weight declarations tables are made of: a linear layer with its
//! optional bias, a norm, a vector, and the structural ones (a sub-section, the blocks of a
//! sequence, a section per runtime type).

use std::sync::Arc;

use fastllm_config::{
    AffineLinearConfig, AttentionConfig, CausalConv1dConfig, FieldType, MambaConfig, MlpConfig, MoeMlpConfig,
    MultiModalBaseModelConfig, PatchEmbeddingsConfig,
};

use super::{CountFn, Mount, Param, Transform, WeightContext, WeightDecl, WhenFn};
use crate::field;
use crate::field::{ConfigField, ConfigMount, FieldPath};
use crate::section::Section;

/// A size computed from the config (a width, heads × head size, ...).
pub type Dim = Arc<dyn Fn(&WeightContext) -> usize + Send + Sync>;

/// The size field `field` of the section, as a [`Dim`] (`size_of(field!(MlpConfig.intermediate_size))`).
pub fn size_of(
    field: impl ConfigField<i64> + Send + Sync + 'static,
) -> impl Fn(&WeightContext) -> usize + Copy + Send + Sync {
    move |c| c.size(field)
}

/// The text model's hidden size (`hidden_size` of either root).
pub fn text_hidden(c: &WeightContext) -> usize {
    c.size(field!(TextModel.hidden_size))
}

/// The shape of the embedding (and output) matrix: `[vocab_size, hidden_size]` of the text model.
pub fn vocabulary(c: &WeightContext) -> Vec<usize> {
    vec![c.size(field!(TextModel.embeddings.vocab_size)), text_hidden(c)]
}

/// The vision encoder's hidden size (`vision_encoder.hidden_size` of a multimodal root).
pub fn vision_hidden(c: &WeightContext) -> usize {
    c.size(field!(MultiModalBaseModelConfig.vision_encoder.hidden_size))
}

/// Patch embeddings' weight: Fast-LLM's linear `patch_embeddings.weight` `[Hv, C·ph·pw]` ↔ the
/// HF convolution kernel `hf` `[Hv, C, ph, pw]` (the same bytes, channel-major), `C` the RGB
/// channels Fast-LLM hard-codes.
pub fn patch_embeddings(hf: &'static str) -> WeightDecl {
    let channels = PatchEmbeddingsConfig::INPUT_CHANNELS as usize;
    let height = size_of(field!(PatchEmbeddingsConfig.patch_height));
    let width = size_of(field!(PatchEmbeddingsConfig.patch_width));
    WeightDecl::reshaped(
        "patch_embeddings.weight",
        hf,
        move |c| {
            let patch = height(c).saturating_mul(width(c));
            vec![vision_hidden(c), patch.saturating_mul(channels)]
        },
        move |c| vec![vision_hidden(c), channels, height(c), width(c)],
    )
}

/// An attention's query width, `heads · head_size` (also its dense layer's input).
pub fn query_size(c: &WeightContext) -> usize {
    let head_size = c.size(field!(AttentionConfig.head_size));
    c.size(field!(AttentionConfig.heads)).saturating_mul(head_size)
}

/// An attention's key (and value) width, `head_groups · head_size`.
pub fn key_value_size(c: &WeightContext) -> usize {
    let head_size = c.size(field!(AttentionConfig.head_size));
    c.size(field!(AttentionConfig.head_groups)).saturating_mul(head_size)
}

/// A linear layer: Fast-LLM's `<fast_llm>.weight` `[out, in]` ↔ HF `<hf>.weight` (several HF
/// layers concatenated along `out`), and a bias `[out]` when declared. See [`linear`].
#[derive(Clone)]
pub struct Linear {
    fast_llm: &'static str,
    hf: &'static [&'static str],
    input: Dim,
    output: Dim,
    transposed: bool,
    /// Per expert (this many), HF `experts.<e>.<hf>`.
    experts: Option<CountFn>,
    when: Option<WhenFn>,
    bias: Option<WhenFn>,
}

/// A linear layer from `input` to `output` features: Fast-LLM's `<fast_llm>.weight` ↔ HF
/// `<hf>.weight`, concatenated when `hf` names several layers (fused K/V, gate/up).
pub fn linear(
    fast_llm: &'static str,
    hf: &'static [&'static str],
    input: impl Fn(&WeightContext) -> usize + Send + Sync + 'static,
    output: impl Fn(&WeightContext) -> usize + Send + Sync + 'static,
) -> Linear {
    Linear {
        fast_llm,
        hf,
        input: Arc::new(input),
        output: Arc::new(output),
        transposed: false,
        experts: None,
        when: None,
        bias: None,
    }
}

impl Linear {
    /// Fast-LLM stores the weight transposed, `[in, out]` (an MLP's `layer_2`).
    pub fn transposed(self) -> Self {
        Linear {
            transposed: true,
            ..self
        }
    }

    /// One such layer per expert (as many as the section's `count` says), HF
    /// `experts.<e>.<hf>`, concatenated expert by expert.
    pub fn experts(self, count: impl ConfigField<i64> + Send + Sync + 'static) -> Self {
        Linear {
            experts: Some(Arc::new(move |c| c.tensor_count(count))),
            ..self
        }
    }

    /// Only when `condition` holds.
    pub fn when(self, condition: impl Fn(&WeightContext) -> bool + Send + Sync + 'static) -> Self {
        Linear {
            when: Some(Arc::new(condition)),
            ..self
        }
    }

    /// With a bias exactly when Fast-LLM's layer `layer` of the section has one
    /// (`.bias_from(field!(MlpConfig.layer_1))`): its `bias.enabled`, else the section's
    /// `add_linear_biases`.
    pub fn bias_from<C: LinearBiases, L: LayerBias>(self, layer: FieldPath<C, L>) -> Self {
        self.bias_when(move |c| effective_bias(c, layer))
    }

    /// With a bias when `condition` holds.
    pub fn bias_when(self, condition: impl Fn(&WeightContext) -> bool + Send + Sync + 'static) -> Self {
        Linear {
            bias: Some(Arc::new(condition)),
            ..self
        }
    }

    /// The HF names of the layer's tensor `suffix` (`weight`, `bias`).
    fn names(&self, suffix: &'static str) -> super::NamesFn {
        let (hf, experts) = (self.hf, self.experts.clone());
        Arc::new(move |c| match &experts {
            None => hf.iter().map(|layer| format!("{layer}.{suffix}")).collect(),
            Some(count) => (0..count(c))
                .flat_map(|e| hf.iter().map(move |layer| format!("experts.{e}.{layer}.{suffix}")))
                .collect(),
        })
    }

    /// The number of HF layers stacked in the Fast-LLM tensor.
    fn stacked(&self) -> Arc<dyn Fn(&WeightContext) -> usize + Send + Sync> {
        let (layers, experts) = (self.hf.len(), self.experts.clone());
        Arc::new(move |c| experts.as_ref().map_or(1, |count| count(c)).saturating_mul(layers))
    }

    fn weight(&self) -> WeightDecl {
        let (input, output, stacked) = (self.input.clone(), self.output.clone(), self.stacked());
        let transposed = self.transposed;
        let transform = match (transposed, self.hf.len() > 1 || self.experts.is_some()) {
            (false, false) => Transform::Copy,
            (false, true) => Transform::Concat,
            (true, false) => Transform::Transpose,
            (true, true) => Transform::TransposeConcat,
        };
        WeightDecl::Param(Param {
            fast_llm: format!("{}.weight", self.fast_llm).into(),
            hf: self.names("weight"),
            transform,
            shape: Arc::new(move |c| {
                let rows = |size: usize| stacked(c).saturating_mul(size);
                if transposed {
                    vec![rows(input(c)), output(c)]
                } else {
                    vec![rows(output(c)), input(c)]
                }
            }),
            when: self.when.clone(),
            hf_shape: None,
        })
    }

    fn bias(&self) -> Option<WeightDecl> {
        let bias = self.bias.clone()?;
        let when = self.when.clone();
        let (output, stacked) = (self.output.clone(), self.stacked());
        Some(WeightDecl::Param(Param {
            fast_llm: format!("{}.bias", self.fast_llm).into(),
            hf: self.names("bias"),
            transform: if self.hf.len() > 1 {
                Transform::Concat
            } else {
                Transform::Copy
            },
            shape: Arc::new(move |c| vec![stacked(c).saturating_mul(output(c))]),
            when: Some(Arc::new(move |c| when.as_ref().is_none_or(|w| w(c)) && bias(c))),
            hf_shape: None,
        }))
    }
}

impl From<Linear> for WeightDecl {
    /// The layer's weight, then its bias.
    fn from(layer: Linear) -> WeightDecl {
        WeightDecl::Group(std::iter::once(layer.weight()).chain(layer.bias()).collect())
    }
}

impl WeightDecl {
    /// A group of linear layers: their weights, then their biases (Llama's order).
    pub fn linears(layers: impl IntoIterator<Item = Linear>) -> WeightDecl {
        let layers: Vec<Linear> = layers.into_iter().collect();
        let weights = layers.iter().map(Linear::weight);
        WeightDecl::Group(weights.chain(layers.iter().filter_map(Linear::bias)).collect())
    }
}

/// A one-dimensional parameter of `size` elements, `fast_llm` ↔ `hf`.
pub fn vector(
    fast_llm: &'static str,
    hf: &'static str,
    size: impl Fn(&WeightContext) -> usize + Send + Sync + 'static,
) -> WeightDecl {
    WeightDecl::one_tensor(fast_llm, hf, Transform::Copy, move |c| vec![size(c)])
}

/// A norm's `weight` over `size` features, the same name on both sides.
pub fn norm(size: impl Fn(&WeightContext) -> usize + Send + Sync + 'static) -> WeightDecl {
    vector("weight", "weight", size)
}

/// The weights of `section` on the sub-config in the field `config` of the section
/// (`field!(DecoderBlockConfig.mlp)`), named under the field's path / `hf`. A field of another
/// class than the section's does not compile, nor does one holding no config:
///
/// ```compile_fail
/// # use std::sync::Arc;
/// # use fastllm_core::config::DecoderBlockConfig;
/// # use fastllm_core::field;
/// # use fastllm_core::section::Section;
/// # use fastllm_core::weights::{WeightDecl, nested};
/// fn mlp(section: &Arc<Section>) -> WeightDecl {
///     nested(field!(DecoderBlockConfig.mpl), "mlp", section)
/// }
/// ```
///
/// ```compile_fail
/// # use std::sync::Arc;
/// # use fastllm_core::config::MlpConfig;
/// # use fastllm_core::field;
/// # use fastllm_core::section::Section;
/// # use fastllm_core::weights::{WeightDecl, nested};
/// fn size(section: &Arc<Section>) -> WeightDecl {
///     nested(field!(MlpConfig.intermediate_size), "mlp", section)
/// }
/// ```
pub fn nested<M: ConfigMount>(config: M, hf: &'static str, section: &Arc<Section>) -> WeightDecl {
    let fast_llm = config.path();
    nested_as(config, fast_llm, hf, section)
}

/// [`nested`], its parameters named under `fast_llm` rather than the field's path (the
/// block's `normalization` holds both `norm_1` and `norm_2`).
pub fn nested_as<M: ConfigMount>(
    config: M,
    fast_llm: &'static str,
    hf: &'static str,
    section: &Arc<Section>,
) -> WeightDecl {
    WeightDecl::Nested {
        config: config.into(),
        fast_llm,
        hf,
        section: section.clone(),
    }
}

/// The weights of `section` on this section's own config, its HF names under `hf` (a root's
/// text model inside a multimodal checkpoint).
pub fn under_hf(hf: &'static str, section: &Arc<Section>) -> WeightDecl {
    WeightDecl::Nested {
        config: Mount::own(),
        fast_llm: "",
        hf,
        section: section.clone(),
    }
}

/// The blocks of the block sequence in the field `config` (`field!(TextModel.decoder)`), block
/// `i` under `<the field's path>.i` / `hf.i`.
pub fn blocks(config: impl ConfigMount, hf: &'static str, block: &Arc<Section>) -> WeightDecl {
    WeightDecl::Blocks {
        fast_llm: config.path(),
        config: config.into(),
        hf,
        block: block.clone(),
    }
}

/// The effective bias of the section's layer `layer`: its `bias.enabled` when set, else the
/// section's `add_linear_biases` — exactly when Fast-LLM's layer creates the bias
/// (`fastllm_layout` derives it the same way). A section of another class than `C` is reported.
pub fn effective_bias<C: LinearBiases, L: LayerBias>(c: &WeightContext, layer: FieldPath<C, L>) -> bool {
    c.config::<C>()
        .is_some_and(|config| layer.of(config).bias_enabled().unwrap_or(config.add_linear_biases()))
}

/// A config class whose `add_linear_biases` is the default of its layers' biases.
pub trait LinearBiases: FieldType + 'static {
    /// Its `add_linear_biases`.
    fn add_linear_biases(&self) -> bool;
}

/// A layer with a bias flag (`bias.enabled`): a linear layer or a convolution.
pub trait LayerBias: 'static {
    /// Its `bias.enabled`; `None` when unset.
    fn bias_enabled(&self) -> Option<bool>;
}

macro_rules! linear_biases {
    ($($class:ty),+) => {$(
        impl LinearBiases for $class {
            fn add_linear_biases(&self) -> bool {
                self.add_linear_biases
            }
        }
    )+};
}
linear_biases!(AttentionConfig, MlpConfig, MoeMlpConfig, MambaConfig);

macro_rules! layer_bias {
    ($($class:ty),+) => {$(
        impl LayerBias for $class {
            fn bias_enabled(&self) -> Option<bool> {
                self.bias.enabled
            }
        }
    )+};
}
layer_bias!(AffineLinearConfig, CausalConv1dConfig);
