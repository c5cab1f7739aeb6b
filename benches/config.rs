//! Config conversion speed, in process: `cargo bench --bench config`.
//!
//! Inputs are committed under `benches/data/`: each model's HF `config.json` and the Fast-LLM
//! base-model config it imports to (architecture form). Parsing the files is not measured: every
//! bench starts from the dict, as `Handler::import` / `Handler::export` do.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use fastllm_convert::config::{BaseModelConfig, Form, Map, Value, load_base_model};
use fastllm_convert::core::{self, Handler, HfLayout};

/// One benchmarked model: its format, HF dict, and the Fast-LLM dict and config it imports to.
struct Case {
    name: &'static str,
    handler: &'static Handler,
    hf: Map,
    fast_llm: Value,
    config: BaseModelConfig,
}

fn read(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Value::from_json_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn case(name: &'static str, format: &str) -> Case {
    let handler = core::find(format).unwrap();
    let hf = read(&format!("{name}.config.json")).as_map().unwrap().clone();
    let fast_llm = read(&format!("{name}.fast_llm.json"));
    let config = load_base_model(handler.model, &fast_llm).unwrap();
    // The committed pair must agree, or the benches would time a rejection.
    let imported = handler.import(&hf).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(imported, config, "{name}: config.json does not import to fast_llm.json");
    Case {
        name,
        handler,
        hf,
        fast_llm,
        config,
    }
}

fn config(c: &mut Criterion) {
    let llama = case("llama-3.1-8b", "llama");
    let apriel2 = case("apriel2-pattern", "apriel2_text");
    let mut group = c.benchmark_group("config");
    for case in [&llama, &apriel2] {
        group.bench_function(format!("import/{}", case.name), |b| {
            b.iter(|| case.handler.import(black_box(&case.hf)).unwrap())
        });
        group.bench_function(format!("export/{}", case.name), |b| {
            b.iter(|| case.handler.export(black_box(&case.config), HfLayout::V4).unwrap())
        });
    }
    group.bench_function(format!("normalize/{}", llama.name), |b| {
        b.iter(|| {
            load_base_model(llama.handler.model, black_box(&llama.fast_llm))
                .unwrap()
                .to_form(Form::Architecture)
        })
    });
    group.bench_function(format!("coverage/{}", llama.name), |b| {
        b.iter(|| {
            let problems = llama.handler.check_hf(black_box(&llama.hf));
            assert!(problems.is_empty());
            problems
        })
    });
    group.finish();
}

criterion_group!(benches, config);
criterion_main!(benches);
