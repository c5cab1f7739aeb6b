//! Named builders for the weight declarations tables are made of: a linear layer with its
//! optional bias, a norm, a vector, and the structural ones (a sub-section, the blocks of a
//! sequence, a section per runtime type).

use std::sync::Arc;

use fastllm_config::Value;

use super::{Param, Transform, WeightContext, WeightDecl, WhenFn};
use crate::section::Section;

/// A size computed from the config (a width, heads × head size, ...).
pub type Dim = Arc<dyn Fn(&WeightContext) -> usize + Send + Sync>;

/// A linear layer: Fast-LLM's `<fast_llm>.weight` `[out, in]` ↔ HF `<hf>.weight` (several HF
/// layers concatenated along `out`), and a bias `[out]` when declared. See [`linear`].
#[derive(Clone)]
pub struct Linear {
    fast_llm: &'static str,
    hf: &'static [&'static str],
    input: Dim,
    output: Dim,
    transposed: bool,
    /// Per expert (the count at this config path), HF `experts.<e>.<hf>`.
    experts: Option<&'static str>,
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

    /// One such layer per expert (their count at the config path `count`), HF
    /// `experts.<e>.<hf>`, concatenated expert by expert.
    pub fn experts(self, count: &'static str) -> Self {
        Linear {
            experts: Some(count),
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

    /// With a bias exactly when Fast-LLM's layer `layer` has one: its `bias.enabled`, else the
    /// section's `add_linear_biases`.
    pub fn bias_from(self, layer: &'static str) -> Self {
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
        let (hf, experts) = (self.hf, self.experts);
        Arc::new(move |c| match experts {
            None => hf.iter().map(|layer| format!("{layer}.{suffix}")).collect(),
            Some(count) => (0..c.count(count))
                .flat_map(|e| hf.iter().map(move |layer| format!("experts.{e}.{layer}.{suffix}")))
                .collect(),
        })
    }

    /// The number of HF layers stacked in the Fast-LLM tensor.
    fn stacked(&self) -> Arc<dyn Fn(&WeightContext) -> usize + Send + Sync> {
        let (layers, experts) = (self.hf.len(), self.experts);
        Arc::new(move |c| experts.map_or(1, |count| c.count(count)).saturating_mul(layers))
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
    WeightDecl::param_named(
        fast_llm,
        move |_| vec![hf.to_string()],
        Transform::Copy,
        move |c| vec![size(c)],
    )
}

/// A norm's `weight` over `size` features, the same name on both sides.
pub fn norm(size: impl Fn(&WeightContext) -> usize + Send + Sync + 'static) -> WeightDecl {
    vector("weight", "weight", size)
}

/// The weights of `section` on the sub-config at `config`, named under `fast_llm` / `hf`.
pub fn nested(config: &'static str, fast_llm: &'static str, hf: &'static str, section: &Arc<Section>) -> WeightDecl {
    WeightDecl::Nested {
        config,
        fast_llm,
        hf,
        section: section.clone(),
    }
}

/// The blocks of the block sequence at `config`, block `i` under `fast_llm.i` / `hf.i`.
pub fn blocks(config: &'static str, fast_llm: &'static str, hf: &'static str, block: &Arc<Section>) -> WeightDecl {
    WeightDecl::Blocks {
        config,
        fast_llm,
        hf,
        block: block.clone(),
    }
}

/// The effective bias of `layer`: its `bias.enabled` when set, else the section's
/// `add_linear_biases` — exactly when Fast-LLM's layer creates the bias (`fastllm_layout`
/// derives it the same way).
pub fn effective_bias(c: &WeightContext, layer: &str) -> bool {
    match c.value(&format!("{layer}.bias.enabled")) {
        Value::Bool(enabled) => enabled,
        _ => c.flag("add_linear_biases"),
    }
}
