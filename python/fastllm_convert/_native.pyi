"""Type stubs of the Rust extension (crates/python). Use the functions of ``fastllm_convert``."""

from typing import List, Optional

class NativeFailure(ValueError):
    """A rejection: ``args`` are (message, problems as a JSON list)."""

def convert(
    input: str,
    output: str,
    from_: str,
    to: str,
    hf_layout: str,
    dtype: Optional[str],
    allow_overflow: bool,
    force: bool,
    dry_run: bool,
    config_only: bool,
    text_only: bool,
    drop_keys: List[str],
    max_shard_size: int,
    shard: Optional[str],
    layout: Optional[str],
    optimizer_state: bool,
    progress: Optional[object],
) -> str:
    """Convert a checkpoint; the summary as JSON."""

def import_config(hf: Optional[str], path: Optional[str], format: str, drop_keys: List[str], text_only: bool) -> str:
    """Import an HF config (JSON text or a file); the Fast-LLM config as JSON."""

def export_config(fast_llm: Optional[str], path: Optional[str], format: str, hf_layout: str, complete: bool) -> str:
    """Export a Fast-LLM config (JSON text or a file); the HF config as JSON."""

def normalize(fast_llm: Optional[str], path: Optional[str], form: str, model: str) -> str:
    """Resolve a Fast-LLM config (JSON text or a file); JSON."""

def inspect(path: str) -> str:
    """Describe a checkpoint; JSON."""

def formats() -> str:
    """The registered formats; JSON."""

def explain(format: str) -> str:
    """A format's mapping table; JSON."""

def families() -> List[str]:
    """The format families linked into this build."""

def run_cli(argv: List[str]) -> int:
    """Run the command line; its exit status."""
