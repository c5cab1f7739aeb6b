"""Write tiny Fast-LLM distributed checkpoints, and the reference's own conversions of them.

Output: crates/checkpoint/tests/data/distributed/<fixture>/ (see the README there). Not run by CI:
the files it writes are committed.

Each fixture is a training checkpoint (weights plus Adam's two optimizer shards) of a tiny model
under one parallel layout, written the way Fast-LLM's `DistributedCheckpointHandler.save` writes
it from each rank, and converted back by Fast-LLM itself:

    <fixture>/checkpoint/   metadata.yaml, rank_<i>.safetensors     the distributed checkpoint
    <fixture>/hf/           Fast-LLM's `convert` of it to the model's HF format (without the
                            modeling code it copies)
    <fixture>/fast_llm/     Fast-LLM's `convert` of it to its state-dict format (`fast_llm`)
    <fixture>/optimizer_state.safetensors
                            every trained parameter's `exp_avgs` and `exp_avgs_sq`, exported by
                            Fast-LLM's FSDPs from a world-size-1 model its loader read them into
    <fixture>/layout.json   Fast-LLM's own placement of every parameter, per rank

How the rank files are computed in one process (no GPU, no multi-process training): a
world-size-1 model is set up on CPU and its shards filled with seeded random values (padding
zeroed, as Fast-LLM keeps it). Then, for each rank, the model is instantiated for that rank's
distributed config without being set up (what Fast-LLM's safe loader does per rank file), and
each of its FSDPs copies its slice out of the world-size-1 FSDPs with Fast-LLM's own
`FSDP.copy_shard_overlaps`, the routine a rank runs when it loads a checkpoint written with
another layout. The rank's shards are then saved by `DistributedCheckpointHandler.save`.

Check before anything is kept: Fast-LLM's safe loader (NaN fill, per-parameter counters) loads
every fixture back into a world-size-1 training model, weights and optimizer state, and its shards
must equal the source's bit for bit.

Environment (not committed; what was used):

    python3.12 -m venv /tmp/fastllm-venv
    /tmp/fastllm-venv/bin/pip install torch==2.9.1 "numpy>=2.1" "safetensors>=0.6.2" PyYAML \
        packaging requests transformers==5.24.0 einops
    # Fast-LLM itself from its repository at commit 7d61a1ba2047814955f8acc1cde7bc10a68fa198,
    # unpacked (e.g. `git archive 7d61a1ba | tar -x -C /tmp/fast-llm-src`) and put on the path;
    # its C++ data helpers are not needed.
    PYTHONPATH=/tmp/fast-llm-src /tmp/fastllm-venv/bin/python scripts/make_distributed_fixtures.py

Everything runs on CPU (torch's CUDA libraries are installed but unused).
"""

import copy
import json
import pathlib
import shutil
import sys
import tempfile

import safetensors.torch
import torch

import fast_llm.models.auto  # noqa: F401  (registers every mixer, model and checkpoint format)
from fast_llm.engine.checkpoint.config import (
    CheckpointLoadConfig,
    CheckpointSaveConfig,
    DistributedCheckpointFormat,
    FastLLMCheckpointFormat,
    ModelConfigType,
)
from fast_llm.engine.checkpoint.convert import ConvertConfig
from fast_llm.engine.checkpoint.distributed import DistributedCheckpointHandler
from fast_llm.engine.distributed.distributed import Distributed
from fast_llm.engine.multi_stage.config import ShardName, StageMode
from fast_llm.models.gpt.config import GPTModelConfig

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/checkpoint/tests/data/distributed"
OPTIMIZER_SHARDS = ("exp_avgs", "exp_avgs_sq")
SHARDS = (ShardName.weights, *OPTIMIZER_SHARDS)
# What Fast-LLM's trainer stores beside the shards (`Trainer._save_checkpoint`).
TRAINING_METADATA = {
    "optimizer": {"current_step": 1000, "grad_scaler": {"type": "NoopGradScaler"}},
    "completed_steps": 1000,
    "documents_seen": 64000,
}

NORM = {"type": "rms_norm", "epsilon": 1e-5}
ATTENTION = {
    "type": "attention",
    "heads": 4,
    "head_groups": 2,
    "head_size": 4,
    "add_linear_biases": False,
    "rotary": {"type": "default", "theta": 10000.0},
}
GATED_MLP = {"type": "mlp", "intermediate_size": 32, "gated": True, "activation": "silu", "add_linear_biases": False}


def tiny_model(decoder: dict) -> dict:
    """The base-model config every fixture's model shares, around `decoder`."""
    return {
        "hidden_size": 16,
        "tied_embedding_weight": False,
        "embeddings": {"vocab_size": 32},
        "decoder": decoder,
        "head": {"normalization": NORM},
    }


LLAMA = tiny_model(
    {
        "type": "fixed",
        "num_blocks": 2,
        "block": {"mixer": ATTENTION, "mlp": GATED_MLP, "normalization": NORM},
    }
)

# apriel2_text with a pattern of attention, Mamba and gated-delta-net blocks.
HYBRID = tiny_model(
    {
        "type": "pattern",
        "num_blocks": 3,
        "pattern": ["attention", "mamba", "gdn"],
        "blocks": {
            "attention": {"mixer": ATTENTION, "mlp": GATED_MLP, "normalization": NORM},
            "mamba": {
                "mixer": {
                    "type": "mamba",
                    "d_inner": 32,
                    "d_xb": 16,
                    "state_size": 4,
                    "dt_rank": 4,
                    "repeat_kv_before_conv": True,
                    "add_linear_biases": False,
                    "convolution_layer": {"kernel_size": 4, "bias": {"enabled": True}},
                    "dt_layer": {"bias": {"enabled": True}},
                },
                "mlp": GATED_MLP,
                "normalization": NORM,
            },
            "gdn": {
                "mixer": {
                    "type": "gdn",
                    "value_heads": 4,
                    "key_heads": 2,
                    "key_head_dim": 4,
                    "value_head_dim": 4,
                    "convolution_layer": {"kernel_size": 4},
                },
                "mlp": GATED_MLP,
                "normalization": NORM,
            },
        },
    }
)


def with_changes(base: dict, changes: dict) -> dict:
    """`base` with `changes` merged in (nested dicts merged, other values replaced)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = with_changes(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


MIXTRAL = with_changes(
    LLAMA,
    {
        "decoder": {
            "block": {
                "mlp": {
                    "type": "moe",
                    "experts": 4,
                    "experts_per_token": 2,
                    "intermediate_size": 16,
                    "gated": True,
                    "activation": "silu",
                    "add_linear_biases": False,
                }
            }
        }
    },
)

# Multi-token prediction: an extra block and head, whose output weights are tied to the head's.
MTP_LLAMA = with_changes(LLAMA, {"head": {"prediction_heads": 2}})

# Frozen parameters (lr_scale 0) and a weight-decay override change how a stage's parameters are
# grouped and ordered; one layout exercises both.
LLAMA_TRAINING_KNOBS = with_changes(
    LLAMA,
    {
        "decoder": {
            "block": {
                "mlp": {"layer_2": {"lr_scale": 0.0}},
                "mixer": {"query_layer": {"weight": {"weight_decay": False}}},
            }
        }
    },
)

# name: (HF format or None, base-model config, distributed config, multi-stage config)
FIXTURES = {
    "llama_world1": ("llama", LLAMA, {"world_size": 1}, {}),
    "llama_tp2": ("llama", LLAMA, {"world_size": 2, "tensor_parallel": 2}, {}),
    "llama_pp2": ("llama", LLAMA, {"world_size": 2, "pipeline_parallel": 2}, {}),
    "llama_dp2_zero2": ("llama", LLAMA, {"world_size": 2}, {"zero_stage": 2}),
    "llama_dp2_zero3": ("llama", LLAMA, {"world_size": 2}, {"zero_stage": 3}),
    "llama_tied_pp2": ("llama", with_changes(LLAMA, {"tied_embedding_weight": True}), {"world_size": 2, "pipeline_parallel": 2}, {}),
    "llama_tp2_pp2_dp2": (
        "llama",
        LLAMA_TRAINING_KNOBS,
        {"world_size": 8, "tensor_parallel": 2, "pipeline_parallel": 2, "pipeline_first": True},
        {"zero_stage": 3, "layers_per_stage": 2},
    ),
    "mixtral_tp2_dp2": ("mixtral", MIXTRAL, {"world_size": 4, "tensor_parallel": 2}, {"zero_stage": 3}),
    # No HF export: Fast-LLM's mtp_llama export imports `transformers.modeling_attn_mask_utils`,
    # which transformers 5 removed.
    "mtp_llama_tp2_pp2": (None, MTP_LLAMA, {"world_size": 4, "tensor_parallel": 2, "pipeline_parallel": 2}, {}),
    "apriel2_hybrid_world1": ("apriel2_text", HYBRID, {"world_size": 1}, {}),
    "apriel2_hybrid_tp2": ("apriel2_text", HYBRID, {"world_size": 2, "tensor_parallel": 2}, {}),
    "apriel2_hybrid_pp2": ("apriel2_text", HYBRID, {"world_size": 2, "pipeline_parallel": 2}, {}),
    "apriel2_hybrid_dp2_zero3": ("apriel2_text", HYBRID, {"world_size": 2}, {"zero_stage": 3}),
    "apriel2_hybrid_tp2_pp2_dp2": (
        "apriel2_text",
        with_changes(HYBRID, {"tied_embedding_weight": True}),
        {"world_size": 8, "tensor_parallel": 2, "pipeline_parallel": 2},
        {"zero_stage": 2},
    ),
}


def model_config(base_model: dict, distributed: dict, multi_stage: dict, rank: int, **extra) -> GPTModelConfig:
    world = distributed["world_size"]
    # Fast-LLM consumes the dicts it reads: hand it unshared copies (the tables above share
    # sub-dicts, which `deepcopy` would keep shared).
    return GPTModelConfig.from_dict(
        {
            "base_model": json.loads(json.dumps(base_model)),
            "multi_stage": json.loads(json.dumps(multi_stage)),
            "distributed": {**distributed, "rank": rank, "local_world_size": world, **extra},
        }
    )


def source_model(base_model: dict, seed: int):
    """A world-size-1 training model on CPU with seeded random weights and optimizer state."""
    config = model_config(base_model, {"world_size": 1}, {}, 0, use_cuda=False)
    model = config.get_model_class()(config, optimizer_state_names=OPTIMIZER_SHARDS)
    model.setup(Distributed(config.distributed), mode=StageMode.training)
    generator = torch.Generator().manual_seed(seed)
    shards = {name: model.get_shard(name) for name in SHARDS}
    for name, shard in shards.items():
        values = torch.randn(shard.shape, generator=generator)
        shard.copy_(values.abs() if name == "exp_avgs_sq" else values)
    for _, fsdp, fsdp_shards in model.split_shards_by_fsdp(shards):
        for name, shard in fsdp_shards.items():
            fsdp.reset_shard_pad(shard, name)
    return model, shards


def rank_shards(source, source_shards, rank_model) -> dict[str, torch.Tensor]:
    """A rank's shards, sliced out of the world-size-1 model by Fast-LLM's own overlap copy."""
    shards = {name: torch.zeros(rank_model.get_shard_meta(name).shape) for name in SHARDS}
    for _, rank_fsdp, rank_fsdp_shards in rank_model.split_shards_by_fsdp(shards):
        for source_stage, source_fsdp, source_fsdp_shards in source.split_shards_by_fsdp(source_shards):
            if source_stage.index in source.stages_owned:
                rank_fsdp.copy_shard_overlaps(source_fsdp, rank_fsdp_shards, source_fsdp_shards)
    return shards


def layout_record(rank_model) -> dict:
    """Fast-LLM's own placement of a rank's parameters, for the Rust layout tests."""
    stages = []
    for stage_index, stage in rank_model.stages_on_device.items():
        fsdps = []
        for fsdp in stage.fsdps:
            fsdps.append(
                {
                    "name": fsdp._name,
                    "requires_grad": fsdp.requires_grad,
                    "shard_size": fsdp._shard_size,
                    "shard_pad": fsdp._shard_pad,
                    "parameters": [
                        {
                            "name": name,
                            "begin": fsdp.get_parameter_begin_in_buffer(name),
                            "end": fsdp.get_parameter_end_in_buffer(name),
                            "local_shape": list(fsdp.get_parameter_meta(name).shape),
                        }
                        for name in fsdp.parameter_names
                    ],
                }
            )
        stages.append({"index": stage_index, "owned": stage_index in rank_model.stages_owned, "fsdps": fsdps})
    return {
        "rank": rank_model.config.distributed.rank,
        "sizes": {name: rank_model.get_shard_meta(name).numel() for name in SHARDS},
        "stages": stages,
    }


def save_rank(rank_model, shards: dict[str, torch.Tensor], path: pathlib.Path) -> None:
    """Fast-LLM's `DistributedCheckpointHandler.save`, run for a model that was never set up: its
    shards are handed over as the ones `get_shard` returns."""
    rank_model._is_setup = True
    rank_model._shard_names = SHARDS
    rank_model._shards = shards
    config = CheckpointSaveConfig(path=path, format=DistributedCheckpointFormat, optimizer_state=True)
    metadata = rank_model.config.to_metadata(config, shards=list(SHARDS), metadata=TRAINING_METADATA)
    DistributedCheckpointHandler(rank_model).save(config, metadata)


def convert(checkpoint: pathlib.Path, output: pathlib.Path, format_: str) -> None:
    ConvertConfig.from_dict(
        {
            "input": {"path": str(checkpoint), "format": "distributed"},
            "output": {"path": str(output), "format": format_},
            "use_cpu": True,
            "model": "gpt",
        }
    ).run()


def reload(checkpoint: pathlib.Path):
    """A world-size-1 training model loaded from the checkpoint by Fast-LLM's safe loader."""
    load = CheckpointLoadConfig(
        path=checkpoint, format=DistributedCheckpointFormat, optimizer_state=True, load_config=ModelConfigType.model
    )
    return GPTModelConfig.get_model_class().from_pretrained(
        load, {("distributed", "use_cuda"): False}, mode=StageMode.training
    )


def save_optimizer_state(model, path: pathlib.Path) -> None:
    """Every trained parameter's optimizer state (`<parameter>/<shard>`), as Fast-LLM's FSDPs export it.

    Not through `save_checkpoint(..., optimizer_state=True)`: at 7d61a1ba that exports the
    zero-size optimizer shard of a stage's frozen group too, and fails on its first parameter. A
    frozen parameter has no optimizer state."""
    shards = {name: model.get_shard(name) for name in OPTIMIZER_SHARDS}
    out = {}
    for _, fsdp, fsdp_shards in model.split_shards_by_fsdp(shards):
        if fsdp.requires_grad:
            for shard_name, shard in fsdp_shards.items():
                for parameter, tensor in fsdp.export_shard(shard):
                    out[f"{parameter}/{shard_name}"] = tensor.clone()
    safetensors.torch.save_file(out, path)


def make(name: str, seed: int) -> None:
    hf_format, base_model, distributed, multi_stage = FIXTURES[name]
    source, source_shards = source_model(base_model, seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp) / name
        checkpoint = work / "checkpoint"
        ranks = []
        for rank in range(distributed["world_size"]):
            rank_model = GPTModelConfig.get_model_class()(
                model_config(base_model, distributed, multi_stage, rank), optimizer_state_names=OPTIMIZER_SHARDS
            )
            shards = rank_shards(source, source_shards, rank_model)
            ranks.append(layout_record(rank_model))
            save_rank(rank_model, shards, checkpoint)

        # Fast-LLM's loader must read back exactly the source's weights and optimizer state.
        reloaded = reload(checkpoint)
        for shard in SHARDS:
            assert torch.equal(reloaded.get_shard(shard), source_shards[shard]), f"{name}: {shard} differs"
        save_optimizer_state(reloaded, work / "optimizer_state.safetensors")
        if hf_format is not None:
            convert(checkpoint, work / "hf", hf_format)
            # The modeling code the HF export copies (apriel2) is not compared: drop it.
            for code in (work / "hf").glob("*.py"):
                code.unlink()
        convert(checkpoint, work / "fast_llm", "fast_llm")

        (work / "layout.json").write_text(
            json.dumps({"world_size": distributed["world_size"], "ranks": ranks}, indent=1) + "\n"
        )
        target = OUT / name
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(work, target)
    print(f"{name}: {sum(f.stat().st_size for f in target.rglob('*') if f.is_file()):,} bytes")


def main() -> None:
    names = sys.argv[1:] or list(FIXTURES)
    for index, name in enumerate(FIXTURES):
        if name in names:
            make(name, seed=index)


if __name__ == "__main__":
    main()
