//! Attention and rotary embeddings (Fast-LLM `layers/attention/{,rotary/}config.py`).

use fastllm_config_derive::Config;

use super::common::{AffineLinearConfig, NormalizationConfig, legacy_key_rules, remove_false_flag};
use crate::checks::{non_negative, positive, unit_interval};
use crate::{ClassRules, ConfigClass, Ctx, FieldSet, string_enum};

string_enum! {
    /// Fast-LLM `AttentionImplementation`.
    pub enum AttentionImplementation {
        Auto = "auto",
        Flash = "flash",
        Sdpa = "sdpa",
        SdpaNested = "sdpa_nested",
        SdpaDense = "sdpa_dense",
        Backup = "backup",
    }
}

/// Flash attention's largest supported head size.
const FLASH_MAX_HEAD_SIZE: i64 = 256;

/// `type: none`.
#[derive(Debug, Clone, Config)]
#[config(class = "NoRotaryConfig", type_name = "none")]
pub struct NoRotaryConfig {
    pub explicit: FieldSet,
}
impl ClassRules for NoRotaryConfig {}

/// `type: default`.
#[derive(Debug, Clone, Config)]
#[config(class = "DefaultRotaryConfig", type_name = "default")]
pub struct DefaultRotaryConfig {
    #[field(hint = architecture, default = 10000.0)]
    pub theta: f64,
    pub explicit: FieldSet,
}
// Rotary classes accept and drop a legacy `complex_format: false`.
legacy_key_rules!(DefaultRotaryConfig, "complex_format", remove_false_flag);

/// `type: llama3`.
#[derive(Debug, Clone, Config)]
#[config(class = "Llama3RotaryConfig", type_name = "llama3")]
pub struct Llama3RotaryConfig {
    #[field(hint = architecture, default = 10000.0)]
    pub theta: f64,
    #[field(hint = architecture, default = 8.0)]
    pub scale_factor: f64,
    #[field(hint = architecture, default = 1.0)]
    pub low_frequency_factor: f64,
    #[field(hint = architecture, default = 4.0)]
    pub high_frequency_factor: f64,
    #[field(hint = architecture, default = 8192)]
    pub original_context_length: i64,
    pub explicit: FieldSet,
}
legacy_key_rules!(
    Llama3RotaryConfig,
    "complex_format",
    remove_false_flag,
    fn check(&mut self, ctx: &mut Ctx) {
        if self.high_frequency_factor <= self.low_frequency_factor {
            ctx.rule_at(
                "high_frequency_factor",
                format!(
                    "must be > low_frequency_factor ({:?} <= {:?})",
                    self.high_frequency_factor, self.low_frequency_factor
                ),
            );
        }
    }
);

/// `type: yarn`.
#[derive(Debug, Clone, Config)]
#[config(class = "YarnRotaryConfig", type_name = "yarn")]
pub struct YarnRotaryConfig {
    #[field(hint = architecture, default = 10000.0)]
    pub theta: f64,
    #[field(hint = architecture, default = 8.0)]
    pub scale_factor: f64,
    /// Derived when unset (or explicitly null): `0.1 * ln(scale_factor) + 1`.
    #[field(hint = architecture, default = None)]
    pub attention_factor: Option<f64>,
    #[field(hint = architecture, default = 32.0)]
    pub beta_fast: f64,
    #[field(hint = architecture, default = 1.0)]
    pub beta_slow: f64,
    #[field(hint = architecture, default = 8192)]
    pub original_context_length: i64,
    pub explicit: FieldSet,
}
legacy_key_rules!(
    YarnRotaryConfig,
    "complex_format",
    remove_false_flag,
    fn derive_defaults(&mut self, _ctx: &mut Ctx) {
        if self.attention_factor.is_none() {
            // An explicit null is read as "absent" (published Apriel configs carry one).
            if let Some(index) = Self::field_index("attention_factor") {
                self.explicit.remove(index);
            }
            self.attention_factor = Some(0.1 * self.scale_factor.ln() + 1.0);
        }
    }
);

/// `type: default_2d` (image patches, Pixtral).
#[derive(Debug, Clone, Config)]
#[config(class = "Rotary2DConfig", type_name = "default_2d")]
pub struct Rotary2dConfig {
    #[field(hint = architecture, default = 10000.0)]
    pub theta: f64,
    pub explicit: FieldSet,
}
legacy_key_rules!(Rotary2dConfig, "complex_format", remove_false_flag);

/// `type: proportional` (rotary on a leading fraction of the head, Gemma 4).
#[derive(Debug, Clone, Config)]
#[config(class = "ProportionalRotaryConfig", type_name = "proportional")]
pub struct ProportionalRotaryConfig {
    #[field(hint = architecture, default = 10000.0)]
    pub theta: f64,
    #[field(hint = architecture, default = 1.0, check = unit_interval)]
    pub partial_rotary_factor: f64,
    pub explicit: FieldSet,
}
legacy_key_rules!(ProportionalRotaryConfig, "complex_format", remove_false_flag);

/// Fast-LLM `RotaryConfig` registry; absent `type` is **none**.
#[derive(Debug, Clone, Config)]
#[config(class = "RotaryConfig", default = None)]
pub enum RotaryConfig {
    None(NoRotaryConfig),
    Default(DefaultRotaryConfig),
    Llama3(Llama3RotaryConfig),
    Yarn(YarnRotaryConfig),
    Default2d(Rotary2dConfig),
    Proportional(ProportionalRotaryConfig),
}

/// `type: attention` — multi-head attention with grouped K/V heads.
#[derive(Debug, Clone, Config)]
#[config(class = "AttentionConfig", type_name = "attention")]
pub struct AttentionConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub query_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub key_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub value_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub dense_layer: AffineLinearConfig,
    #[field(hint = architecture)]
    pub rotary: RotaryConfig,
    #[field(hint = architecture, default = 8)]
    pub heads: i64,
    #[field(hint = architecture, default = 1, check = positive)]
    pub head_groups: i64,
    #[field(hint = architecture, default = 128, check = positive)]
    pub head_size: i64,
    #[field(hint = architecture, default = true)]
    pub add_linear_biases: bool,
    #[field(hint = architecture, default = true)]
    pub causal: bool,
    #[field(hint = feature, default = 0.0, check = non_negative)]
    pub dropout: f64,
    #[field(hint = optional, default = true)]
    pub use_flash_attention: bool,
    #[field(hint = feature, default = None, check = non_negative)]
    pub window_size: Option<i64>,
    #[field(hint = architecture, default = 0.5, check = non_negative)]
    pub softmax_scale_power: f64,
    #[field(hint = feature, default = AttentionImplementation::Auto)]
    pub implementation: AttentionImplementation,
    #[field(hint = architecture, default = None)]
    pub query_norm: Option<NormalizationConfig>,
    #[field(hint = architecture, default = None)]
    pub key_norm: Option<NormalizationConfig>,
    #[field(hint = architecture, default = None)]
    pub value_norm: Option<NormalizationConfig>,
    #[field(hint = architecture, default = false)]
    pub shared_key_value: bool,
    pub explicit: FieldSet,
}

impl ClassRules for AttentionConfig {
    fn check(&mut self, ctx: &mut Ctx) {
        if self.head_groups > 0 && self.heads % self.head_groups != 0 {
            ctx.rule_at(
                "heads",
                format!(
                    "must be a multiple of head_groups ({} % {} != 0)",
                    self.heads, self.head_groups
                ),
            );
        }
        if !self.causal && self.window_size.is_some() {
            ctx.rule_at("window_size", "non-causal windowed attention is not supported");
        }
        if self.implementation == AttentionImplementation::Flash && self.head_size > FLASH_MAX_HEAD_SIZE {
            ctx.rule_at(
                "head_size",
                format!(
                    "flash attention supports head_size <= {FLASH_MAX_HEAD_SIZE}, got {}",
                    self.head_size
                ),
            );
        }
        if self.implementation == AttentionImplementation::SdpaNested && self.window_size.is_some() {
            ctx.rule_at(
                "window_size",
                "`sdpa_nested` does not support sliding window; use `sdpa` or `sdpa_dense`",
            );
        }
    }
}
