//! Embeddings, head and losses (Fast-LLM `layers/language_model/{,loss/}config.py`).

use std::collections::BTreeMap;

use fastllm_config_derive::Config;

use super::common::{NormalizationConfig, OptionalParameterConfig, ParameterConfig, drop_legacy_key, legacy_key_rules};
use crate::checks::{non_negative, positive};
use crate::{ClassRules, Ctx, FieldSet, string_enum};

string_enum! {
    /// Fast-LLM `EntropyLossType`.
    pub enum EntropyLossType {
        CrossEntropy = "cross_entropy",
        ForwardKl = "forward_kl",
        ReverseKl = "reverse_kl",
    }
}

string_enum! {
    /// Fast-LLM `PolicyMetricsLevel`.
    pub enum PolicyMetricsLevel {
        None = "none",
        Basic = "basic",
        Auto = "auto",
    }
}

string_enum! {
    /// Fast-LLM `LossImplementation`.
    pub enum LossImplementation {
        Auto = "auto",
        Compiled = "compiled",
        Triton = "triton",
        PerLoss = "per_loss",
    }
}

/// The token embeddings.
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelEmbeddingsConfig")]
pub struct LanguageModelEmbeddingsConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub word_embeddings: ParameterConfig,
    /// Exists only when `enabled` is true.
    #[field(hint = architecture)]
    pub position_embeddings: OptionalParameterConfig,
    #[field(hint = architecture, default = 49152, check = positive)]
    pub vocab_size: i64,
    #[field(hint = architecture, default = 2048, check = positive)]
    pub num_position_embeddings: i64,
    #[field(hint = feature, default = 0.0, check = non_negative)]
    pub dropout: f64,
    #[field(hint = stability, default = false)]
    pub full_precision_residual: bool,
    #[field(hint = performance, default = true)]
    pub vocab_parallel: bool,
    #[field(hint = architecture, default = 1.0, check = positive)]
    pub embedding_scale: f64,
    pub explicit: FieldSet,
}
impl ClassRules for LanguageModelEmbeddingsConfig {}

/// The final norm, output projection and losses.
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelHeadConfig")]
pub struct LanguageModelHeadConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub normalization: NormalizationConfig,
    #[field(hint = core, default = BTreeMap::new())]
    pub losses: BTreeMap<String, LanguageModelLossConfig>,
    #[field(hint = expert, default = LossImplementation::Auto)]
    pub loss_implementation: LossImplementation,
    #[field(hint = architecture)]
    pub output_weight: ParameterConfig,
    #[field(hint = feature, default = 1, check = positive)]
    pub cross_entropy_splits: i64,
    #[field(hint = feature, default = 1.0, check = non_negative)]
    pub logits_scale_factor: f64,
    #[field(hint = architecture, default = None, check = positive)]
    pub final_logit_softcap: Option<f64>,
    #[field(hint = architecture, default = 1, check = positive)]
    pub prediction_heads: i64,
    #[field(hint = feature, default = None)]
    pub prediction_loss_coefficient: Option<Vec<f64>>,
    pub explicit: FieldSet,
}

/// The loss name the head itself reports under.
pub const LM_HEAD_LOSS_NAME: &str = "lm_head_loss";

impl ClassRules for LanguageModelHeadConfig {
    fn check(&mut self, ctx: &mut Ctx) {
        for name in self.losses.keys() {
            if name == LM_HEAD_LOSS_NAME {
                ctx.rule_at("losses", format!("loss name `{name}` is reserved"));
            }
            let monolithic = name == "monolithic"
                || name
                    .strip_prefix("monolithic_")
                    .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()));
            if monolithic {
                ctx.rule_at(
                    "losses",
                    format!("loss name `{name}` is reserved for fused loss groups"),
                );
            }
        }
        check_loss_groups(self, ctx);
    }
}

/// Fast-LLM fuses combinable losses into one shared-softmax group per `logits_scale_factor`
/// unless `loss_implementation` is `per_loss`; a fused child may not set `use_triton`, and
/// `triton` needs a set of losses the fused kernels support.
fn check_loss_groups(head: &LanguageModelHeadConfig, ctx: &mut Ctx) {
    if head.loss_implementation == LossImplementation::PerLoss {
        return;
    }
    let mut groups: Vec<(f64, Vec<(&String, &LanguageModelLossConfig)>)> = Vec::new();
    for (name, loss) in &head.losses {
        let Some(scale) = loss.combinable_scale() else {
            continue;
        };
        match groups.iter_mut().find(|(s, _)| *s == scale) {
            Some((_, members)) => members.push((name, loss)),
            None => groups.push((scale, vec![(name, loss)])),
        }
    }
    for (_, members) in &groups {
        for (name, loss) in members {
            if loss.use_triton().is_some() {
                ctx.rule_at(
                    "losses",
                    format!("loss `{name}` sets `use_triton`, which has no effect on a fused child loss"),
                );
            }
        }
        if head.loss_implementation == LossImplementation::Triton
            && let Some(reason) = triton_incompatibility(members)
        {
            ctx.rule_at(
                "losses",
                format!("the child loss set has no fused triton implementation: {reason}"),
            );
        }
    }
}

fn triton_incompatibility(members: &[(&String, &LanguageModelLossConfig)]) -> Option<String> {
    let is_distribution = members
        .iter()
        .any(|(_, loss)| loss.triton_kind() == Some("distillation"));
    let mut seen = Vec::new();
    for (name, loss) in members {
        match loss.triton_kind() {
            None => return Some(format!("loss `{name}` has no triton fused implementation")),
            Some(kind) if seen.contains(&kind) => {
                return Some(format!(
                    "the triton path fuses at most one `{kind}` loss (`{name}` is a duplicate)"
                ));
            }
            Some(kind) if is_distribution && kind != "distillation" && kind != "z" => {
                return Some(format!(
                    "the triton path fuses distillation only with z-loss (`{name}` is `{kind}`)"
                ));
            }
            Some(kind) => seen.push(kind),
        }
    }
    None
}

/// The fields of every loss: Fast-LLM's abstract `LanguageModelLossConfig`, whose subclasses
/// [`LanguageModelLossConfig`] dispatches on.
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelLossConfig")]
pub struct LanguageModelLossFields {
    #[field(hint = core, default = 1.0, check = non_negative)]
    pub weight: f64,
    #[field(hint = feature, default = 1.0, check = positive)]
    pub logits_scale_factor: f64,
    pub explicit: FieldSet,
}
impl ClassRules for LanguageModelLossFields {}

/// Fast-LLM's abstract `CombinableLossConfig`: a loss that can share a fused softmax.
#[derive(Debug, Clone, Config)]
#[config(class = "CombinableLossConfig")]
pub struct CombinableLossConfig {
    #[config(base)]
    pub base: LanguageModelLossFields,
    #[field(hint = expert, default = None)]
    pub use_triton: Option<bool>,
    pub explicit: FieldSet,
}
impl ClassRules for CombinableLossConfig {}

/// Fast-LLM's abstract `LanguageModelPolicyGradientLossConfig` with `CombinableLossConfig`
/// mixed in, as GRPO and GSPO inherit both: the combinable fields first, as their dataclass order
/// has them (the Python class alone lacks `use_triton`).
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelPolicyGradientLossConfig")]
pub struct PolicyGradientLossConfig {
    #[config(base)]
    pub base: CombinableLossConfig,
    #[field(hint = unknown, default = 0.2)]
    pub epsilon_low: f64,
    #[field(hint = unknown, default = 0.2)]
    pub epsilon_high: f64,
    #[field(hint = feature, default = PolicyMetricsLevel::Auto)]
    pub metrics: PolicyMetricsLevel,
    pub explicit: FieldSet,
}
impl ClassRules for PolicyGradientLossConfig {}

/// `type: label` — cross-entropy against the labels.
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelLabelEntropyLossConfig", type_name = "label")]
pub struct LabelEntropyLossConfig {
    #[config(base)]
    pub base: CombinableLossConfig,
    #[field(hint = core, default = EntropyLossType::CrossEntropy)]
    pub loss_type: EntropyLossType,
    pub explicit: FieldSet,
}

// Label and distillation losses drop a legacy `implementation` key.
legacy_key_rules!(
    LabelEntropyLossConfig,
    "implementation",
    drop_legacy_key,
    fn check(&mut self, ctx: &mut Ctx) {
        if self.loss_type == EntropyLossType::ReverseKl {
            ctx.rule_at("loss_type", "`reverse_kl` is not supported for a label loss");
        }
    }
);

/// `type: distillation` — match a reference model's distribution.
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelDistillationLossConfig", type_name = "distillation")]
pub struct DistillationLossConfig {
    #[config(base)]
    pub base: CombinableLossConfig,
    #[field(hint = core, default = EntropyLossType::CrossEntropy)]
    pub loss_type: EntropyLossType,
    #[field(hint = feature, default = "teacher".to_string())]
    pub reference_model: String,
    #[field(hint = optional, default = 1.0, check = positive)]
    pub temperature: f64,
    pub explicit: FieldSet,
}

legacy_key_rules!(DistillationLossConfig, "implementation", drop_legacy_key);

/// `type: dpo` — direct preference optimization (not combinable).
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelDPOLossConfig", type_name = "dpo")]
pub struct DpoLossConfig {
    #[config(base)]
    pub base: LanguageModelLossFields,
    #[field(hint = core, default = 1.0, check = positive)]
    pub beta: f64,
    #[field(hint = feature, required)]
    pub reference_model: String,
    pub explicit: FieldSet,
}
impl ClassRules for DpoLossConfig {}

/// `type: z_loss`.
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelZLossConfig", type_name = "z_loss")]
pub struct ZLossConfig {
    #[config(base)]
    pub base: CombinableLossConfig,
    pub explicit: FieldSet,
}
impl ClassRules for ZLossConfig {}

/// `type: grpo`.
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelGRPOLossConfig", type_name = "grpo")]
pub struct GrpoLossConfig {
    #[config(base)]
    pub base: PolicyGradientLossConfig,
    pub explicit: FieldSet,
}
impl ClassRules for GrpoLossConfig {}

/// `type: gspo`.
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelGSPOLossConfig", type_name = "gspo")]
pub struct GspoLossConfig {
    #[config(base)]
    pub base: PolicyGradientLossConfig,
    pub explicit: FieldSet,
}
impl ClassRules for GspoLossConfig {}

/// Fast-LLM `LanguageModelLossConfig` registry: abstract, so `type` is required.
#[derive(Debug, Clone, Config)]
#[config(class = "LanguageModelLossConfig")]
pub enum LanguageModelLossConfig {
    Label(LabelEntropyLossConfig),
    Distillation(DistillationLossConfig),
    Dpo(DpoLossConfig),
    ZLoss(ZLossConfig),
    Grpo(GrpoLossConfig),
    Gspo(GspoLossConfig),
}

impl LanguageModelLossConfig {
    /// The combinable part of losses that can share a fused softmax (all but DPO).
    fn combinable(&self) -> Option<&CombinableLossConfig> {
        match self {
            Self::Label(l) => Some(&l.base),
            Self::Distillation(l) => Some(&l.base),
            Self::ZLoss(l) => Some(&l.base),
            Self::Grpo(l) => Some(&l.base.base),
            Self::Gspo(l) => Some(&l.base.base),
            Self::Dpo(_) => None,
        }
    }

    /// `Some(logits_scale_factor)` for losses that can share a fused softmax.
    pub fn combinable_scale(&self) -> Option<f64> {
        self.combinable().map(|l| l.logits_scale_factor)
    }

    fn use_triton(&self) -> Option<bool> {
        self.combinable().and_then(|l| l.use_triton)
    }

    fn triton_kind(&self) -> Option<&'static str> {
        match self {
            Self::Label(_) => Some("ce"),
            Self::Distillation(_) => Some("distillation"),
            Self::ZLoss(_) => Some("z"),
            Self::Grpo(_) => Some("grpo"),
            Self::Gspo(_) => Some("gspo"),
            Self::Dpo(_) => None,
        }
    }
}
