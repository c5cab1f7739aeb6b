//! Distributed outputs that Fast-LLM itself verified. `scripts/verify_distributed_outputs.py` ran
//! `convert --from auto --to fast_llm_distributed --layout L [--optimizer-state]` on each case
//! below, loaded the output with Fast-LLM's safe loader into a world-size-1 training model
//! (weights, and optimizer state from a training checkpoint, equal to the source's bit for bit)
//! and recorded the sha256 of every file written in
//! `crates/checkpoint/tests/data/distributed_outputs/record.json`. Each case is converted again
//! here and must give exactly those files: a change to what the writer produces needs the script
//! run again, to learn whether Fast-LLM still loads it.

mod support;

use std::path::Path;

use fastllm_convert::config::{Map, Value};
use rstest::rstest;
use support::{cli, repo, scratch};

/// The record of `case`.
fn record_of(case: &str) -> Map {
    let path = repo("crates/checkpoint/tests/data/distributed_outputs/record.json");
    let Ok(Value::Map(record)) = Value::from_json_str(&std::fs::read_to_string(path).unwrap()) else {
        panic!("record.json is not a JSON object")
    };
    let Some(Value::List(cases)) = record.get("cases") else {
        panic!("record.json has no cases")
    };
    cases
        .iter()
        .find_map(|entry| match entry {
            Value::Map(map) if map.get("case") == Some(&Value::Str(case.into())) => Some(map.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{case}: not in record.json"))
}

fn text<'a>(map: &'a Map, key: &str) -> &'a str {
    match map.get(key) {
        Some(Value::Str(text)) => text,
        other => panic!("`{key}`: {other:?}"),
    }
}

fn sha256_hex(path: &Path) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &std::fs::read(path).unwrap());
    digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

#[rstest]
#[case::llama_tp2("llama_world1_tp2")]
#[case::llama_pp2("llama_world1_pp2")]
#[case::llama_dp2_zero3("llama_world1_dp2_zero3")]
#[case::llama_dp2_zero2("llama_world1_dp2_zero2")]
#[case::llama_dp4_sdp2_zero3("llama_world1_dp4_sdp2_zero3")]
#[case::llama_tp2_pp2_dp2("llama_world1_tp2_pp2_dp2")]
#[case::hybrid_tp2("apriel2_hybrid_world1_tp2")]
#[case::hybrid_pp2("apriel2_hybrid_world1_pp2")]
#[case::hybrid_dp2_zero3("apriel2_hybrid_world1_dp2_zero3")]
#[case::hybrid_tp2_pp2_dp2("apriel2_hybrid_world1_tp2_pp2_dp2")]
#[case::llama_frozen_resharded("llama_tp2_pp2_dp2_to_dp2_zero3")]
#[case::hybrid_tied_resharded("apriel2_hybrid_tp2_pp2_dp2_to_tp2")]
#[case::llama_from_hf("llama_hf_to_tp2_pp2_dp2")]
#[case::llama_from_fast_llm("llama_fast_llm_to_pp2")]
#[case::hybrid_from_hf("apriel2_hybrid_hf_to_tp2_pp2_dp2")]
#[case::hybrid_from_fast_llm("apriel2_hybrid_fast_llm_to_dp2_zero3")]
fn writes_the_files_fast_llm_verified(#[case] case: &str) {
    let record = record_of(case);
    assert_eq!(
        record.get("passed"),
        Some(&Value::Bool(true)),
        "{case}: Fast-LLM's verdict"
    );
    assert_eq!(record.get("writer"), Some(&Value::Str("ours".into())), "{case}");
    let source = repo(text(&record, "source"));
    let output = scratch("cli_distributed_verified", case).join("checkpoint");
    let mut args = vec![
        "convert",
        "--from",
        "auto",
        "--to",
        "fast_llm_distributed",
        "--layout",
        text(&record, "layout"),
    ];
    match record.get("optimizer_state") {
        Some(Value::Bool(true)) => args.push("--optimizer-state"),
        Some(Value::Bool(false)) => {}
        other => panic!("{case}: optimizer_state: {other:?}"),
    }
    args.extend([source.to_str().unwrap(), output.to_str().unwrap()]);
    let out = cli(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let Some(Value::Map(recorded)) = record.get("sha256") else {
        panic!("{case}: no sha256")
    };
    let mut written: Vec<String> = std::fs::read_dir(&output)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    assert_eq!(
        written.iter().collect::<Vec<_>>(),
        recorded.keys().collect::<Vec<_>>(),
        "{case}: files written"
    );
    for (name, hash) in recorded {
        assert_eq!(
            &Value::Str(sha256_hex(&output.join(name))),
            hash,
            "{case}: {name} is not the file Fast-LLM verified; run scripts/verify_distributed_outputs.py"
        );
    }
}
