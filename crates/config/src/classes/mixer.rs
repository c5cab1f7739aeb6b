//! Mixers other than attention: stochastic, Mamba, gated delta net, Kimi delta attention
//! (Fast-LLM `layers/decoder/config.py`, `layers/ssm/config.py`).

use std::collections::{BTreeMap, BTreeSet};

use fastllm_config_derive::Config;

use super::attention::AttentionConfig;
use super::common::{AffineLinearConfig, CausalConv1dConfig, GatedRmsNormalizationConfig, ParameterConfig};
use crate::checks::positive;
use crate::{ClassRules, Ctx, FieldSet, string_enum};

string_enum! {
    /// Fast-LLM `StochasticMixerSamplingStrategy`.
    pub enum StochasticMixerSamplingStrategy {
        Uniform = "uniform",
        Weighted = "weighted",
        FullLayout = "full_layout",
    }
}

/// `StochasticMixerConfig.seed_shift`'s default (Fast-LLM `_BIG_PRIMES[11]`).
pub const DEFAULT_SEED_SHIFT: i128 = 501974169931277706872159392843;

/// `type: stochastic` — several named mixers, one sampled per step.
#[derive(Debug, Clone, Config)]
#[config(class = "StochasticMixerConfig", type_name = "stochastic")]
pub struct StochasticMixerConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture, default = None)]
    pub mixers: Option<BTreeMap<String, MixerConfig>>,
    #[field(hint = feature, default = StochasticMixerSamplingStrategy::Uniform)]
    pub sampling_strategy: StochasticMixerSamplingStrategy,
    #[field(hint = feature, default = None)]
    pub sampling_weights: Option<BTreeMap<String, f64>>,
    /// Derived when unset: the first mixer name in sorted order.
    #[field(hint = architecture, default = None)]
    pub main_mixer_name: Option<String>,
    #[field(hint = feature, default = Vec::new())]
    pub predefined_layouts: Vec<Vec<String>>,
    #[field(hint = feature, default = Vec::new())]
    pub predefined_layout_probabilities: Vec<f64>,
    #[field(hint = optional, default = DEFAULT_SEED_SHIFT)]
    pub seed_shift: i128,
    pub explicit: FieldSet,
}

impl ClassRules for StochasticMixerConfig {
    fn check(&mut self, ctx: &mut Ctx) {
        let names: Vec<String> = match &self.mixers {
            None => {
                ctx.rule_at("mixers", "mixers must be provided for StochasticMixerConfig");
                return;
            }
            Some(mixers) if mixers.is_empty() => {
                ctx.rule_at("mixers", "must contain at least one mixer");
                return;
            }
            Some(mixers) => mixers.keys().cloned().collect(),
        };
        match &self.main_mixer_name {
            None => self.main_mixer_name = Some(names[0].clone()),
            Some(main) if !names.contains(main) => {
                ctx.rule_at(
                    "main_mixer_name",
                    format!("main_mixer_name `{main}` not found in mixers {names:?}"),
                );
            }
            Some(_) => {}
        }
        if self.sampling_strategy == StochasticMixerSamplingStrategy::FullLayout && self.sampling_weights.is_some() {
            ctx.rule_at(
                "sampling_weights",
                "sampling_weights is not compatible with full_layout sampling strategy",
            );
        }
        if let Some(weights) = &mut self.sampling_weights {
            let keys: Vec<&String> = weights.keys().collect();
            let mixer_keys: Vec<&String> = names.iter().collect();
            if keys != mixer_keys {
                ctx.rule_at(
                    "sampling_weights",
                    format!("keys {keys:?} must equal the mixer names {mixer_keys:?}"),
                );
            } else if weights.values().any(|w| *w < 0.0) {
                ctx.rule_at("sampling_weights", "weights must be non-negative");
            } else {
                let total: f64 = weights.values().sum();
                if total > 0.0 {
                    // Fast-LLM normalizes with an explicit assignment, so the result stays explicit.
                    weights.values_mut().for_each(|w| *w /= total);
                } else {
                    ctx.rule_at("sampling_weights", "weights must have a positive sum");
                }
            }
        }
        if let Some(first) = self.predefined_layouts.first() {
            let common_length = first.len();
            if self.predefined_layout_probabilities.len() != self.predefined_layouts.len() {
                ctx.rule_at(
                    "predefined_layout_probabilities",
                    format!(
                        "has {} entries, predefined_layouts has {}",
                        self.predefined_layout_probabilities.len(),
                        self.predefined_layouts.len()
                    ),
                );
                return;
            }
            let known: BTreeSet<&String> = names.iter().collect();
            for (i, (layout, probability)) in self
                .predefined_layouts
                .iter()
                .zip(&self.predefined_layout_probabilities)
                .enumerate()
            {
                let unknown: Vec<&String> = layout.iter().filter(|n| !known.contains(n)).collect();
                if !unknown.is_empty() {
                    ctx.rule_at(
                        "predefined_layouts",
                        format!("entry {i} contains unknown mixer names {unknown:?}"),
                    );
                }
                if layout.len() != common_length {
                    ctx.rule_at(
                        "predefined_layouts",
                        format!("entry {i} has length {}, expected {common_length}", layout.len()),
                    );
                }
                if !(0.0..=1.0).contains(probability) {
                    ctx.rule_at(
                        "predefined_layout_probabilities",
                        format!("entry {i} must be in [0, 1]"),
                    );
                }
            }
            let total: f64 = self.predefined_layout_probabilities.iter().sum();
            if total > 1.0 {
                ctx.rule_at(
                    "predefined_layout_probabilities",
                    format!("must sum to <= 1, got {total:?}"),
                );
            }
        } else if !self.predefined_layout_probabilities.is_empty() {
            ctx.rule_at(
                "predefined_layout_probabilities",
                "predefined_layout_probabilities provided but predefined_layouts is empty",
            );
        }
    }
}

/// `type: mamba` (legacy `mamba_2`) — Mamba-2 with a fused input projection.
#[derive(Debug, Clone, Config)]
#[config(class = "MambaConfig", type_name = "mamba", aliases = ["mamba_2"])]
pub struct MambaConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub z_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub x_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub b_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub c_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub convolution_layer: CausalConv1dConfig,
    #[field(hint = architecture)]
    pub d_weight: ParameterConfig,
    #[field(hint = architecture)]
    pub output_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub dt_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub a_log_weight: ParameterConfig,
    #[field(hint = architecture)]
    pub dt_input_layer: AffineLinearConfig,
    #[field(hint = architecture, default = 16, check = positive)]
    pub state_size: i64,
    /// Hint `core` in Fast-LLM, not architecture.
    #[field(hint = core, default = 2048)]
    pub d_inner: i64,
    #[field(hint = architecture, default = 1024)]
    pub d_xb: i64,
    #[field(hint = architecture, default = 64)]
    pub dt_rank: i64,
    #[field(hint = architecture, default = true)]
    pub add_linear_biases: bool,
    #[field(hint = architecture, default = true)]
    pub repeat_kv_before_conv: bool,
    #[field(hint = feature, default = true)]
    pub cross_document_attention: bool,
    pub explicit: FieldSet,
}

// `mamba_2` is read as `mamba` through the alias; it is written back as `mamba`, as Fast-LLM does.
impl ClassRules for MambaConfig {}

/// `type: gdn` — gated delta net.
#[derive(Debug, Clone, Config)]
#[config(class = "GatedDeltaNetConfig", type_name = "gdn")]
pub struct GatedDeltaNetConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub normalization: GatedRmsNormalizationConfig,
    #[field(hint = architecture)]
    pub qkv_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub ba_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub convolution_layer: CausalConv1dConfig,
    #[field(hint = architecture)]
    pub output_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub dt_bias_weight: ParameterConfig,
    #[field(hint = architecture)]
    pub a_log_weight: ParameterConfig,
    #[field(hint = architecture, default = 16, check = positive)]
    pub value_heads: i64,
    #[field(hint = architecture, default = 8, check = positive)]
    pub key_heads: i64,
    #[field(hint = architecture, default = 64, check = positive)]
    pub key_head_dim: i64,
    #[field(hint = architecture, default = 64, check = positive)]
    pub value_head_dim: i64,
    pub explicit: FieldSet,
}

impl ClassRules for GatedDeltaNetConfig {
    fn check(&mut self, ctx: &mut Ctx) {
        if self.key_heads > 0 && self.value_heads % self.key_heads != 0 {
            ctx.rule_at(
                "value_heads",
                format!(
                    "must be a multiple of key_heads ({} % {} != 0)",
                    self.value_heads, self.key_heads
                ),
            );
        }
    }
}

/// `type: kda` — Kimi delta attention.
#[derive(Debug, Clone, Config)]
#[config(class = "KimiDeltaAttentionConfig", type_name = "kda")]
pub struct KimiDeltaAttentionConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub normalization: GatedRmsNormalizationConfig,
    #[field(hint = architecture)]
    pub q_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub k_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub v_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub f_a_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub f_b_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub g_a_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub g_b_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub beta_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub output_projection_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub convolution_layer: CausalConv1dConfig,
    #[field(hint = architecture)]
    pub dt_bias_weight: ParameterConfig,
    #[field(hint = architecture)]
    pub a_log_weight: ParameterConfig,
    #[field(hint = architecture, default = 16, check = positive)]
    pub heads: i64,
    #[field(hint = architecture, default = 64, check = positive)]
    pub head_dim: i64,
    pub explicit: FieldSet,
}
impl ClassRules for KimiDeltaAttentionConfig {}

/// Fast-LLM `MixerConfig` registry; absent `type` is attention.
#[derive(Debug, Clone, Config)]
#[config(class = "MixerConfig", default = Attention)]
pub enum MixerConfig {
    Attention(AttentionConfig),
    Stochastic(StochasticMixerConfig),
    Mamba(MambaConfig),
    Gdn(GatedDeltaNetConfig),
    Kda(KimiDeltaAttentionConfig),
}
