//! Rotary embeddings ↔ `rope_theta` + `rope_scaling` (transformers 4) or `rope_parameters`
//! (transformers 5). A Custom: one Fast-LLM sub-config becomes keys spread over two layouts.

use fastllm_core::config::{AttentionConfig, Map, RotaryConfig, Value};
use fastllm_core::dict::show;
use fastllm_core::{Claims, Decl, ExportContext, Fl, HfLayout, HfWrites, ImportContext, Problem, Writes};

/// transformers' `rope_theta` when a config has none (LlamaConfig's default).
pub const DEFAULT_ROPE_THETA: f64 = 10000.0;

/// [`DEFAULT_ROPE_THETA`] as an HF value.
static DEFAULT_THETA: Value = Value::Float(DEFAULT_ROPE_THETA);

/// The rope parameters of a config that has none.
static NO_PARAMETERS: Map = Map::new();

/// Every HF key the rotary reads, including inside the rope dicts (anything else there is unknown).
const CLAIMS: &[&str] = &[
    "rope_theta",
    "rope_scaling",
    "rope_scaling.rope_type",
    "rope_scaling.type",
    "rope_scaling.factor",
    "rope_scaling.low_freq_factor",
    "rope_scaling.high_freq_factor",
    "rope_scaling.original_max_position_embeddings",
    "rope_scaling.attention_factor",
    "rope_scaling.beta_fast",
    "rope_scaling.beta_slow",
    "rope_parameters",
    "rope_parameters.rope_theta",
    "rope_parameters.rope_type",
    "rope_parameters.type",
    "rope_parameters.factor",
    "rope_parameters.low_freq_factor",
    "rope_parameters.high_freq_factor",
    "rope_parameters.original_max_position_embeddings",
    "rope_parameters.attention_factor",
    "rope_parameters.beta_fast",
    "rope_parameters.beta_slow",
];

/// (Fast-LLM field, HF key) per rope type, in the order HF writes them (and export reads them).
const LLAMA3: &[(&str, &str)] = &[
    ("scale_factor", "factor"),
    ("low_frequency_factor", "low_freq_factor"),
    ("high_frequency_factor", "high_freq_factor"),
    ("original_context_length", "original_max_position_embeddings"),
];
const YARN: &[(&str, &str)] = &[
    ("scale_factor", "factor"),
    ("attention_factor", "attention_factor"),
    ("beta_fast", "beta_fast"),
    ("beta_slow", "beta_slow"),
    ("original_context_length", "original_max_position_embeddings"),
];

/// The `rotary` declaration of the Llama attention section.
pub fn declaration() -> Decl {
    Decl::custom(Claims::subtree(&["rotary"], CLAIMS), export, import).into()
}

fn export(fl: Fl, context: &ExportContext) -> HfWrites {
    let rotary = &fl.config::<AttentionConfig>()?.rotary;
    let float = Value::Float;
    let int = |i: i64| Value::Int(i.into());
    // The type, theta and the values of its table's fields, in the table's order.
    let (kind, theta, fields, values): (&str, f64, &[(&str, &str)], Vec<Value>) = match rotary {
        RotaryConfig::Default(c) => ("default", c.theta, &[], vec![]),
        RotaryConfig::Llama3(c) => (
            "llama3",
            c.theta,
            LLAMA3,
            vec![
                float(c.scale_factor),
                float(c.low_frequency_factor),
                float(c.high_frequency_factor),
                int(c.original_context_length),
            ],
        ),
        RotaryConfig::Yarn(c) => (
            "yarn",
            c.theta,
            YARN,
            vec![
                float(c.scale_factor),
                c.attention_factor.map_or(Value::Null, float),
                float(c.beta_fast),
                float(c.beta_slow),
                int(c.original_context_length),
            ],
        ),
        _ => {
            return Err(vec![Problem::at_fast_llm(
                "rotary.type",
                format!(
                    "rotary {} has no {} form (supported: default, llama3, yarn)",
                    show(&Value::Str(rotary.type_name().into())),
                    context.format
                ),
            )]);
        }
    };
    let theta = float(theta);
    let mut parameters = Map::new();
    parameters.insert("rope_type".into(), Value::Str(kind.into()));
    for ((_, hf), value) in fields.iter().zip(values) {
        parameters.insert(hf.to_string(), value);
    }
    let writes = match context.layout {
        HfLayout::V4 => {
            let mut writes = vec![("rope_theta".to_string(), theta)];
            if !fields.is_empty() {
                writes.push(("rope_scaling".into(), Value::Map(parameters)));
            }
            writes
        }
        HfLayout::V5 => {
            parameters.insert("rope_theta".into(), theta);
            vec![("rope_parameters".into(), Value::Map(parameters))]
        }
    };
    Ok(writes.into_iter().map(Into::into).collect())
}

fn number(value: &Value, key: impl FnOnce() -> String) -> Result<Value, Problem> {
    match value {
        Value::Int(i) => Ok(Value::Float(*i as f64)),
        Value::Float(_) => Ok(value.clone()),
        other => Err(Problem::at_hf(
            key(),
            format!("must be a number, found {}", show(other)),
        )),
    }
}

fn import(hf: &Map, context: &ImportContext) -> Writes {
    // transformers 5's `rope_parameters` wins; a stale flat `rope_theta` beside it is ignored.
    let (name, parameters) = match hf.get("rope_parameters") {
        Some(Value::Map(p)) => ("rope_parameters", p),
        Some(Value::Null) | None => match hf.get("rope_scaling") {
            Some(Value::Map(p)) => ("rope_scaling", p),
            Some(Value::Null) | None => ("rope_scaling", &NO_PARAMETERS),
            Some(other) => {
                return Err(vec![Problem::at_hf(
                    "rope_scaling",
                    format!("must be a dict, found {}", show(other)),
                )]);
            }
        },
        Some(other) => {
            return Err(vec![Problem::at_hf(
                "rope_parameters",
                format!("must be a dict, found {}", show(other)),
            )]);
        }
    };
    let (theta, theta_key) = match (parameters.get("rope_theta"), hf.get("rope_theta")) {
        (Some(theta), _) => (theta, Some(name)),
        (None, Some(theta)) => (theta, None),
        (None, None) => (&DEFAULT_THETA, None),
    };
    let mut problems = Vec::new();
    let theta = number(theta, || {
        theta_key.map_or("rope_theta".into(), |name| format!("{name}.rope_theta"))
    })
    .map_err(|p| problems.push(p))
    .unwrap_or(Value::Null);
    // Legacy `type` means `rope_type`.
    let kind = match parameters.get("rope_type").or_else(|| parameters.get("type")) {
        None => "default",
        Some(Value::Str(t)) => t.as_str(),
        Some(other) => {
            return Err(vec![Problem::at_hf(
                format!("{name}.rope_type"),
                format!("must be a string, found {}", show(other)),
            )]);
        }
    };
    let fields: &[(&str, &str)] = match kind {
        "default" => &[],
        "llama3" => LLAMA3,
        "yarn" => YARN,
        other => {
            return Err(vec![Problem::at_hf(
                format!("{name}.rope_type"),
                format!(
                    "rope type {other:?} is not representable in {} (supported: default, llama3, yarn)",
                    context.format
                ),
            )]);
        }
    };
    for key in parameters.keys() {
        let known =
            matches!(key.as_str(), "rope_type" | "type" | "rope_theta") || fields.iter().any(|(_, hf)| hf == key);
        if !known {
            problems.push(Problem::at_hf(
                format!("{name}.{key}"),
                format!("unknown key for rope type {kind:?}"),
            ));
        }
    }
    let mut rotary = Map::new();
    rotary.insert("type".into(), Value::Str(kind.into()));
    rotary.insert("theta".into(), theta);
    for (fast_llm, hf_key) in fields {
        let path = || format!("{name}.{hf_key}");
        let value = match (parameters.get(*hf_key), kind, *hf_key) {
            (Some(v), _, "original_max_position_embeddings") => Ok(v.clone()),
            (Some(v), _, _) => number(v, path),
            // YaRN defaults (transformers): attention_factor derived by Fast-LLM, betas 32 and 1,
            // original length = max_position_embeddings.
            (None, "yarn", "attention_factor") => continue,
            (None, "yarn", "beta_fast") => Ok(Value::Float(32.0)),
            (None, "yarn", "beta_slow") => Ok(Value::Float(1.0)),
            (None, "yarn", "original_max_position_embeddings") => hf
                .get("max_position_embeddings")
                .cloned()
                .ok_or_else(|| Problem::at_hf(path(), "missing, and no max_position_embeddings to default to")),
            (None, _, _) => Err(Problem::at_hf(
                path(),
                format!("missing (required for rope type {kind:?})"),
            )),
        };
        match value {
            Ok(v) => {
                rotary.insert(fast_llm.to_string(), v);
            }
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(vec![("rotary".into(), Value::Map(rotary))])
    } else {
        Err(problems)
    }
}
