//! Fast-LLM's parameter layout: for any config, every parameter as the Fast-LLM model builds it,
//! independent of any HF format.
//!
//! Two views of one walk over the config:
//! - [`parameters`]: every stored parameter's name and global shape (tied duplicates excluded),
//!   so weight coverage can prove each format's plan produces and consumes every parameter
//!   exactly once;
//! - [`engine_layers`]: what Fast-LLM's engine sees, for reading its distributed checkpoints: the
//!   layers it splits into stages, and per parameter, in module order, how each axis is declared
//!   for tensor parallelism ([`Axis`]), whether it has weight decay, whether it is frozen, whether
//!   it may be sequence-tensor-parallel, and whether it is a tied duplicate.
//!
//! Facts this follows (Fast-LLM 7d61a1ba):
//! - Parameter order inside a layer is PyTorch's `named_parameters` order: a module's own
//!   parameters first, then its sub-modules in registration order (so a decoder block's
//!   `output_scale` comes before `norm_1`, Mamba's `A_log` and `D` before its projections, the
//!   head's `output_weights` before `final_norm`).
//! - Engine layers: (multimodal: the vision patch embeddings, each vision encoder block, the
//!   adapter), the embeddings (layer weight 1000, so always a stage of its own), each decoder
//!   block, the head, then per extra prediction head its block and its head. Every other layer
//!   weighs 1.
//! - Tensor parallelism is declared per axis: attention head groups (or heads per group when
//!   there is one group), MLP intermediate size, Mamba head groups, GDN key/value heads and KDA
//!   heads (when more than one), the vocabulary (when `tensor_parallel > 1` and `vocab_parallel`).
//!   A product axis (heads × head size) splits on its one parallel factor; a concatenated axis
//!   (key|value, gate|up, z|x|B|C, q|k|v|z, beta|alpha) splits each part on its own. Norms, the
//!   router, `dt_in_proj` and the vision patch embeddings are never split.
//! - Weight decay: linear/embedding/convolution weights have it, biases, norms, `A_log`, `D`,
//!   `dt_bias` and the scales do not; a parameter's own `weight_decay` overrides (truthiness).
//! - Frozen (`requires_grad` false): some `lr_scale` on the parameter's path of configs is 0 (the
//!   engine multiplies them: the model's, the block sequence's, the block's, the mixer's or MLP's,
//!   the layer's, the parameter's own).
//! - Tied: the embeddings (when `tied_embedding_weight`), the head's and every extra head's output
//!   weights form one group; all but the first are duplicates, never stored.

use fastllm_config::{Map, Value};

use crate::blocks::BlockSequence;
use crate::dict::{self, join};
use crate::fl_value;

/// One axis of a parameter, as Fast-LLM declares it for tensor parallelism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Axis {
    /// `size` entries; `parallel`: declared on the tensor-parallel group, so split in equal
    /// contiguous blocks over its ranks.
    Plain { size: usize, parallel: bool },
    /// Row-major product of factors (head groups × heads per group × head size); it splits on
    /// its parallel factor, if any.
    Product(Vec<Axis>),
    /// Concatenated parts (fused weights). Parallel when its first part is (Fast-LLM requires
    /// all parts to agree); then each part is split on its own, and each rank holds its slice of
    /// every part, in part order.
    Concat(Vec<Axis>),
}

impl Axis {
    /// A plain axis, never split.
    pub fn fixed(size: usize) -> Axis {
        Axis::Plain { size, parallel: false }
    }

    /// A plain axis split over the tensor-parallel group.
    pub fn split(size: usize) -> Axis {
        Axis::Plain { size, parallel: true }
    }

    /// The global size.
    pub fn size(&self) -> usize {
        match self {
            Axis::Plain { size, .. } => *size,
            Axis::Product(factors) => factors.iter().map(Axis::size).product(),
            Axis::Concat(parts) => parts.iter().map(Axis::size).sum(),
        }
    }

    /// Whether the axis is declared on the tensor-parallel group.
    pub fn parallel(&self) -> bool {
        match self {
            Axis::Plain { parallel, .. } => *parallel,
            Axis::Product(factors) => factors.iter().any(Axis::parallel),
            Axis::Concat(parts) => parts.first().is_some_and(Axis::parallel),
        }
    }
}

/// One parameter as Fast-LLM's engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// The module path (`decoder.0.mixer.query.weight`).
    pub name: String,
    pub axes: Vec<Axis>,
    /// Whether the optimizer decays it (the truthiness Fast-LLM sorts on).
    pub weight_decay: bool,
    /// `lr_scale` 0 on its path: not trained, kept in the stage's frozen group.
    pub frozen: bool,
    /// Whether it may be sequence-tensor-parallel (false only for position embeddings when the
    /// vocabulary is tensor-parallel).
    pub sequence_parallel_allowed: bool,
    /// For a tied duplicate, the name of the parameter it shares (stored once, under that name).
    pub tied_to: Option<String>,
}

impl Parameter {
    /// The global shape.
    pub fn shape(&self) -> Vec<usize> {
        self.axes.iter().map(Axis::size).collect()
    }

    /// Whether an axis is declared tensor-parallel (even with a tensor-parallel group of 1).
    pub fn tensor_parallel(&self) -> bool {
        self.axes.iter().any(Axis::parallel)
    }

    /// Fast-LLM's `sequence_tensor_parallel` flag: allowed and not tensor-parallel.
    pub fn sequence_tensor_parallel(&self) -> bool {
        self.sequence_parallel_allowed && !self.tensor_parallel()
    }
}

/// A layer of Fast-LLM's engine: the unit it splits into stages.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineLayer {
    /// The module path of the layer (`embeddings`, `decoder.3`, `head`, ...).
    pub name: String,
    /// Fast-LLM's `layer_count`: what the stage split counts.
    pub weight: f64,
    /// Its parameters, in module order, tied duplicates included.
    pub parameters: Vec<Parameter>,
}

/// Every stored parameter of a base model (`config` in full form), with its shape, in module
/// order.
pub fn parameters(config: &Map) -> Vec<(String, Vec<usize>)> {
    let walk = Walk::run(config, 1);
    walk.layers
        .into_iter()
        .flat_map(|layer| layer.parameters)
        .filter(|p| p.tied_to.is_none())
        .map(|p| {
            let shape = p.shape();
            (p.name, shape)
        })
        .collect()
}

/// Fast-LLM's engine layers for a base model (`config` in full form) built for a tensor-parallel
/// group of `tensor_parallel` ranks. Errors list what Fast-LLM could not build (a head count
/// that does not divide, LoRA).
pub fn engine_layers(config: &Map, tensor_parallel: usize) -> Result<Vec<EngineLayer>, Vec<String>> {
    let walk = Walk::run(config, tensor_parallel);
    if walk.problems.is_empty() {
        Ok(walk.layers)
    } else {
        Err(walk.problems)
    }
}

/// What a parameter inherits from the configs above it.
#[derive(Debug, Clone, Copy, Default)]
struct Scope {
    frozen: bool,
}

impl Scope {
    /// The scope inside `config`: frozen once any `lr_scale` on the way is 0.
    fn enter(self, config: &Map) -> Scope {
        let zero = match config.get("lr_scale") {
            Some(Value::Float(f)) => *f == 0.0,
            Some(Value::Int(i)) => *i == 0,
            _ => false,
        };
        Scope {
            frozen: self.frozen || zero,
        }
    }
}

struct Walk {
    layers: Vec<EngineLayer>,
    problems: Vec<String>,
    vocab_parallel: bool,
}

fn int(config: &Map, path: &str) -> usize {
    match fl_value(config, path) {
        Value::Int(i) if *i >= 0 => *i as usize,
        _ => 0,
    }
}

fn flag(config: &Map, path: &str) -> bool {
    fl_value(config, path) == &Value::Bool(true)
}

fn sub(config: &Map, path: &str) -> Map {
    dict::get(config, path)
        .and_then(Value::as_map)
        .cloned()
        .unwrap_or_default()
}

fn kind(config: &Map) -> &str {
    match fl_value(config, "type") {
        Value::Str(t) => t,
        _ => "",
    }
}

/// A layer's bias: `enabled` when set, else the owner's default.
fn bias(config: &Map, layer: &str, default: bool) -> bool {
    match fl_value(config, &format!("{layer}.bias.enabled")) {
        Value::Bool(b) => *b,
        _ => default,
    }
}

/// The block config at each position of a block sequence.
fn blocks(sequence: &Map) -> Vec<&Map> {
    BlockSequence::read(sequence)
        .map(|blocks| blocks.blocks().map(|(_, block)| block.config).collect())
        .unwrap_or_default()
}

/// A parameter's `weight_decay` override (`float | bool | None`), by truthiness.
fn decay_override(config: &Map) -> Option<bool> {
    match config.get("weight_decay") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Float(f)) => Some(*f != 0.0),
        Some(Value::Int(i)) => Some(*i != 0),
        _ => None,
    }
}

/// How a parameter is declared: its config (for `lr_scale` and `weight_decay`), its default weight
/// decay, and whether it may be sequence-tensor-parallel.
struct Declared<'a> {
    config: &'a Map,
    decay: bool,
    sequence_parallel: bool,
}

impl<'a> Declared<'a> {
    fn decayed(config: &'a Map) -> Self {
        Declared {
            config,
            decay: true,
            sequence_parallel: true,
        }
    }

    fn not_decayed(config: &'a Map) -> Self {
        Declared {
            config,
            decay: false,
            sequence_parallel: true,
        }
    }
}

impl Walk {
    fn run(config: &Map, tensor_parallel: usize) -> Walk {
        let mut walk = Walk {
            layers: Vec::new(),
            problems: Vec::new(),
            vocab_parallel: tensor_parallel > 1 && flag(config, "embeddings.vocab_parallel"),
        };
        if !matches!(kind(&sub(config, "peft")), "" | "none") {
            walk.problems
                .push("`peft` is set: LoRA adds and freezes parameters this layout does not model".into());
        }
        let root = Scope::default().enter(config);
        let hidden = int(config, "hidden_size");
        if let Some(Value::Map(vision)) = config.get("vision_encoder") {
            walk.vision(vision, root, hidden);
        }
        walk.embeddings(config, root, hidden);
        let decoder = sub(config, "decoder");
        let decoder_scope = root.enter(&decoder);
        let blocks = blocks(&decoder);
        for (i, block) in blocks.iter().enumerate() {
            let name = format!("decoder.{i}");
            walk.layer(&name, 1.0);
            walk.block(&name, block, decoder_scope, hidden);
        }
        let head = sub(config, "head");
        let head_scope = root.enter(&head);
        let vocab = int(config, "embeddings.vocab_size");
        let tied = flag(config, "tied_embedding_weight");
        // The first output weights of the tied group is the stored one.
        let main_output = if tied {
            "embeddings.word_embeddings_weight"
        } else {
            "head.output_weights"
        };
        walk.layer("head", 1.0);
        walk.head("head", &head, head_scope, vocab, hidden, tied.then_some(main_output));
        // Multi-token prediction: per extra head, a copy of the last block, then a head whose
        // output weights are always tied duplicates.
        let heads = int(config, "head.prediction_heads");
        if let Some(last) = blocks.last() {
            for k in 0..heads.saturating_sub(1) {
                let name = format!("multi_token_prediction.blocks.{k}");
                walk.layer(&name, 1.0);
                walk.block(&name, last, head_scope, hidden);
                let name = format!("multi_token_prediction.heads.{k}");
                walk.layer(&name, 1.0);
                walk.head(&name, &head, head_scope, vocab, hidden, Some(main_output));
            }
        }
        walk
    }

    fn layer(&mut self, name: &str, weight: f64) {
        self.layers.push(EngineLayer {
            name: name.to_string(),
            weight,
            parameters: Vec::new(),
        });
    }

    fn push(&mut self, name: &str, axes: Vec<Axis>, scope: Scope, declared: Declared, tied_to: Option<&str>) {
        let parameter = Parameter {
            name: name.to_string(),
            axes,
            weight_decay: decay_override(declared.config).unwrap_or(declared.decay),
            frozen: scope.enter(declared.config).frozen,
            sequence_parallel_allowed: declared.sequence_parallel,
            tied_to: tied_to.map(str::to_string),
        };
        match self.layers.last_mut() {
            Some(layer) => layer.parameters.push(parameter),
            None => self.problems.push(format!("`{name}` outside any layer")),
        }
    }

    /// `total / parts`, recording a problem when it does not divide (Fast-LLM's `div`).
    fn div(&mut self, what: &str, total: usize, parts: usize) -> usize {
        if parts == 0 || !total.is_multiple_of(parts) {
            self.problems
                .push(format!("{what}: {total} is not a multiple of {parts}"));
            return total.checked_div(parts).unwrap_or(0);
        }
        total / parts
    }

    fn embeddings(&mut self, config: &Map, root: Scope, hidden: usize) {
        let embeddings = sub(config, "embeddings");
        let scope = root.enter(&embeddings);
        self.layer("embeddings", 1000.0);
        let vocab = Axis::Plain {
            size: int(&embeddings, "vocab_size"),
            parallel: self.vocab_parallel,
        };
        let word = sub(&embeddings, "word_embeddings");
        self.push(
            "embeddings.word_embeddings_weight",
            vec![vocab, Axis::fixed(hidden)],
            scope,
            Declared::decayed(&word),
            None,
        );
        if flag(&embeddings, "position_embeddings.enabled") {
            let position = sub(&embeddings, "position_embeddings");
            let declared = Declared {
                sequence_parallel: !self.vocab_parallel,
                ..Declared::decayed(&position)
            };
            self.push(
                "embeddings.position_embeddings_weight",
                vec![
                    Axis::fixed(int(&embeddings, "num_position_embeddings")),
                    Axis::fixed(hidden),
                ],
                scope,
                declared,
                None,
            );
        }
    }

    fn head(&mut self, prefix: &str, head: &Map, scope: Scope, vocab: usize, hidden: usize, tied_to: Option<&str>) {
        let output = sub(head, "output_weight");
        let vocab = Axis::Plain {
            size: vocab,
            parallel: self.vocab_parallel,
        };
        self.push(
            &join(prefix, "output_weights"),
            vec![vocab, Axis::fixed(hidden)],
            scope,
            Declared::decayed(&output),
            tied_to,
        );
        self.norm(&join(prefix, "final_norm"), &sub(head, "normalization"), scope, hidden);
    }

    fn norm(&mut self, prefix: &str, config: &Map, scope: Scope, dim: usize) {
        let scope = scope.enter(config);
        let with_bias = match kind(config) {
            "layer_norm" => true,
            "rms_norm" | "gated_rms_norm" => false,
            _ => return,
        };
        let weight = sub(config, "weight");
        self.push(
            &join(prefix, "weight"),
            vec![Axis::fixed(dim)],
            scope,
            Declared::not_decayed(&weight),
            None,
        );
        if with_bias {
            let bias = sub(config, "bias");
            self.push(
                &join(prefix, "bias"),
                vec![Axis::fixed(dim)],
                scope,
                Declared::not_decayed(&bias),
                None,
            );
        }
    }

    /// A norm that exists only when configured (`X | None` fields).
    fn optional_norm(&mut self, prefix: &str, config: &Map, path: &str, scope: Scope, dim: usize) {
        if let Some(Value::Map(norm)) = config.get(path) {
            self.norm(prefix, norm, scope, dim);
        }
    }

    /// A linear layer `layer` of `owner`: weight `[output, input]` (`[input, output]` when
    /// transposed) and an optional bias over `output`.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        prefix: &str,
        owner: &Map,
        layer: &str,
        scope: Scope,
        input: Axis,
        output: Axis,
        with_bias: bool,
        transposed: bool,
    ) {
        let config = sub(owner, layer);
        let scope = scope.enter(&config);
        let axes = if transposed {
            vec![input, output.clone()]
        } else {
            vec![output.clone(), input]
        };
        let weight = sub(&config, "weight");
        self.push(&join(prefix, "weight"), axes, scope, Declared::decayed(&weight), None);
        if with_bias {
            let bias = sub(&config, "bias");
            self.push(
                &join(prefix, "bias"),
                vec![output],
                scope,
                Declared::not_decayed(&bias),
                None,
            );
        }
    }

    /// A causal convolution over `channels`: weight `[channels, 1, kernel]`, optional bias.
    fn convolution(&mut self, prefix: &str, owner: &Map, scope: Scope, channels: Axis, with_bias: bool) {
        let config = sub(owner, "convolution_layer");
        let scope = scope.enter(&config);
        let kernel = int(&config, "kernel_size");
        let weight = sub(&config, "weight");
        self.push(
            &join(prefix, "weight"),
            vec![channels.clone(), Axis::fixed(1), Axis::fixed(kernel)],
            scope,
            Declared::decayed(&weight),
            None,
        );
        if with_bias {
            let bias = sub(&config, "bias");
            self.push(
                &join(prefix, "bias"),
                vec![channels],
                scope,
                Declared::not_decayed(&bias),
                None,
            );
        }
    }

    /// A parameter declared directly on a layer (`A_log`, `D`, `dt_bias`, scales).
    fn direct(&mut self, prefix: &str, owner: &Map, field: &str, scope: Scope, axes: Vec<Axis>) {
        let config = sub(owner, field);
        self.push(prefix, axes, scope, Declared::not_decayed(&config), None);
    }

    fn block(&mut self, prefix: &str, config: &Map, scope: Scope, hidden: usize) {
        let scope = scope.enter(config);
        if flag(config, "output_scale.enabled") {
            self.direct(
                &join(prefix, "output_scale"),
                config,
                "output_scale",
                scope,
                vec![Axis::fixed(1)],
            );
        }
        let norm = |path: &str| match config.get(path) {
            Some(Value::Map(norm)) => norm.clone(),
            _ => sub(config, "normalization"),
        };
        self.norm(&join(prefix, "norm_1"), &norm("pre_mixer_normalization"), scope, hidden);
        self.norm(&join(prefix, "norm_2"), &norm("pre_mlp_normalization"), scope, hidden);
        self.optional_norm(
            &join(prefix, "post_mixer_norm"),
            config,
            "post_mixer_normalization",
            scope,
            hidden,
        );
        self.optional_norm(
            &join(prefix, "post_mlp_norm"),
            config,
            "post_mlp_normalization",
            scope,
            hidden,
        );
        self.mixer(&join(prefix, "mixer"), &sub(config, "mixer"), scope, hidden);
        self.mlp(&join(prefix, "mlp"), &sub(config, "mlp"), scope, hidden, hidden);
    }

    fn mixer(&mut self, prefix: &str, config: &Map, scope: Scope, hidden: usize) {
        let scope = scope.enter(config);
        let linear_biases = flag(config, "add_linear_biases");
        match kind(config) {
            "attention" => self.attention(prefix, config, scope, hidden, linear_biases),
            "mamba" => self.mamba(prefix, config, scope, hidden, linear_biases),
            "gdn" => self.gdn(prefix, config, scope, hidden),
            "kda" => self.kda(prefix, config, scope, hidden),
            "stochastic" => {
                for (name, mixer) in sub(config, "mixers") {
                    if let Value::Map(mixer) = mixer {
                        self.mixer(&join(prefix, &format!("mixers.{name}")), &mixer, scope, hidden);
                    }
                }
            }
            _ => {}
        }
    }

    fn attention(&mut self, prefix: &str, config: &Map, scope: Scope, hidden: usize, linear_biases: bool) {
        let (heads, groups, head_size) = (
            int(config, "heads"),
            int(config, "head_groups"),
            int(config, "head_size"),
        );
        // Head groups split over the tensor-parallel group; with a single group, its heads do.
        let group_axis = Axis::Plain {
            size: groups,
            parallel: groups > 1,
        };
        let group_heads = Axis::Plain {
            size: self.div(&format!("{prefix}: heads per head group"), heads, groups),
            parallel: groups <= 1,
        };
        let per_group = |axis: &Axis| Axis::Product(vec![axis.clone(), Axis::fixed(head_size)]);
        let query = Axis::Product(vec![group_axis.clone(), group_heads, Axis::fixed(head_size)]);
        let key_value = if flag(config, "shared_key_value") {
            per_group(&group_axis)
        } else {
            Axis::Concat(vec![per_group(&group_axis), per_group(&group_axis)])
        };
        let hidden_axis = Axis::fixed(hidden);
        self.linear(
            &join(prefix, "query"),
            config,
            "query_layer",
            scope,
            hidden_axis.clone(),
            query.clone(),
            bias(config, "query_layer", linear_biases),
            false,
        );
        self.linear(
            &join(prefix, "key_value"),
            config,
            "key_layer",
            scope,
            hidden_axis.clone(),
            key_value,
            bias(config, "key_layer", linear_biases),
            false,
        );
        for norm in ["query_norm", "key_norm", "value_norm"] {
            self.optional_norm(&join(prefix, norm), config, norm, scope, head_size);
        }
        self.linear(
            &join(prefix, "dense"),
            config,
            "dense_layer",
            scope,
            query,
            hidden_axis,
            bias(config, "dense_layer", linear_biases),
            false,
        );
    }

    fn mamba(&mut self, prefix: &str, config: &Map, scope: Scope, hidden: usize, linear_biases: bool) {
        let (inner, xb, rank, state) = (
            int(config, "d_inner"),
            int(config, "d_xb"),
            int(config, "dt_rank"),
            int(config, "state_size"),
        );
        let heads = self.div(&format!("{prefix}: d_inner / state_size"), inner, state);
        let groups = self.div(&format!("{prefix}: d_xb / state_size"), xb, state);
        let group_heads = self.div(&format!("{prefix}: heads per head group"), heads, groups);
        let group_axis = Axis::split(groups);
        let inner_axis = Axis::Product(vec![group_axis.clone(), Axis::fixed(group_heads), Axis::fixed(state)]);
        let xb_axis = Axis::Product(vec![group_axis, Axis::fixed(state)]);
        self.direct(
            &join(prefix, "A_log"),
            config,
            "a_log_weight",
            scope,
            vec![inner_axis.clone(), Axis::fixed(state)],
        );
        self.direct(&join(prefix, "D"), config, "d_weight", scope, vec![inner_axis.clone()]);
        let channels = if flag(config, "repeat_kv_before_conv") {
            inner_axis.clone()
        } else {
            xb_axis.clone()
        };
        self.convolution(
            &join(prefix, "convolution"),
            config,
            scope,
            channels,
            bias(config, "convolution_layer", linear_biases),
        );
        let hidden_axis = Axis::fixed(hidden);
        self.linear(
            &join(prefix, "in_proj"),
            config,
            "z_layer",
            scope,
            hidden_axis.clone(),
            Axis::Concat(vec![inner_axis.clone(), xb_axis.clone(), xb_axis, inner_axis.clone()]),
            bias(config, "z_layer", linear_biases),
            false,
        );
        self.linear(
            &join(prefix, "dt_in_proj"),
            config,
            "dt_input_layer",
            scope,
            hidden_axis.clone(),
            Axis::fixed(rank),
            bias(config, "dt_input_layer", linear_biases),
            false,
        );
        self.linear(
            &join(prefix, "dt_proj"),
            config,
            "dt_layer",
            scope,
            Axis::fixed(rank),
            inner_axis.clone(),
            bias(config, "dt_layer", linear_biases),
            false,
        );
        self.linear(
            &join(prefix, "out_proj"),
            config,
            "output_layer",
            scope,
            inner_axis,
            hidden_axis,
            bias(config, "output_layer", linear_biases),
            false,
        );
    }

    fn gdn(&mut self, prefix: &str, config: &Map, scope: Scope, hidden: usize) {
        let heads = |count: usize| Axis::Plain {
            size: count,
            parallel: count > 1,
        };
        let (key_heads, value_heads) = (heads(int(config, "key_heads")), heads(int(config, "value_heads")));
        let per_head = |axis: &Axis, dim: &str| Axis::Product(vec![axis.clone(), Axis::fixed(int(config, dim))]);
        let (query, key) = (
            per_head(&key_heads, "key_head_dim"),
            per_head(&key_heads, "key_head_dim"),
        );
        let (value, z) = (
            per_head(&value_heads, "value_head_dim"),
            per_head(&value_heads, "value_head_dim"),
        );
        self.direct(
            &join(prefix, "dt_bias"),
            config,
            "dt_bias_weight",
            scope,
            vec![value_heads.clone()],
        );
        self.direct(
            &join(prefix, "A_log"),
            config,
            "a_log_weight",
            scope,
            vec![value_heads.clone()],
        );
        let hidden_axis = Axis::fixed(hidden);
        self.linear(
            &join(prefix, "in_proj_qkvz"),
            config,
            "qkv_projection_layer",
            scope,
            hidden_axis.clone(),
            Axis::Concat(vec![query.clone(), key.clone(), value.clone(), z]),
            bias(config, "qkv_projection_layer", false),
            false,
        );
        let per_value_head = Axis::Product(vec![value_heads.clone()]);
        self.linear(
            &join(prefix, "in_proj_ba"),
            config,
            "ba_projection_layer",
            scope,
            hidden_axis.clone(),
            Axis::Concat(vec![per_value_head.clone(), per_value_head]),
            bias(config, "ba_projection_layer", false),
            false,
        );
        self.convolution(
            &join(prefix, "convolution"),
            config,
            scope,
            Axis::Concat(vec![query, key, value.clone()]),
            bias(config, "convolution_layer", false),
        );
        self.linear(
            &join(prefix, "out_proj"),
            config,
            "output_layer",
            scope,
            value,
            hidden_axis,
            bias(config, "output_layer", false),
            false,
        );
        self.norm(
            &join(prefix, "norm"),
            &sub(config, "normalization"),
            scope,
            int(config, "value_head_dim"),
        );
    }

    fn kda(&mut self, prefix: &str, config: &Map, scope: Scope, hidden: usize) {
        let count = int(config, "heads");
        let dim = int(config, "head_dim");
        let heads = Axis::Plain {
            size: count,
            parallel: count > 1,
        };
        let projection = Axis::Product(vec![heads.clone(), Axis::fixed(dim)]);
        self.direct(
            &join(prefix, "dt_bias"),
            config,
            "dt_bias_weight",
            scope,
            vec![projection.clone()],
        );
        self.direct(
            &join(prefix, "A_log"),
            config,
            "a_log_weight",
            scope,
            vec![heads.clone()],
        );
        let hidden_axis = Axis::fixed(hidden);
        for (name, layer) in [
            ("q_proj", "q_projection_layer"),
            ("k_proj", "k_projection_layer"),
            ("v_proj", "v_projection_layer"),
        ] {
            self.linear(
                &join(prefix, name),
                config,
                layer,
                scope,
                hidden_axis.clone(),
                projection.clone(),
                bias(config, layer, false),
                false,
            );
        }
        for name in ["q_conv", "k_conv", "v_conv"] {
            self.convolution(
                &join(prefix, name),
                config,
                scope,
                projection.clone(),
                bias(config, "convolution_layer", false),
            );
        }
        let layers = [
            (
                "f_a_proj",
                "f_a_projection_layer",
                hidden_axis.clone(),
                Axis::fixed(dim),
            ),
            ("f_b_proj", "f_b_projection_layer", Axis::fixed(dim), projection.clone()),
            (
                "g_a_proj",
                "g_a_projection_layer",
                hidden_axis.clone(),
                Axis::fixed(dim),
            ),
            ("g_b_proj", "g_b_projection_layer", Axis::fixed(dim), projection.clone()),
            ("beta_proj", "beta_projection_layer", hidden_axis.clone(), heads),
            ("o_proj", "output_projection_layer", projection, hidden_axis),
        ];
        for (name, layer, input, output) in layers {
            self.linear(
                &join(prefix, name),
                config,
                layer,
                scope,
                input,
                output,
                bias(config, layer, false),
                false,
            );
        }
        self.norm(&join(prefix, "norm"), &sub(config, "normalization"), scope, dim);
    }

    fn mlp(&mut self, prefix: &str, config: &Map, scope: Scope, input: usize, output: usize) {
        let scope = scope.enter(config);
        let size = int(config, "intermediate_size");
        let intermediate = Axis::split(size);
        let first = if flag(config, "gated") {
            Axis::Concat(vec![intermediate.clone(), intermediate.clone()])
        } else {
            intermediate.clone()
        };
        let norms = |walk: &mut Walk| {
            walk.optional_norm(&join(prefix, "pre_norm"), config, "pre_norm", scope, input);
            walk.optional_norm(&join(prefix, "post_norm"), config, "post_norm", scope, output);
        };
        match kind(config) {
            "mlp" => {
                norms(self);
                let linear_biases = flag(config, "add_linear_biases");
                self.linear(
                    &join(prefix, "layer_1"),
                    config,
                    "layer_1",
                    scope,
                    Axis::fixed(input),
                    first,
                    bias(config, "layer_1", linear_biases),
                    false,
                );
                self.linear(
                    &join(prefix, "layer_2"),
                    config,
                    "layer_2",
                    scope,
                    intermediate,
                    Axis::fixed(output),
                    bias(config, "layer_2", linear_biases),
                    true,
                );
            }
            "moe" => {
                let experts = int(config, "experts");
                if flag(config, "router_scale.enabled") {
                    self.direct(
                        &join(prefix, "router_scale"),
                        config,
                        "router_scale",
                        scope,
                        vec![Axis::fixed(input)],
                    );
                }
                if flag(config, "router_per_expert_scale.enabled") {
                    self.direct(
                        &join(prefix, "router_per_expert_scale"),
                        config,
                        "router_per_expert_scale",
                        scope,
                        vec![Axis::fixed(experts)],
                    );
                }
                norms(self);
                let per_expert = |axis: Axis| Axis::Product(vec![Axis::fixed(experts), axis]);
                self.linear(
                    &join(prefix, "layer_1"),
                    config,
                    "layer_1",
                    scope,
                    Axis::fixed(input),
                    per_expert(first),
                    false,
                    false,
                );
                self.linear(
                    &join(prefix, "layer_2"),
                    config,
                    "layer_2",
                    scope,
                    per_expert(intermediate),
                    Axis::fixed(output),
                    false,
                    true,
                );
                let routed = experts - int(config, "shared_experts").min(experts);
                self.linear(
                    &join(prefix, "router"),
                    config,
                    "router",
                    scope,
                    Axis::fixed(input),
                    Axis::fixed(routed),
                    false,
                    false,
                );
                self.optional_norm(
                    &join(prefix, "router_normalization"),
                    config,
                    "router_normalization",
                    scope,
                    input,
                );
            }
            "hybrid_moe" => {
                self.mlp(&join(prefix, "dense"), &sub(config, "dense"), scope, input, output);
                self.mlp(&join(prefix, "routed"), &sub(config, "routed"), scope, input, output);
                norms(self);
            }
            _ => {}
        }
    }

    fn vision(&mut self, config: &Map, root: Scope, text_hidden: usize) {
        let scope = root.enter(config);
        let hidden = int(config, "hidden_size");
        let embeddings = sub(config, "embeddings");
        let embeddings_scope = scope.enter(&embeddings);
        let patch = 3 * int(&embeddings, "patch_height") * int(&embeddings, "patch_width");
        self.layer("vision_encoder.embeddings", 1.0);
        self.linear(
            "vision_encoder.embeddings.patch_embeddings",
            &embeddings,
            "patch_embeddings",
            embeddings_scope,
            Axis::fixed(patch),
            Axis::fixed(hidden),
            flag(&embeddings, "patch_embeddings.bias.enabled"),
            false,
        );
        self.norm(
            "vision_encoder.embeddings.normalization",
            &sub(&embeddings, "normalization"),
            embeddings_scope,
            hidden,
        );
        let encoder = sub(config, "encoder");
        let encoder_scope = scope.enter(&encoder);
        for (i, block) in blocks(&encoder).iter().enumerate() {
            let name = format!("vision_encoder.encoder.{i}");
            self.layer(&name, 1.0);
            self.block(&name, block, encoder_scope, hidden);
        }
        self.layer("vision_encoder.adapter", 1.0);
        self.mlp(
            "vision_encoder.adapter",
            &sub(config, "adapter"),
            scope,
            hidden,
            text_hidden,
        );
    }
}

/// Weight coverage of a plan: every parameter of the layout produced exactly once with its
/// shape, nothing else. Returns the differences.
pub fn coverage_gaps(layout: &[(String, Vec<usize>)], planned: &[(String, Vec<usize>)]) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut gaps = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, _) in planned {
        *counts.entry(name).or_default() += 1;
    }
    gaps.extend(
        counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(name, n)| format!("`{name}` produced {n} times")),
    );
    let planned: BTreeMap<&str, &Vec<usize>> = planned.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let expected: BTreeMap<&str, &Vec<usize>> = layout.iter().map(|(n, s)| (n.as_str(), s)).collect();
    for (name, shape) in &expected {
        match planned.get(name) {
            None => gaps.push(format!("`{name}` {shape:?} is not converted")),
            Some(got) if got != shape => {
                gaps.push(format!("`{name}`: planned shape {got:?}, Fast-LLM builds {shape:?}"))
            }
            Some(_) => {}
        }
    }
    gaps.extend(
        planned
            .keys()
            .filter(|n| !expected.contains_key(*n))
            .map(|n| format!("`{n}` is not a Fast-LLM parameter")),
    );
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastllm_config::{Form, ModelKind, load_base_model};

    fn full(json: &str) -> Map {
        let config = load_base_model(ModelKind::Gpt, &Value::from_json_str(json).unwrap()).unwrap();
        config.to_form(Form::Full)
    }

    fn layout(json: &str) -> Vec<(String, Vec<usize>)> {
        parameters(&full(json))
    }

    const LLAMA_LIKE: &str = r#"{"hidden_size": 8, "embeddings": {"vocab_size": 10}, "tied_embedding_weight": true,
        "decoder": {"num_blocks": 1, "block": {
          "mixer": {"heads": 4, "head_groups": 2, "head_size": 2, "add_linear_biases": false},
          "mlp": {"intermediate_size": 16, "gated": true, "add_linear_biases": false},
          "normalization": {"type": "rms_norm"}}},
        "head": {"normalization": {"type": "rms_norm"}}}"#;

    #[test]
    fn a_llama_like_model_in_module_order() {
        let expected = [
            ("embeddings.word_embeddings_weight", vec![10, 8]),
            ("decoder.0.norm_1.weight", vec![8]),
            ("decoder.0.norm_2.weight", vec![8]),
            ("decoder.0.mixer.query.weight", vec![8, 8]),
            ("decoder.0.mixer.key_value.weight", vec![8, 8]),
            ("decoder.0.mixer.dense.weight", vec![8, 8]),
            ("decoder.0.mlp.layer_1.weight", vec![32, 8]),
            ("decoder.0.mlp.layer_2.weight", vec![16, 8]),
            ("head.final_norm.weight", vec![8]),
        ];
        let expected: Vec<(String, Vec<usize>)> = expected.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
        assert_eq!(layout(LLAMA_LIKE), expected);
    }

    #[test]
    fn defaults_have_layer_norms_and_biases() {
        let names: Vec<String> = layout(r#"{"decoder": {"num_blocks": 1}}"#)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for name in [
            "decoder.0.norm_1.bias",
            "decoder.0.mixer.query.bias",
            "decoder.0.mlp.layer_2.bias",
            "head.output_weights",
        ] {
            assert!(names.contains(&name.to_string()), "{name} in {names:?}");
        }
    }

    #[test]
    fn engine_layers_split_embeddings_blocks_and_head() {
        let layers = engine_layers(&full(LLAMA_LIKE), 2).unwrap();
        let names: Vec<(&str, f64)> = layers.iter().map(|l| (l.name.as_str(), l.weight)).collect();
        assert_eq!(names, [("embeddings", 1000.0), ("decoder.0", 1.0), ("head", 1.0)]);
        // The head's output weights come first (a module's own parameters precede its
        // sub-modules') and are the tied duplicate of the embeddings.
        let head = &layers[2].parameters;
        assert_eq!(head[0].name, "head.output_weights");
        assert_eq!(head[0].tied_to.as_deref(), Some("embeddings.word_embeddings_weight"));
        assert_eq!(head[1].name, "head.final_norm.weight");
    }

    #[test]
    fn tensor_parallel_axes_follow_fast_llm_declarations() {
        let layers = engine_layers(&full(LLAMA_LIKE), 2).unwrap();
        let find = |name: &str| {
            layers
                .iter()
                .flat_map(|l| &l.parameters)
                .find(|p| p.name == name)
                .unwrap()
                .clone()
        };
        let group = Axis::split(2);
        let per_group = Axis::Product(vec![group.clone(), Axis::fixed(2)]);
        assert_eq!(
            find("decoder.0.mixer.key_value.weight").axes,
            [Axis::Concat(vec![per_group.clone(), per_group]), Axis::fixed(8)]
        );
        assert_eq!(
            find("decoder.0.mixer.dense.weight").axes,
            [
                Axis::fixed(8),
                Axis::Product(vec![group, Axis::fixed(2), Axis::fixed(2)])
            ]
        );
        assert_eq!(
            find("decoder.0.mlp.layer_1.weight").axes,
            [Axis::Concat(vec![Axis::split(16), Axis::split(16)]), Axis::fixed(8)]
        );
        assert_eq!(
            find("decoder.0.mlp.layer_2.weight").axes,
            [Axis::split(16), Axis::fixed(8)]
        );
        // The vocabulary splits only with more than one rank.
        assert!(find("embeddings.word_embeddings_weight").tensor_parallel());
        let single = engine_layers(&full(LLAMA_LIKE), 1).unwrap();
        assert!(!single[0].parameters[0].tensor_parallel());
        let norm = find("decoder.0.norm_1.weight");
        assert!(!norm.tensor_parallel() && !norm.weight_decay && norm.sequence_tensor_parallel());
    }

    #[test]
    fn a_single_head_group_splits_heads_and_duplicates_key_value() {
        let config = full(
            r#"{"hidden_size": 8, "decoder": {"num_blocks": 1, "block": {
                "mixer": {"heads": 4, "head_groups": 1, "head_size": 2}}}}"#,
        );
        let layers = engine_layers(&config, 2).unwrap();
        let block = &layers[1].parameters;
        let query = block.iter().find(|p| p.name.ends_with("query.weight")).unwrap();
        assert_eq!(
            query.axes[0],
            Axis::Product(vec![Axis::fixed(1), Axis::split(4), Axis::fixed(2)])
        );
        let key_value = block.iter().find(|p| p.name.ends_with("key_value.weight")).unwrap();
        assert!(!key_value.tensor_parallel());
    }

    #[test]
    fn lr_scale_zero_freezes_and_weight_decay_overrides() {
        let config = full(
            r#"{"hidden_size": 8, "decoder": {"num_blocks": 1, "block": {
                "mixer": {"heads": 2, "head_groups": 1, "head_size": 4,
                          "query_layer": {"weight": {"weight_decay": false}}},
                "mlp": {"lr_scale": 0.0, "intermediate_size": 4}}}}"#,
        );
        let layers = engine_layers(&config, 1).unwrap();
        let block = &layers[1].parameters;
        for parameter in block {
            let in_mlp = parameter.name.contains(".mlp.");
            assert_eq!(parameter.frozen, in_mlp, "{}", parameter.name);
        }
        let query = block.iter().find(|p| p.name.ends_with("query.weight")).unwrap();
        assert!(!query.weight_decay);
        let dense = block.iter().find(|p| p.name.ends_with("dense.weight")).unwrap();
        assert!(dense.weight_decay);
    }

    #[test]
    fn indivisible_heads_are_reported() {
        let config = full(
            r#"{"hidden_size": 8, "decoder": {"num_blocks": 1, "block": {
                "mixer": {"type": "mamba", "d_inner": 16, "state_size": 4, "d_xb": 12}}}}"#,
        );
        let problems = engine_layers(&config, 1).unwrap_err();
        assert!(problems[0].contains("heads per head group"), "{problems:?}");
    }

    #[test]
    fn coverage_gaps_name_every_difference() {
        let layout = vec![("a".to_string(), vec![1]), ("b".to_string(), vec![2])];
        let planned = vec![
            ("a".to_string(), vec![1]),
            ("a".to_string(), vec![1]),
            ("b".to_string(), vec![3]),
            ("c".to_string(), vec![1]),
        ];
        assert_eq!(
            coverage_gaps(&layout, &planned),
            [
                "`a` produced 2 times",
                "`b`: planned shape [3], Fast-LLM builds [2]",
                "`c` is not a Fast-LLM parameter"
            ]
        );
    }
}
