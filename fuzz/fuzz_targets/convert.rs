//! The whole `convert` on a small mutated HF checkpoint: `[u16 n][n bytes: config.json][the rest:
//! model.safetensors]`. No input panics or aborts, the input is never modified, and a checkpoint
//! that converts to Fast-LLM converts back to the same tensors.
#![no_main]

use fastllm_convert::checkpoint::convert::{Conversion, Options, Side, convert, detect};
use fastllm_convert::checkpoint::open_hf;
use fastllm_convert_fuzz::{scratch, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (config, weights) = split(data);
    let root = scratch("convert");
    let input = root.join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("config.json"), config).unwrap();
    std::fs::write(input.join("model.safetensors"), weights).unwrap();
    let Ok(from) = detect(&input) else { return };
    let fast_llm = root.join("fast_llm");
    let converted = convert(
        &Conversion {
            input: &input,
            from,
            output: &fast_llm,
            to: Side::FastLlm,
        },
        &Options::default(),
    );
    assert_eq!(
        std::fs::read(input.join("config.json")).unwrap(),
        config,
        "input modified"
    );
    assert_eq!(
        std::fs::read(input.join("model.safetensors")).unwrap(),
        weights,
        "input modified"
    );
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    if converted.is_err() {
        assert_eq!(names(&root), ["input"], "a failed conversion left something behind");
        return;
    }
    let back = root.join("back");
    convert(
        &Conversion {
            input: &fast_llm,
            from: Side::FastLlm,
            output: &back,
            to: from,
        },
        &Options::default(),
    )
    .expect("a converted checkpoint converts back");
    let (original, round_trip) = (open_hf(&input).unwrap(), open_hf(&back).unwrap());
    let original_names: Vec<&str> = original.files.names().collect();
    assert_eq!(original_names, round_trip.files.names().collect::<Vec<_>>());
    for name in original_names {
        let (a, b) = (original.files.get(name).unwrap(), round_trip.files.get(name).unwrap());
        assert!(
            (a.dtype, a.shape, a.data) == (b.dtype, b.shape, b.data),
            "{name} changed"
        );
    }
});
