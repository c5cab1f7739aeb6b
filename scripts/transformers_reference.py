#!/usr/bin/env python3
"""Writes what transformers' `save_pretrained` makes of the conformance suite's configs.

For every accepted case of `tests/conformance` and every rope layout, the reference export dict
(`expected/<case>.json`'s `hf[layout]`) is loaded into the format's transformers config class
with `from_dict` and saved with `save_pretrained`, as the reference implementation does when it
writes a checkpoint: the result is the complete `config.json` a conversion must write.

Layout `v4` is written by transformers 4.57.x, `v5` by 5.24.x: run the script once per version,
in separate environments (config classes need no torch):

    python -m venv /tmp/tf4 && /tmp/tf4/bin/pip install 'transformers==4.57.*'
    python -m venv /tmp/tf5 && /tmp/tf5/bin/pip install 'transformers==5.24.*'
    /tmp/tf4/bin/python scripts/transformers_reference.py --fast-llm FAST_LLM_CHECKOUT v4
    /tmp/tf5/bin/python scripts/transformers_reference.py --fast-llm FAST_LLM_CHECKOUT v5

Classes with custom code (Apriel, MTP-Llama, Dream, diffusion Llama, Llava-hybrid) are loaded
from `fast_llm_external_models/` of a Fast-LLM checkout (commit 7d61a1ba). A class the installed
transformers lacks (Gemma 4 in 4.x) is skipped and listed. Not run by CI: the outputs are
committed under `tests/data/transformers/<layout>/` and checked by `tests/complete_config.rs`.

A format the conformance suite has no cases for (`gemma4_conditional`) is referenced from its own
crate's test configs instead ([`OWN_CASES`]): a released `config.json` with what `--text-only`
drops removed is loaded and saved, and the reference records that input, so the test converts the
same dict (carried metadata included) and checks it drops exactly those keys.

Where a class rewrites or defaults a nested value on save rather than completing it, cases
beyond the conformance suite's pin it ([`REWRITE_CASES`]): a conformance case's reference export
in the layout, with changes, is the input; the reference records it, and the test imports and
exports it. They cover transformers 5.24's `Gemma4TextConfig` folding `global_head_dim` /
`num_global_key_value_heads` into `per_layer_config` (overrides equal to the global value left
out, layer keys zero-padded), `PixtralVisionConfig` writing its `default_rope_type` `axial`
for a `default` rope type, in both layouts, and 5.24's `LlavaConfig` taking a tied text model's
`tie_word_embeddings`.
"""

import argparse
import importlib.util
import json
import pathlib
import sys
import tempfile
import warnings

import transformers

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAYOUT_VERSIONS = {"v4": "4.", "v5": "5."}

# format -> (transformers class name, or (file under fast_llm_external_models, class name))
CLASSES = {
    "llama": "LlamaConfig",
    "mistral": "MistralConfig",
    "qwen2": "Qwen2Config",
    "mixtral": "MixtralConfig",
    "gemma4": "Gemma4TextConfig",
    "gemma4_conditional": "Gemma4Config",
    "llava": "LlavaConfig",
    "mtp_llama": ("mtp_llama/configuration_mtp_llama.py", "MTPLlamaConfig"),
    "dream": ("diffusion_dream/configuration_dream.py", "DreamConfig"),
    "diffusion_llama": ("diffusion_llama/configuration_diffusion_llama.py", "DiffusionLlamaConfig"),
    "apriel_hybrid_ssm": ("apriel_hybrid_ssm/configuration_apriel_hybrid_ssm.py", "AprielHybridSSMConfig"),
    "apriel2_text": ("apriel2/configuration_apriel2.py", "Apriel2TextConfig"),
    "apriel2": ("apriel2/configuration_apriel2.py", "Apriel2Config"),
    "llava_hybrid_ssm": ("llava_hybrid/configuration_llava_hybrid.py", "LlavaHybridConfig"),
}

# Formats without conformance cases: format -> [(case name, config.json under ROOT, the root keys
# `--text-only` drops from it: the ones holding a part the format does not convert)].
OWN_CASES = {
    "gemma4_conditional": [
        (
            "gemma-4-31B-it",
            "crates/gemma4/tests/data/gemma-4-31B-it.config.json",
            ["vision_config", "vision_soft_tokens_per_image", "eoa_token_id"],
        ),
        (
            "gemma-4-26B-A4B-it",
            "crates/gemma4/tests/data/gemma-4-26B-A4B-it.config.json",
            ["vision_config", "vision_soft_tokens_per_image", "eoa_token_id"],
        ),
    ],
}


S, F = "sliding_attention", "full_attention"

# (format, case, conformance case whose reference export is the base, {layout: changes}): the
# input is the base's `hf[layout]` with each change applied (a dotted key set to the value, or
# removed for `REMOVE`); a layout without changes is not written.
REMOVE = object()
REWRITE_CASES = [
    (
        "gemma4",
        "global_head_dim_differs",
        "gemma4__dense_small_like",
        {"v5": {"num_hidden_layers": 2, "layer_types": [S, F], "global_head_dim": 8}},
    ),
    (
        "gemma4",
        "global_head_dim_same",
        "gemma4__dense_small_like",
        {"v5": {"global_head_dim": 256}},
    ),
    (
        "gemma4",
        "global_kv_heads_k_eq_v",
        "gemma4__dense_small_like",
        {"v5": {"global_head_dim": 128, "attention_k_eq_v": True, "num_global_key_value_heads": 2}},
    ),
    (
        "gemma4",
        "global_head_dim_ten_layers",
        "gemma4__dense_small_like",
        {"v5": {"num_hidden_layers": 11, "layer_types": [S] * 5 + [F] + [S] * 4 + [F], "global_head_dim": 64}},
    ),
    (
        "llava",
        "pixtral_vision_rope",
        "llava__fixture_llava",
        {
            "v4": {"vision_config.rope_theta": 5000.0},
            "v5": {"vision_config.rope_parameters": {"rope_theta": 5000.0, "rope_type": "default"}},
        },
    ),
    (
        "llava",
        "pixtral_vision_rope_axial",
        "llava__fixture_llava",
        {
            "v4": {"vision_config.rope_theta": 20000.0},
            "v5": {"vision_config.rope_parameters": {"rope_theta": 20000.0, "rope_type": "axial"}},
        },
    ),
    (
        "llava",
        "tied_text_model",
        "llava__fixture_llava",
        {"v4": {"text_config.tie_word_embeddings": True}, "v5": {"text_config.tie_word_embeddings": True}},
    ),
    (
        "llava",
        "pixtral_vision_rope_no_type",
        "llava__fixture_llava",
        {"v5": {"vision_config.rope_parameters": {"rope_theta": 10000.0}}},
    ),
]


def changed(config, changes):
    config = json.loads(json.dumps(config))
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        if value is REMOVE:
            node.pop(last, None)
        else:
            node[last] = value
    return config


def config_class(fmt, fast_llm):
    spec = CLASSES[fmt]
    if isinstance(spec, str):
        return getattr(transformers, spec, None)
    path, name = spec
    file = fast_llm / "fast_llm_external_models" / path
    module_spec = importlib.util.spec_from_file_location(f"external_{fmt}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    cls = getattr(module, name)
    if fmt == "apriel_hybrid_ssm":
        # Llava-hybrid checkpoints nest this class under `text_config`, found through AutoConfig.
        transformers.AutoConfig.register(cls.model_type, cls, exist_ok=True)
    return cls


def saved(cls, config):
    """What `save_pretrained` writes, and the message of its validation error if it refuses.

    A config transformers loads but refuses to save (its `validate()`, run only by
    `save_pretrained` in 5.x, rejects it) is serialized as `save_pretrained` would have written
    it, `to_json_string(use_diff=True)`, with the error kept beside it.
    """
    loaded = cls.from_dict(config)
    with tempfile.TemporaryDirectory() as directory:
        try:
            loaded.save_pretrained(directory)
        except Exception as error:
            if not type(error).__name__.endswith("ValidationError"):
                raise
            return json.loads(loaded.to_json_string(use_diff=True)), str(error).splitlines()[-1].strip()
        return json.loads((pathlib.Path(directory) / "config.json").read_text()), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-llm", type=pathlib.Path, required=True, help="a Fast-LLM checkout")
    parser.add_argument("layout", choices=sorted(LAYOUT_VERSIONS))
    args = parser.parse_args()
    if not transformers.__version__.startswith(LAYOUT_VERSIONS[args.layout]):
        sys.exit(f"layout {args.layout} is written by transformers {LAYOUT_VERSIONS[args.layout]}x, "
                 f"not {transformers.__version__}")
    warnings.simplefilter("ignore")
    transformers.logging.set_verbosity_error()
    conformance = ROOT / "tests" / "conformance"
    out = ROOT / "tests" / "data" / "transformers" / args.layout
    out.mkdir(parents=True, exist_ok=True)
    # Llava-hybrid's text model is looked up by `model_type`: register it first.
    classes = {"apriel_hybrid_ssm": config_class("apriel_hybrid_ssm", args.fast_llm)}
    skipped, failed = set(), []
    written = 0
    for path in sorted((conformance / "expected").glob("*.json")):
        expected = json.loads(path.read_text())
        if expected["expect"] != "accept":
            continue
        fmt = expected.get("export_format") or expected["format"]
        if fmt not in classes:
            classes[fmt] = config_class(fmt, args.fast_llm)
        cls = classes[fmt]
        if cls is None:
            skipped.add(fmt)
            continue
        name = path.stem
        result = {"transformers_version": transformers.__version__, "format": fmt}
        exported = expected["hf"][args.layout]
        if fmt == "llava_hybrid_ssm" and "model_type" not in exported.get("text_config", {}):
            # The reference's export names no text model type, which LlavaHybridConfig reads as
            # Llama; a complete config names the hybrid model the format holds.
            exported = {**exported, "text_config": {**exported["text_config"], "model_type": "apriel_hybrid_ssm"}}
        try:
            result["config"], refused = saved(cls, exported)
            if refused:
                result["save_pretrained_refused"] = refused
        except Exception as error:  # transformers rejects it: recorded, and no reference
            failed.append(f"{name}: {type(error).__name__}: {str(error).splitlines()[0]}")
            result["config"] = None
        (out / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        written += 1
    for fmt, cases in OWN_CASES.items():
        cls = classes.setdefault(fmt, config_class(fmt, args.fast_llm))
        if cls is None:
            skipped.add(fmt)
            continue
        for case, source, text_only in cases:
            config = json.loads((ROOT / source).read_text())
            loaded = {key: value for key, value in config.items() if key not in text_only}
            result = {
                "transformers_version": transformers.__version__,
                "format": fmt,
                "source": source,
                "text_only": text_only,
                "input": loaded,
            }
            result["config"], refused = saved(cls, loaded)
            if refused:
                result["save_pretrained_refused"] = refused
            (out / f"{fmt}__{case}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
            written += 1
    for fmt, case, base, changes in REWRITE_CASES:
        cls = classes.setdefault(fmt, config_class(fmt, args.fast_llm))
        if cls is None:
            skipped.add(fmt)
            continue
        if args.layout not in changes:
            continue
        expected = json.loads((conformance / "expected" / f"{base}.json").read_text())
        loaded = changed(expected["hf"][args.layout], changes[args.layout])
        result = {
            "transformers_version": transformers.__version__,
            "format": fmt,
            "base": base,
            # `from_dict` may change the dict it is given (PixtralVisionConfig's rope type).
            "input": json.loads(json.dumps(loaded)),
        }
        result["config"], refused = saved(cls, loaded)
        if refused:
            result["save_pretrained_refused"] = refused
        (out / f"{fmt}__{case}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        written += 1
    print(f"transformers {transformers.__version__}: {written} cases written to {out.relative_to(ROOT)}")
    for failure in failed:
        print(f"transformers cannot load {failure}")
    if skipped:
        print(f"skipped (no such class in this version): {', '.join(sorted(skipped))}")


if __name__ == "__main__":
    main()
