"""Fast-LLM's own conversions with an output `data_type` (bfloat16, float16), for `--dtype`.

Output: crates/checkpoint/tests/data/dtype_reference/<case>/<dtype>/, what Fast-LLM's `convert`
writes for each case below with `output.data_type` set (its HF modeling code dropped, as in
make_distributed_fixtures.py). Not run by CI: the files it writes are committed, and
tests/cli_dtype_reference.rs runs our CLI with `--dtype` on the same inputs and compares.

Fast-LLM casts while exporting (`MultiStageModel.get_state_tensor_iterator(..., data_type)`, a
`tensor.to(dtype)` of each float32 parameter before any HF conversion), so this pins torch's
rounding of every value of these checkpoints, through the same conversions we do.

Environment: the one of make_distributed_fixtures.py (its docstring):

    python3.12 -m venv /tmp/fastllm-venv
    /tmp/fastllm-venv/bin/pip install torch==2.9.1 "numpy>=2.1" "safetensors>=0.6.2" PyYAML \
        packaging requests transformers==5.24.0 einops
    # Fast-LLM at commit 7d61a1ba2047814955f8acc1cde7bc10a68fa198, unpacked to /tmp/fast-llm-src
    PYTHONPATH=/tmp/fast-llm-src /tmp/fastllm-venv/bin/python scripts/make_dtype_reference.py
"""

import pathlib
import shutil
import sys
import tempfile

import fast_llm.models.auto  # noqa: F401  (registers every model and checkpoint format)
from fast_llm.engine.checkpoint.convert import ConvertConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
DISTRIBUTED = ROOT / "crates/checkpoint/tests/data/distributed"
OUT = ROOT / "crates/checkpoint/tests/data/dtype_reference"
DTYPES = ("bfloat16", "float16")

# name: (input directory, input format, output format)
CASES = {
    "llama_world1_to_llama": (DISTRIBUTED / "llama_world1/checkpoint", "distributed", "llama"),
    "llama_tp2_pp2_dp2_to_llama": (DISTRIBUTED / "llama_tp2_pp2_dp2/checkpoint", "distributed", "llama"),
    "llama_world1_to_fast_llm": (DISTRIBUTED / "llama_world1/checkpoint", "distributed", "fast_llm"),
    "apriel2_hybrid_world1_to_apriel2_text": (
        DISTRIBUTED / "apriel2_hybrid_world1/checkpoint",
        "distributed",
        "apriel2_text",
    ),
    "llama_hf_to_fast_llm": (ROOT / "tests/fixtures/weights/llama/hf_input", "llama", "fast_llm"),
}


def convert(source: pathlib.Path, input_format: str, output: pathlib.Path, output_format: str, dtype: str) -> None:
    ConvertConfig.from_dict(
        {
            "input": {"path": str(source), "format": input_format},
            "output": {"path": str(output), "format": output_format, "data_type": dtype},
            "use_cpu": True,
            "model": "gpt",
        }
    ).run()


def make(name: str) -> None:
    source, input_format, output_format = CASES[name]
    for dtype in DTYPES:
        with tempfile.TemporaryDirectory() as tmp:
            work = pathlib.Path(tmp) / dtype
            convert(source, input_format, work, output_format, dtype)
            for code in work.glob("*.py"):
                code.unlink()
            target = OUT / name / dtype
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(work, target)
        print(f"{name}/{dtype}: {sum(f.stat().st_size for f in target.rglob('*') if f.is_file()):,} bytes")


def main() -> None:
    for name in sys.argv[1:] or list(CASES):
        make(name)


if __name__ == "__main__":
    main()
