//! Weight declarations, beside the config declarations of each section and composed the same way,
//! and the plan they yield for one config: every Fast-LLM tensor ↔ its HF tensors, the transform,
//! and every shape.
//!
//! The planner walks the typed Fast-LLM config (through [`Fl`], as export does): a declaration
//! reads its section's config typed, a field at a time ([`field!`](crate::field!), checked at
//! compile time) or the whole class; a section holding another class, or a size no tensor could
//! have, is a problem naming its Fast-LLM path, never a 0 or a skipped parameter. Block
//! sequences expand as the typed `BlockSequenceConfig` says.
//!
//! Transforms are stated in the import direction (HF → Fast-LLM); export applies the inverse.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use fastllm_config::{BaseModelConfig, BlockConfig, BlockSequenceConfig, Field, FieldType, Value};

use crate::Problem;
use crate::blocks::block_path;
use crate::dict::{self, join};
use crate::field::{ConfigField, ConfigMount, Holder};
use crate::fl::Fl;
use crate::section::Section;

mod builders;
pub use builders::{
    Dim, LayerBias, Linear, LinearBiases, blocks, effective_bias, key_value_size, linear, nested, nested_as, norm,
    patch_embeddings, query_size, size_of, text_hidden, under_hf, vector, vision_hidden, vocabulary,
};

/// How a Fast-LLM tensor is made of its HF tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// One HF tensor, the same bytes.
    Copy,
    /// Several HF tensors concatenated along dimension 0 (fused K/V, gate/up, experts).
    Concat,
    /// One 2-D HF tensor, transposed (Fast-LLM stores `down_proj` transposed).
    Transpose,
    /// Several 2-D HF tensors, each transposed, concatenated along dimension 0 (MoE `w2`).
    TransposeConcat,
    /// One HF tensor, the same bytes in another shape (a conv kernel `[out, C, p, p]` is
    /// Fast-LLM's linear `[out, C·p·p]`). The HF shape is declared ([`WeightDecl::reshaped`]).
    Reshape,
    /// One HF tensor `[E, H, I]` of stacked experts, each transposed into Fast-LLM's
    /// `[E·I, H]` (fused MoE down-projections). The HF shape is declared
    /// ([`WeightDecl::experts_transposed`]).
    TransposeExperts,
}

impl Transform {
    /// The shape of each of `parts` HF tensors, for a Fast-LLM tensor of shape `fast_llm`
    /// (`Reshape` shapes are declared, not derived).
    pub fn hf_shapes(self, fast_llm: &[usize], parts: usize) -> Option<Vec<Vec<usize>>> {
        let split = |shape: &[usize]| -> Option<Vec<usize>> {
            let (first, rest) = shape.split_first()?;
            (parts > 0 && first % parts == 0)
                .then(|| std::iter::once(first / parts).chain(rest.iter().copied()).collect())
        };
        Some(match self {
            Transform::Copy if parts == 1 => vec![fast_llm.to_vec()],
            Transform::Concat => vec![split(fast_llm)?; parts],
            Transform::Transpose if parts == 1 && fast_llm.len() == 2 => vec![vec![fast_llm[1], fast_llm[0]]],
            Transform::TransposeConcat if fast_llm.len() == 2 => {
                let part = split(fast_llm)?;
                vec![vec![part[1], part[0]]; parts]
            }
            _ => return None,
        })
    }
}

/// What a [`PlanLimits`] bound counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Elements of one tensor.
    Elements,
    /// Tensors of the plan.
    Tensors,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Elements => "elements",
            Unit::Tensors => "tensors",
        }
    }
}

/// What a weight declaration sees: the section's typed Fast-LLM config and the root's.
///
/// Reads are typed: a field of the section's class (`c.size(field!(MlpConfig.intermediate_size))`)
/// or of the root's text model (`c.size(field!(TextModel.hidden_size))`), so a misspelt field or
/// one of another type does not compile; the field's type says which config it is read on
/// ([`Holder`](crate::field::Holder)). A read that fails at run time (the section
/// holds another class than the field's) is reported at the section's Fast-LLM path, and the plan
/// fails; the read then stands in with 0 or `false` only so that the declaration can finish.
/// Every size it hands out is bounded by the [`PlanLimits`] of the plan: a negative value, or one
/// no tensor could have, is reported at its Fast-LLM path, so declarations can size names and
/// shapes from it without allocating or overflowing on hostile configs. Declarations combine
/// values with saturating arithmetic; a saturated dimension then fails the plan's element limit
/// by parameter name. No read takes a string path.
pub struct WeightContext<'a> {
    section: Fl<'a>,
    root: Fl<'a>,
    /// The section's Fast-LLM config path, for messages.
    config_path: &'a str,
    limits: &'a PlanLimits,
    problems: &'a RefCell<Vec<Problem>>,
}

impl<'a> WeightContext<'a> {
    /// The section's config as the class `T` (reported when it is another class).
    pub fn config<T: FieldType + 'static>(&self) -> Option<&'a T> {
        match self.section.config::<T>() {
            Ok(config) => Some(config),
            Err(problem) => {
                self.report(self.config_path.to_string(), problem.message);
                None
            }
        }
    }

    /// The field `field`, on the config its type names (the section's, or the root's for a root
    /// class or the text model): `None` (reported at that config's path, or at the field's for
    /// the root, which has none) when that config is of another class.
    pub fn read<T>(&self, field: impl ConfigField<T>) -> Option<T> {
        let (config, config_path) = self.holder_of(&field);
        match field.read(config) {
            Ok(value) => Some(value),
            Err(problem) => {
                let at = if config_path.is_empty() {
                    field.path()
                } else {
                    config_path
                };
                self.report(at.to_string(), problem.message);
                None
            }
        }
    }

    /// A size field (`field!(MlpConfig.intermediate_size)`, `field!(TextModel.hidden_size)`), at
    /// most the plan's element limit.
    pub fn size(&self, field: impl ConfigField<i64>) -> usize {
        self.bounded_read(field, Unit::Elements)
    }

    /// A count that sizes a list of tensors (experts, prediction heads), at most the plan's
    /// tensor limit.
    pub fn tensor_count(&self, field: impl ConfigField<i64>) -> usize {
        self.bounded_read(field, Unit::Tensors)
    }

    /// A bool field (`field!(MlpConfig.gated)`, `field!(TextModel.tied_embedding_weight)`).
    pub fn holds(&self, field: impl ConfigField<bool>) -> bool {
        self.read(field).unwrap_or(false)
    }

    /// The config `field` is read on, and its Fast-LLM path.
    fn holder_of<T, F: ConfigField<T>>(&self, _field: &F) -> (Fl<'a>, &'a str) {
        match F::HOLDER {
            Holder::Section => (self.section, self.config_path),
            Holder::Root => (self.root, ""),
        }
    }

    fn bounded_read(&self, field: impl ConfigField<i64>, unit: Unit) -> usize {
        let value = self.read(field);
        let (_, config_path) = self.holder_of(&field);
        self.bounded(value, join(config_path, field.path()), unit)
    }

    fn report(&self, path: String, message: impl Into<String>) {
        self.problems.borrow_mut().push(Problem::at_fast_llm(path, message));
    }

    /// `value` (read at `path`) as a size within the plan's limit of `unit`; a negative value or
    /// one beyond the limit is reported at `path`, and stands in as 0.
    fn bounded(&self, value: Option<i64>, path: String, unit: Unit) -> usize {
        let Some(value) = value else {
            return 0;
        };
        let Ok(size) = usize::try_from(value) else {
            self.report(path, format!("expected a size (an int >= 0), found {value}"));
            return 0;
        };
        if size as u64 <= self.limits.limit(unit) {
            return size;
        }
        self.report(path, format!("{value} is more than {}", self.limits.bound(unit)));
        0
    }
}

/// Bounds on what a plan may hold, so that config values cannot drive allocations or shape
/// arithmetic beyond what is real.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Most tensors (plan entries, block and expert counts).
    pub max_tensors: usize,
    /// Most elements of any one tensor, and the largest config value read as a dimension.
    pub max_elements: u64,
    /// Whether the limits are what a checkpoint holds (else the documented defaults).
    pub from_checkpoint: bool,
}

impl PlanLimits {
    /// The documented limits of a plan made without a checkpoint (coverage samples, synthetic
    /// checkpoints): 2^20 tensors and 2^44 elements, far above any published model (DeepSeek-V3
    /// has ~10^5 tensors, and its largest ~10^9 elements).
    pub const DEFAULT: PlanLimits = PlanLimits {
        max_tensors: 1 << 20,
        max_elements: 1 << 44,
        from_checkpoint: false,
    };

    /// What a checkpoint of `tensors` tensors holding `elements` elements in all can hold: no
    /// converted tensor has more elements than the whole input, and none is made of nothing.
    pub fn checkpoint(tensors: usize, elements: u64) -> Self {
        PlanLimits {
            max_tensors: tensors,
            max_elements: elements,
            from_checkpoint: true,
        }
    }

    /// "the 21 tensors the checkpoint holds" / "the limit of 1048576 tensors".
    fn limit(&self, unit: Unit) -> u64 {
        match unit {
            Unit::Elements => self.max_elements,
            Unit::Tensors => self.max_tensors as u64,
        }
    }

    fn bound(&self, unit: Unit) -> String {
        let (limit, unit) = (self.limit(unit), unit.name());
        if self.from_checkpoint {
            format!("the {limit} {unit} the checkpoint holds in all")
        } else {
            format!("the limit of {limit} {unit}")
        }
    }
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits::DEFAULT
    }
}

/// The number of elements of `shape`, or `None` when it overflows.
pub fn elements(shape: &[usize]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
}

/// The Fast-LLM shape of a parameter.
pub type ShapeFn = Arc<dyn Fn(&WeightContext) -> Vec<usize> + Send + Sync>;
/// Whether a parameter exists for this config.
pub type WhenFn = Arc<dyn Fn(&WeightContext) -> bool + Send + Sync>;
/// HF names (relative to the section's HF prefix) computed from the config (e.g. per expert).
pub type NamesFn = Arc<dyn Fn(&WeightContext) -> Vec<String> + Send + Sync>;
/// Fast-LLM or HF name of repetition `i`.
pub type IndexedName = Arc<dyn Fn(usize) -> String + Send + Sync>;
/// A count computed from the config.
pub type CountFn = Arc<dyn Fn(&WeightContext) -> usize + Send + Sync>;

/// A parameter: Fast-LLM name ↔ HF names, with its transform and shape (`hf_shape`: the HF
/// shape of a `Reshape`), when `when` holds.
#[derive(Clone)]
pub struct Param {
    pub fast_llm: Cow<'static, str>,
    pub hf: NamesFn,
    pub transform: Transform,
    pub shape: ShapeFn,
    pub when: Option<WhenFn>,
    pub hf_shape: Option<ShapeFn>,
}

/// One weight declaration of a section.
#[derive(Clone)]
pub enum WeightDecl {
    /// A parameter.
    Param(Param),
    /// Declarations planned in order, as one entry of the table (a group of linear layers:
    /// their weights, then their biases).
    Group(Vec<WeightDecl>),
    /// A sub-section's weights: its config in the field `config` ([`Mount::own`]: this
    /// section's own, to mount a weight tree under a prefix), names under `fast_llm` / `hf`.
    Nested {
        config: Mount,
        fast_llm: &'static str,
        hf: &'static str,
        section: Arc<Section>,
    },
    /// The blocks of a block sequence at `config`, block `i` under `fast_llm.i` / `hf.i`. A
    /// block's own declarations dispatch per position (e.g. on its mixer's type).
    Blocks {
        config: Mount,
        fast_llm: &'static str,
        hf: &'static str,
        block: Arc<Section>,
    },
    /// The section whose class matches the runtime `type` of the config at `config`; each
    /// candidate has its own HF prefix (mixers live under different HF names).
    Dispatch {
        config: Mount,
        fast_llm: &'static str,
        sections: Vec<(&'static str, Arc<Section>)>,
    },
    /// `count` repetitions of a section on the config in `config` ([`Mount::own`]: this section's), with
    /// index-templated prefixes (multi-token-prediction heads).
    Repeat {
        config: Mount,
        count: CountFn,
        fast_llm: IndexedName,
        hf: IndexedName,
        section: Arc<Section>,
    },
    /// `count` copies of the last block of the block sequence at `config` (fixed or pattern: the
    /// block of the expanded pattern's last entry), with index-templated prefixes
    /// (multi-token-prediction blocks copy the decoder's last block).
    RepeatLastBlock {
        config: Mount,
        count: CountFn,
        fast_llm: IndexedName,
        hf: IndexedName,
        block: Arc<Section>,
    },
    /// Each entry of the dict at `config` (stochastic mixers), by its type, under
    /// `fast_llm.<name>` / `hf.<name>`.
    TypedDict {
        config: Mount,
        fast_llm: &'static str,
        hf: &'static str,
        sections: Vec<Arc<Section>>,
    },
}

/// The field of a section's config a declaration mounts a sub-section on, typed
/// (`field!(DecoderBlockConfig.mixer).into()`): a misspelt field, or one holding no config,
/// does not compile. Which class the section holds is known only at plan time: another class
/// than the field's is a problem naming the section's path.
#[derive(Clone)]
pub struct Mount(Arc<dyn ConfigMount>);

impl<M: ConfigMount> From<M> for Mount {
    fn from(field: M) -> Self {
        Mount(Arc::new(field))
    }
}

impl Mount {
    /// The section's own config: a weight tree mounted under a name prefix only.
    pub fn own() -> Self {
        Mount(Arc::new(Own))
    }

    /// The field's dotted path below the section's config (`""` for [`Mount::own`]).
    pub fn path(&self) -> &'static str {
        self.0.path()
    }
}

/// The section's own config, as a mount.
struct Own;

impl ConfigMount for Own {
    fn path(&self) -> &'static str {
        ""
    }

    fn mounted<'a>(&self, config: Fl<'a>) -> Result<Field<'a>, Problem> {
        config.field("")
    }
}

impl WeightDecl {
    /// A parameter with fixed HF names.
    pub fn param(
        fast_llm: &'static str,
        hf: &'static [&'static str],
        transform: Transform,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        Self::param_named(
            fast_llm,
            move |_| hf.iter().map(|s| s.to_string()).collect(),
            transform,
            shape,
        )
    }

    /// A parameter held in the one HF tensor `hf`.
    pub(crate) fn one_tensor(
        fast_llm: &'static str,
        hf: &'static str,
        transform: Transform,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        Self::param_named(fast_llm, move |_| vec![hf.to_string()], transform, shape)
    }

    /// A parameter whose HF names depend on the config.
    pub fn param_named(
        fast_llm: &'static str,
        hf: impl Fn(&WeightContext) -> Vec<String> + Send + Sync + 'static,
        transform: Transform,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        WeightDecl::Param(Param {
            fast_llm: fast_llm.into(),
            hf: Arc::new(hf),
            transform,
            shape: Arc::new(shape),
            when: None,
            hf_shape: None,
        })
    }

    /// A parameter stored in another shape on the HF side (same bytes).
    pub fn reshaped(
        fast_llm: &'static str,
        hf: &'static str,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
        hf_shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        Self::one_tensor(fast_llm, hf, Transform::Reshape, shape).with_hf_shape(hf_shape)
    }

    /// A stacked-experts HF tensor `[E, H, I]` ↔ Fast-LLM `[E·I, H]`, each expert transposed.
    pub fn experts_transposed(
        fast_llm: &'static str,
        hf: &'static str,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
        hf_shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        Self::one_tensor(fast_llm, hf, Transform::TransposeExperts, shape).with_hf_shape(hf_shape)
    }

    /// With its HF shape declared rather than derived from the transform.
    fn with_hf_shape(mut self, hf_shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static) -> Self {
        if let WeightDecl::Param(param) = &mut self {
            param.hf_shape = Some(Arc::new(hf_shape));
        }
        self
    }

    /// Only when `when(config)` holds (biases, untied output weights).
    pub fn when(mut self, condition: impl Fn(&WeightContext) -> bool + Send + Sync + 'static) -> Self {
        if let WeightDecl::Param(param) = &mut self {
            param.when = Some(Arc::new(condition));
        }
        self
    }
}

/// One planned tensor conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    /// The Fast-LLM parameter name (without the `/weights` shard suffix).
    pub fast_llm: String,
    pub fast_llm_shape: Vec<usize>,
    pub hf: Vec<String>,
    pub hf_shapes: Vec<Vec<usize>>,
    pub transform: Transform,
}

/// The plan of `root` (a base-model section) for the config `config`, within the
/// [`PlanLimits::DEFAULT`] limits.
pub fn plan(root: &Section, config: &BaseModelConfig) -> Result<Vec<PlanEntry>, Vec<Problem>> {
    plan_within(root, config, &PlanLimits::DEFAULT)
}

/// The plan of `root` for `config`, within `limits`: a block count, a repetition or an expert
/// count beyond them is a problem at its Fast-LLM path, found before anything is allocated for it.
pub fn plan_within(
    root: &Section,
    config: &BaseModelConfig,
    limits: &PlanLimits,
) -> Result<Vec<PlanEntry>, Vec<Problem>> {
    let BoundedPlan {
        entries,
        mut problems,
        oversized,
        beyond_tensor_limit,
    } = plan_bounded(root, config, limits);
    problems.extend(oversized);
    problems.extend(beyond_tensor_limit);
    if problems.is_empty() {
        Ok(entries)
    } else {
        Err(problems)
    }
}

/// A plan walked within [`PlanLimits`], kept even when it does not fit them.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundedPlan {
    /// The entries planned, in order. When the tensor limit was passed, the last one is the
    /// first beyond it: `max_tensors + 1` distinct tensors, so checked against a checkpoint
    /// holding `max_tensors`, at least one of them is missing from it and can be named.
    pub entries: Vec<PlanEntry>,
    /// Config values and parameters beyond the limits or the declarations, each by its path.
    pub problems: Vec<Problem>,
    /// Parameters with more elements than the limit, planned all the same: no tensor of a
    /// checkpoint holding that many elements in all has their shape, so checked against it each
    /// is named missing or misshapen there. Without a checkpoint, they are problems.
    pub oversized: Vec<Problem>,
    /// Set when the walk stopped at the tensor limit: why, attributed to no parameter (the
    /// parameter where the count ran out is rarely the one missing).
    pub beyond_tensor_limit: Option<Problem>,
}

/// The plan of `root` for `config` within `limits`, with its problems and without dropping what
/// was planned: a caller holding the input can name the tensor a count overrun stands for.
pub fn plan_bounded(root: &Section, config: &BaseModelConfig, limits: &PlanLimits) -> BoundedPlan {
    let config = Fl::new(config.reflect());
    let mut planner = Planner {
        root: config,
        limits,
        out: Vec::new(),
        problems: RefCell::new(Vec::new()),
        full: false,
        oversized: Vec::new(),
    };
    planner.walk(
        root,
        &Place {
            config,
            config_path: "",
            fl_prefix: "",
            hf_prefix: "",
        },
    );
    let mut problems = planner.problems.into_inner();
    // A value read by every block is reported once.
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert(p.to_string()));
    let beyond_tensor_limit = planner.full.then(|| {
        let last = planner.out.last().map_or("", |e| e.fast_llm.as_str());
        Problem {
            fast_llm: None,
            hf: None,
            message: format!(
                "the config implies more tensors than {}: the plan stopped at `{last}`, and nothing after it was \
                 checked",
                limits.bound(Unit::Tensors)
            ),
        }
    });
    BoundedPlan {
        entries: planner.out,
        problems,
        oversized: planner.oversized,
        beyond_tensor_limit,
    }
}

fn matching<'s>(sections: impl Iterator<Item = &'s Arc<Section>>, found: Option<&str>) -> Option<&'s Arc<Section>> {
    let mut sections = sections;
    sections.find(|s| s.class.type_name.is_some() && s.class.type_name == found)
}

/// The `type` of a config as messages show it (`null` without one).
fn shown_type(config: Fl) -> String {
    dict::show(&config.type_value())
}

/// Where a section's weights are planned: its config (at the Fast-LLM config path
/// `config_path`), and the prefixes of its parameter and HF tensor names.
struct Place<'a> {
    config: Fl<'a>,
    config_path: &'a str,
    fl_prefix: &'a str,
    hf_prefix: &'a str,
}

impl Place<'_> {
    fn config(&self, path: &str) -> String {
        join(self.config_path, path)
    }

    fn fl(&self, name: &str) -> String {
        join(self.fl_prefix, name)
    }

    fn hf(&self, name: &str) -> String {
        join(self.hf_prefix, name)
    }
}

/// Where a sub-declaration is mounted: its config path, Fast-LLM name and HF name, each
/// relative to the enclosing [`Place`].
struct Mounted<'a> {
    config: &'a Mount,
    fast_llm: &'a str,
    hf: &'a str,
}

/// The walk of one plan: its entries, problems, and how much of the limits is left.
struct Planner<'a> {
    root: Fl<'a>,
    limits: &'a PlanLimits,
    out: Vec<PlanEntry>,
    /// Shared with the weight contexts, which report out-of-bounds config values.
    problems: RefCell<Vec<Problem>>,
    /// The tensor limit was passed (by one entry): the walk stops.
    full: bool,
    /// Planned parameters with more elements than the limit.
    oversized: Vec<Problem>,
}

impl Planner<'_> {
    fn problem(&self, path: String, message: impl Into<String>) {
        self.problems.borrow_mut().push(Problem::at_fast_llm(path, message));
    }

    /// A problem of one planned parameter (a tensor name, not a config path).
    fn parameter_problem(&self, name: &str, message: impl std::fmt::Display) {
        self.problems.borrow_mut().push(Problem {
            fast_llm: None,
            hf: None,
            message: format!("parameter `{name}`: {message}"),
        });
    }

    /// Tensors that may still be planned.
    fn remaining(&self) -> usize {
        self.limits.max_tensors.saturating_sub(self.out.len())
    }

    /// Whether `count` repetitions (each at least one tensor) fit; if not, why.
    fn fits(&self, count: usize, what: &str) -> Result<(), String> {
        if count <= self.remaining() {
            return Ok(());
        }
        Err(format!(
            "{count} {what} need more tensors than {}",
            self.limits.bound(Unit::Tensors)
        ))
    }

    /// The field `mount` of the config at `at`; `None` (reported at the section's path, or the
    /// field's at the root, which has none) when the config is of another class than the field's.
    fn mounted<'c>(&self, at: &Place<'c>, mount: &Mount) -> Option<Field<'c>> {
        match mount.0.mounted(at.config) {
            Ok(field) => Some(field),
            Err(problem) => {
                let path = if at.config_path.is_empty() {
                    mount.path()
                } else {
                    at.config_path
                };
                self.problem(path.to_string(), problem.message);
                None
            }
        }
    }

    /// The sub-config in the field `mount` of `at`; `None` (reported) when it is absent or the
    /// config is of another class than the field's.
    fn sub_config<'c>(&self, at: &Place<'c>, mount: &Mount) -> Option<Fl<'c>> {
        let path = mount.path();
        match self.mounted(at, mount)? {
            Field::Config(sub) => Some(Fl::new(sub)),
            Field::Value(Value::Null) => {
                self.problem(at.fl(path), "no config for these weights");
                None
            }
            other => {
                let found = dict::show(&other.into_value());
                self.problem(at.config(path), format!("expected a config, found {found}"));
                None
            }
        }
    }

    /// The block sequence in the field `mount` of `at`, typed.
    fn sequence<'c>(&self, at: &Place<'c>, mount: &Mount) -> Option<&'c BlockSequenceConfig> {
        let path = mount.path();
        let sub = self.sub_config(at, mount)?;
        match sub.config::<BlockSequenceConfig>() {
            Ok(sequence) => Some(sequence),
            Err(problem) => {
                self.problem(at.config(path), problem.message);
                None
            }
        }
    }

    /// The number of blocks of `sequence` (at `sequence_path`); a negative `num_blocks` (which
    /// validation refuses, but a config built in code may hold) is a problem at its path, never
    /// 0 blocks.
    fn block_count(&self, sequence: &BlockSequenceConfig, sequence_path: &str) -> Option<usize> {
        let found = sequence.num_blocks();
        let count = usize::try_from(found).ok();
        if count.is_none() {
            self.problem(
                join(sequence_path, "num_blocks"),
                format!("expected a number of blocks (an int >= 0), found {found}"),
            );
        }
        count
    }

    /// Walks `section` on `sub`, the config mounted below `at` as `mounted` says.
    fn walk_below(&mut self, section: &Section, at: &Place, sub: Fl, mounted: Mounted) {
        let place = Place {
            config: sub,
            config_path: &at.config(mounted.config.path()),
            fl_prefix: &at.fl(mounted.fast_llm),
            hf_prefix: &at.hf(mounted.hf),
        };
        self.walk(section, &place);
    }

    /// Walks `section` at `at`: on its config (found at its config path), naming parameters
    /// under its Fast-LLM prefix and HF tensors under its HF prefix.
    fn walk(&mut self, section: &Section, at: &Place) {
        let &Place { config, fl_prefix, .. } = at;
        // Weights are declared for one config class, as config declarations are.
        if let Some(expected) = section.class.type_name
            && config.type_name() != Some(expected)
        {
            self.problem(
                join(fl_prefix, "type"),
                format!(
                    "weights are declared for `{expected}` here, found {}",
                    shown_type(config)
                ),
            );
            return;
        }
        for (_, decl) in &section.weights {
            self.decl(decl, at);
        }
    }

    /// Plans one declaration of the section at `at`.
    fn decl(&mut self, decl: &WeightDecl, at: &Place) {
        if self.full {
            return;
        }
        match decl {
            WeightDecl::Param(param) => self.param(param, at),
            WeightDecl::Group(decls) => decls.iter().for_each(|decl| self.decl(decl, at)),
            WeightDecl::Nested {
                config: mount,
                fast_llm,
                hf,
                section,
            } => {
                if let Some(sub) = self.sub_config(at, mount) {
                    let mounted = Mounted {
                        config: mount,
                        fast_llm,
                        hf,
                    };
                    self.walk_below(section, at, sub, mounted)
                }
            }
            WeightDecl::Blocks {
                config: mount,
                fast_llm,
                hf,
                block,
            } => self.blocks(
                at,
                Mounted {
                    config: mount,
                    fast_llm,
                    hf,
                },
                block,
            ),
            WeightDecl::Dispatch {
                config: mount,
                fast_llm,
                sections,
            } => self.dispatch(at, mount, fast_llm, sections),
            WeightDecl::Repeat {
                config: mount,
                count,
                fast_llm,
                hf,
                section,
            } => {
                let Some(sub) = self.sub_config(at, mount) else {
                    return;
                };
                let copies = count(&self.context(at));
                if let Err(message) = self.fits(copies, "repetitions") {
                    return self.parameter_problem(&at.fl(&fast_llm(0)), message);
                }
                for i in 0..copies {
                    self.walk(
                        section,
                        &Place {
                            config: sub,
                            config_path: &at.config(mount.path()),
                            fl_prefix: &at.fl(&fast_llm(i)),
                            hf_prefix: &at.hf(&hf(i)),
                        },
                    );
                }
            }
            WeightDecl::RepeatLastBlock {
                config: mount,
                count,
                fast_llm,
                hf,
                block,
            } => {
                let path = mount.path();
                let copies = count(&self.context(at));
                let Some(sequence) = self.sequence(at, mount) else {
                    return;
                };
                let Some(blocks) = self.block_count(sequence, &at.config(path)) else {
                    return;
                };
                match last_block(sequence, blocks) {
                    Some((name, last)) => {
                        if let Err(message) = self.fits(copies, "copies of the last block") {
                            return self.parameter_problem(&at.fl(&fast_llm(0)), message);
                        }
                        let block_path = join(&at.config(path), &block_path(name));
                        for i in 0..copies {
                            self.walk(
                                block,
                                &Place {
                                    config: Fl::new(last),
                                    config_path: &block_path,
                                    fl_prefix: &at.fl(&fast_llm(i)),
                                    hf_prefix: &at.hf(&hf(i)),
                                },
                            );
                        }
                    }
                    None if copies == 0 => {}
                    None => self.problem(at.fl(path), "no last block to copy (an empty block sequence)"),
                }
            }
            WeightDecl::TypedDict {
                config: mount,
                fast_llm,
                hf,
                sections,
            } => {
                let path = mount.path();
                let entries = match self.mounted(at, mount) {
                    Some(Field::Configs(entries)) => entries,
                    Some(Field::Value(Value::Null)) => Vec::new(),
                    Some(other) => {
                        let found = dict::show(&other.into_value());
                        return self.problem(at.config(path), format!("expected a dict of configs, found {found}"));
                    }
                    None => return,
                };
                for (name, entry) in entries {
                    let entry = Fl::new(entry);
                    let fl = join(&at.fl(fast_llm), name);
                    match matching(sections.iter(), entry.type_name()) {
                        Some(section) => {
                            let config_path = join(&at.config(path), name);
                            self.walk(
                                section,
                                &Place {
                                    config: entry,
                                    config_path: &config_path,
                                    fl_prefix: &fl,
                                    hf_prefix: &join(&at.hf(hf), name),
                                },
                            );
                        }
                        None => self.problem(
                            join(&fl, "type"),
                            format!("weights of {} are not declared", shown_type(entry)),
                        ),
                    }
                }
            }
        }
    }

    /// What a declaration of the section at `at` reads its config through.
    fn context<'c>(&'c self, at: &Place<'c>) -> WeightContext<'c> {
        WeightContext {
            section: at.config,
            root: self.root,
            config_path: at.config_path,
            limits: self.limits,
            problems: &self.problems,
        }
    }

    /// One parameter: its shapes, checked against the limits and its transform.
    fn param(&mut self, param: &Param, at: &Place) {
        let context = self.context(at);
        let reported = self.problems.borrow().len();
        if param.when.as_ref().is_some_and(|w| !w(&context)) {
            return;
        }
        let fast_llm_shape = (param.shape)(&context);
        let hf: Vec<String> = (param.hf)(&context).iter().map(|n| at.hf(n)).collect();
        let hf_shape = param.hf_shape.as_ref().map(|f| f(&context));
        // A config value out of bounds was reported by name; what it sized is moot.
        if self.problems.borrow().len() > reported {
            return;
        }
        let name = at.fl(&param.fast_llm);
        let beyond_elements = |shape: &[usize]| {
            format!(
                "shape {shape:?} has more elements than {}",
                self.limits.bound(Unit::Elements)
            )
        };
        let oversized = match elements(&fast_llm_shape) {
            None => return self.parameter_problem(&name, beyond_elements(&fast_llm_shape)),
            Some(n) => n > self.limits.max_elements,
        };
        let transform = param.transform;
        match hf_shapes(transform, &fast_llm_shape, hf.len(), hf_shape) {
            Some(hf_shapes) => {
                if oversized {
                    let message = format!("parameter `{name}`: {}", beyond_elements(&fast_llm_shape));
                    self.oversized.push(Problem {
                        fast_llm: None,
                        hf: None,
                        message,
                    });
                }
                self.out.push(PlanEntry {
                    fast_llm: name,
                    fast_llm_shape,
                    hf,
                    hf_shapes,
                    transform,
                });
                self.full = self.out.len() > self.limits.max_tensors;
            }
            None => self.parameter_problem(
                &name,
                format!(
                    "{transform:?} cannot map shape {fast_llm_shape:?} onto {} HF tensors",
                    hf.len()
                ),
            ),
        }
    }

    /// Each block of the sequence at `path`, under `fast_llm.<i>` / `hf.<i>`.
    fn blocks(&mut self, at: &Place, mounted: Mounted, block: &Section) {
        let Mounted {
            config: mount,
            fast_llm,
            hf,
        } = mounted;
        let Some(sequence) = self.sequence(at, mount) else {
            return;
        };
        let sequence_path = at.config(mount.path());
        let Some(count) = self.block_count(sequence, &sequence_path) else {
            return;
        };
        if let Err(message) = self.fits(count, "blocks") {
            return self.problem(join(&sequence_path, "num_blocks"), message);
        }
        for i in 0..count {
            if self.full {
                break;
            }
            // An empty pattern has no block at any position.
            let Some((name, config)) = block_at(sequence, i) else {
                break;
            };
            let config_path = join(&sequence_path, &block_path(name));
            let Some(config) = config else {
                self.problem(config_path, "no config for these weights");
                continue;
            };
            let (fl, hf) = (join(&at.fl(fast_llm), &i.to_string()), join(&at.hf(hf), &i.to_string()));
            self.walk(
                block,
                &Place {
                    config: Fl::new(config),
                    config_path: &config_path,
                    fl_prefix: &fl,
                    hf_prefix: &hf,
                },
            );
        }
    }

    /// The section of the runtime type of the config at `path`, under its own HF prefix.
    fn dispatch(&mut self, at: &Place, mount: &Mount, fast_llm: &str, sections: &[(&'static str, Arc<Section>)]) {
        let path = mount.path();
        let Some(sub) = self.sub_config(at, mount) else {
            return;
        };
        let found = sub.type_name();
        match (sections.iter()).find(|(_, s)| matching(std::iter::once(s), found).is_some()) {
            Some((hf, section)) => {
                let mounted = Mounted {
                    config: mount,
                    fast_llm,
                    hf,
                };
                self.walk_below(section, at, sub, mounted)
            }
            None => self.problem(
                join(&at.fl(path), "type"),
                format!(
                    "weights of {} are not declared (supported: {})",
                    shown_type(sub),
                    (sections.iter())
                        .filter_map(|(_, s)| s.class.type_name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
}

/// The block at position `index` of `sequence`, with its name in a pattern's `blocks` (`None`
/// for a fixed sequence's `block`), and its config (`None` for a name `blocks` lacks); `None` for
/// an empty pattern. Positions cycle through the pattern without expanding it.
fn block_at(sequence: &BlockSequenceConfig, index: usize) -> Option<(Option<&str>, Option<&BlockConfig>)> {
    match sequence {
        BlockSequenceConfig::Fixed(fixed) => Some((None, Some(&fixed.block))),
        BlockSequenceConfig::Pattern(pattern) => {
            let names = pattern.pattern.as_deref().unwrap_or_default();
            let name = names.get(index % names.len().max(1))?;
            Some((Some(name.as_str()), pattern.blocks.get(name)))
        }
    }
}

/// The block at the last of `blocks` positions (Fast-LLM's `last_block_config`), with its name.
fn last_block(sequence: &BlockSequenceConfig, blocks: usize) -> Option<(Option<&str>, &BlockConfig)> {
    let last = blocks.checked_sub(1)?;
    match block_at(sequence, last)? {
        (name, Some(config)) => Some((name, config)),
        (_, None) => None,
    }
}

/// The HF shapes of a parameter: derived from the transform, or declared (`Reshape` keeps the
/// element count; `TransposeExperts` is `[E, H, I]` for Fast-LLM's `[E·I, H]`).
fn hf_shapes(
    transform: Transform,
    fast_llm: &[usize],
    parts: usize,
    declared: Option<Vec<usize>>,
) -> Option<Vec<Vec<usize>>> {
    match (transform, declared) {
        (Transform::Reshape, Some(hf_shape)) => {
            let same_size = elements(&hf_shape).is_some() && elements(&hf_shape) == elements(fast_llm);
            (parts == 1 && same_size).then(|| vec![hf_shape])
        }
        (Transform::TransposeExperts, Some(hf_shape)) => {
            let fits = matches!((hf_shape.as_slice(), fast_llm),
                ([e, h, i], [rows, cols]) if e.checked_mul(*i) == Some(*rows) && h == cols);
            (parts == 1 && fits).then(|| vec![hf_shape])
        }
        _ => transform.hf_shapes(fast_llm, parts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        AttentionConfig, ConfigClass, DecoderBlockConfig, GptBaseModelConfig, MlpBaseConfig, MlpConfig, ModelKind,
        MoeMlpConfig, MultiModalBaseModelConfig, StochasticMixerConfig, VisionEncoderConfig, load_base_model,
    };
    use crate::field;

    /// A validated GPT base model with `decoder`, as every caller of the planner holds it.
    fn config(decoder: &str) -> BaseModelConfig {
        let value = Value::from_json_str(&format!(r#"{{"decoder": {decoder}}}"#)).unwrap();
        load_base_model(ModelKind::Gpt, &value).unwrap_or_else(|e| panic!("{decoder}: {e}"))
    }

    /// A decoder block whose MLP, of class `T`, holds `decl` (named as the block's own).
    fn with_mlp<T: ConfigClass>(decl: WeightDecl) -> Arc<Section> {
        let mlp = Section::of::<T>("test.mlp").weight("w", decl).build();
        Section::of::<DecoderBlockConfig>("test.block")
            .weight("mlp", nested_as(field!(DecoderBlockConfig.mlp), "", "", &mlp))
            .build()
    }

    /// A root whose decoder blocks hold `block`'s weights, under `decoder.<i>` / `layers.<i>`.
    fn decoder_of(block: &Arc<Section>) -> Section {
        Section::of::<GptBaseModelConfig>("test.root")
            .weight("blocks", blocks(field!(TextModel.decoder), "layers", block))
    }

    /// The planned MTP-style copies of a decoder's last block: `(name, shape)`.
    fn last_block_copies(decoder: &str) -> Result<Vec<(String, Vec<usize>)>, Vec<Problem>> {
        let block = with_mlp::<MlpConfig>(WeightDecl::param("w", &["w"], Transform::Copy, |c| {
            vec![c.size(field!(MlpConfig.intermediate_size))]
        }));
        let root = Section::of::<GptBaseModelConfig>("test.root").weight(
            "copies",
            WeightDecl::RepeatLastBlock {
                config: field!(TextModel.decoder).into(),
                count: Arc::new(|_| 2),
                fast_llm: Arc::new(|k| format!("copy.{k}")),
                hf: Arc::new(|k| format!("hf.{k}")),
                block,
            },
        );
        let entries = plan(&root, &config(decoder))?;
        Ok(entries.into_iter().map(|e| (e.fast_llm, e.fast_llm_shape)).collect())
    }

    #[test]
    fn repeat_last_block_copies_the_expanded_pattern_s_last_block() {
        let block = |width: usize| format!(r#"{{"type": "decoder", "mlp": {{"intermediate_size": {width}}}}}"#);
        let fixed = format!(r#"{{"type": "fixed", "num_blocks": 3, "block": {}}}"#, block(8));
        assert_eq!(
            last_block_copies(&fixed).unwrap(),
            [("copy.0.w".to_string(), vec![8]), ("copy.1.w".to_string(), vec![8])]
        );
        // Pattern a b a: the last block is `a`, not the pattern's last name.
        let pattern = format!(
            r#"{{"type": "pattern", "num_blocks": 3, "pattern": ["a", "b"], "blocks": {{"a": {}, "b": {}}}}}"#,
            block(4),
            block(6)
        );
        assert_eq!(
            last_block_copies(&pattern).unwrap()[0],
            ("copy.0.w".to_string(), vec![4])
        );
        // An empty pattern has no last block, but the typed config refuses it before any plan.
    }

    /// A root with `decoder` blocks of one `[intermediate_size · experts]` parameter named per
    /// expert, planned for `decoder` within `limits`.
    fn limited(decoder: &str, limits: PlanLimits) -> Result<Vec<PlanEntry>, Vec<Problem>> {
        let experts = field!(MoeMlpConfig.experts);
        let block = with_mlp::<MoeMlpConfig>(WeightDecl::param_named(
            "w",
            move |c| (0..c.tensor_count(experts)).map(|e| format!("e{e}")).collect(),
            Transform::Concat,
            move |c| {
                let size = c.size(field!(MoeMlpConfig.intermediate_size));
                vec![size.saturating_mul(c.tensor_count(experts))]
            },
        ));
        let root = decoder_of(&block);
        plan_within(&root, &config(decoder), &limits)
    }

    fn fixed(blocks: i128, experts: i128, size: i128) -> String {
        format!(
            r#"{{"type": "fixed", "num_blocks": {blocks}, "block": {{"type": "decoder",
                "mlp": {{"type": "moe", "experts": {experts}, "intermediate_size": {size}}}}}}}"#
        )
    }

    #[rstest::rstest]
    #[case::within(fixed(2, 4, 8), None)]
    #[case::blocks_beyond_the_tensors(fixed(1_000, 4, 8), Some(("decoder.num_blocks", "1000 blocks need more tensors than the 100 tensors")))]
    #[case::experts_beyond_the_tensors(fixed(2, 1_000_000_000_000, 8), Some(("decoder.block.mlp.experts", "1000000000000 is more than the 100 tensors")))]
    #[case::dimension_beyond_the_elements(fixed(2, 4, 1 << 40), Some(("decoder.block.mlp.intermediate_size", "1099511627776 is more than the 4096 elements")))]
    #[case::largest_int(fixed(2, 4, i64::MAX.into()), Some(("decoder.block.mlp.intermediate_size", "9223372036854775807 is more than the 4096 elements")))]
    fn plans_stay_within_the_checkpoint(#[case] decoder: String, #[case] expected: Option<(&str, &str)>) {
        let result = limited(&decoder, PlanLimits::checkpoint(100, 4096));
        match (result, expected) {
            (Ok(entries), None) => assert_eq!(entries.len(), 2),
            (Err(problems), Some((path, message))) => {
                assert_eq!(problems.len(), 1, "reported once: {problems:?}");
                assert_eq!(problems[0].fast_llm.as_deref(), Some(path));
                assert!(problems[0].message.contains(message), "{}", problems[0].message);
            }
            (other, expected) => panic!("{other:?}, expected {expected:?}"),
        }
    }

    /// A read the config cannot answer is a problem at its Fast-LLM path, never a 0 or a skipped
    /// parameter: a section holding another class than the field's (named by the section's path,
    /// or the field's at the root, which has none), a negative size. (A field the class lacks,
    /// or of another type, does not compile: see `field!`.)
    #[rstest::rstest]
    #[case::another_class(|c: &WeightContext| c.size(field!(MlpConfig.intermediate_size)), "decoder.block.mlp", "expected a MLPConfig, found a MoEMLPConfig")]
    #[case::another_class_flag(|c: &WeightContext| usize::from(c.holds(field!(MlpConfig.gated))), "decoder.block.mlp", "expected a MLPConfig, found a MoEMLPConfig")]
    #[case::another_root_class(|c: &WeightContext| c.size(field!(MultiModalBaseModelConfig.vision_encoder.hidden_size)), "vision_encoder.hidden_size", "expected a MultiModalBaseModelConfig, found a GPTBaseModelConfig")]
    #[case::negative(|c: &WeightContext| c.size(field!(MoeMlpConfig.shared_experts)), "decoder.block.mlp.shared_experts", "expected a size (an int >= 0), found -3")]
    #[case::negative_count(|c: &WeightContext| c.tensor_count(field!(MoeMlpConfig.shared_experts)), "decoder.block.mlp.shared_experts", "expected a size (an int >= 0), found -3")]
    fn a_read_the_config_cannot_answer_is_a_problem_at_its_path(
        #[case] read: fn(&WeightContext) -> usize,
        #[case] path: &str,
        #[case] message: &str,
    ) {
        let block = with_mlp::<MoeMlpConfig>(WeightDecl::param("w", &["w"], Transform::Copy, move |c| vec![read(c)]));
        let root = decoder_of(&block);
        // Validation refuses a negative size; a config built in code may still hold one.
        let mut config = config(&fixed(1, 2, 8));
        mlp_of(&mut config).shared_experts = -3;
        let problems = plan(&root, &config).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].fast_llm.as_deref(), Some(path));
        assert!(problems[0].message.contains(message), "{}", problems[0].message);
    }

    /// A mount whose field belongs to another class than the config its section holds is a
    /// problem naming the section's path (the field's at the root, which has none), never a
    /// skipped sub-tree; so is an absent sub-config, as before mounts were typed.
    #[rstest::rstest]
    #[case::another_class(nested(field!(AttentionConfig.query_layer), "q", &leaf()), "decoder.block.mlp", "expected a AttentionConfig, found a MoEMLPConfig")]
    #[case::another_class_blocks(blocks(field!(VisionEncoderConfig.encoder), "encoder", &leaf()), "decoder.block.mlp", "expected a VisionEncoderConfig, found a MoEMLPConfig")]
    #[case::another_class_dict(WeightDecl::TypedDict { config: field!(StochasticMixerConfig.mixers).into(), fast_llm: "m", hf: "m", sections: vec![] }, "decoder.block.mlp", "expected a StochasticMixerConfig, found a MoEMLPConfig")]
    #[case::absent(nested(field!(MoeMlpConfig.pre_norm), "n", &leaf()), "decoder.0.mlp.pre_norm", "no config for these weights")]
    fn a_mount_the_config_cannot_answer_is_a_problem_at_its_path(
        #[case] mount: WeightDecl,
        #[case] path: &str,
        #[case] message: &str,
    ) {
        let mlp = Section::of::<MoeMlpConfig>("test.mlp").weight("w", mount).build();
        let block = Section::of::<DecoderBlockConfig>("test.block")
            .weight("mlp", nested(field!(DecoderBlockConfig.mlp), "mlp", &mlp))
            .build();
        let problems = plan(&decoder_of(&block), &config(&fixed(1, 2, 8))).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].fast_llm.as_deref(), Some(path));
        assert_eq!(problems[0].message, message);
    }

    /// A field of a root class or of the text model is read on the root from any section, and a
    /// field of another class on the section: one `size` / `holds` serves both, by the field's
    /// type.
    #[rstest::rstest]
    #[case::root_class(|c: &WeightContext| c.size(field!(GptBaseModelConfig.hidden_size)), 96)]
    #[case::text_model(|c: &WeightContext| c.size(field!(TextModel.hidden_size)), 96)]
    #[case::root_flag(|c: &WeightContext| usize::from(c.holds(field!(GptBaseModelConfig.tied_embedding_weight))), 1)]
    #[case::text_model_flag(|c: &WeightContext| usize::from(c.holds(field!(TextModel.tied_embedding_weight))), 1)]
    #[case::section(|c: &WeightContext| c.size(field!(MlpConfig.intermediate_size)), 8)]
    fn a_field_is_read_on_the_config_its_type_names(
        #[case] read: fn(&WeightContext) -> usize,
        #[case] expected: usize,
    ) {
        let block = with_mlp::<MlpConfig>(WeightDecl::param("w", &["w"], Transform::Copy, move |c| vec![read(c)]));
        let value = Value::from_json_str(
            r#"{"hidden_size": 96, "tied_embedding_weight": true, "decoder": {"type": "fixed", "num_blocks": 1,
                "block": {"type": "decoder", "mlp": {"intermediate_size": 8}}}}"#,
        )
        .unwrap();
        let config = load_base_model(ModelKind::Gpt, &value).unwrap();
        let entries = plan(&decoder_of(&block), &config).unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].fast_llm_shape, vec![expected]);
    }

    #[test]
    fn a_root_mount_of_another_root_class_is_a_problem_at_the_field() {
        let root = Section::of::<GptBaseModelConfig>("test.root").weight(
            "vision",
            nested(field!(MultiModalBaseModelConfig.vision_encoder), "v", &leaf()),
        );
        let problems = plan(&root, &config(&fixed(1, 2, 8))).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].fast_llm.as_deref(), Some("vision_encoder"));
        assert_eq!(
            problems[0].message,
            "expected a MultiModalBaseModelConfig, found a GPTBaseModelConfig"
        );
    }

    /// A section of one parameter, whatever its config.
    fn leaf() -> Arc<Section> {
        Section::of::<AttentionConfig>("test.leaf")
            .weight("a", WeightDecl::param("a", &["a"], Transform::Copy, |_| vec![1]))
            .build()
    }

    /// The MoE MLP of the fixed decoder of `config`.
    fn mlp_of(config: &mut BaseModelConfig) -> &mut MoeMlpConfig {
        let BaseModelConfig::Gpt(root) = config else {
            panic!("a GPT root")
        };
        let BlockSequenceConfig::Fixed(decoder) = &mut root.decoder else {
            panic!("a fixed decoder")
        };
        let BlockConfig::Decoder(block) = &mut decoder.block;
        let MlpBaseConfig::Moe(mlp) = &mut block.mlp else {
            panic!("a MoE MLP")
        };
        mlp
    }

    /// A block sequence with a negative `num_blocks` (refused by validation, but a config built
    /// in code may hold one) is a problem at its path, never 0 blocks; so is its last block.
    #[test]
    fn a_negative_number_of_blocks_is_a_problem_at_its_path() {
        let mut config = config(&fixed(2, 2, 8));
        if let BaseModelConfig::Gpt(root) = &mut config
            && let BlockSequenceConfig::Fixed(decoder) = &mut root.decoder
        {
            decoder.num_blocks = -1;
        }
        let block = Section::of::<DecoderBlockConfig>("test.block")
            .weight("a", WeightDecl::param("a", &["a"], Transform::Copy, |_| vec![1]))
            .build();
        let walks = [
            blocks(field!(TextModel.decoder), "layers", &block),
            WeightDecl::RepeatLastBlock {
                config: field!(TextModel.decoder).into(),
                count: Arc::new(|_| 1),
                fast_llm: Arc::new(|k| format!("copy.{k}")),
                hf: Arc::new(|k| format!("hf.{k}")),
                block,
            },
        ];
        for walk in walks {
            let root = Section::of::<GptBaseModelConfig>("test.root").weight("walk", walk);
            let problems = plan(&root, &config).unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].fast_llm.as_deref(), Some("decoder.num_blocks"));
            assert_eq!(
                problems[0].message,
                "expected a number of blocks (an int >= 0), found -1"
            );
        }
    }

    #[test]
    fn a_product_of_plausible_values_is_caught_by_the_element_limit() {
        // Each value alone is within the limits; their product is not (saturated, never wrapped).
        let problems = limited(&fixed(1, 64, 4000), PlanLimits::checkpoint(100, 4096)).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].fast_llm, None, "a parameter, not a config path");
        assert!(
            problems[0]
                .message
                .starts_with("parameter `decoder.0.w`: shape [256000] has more elements"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn a_parameter_beyond_the_element_limit_is_planned_for_the_checkpoint_to_name() {
        // Checked against a checkpoint of 4096 elements, `decoder.0.w` is missing or misshapen
        // there: planned, so that the check names it as such.
        let block = with_mlp::<MoeMlpConfig>(WeightDecl::param("w", &["w"], Transform::Copy, |c| {
            vec![c.size(field!(MoeMlpConfig.intermediate_size)), 64]
        }));
        let root = decoder_of(&block);
        let plan = plan_bounded(&root, &config(&fixed(1, 2, 4000)), &PlanLimits::checkpoint(100, 4096));
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        assert_eq!(plan.entries.len(), 1);
        assert_eq!(plan.entries[0].fast_llm_shape, [4000, 64]);
        assert_eq!(plan.oversized.len(), 1);
        assert!(
            plan.oversized[0]
                .message
                .starts_with("parameter `decoder.0.w`: shape [4000, 64] has more elements than the 4096")
        );
    }

    #[test]
    fn the_plan_stops_at_the_tensor_limit() {
        // 3 blocks fit the block check (3 <= 3 tensors left), then each has one parameter.
        assert!(limited(&fixed(3, 2, 8), PlanLimits::checkpoint(3, 4096)).is_ok());
        let problems = limited(&fixed(4, 2, 8), PlanLimits::checkpoint(3, 4096)).unwrap_err();
        assert_eq!(problems[0].fast_llm.as_deref(), Some("decoder.num_blocks"));
    }

    #[test]
    fn a_plan_beyond_the_tensor_limit_keeps_the_entry_past_it_and_blames_no_parameter() {
        // Two parameters per block: 2 blocks pass the block check (2 <= 3) but need 4 tensors.
        let block = Section::of::<DecoderBlockConfig>("test.block")
            .weight("a", WeightDecl::param("a", &["a"], Transform::Copy, |_| vec![1]))
            .weight("b", WeightDecl::param("b", &["b"], Transform::Copy, |_| vec![1]))
            .build();
        let root = decoder_of(&block);
        let config = self::config(r#"{"type": "fixed", "num_blocks": 2, "block": {"type": "decoder"}}"#);
        let plan = plan_bounded(&root, &config, &PlanLimits::checkpoint(3, 4096));
        let names: Vec<&str> = plan.entries.iter().map(|e| e.fast_llm.as_str()).collect();
        assert_eq!(names, ["decoder.0.a", "decoder.0.b", "decoder.1.a", "decoder.1.b"]);
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        let beyond = plan.beyond_tensor_limit.expect("beyond the limit");
        assert_eq!((beyond.fast_llm, beyond.hf), (None, None));
        assert!(
            beyond
                .message
                .contains("more tensors than the 3 tensors the checkpoint holds")
                && !beyond.message.contains("parameter"),
            "{}",
            beyond.message
        );
        let at_the_limit = plan_bounded(&root, &config, &PlanLimits::checkpoint(4, 4096));
        assert_eq!(
            (at_the_limit.entries.len(), at_the_limit.beyond_tensor_limit),
            (4, None)
        );
    }

    #[test]
    fn hf_shapes_per_transform() {
        assert_eq!(Transform::Copy.hf_shapes(&[4, 8], 1), Some(vec![vec![4, 8]]));
        assert_eq!(
            Transform::Concat.hf_shapes(&[4, 8], 2),
            Some(vec![vec![2, 8], vec![2, 8]])
        );
        assert_eq!(Transform::Concat.hf_shapes(&[5, 8], 2), None, "uneven split");
        assert_eq!(Transform::Transpose.hf_shapes(&[4, 8], 1), Some(vec![vec![8, 4]]));
        assert_eq!(
            Transform::TransposeConcat.hf_shapes(&[6, 8], 3),
            Some(vec![vec![8, 2]; 3])
        );
        assert_eq!(Transform::Transpose.hf_shapes(&[4], 1), None, "1-D has no transpose");
        assert_eq!(Transform::Reshape.hf_shapes(&[4, 8], 1), None, "declared, not derived");
    }
}
