"""Every Python example of the README runs (its ```python blocks, with /tmp/ a fresh directory),
and so does python/examples/export_training_checkpoint.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_example(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(block.replace("/tmp/", f"{tmp_path}/"), "README.md", "exec"), {"__name__": "__readme__"})


def test_the_example_script(tmp_path: Path) -> None:
    script = ROOT / "python/examples/export_training_checkpoint.py"
    run = subprocess.run(
        [sys.executable, str(script), "crates/checkpoint/tests/data/distributed/llama_tp2_pp2_dp2/checkpoint", str(tmp_path / "hf")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert run.returncode == 0, run.stderr
    assert "wrote 21 tensors" in run.stdout
    config = json.loads((tmp_path / "hf/config.json").read_text())
    assert config.get("torch_dtype", config.get("dtype")) == "bfloat16", config
