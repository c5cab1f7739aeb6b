"""Shared paths of the Python package's tests (run by `cargo xtask ci`)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root() -> Path:
    """The repository root."""
    return ROOT


@pytest.fixture
def llama_hf() -> Path:
    """A tiny HF Llama checkpoint (config.json, generation_config.json, model.safetensors)."""
    return ROOT / "tests/fixtures/weights/llama/hf_input"
