//! Names from an input never drive the terminal: every place a checkpoint names something the
//! CLI echoes (a tensor, a config key, a metadata.yaml key, a file of the directory, a shard in the
//! index), crossed with every kind of control sequence (screen clear, window title, carriage
//! return, a newline starting a fake `error:` line, C1 CSI, bidirectional override). Whatever the
//! command answers, nothing it prints holds a control character but its own newlines, and no line
//! is the input's.

mod support;

use std::path::{Path, PathBuf};

use fastllm_convert::config::{Map, Value};
use rstest::rstest;
use support::{Safetensors, cli, copy_dir, fixture, scratch};

const PAYLOADS: &[(&str, &str)] = &[
    ("clear", "x\u{1b}[2J\u{1b}[H"),
    ("title", "x\u{1b}]0;owned\u{7}"),
    ("carriage_return", "x\rerror: fake"),
    ("newline", "x\nerror: fake"),
    ("c1_csi", "x\u{9b}2J"),
    ("bidi", "x\u{202e}txt.exe"),
];

/// Where the payload goes; returns the input directory and the command to run.
fn plant(site: &str, payload: &str, root: &Path) -> (PathBuf, Vec<String>) {
    let input = root.join("input");
    let fast_llm = site.starts_with("metadata");
    copy_dir(
        &fixture("llama", if fast_llm { "fast_llm" } else { "hf_input" }),
        &input,
    );
    let convert = |input: &Path| {
        ["convert", "--from", "auto", "--to", "fast_llm"]
            .iter()
            .map(|s| s.to_string())
            .chain([input.display().to_string(), root.join("out").display().to_string()])
            .collect::<Vec<_>>()
    };
    match site {
        "tensor" | "tensor_inspect" => {
            let path = input.join("model.safetensors");
            let mut file = Safetensors::read(&path);
            let last = file.last_tensor();
            let entry = file.header.remove(&last).unwrap();
            file.header.insert(format!("{last}{payload}"), entry);
            file.write(&path);
        }
        "config_key" | "metadata_key" => {
            let name = if fast_llm { "metadata.yaml" } else { "config.json" };
            let path = input.join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let mut map: Map = match Value::from_json_str(&text)
                .or_else(|_| Value::from_yaml_str(&text))
                .unwrap()
            {
                Value::Map(map) => map,
                _ => unreachable!(),
            };
            // Fast-LLM: in the base model, where every key is read (and an unknown one named).
            let target = match map.get_mut("config") {
                Some(Value::Map(config)) if fast_llm => match config.get_mut("base_model") {
                    Some(Value::Map(base_model)) => base_model,
                    _ => panic!("the fixture has a base model"),
                },
                _ => &mut map,
            };
            target.insert(format!("key{payload}"), Value::Int(1));
            let text = if fast_llm {
                Value::Map(map).to_yaml()
            } else {
                Value::Map(map).to_json_pretty()
            };
            std::fs::write(&path, text).unwrap();
        }
        "file_name" => std::fs::write(input.join(format!("notes{payload}.txt")), "notes").unwrap(),
        "index_shard" => {
            let weights = Safetensors::read(&input.join("model.safetensors"));
            let mut weight_map = Map::new();
            for tensor in weights.header.keys().filter(|k| *k != "__metadata__") {
                weight_map.insert(tensor.clone(), Value::Str(format!("shard{payload}.safetensors")));
            }
            let mut index = Map::new();
            index.insert("weight_map".into(), Value::Map(weight_map));
            std::fs::write(
                input.join("model.safetensors.index.json"),
                Value::Map(index).to_json_pretty(),
            )
            .unwrap();
            std::fs::remove_file(input.join("model.safetensors")).unwrap();
        }
        other => panic!("{other}"),
    }
    let args = if site == "tensor_inspect" {
        vec!["inspect".to_string(), input.display().to_string()]
    } else {
        convert(&input)
    };
    (input, args)
}

#[rstest]
fn no_input_name_drives_the_terminal(
    #[values("tensor", "tensor_inspect", "config_key", "metadata_key", "file_name", "index_shard")] site: &str,
    #[values(0, 1, 2, 3, 4, 5)] payload: usize,
) {
    let (label, payload) = PAYLOADS[payload];
    let root = scratch("hostile-names", &format!("{site}-{label}"));
    let (_, args) = plant(site, payload, &root);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = cli(&args);
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let bad = text
            .chars()
            .find(|&c| (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'));
        assert!(bad.is_none(), "{site}/{label}: {stream} holds {bad:?}:\n{text}");
        assert!(
            !text.lines().any(|line| line.starts_with("error: fake")),
            "{site}/{label}: {stream} has the input's line:\n{text}"
        );
    }
    // The name is still shown, escaped: the user can tell which one it is (`inspect` lists no
    // tensor names).
    if site == "tensor_inspect" {
        return;
    }
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        all.contains("\\u{") || all.contains("\\n") || all.contains("\\r"),
        "{site}/{label}: {all}"
    );
}
