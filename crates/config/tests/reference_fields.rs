//! The field tables of every config class against Fast-LLM's own declarations.
//!
//! `data/fast_llm_fields.json` was extracted from the Fast-LLM source (commit 7d61a1ba) by
//! `data/extract_fast_llm_fields.py`: per class, its init fields in dataclass order with their
//! hints and literal defaults. A changed hint, a reordered or missing field, or a wrong default in
//! the Rust model fails here.

use std::collections::BTreeMap;

use fastllm_config::*;
use rstest::rstest;

/// What the Rust model says about one class.
struct RustClass {
    name: &'static str,
    fields: &'static [FieldInfo],
    full_default: Map,
}

fn describe<T: ConfigClass>() -> RustClass {
    RustClass {
        name: T::CLASS_NAME,
        fields: T::FIELDS,
        full_default: T::default().to_form(Form::Full),
    }
}

macro_rules! rust_classes {
    ($($t:ty),* $(,)?) => { vec![$(describe::<$t>()),*] };
}

/// Every config struct of the model.
fn rust_classes() -> Vec<RustClass> {
    rust_classes![
        DefaultInitializationConfig,
        FillInitializationConfig,
        NormalInitializationConfig,
        UniformInitializationConfig,
        MambaDtBiasInitializationConfig,
        MambaAInitializationConfig,
        ParameterConfig,
        OptionalParameterConfig,
        LinearConfig,
        AffineLinearConfig,
        CausalConv1dConfig,
        NoNormalizationConfig,
        LayerNormalizationBaseConfig,
        LayerNormalizationConfig,
        RmsNormalizationConfig,
        FixedRmsNormConfig,
        GatedRmsNormalizationConfig,
        NoPeftConfig,
        LoraConfig,
        NoRotaryConfig,
        DefaultRotaryConfig,
        Llama3RotaryConfig,
        YarnRotaryConfig,
        Rotary2dConfig,
        ProportionalRotaryConfig,
        AttentionConfig,
        StochasticMixerConfig,
        MambaConfig,
        GatedDeltaNetConfig,
        KimiDeltaAttentionConfig,
        MlpBaseFields,
        MlpConfig,
        MoeMlpConfig,
        HybridMoeMlpConfig,
        DecoderBlockConfig,
        FixedBlockSequenceConfig,
        PatternBlockSequenceConfig,
        LanguageModelEmbeddingsConfig,
        LanguageModelHeadConfig,
        LanguageModelLossFields,
        CombinableLossConfig,
        LabelEntropyLossConfig,
        DistillationLossConfig,
        DpoLossConfig,
        ZLossConfig,
        GrpoLossConfig,
        GspoLossConfig,
        ImageNormalizationConfig,
        PatchEmbeddingsConfig,
        VisionEncoderConfig,
        GptBaseModelConfig,
        MultiModalBaseModelConfig,
    ]
}

/// One field as Fast-LLM declares it.
struct ReferenceField {
    name: String,
    hint: String,
    default: Option<Value>,
}

fn reference() -> BTreeMap<String, Vec<ReferenceField>> {
    let text = include_str!("data/fast_llm_fields.json");
    let Value::Map(classes) = Value::from_json_str(text).unwrap() else {
        panic!("not a map")
    };
    classes
        .into_iter()
        .map(|(class, fields)| {
            let Value::List(fields) = fields else {
                panic!("{class}: not a list")
            };
            let fields = fields
                .into_iter()
                .map(|f| {
                    let Value::Map(f) = f else { panic!("{class}: bad field") };
                    let text = |k: &str| match &f[k] {
                        Value::Str(s) => s.clone(),
                        other => panic!("{class}.{k}: {other:?}"),
                    };
                    ReferenceField {
                        name: text("name"),
                        hint: text("hint"),
                        default: f.get("default").cloned(),
                    }
                })
                .collect();
            (class, fields)
        })
        .collect()
}

/// Differences between Fast-LLM's field table of a class and ours (`type` is implicit in ours).
fn table_differences(reference: &[ReferenceField], ours: &[FieldInfo]) -> Vec<String> {
    let theirs: Vec<(&str, &str)> = reference
        .iter()
        .filter(|f| f.name != "type")
        .map(|f| (f.name.as_str(), f.hint.as_str()))
        .collect();
    let ours: Vec<(&str, &str)> = ours.iter().map(|f| (f.name, f.hint.name())).collect();
    if theirs == ours {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, (name, hint)) in theirs.iter().enumerate() {
        match ours.iter().position(|(n, _)| n == name) {
            None => out.push(format!("missing field `{name}`")),
            Some(j) if ours[j].1 != *hint => {
                out.push(format!("field `{name}`: hint `{}`, Fast-LLM says `{hint}`", ours[j].1))
            }
            Some(j) if j != i => out.push(format!("field `{name}` at position {j}, Fast-LLM has it at {i}")),
            Some(_) => {}
        }
    }
    for (name, _) in &ours {
        if !theirs.iter().any(|(n, _)| n == name) {
            out.push(format!("field `{name}` is not in Fast-LLM"));
        }
    }
    out
}

#[test]
fn every_class_has_fast_llm_fields_hints_and_order() {
    let reference = reference();
    let mut failures = Vec::new();
    for class in rust_classes() {
        let Some(fields) = reference.get(class.name) else {
            failures.push(format!("{}: no such Fast-LLM class", class.name));
            continue;
        };
        for difference in table_differences(fields, class.fields) {
            failures.push(format!("{}: {difference}", class.name));
        }
    }
    assert!(
        failures.is_empty(),
        "field tables differ from Fast-LLM:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_changed_hint_is_caught() {
    let reference = reference();
    let attention = &reference["AttentionConfig"];
    assert!(table_differences(attention, AttentionConfig::FIELDS).is_empty());
    // The same table with `heads` demoted to `feature` must be reported, by name.
    let mut changed: Vec<FieldInfo> = AttentionConfig::FIELDS.to_vec();
    changed.iter_mut().find(|f| f.name == "heads").unwrap().hint = FieldHint::Feature;
    let differences = table_differences(attention, &changed);
    assert_eq!(
        differences,
        vec!["field `heads`: hint `feature`, Fast-LLM says `architecture`".to_string()]
    );
}

/// Python literal defaults as our dicts write them: ints in float fields were converted by
/// validation, factories are their empty containers.
fn expected_default(default: &Value) -> Option<Value> {
    Some(match default {
        Value::Map(m) if m.contains_key("expr") => match &m["expr"] {
            Value::Str(e) if e == "list()" => Value::List(vec![]),
            Value::Str(e) if e == "dict()" => Value::Map(Map::new()),
            Value::Str(e) if e == "_BIG_PRIMES[11]" => Value::Int(DEFAULT_SEED_SHIFT),
            _ => return None,
        },
        other => other.clone(),
    })
}

fn numerically_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(i), Value::Float(f)) | (Value::Float(f), Value::Int(i)) => *i as f64 == *f,
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| numerically_equal(a, b)),
        _ => a == b,
    }
}

#[test]
fn every_default_is_fast_llm_s() {
    let reference = reference();
    let mut failures = Vec::new();
    for class in rust_classes() {
        let Some(fields) = reference.get(class.name) else {
            continue;
        };
        for field in fields.iter().filter(|f| f.name != "type") {
            let ours = class.full_default.get(&field.name);
            let info = class.fields.iter().find(|f| f.name == field.name);
            match (&field.default, ours) {
                (Some(default), Some(ours)) => {
                    if let Some(expected) = expected_default(default)
                        && !numerically_equal(&expected, ours)
                    {
                        failures.push(format!(
                            "{}.{}: default {ours:?}, Fast-LLM {expected:?}",
                            class.name, field.name
                        ));
                    }
                }
                (Some(default), None) => {
                    // Only a config-valued default may vanish from the dict (it is then empty).
                    failures.push(format!(
                        "{}.{}: default {default:?} not written",
                        class.name, field.name
                    ));
                }
                // No default in Fast-LLM: a sub-config (built from `{}`) or a required field.
                (None, ours) => {
                    let is_config = matches!(ours, Some(Value::Map(_))) || ours.is_none();
                    let required = info.is_some_and(|f| f.required);
                    if !is_config && !required {
                        failures.push(format!(
                            "{}.{}: Fast-LLM has no default, ours is not required",
                            class.name, field.name
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "defaults differ from Fast-LLM:\n{}",
        failures.join("\n")
    );
}

#[rstest]
#[case::attention("AttentionConfig", "head_size", Value::Int(128))]
#[case::mlp_biases("MLPConfig", "add_linear_biases", Value::Bool(true))]
#[case::yarn_beta("YarnRotaryConfig", "beta_fast", Value::Float(32.0))]
#[case::routing("MoEMLPConfig", "routing", Value::Str("aux_loss".into()))]
fn spot_check_defaults(#[case] class: &str, #[case] field: &str, #[case] expected: Value) {
    let class = rust_classes().into_iter().find(|c| c.name == class).unwrap();
    assert_eq!(class.full_default[field], expected);
}
