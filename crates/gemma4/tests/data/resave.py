"""Loads a config.json with transformers and writes what its `save_pretrained` writes.

Generates `gemma-4-31B-it.text-only.resaved.config.json`, the reference for
`tests/conditional.rs::transformers_loads_the_text_only_export`:

    cargo run -- config import --format auto --text-only \
        crates/gemma4/tests/data/gemma-4-31B-it.config.json > /tmp/fast-llm.json
    mkdir -p /tmp/export && cargo run -- config export --format gemma4_conditional \
        /tmp/fast-llm.json > /tmp/export/config.json
    python3 crates/gemma4/tests/data/resave.py /tmp/export \
        crates/gemma4/tests/data/gemma-4-31B-it.text-only.resaved.config.json

Needs `transformers` (5.23.0 wrote the committed file); torch is not needed for configs.
"""

import pathlib
import sys
import tempfile

from transformers import AutoConfig

source, target = sys.argv[1], pathlib.Path(sys.argv[2])
config = AutoConfig.from_pretrained(source)
with tempfile.TemporaryDirectory() as out:
    config.save_pretrained(out)
    target.write_text((pathlib.Path(out) / "config.json").read_text())
