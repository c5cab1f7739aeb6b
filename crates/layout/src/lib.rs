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

use fastllm_config::field_types::WeightDecay;
use fastllm_config::{
    AffineLinearConfig, AttentionConfig, BaseModelConfig, BlockConfig, BlockSequenceConfig, CausalConv1dConfig,
    DecoderBlockConfig, DefaultBias, GatedDeltaNetConfig, GatedRmsNormalizationConfig, KimiDeltaAttentionConfig,
    LanguageModelEmbeddingsConfig, LanguageModelHeadConfig, LinearConfig, MambaConfig, MixerConfig, MlpBaseConfig,
    MlpConfig, MoeMlpConfig, NormalizationConfig, OptionalParameterConfig, ParameterConfig, PatchEmbeddingsConfig,
    PeftConfig, VisionEncoderConfig,
};

use fastllm_config::dict::join;

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

/// Every stored parameter of a base model, with its shape, in module order. What Fast-LLM could
/// not build (see [`engine_layers`]) is left out of the shapes, not reported.
pub fn parameters(config: &BaseModelConfig) -> Vec<(String, Vec<usize>)> {
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

/// Fast-LLM's engine layers for a base model built for a tensor-parallel group of
/// `tensor_parallel` ranks. Errors list what Fast-LLM could not build (a head count that does not
/// divide, a negative size, LoRA), each naming its module path.
pub fn engine_layers(config: &BaseModelConfig, tensor_parallel: usize) -> Result<Vec<EngineLayer>, Vec<String>> {
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
    /// The scope inside a config with this `lr_scale`: frozen once any `lr_scale` on the way is 0.
    fn enter(self, lr_scale: Option<f64>) -> Scope {
        Scope {
            frozen: self.frozen || lr_scale == Some(0.0),
        }
    }
}

/// The fields both base-model kinds share, and the multimodal one's vision encoder.
struct Root<'a> {
    lr_scale: Option<f64>,
    decoder: &'a BlockSequenceConfig,
    embeddings: &'a LanguageModelEmbeddingsConfig,
    head: &'a LanguageModelHeadConfig,
    tied_embedding_weight: bool,
    hidden_size: i64,
    peft: &'a PeftConfig,
    vision_encoder: Option<&'a VisionEncoderConfig>,
}

impl<'a> Root<'a> {
    fn of(config: &'a BaseModelConfig) -> Self {
        // The two roots are different classes with the same text-model fields.
        macro_rules! root {
            ($c:expr, $vision_encoder:expr) => {
                Root {
                    lr_scale: $c.lr_scale,
                    decoder: &$c.decoder,
                    embeddings: &$c.embeddings,
                    head: &$c.head,
                    tied_embedding_weight: $c.tied_embedding_weight,
                    hidden_size: $c.hidden_size,
                    peft: &$c.peft,
                    vision_encoder: $vision_encoder,
                }
            };
        }
        match config {
            BaseModelConfig::Gpt(c) => root!(c, None),
            BaseModelConfig::MultiModal(c) => root!(c, Some(&c.vision_encoder)),
        }
    }
}

fn sequence_lr_scale(sequence: &BlockSequenceConfig) -> Option<f64> {
    match sequence {
        BlockSequenceConfig::Fixed(fixed) => fixed.lr_scale,
        BlockSequenceConfig::Pattern(pattern) => pattern.lr_scale,
    }
}

/// A parameter's `weight_decay` override (`float | bool`), by truthiness.
fn decay_override(weight_decay: Option<&WeightDecay>) -> Option<bool> {
    weight_decay.map(|decay| match decay {
        WeightDecay::Bool(b) => *b,
        WeightDecay::Float(f) => *f != 0.0,
    })
}

/// How a parameter is declared: its own `lr_scale` and `weight_decay`, its default weight decay,
/// and whether it may be sequence-tensor-parallel.
struct Declared<'a> {
    lr_scale: Option<f64>,
    weight_decay: Option<&'a WeightDecay>,
    decay: bool,
    sequence_parallel: bool,
    /// The parameter this one duplicates (tied weights), never stored.
    tied_to: Option<&'a str>,
}

impl<'a> Declared<'a> {
    fn decayed(config: &'a ParameterConfig) -> Self {
        Declared {
            lr_scale: config.lr_scale,
            weight_decay: config.weight_decay.as_ref(),
            decay: true,
            sequence_parallel: true,
            tied_to: None,
        }
    }

    fn not_decayed(config: &'a ParameterConfig) -> Self {
        Declared {
            decay: false,
            ..Declared::decayed(config)
        }
    }

    /// An optional parameter (a bias, a norm's own scale): not decayed unless its own
    /// `weight_decay` says so.
    fn optional(config: &'a OptionalParameterConfig) -> Self {
        Declared {
            lr_scale: config.lr_scale,
            weight_decay: config.weight_decay.as_ref(),
            decay: false,
            sequence_parallel: true,
            tied_to: None,
        }
    }
}

/// What an MLP's intermediate axes depend on (dense and MoE MLPs alike).
struct MlpShape {
    size: i64,
    gated: bool,
}

// The dense and the MoE MLP are distinct classes with the same intermediate fields.
macro_rules! mlp_shape_of {
    ($($class:ty),*) => {
        $(impl From<&$class> for MlpShape {
            fn from(config: &$class) -> Self {
                MlpShape { size: config.intermediate_size, gated: config.gated }
            }
        })*
    };
}
mlp_shape_of!(MlpConfig, MoeMlpConfig);

/// A linear layer: weight `[output, input]` (`[input, output]` when transposed) and, when
/// enabled, a bias over `output`.
struct Linear<'a> {
    lr_scale: Option<f64>,
    weight: &'a ParameterConfig,
    bias: Option<&'a OptionalParameterConfig>,
    input: Axis,
    output: Axis,
    transposed: bool,
}

impl<'a> Linear<'a> {
    /// An affine layer whose bias is on when its `bias.enabled` says so, else by `default_bias`.
    fn affine(config: &'a AffineLinearConfig, default_bias: DefaultBias, input: Axis, output: Axis) -> Self {
        Linear {
            bias: default_bias.resolve(config.bias.enabled).then_some(&config.bias),
            ..Linear::without_bias(config, input, output)
        }
    }

    /// An affine layer built without its bias, whatever the config says (the MoE experts).
    fn without_bias(config: &'a AffineLinearConfig, input: Axis, output: Axis) -> Self {
        Linear::weight_only(config.lr_scale, &config.weight, input, output)
    }

    /// A layer that has no bias (the router).
    fn plain(config: &'a LinearConfig, input: Axis, output: Axis) -> Self {
        Linear::weight_only(config.lr_scale, &config.weight, input, output)
    }

    fn weight_only(lr_scale: Option<f64>, weight: &'a ParameterConfig, input: Axis, output: Axis) -> Self {
        Linear {
            lr_scale,
            weight,
            bias: None,
            input,
            output,
            transposed: false,
        }
    }

    fn transposed(self) -> Self {
        Linear {
            transposed: true,
            ..self
        }
    }
}

struct Walk {
    layers: Vec<EngineLayer>,
    problems: Vec<String>,
    vocab_parallel: bool,
}

impl Walk {
    fn run(config: &BaseModelConfig, tensor_parallel: usize) -> Walk {
        let root_config = Root::of(config);
        let mut walk = Walk {
            layers: Vec::new(),
            problems: Vec::new(),
            vocab_parallel: tensor_parallel > 1 && root_config.embeddings.vocab_parallel,
        };
        match root_config.peft {
            PeftConfig::None(_) => {}
            PeftConfig::Lora(_) => walk
                .problems
                .push("`peft` is set: LoRA adds and freezes parameters this layout does not model".into()),
        }
        let root = Scope::default().enter(root_config.lr_scale);
        let hidden = walk.size("hidden_size", root_config.hidden_size);
        if let Some(vision) = root_config.vision_encoder {
            walk.vision(vision, root, hidden);
        }
        walk.embeddings(root_config.embeddings, root, hidden);
        let decoder_scope = root.enter(sequence_lr_scale(root_config.decoder));
        let blocks = root_config.decoder.blocks();
        for (i, block) in blocks.iter().enumerate() {
            let name = format!("decoder.{i}");
            walk.layer(&name, 1.0);
            walk.block(&name, block, decoder_scope, hidden);
        }
        let head = root_config.head;
        let head_scope = root.enter(head.lr_scale);
        let vocab = walk.size("embeddings.vocab_size", root_config.embeddings.vocab_size);
        let tied = root_config.tied_embedding_weight;
        // The first output weights of the tied group is the stored one.
        let main_output = if tied {
            "embeddings.word_embeddings_weight"
        } else {
            "head.output_weights"
        };
        let output = Output {
            vocab,
            hidden,
            tied_to: tied.then_some(main_output),
        };
        walk.layer("head", 1.0);
        walk.head("head", head, head_scope, &output);
        // Multi-token prediction: per extra head, a copy of the last block, then a head whose
        // output weights are always tied duplicates.
        let heads = walk.size("head.prediction_heads", head.prediction_heads);
        if let Some(last) = blocks.last() {
            let output = Output {
                tied_to: Some(main_output),
                ..output
            };
            for k in 0..heads.saturating_sub(1) {
                let name = format!("multi_token_prediction.blocks.{k}");
                walk.layer(&name, 1.0);
                walk.block(&name, last, head_scope, hidden);
                let name = format!("multi_token_prediction.heads.{k}");
                walk.layer(&name, 1.0);
                walk.head(&name, head, head_scope, &output);
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

    fn push(&mut self, name: &str, axes: Vec<Axis>, scope: Scope, declared: Declared) {
        let parameter = Parameter {
            name: name.to_string(),
            axes,
            weight_decay: decay_override(declared.weight_decay).unwrap_or(declared.decay),
            frozen: scope.enter(declared.lr_scale).frozen,
            sequence_parallel_allowed: declared.sequence_parallel,
            tied_to: declared.tied_to.map(str::to_string),
        };
        match self.layers.last_mut() {
            Some(layer) => layer.parameters.push(parameter),
            None => self.problems.push(format!("`{name}` outside any layer")),
        }
    }

    /// A size field at `path`, recording a problem when it is negative.
    fn size(&mut self, path: &str, value: i64) -> usize {
        usize::try_from(value).unwrap_or_else(|_| {
            self.problems.push(format!("{path}: {value} is negative"));
            0
        })
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

    fn embeddings(&mut self, embeddings: &LanguageModelEmbeddingsConfig, root: Scope, hidden: usize) {
        let scope = root.enter(embeddings.lr_scale);
        self.layer("embeddings", 1000.0);
        let vocab = Axis::Plain {
            size: self.size("embeddings.vocab_size", embeddings.vocab_size),
            parallel: self.vocab_parallel,
        };
        self.push(
            "embeddings.word_embeddings_weight",
            vec![vocab, Axis::fixed(hidden)],
            scope,
            Declared::decayed(&embeddings.word_embeddings),
        );
        let position = &embeddings.position_embeddings;
        if position.enabled == Some(true) {
            let declared = Declared {
                sequence_parallel: !self.vocab_parallel,
                decay: true,
                ..Declared::optional(position)
            };
            let count = self.size("embeddings.num_position_embeddings", embeddings.num_position_embeddings);
            self.push(
                "embeddings.position_embeddings_weight",
                vec![Axis::fixed(count), Axis::fixed(hidden)],
                scope,
                declared,
            );
        }
    }

    fn head(&mut self, prefix: &str, head: &LanguageModelHeadConfig, scope: Scope, output: &Output) {
        let vocab = Axis::Plain {
            size: output.vocab,
            parallel: self.vocab_parallel,
        };
        self.push(
            &join(prefix, "output_weights"),
            vec![vocab, Axis::fixed(output.hidden)],
            scope,
            Declared {
                tied_to: output.tied_to,
                ..Declared::decayed(&head.output_weight)
            },
        );
        self.norm(&join(prefix, "final_norm"), &head.normalization, scope, output.hidden);
    }

    /// A normalization layer: every kind is named, those without parameters push none.
    fn norm(&mut self, prefix: &str, config: &NormalizationConfig, scope: Scope, dim: usize) {
        let (lr_scale, weight, bias) = match config {
            NormalizationConfig::None(_) | NormalizationConfig::FixedRmsNorm(_) => return,
            NormalizationConfig::LayerNorm(c) => (c.lr_scale, &c.weight, Some(&c.bias)),
            NormalizationConfig::RmsNorm(c) => (c.lr_scale, &c.weight, None),
            NormalizationConfig::GatedRmsNorm(c) => (c.lr_scale, &c.weight, None),
        };
        self.norm_parameters(prefix, scope.enter(lr_scale), (weight, bias), dim);
    }

    /// A norm's weight and optional bias over `dim`, in `scope` (the norm's own).
    fn norm_parameters(
        &mut self,
        prefix: &str,
        scope: Scope,
        (weight, bias): (&ParameterConfig, Option<&ParameterConfig>),
        dim: usize,
    ) {
        self.push(
            &join(prefix, "weight"),
            vec![Axis::fixed(dim)],
            scope,
            Declared::not_decayed(weight),
        );
        if let Some(bias) = bias {
            self.push(
                &join(prefix, "bias"),
                vec![Axis::fixed(dim)],
                scope,
                Declared::not_decayed(bias),
            );
        }
    }

    /// A gated RMS norm (the GDN and KDA output norms).
    fn gated_norm(&mut self, prefix: &str, config: &GatedRmsNormalizationConfig, scope: Scope, dim: usize) {
        self.norm_parameters(prefix, scope.enter(config.lr_scale), (&config.weight, None), dim);
    }

    /// A norm that exists only when configured (`X | None` fields).
    fn optional_norm(&mut self, prefix: &str, config: Option<&NormalizationConfig>, scope: Scope, dim: usize) {
        if let Some(norm) = config {
            self.norm(prefix, norm, scope, dim);
        }
    }

    fn linear(&mut self, prefix: &str, layer: Linear, scope: Scope) {
        let scope = scope.enter(layer.lr_scale);
        let axes = if layer.transposed {
            vec![layer.input, layer.output.clone()]
        } else {
            vec![layer.output.clone(), layer.input]
        };
        self.push(&join(prefix, "weight"), axes, scope, Declared::decayed(layer.weight));
        if let Some(bias) = layer.bias {
            self.push(
                &join(prefix, "bias"),
                vec![layer.output],
                scope,
                Declared::optional(bias),
            );
        }
    }

    /// A causal convolution over `channels`: weight `[channels, 1, kernel]`, and a bias when its
    /// `bias.enabled` says so, else when `default_bias` is.
    fn convolution(
        &mut self,
        prefix: &str,
        config: &CausalConv1dConfig,
        scope: Scope,
        (channels, default_bias): (Axis, DefaultBias),
    ) {
        let scope = scope.enter(config.lr_scale);
        let kernel = self.size(&join(prefix, "kernel_size"), config.kernel_size);
        self.push(
            &join(prefix, "weight"),
            vec![channels.clone(), Axis::fixed(1), Axis::fixed(kernel)],
            scope,
            Declared::decayed(&config.weight),
        );
        if default_bias.resolve(config.bias.enabled) {
            self.push(
                &join(prefix, "bias"),
                vec![channels],
                scope,
                Declared::optional(&config.bias),
            );
        }
    }

    /// A parameter declared directly on a layer (`A_log`, `D`, `dt_bias`).
    fn direct(&mut self, name: &str, config: &ParameterConfig, scope: Scope, axes: Vec<Axis>) {
        self.push(name, axes, scope, Declared::not_decayed(config));
    }

    /// An optional parameter declared directly on a layer (the scales), when enabled.
    fn optional_direct(&mut self, name: &str, config: &OptionalParameterConfig, scope: Scope, axes: Vec<Axis>) {
        if config.enabled == Some(true) {
            self.push(name, axes, scope, Declared::optional(config));
        }
    }

    fn block(&mut self, prefix: &str, config: &BlockConfig, scope: Scope, hidden: usize) {
        let BlockConfig::Decoder(config) = config;
        self.decoder_block(prefix, config, scope, hidden);
    }

    fn decoder_block(&mut self, prefix: &str, config: &DecoderBlockConfig, scope: Scope, hidden: usize) {
        let scope = scope.enter(config.lr_scale);
        self.optional_direct(
            &join(prefix, "output_scale"),
            &config.output_scale,
            scope,
            vec![Axis::fixed(1)],
        );
        let shared = &config.normalization;
        let norm_1 = config.pre_mixer_normalization.as_ref().unwrap_or(shared);
        let norm_2 = config.pre_mlp_normalization.as_ref().unwrap_or(shared);
        self.norm(&join(prefix, "norm_1"), norm_1, scope, hidden);
        self.norm(&join(prefix, "norm_2"), norm_2, scope, hidden);
        self.optional_norm(
            &join(prefix, "post_mixer_norm"),
            config.post_mixer_normalization.as_ref(),
            scope,
            hidden,
        );
        self.optional_norm(
            &join(prefix, "post_mlp_norm"),
            config.post_mlp_normalization.as_ref(),
            scope,
            hidden,
        );
        self.mixer(&join(prefix, "mixer"), &config.mixer, scope, hidden);
        self.mlp(&join(prefix, "mlp"), &config.mlp, scope, (hidden, hidden));
    }

    fn mixer(&mut self, prefix: &str, config: &MixerConfig, scope: Scope, hidden: usize) {
        match config {
            MixerConfig::Attention(c) => self.attention(prefix, c, scope.enter(c.lr_scale), hidden),
            MixerConfig::Mamba(c) => self.mamba(prefix, c, scope.enter(c.lr_scale), hidden),
            MixerConfig::Gdn(c) => self.gdn(prefix, c, scope.enter(c.lr_scale), hidden),
            MixerConfig::Kda(c) => self.kda(prefix, c, scope.enter(c.lr_scale), hidden),
            MixerConfig::Stochastic(c) => {
                let scope = scope.enter(c.lr_scale);
                // Validation guarantees at least one mixer.
                for (name, mixer) in c.mixers.iter().flatten() {
                    self.mixer(&join(prefix, &format!("mixers.{name}")), mixer, scope, hidden);
                }
            }
        }
    }

    fn attention(&mut self, prefix: &str, config: &AttentionConfig, scope: Scope, hidden: usize) {
        let heads = self.size(&join(prefix, "heads"), config.heads);
        let groups = self.size(&join(prefix, "head_groups"), config.head_groups);
        let head_size = self.size(&join(prefix, "head_size"), config.head_size);
        let biases = DefaultBias::from_flag(config.add_linear_biases);
        // Head groups split over the tensor-parallel group; with a single group, its heads do.
        let group_axis = Axis::Plain {
            size: groups,
            parallel: groups > 1,
        };
        let group_heads = Axis::Plain {
            size: self.div(&format!("{prefix}: heads per head group"), heads, groups),
            parallel: groups <= 1,
        };
        let per_group = Axis::Product(vec![group_axis.clone(), Axis::fixed(head_size)]);
        let query = Axis::Product(vec![group_axis, group_heads, Axis::fixed(head_size)]);
        let key_value = if config.shared_key_value {
            per_group
        } else {
            Axis::Concat(vec![per_group.clone(), per_group])
        };
        let hidden_axis = Axis::fixed(hidden);
        self.linear(
            &join(prefix, "query"),
            Linear::affine(&config.query_layer, biases, hidden_axis.clone(), query.clone()),
            scope,
        );
        self.linear(
            &join(prefix, "key_value"),
            Linear::affine(&config.key_layer, biases, hidden_axis.clone(), key_value),
            scope,
        );
        for (name, norm) in [
            ("query_norm", &config.query_norm),
            ("key_norm", &config.key_norm),
            ("value_norm", &config.value_norm),
        ] {
            self.optional_norm(&join(prefix, name), norm.as_ref(), scope, head_size);
        }
        self.linear(
            &join(prefix, "dense"),
            Linear::affine(&config.dense_layer, biases, query, hidden_axis),
            scope,
        );
    }

    fn mamba(&mut self, prefix: &str, config: &MambaConfig, scope: Scope, hidden: usize) {
        let inner = self.size(&join(prefix, "d_inner"), config.d_inner);
        let xb = self.size(&join(prefix, "d_xb"), config.d_xb);
        let rank = self.size(&join(prefix, "dt_rank"), config.dt_rank);
        let state = self.size(&join(prefix, "state_size"), config.state_size);
        let biases = DefaultBias::from_flag(config.add_linear_biases);
        let heads = self.div(&format!("{prefix}: d_inner / state_size"), inner, state);
        let groups = self.div(&format!("{prefix}: d_xb / state_size"), xb, state);
        let group_heads = self.div(&format!("{prefix}: heads per head group"), heads, groups);
        let group_axis = Axis::split(groups);
        let inner_axis = Axis::Product(vec![group_axis.clone(), Axis::fixed(group_heads), Axis::fixed(state)]);
        let xb_axis = Axis::Product(vec![group_axis, Axis::fixed(state)]);
        self.direct(
            &join(prefix, "A_log"),
            &config.a_log_weight,
            scope,
            vec![inner_axis.clone(), Axis::fixed(state)],
        );
        self.direct(&join(prefix, "D"), &config.d_weight, scope, vec![inner_axis.clone()]);
        let channels = if config.repeat_kv_before_conv {
            inner_axis.clone()
        } else {
            xb_axis.clone()
        };
        self.convolution(
            &join(prefix, "convolution"),
            &config.convolution_layer,
            scope,
            (channels, biases),
        );
        let hidden_axis = Axis::fixed(hidden);
        let in_proj = Axis::Concat(vec![inner_axis.clone(), xb_axis.clone(), xb_axis, inner_axis.clone()]);
        let layers = [
            ("in_proj", &config.z_layer, hidden_axis.clone(), in_proj),
            (
                "dt_in_proj",
                &config.dt_input_layer,
                hidden_axis.clone(),
                Axis::fixed(rank),
            ),
            ("dt_proj", &config.dt_layer, Axis::fixed(rank), inner_axis.clone()),
            ("out_proj", &config.output_layer, inner_axis, hidden_axis),
        ];
        self.linears(prefix, layers, biases, scope);
    }

    /// Affine layers `(name, config, input, output)` in order, biased by default as `biases` says.
    fn linears<const N: usize>(
        &mut self,
        prefix: &str,
        layers: [(&str, &AffineLinearConfig, Axis, Axis); N],
        biases: DefaultBias,
        scope: Scope,
    ) {
        for (name, config, input, output) in layers {
            self.linear(
                &join(prefix, name),
                Linear::affine(config, biases, input, output),
                scope,
            );
        }
    }

    /// The parameters GDN and KDA declare directly, first in their module order: `dt_bias`, then
    /// `A_log`, each config with its one axis.
    fn delta_rule_parameters(&mut self, prefix: &str, parameters: [(&ParameterConfig, Axis); 2], scope: Scope) {
        for (name, (config, axis)) in ["dt_bias", "A_log"].into_iter().zip(parameters) {
            self.direct(&join(prefix, name), config, scope, vec![axis]);
        }
    }

    fn gdn(&mut self, prefix: &str, config: &GatedDeltaNetConfig, scope: Scope, hidden: usize) {
        let key_heads = self.size(&join(prefix, "key_heads"), config.key_heads);
        let value_heads = self.size(&join(prefix, "value_heads"), config.value_heads);
        let key_dim = self.size(&join(prefix, "key_head_dim"), config.key_head_dim);
        let value_dim = self.size(&join(prefix, "value_head_dim"), config.value_head_dim);
        let (key_heads, value_heads) = (heads_axis(key_heads), heads_axis(value_heads));
        let per_head = |axis: &Axis, dim: usize| Axis::Product(vec![axis.clone(), Axis::fixed(dim)]);
        let (query, key) = (per_head(&key_heads, key_dim), per_head(&key_heads, key_dim));
        let (value, z) = (per_head(&value_heads, value_dim), per_head(&value_heads, value_dim));
        let dt_bias = (&config.dt_bias_weight, value_heads.clone());
        let a_log = (&config.a_log_weight, value_heads.clone());
        self.delta_rule_parameters(prefix, [dt_bias, a_log], scope);
        let hidden_axis = Axis::fixed(hidden);
        let per_value_head = Axis::Product(vec![value_heads]);
        self.linears(
            prefix,
            [
                (
                    "in_proj_qkvz",
                    &config.qkv_projection_layer,
                    hidden_axis.clone(),
                    Axis::Concat(vec![query.clone(), key.clone(), value.clone(), z]),
                ),
                (
                    "in_proj_ba",
                    &config.ba_projection_layer,
                    hidden_axis.clone(),
                    Axis::Concat(vec![per_value_head.clone(), per_value_head]),
                ),
            ],
            DefaultBias::Off,
            scope,
        );
        self.convolution(
            &join(prefix, "convolution"),
            &config.convolution_layer,
            scope,
            (Axis::Concat(vec![query, key, value.clone()]), DefaultBias::Off),
        );
        self.linears(
            prefix,
            [("out_proj", &config.output_layer, value, hidden_axis)],
            DefaultBias::Off,
            scope,
        );
        self.gated_norm(&join(prefix, "norm"), &config.normalization, scope, value_dim);
    }

    fn kda(&mut self, prefix: &str, config: &KimiDeltaAttentionConfig, scope: Scope, hidden: usize) {
        let count = self.size(&join(prefix, "heads"), config.heads);
        let dim = self.size(&join(prefix, "head_dim"), config.head_dim);
        let heads = heads_axis(count);
        let projection = Axis::Product(vec![heads.clone(), Axis::fixed(dim)]);
        let dt_bias = (&config.dt_bias_weight, projection.clone());
        let a_log = (&config.a_log_weight, heads.clone());
        self.delta_rule_parameters(prefix, [dt_bias, a_log], scope);
        let hidden_axis = Axis::fixed(hidden);
        let qkv = [
            ("q_proj", &config.q_projection_layer),
            ("k_proj", &config.k_projection_layer),
            ("v_proj", &config.v_projection_layer),
        ]
        .map(|(name, layer)| (name, layer, hidden_axis.clone(), projection.clone()));
        self.linears(prefix, qkv, DefaultBias::Off, scope);
        for name in ["q_conv", "k_conv", "v_conv"] {
            self.convolution(
                &join(prefix, name),
                &config.convolution_layer,
                scope,
                (projection.clone(), DefaultBias::Off),
            );
        }
        // The forget (f) and output (g) gates: each a low-rank pair, hidden -> dim -> projection.
        let rank = Axis::fixed(dim);
        for (gate, down, up) in [
            ("f", &config.f_a_projection_layer, &config.f_b_projection_layer),
            ("g", &config.g_a_projection_layer, &config.g_b_projection_layer),
        ] {
            self.linears(
                prefix,
                [
                    (&format!("{gate}_a_proj"), down, hidden_axis.clone(), rank.clone()),
                    (&format!("{gate}_b_proj"), up, rank.clone(), projection.clone()),
                ],
                DefaultBias::Off,
                scope,
            );
        }
        let last = [
            ("beta_proj", &config.beta_projection_layer, hidden_axis.clone(), heads),
            ("o_proj", &config.output_projection_layer, projection, hidden_axis),
        ];
        self.linears(prefix, last, DefaultBias::Off, scope);
        self.gated_norm(&join(prefix, "norm"), &config.normalization, scope, dim);
    }

    /// An MLP from `io.0` to `io.1`: every kind is named.
    fn mlp(&mut self, prefix: &str, config: &MlpBaseConfig, scope: Scope, io: (usize, usize)) {
        match config {
            MlpBaseConfig::Mlp(c) => self.dense_mlp(prefix, c, scope, io),
            MlpBaseConfig::Moe(c) => self.moe(prefix, c, scope, io),
            MlpBaseConfig::HybridMoe(c) => {
                let scope = scope.enter(c.lr_scale);
                self.dense_mlp(&join(prefix, "dense"), &c.dense, scope, io);
                self.moe(&join(prefix, "routed"), &c.routed, scope, io);
                self.mlp_norms(prefix, (&c.pre_norm, &c.post_norm), scope, io);
            }
        }
    }

    /// An MLP's optional `pre_norm` over its input and `post_norm` over its output.
    fn mlp_norms(
        &mut self,
        prefix: &str,
        (pre, post): (&Option<NormalizationConfig>, &Option<NormalizationConfig>),
        scope: Scope,
        (input, output): (usize, usize),
    ) {
        self.optional_norm(&join(prefix, "pre_norm"), pre.as_ref(), scope, input);
        self.optional_norm(&join(prefix, "post_norm"), post.as_ref(), scope, output);
    }

    /// The intermediate axis (split) and layer 1's output (gate|up when gated).
    fn intermediate(&mut self, prefix: &str, shape: MlpShape) -> (Axis, Axis) {
        let MlpShape { size, gated } = shape;
        let intermediate = Axis::split(self.size(&join(prefix, "intermediate_size"), size));
        let first = if gated {
            Axis::Concat(vec![intermediate.clone(), intermediate.clone()])
        } else {
            intermediate.clone()
        };
        (intermediate, first)
    }

    fn dense_mlp(&mut self, prefix: &str, config: &MlpConfig, scope: Scope, io: (usize, usize)) {
        let scope = scope.enter(config.lr_scale);
        let (intermediate, first) = self.intermediate(prefix, config.into());
        let (input, output) = io;
        self.mlp_norms(prefix, (&config.pre_norm, &config.post_norm), scope, io);
        let biases = DefaultBias::from_flag(config.add_linear_biases);
        self.linear(
            &join(prefix, "layer_1"),
            Linear::affine(&config.layer_1, biases, Axis::fixed(input), first),
            scope,
        );
        self.linear(
            &join(prefix, "layer_2"),
            Linear::affine(&config.layer_2, biases, intermediate, Axis::fixed(output)).transposed(),
            scope,
        );
    }

    fn moe(&mut self, prefix: &str, config: &MoeMlpConfig, scope: Scope, io: (usize, usize)) {
        let scope = scope.enter(config.lr_scale);
        let (intermediate, first) = self.intermediate(prefix, config.into());
        let (input, output) = io;
        let experts = self.size(&join(prefix, "experts"), config.experts);
        self.optional_direct(
            &join(prefix, "router_scale"),
            &config.router_scale,
            scope,
            vec![Axis::fixed(input)],
        );
        self.optional_direct(
            &join(prefix, "router_per_expert_scale"),
            &config.router_per_expert_scale,
            scope,
            vec![Axis::fixed(experts)],
        );
        self.mlp_norms(prefix, (&config.pre_norm, &config.post_norm), scope, io);
        let per_expert = |axis: Axis| Axis::Product(vec![Axis::fixed(experts), axis]);
        self.linear(
            &join(prefix, "layer_1"),
            Linear::without_bias(&config.layer_1, Axis::fixed(input), per_expert(first)),
            scope,
        );
        self.linear(
            &join(prefix, "layer_2"),
            Linear::without_bias(&config.layer_2, per_expert(intermediate), Axis::fixed(output)).transposed(),
            scope,
        );
        let shared = self.size(&join(prefix, "shared_experts"), config.shared_experts);
        let routed = experts - shared.min(experts);
        self.linear(
            &join(prefix, "router"),
            Linear::plain(&config.router, Axis::fixed(input), Axis::fixed(routed)),
            scope,
        );
        self.optional_norm(
            &join(prefix, "router_normalization"),
            config.router_normalization.as_ref(),
            scope,
            input,
        );
    }

    fn vision(&mut self, config: &VisionEncoderConfig, root: Scope, text_hidden: usize) {
        let scope = root.enter(config.lr_scale);
        let hidden = self.size("vision_encoder.hidden_size", config.hidden_size);
        let embeddings = &config.embeddings;
        let embeddings_scope = scope.enter(embeddings.lr_scale);
        let height = self.size("vision_encoder.embeddings.patch_height", embeddings.patch_height);
        let width = self.size("vision_encoder.embeddings.patch_width", embeddings.patch_width);
        let patch = PatchEmbeddingsConfig::INPUT_CHANNELS as usize * height * width;
        self.layer("vision_encoder.embeddings", 1.0);
        self.linear(
            "vision_encoder.embeddings.patch_embeddings",
            Linear::affine(
                &embeddings.patch_embeddings,
                DefaultBias::Off,
                Axis::fixed(patch),
                Axis::fixed(hidden),
            ),
            embeddings_scope,
        );
        self.norm(
            "vision_encoder.embeddings.normalization",
            &embeddings.normalization,
            embeddings_scope,
            hidden,
        );
        let encoder_scope = scope.enter(sequence_lr_scale(&config.encoder));
        for (i, block) in config.encoder.blocks().into_iter().enumerate() {
            let name = format!("vision_encoder.encoder.{i}");
            self.layer(&name, 1.0);
            self.block(&name, block, encoder_scope, hidden);
        }
        self.layer("vision_encoder.adapter", 1.0);
        self.mlp("vision_encoder.adapter", &config.adapter, scope, (hidden, text_hidden));
    }
}

/// A head's output: vocabulary and hidden sizes, and the parameter its output weights duplicate.
#[derive(Clone, Copy)]
struct Output<'a> {
    vocab: usize,
    hidden: usize,
    tied_to: Option<&'a str>,
}

/// A heads axis, split over the tensor-parallel group when there is more than one head.
fn heads_axis(count: usize) -> Axis {
    Axis::Plain {
        size: count,
        parallel: count > 1,
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
    use fastllm_config::{ModelKind, Value, load_base_model};

    fn full(json: &str) -> BaseModelConfig {
        load_base_model(ModelKind::Gpt, &Value::from_json_str(json).unwrap()).unwrap()
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

    /// The walk matches the mixer, MLP and normalization enums exhaustively, so a kind it does
    /// not know cannot be skipped: it is refused when the config is read, before any layout.
    #[test]
    fn an_unknown_mixer_or_mlp_kind_never_reaches_the_layout() {
        for json in [
            r#"{"decoder": {"num_blocks": 1, "block": {"mixer": {"type": "retnet"}}}}"#,
            r#"{"decoder": {"num_blocks": 1, "block": {"mlp": {"type": "kan"}}}}"#,
        ] {
            let value = Value::from_json_str(json).unwrap();
            assert!(load_base_model(ModelKind::Gpt, &value).is_err(), "{json}");
        }
    }

    #[test]
    fn a_negative_size_is_an_error_naming_its_path() {
        let config = full(
            r#"{"hidden_size": 8, "decoder": {"num_blocks": 1, "block": {
                "mixer": {"heads": -2, "head_groups": 1, "head_size": 4}}}}"#,
        );
        let problems = engine_layers(&config, 1).unwrap_err();
        assert_eq!(problems, ["decoder.0.mixer.heads: -2 is negative"]);
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
