//! Fast-LLM's parameter layout: for any config, every stored parameter's name and shape, as the
//! Fast-LLM model builds them (module paths; tied duplicates not stored). Independent of any HF
//! format, so weight coverage can prove each format's plan produces and consumes every
//! parameter exactly once.

use fastllm_config::{Map, Value};

use crate::dict::{self, join};
use crate::fl_value;

/// Every stored parameter of a base model (`config` in full form), with its shape.
pub fn parameters(config: &Map) -> Vec<(String, Vec<usize>)> {
    let mut out = Layout(Vec::new());
    let hidden = int(config, "hidden_size");
    let vocab = int(config, "embeddings.vocab_size");
    out.push("embeddings.word_embeddings_weight", vec![vocab, hidden]);
    if flag(config, "embeddings.position_embeddings.enabled") {
        out.push(
            "embeddings.position_embeddings_weight",
            vec![int(config, "embeddings.num_position_embeddings"), hidden],
        );
    }
    let decoder = sub(config, "decoder");
    let blocks = blocks(&decoder);
    for (i, block) in blocks.iter().enumerate() {
        out.block(&format!("decoder.{i}"), block, hidden);
    }
    out.norm("head.final_norm", &sub(config, "head.normalization"), hidden);
    // The output weights are a tied duplicate of the embeddings when tied.
    if !flag(config, "tied_embedding_weight") {
        out.push("head.output_weights", vec![vocab, hidden]);
    }
    // Multi-token prediction: one extra block and norm per extra head; their output weights are
    // always tied duplicates.
    let heads = int(config, "head.prediction_heads");
    if let Some(last) = blocks.last() {
        for k in 0..heads.saturating_sub(1) {
            out.block(&format!("multi_token_prediction.blocks.{k}"), last, hidden);
            out.norm(
                &format!("multi_token_prediction.heads.{k}.final_norm"),
                &sub(config, "head.normalization"),
                hidden,
            );
        }
    }
    if let Some(Value::Map(vision)) = config.get("vision_encoder") {
        out.vision(vision, hidden);
    }
    out.0
}

struct Layout(Vec<(String, Vec<usize>)>);

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
fn blocks(sequence: &Map) -> Vec<Map> {
    let count = int(sequence, "num_blocks");
    if kind(sequence) == "pattern" {
        let names: Vec<String> = match fl_value(sequence, "pattern") {
            Value::List(items) => items
                .iter()
                .filter_map(|v| if let Value::Str(s) = v { Some(s.clone()) } else { None })
                .collect(),
            _ => return Vec::new(),
        };
        if names.is_empty() {
            return Vec::new();
        }
        (0..count)
            .map(|i| sub(sequence, &format!("blocks.{}", names[i % names.len()])))
            .collect()
    } else {
        vec![sub(sequence, "block"); count]
    }
}

impl Layout {
    fn push(&mut self, name: &str, shape: Vec<usize>) {
        self.0.push((name.to_string(), shape));
    }

    fn norm(&mut self, prefix: &str, config: &Map, dim: usize) {
        match kind(config) {
            "layer_norm" => {
                self.push(&join(prefix, "weight"), vec![dim]);
                self.push(&join(prefix, "bias"), vec![dim]);
            }
            "rms_norm" | "gated_rms_norm" => self.push(&join(prefix, "weight"), vec![dim]),
            _ => {}
        }
    }

    /// A norm that exists only when configured (`X | None` fields).
    fn optional_norm(&mut self, prefix: &str, config: &Map, path: &str, dim: usize) {
        if let Some(Value::Map(norm)) = config.get(path) {
            self.norm(prefix, norm, dim);
        }
    }

    fn linear(&mut self, prefix: &str, out: usize, input: usize, bias: bool) {
        self.push(&join(prefix, "weight"), vec![out, input]);
        if bias {
            self.push(&join(prefix, "bias"), vec![out]);
        }
    }

    fn block(&mut self, prefix: &str, config: &Map, hidden: usize) {
        let norm = |path: &str| match config.get(path) {
            Some(Value::Map(norm)) => norm.clone(),
            _ => sub(config, "normalization"),
        };
        self.norm(&join(prefix, "norm_1"), &norm("pre_mixer_normalization"), hidden);
        self.mixer(&join(prefix, "mixer"), &sub(config, "mixer"), hidden);
        self.norm(&join(prefix, "norm_2"), &norm("pre_mlp_normalization"), hidden);
        self.optional_norm(
            &join(prefix, "post_mixer_norm"),
            config,
            "post_mixer_normalization",
            hidden,
        );
        self.mlp(&join(prefix, "mlp"), &sub(config, "mlp"), hidden, hidden);
        self.optional_norm(&join(prefix, "post_mlp_norm"), config, "post_mlp_normalization", hidden);
        if flag(config, "output_scale.enabled") {
            self.push(&join(prefix, "output_scale"), vec![1]);
        }
    }

    fn mixer(&mut self, prefix: &str, config: &Map, hidden: usize) {
        let linear_biases = flag(config, "add_linear_biases");
        let kernel = int(config, "convolution_layer.kernel_size");
        match kind(config) {
            "attention" => {
                let head_size = int(config, "head_size");
                let q = int(config, "heads") * head_size;
                let kv = if flag(config, "shared_key_value") { 1 } else { 2 } * int(config, "head_groups") * head_size;
                self.linear(
                    &join(prefix, "query"),
                    q,
                    hidden,
                    bias(config, "query_layer", linear_biases),
                );
                self.linear(
                    &join(prefix, "key_value"),
                    kv,
                    hidden,
                    bias(config, "key_layer", linear_biases),
                );
                self.linear(
                    &join(prefix, "dense"),
                    hidden,
                    q,
                    bias(config, "dense_layer", linear_biases),
                );
                for norm in ["query_norm", "key_norm", "value_norm"] {
                    self.optional_norm(&join(prefix, norm), config, norm, head_size);
                }
            }
            "mamba" => {
                let (inner, xb, rank) = (int(config, "d_inner"), int(config, "d_xb"), int(config, "dt_rank"));
                let conv = if flag(config, "repeat_kv_before_conv") {
                    inner
                } else {
                    xb
                };
                self.linear(
                    &join(prefix, "in_proj"),
                    2 * inner + 2 * xb,
                    hidden,
                    bias(config, "z_layer", linear_biases),
                );
                self.linear(
                    &join(prefix, "dt_in_proj"),
                    rank,
                    hidden,
                    bias(config, "dt_input_layer", linear_biases),
                );
                self.linear(
                    &join(prefix, "dt_proj"),
                    inner,
                    rank,
                    bias(config, "dt_layer", linear_biases),
                );
                self.push(&join(prefix, "convolution.weight"), vec![conv, 1, kernel]);
                if bias(config, "convolution_layer", linear_biases) {
                    self.push(&join(prefix, "convolution.bias"), vec![conv]);
                }
                self.push(&join(prefix, "A_log"), vec![inner, int(config, "state_size")]);
                self.push(&join(prefix, "D"), vec![inner]);
                self.linear(
                    &join(prefix, "out_proj"),
                    hidden,
                    inner,
                    bias(config, "output_layer", linear_biases),
                );
            }
            "gdn" => {
                let q = int(config, "key_heads") * int(config, "key_head_dim");
                let (value_heads, v) = (
                    int(config, "value_heads"),
                    int(config, "value_heads") * int(config, "value_head_dim"),
                );
                self.linear(
                    &join(prefix, "in_proj_qkvz"),
                    2 * q + 2 * v,
                    hidden,
                    bias(config, "qkv_projection_layer", false),
                );
                self.linear(
                    &join(prefix, "in_proj_ba"),
                    2 * value_heads,
                    hidden,
                    bias(config, "ba_projection_layer", false),
                );
                self.push(&join(prefix, "convolution.weight"), vec![2 * q + v, 1, kernel]);
                if bias(config, "convolution_layer", false) {
                    self.push(&join(prefix, "convolution.bias"), vec![2 * q + v]);
                }
                self.linear(
                    &join(prefix, "out_proj"),
                    hidden,
                    v,
                    bias(config, "output_layer", false),
                );
                self.push(&join(prefix, "dt_bias"), vec![value_heads]);
                self.push(&join(prefix, "A_log"), vec![value_heads]);
                self.norm(
                    &join(prefix, "norm"),
                    &sub(config, "normalization"),
                    int(config, "value_head_dim"),
                );
            }
            "kda" => {
                let (heads, dim) = (int(config, "heads"), int(config, "head_dim"));
                let projection = heads * dim;
                for (name, layer) in [
                    ("q_proj", "q_projection_layer"),
                    ("k_proj", "k_projection_layer"),
                    ("v_proj", "v_projection_layer"),
                ] {
                    self.linear(&join(prefix, name), projection, hidden, bias(config, layer, false));
                }
                for name in ["q_conv", "k_conv", "v_conv"] {
                    self.push(&join(prefix, &format!("{name}.weight")), vec![projection, 1, kernel]);
                    if bias(config, "convolution_layer", false) {
                        self.push(&join(prefix, &format!("{name}.bias")), vec![projection]);
                    }
                }
                self.linear(
                    &join(prefix, "f_a_proj"),
                    dim,
                    hidden,
                    bias(config, "f_a_projection_layer", false),
                );
                self.linear(
                    &join(prefix, "f_b_proj"),
                    projection,
                    dim,
                    bias(config, "f_b_projection_layer", false),
                );
                self.linear(
                    &join(prefix, "g_a_proj"),
                    dim,
                    hidden,
                    bias(config, "g_a_projection_layer", false),
                );
                self.linear(
                    &join(prefix, "g_b_proj"),
                    projection,
                    dim,
                    bias(config, "g_b_projection_layer", false),
                );
                self.linear(
                    &join(prefix, "beta_proj"),
                    heads,
                    hidden,
                    bias(config, "beta_projection_layer", false),
                );
                self.linear(
                    &join(prefix, "o_proj"),
                    hidden,
                    projection,
                    bias(config, "output_projection_layer", false),
                );
                self.push(&join(prefix, "dt_bias"), vec![projection]);
                self.push(&join(prefix, "A_log"), vec![heads]);
                self.norm(&join(prefix, "norm"), &sub(config, "normalization"), dim);
            }
            "stochastic" => {
                for (name, mixer) in sub(config, "mixers") {
                    if let Value::Map(mixer) = mixer {
                        self.mixer(&join(prefix, &format!("mixers.{name}")), &mixer, hidden);
                    }
                }
            }
            _ => {}
        }
    }

    fn mlp(&mut self, prefix: &str, config: &Map, input: usize, output: usize) {
        let size = int(config, "intermediate_size");
        let gated = if flag(config, "gated") { 2 } else { 1 };
        self.optional_norm(&join(prefix, "pre_norm"), config, "pre_norm", input);
        match kind(config) {
            "mlp" => {
                let linear_biases = flag(config, "add_linear_biases");
                self.linear(
                    &join(prefix, "layer_1"),
                    gated * size,
                    input,
                    bias(config, "layer_1", linear_biases),
                );
                self.push(&join(prefix, "layer_2.weight"), vec![size, output]);
                if bias(config, "layer_2", linear_biases) {
                    self.push(&join(prefix, "layer_2.bias"), vec![output]);
                }
            }
            "moe" => {
                let experts = int(config, "experts");
                self.push(
                    &join(prefix, "router.weight"),
                    vec![experts - int(config, "shared_experts").min(experts), input],
                );
                self.optional_norm(
                    &join(prefix, "router_normalization"),
                    config,
                    "router_normalization",
                    input,
                );
                if flag(config, "router_scale.enabled") {
                    self.push(&join(prefix, "router_scale"), vec![input]);
                }
                if flag(config, "router_per_expert_scale.enabled") {
                    self.push(&join(prefix, "router_per_expert_scale"), vec![experts]);
                }
                self.push(&join(prefix, "layer_1.weight"), vec![experts * gated * size, input]);
                self.push(&join(prefix, "layer_2.weight"), vec![experts * size, output]);
            }
            "hybrid_moe" => {
                self.mlp(&join(prefix, "dense"), &sub(config, "dense"), input, output);
                self.mlp(&join(prefix, "routed"), &sub(config, "routed"), input, output);
            }
            _ => {}
        }
        self.optional_norm(&join(prefix, "post_norm"), config, "post_norm", output);
    }

    fn vision(&mut self, config: &Map, text_hidden: usize) {
        let hidden = int(config, "hidden_size");
        let embeddings = sub(config, "embeddings");
        let patch = 3 * int(&embeddings, "patch_height") * int(&embeddings, "patch_width");
        self.push("vision_encoder.embeddings.patch_embeddings.weight", vec![hidden, patch]);
        if flag(&embeddings, "patch_embeddings.bias.enabled") {
            self.push("vision_encoder.embeddings.patch_embeddings.bias", vec![hidden]);
        }
        self.norm(
            "vision_encoder.embeddings.normalization",
            &sub(&embeddings, "normalization"),
            hidden,
        );
        for (i, block) in blocks(&sub(config, "encoder")).iter().enumerate() {
            self.block(&format!("vision_encoder.encoder.{i}"), block, hidden);
        }
        self.mlp("vision_encoder.adapter", &sub(config, "adapter"), hidden, text_hidden);
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

    fn layout(json: &str) -> Vec<(String, Vec<usize>)> {
        let config = load_base_model(ModelKind::Gpt, &Value::from_json_str(json).unwrap()).unwrap();
        parameters(&config.to_form(Form::Full))
    }

    #[test]
    fn a_llama_like_model() {
        let names: Vec<(String, Vec<usize>)> = layout(
            r#"{"hidden_size": 8, "embeddings": {"vocab_size": 10}, "tied_embedding_weight": true,
                "decoder": {"num_blocks": 1, "block": {
                  "mixer": {"heads": 2, "head_groups": 1, "head_size": 4, "add_linear_biases": false},
                  "mlp": {"intermediate_size": 16, "gated": true, "add_linear_biases": false},
                  "normalization": {"type": "rms_norm"}}},
                "head": {"normalization": {"type": "rms_norm"}}}"#,
        );
        let expected = [
            ("embeddings.word_embeddings_weight", vec![10, 8]),
            ("decoder.0.norm_1.weight", vec![8]),
            ("decoder.0.mixer.query.weight", vec![8, 8]),
            ("decoder.0.mixer.key_value.weight", vec![8, 8]),
            ("decoder.0.mixer.dense.weight", vec![8, 8]),
            ("decoder.0.norm_2.weight", vec![8]),
            ("decoder.0.mlp.layer_1.weight", vec![32, 8]),
            ("decoder.0.mlp.layer_2.weight", vec![16, 8]),
            ("head.final_norm.weight", vec![8]),
        ];
        let expected: Vec<(String, Vec<usize>)> = expected.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
        assert_eq!(names, expected);
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
