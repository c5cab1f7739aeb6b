//! What a conversion writes, it reads back. Carried HF metadata of random shapes (deep chains,
//! wide lists and maps, scalars YAML spells in tricky ways), in a config.json the reader
//! accepts, either comes back exactly through metadata.yaml and a second conversion, or the
//! conversion is refused before anything is written, naming the key.

use std::path::{Path, PathBuf};
use std::process::Command;

use fastllm_checkpoint::convert::{Conversion, Options, Side, convert};
use fastllm_checkpoint::{MAX_CONFIG_BYTES, read_document};
use fastllm_core::config::{Map, Value};
use fastllm_core::find;

use fastllm_llama as _;

/// A free-form generic key: carried whatever its value, through Fast-LLM and back.
const KEY: &str = "task_specific_params";

const LLAMA: &str = r#"{"architectures": ["LlamaForCausalLM"], "head_dim": 16, "hidden_act": "silu",
    "hidden_size": 64, "intermediate_size": 128, "model_type": "llama", "num_attention_heads": 4,
    "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "vocab_size": 128}"#;

/// xorshift64*: the same shapes on every run, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Strings a YAML writer must quote, escape or fold to keep them strings, and keys like them.
const STRINGS: &[&str] = &[
    "",
    "x",
    "yes",
    "No",
    "off",
    "null",
    "~",
    "1",
    "-3",
    "017",
    "0x1F",
    "1e-05",
    "1.0e5",
    ".5",
    "1:30",
    ".inf",
    ".nan",
    "2024-01-01",
    "true",
    "a: b",
    "a:b",
    "- x",
    "[x]",
    "{x}",
    "x, y",
    "#x",
    "x #y",
    "'",
    "\"",
    "\\",
    "@x",
    "`x",
    "!x",
    "&a",
    "*a",
    "%x",
    "|",
    ">",
    "? x",
    "=",
    "<<",
    " lead",
    "trail ",
    "multi\nline",
    "trailing\n",
    "\n\n",
    "tab\tx",
    "\u{1}",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{feff}x",
    "é ü 中文 🚀",
    "a very long line of words that goes on past eighty characters so that a writer might fold it",
];

fn scalar(rng: &mut Rng) -> Value {
    match rng.below(7) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::Int(match rng.below(4) {
            0 => 0,
            1 => -(rng.below(1000) as i128),
            2 => i128::from(i64::MAX) + rng.below(1000) as i128,
            _ => 501_974_169_931_277_706_872_159_392_843,
        }),
        3 => Value::Float([1e-5, 0.1, -2.5, 1e300, 5e-324, 500000.0, -0.0][rng.below(7)]),
        _ => Value::Str(rng.pick(STRINGS).to_string()),
    }
}

/// A random value at most `depth` collections deep, of at most about `nodes` values.
fn value(rng: &mut Rng, depth: usize, nodes: &mut usize) -> Value {
    *nodes = nodes.saturating_sub(1);
    let width = |rng: &mut Rng| if rng.below(8) == 0 { rng.below(60) } else { rng.below(5) };
    match rng.below(10) {
        _ if depth == 0 || *nodes == 0 => scalar(rng),
        0..4 => scalar(rng),
        4..7 => {
            let n = width(rng);
            Value::List((0..n).map(|_| value(rng, depth - 1, nodes)).collect())
        }
        _ => {
            let n = width(rng);
            let map: Map = (0..n)
                .map(|i| (format!("{}{}", rng.pick(STRINGS), i % 3), value(rng, depth - 1, nodes)))
                .collect();
            Value::Map(map)
        }
    }
}

/// The carried value of case `seed`: a random tree, under a chain of 110 to 129 maps or lists
/// for one case in three (about the depth where the output outgrows the reader's limit).
fn carried(seed: u64) -> Value {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let tree = match value(&mut rng, 6, &mut 2000) {
        // A `null` key is not written back to config.json, being the class default.
        Value::Null => Value::Str("null".into()),
        tree => tree,
    };
    if rng.below(3) != 0 {
        return tree;
    }
    (0..110 + rng.below(20)).fold(tree, |inner, i| {
        if i % 2 == 0 {
            Value::Map(Map::from([(rng.pick(STRINGS).to_string(), inner)]))
        } else {
            Value::List(vec![inner])
        }
    })
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("read_back").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

fn llama() -> Side {
    Side::Hf(find("llama").unwrap())
}

/// How one step of a case ended.
enum Step {
    /// Written; the carried value as this tool reads it back.
    Written(Value),
    Refused,
}

/// Converts `input` to `output` (config only) and reads `path` of the written `document` back.
fn step(input: &Path, from: Side, output: &Path, to: Side, document: &str, path: &str) -> Step {
    let options = Options {
        config_only: true,
        ..Options::default()
    };
    match convert(
        &Conversion {
            input,
            from,
            output,
            to,
        },
        &options,
    ) {
        Ok(_) => {
            let read = read_document(&output.join(document)).unwrap_or_else(|e| panic!("written but unreadable: {e}"));
            Step::Written(
                fastllm_core::dict::get(&read, path)
                    .cloned()
                    .unwrap_or_else(|| panic!("{path} not in {}: {read:?}", output.display())),
            )
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("would not read back"), "{message}");
            assert!(
                message.contains(document) && message.contains(KEY),
                "the file and key: {message}"
            );
            assert!(!output.exists(), "a refused output is not written");
            Step::Refused
        }
    }
}

#[test]
fn carried_metadata_reads_back_or_is_refused_by_name() {
    let (mut written, mut refused, mut skipped) = (Vec::new(), 0, 0);
    for seed in 0..300 {
        let value = carried(seed);
        let Value::Map(mut config) = Value::from_json_str(LLAMA).unwrap() else {
            unreachable!()
        };
        config.insert(KEY.to_string(), value.clone());
        let text = Value::Map(config).to_json_pretty();
        if text.len() as u64 > MAX_CONFIG_BYTES || Value::from_json_str(&text).is_err() {
            // Beyond the reader's limits already as an input: not a case.
            skipped += 1;
            continue;
        }
        let input = scratch(&format!("{seed}-input"));
        std::fs::create_dir_all(&input).unwrap();
        std::fs::write(input.join("config.json"), &text).unwrap();
        let fast_llm = scratch(&format!("{seed}-fast_llm"));
        let stored = format!("metadata.hf_metadata.generic.{KEY}");
        match step(&input, llama(), &fast_llm, Side::FastLlm, "metadata.yaml", &stored) {
            Step::Refused => refused += 1,
            Step::Written(back) => {
                assert_eq!(back, value, "seed {seed}: metadata.yaml");
                written.push((fast_llm.join("metadata.yaml"), value.clone()));
                let hf = scratch(&format!("{seed}-hf"));
                match step(&fast_llm, Side::FastLlm, &hf, llama(), "config.json", KEY) {
                    Step::Refused => refused += 1,
                    Step::Written(back) => assert_eq!(back, value, "seed {seed}: config.json"),
                }
            }
        }
    }
    println!(
        "{} written, {refused} refused, {skipped} beyond the reader as inputs",
        written.len()
    );
    assert!(written.len() > 150 && refused > 10, "both outcomes are exercised");
    pyyaml_reads(&written);
}

/// Real PyYAML reads each written metadata.yaml to the carried value too (skipped when PyYAML
/// is unavailable outside CI).
fn pyyaml_reads(written: &[(PathBuf, Value)]) {
    // One line per file, the carried value only: the whole document can nest deeper than
    // serde_json reads.
    let script = format!(
        "import sys, json, yaml\nfor p in sys.argv[1:]:\n    d = yaml.safe_load(open(p, encoding='utf-8'))\n    \
         print(json.dumps(d['metadata']['hf_metadata']['generic']['{KEY}']))"
    );
    let run = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(written.iter().map(|(p, _)| p))
        .output();
    let Ok(out) = run else {
        assert!(std::env::var_os("CI").is_none(), "python3 is required in CI");
        return eprintln!("skipping: python3 not found");
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'yaml'") && std::env::var_os("CI").is_none() {
        return eprintln!("skipping: PyYAML not installed");
    }
    assert!(out.status.success(), "PyYAML failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), written.len());
    for ((path, value), line) in written.iter().zip(lines) {
        assert_eq!(
            Value::from_json_str(line).unwrap(),
            *value,
            "PyYAML reads {}",
            path.display()
        );
    }
}
