//! Reading a Fast-LLM distributed training checkpoint and converting it to the Fast-LLM state-dict
//! format: `[u16 n][n bytes: metadata.yaml][u32 m][m bytes: rank_0.safetensors][the rest:
//! rank_1.safetensors, absent when empty]`. No input panics or aborts, the input is never modified,
//! a refusal names `metadata.yaml` or the rank file at fault and leaves nothing behind, and a
//! checkpoint that converts holds exactly the tensors the reader reassembles. Such a checkpoint is
//! then re-sharded (`--to fast_llm_distributed`, a layout of tensor, pipeline and data sizes 1 or
//! 2 chosen by the last byte): a refusal names `--layout` and leaves nothing, and what is written
//! opens and reads back every parameter the same.
#![no_main]

use fastllm_convert::checkpoint::convert::{Conversion, Options, Side, convert};
use fastllm_convert::checkpoint::distributed::{DistributedCheckpoint, LayoutSpec};
use fastllm_convert::checkpoint::open_fast_llm;
use fastllm_convert_fuzz::{scratch, split3};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (metadata, rank_0, rank_1) = split3(data);
    let root = scratch("distributed");
    let input = root.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut files = vec![("metadata.yaml", metadata), ("rank_0.safetensors", rank_0)];
    if !rank_1.is_empty() {
        files.push(("rank_1.safetensors", rank_1));
    }
    for (name, bytes) in &files {
        std::fs::write(input.join(name), bytes).unwrap();
    }
    let output = root.join("fast_llm");
    let converted = convert(
        &Conversion {
            input: &input,
            from: Side::FastLlmDistributed,
            output: &output,
            to: Side::FastLlm,
        },
        &Options::default(),
    );
    for (name, bytes) in &files {
        assert!(
            std::fs::read(input.join(name)).unwrap() == *bytes,
            "input {name} modified"
        );
    }
    if let Err(error) = converted {
        let error = error.to_string();
        assert!(
            error.contains("metadata.yaml") || error.contains("rank_"),
            "a refusal that names no file: {error}"
        );
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["input"], "a failed conversion left something behind");
        return;
    }
    let checkpoint = DistributedCheckpoint::open(&input).expect("a converted checkpoint opens");
    let written = open_fast_llm(&output).expect("a converted checkpoint reads back");
    let mut buffer = Vec::new();
    let mut count = 0;
    for placed in checkpoint.parameters() {
        let parameter = placed.parameter.name.as_str();
        let name = format!("{parameter}/weights");
        count += 1;
        let tensor = written
            .files
            .get(&name)
            .unwrap_or_else(|e| panic!("{name} not written: {e}"));
        buffer.resize(checkpoint.parameter_bytes(parameter).expect("a stored parameter"), 0);
        checkpoint
            .read_into(parameter, "weights", &mut buffer)
            .expect("a stored parameter reads");
        assert!(tensor.data == &buffer[..], "{name} differs from the reader's");
        assert_eq!(tensor.dtype, checkpoint.dtype(), "{name}");
    }
    assert_eq!(
        written.files.len(),
        count,
        "tensors written beside the stored parameters"
    );

    let choice = data.last().copied().unwrap_or(0);
    let layout = LayoutSpec {
        tensor_parallel: 1 + (choice & 1) as usize,
        pipeline_parallel: 1 + ((choice >> 1) & 1) as usize,
        data_parallel: 1 + ((choice >> 2) & 1) as usize,
        zero_stage: Some((choice >> 3) & 3).filter(|zero| *zero > 0),
        ..LayoutSpec::default()
    };
    let resharded = root.join("resharded");
    let options = Options {
        parallel: Some(layout),
        ..Options::default()
    };
    match convert(
        &Conversion {
            input: &input,
            from: Side::FastLlmDistributed,
            output: &resharded,
            to: Side::FastLlmDistributed,
        },
        &options,
    ) {
        Err(error) => {
            let error = error.to_string();
            assert!(
                error.contains("--layout"),
                "a layout refusal that names no layout: {error}"
            );
            assert!(!resharded.exists(), "a failed re-shard left its output");
        }
        Ok(_) => {
            let again = DistributedCheckpoint::open(&resharded).expect("a re-sharded checkpoint opens");
            for placed in checkpoint.parameters() {
                let parameter = placed.parameter.name.as_str();
                assert!(
                    again.read(parameter, "weights").expect("a re-sharded parameter reads")
                        == checkpoint.read(parameter, "weights").expect("a stored parameter reads"),
                    "{parameter} differs after re-sharding"
                );
            }
            assert_eq!(again.parameters().count(), count, "re-sharded parameters");
        }
    }
});
