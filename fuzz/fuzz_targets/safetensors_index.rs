//! The safetensors header and index reader: `[u16 n][n bytes: model.safetensors.index.json, or
//! none when n = 0][the rest: the shard]`. No input panics or aborts; an opened checkpoint's
//! every tensor has exactly the bytes its shape and dtype need.
#![no_main]

use fastllm_convert::checkpoint::{dtype_size, open_hf};
use fastllm_convert_fuzz::{scratch, split};
use libfuzzer_sys::fuzz_target;

/// The shard name seeds' indexes use.
const SHARD: &str = "model-00001-of-00001.safetensors";

fuzz_target!(|data: &[u8]| {
    let (index, shard) = split(data);
    let dir = scratch("safetensors_index");
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    if index.is_empty() {
        std::fs::write(dir.join("model.safetensors"), shard).unwrap();
    } else {
        std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
        std::fs::write(dir.join(SHARD), shard).unwrap();
    }
    let Ok(checkpoint) = open_hf(&dir) else { return };
    for name in checkpoint.files.names() {
        let tensor = checkpoint.files.get(name).expect("a listed tensor");
        let elements: u64 = tensor.shape.iter().map(|&d| d as u64).product();
        let size = dtype_size(tensor.dtype).expect("dtypes are checked") as u64;
        assert_eq!(tensor.data.len() as u64, elements * size, "{name}");
    }
});
