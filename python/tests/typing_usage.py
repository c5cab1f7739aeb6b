"""A small program using the package, checked by `mypy --strict` (test_stubs_pass_mypy_strict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import fastllm_convert as fc


def convert(source: Path, target: Path) -> int:
    seen: List[int] = []
    summary: fc.Summary = fc.convert(source, target, to="llama", progress=lambda done, total: seen.append(done))
    names: List[str] = [t.name for t in summary.tensors]
    return summary.bytes + len(names) + len(seen)


def configs(path: Path) -> Dict[str, Any]:
    try:
        fast_llm = fc.import_config(path, drop_keys=["max_sequence_length"])
    except fc.ConversionError as error:
        for problem in error.problems:
            print(problem.hf_key, problem.message)
        raise
    return fc.export_config(fast_llm, format="mistral", hf_layout="v5")


formats: List[str] = [f["name"] for f in fc.formats()]
rows = fc.explain("llama")
described = fc.inspect("samples/llama-tiny")
normalized = fc.normalize({"hidden_size": 8}, form="explicit")
