//! Parameters, initializations, linear layers, normalizations and PEFT
//! (Fast-LLM `engine/config_utils/{parameter,initialization}.py`, `layers/common/*/config.py`).

use fastllm_config_derive::Config;

use crate::checks::{non_negative, positive};
use crate::field_types::WeightDecay;
use crate::{ClassRules, Ctx, FieldSet, Map, string_enum};

string_enum! {
    /// Fast-LLM `ActivationType`.
    pub enum ActivationType {
        Gelu = "gelu",
        Silu = "silu",
        Relu = "relu",
        Sigmoid = "sigmoid",
        SquaredRelu = "squared_relu",
        Identity = "identity",
    }
}

string_enum! {
    /// Fast-LLM `NormalizationImplementation`.
    pub enum NormalizationImplementation {
        Auto = "auto",
        Torch = "torch",
        Fused = "fused",
        Fast = "fast",
        Triton = "triton",
    }
}

// ---------------------------------------------------------------------------------------------
// Initialization

/// "Use the layer's own default initialization" (no dynamic type name).
#[derive(Debug, Clone, Config)]
#[config(class = "DefaultInitializationConfig")]
pub struct DefaultInitializationConfig {
    pub explicit: FieldSet,
}
impl ClassRules for DefaultInitializationConfig {}

/// `type: fill`.
#[derive(Debug, Clone, Config)]
#[config(class = "FillInitializationConfig", type_name = "fill")]
pub struct FillInitializationConfig {
    #[field(hint = optional, default = 1.0, check = non_negative)]
    pub value: f64,
    pub explicit: FieldSet,
}
impl ClassRules for FillInitializationConfig {}

/// `type: normal`.
#[derive(Debug, Clone, Config)]
#[config(class = "NormalInitializationConfig", type_name = "normal")]
pub struct NormalInitializationConfig {
    #[field(hint = optional, default = 1.0, check = non_negative)]
    pub std: f64,
    #[field(hint = optional, default = 0.0)]
    pub mean: f64,
    #[field(hint = optional, default = None)]
    pub min: Option<f64>,
    #[field(hint = optional, default = None)]
    pub max: Option<f64>,
    pub explicit: FieldSet,
}
impl ClassRules for NormalInitializationConfig {}

/// `type: uniform`.
#[derive(Debug, Clone, Config)]
#[config(class = "UniformInitializationConfig", type_name = "uniform")]
pub struct UniformInitializationConfig {
    #[field(hint = core, required, check = non_negative)]
    pub scale: f64,
    #[field(hint = optional, default = 0.0)]
    pub mean: f64,
    pub explicit: FieldSet,
}
impl ClassRules for UniformInitializationConfig {}

/// `type: mamba_dt_bias`.
#[derive(Debug, Clone, Config)]
#[config(class = "MambaDTBiasInitializationConfig", type_name = "mamba_dt_bias")]
pub struct MambaDtBiasInitializationConfig {
    #[field(hint = core, default = 0.001, check = positive)]
    pub min_step_size: f64,
    #[field(hint = core, default = 0.1, check = positive)]
    pub max_step_size: f64,
    #[field(hint = core, default = 1e-4, check = positive)]
    pub floor: f64,
    pub explicit: FieldSet,
}
impl ClassRules for MambaDtBiasInitializationConfig {
    fn check(&mut self, ctx: &mut Ctx) {
        if self.max_step_size < self.min_step_size {
            ctx.rule_at(
                "max_step_size",
                format!(
                    "must be >= min_step_size ({:?} < {:?})",
                    self.max_step_size, self.min_step_size
                ),
            );
        }
    }
}

/// `type: mamba_a`.
#[derive(Debug, Clone, Config)]
#[config(class = "MambaAInitializationConfig", type_name = "mamba_a")]
pub struct MambaAInitializationConfig {
    #[field(hint = core, required, check = positive)]
    pub state_size: i64,
    #[field(hint = core, required, check = positive)]
    pub d_inner: i64,
    pub explicit: FieldSet,
}
impl ClassRules for MambaAInitializationConfig {}

/// Fast-LLM `InitializationConfig` registry; absent `type` is the layer default.
#[derive(Debug, Clone, Config)]
#[config(class = "InitializationConfig", default = Default)]
pub enum InitializationConfig {
    Default(DefaultInitializationConfig),
    Fill(FillInitializationConfig),
    Normal(NormalInitializationConfig),
    Uniform(UniformInitializationConfig),
    MambaDtBias(MambaDtBiasInitializationConfig),
    MambaA(MambaAInitializationConfig),
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// A learnable tensor's training settings; nothing here is architecture.
#[derive(Debug, Clone, Config)]
#[config(class = "ParameterConfig")]
pub struct ParameterConfig {
    #[field(hint = feature)]
    pub initialization: InitializationConfig,
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = feature, default = None)]
    pub weight_decay: Option<WeightDecay>,
    pub explicit: FieldSet,
}
impl ClassRules for ParameterConfig {}

/// The owner's default for an [`OptionalParameterConfig`] whose `enabled` is unset: a layer's
/// bias follows its block's or mixer's `add_linear_biases`; some layers have none by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultBias {
    On,
    Off,
}

impl DefaultBias {
    /// The default a config's `add_linear_biases` gives its layers.
    pub fn from_flag(add_linear_biases: bool) -> Self {
        if add_linear_biases {
            DefaultBias::On
        } else {
            DefaultBias::Off
        }
    }

    /// Whether the parameter exists: `enabled` when set, else this default.
    pub fn resolve(self, enabled: Option<bool>) -> bool {
        enabled.unwrap_or(self == DefaultBias::On)
    }
}

/// A parameter that may be absent: created iff `enabled`, or `enabled` unset and the owner's default is on.
#[derive(Debug, Clone, Config)]
#[config(class = "OptionalParameterConfig")]
pub struct OptionalParameterConfig {
    #[config(base)]
    pub base: ParameterConfig,
    /// Hint `unknown` in Fast-LLM: not architecture, although it decides whether the tensor exists.
    #[field(hint = unknown, default = None)]
    pub enabled: Option<bool>,
    pub explicit: FieldSet,
}
impl ClassRules for OptionalParameterConfig {}

// ---------------------------------------------------------------------------------------------
// Linear layers

/// A linear layer without bias (MoE router).
#[derive(Debug, Clone, Config)]
#[config(class = "LinearConfig")]
pub struct LinearConfig {
    #[field(hint = architecture)]
    pub weight: ParameterConfig,
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = feature, default = None)]
    pub apply_peft: Option<bool>,
    pub explicit: FieldSet,
}
impl ClassRules for LinearConfig {}

/// A linear layer with an optional bias (Fast-LLM's `AffineLinearConfig` also inherits the
/// abstract `AffineLinearBaseConfig`, which adds only `bias`).
#[derive(Debug, Clone, Config)]
#[config(class = "AffineLinearConfig")]
pub struct AffineLinearConfig {
    #[config(base)]
    pub base: LinearConfig,
    #[field(hint = architecture)]
    pub bias: OptionalParameterConfig,
    pub explicit: FieldSet,
}
impl ClassRules for AffineLinearConfig {}

/// A depthwise causal 1-d convolution.
#[derive(Debug, Clone, Config)]
#[config(class = "CausalConv1dConfig")]
pub struct CausalConv1dConfig {
    #[field(hint = architecture)]
    pub weight: ParameterConfig,
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub bias: OptionalParameterConfig,
    #[field(hint = architecture, default = 4, check = positive)]
    pub kernel_size: i64,
    #[field(hint = architecture, default = None)]
    pub activation: Option<ActivationType>,
    pub explicit: FieldSet,
}
impl ClassRules for CausalConv1dConfig {}

// ---------------------------------------------------------------------------------------------
// Normalization

/// `type: none`.
#[derive(Debug, Clone, Config)]
#[config(class = "NoNormalizationConfig", type_name = "none")]
pub struct NoNormalizationConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    pub explicit: FieldSet,
}
impl ClassRules for NoNormalizationConfig {}

/// Fast-LLM's abstract `LayerNormalizationBaseConfig`: what layer and RMS norms share (no
/// `type`: only its subclasses are registered).
#[derive(Debug, Clone, Config)]
#[config(class = "LayerNormalizationBaseConfig")]
pub struct LayerNormalizationBaseConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub weight: ParameterConfig,
    #[field(hint = architecture, default = 1e-5, check = positive)]
    pub epsilon: f64,
    #[field(hint = architecture, default = false)]
    pub zero_centered: bool,
    #[field(hint = performance, default = NormalizationImplementation::Auto)]
    pub implementation: NormalizationImplementation,
    pub explicit: FieldSet,
}
impl ClassRules for LayerNormalizationBaseConfig {}

/// `type: layer_norm` (weight and bias).
#[derive(Debug, Clone, Config)]
#[config(class = "LayerNormalizationConfig", type_name = "layer_norm")]
pub struct LayerNormalizationConfig {
    #[config(base)]
    pub base: LayerNormalizationBaseConfig,
    #[field(hint = architecture)]
    pub bias: ParameterConfig,
    pub explicit: FieldSet,
}
impl ClassRules for LayerNormalizationConfig {}

/// `type: rms_norm` (weight only: nothing beyond its base).
#[derive(Debug, Clone, Config)]
#[config(class = "RMSNormalizationConfig", type_name = "rms_norm")]
pub struct RmsNormalizationConfig {
    #[config(base)]
    pub base: LayerNormalizationBaseConfig,
    pub explicit: FieldSet,
}
impl ClassRules for RmsNormalizationConfig {}

/// `type: fixed_rms_norm` (no weight).
#[derive(Debug, Clone, Config)]
#[config(class = "FixedRMSNormConfig", type_name = "fixed_rms_norm")]
pub struct FixedRmsNormConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture, default = 1e-5, check = positive)]
    pub epsilon: f64,
    pub explicit: FieldSet,
}
impl ClassRules for FixedRmsNormConfig {}

/// `type: gated_rms_norm` (RMS norm with an activation gate, used by GDN and KDA).
#[derive(Debug, Clone, Config)]
#[config(class = "GatedRMSNormalizationConfig", type_name = "gated_rms_norm")]
pub struct GatedRmsNormalizationConfig {
    #[config(base)]
    pub base: RmsNormalizationConfig,
    #[field(hint = core, default = ActivationType::Silu)]
    pub activation: ActivationType,
    pub explicit: FieldSet,
}
impl ClassRules for GatedRmsNormalizationConfig {}

/// Fast-LLM `NormalizationConfig` registry; absent `type` is **layer norm**.
#[derive(Debug, Clone, Config)]
#[config(class = "NormalizationConfig", default = LayerNorm)]
pub enum NormalizationConfig {
    None(NoNormalizationConfig),
    LayerNorm(LayerNormalizationConfig),
    RmsNorm(RmsNormalizationConfig),
    FixedRmsNorm(FixedRmsNormConfig),
    GatedRmsNorm(GatedRmsNormalizationConfig),
}

// ---------------------------------------------------------------------------------------------
// PEFT

/// `type: none`.
#[derive(Debug, Clone, Config)]
#[config(class = "NoPeftConfig", type_name = "none")]
pub struct NoPeftConfig {
    pub explicit: FieldSet,
}
impl ClassRules for NoPeftConfig {}

/// `type: lora`.
#[derive(Debug, Clone, Config)]
#[config(class = "LoRAConfig", type_name = "lora")]
pub struct LoraConfig {
    #[field(hint = stability, default = 8)]
    pub rank: i64,
    #[field(hint = stability, default = 8.0)]
    pub alpha: f64,
    #[field(hint = stability, default = 0.0)]
    pub dropout: f64,
    #[field(hint = unknown, default = true)]
    pub freeze_others: bool,
    pub explicit: FieldSet,
}
impl ClassRules for LoraConfig {}

/// Fast-LLM `PeftConfig` registry; absent `type` is `none`.
#[derive(Debug, Clone, Config)]
#[config(class = "PeftConfig", default = None)]
pub enum PeftConfig {
    None(NoPeftConfig),
    Lora(LoraConfig),
}

/// `ClassRules` for a class whose input may carry the legacy key `$key`, which
/// `$rewrite(map, $key, ctx)` takes out before the class is parsed ([`remove_false_flag`],
/// [`drop_legacy_key`]); the class's other `ClassRules` items (a `check`, ...) follow.
macro_rules! legacy_key_rules {
    ($name:ident, $key:literal, $rewrite:path $(, $body:item)*) => {
        impl $crate::ClassRules for $name {
            fn rewrites_input(map: &$crate::Map) -> bool {
                map.contains_key($key)
            }
            fn rewrite_input(map: &mut $crate::Map, ctx: &mut $crate::Ctx) {
                $rewrite(map, $key, ctx);
            }
            $($body)*
        }
    };
}
pub(crate) use legacy_key_rules;

/// Removes a legacy key whatever its value, as Fast-LLM drops it (with a warning).
pub(crate) fn drop_legacy_key(map: &mut Map, key: &str, _ctx: &mut Ctx) {
    map.remove(key);
}

/// Removes a legacy key whose only allowed value is `false` (rotary `complex_format`).
pub(crate) fn remove_false_flag(map: &mut Map, key: &str, ctx: &mut Ctx) {
    if let Some(value) = map.remove(key)
        && value != crate::Value::Bool(false)
    {
        ctx.rule_at(
            key,
            format!(
                "legacy key `{key}` is only accepted as false, found {}",
                value.describe()
            ),
        );
    }
}
