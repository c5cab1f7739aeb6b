//! MLPs, the decoder block and block sequences
//! (Fast-LLM `layers/decoder/{,mlp/}config.py`, `layers/block/config.py`).

use std::collections::{BTreeMap, BTreeSet};

use fastllm_config_derive::Config;

use super::common::{
    ActivationType, AffineLinearConfig, LinearConfig, NormalizationConfig, OptionalParameterConfig, drop_legacy_key,
    legacy_key_rules,
};
use super::mixer::MixerConfig;
use crate::checks::{block_count, greater_than_one, non_negative, positive};
use crate::{ClassRules, Ctx, FieldSet, string_enum};

string_enum! {
    /// Fast-LLM `MLPRecomputeLevel`.
    pub enum MlpRecomputeLevel {
        None = "none",
        Activation = "activation",
        ActivationAndInput = "activation_and_input",
        Full = "full",
    }
}

string_enum! {
    /// Fast-LLM `RoutingType` (the `topk` member serializes as `aux_loss`).
    pub enum RoutingType {
        AuxLoss = "aux_loss",
        Sinkhorn = "sinkhorn",
    }
}

string_enum! {
    /// Fast-LLM `MoEImplementation`.
    pub enum MoeImplementation {
        Auto = "auto",
        Dropless = "dropless",
        Looped = "looped",
    }
}

/// The fields of every MLP: Fast-LLM's abstract `MLPBaseConfig`, whose subclasses
/// [`MlpBaseConfig`] dispatches on.
#[derive(Debug, Clone, Config)]
#[config(class = "MLPBaseConfig")]
pub struct MlpBaseFields {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture, default = None)]
    pub pre_norm: Option<NormalizationConfig>,
    #[field(hint = architecture, default = None)]
    pub post_norm: Option<NormalizationConfig>,
    pub explicit: FieldSet,
}
impl ClassRules for MlpBaseFields {}

/// `type: mlp` — dense (optionally gated) MLP.
#[derive(Debug, Clone, Config)]
#[config(class = "MLPConfig", type_name = "mlp")]
pub struct MlpConfig {
    #[config(base)]
    pub base: MlpBaseFields,
    #[field(hint = architecture)]
    pub layer_1: AffineLinearConfig,
    #[field(hint = architecture)]
    pub layer_2: AffineLinearConfig,
    #[field(hint = architecture, default = 4096, check = positive)]
    pub intermediate_size: i64,
    #[field(hint = architecture, default = true)]
    pub add_linear_biases: bool,
    #[field(hint = architecture, default = false)]
    pub gated: bool,
    /// Derived when unset: `silu` if gated, else `gelu`.
    #[field(hint = architecture, default = None)]
    pub activation: Option<ActivationType>,
    #[field(hint = performance, default = MlpRecomputeLevel::None)]
    pub recompute_level: MlpRecomputeLevel,
    pub explicit: FieldSet,
}

fn default_activation(gated: bool) -> ActivationType {
    if gated {
        ActivationType::Silu
    } else {
        ActivationType::Gelu
    }
}

impl ClassRules for MlpConfig {
    fn derive_defaults(&mut self, _ctx: &mut Ctx) {
        self.activation.get_or_insert(default_activation(self.gated));
    }
    fn check(&mut self, ctx: &mut Ctx) {
        if let Err(rule) = non_negative(&self.lr_scale) {
            ctx.rule_at("lr_scale", rule);
        }
    }
}

/// `type: moe` — routed mixture of experts: an MLP (its fields first, read as this class's)
/// plus routing.
#[derive(Debug, Clone, Config)]
#[config(class = "MoEMLPConfig", type_name = "moe")]
pub struct MoeMlpConfig {
    #[config(base)]
    pub base: MlpConfig,
    #[field(hint = architecture)]
    pub router: LinearConfig,
    #[field(hint = architecture, default = None)]
    pub router_normalization: Option<NormalizationConfig>,
    #[field(hint = architecture)]
    pub router_scale: OptionalParameterConfig,
    #[field(hint = architecture, default = 1.0)]
    pub router_input_scale: f64,
    #[field(hint = architecture)]
    pub router_per_expert_scale: OptionalParameterConfig,
    #[field(hint = architecture, default = 2, check = greater_than_one)]
    pub experts: i64,
    #[field(hint = architecture, default = 0, check = non_negative)]
    pub shared_experts: i64,
    #[field(hint = architecture, default = 1, check = positive)]
    pub experts_per_token: i64,
    #[field(hint = architecture, default = RoutingType::AuxLoss)]
    pub routing: RoutingType,
    #[field(hint = feature, default = 0.01, check = non_negative)]
    pub auxiliary_loss_coefficient: f64,
    #[field(hint = feature, default = 0.0, check = non_negative)]
    pub z_loss_coefficient: f64,
    #[field(hint = feature, default = 0.0, check = non_negative)]
    pub jitter_eps: f64,
    #[field(hint = expert, default = MoeImplementation::Auto)]
    pub implementation: MoeImplementation,
    #[field(hint = expert, default = false)]
    pub dropless_dynamic_shape: bool,
    pub explicit: FieldSet,
}

// The MLP's derived `activation` and its `lr_scale` rule run first, as its base's.
impl ClassRules for MoeMlpConfig {
    fn check(&mut self, ctx: &mut Ctx) {
        if self.shared_experts > self.experts {
            ctx.rule_at(
                "shared_experts",
                format!("must be <= experts ({} > {})", self.shared_experts, self.experts),
            );
        }
        if self.shared_experts + self.experts_per_token > self.experts {
            ctx.rule_at(
                "experts_per_token",
                format!(
                    "shared_experts + experts_per_token must be <= experts ({} + {} > {})",
                    self.shared_experts, self.experts_per_token, self.experts
                ),
            );
        }
    }
}

/// `type: hybrid_moe` — an always-on dense MLP plus a routed MoE, summed.
#[derive(Debug, Clone, Config)]
#[config(class = "HybridMoEMLPConfig", type_name = "hybrid_moe")]
pub struct HybridMoeMlpConfig {
    #[config(base)]
    pub base: MlpBaseFields,
    #[field(hint = architecture)]
    pub dense: MlpConfig,
    #[field(hint = architecture)]
    pub routed: MoeMlpConfig,
    pub explicit: FieldSet,
}

impl ClassRules for HybridMoeMlpConfig {
    fn check(&mut self, ctx: &mut Ctx) {
        if self.routed.shared_experts != 0 {
            ctx.rule_at(
                "routed",
                format!("shared_experts must be 0, got {}", self.routed.shared_experts),
            );
        }
        if self.dense.gated != self.routed.gated {
            ctx.rule_at("routed", "dense.gated and routed.gated must be equal");
        }
        if self.dense.activation != self.routed.activation {
            ctx.rule_at("routed", "dense.activation and routed.activation must be equal");
        }
    }
}

/// Fast-LLM `MLPBaseConfig` registry; absent `type` is a dense MLP.
#[derive(Debug, Clone, Config)]
#[config(class = "MLPBaseConfig", default = Mlp)]
pub enum MlpBaseConfig {
    Mlp(MlpConfig),
    Moe(MoeMlpConfig),
    HybridMoe(HybridMoeMlpConfig),
}

/// `type: decoder` — mixer + MLP with their normalizations.
#[derive(Debug, Clone, Config)]
#[config(class = "DecoderBlockConfig", type_name = "decoder")]
pub struct DecoderBlockConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub mixer: MixerConfig,
    #[field(hint = architecture)]
    pub mlp: MlpBaseConfig,
    #[field(hint = architecture)]
    pub normalization: NormalizationConfig,
    #[field(hint = architecture, default = None)]
    pub pre_mixer_normalization: Option<NormalizationConfig>,
    #[field(hint = architecture, default = None)]
    pub pre_mlp_normalization: Option<NormalizationConfig>,
    #[field(hint = architecture, default = None)]
    pub post_mixer_normalization: Option<NormalizationConfig>,
    #[field(hint = architecture, default = None)]
    pub post_mlp_normalization: Option<NormalizationConfig>,
    #[field(hint = architecture)]
    pub output_scale: OptionalParameterConfig,
    #[field(hint = feature, default = 0.0, check = non_negative)]
    pub dropout: f64,
    #[field(hint = feature, default = None)]
    pub distillation_model: Option<String>,
    #[field(hint = feature, default = 1.0, check = non_negative)]
    pub distillation_loss_weight: f64,
    pub explicit: FieldSet,
}
impl ClassRules for DecoderBlockConfig {}

/// Fast-LLM `BlockConfig` registry; absent `type` is a decoder block.
#[derive(Debug, Clone, Config)]
#[config(class = "BlockConfig", default = Decoder)]
pub enum BlockConfig {
    Decoder(DecoderBlockConfig),
}

/// `type: fixed` — `num_blocks` copies of one block.
#[derive(Debug, Clone, Config)]
#[config(class = "FixedBlockSequenceConfig", type_name = "fixed")]
pub struct FixedBlockSequenceConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub block: BlockConfig,
    #[field(hint = architecture, default = 12, check = block_count)]
    pub num_blocks: i64,
    pub explicit: FieldSet,
}
impl ClassRules for FixedBlockSequenceConfig {}

/// `type: pattern` — named blocks repeated along a pattern.
#[derive(Debug, Clone, Config)]
#[config(class = "PatternBlockSequenceConfig", type_name = "pattern")]
pub struct PatternBlockSequenceConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture, required)]
    pub blocks: BTreeMap<String, BlockConfig>,
    #[field(hint = architecture, default = None)]
    pub pattern: Option<Vec<String>>,
    #[field(hint = architecture, default = 12, check = block_count)]
    pub num_blocks: i64,
    pub explicit: FieldSet,
}

// Fast-LLM drops a stray `block` (left over from a fixed sequence) with a warning.
legacy_key_rules!(
    PatternBlockSequenceConfig,
    "block",
    drop_legacy_key,
    fn check(&mut self, ctx: &mut Ctx) {
        if self.blocks.is_empty() {
            ctx.rule_at("blocks", "no block configuration provided");
        }
        let pattern = self.pattern.as_deref().unwrap_or_default();
        if pattern.is_empty() {
            ctx.rule_at("pattern", "no block pattern provided");
        }
        let undefined: BTreeSet<&String> = pattern.iter().filter(|name| !self.blocks.contains_key(*name)).collect();
        if !undefined.is_empty() {
            ctx.rule_at(
                "pattern",
                format!("blocks {undefined:?} are in the pattern but undefined"),
            );
        }
    }
);

impl PatternBlockSequenceConfig {
    /// The block name at each position: the pattern repeated and cut to `num_blocks`.
    pub fn expanded_pattern(&self) -> Vec<&str> {
        let pattern = self.pattern.as_deref().unwrap_or_default();
        if pattern.is_empty() {
            return Vec::new();
        }
        (0..self.num_blocks.max(0) as usize)
            .map(|i| pattern[i % pattern.len()].as_str())
            .collect()
    }

    /// The first position of each block name in the expanded pattern.
    pub fn preprocessing_layers(&self) -> BTreeMap<&str, usize> {
        let mut out = BTreeMap::new();
        for (i, name) in self.expanded_pattern().into_iter().enumerate() {
            out.entry(name).or_insert(i);
        }
        out
    }
}

/// Fast-LLM `BlockSequenceConfig` registry; absent `type` is fixed.
#[derive(Debug, Clone, Config)]
#[config(class = "BlockSequenceConfig", default = Fixed)]
pub enum BlockSequenceConfig {
    Fixed(FixedBlockSequenceConfig),
    Pattern(PatternBlockSequenceConfig),
}

impl BlockSequenceConfig {
    /// The attention of a fixed sequence of attention blocks (a vision encoder's usual shape);
    /// `None` for a pattern or another mixer.
    pub fn fixed_attention(&self) -> Option<&super::attention::AttentionConfig> {
        match self {
            BlockSequenceConfig::Fixed(FixedBlockSequenceConfig {
                block:
                    BlockConfig::Decoder(DecoderBlockConfig {
                        mixer: MixerConfig::Attention(attention),
                        ..
                    }),
                ..
            }) => Some(attention),
            _ => None,
        }
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> i64 {
        match self {
            BlockSequenceConfig::Fixed(fixed) => fixed.num_blocks,
            BlockSequenceConfig::Pattern(pattern) => pattern.num_blocks,
        }
    }

    /// The block at each position.
    pub fn blocks(&self) -> Vec<&BlockConfig> {
        match self {
            BlockSequenceConfig::Fixed(fixed) => {
                vec![&fixed.block; fixed.num_blocks.max(0) as usize]
            }
            BlockSequenceConfig::Pattern(pattern) => pattern
                .expanded_pattern()
                .into_iter()
                .map(|name| &pattern.blocks[name])
                .collect(),
        }
    }

    /// Each block config the sequence declares, once, with its name in a pattern sequence's
    /// `blocks` (`None` for a fixed sequence's `block`), in key order.
    pub fn distinct(&self) -> Vec<(Option<&str>, &BlockConfig)> {
        match self {
            BlockSequenceConfig::Fixed(fixed) => vec![(None, &fixed.block)],
            BlockSequenceConfig::Pattern(pattern) => (pattern.blocks.iter())
                .map(|(name, block)| (Some(name.as_str()), block))
                .collect(),
        }
    }

    /// The repeating unit, not expanded to `num_blocks`: a fixed sequence's one block, or each
    /// name of the pattern with its block (`None` for a name `blocks` does not define).
    pub fn unit(&self) -> Vec<(Option<&str>, Option<&BlockConfig>)> {
        match self {
            BlockSequenceConfig::Fixed(fixed) => vec![(None, Some(&fixed.block))],
            BlockSequenceConfig::Pattern(pattern) => (pattern.pattern.iter().flatten())
                .map(|name| (Some(name.as_str()), pattern.blocks.get(name)))
                .collect(),
        }
    }

    /// The last block's config (used for multi-token prediction heads).
    pub fn last_block_config(&self) -> Option<&BlockConfig> {
        match self {
            BlockSequenceConfig::Fixed(fixed) => Some(&fixed.block),
            BlockSequenceConfig::Pattern(pattern) => pattern
                .expanded_pattern()
                .last()
                .and_then(|name| pattern.blocks.get(*name)),
        }
    }
}
