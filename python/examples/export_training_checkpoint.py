"""Export a Fast-LLM training checkpoint to HF in bf16 from Python, with a progress bar, then load
its config with transformers where it is installed.

    python python/examples/export_training_checkpoint.py [CHECKPOINT [OUTPUT]]

Defaults: the bundled training checkpoint (tensor 2 x pipeline 2 x data 2, 8 rank files) and
/tmp/py-trained-llama. The training checkpoint's float32 shards are written as bfloat16
(rounded to nearest even, as torch's `tensor.to(torch.bfloat16)` does); config.json says so.
"""

from __future__ import annotations

import sys
from typing import Callable, Union

import fastllm_convert as fc

checkpoint = sys.argv[1] if len(sys.argv) > 1 else "crates/checkpoint/tests/data/distributed/llama_tp2_pp2_dp2/checkpoint"
output = sys.argv[2] if len(sys.argv) > 2 else "/tmp/py-trained-llama"

progress: Union[bool, Callable[[int, int], None]]
try:
    import tqdm  # noqa: F401 - progress=True draws a tqdm bar
    progress = True
except ImportError:

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} bytes", end="", flush=True)


summary = fc.convert(checkpoint, output, to="llama", dtype="bf16", force=True, progress=progress)
print(f"\nwrote {summary.tensor_count} tensors ({summary.bytes} bytes) to {output}: {', '.join(summary.files)}")
print(f"not converted: shards {', '.join(summary.skipped_shards)}")

try:
    from transformers import AutoConfig
except ImportError:
    print("transformers is not installed: not loading the config")
else:
    config = AutoConfig.from_pretrained(output)
    print(type(config).__name__, config.hidden_size, config.num_hidden_layers)
