//! Every validation rule rejects, naming the config path; no input panics.

use fastllm_config::{ModelKind, Value, load_base_model};
use rstest::rstest;

fn reject(kind: ModelKind, json: &str) -> fastllm_config::ConfigErrors {
    let value = Value::from_json_str(json).unwrap();
    match load_base_model(kind, &value) {
        Ok(config) => panic!("accepted {json}: {config:?}"),
        Err(e) => e,
    }
}

#[rstest]
// Type system.
#[case::unknown_root_key(r#"{"foo": 1}"#, "foo", "unknown field")]
#[case::unknown_nested_key(
    r#"{"decoder": {"block": {"mixer": {"num_heads": 8}}}}"#,
    "decoder.block.mixer.num_heads",
    "unknown field"
)]
#[case::str_for_int(r#"{"hidden_size": "64"}"#, "hidden_size", "expected int")]
#[case::bool_for_int(r#"{"hidden_size": true}"#, "hidden_size", "expected int")]
#[case::float_for_int(r#"{"hidden_size": 64.0}"#, "hidden_size", "expected int")]
#[case::str_for_bool(r#"{"tied_embedding_weight": "true"}"#, "tied_embedding_weight", "expected bool")]
#[case::int_for_bool(r#"{"tied_embedding_weight": 1}"#, "tied_embedding_weight", "expected bool")]
#[case::list_for_config(r#"{"decoder": []}"#, "decoder", "expected BlockSequenceConfig")]
#[case::null_for_config(r#"{"embeddings": null}"#, "embeddings", "expected LanguageModelEmbeddingsConfig")]
#[case::unknown_type(
    r#"{"decoder": {"block": {"mixer": {"type": "foo"}}}}"#,
    "decoder.block.mixer.type",
    "unknown type `foo`"
)]
#[case::type_not_a_string(r#"{"decoder": {"type": 3}}"#, "decoder.type", "expected str")]
#[case::type_of_another_class(
    r#"{"decoder": {"block": {"mixer": {"type": "gdn", "normalization": {"type": "rms_norm"}}}}}"#,
    "decoder.block.mixer.normalization.type",
    "expected `gated_rms_norm`"
)]
#[case::type_on_plain_class(r#"{"embeddings": {"type": "x"}}"#, "embeddings.type", "unknown type")]
#[case::abstract_loss(r#"{"head": {"losses": {"x": {}}}}"#, "head.losses.x", "abstract")]
#[case::bad_enum(
    r#"{"decoder": {"block": {"mlp": {"activation": "swish"}}}}"#,
    "decoder.block.mlp.activation",
    "not a valid ActivationType"
)]
#[case::vision_encoder_in_gpt(r#"{"vision_encoder": {}}"#, "vision_encoder", "unknown field")]
#[case::legacy_complex_format(
    r#"{"decoder": {"block": {"mixer": {"rotary": {"type": "default", "complex_format": true}}}}}"#,
    "decoder.block.mixer.rotary.complex_format",
    "only accepted as false"
)]
// Root, embeddings and head.
#[case::hidden_size(r#"{"hidden_size": 0}"#, "hidden_size", "must be > 0")]
#[case::vocab_size(r#"{"embeddings": {"vocab_size": 0}}"#, "embeddings.vocab_size", "must be > 0")]
#[case::position_embeddings(
    r#"{"embeddings": {"num_position_embeddings": 0}}"#,
    "embeddings.num_position_embeddings",
    "must be > 0"
)]
#[case::embedding_dropout(r#"{"embeddings": {"dropout": -0.1}}"#, "embeddings.dropout", "must be >= 0")]
#[case::embedding_scale(
    r#"{"embeddings": {"embedding_scale": 0}}"#,
    "embeddings.embedding_scale",
    "must be > 0"
)]
#[case::cross_entropy_splits(
    r#"{"head": {"cross_entropy_splits": 0}}"#,
    "head.cross_entropy_splits",
    "must be > 0"
)]
#[case::logits_scale(
    r#"{"head": {"logits_scale_factor": -1}}"#,
    "head.logits_scale_factor",
    "must be >= 0"
)]
#[case::softcap(
    r#"{"head": {"final_logit_softcap": 0.0}}"#,
    "head.final_logit_softcap",
    "must be > 0"
)]
#[case::prediction_heads(r#"{"head": {"prediction_heads": 0}}"#, "head.prediction_heads", "must be > 0")]
#[case::reserved_loss(
    r#"{"head": {"losses": {"lm_head_loss": {"type": "label"}}}}"#,
    "head.losses",
    "reserved"
)]
#[case::reserved_fused_loss(
    r#"{"head": {"losses": {"monolithic_3": {"type": "z_loss"}}}}"#,
    "head.losses",
    "reserved"
)]
#[case::fused_use_triton(
    r#"{"head": {"losses": {"ce": {"type": "label", "use_triton": true}}}}"#,
    "head.losses",
    "use_triton"
)]
#[case::triton_duplicate(
    r#"{"head": {"loss_implementation": "triton", "losses": {"a": {"type": "label"}, "b": {"type": "label"}}}}"#,
    "head.losses",
    "at most one `ce`"
)]
#[case::triton_distillation_mix(
    r#"{"head": {"loss_implementation": "triton", "losses": {"a": {"type": "distillation"}, "b": {"type": "grpo"}}}}"#,
    "head.losses",
    "distillation only with z-loss"
)]
#[case::label_reverse_kl(
    r#"{"head": {"losses": {"a": {"type": "label", "loss_type": "reverse_kl"}}}}"#,
    "head.losses.a.loss_type",
    "reverse_kl"
)]
#[case::loss_weight(
    r#"{"head": {"losses": {"a": {"type": "z_loss", "weight": -1}}}}"#,
    "head.losses.a.weight",
    "must be >= 0"
)]
#[case::loss_scale(
    r#"{"head": {"losses": {"a": {"type": "z_loss", "logits_scale_factor": 0}}}}"#,
    "head.losses.a.logits_scale_factor",
    "must be > 0"
)]
#[case::distillation_temperature(
    r#"{"head": {"losses": {"a": {"type": "distillation", "temperature": 0}}}}"#,
    "head.losses.a.temperature",
    "must be > 0"
)]
#[case::dpo_beta(
    r#"{"head": {"losses": {"a": {"type": "dpo", "beta": 0, "reference_model": "r"}}}}"#,
    "head.losses.a.beta",
    "must be > 0"
)]
#[case::dpo_reference_model(
    r#"{"head": {"losses": {"a": {"type": "dpo"}}}}"#,
    "head.losses.a",
    "missing required field `reference_model`"
)]
// Block sequences and blocks.
#[case::num_blocks(r#"{"decoder": {"num_blocks": -1}}"#, "decoder.num_blocks", "must be >= 0")]
#[case::pattern_blocks_missing(
    r#"{"decoder": {"type": "pattern", "pattern": ["a"]}}"#,
    "decoder",
    "missing required field `blocks`"
)]
#[case::pattern_blocks_empty(
    r#"{"decoder": {"type": "pattern", "blocks": {}, "pattern": ["a"]}}"#,
    "decoder.blocks",
    "no block configuration"
)]
#[case::pattern_empty(
    r#"{"decoder": {"type": "pattern", "blocks": {"a": {}}, "pattern": []}}"#,
    "decoder.pattern",
    "no block pattern"
)]
#[case::pattern_missing(
    r#"{"decoder": {"type": "pattern", "blocks": {"a": {}}}}"#,
    "decoder.pattern",
    "no block pattern"
)]
#[case::pattern_undefined(
    r#"{"decoder": {"type": "pattern", "blocks": {"a": {}}, "pattern": ["a", "b"]}}"#,
    "decoder.pattern",
    "\"b\""
)]
#[case::block_dropout(
    r#"{"decoder": {"block": {"dropout": -1}}}"#,
    "decoder.block.dropout",
    "must be >= 0"
)]
#[case::distillation_weight(
    r#"{"decoder": {"block": {"distillation_loss_weight": -1}}}"#,
    "decoder.block.distillation_loss_weight",
    "must be >= 0"
)]
// Attention and rotary.
#[case::head_groups(
    r#"{"decoder": {"block": {"mixer": {"head_groups": 0}}}}"#,
    "decoder.block.mixer.head_groups",
    "must be > 0"
)]
#[case::head_size(
    r#"{"decoder": {"block": {"mixer": {"head_size": 0}}}}"#,
    "decoder.block.mixer.head_size",
    "must be > 0"
)]
#[case::heads_multiple(
    r#"{"decoder": {"block": {"mixer": {"heads": 6, "head_groups": 4}}}}"#,
    "decoder.block.mixer.heads",
    "multiple of head_groups"
)]
#[case::attention_dropout(
    r#"{"decoder": {"block": {"mixer": {"dropout": -1}}}}"#,
    "decoder.block.mixer.dropout",
    "must be >= 0"
)]
#[case::window_size(
    r#"{"decoder": {"block": {"mixer": {"window_size": -1}}}}"#,
    "decoder.block.mixer.window_size",
    "must be >= 0"
)]
#[case::softmax_scale_power(
    r#"{"decoder": {"block": {"mixer": {"softmax_scale_power": -1}}}}"#,
    "decoder.block.mixer.softmax_scale_power",
    "must be >= 0"
)]
#[case::non_causal_window(
    r#"{"decoder": {"block": {"mixer": {"causal": false, "window_size": 8}}}}"#,
    "decoder.block.mixer.window_size",
    "non-causal"
)]
#[case::flash_head_size(
    r#"{"decoder": {"block": {"mixer": {"implementation": "flash", "head_size": 512}}}}"#,
    "decoder.block.mixer.head_size",
    "flash"
)]
#[case::sdpa_nested_window(
    r#"{"decoder": {"block": {"mixer": {"implementation": "sdpa_nested", "window_size": 8}}}}"#,
    "decoder.block.mixer.window_size",
    "sdpa_nested"
)]
#[case::llama3_frequencies(r#"{"decoder": {"block": {"mixer": {"rotary": {"type": "llama3", "low_frequency_factor": 4.0, "high_frequency_factor": 4.0}}}}}"#, "decoder.block.mixer.rotary.high_frequency_factor", "low_frequency_factor")]
#[case::proportional_factor(
    r#"{"decoder": {"block": {"mixer": {"rotary": {"type": "proportional", "partial_rotary_factor": 1.5}}}}}"#,
    "decoder.block.mixer.rotary.partial_rotary_factor",
    "[0, 1]"
)]
// Stochastic mixer.
#[case::stochastic_no_mixers(
    r#"{"decoder": {"block": {"mixer": {"type": "stochastic"}}}}"#,
    "decoder.block.mixer.mixers",
    "must be provided"
)]
#[case::stochastic_empty(
    r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {}}}}}"#,
    "decoder.block.mixer.mixers",
    "at least one"
)]
#[case::stochastic_main(
    r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "main_mixer_name": "b"}}}}"#,
    "decoder.block.mixer.main_mixer_name",
    "not found"
)]
#[case::stochastic_full_layout_weights(r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "sampling_strategy": "full_layout", "sampling_weights": {"a": 1}}}}}"#, "decoder.block.mixer.sampling_weights", "full_layout")]
#[case::stochastic_weight_keys(
    r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "sampling_weights": {"b": 1}}}}}"#,
    "decoder.block.mixer.sampling_weights",
    "must equal"
)]
#[case::stochastic_negative_weight(r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}, "b": {}}, "sampling_weights": {"a": 1, "b": -1}}}}}"#, "decoder.block.mixer.sampling_weights", "non-negative")]
#[case::stochastic_zero_weights(
    r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "sampling_weights": {"a": 0}}}}}"#,
    "decoder.block.mixer.sampling_weights",
    "positive sum"
)]
#[case::stochastic_layout_name(r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "predefined_layouts": [["z"]], "predefined_layout_probabilities": [0.5]}}}}"#, "decoder.block.mixer.predefined_layouts", "unknown mixer names")]
#[case::stochastic_layout_length(r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "predefined_layouts": [["a"], ["a", "a"]], "predefined_layout_probabilities": [0.5, 0.5]}}}}"#, "decoder.block.mixer.predefined_layouts", "length")]
#[case::stochastic_probability_count(r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "predefined_layouts": [["a"]], "predefined_layout_probabilities": []}}}}"#, "decoder.block.mixer.predefined_layout_probabilities", "entries")]
#[case::stochastic_probability_range(r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "predefined_layouts": [["a"]], "predefined_layout_probabilities": [1.5]}}}}"#, "decoder.block.mixer.predefined_layout_probabilities", "[0, 1]")]
#[case::stochastic_probability_sum(r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "predefined_layouts": [["a"], ["a"]], "predefined_layout_probabilities": [0.6, 0.6]}}}}"#, "decoder.block.mixer.predefined_layout_probabilities", "sum")]
#[case::stochastic_orphan_probabilities(r#"{"decoder": {"block": {"mixer": {"type": "stochastic", "mixers": {"a": {}}, "predefined_layout_probabilities": [0.5]}}}}"#, "decoder.block.mixer.predefined_layout_probabilities", "empty")]
// SSM mixers.
#[case::mamba_state_size(
    r#"{"decoder": {"block": {"mixer": {"type": "mamba", "state_size": 0}}}}"#,
    "decoder.block.mixer.state_size",
    "must be > 0"
)]
#[case::gdn_heads(
    r#"{"decoder": {"block": {"mixer": {"type": "gdn", "value_heads": 6, "key_heads": 4}}}}"#,
    "decoder.block.mixer.value_heads",
    "multiple of key_heads"
)]
#[case::gdn_key_head_dim(
    r#"{"decoder": {"block": {"mixer": {"type": "gdn", "key_head_dim": 0}}}}"#,
    "decoder.block.mixer.key_head_dim",
    "must be > 0"
)]
#[case::gdn_value_head_dim(
    r#"{"decoder": {"block": {"mixer": {"type": "gdn", "value_head_dim": 0}}}}"#,
    "decoder.block.mixer.value_head_dim",
    "must be > 0"
)]
#[case::kda_heads(
    r#"{"decoder": {"block": {"mixer": {"type": "kda", "heads": 0}}}}"#,
    "decoder.block.mixer.heads",
    "must be > 0"
)]
#[case::kda_head_dim(
    r#"{"decoder": {"block": {"mixer": {"type": "kda", "head_dim": 0}}}}"#,
    "decoder.block.mixer.head_dim",
    "must be > 0"
)]
#[case::conv_kernel(
    r#"{"decoder": {"block": {"mixer": {"type": "kda", "convolution_layer": {"kernel_size": 0}}}}}"#,
    "decoder.block.mixer.convolution_layer.kernel_size",
    "must be > 0"
)]
// MLPs.
#[case::intermediate_size(
    r#"{"decoder": {"block": {"mlp": {"intermediate_size": 0}}}}"#,
    "decoder.block.mlp.intermediate_size",
    "must be > 0"
)]
#[case::mlp_lr_scale(
    r#"{"decoder": {"block": {"mlp": {"lr_scale": -1}}}}"#,
    "decoder.block.mlp.lr_scale",
    "must be >= 0"
)]
#[case::moe_experts(
    r#"{"decoder": {"block": {"mlp": {"type": "moe", "experts": 1}}}}"#,
    "decoder.block.mlp.experts",
    "must be > 1"
)]
#[case::moe_shared(
    r#"{"decoder": {"block": {"mlp": {"type": "moe", "shared_experts": -1}}}}"#,
    "decoder.block.mlp.shared_experts",
    "must be >= 0"
)]
#[case::moe_per_token(
    r#"{"decoder": {"block": {"mlp": {"type": "moe", "experts_per_token": 0}}}}"#,
    "decoder.block.mlp.experts_per_token",
    "must be > 0"
)]
#[case::moe_shared_le_experts(
    r#"{"decoder": {"block": {"mlp": {"type": "moe", "experts": 4, "shared_experts": 5, "experts_per_token": 1}}}}"#,
    "decoder.block.mlp.shared_experts",
    "<= experts"
)]
#[case::moe_total(
    r#"{"decoder": {"block": {"mlp": {"type": "moe", "experts": 4, "shared_experts": 2, "experts_per_token": 3}}}}"#,
    "decoder.block.mlp.experts_per_token",
    "<= experts"
)]
#[case::moe_aux(
    r#"{"decoder": {"block": {"mlp": {"type": "moe", "auxiliary_loss_coefficient": -1}}}}"#,
    "decoder.block.mlp.auxiliary_loss_coefficient",
    "must be >= 0"
)]
#[case::moe_z(
    r#"{"decoder": {"block": {"mlp": {"type": "moe", "z_loss_coefficient": -1}}}}"#,
    "decoder.block.mlp.z_loss_coefficient",
    "must be >= 0"
)]
#[case::moe_jitter(
    r#"{"decoder": {"block": {"mlp": {"type": "moe", "jitter_eps": -1}}}}"#,
    "decoder.block.mlp.jitter_eps",
    "must be >= 0"
)]
#[case::hybrid_shared(
    r#"{"decoder": {"block": {"mlp": {"type": "hybrid_moe", "routed": {"experts": 4, "shared_experts": 1}}}}}"#,
    "decoder.block.mlp.routed",
    "shared_experts must be 0"
)]
#[case::hybrid_gated(
    r#"{"decoder": {"block": {"mlp": {"type": "hybrid_moe", "dense": {"gated": true}}}}}"#,
    "decoder.block.mlp.routed",
    "gated"
)]
#[case::hybrid_activation(
    r#"{"decoder": {"block": {"mlp": {"type": "hybrid_moe", "dense": {"activation": "relu"}}}}}"#,
    "decoder.block.mlp.routed",
    "activation"
)]
// Normalizations.
#[case::layer_norm_eps(
    r#"{"head": {"normalization": {"epsilon": 0}}}"#,
    "head.normalization.epsilon",
    "must be > 0"
)]
#[case::rms_norm_eps(
    r#"{"head": {"normalization": {"type": "rms_norm", "epsilon": -1}}}"#,
    "head.normalization.epsilon",
    "must be > 0"
)]
#[case::fixed_rms_eps(
    r#"{"decoder": {"block": {"mixer": {"value_norm": {"type": "fixed_rms_norm", "epsilon": 0}}}}}"#,
    "decoder.block.mixer.value_norm.epsilon",
    "must be > 0"
)]
// Initializations.
#[case::normal_std(
    r#"{"embeddings": {"word_embeddings": {"initialization": {"type": "normal", "std": -1}}}}"#,
    "embeddings.word_embeddings.initialization.std",
    "must be >= 0"
)]
#[case::fill_value(
    r#"{"embeddings": {"word_embeddings": {"initialization": {"type": "fill", "value": -1}}}}"#,
    "embeddings.word_embeddings.initialization.value",
    "must be >= 0"
)]
#[case::uniform_scale_missing(
    r#"{"embeddings": {"word_embeddings": {"initialization": {"type": "uniform"}}}}"#,
    "embeddings.word_embeddings.initialization",
    "missing required field `scale`"
)]
#[case::uniform_scale(
    r#"{"embeddings": {"word_embeddings": {"initialization": {"type": "uniform", "scale": -1}}}}"#,
    "embeddings.word_embeddings.initialization.scale",
    "must be >= 0"
)]
#[case::dt_bias_step(
    r#"{"embeddings": {"word_embeddings": {"initialization": {"type": "mamba_dt_bias", "min_step_size": 0}}}}"#,
    "embeddings.word_embeddings.initialization.min_step_size",
    "must be > 0"
)]
#[case::dt_bias_order(r#"{"embeddings": {"word_embeddings": {"initialization": {"type": "mamba_dt_bias", "min_step_size": 0.5, "max_step_size": 0.1}}}}"#, "embeddings.word_embeddings.initialization.max_step_size", "min_step_size")]
#[case::mamba_a_missing(
    r#"{"embeddings": {"word_embeddings": {"initialization": {"type": "mamba_a", "d_inner": 4}}}}"#,
    "embeddings.word_embeddings.initialization",
    "missing required field `state_size`"
)]
#[case::mamba_a_size(
    r#"{"embeddings": {"word_embeddings": {"initialization": {"type": "mamba_a", "d_inner": 0, "state_size": 4}}}}"#,
    "embeddings.word_embeddings.initialization.d_inner",
    "must be > 0"
)]
fn gpt_rules_reject_with_their_path(#[case] json: &str, #[case] path: &str, #[case] needle: &str) {
    let errors = reject(ModelKind::Gpt, json);
    assert!(
        errors.mentions(path, needle),
        "expected `{needle}` at `{path}`, got:\n{errors}"
    );
}

#[rstest]
#[case::vision_hidden_size(
    r#"{"vision_encoder": {"hidden_size": 0}}"#,
    "vision_encoder.hidden_size",
    "must be > 0"
)]
#[case::image_mean_length(
    r#"{"vision_encoder": {"normalization": {"mean": [0.5, 0.5]}}}"#,
    "vision_encoder.normalization.mean",
    "invalid length 2"
)]
#[case::vision_encoder_null(r#"{"vision_encoder": null}"#, "vision_encoder", "expected VisionEncoderConfig")]
#[case::image_token_index(r#"{"image_token_index": "x"}"#, "image_token_index", "expected int")]
fn multimodal_rules_reject_with_their_path(#[case] json: &str, #[case] path: &str, #[case] needle: &str) {
    let errors = reject(ModelKind::MultiModal, json);
    assert!(
        errors.mentions(path, needle),
        "expected `{needle}` at `{path}`, got:\n{errors}"
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let errors = reject(
        ModelKind::Gpt,
        r#"{"hidden_size": 0, "foo": 1, "embeddings": {"vocab_size": "x"}}"#,
    );
    assert!(errors.mentions("foo", "unknown field"), "{errors}");
    assert!(errors.mentions("embeddings.vocab_size", "expected int"), "{errors}");
    // Rules run once the types check, as in Fast-LLM's validation.
    let errors = reject(ModelKind::Gpt, r#"{"hidden_size": 0, "embeddings": {"vocab_size": 0}}"#);
    assert_eq!(errors.errors.len(), 2, "{errors}");
}

#[test]
fn messages_name_path_class_and_rule() {
    let errors = reject(
        ModelKind::Gpt,
        r#"{"decoder": {"block": {"mixer": {"heads": 6, "head_groups": 4}}}}"#,
    );
    assert_eq!(
        errors.to_string(),
        "invalid Fast-LLM config (1 error):\n  `decoder.block.mixer.heads` (AttentionConfig): must be a multiple of head_groups (6 % 4 != 0)"
    );
}

/// Substitutes every value of every conformance dict with values of every kind: loading may
/// reject, but never panics.
#[test]
fn no_input_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/normalize");
    let substitutes = [
        Value::Null,
        Value::Bool(true),
        Value::Int(0),
        Value::Int(-1),
        Value::Int(i128::MAX),
        Value::Float(-0.5),
        Value::Float(1e300),
        Value::Str(String::new()),
        Value::Str("mamba_2".into()),
        Value::List(vec![Value::Int(1)]),
        Value::Map(Default::default()),
    ];
    let mut loads = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let case = Value::from_json_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let explicit = case.as_map().unwrap()["explicit"].clone();
        let kind = if explicit.as_map().unwrap().contains_key("vision_encoder") {
            ModelKind::MultiModal
        } else {
            ModelKind::Gpt
        };
        let mut paths = Vec::new();
        collect_paths(&explicit, &mut Vec::new(), &mut paths);
        for path in paths {
            for substitute in &substitutes {
                let mut mutated = explicit.clone();
                *lookup(&mut mutated, &path) = substitute.clone();
                let _ = load_base_model(kind, &mutated);
                loads += 1;
            }
        }
    }
    assert!(loads > 10_000, "only {loads} mutated loads");
}

fn collect_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if !prefix.is_empty() {
        out.push(prefix.clone());
    }
    match value {
        Value::Map(map) => {
            for (k, v) in map {
                prefix.push(k.clone());
                collect_paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::List(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(i.to_string());
                collect_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn lookup<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |v, key| match v {
        Value::Map(map) => map.get_mut(key).unwrap(),
        Value::List(items) => &mut items[key.parse::<usize>().unwrap()],
        _ => unreachable!(),
    })
}

/// Fast-LLM drops these legacy keys on load: each input loads, and what it gives is what the same
/// input without the key gives (only an input holding the key is rewritten).
#[rstest]
#[case::stray_block_of_a_pattern(
    r#"{"decoder": {"type": "pattern", "blocks": {"a": {}}, "pattern": ["a"], "block": {"mixer": {"head_groups": 0}}}}"#,
    r#"{"decoder": {"type": "pattern", "blocks": {"a": {}}, "pattern": ["a"]}}"#
)]
#[case::false_complex_format(
    r#"{"decoder": {"block": {"mixer": {"rotary": {"type": "default", "complex_format": false}}}}}"#,
    r#"{"decoder": {"block": {"mixer": {"rotary": {"type": "default"}}}}}"#
)]
#[case::loss_implementation(
    r#"{"head": {"losses": {"lm": {"type": "label", "implementation": "fused"}}}}"#,
    r#"{"head": {"losses": {"lm": {"type": "label"}}}}"#
)]
#[case::distillation_loss_implementation(
    r#"{"head": {"losses": {"kd": {"type": "distillation", "implementation": "fused"}}}}"#,
    r#"{"head": {"losses": {"kd": {"type": "distillation"}}}}"#
)]
#[case::false_complex_format_of_yarn(
    r#"{"decoder": {"block": {"mixer": {"rotary": {"type": "yarn", "complex_format": false}}}}}"#,
    r#"{"decoder": {"block": {"mixer": {"rotary": {"type": "yarn"}}}}}"#
)]
fn legacy_keys_are_dropped(#[case] with_key: &str, #[case] without: &str) {
    let load = |json: &str| {
        let config = load_base_model(ModelKind::Gpt, &Value::from_json_str(json).unwrap())
            .unwrap_or_else(|e| panic!("rejected {json}: {e}"));
        config.to_form(fastllm_config::Form::Explicit)
    };
    assert_eq!(load(with_key), load(without));
}
