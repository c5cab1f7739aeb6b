//! The `config.json` a conversion writes is what transformers' `save_pretrained` of the format's
//! class writes: for every accepted case of the conformance suite and both rope layouts, the
//! imported (or given) Fast-LLM config exported with completion equals the reference's export
//! loaded into the real transformers class and saved (`tests/data/transformers/<layout>/`,
//! written by `scripts/transformers_reference.py` with transformers 4.57.6 for v4 and 5.24.0 for
//! v5). Compared after ignoring `transformers_version`, the order of `architectures` and the
//! dtype key's spelling (`torch_dtype` / `dtype`), and the few places listed in [`KNOWN`] where
//! the class rewrites values instead of completing them.
//!
//! A format without conformance cases (`gemma4_conditional`) is checked on its own test configs
//! (the released Gemma 4 `config.json`s, `--text-only`): the reference holds the dict transformers
//! loaded, which is converted to the same format the way `convert` does, carried metadata
//! included, so the check covers a whole conversion of a real checkpoint. Cases pinning where a
//! class rewrites or defaults a nested value on save (Gemma 4's `per_layer_config`, Pixtral's
//! `axial` rope type) hold their own input the same way: a changed conformance export.

use std::path::{Path, PathBuf};

use fastllm_convert::config::{BaseModelConfig, Map, Value, load_base_model};
use fastllm_convert::core::{Carried, Handler, HfLayout, find};
use rstest::rstest;

/// Where our `config.json` deliberately differs from `save_pretrained`'s: (format, layout,
/// dotted key, why). A key listed here is left out of the comparison; each is a place where the
/// class rewrites or drops what the format writes, so "completing" it would change the model.
const KNOWN: &[(&str, &str, &str, &str)] = &[
    (
        "apriel_hybrid_ssm",
        "v4",
        "linear_attn_config",
        "AprielHybridSSMConfig rebuilds it from `gdn_cfg`, dropping the GDN shape (`gdn_*`) the format writes",
    ),
    (
        "apriel_hybrid_ssm",
        "v5",
        "linear_attn_config",
        "AprielHybridSSMConfig rebuilds it from `gdn_cfg`, dropping the GDN shape (`gdn_*`) the format writes",
    ),
    (
        "llava_hybrid_ssm",
        "v4",
        "model_type",
        "LlavaHybridConfig writes its class attribute `llava_hybrid`; the format writes `llava_hybrid_ssm` \
         (as Fast-LLM does) and reads both",
    ),
    (
        "llava_hybrid_ssm",
        "v5",
        "model_type",
        "LlavaHybridConfig writes its class attribute `llava_hybrid` (see v4)",
    ),
];

/// Formats whose class transformers 4.x does not have (no `v4` reference).
const NO_V4_CLASS: &[&str] = &["gemma4", "gemma4_conditional"];

/// Sub-configs `save_pretrained` writes whole instead of diffed: (format, layout, key). The
/// custom LlavaHybridConfig declares no `sub_configs`, so transformers 5.24 also writes every
/// `PretrainedConfig` key of them at its default; those keys carry nothing and are ignored here.
const UNDIFFED: &[(&str, &str, &str)] = &[
    ("llava_hybrid_ssm", "v5", "text_config"),
    ("llava_hybrid_ssm", "v5", "vision_config"),
];

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn read(path: &Path) -> Map {
    Value::from_json_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
        .as_map()
        .unwrap()
        .clone()
}

/// Ignores what the comparison ignores: `transformers_version`, dtype spelling, `architectures` order.
fn normalized(mut hf: Map) -> Map {
    hf.remove("transformers_version");
    if let Some(dtype) = hf.remove("torch_dtype") {
        hf.insert("dtype".into(), dtype);
    }
    if let Some(Value::List(architectures)) = hf.get_mut("architectures") {
        architectures.sort_by_key(|a| a.to_json_compact());
    }
    hf
}

fn remove_path(hf: &mut Map, path: &str) {
    match path.split_once('.') {
        None => {
            hf.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Map(inner)) = hf.get_mut(head) {
                remove_path(inner, rest);
            }
        }
    }
}

/// Every difference between two dicts under Python's `==` (ints equal floats, bools are not ints).
fn differences(ours: &Value, theirs: &Value, path: &str, out: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Map(a), Value::Map(b)) => {
            for key in a.keys().filter(|k| !b.contains_key(*k)) {
                out.push(format!(
                    "{path}{key}: we write {}, transformers does not",
                    a[key].to_json_compact()
                ));
            }
            for (key, value) in b {
                match a.get(key) {
                    None => out.push(format!(
                        "{path}{key}: missing (transformers writes {})",
                        value.to_json_compact()
                    )),
                    Some(ours) => differences(ours, value, &format!("{path}{key}."), out),
                }
            }
        }
        (Value::List(a), Value::List(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}{i}."), out);
            }
        }
        (Value::Int(i), Value::Float(f)) | (Value::Float(f), Value::Int(i)) if *i as f64 == *f => {}
        _ if ours == theirs => {}
        _ => out.push(format!(
            "{}: ours {}, transformers {}",
            path.trim_end_matches('.'),
            ours.to_json_compact(),
            theirs.to_json_compact()
        )),
    }
}

/// The Fast-LLM config of a conformance case: imported from its HF input, or its input.
fn fast_llm_config(case: &str, format: &str) -> fastllm_convert::config::BaseModelConfig {
    let case_file = read(&data().join("conformance/cases").join(format!("{case}.json")));
    let expected = read(&data().join("conformance/expected").join(format!("{case}.json")));
    let input = case_file["input"].as_map().unwrap();
    match &expected["direction"] {
        Value::Str(direction) if direction == "import" => {
            let Value::Str(imported_by) = &expected["format"] else {
                panic!("{case}: no format")
            };
            let handler = if imported_by == "auto" {
                fastllm_convert::core::detect(input).unwrap()
            } else {
                find(imported_by).unwrap()
            };
            handler.import(input).unwrap_or_else(|e| panic!("{case}: {e}"))
        }
        _ => load_base_model(find(format).unwrap().model, &Value::Map(input.clone())).unwrap(),
    }
}

/// The Fast-LLM config and carried keys of a reference with its own `input`: a format's own test
/// config, which must be the `source` file without the keys `--text-only` drops (`text_only`), or
/// a case pinning a rewrite on save (no `source`: a changed conformance export, imported as is).
fn own_case(case: &str, handler: &Handler, reference: &Map) -> (BaseModelConfig, Carried) {
    let Some(Value::Map(input)) = reference.get("input") else {
        panic!("{case}: no input")
    };
    let Some(Value::Str(source)) = reference.get("source") else {
        assert!(reference.contains_key("base"), "{case}: no source and no base");
        let config = handler.import(input).unwrap_or_else(|e| panic!("{case}: {e}"));
        let carried = handler
            .carried(input, &config)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        return (config, carried);
    };
    let source = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(source));
    let (kept, dropped) = handler.without_unconverted(&source);
    assert_eq!(&kept, input, "{case}: the input is not the source with --text-only");
    let text_only: Vec<Value> = dropped.into_iter().map(Value::Str).collect();
    assert_eq!(reference.get("text_only"), Some(&Value::List(text_only)), "{case}");
    let config = handler.import(input).unwrap_or_else(|e| panic!("{case}: {e}"));
    let carried = handler
        .carried(input, &config)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    (config, carried)
}

#[rstest]
fn written_config_json_is_what_transformers_saves(#[values("v4", "v5")] layout: &str) {
    let hf_layout = if layout == "v4" { HfLayout::V4 } else { HfLayout::V5 };
    let dir = data().join("data/transformers").join(layout);
    let mut failures = Vec::new();
    let mut checked = std::collections::BTreeSet::new();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    for path in cases {
        let reference = read(&path);
        let case = path.file_stem().unwrap().to_str().unwrap().to_string();
        let Some(Value::Str(format)) = reference.get("format") else {
            panic!("{case}: no format")
        };
        let Some(Value::Map(theirs)) = reference.get("config") else {
            continue;
        };
        let handler = find(format).unwrap();
        let (config, carried) = if reference.contains_key("input") {
            own_case(&case, handler, &reference)
        } else {
            (fast_llm_config(&case, format), Carried::none("fast_llm"))
        };
        let (ours, _) = handler
            .export_carrying(&config, &carried, hf_layout)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let (mut ours, mut theirs) = (normalized(ours), normalized(theirs.clone()));
        for (f, l, key, _) in KNOWN {
            if *f == format && *l == layout {
                remove_path(&mut ours, key);
                remove_path(&mut theirs, key);
            }
        }
        for (f, l, key) in UNDIFFED {
            if *f == format
                && *l == layout
                && let Some(Value::Map(sub)) = theirs.get_mut(*key)
            {
                let base = fastllm_convert::core::complete::base_defaults(hf_layout);
                sub.retain(|name, value| base.get(name) != Some(value));
            }
        }
        let mut found = Vec::new();
        differences(&Value::Map(ours), &Value::Map(theirs), "", &mut found);
        checked.insert(format.clone());
        if !found.is_empty() {
            failures.push(format!("{case} ({format}):\n    {}", found.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    // Every registered format is checked in v5; every format with a 4.x class in v4.
    let expected: std::collections::BTreeSet<String> = fastllm_convert::core::handlers()
        .iter()
        .map(|h| h.name.to_string())
        .filter(|name| layout == "v5" || !NO_V4_CLASS.contains(&name.as_str()))
        .collect();
    let unchecked: Vec<&String> = expected.difference(&checked).collect();
    assert!(
        unchecked.is_empty(),
        "no transformers reference for {unchecked:?}: add conformance cases for the format and rerun \
         scripts/transformers_reference.py"
    );
}
