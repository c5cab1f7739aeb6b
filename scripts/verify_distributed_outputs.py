"""Fast-LLM's verdict on the training checkpoints `fastllm-convert` writes (`--to fast_llm_distributed`).

For each case below (a source among the Fast-LLM-written fixtures of
crates/checkpoint/tests/data/distributed: a training checkpoint, or Fast-LLM's own HF or `fast_llm`
export of a world-size-1 one; and a `--layout`), the script

1. writes the source in that layout: with our CLI (`--writer ours`, the default),

       <binary> convert --from auto --to fast_llm_distributed --layout <layout> [--optimizer-state] SRC OUT

   (`--optimizer-state` for a training checkpoint: the weights and Adam's two shards are written;
   from an export, the weights alone)

   or, to check this script itself before and beside our writer, with Fast-LLM's own
   `DistributedCheckpointHandler.save` of each rank (`--writer fast_llm`; the rank's shards are cut
   out of a world-size-1 model by Fast-LLM's `FSDP.copy_shard_overlaps`, as
   make_distributed_fixtures.py does);
2. loads the output with Fast-LLM's loader into a world-size-1 training model (weights and
   optimizer state; every layout here differs from world size 1, so this is its safe load: NaN
   fill, per-parameter counters, every value set exactly once) and compares its shards with the
   training checkpoint the source is (or was exported from), loaded the same way, bit for bit;
   names every parameter whose values differ;
3. compares what Fast-LLM reads of the metadata: the base model, the shard names and, for a
   training checkpoint, the trainer fields (`completed_steps`, ...);
4. with `--writer ours`, also compares every rank file with Fast-LLM's own save of the same layout
   (tensors bit for bit, and the header metadata and metadata.yaml as YAML documents): a difference
   there is reported, not a failure, as Fast-LLM's loader is the judge the issue names.

It writes a record (JSON: per case the layout, the command, the sha256 of every file written and
the verdict) and exits 1 when any case fails. `--corrupt` flips the sign of one value of one rank
file after writing, to see a failure reported.

Not run by CI. Environment: make_distributed_fixtures.py's docstring (torch 2.9.1 on CPU,
transformers 5.24.0, Fast-LLM 7d61a1ba on PYTHONPATH). Run from the repository root:

    cargo build --release
    PYTHONPATH=/tmp/fast-llm-src:scripts /tmp/fastllm-venv/bin/python scripts/verify_distributed_outputs.py \
        --binary target/release/fastllm-convert --binary-commit "$(git rev-parse HEAD)" \
        --record crates/checkpoint/tests/data/distributed_outputs/record.json

The record is what tests/cli_distributed_verified.rs checks our writer against.
"""

import argparse
import dataclasses
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import traceback

import safetensors
import safetensors.torch
import torch
import yaml

import fast_llm
from fast_llm.config import NoAutoValidate
from fast_llm.engine.checkpoint.config import (
    CheckpointLoadMetadataConfig,
    CheckpointSaveConfig,
    DistributedCheckpointFormat,
    ModelConfigType,
)
from fast_llm.engine.checkpoint.distributed import DistributedCheckpointHandler
from fast_llm.models.gpt.config import GPTModelConfig

from make_distributed_fixtures import OPTIMIZER_SHARDS, SHARDS, model_config, rank_shards, reload

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates/checkpoint/tests/data/distributed"
FAST_LLM_COMMIT = "7d61a1ba2047814955f8acc1cde7bc10a68fa198"

@dataclasses.dataclass(frozen=True)
class Case:
    """A source checkpoint, under FIXTURES, written in `layout`; its values are those of fixture
    `reference`'s training checkpoint. `optimizer_state`: the source has it and `--optimizer-state`
    carries it (a training checkpoint); else only the weights are written and compared. The base
    model written must be the one Fast-LLM reads from the source (an HF import sets defaults
    explicitly that the training checkpoint left out)."""

    source: str
    layout: str
    reference: str
    optimizer_state: bool = True
    # Fast-LLM's name of the source's format.
    source_format: str = "distributed"


def training(fixture: str, layout: str) -> Case:
    return Case(f"{fixture}/checkpoint", layout, fixture)


CASES = {
    "llama_world1_tp2": training("llama_world1", "tp=2"),
    "llama_world1_pp2": training("llama_world1", "pp=2"),
    "llama_world1_dp2_zero3": training("llama_world1", "dp=2,zero=3"),
    "llama_world1_dp2_zero2": training("llama_world1", "dp=2,zero=2"),
    "llama_world1_dp4_sdp2_zero3": training("llama_world1", "dp=4,sdp=2,zero=3"),
    "llama_world1_tp2_pp2_dp2": training("llama_world1", "tp=2,pp=2,dp=2,zero=3,pipeline_first,layers_per_stage=2"),
    "apriel2_hybrid_world1_tp2": training("apriel2_hybrid_world1", "tp=2"),
    "apriel2_hybrid_world1_pp2": training("apriel2_hybrid_world1", "pp=2"),
    "apriel2_hybrid_world1_dp2_zero3": training("apriel2_hybrid_world1", "dp=2,zero=3"),
    "apriel2_hybrid_world1_tp2_pp2_dp2": training("apriel2_hybrid_world1", "tp=2,pp=2,dp=2,zero=3"),
    # Re-sharding a checkpoint that is not world size 1 (frozen parameters, weight-decay override,
    # layers_per_stage 2) and a tied-embedding hybrid.
    "llama_tp2_pp2_dp2_to_dp2_zero3": training("llama_tp2_pp2_dp2", "dp=2,zero=3"),
    "apriel2_hybrid_tp2_pp2_dp2_to_tp2": training("apriel2_hybrid_tp2_pp2_dp2", "tp=2"),
    # From Fast-LLM's own HF and `fast_llm` exports of the world-size-1 fixtures: weights only.
    "llama_hf_to_tp2_pp2_dp2": Case("llama_world1/hf", "tp=2,pp=2,dp=2,zero=3", "llama_world1", False, "llama"),
    "llama_fast_llm_to_pp2": Case("llama_world1/fast_llm", "pp=2", "llama_world1", False, "fast_llm"),
    "apriel2_hybrid_hf_to_tp2_pp2_dp2": Case(
        "apriel2_hybrid_world1/hf", "tp=2,pp=2,dp=2,zero=2", "apriel2_hybrid_world1", False, "apriel2_text"
    ),
    "apriel2_hybrid_fast_llm_to_dp2_zero3": Case(
        "apriel2_hybrid_world1/fast_llm", "dp=2,zero=3", "apriel2_hybrid_world1", False, "fast_llm"
    ),
}

# DistributedConfig fields that place parameters: the layout's, never the source's.
PLACING_DISTRIBUTED = (
    "world_size",
    "rank",
    "local_world_size",
    "tensor_parallel",
    "pipeline_parallel",
    "sequence_data_parallel",
    "pipeline_first",
)
PLACING_MULTI_STAGE = ("zero_stage", "layers_per_stage")


def parse_layout(text: str) -> tuple[dict, dict]:
    """`--layout` as Fast-LLM's placing `distributed` and `multi_stage` fields (defaults left out)."""
    sizes = {"tp": 1, "pp": 1, "dp": 1, "sdp": 1}
    distributed, multi_stage = {}, {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if key in sizes:
            sizes[key] = int(value)
        elif key == "zero":
            multi_stage["zero_stage"] = int(value)
        elif key == "layers_per_stage":
            multi_stage["layers_per_stage"] = float(value)
        elif key == "pipeline_first":
            distributed["pipeline_first"] = value in ("", "true", "1")
        else:
            raise ValueError(f"unknown layout key {key!r}")
    distributed["world_size"] = sizes["tp"] * sizes["pp"] * sizes["dp"]
    for key, name in (("tp", "tensor_parallel"), ("pp", "pipeline_parallel"), ("sdp", "sequence_data_parallel")):
        if sizes[key] != 1:
            distributed[name] = sizes[key]
    return distributed, multi_stage


def read_metadata(checkpoint: pathlib.Path) -> dict:
    return yaml.safe_load((checkpoint / "metadata.yaml").read_text())


def fast_llm_save(
    source: pathlib.Path,
    layout: str,
    output: pathlib.Path,
    shards: tuple[str, ...] = SHARDS,
    trainer: dict | None = None,
    base_model: dict | None = None,
) -> None:
    """Fast-LLM's own save of training checkpoint `source` in `layout`: each rank's `shards` copied
    out of the world-size-1 model by `FSDP.copy_shard_overlaps`, saved by
    `DistributedCheckpointHandler.save` with the source's trainer fields (or `trainer`) and base
    model (or `base_model`)."""
    document = read_metadata(source)
    trainer = document.get("metadata", {}) if trainer is None else trainer
    config = document["config"]
    if base_model is not None:
        config["base_model"] = base_model
    placing_distributed, placing_multi_stage = parse_layout(layout)
    distributed = {k: v for k, v in config.get("distributed", {}).items() if k not in PLACING_DISTRIBUTED}
    distributed.update(placing_distributed)
    multi_stage = {k: v for k, v in config.get("multi_stage", {}).items() if k not in PLACING_MULTI_STAGE}
    multi_stage.update(placing_multi_stage)
    world = reload(source)
    world_shards = {name: world.get_shard(name) for name in SHARDS}
    for rank in range(distributed["world_size"]):
        rank_model = GPTModelConfig.get_model_class()(
            model_config(config["base_model"], distributed, multi_stage, rank), optimizer_state_names=OPTIMIZER_SHARDS
        )
        all_shards = rank_shards(world, world_shards, rank_model)
        rank_model._is_setup = True
        rank_model._shard_names = shards
        rank_model._shards = {name: all_shards[name] for name in shards}
        save = CheckpointSaveConfig(path=output, format=DistributedCheckpointFormat, optimizer_state=len(shards) > 1)
        metadata = rank_model.config.to_metadata(save, shards=list(shards), metadata=trainer)
        DistributedCheckpointHandler(rank_model).save(save, metadata)


def ours_save(binary: pathlib.Path, source: pathlib.Path, case: Case, output: pathlib.Path) -> list[str]:
    command = [str(binary), "convert", "--from", "auto", "--to", "fast_llm_distributed", "--layout", case.layout]
    if case.optimizer_state:
        command.append("--optimizer-state")
    command += [str(source), str(output)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"fastllm-convert exited {result.returncode}: {result.stderr.strip()}")
    return command


def corrupt(output: pathlib.Path, shard_name: str) -> str:
    """Flips the sign of the first non-zero value of the last rank's `shard_name` shard (padding
    is zero, so the value belongs to a parameter)."""
    ranks = sorted(output.glob("rank_*.safetensors"), key=lambda p: int(p.stem.split("_")[1]))
    path = ranks[-1]
    with safetensors.safe_open(path, framework="pt") as f:
        header_metadata = f.metadata()
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    shard = tensors[f"{shard_name}_shard"]
    index = int(torch.nonzero(shard)[0, 0])
    shard[index] = -shard[index]
    safetensors.torch.save_file(tensors, path, metadata=header_metadata)
    return f"{path.name}: {shard_name}_shard[{index}] negated"


def sha256_of_files(directory: pathlib.Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
        if path.is_file()
    }


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def differing_parameters(loaded, source, shard_name: str) -> list[str]:
    """The parameters whose values in shard `shard_name` differ (with the count of values)."""
    found = {}
    for model in (loaded, source):
        tensors = {}
        for _, fsdp, fsdp_shards in model.split_shards_by_fsdp({shard_name: model.get_shard(shard_name)}):
            if shard_name != "weights" and not fsdp.requires_grad:
                continue  # A frozen group has no optimizer state.
            for parameter, tensor in fsdp.export_shard(fsdp_shards[shard_name]):
                tensors[parameter] = tensor
        found[model is source] = tensors
    loaded_tensors, source_tensors = found[False], found[True]
    out = []
    for parameter in sorted(set(loaded_tensors) | set(source_tensors)):
        a, b = loaded_tensors.get(parameter), source_tensors.get(parameter)
        if a is None or b is None:
            out.append(f"{parameter}: only in {'the source' if a is None else 'the output'}")
        elif not same_bits(a, b):
            count = int((a.contiguous().view(torch.int32) != b.contiguous().view(torch.int32)).sum())
            out.append(f"{parameter}: {count} of {a.numel()} values differ")
    return out


def fast_llm_metadata(checkpoint: pathlib.Path, format_: str = "distributed"):
    """What Fast-LLM reads of a checkpoint's metadata (for an HF format: its import of config.json)."""
    with NoAutoValidate():
        load = CheckpointLoadMetadataConfig(path=checkpoint, format=format_, load_config=ModelConfigType.fast_llm)
    load.setup(GPTModelConfig)
    load.validate()
    return GPTModelConfig.load_metadata(load)


def loader_verdict(output: pathlib.Path, case: Case, reference_dir: pathlib.Path, reference) -> dict:
    """Fast-LLM's load of `output` into a world-size-1 model against `reference` (the reference
    training checkpoint loaded the same way), and its reading of the metadata against the
    source's."""
    expected_shards = list(SHARDS) if case.optimizer_state else [SHARDS[0]]
    verdict = {}
    try:
        ours_metadata = fast_llm_metadata(output)
    except Exception as error:  # noqa: BLE001  (any failure is the verdict)
        return {"metadata_loads": False, "error": f"{type(error).__name__}: {error}"}
    reference_metadata = fast_llm_metadata(reference_dir)
    source_metadata = fast_llm_metadata(FIXTURES / case.source, case.source_format)
    verdict["metadata_loads"] = True
    verdict["shards"] = list(ours_metadata.shards)
    verdict["expected_shards"] = list(ours_metadata.shards) == expected_shards
    ours_model, source_model = ours_metadata.config.base_model, source_metadata.config.base_model
    # Every field resolved (Fast-LLM's own `Config.compare`); and, recorded only, whether the same
    # fields are set explicitly.
    differences = ours_model.compare(source_model, log_fn=str)
    verdict["same_base_model"] = differences is None
    if differences is not None:
        verdict["base_model_differences"] = differences
    verdict["same_explicit_base_model_fields"] = ours_model.to_dict() == source_model.to_dict()
    if case.optimizer_state:
        verdict["same_trainer_fields"] = ours_metadata.metadata == reference_metadata.metadata
    else:
        # Not a training checkpoint: no trainer fields to keep; what we wrote there is recorded.
        verdict["metadata_keys"] = sorted(ours_metadata.metadata or {})
    try:
        loaded = reload(output)
    except Exception as error:  # noqa: BLE001
        verdict["loads"] = False
        verdict["error"] = f"{type(error).__name__}: {error}"
        verdict["traceback_tail"] = traceback.format_exc().strip().splitlines()[-3:]
        return verdict
    verdict["loads"] = True
    for shard in expected_shards:
        equal = same_bits(loaded.get_shard(shard), reference.get_shard(shard))
        verdict[f"{shard}_equal"] = equal
        if not equal:
            verdict[f"{shard}_differences"] = differing_parameters(loaded, reference, shard)
    verdict["passed"] = bool(
        verdict["loads"]
        and verdict["expected_shards"]
        and verdict["same_base_model"]
        and verdict.get("same_trainer_fields", True)
        and all(verdict[f"{shard}_equal"] for shard in expected_shards)
    )
    return verdict


def header_metadata(path: pathlib.Path) -> dict:
    """A rank file's header metadata, each value parsed as YAML (Fast-LLM's
    `export_safetensors_metadata` writes a dict or list value as a YAML document, a scalar with
    `str`)."""
    with safetensors.safe_open(path, framework="pt") as f:
        raw = f.metadata() or {}
    return {key: yaml.safe_load(value) for key, value in raw.items()}


def against_fast_llm_save(ours: pathlib.Path, theirs: pathlib.Path) -> dict:
    """Our rank files and metadata.yaml against Fast-LLM's own save of the same layout."""
    differences = []
    our_files = sorted(p.name for p in ours.iterdir() if p.is_file())
    their_files = sorted(p.name for p in theirs.iterdir() if p.is_file())
    if our_files != their_files:
        differences.append(f"files: {our_files} vs Fast-LLM's {their_files}")
    for name in sorted(set(our_files) & set(their_files)):
        if name.endswith(".safetensors"):
            a = safetensors.torch.load_file(ours / name)
            b = safetensors.torch.load_file(theirs / name)
            if sorted(a) != sorted(b):
                differences.append(f"{name}: tensors {sorted(a)} vs Fast-LLM's {sorted(b)}")
            for key in sorted(set(a) & set(b)):
                if not same_bits(a[key], b[key]):
                    differences.append(
                        f"{name}: {key}: {a[key].dtype} {list(a[key].shape)} vs Fast-LLM's"
                        f" {b[key].dtype} {list(b[key].shape)}, or values differ"
                    )
            a_header, b_header = header_metadata(ours / name), header_metadata(theirs / name)
            for key in sorted(set(a_header) | set(b_header)):
                if a_header.get(key) != b_header.get(key):
                    differences.append(f"{name}: header metadata `{key}` differs as YAML")
        elif name == "metadata.yaml":
            if read_metadata(ours) != read_metadata(theirs):
                differences.append("metadata.yaml differs as a document")
    return {"same_as_fast_llm_save": not differences, "differences_from_fast_llm_save": differences}


def source_base_model(case: Case) -> dict:
    """The base model Fast-LLM reads from the case's source."""
    return fast_llm_metadata(FIXTURES / case.source, case.source_format).config.base_model.to_dict()


def run_case(name: str, args, work: pathlib.Path, references: dict) -> dict:
    case = CASES[name]
    source = FIXTURES / case.source
    reference_dir = FIXTURES / case.reference / "checkpoint"
    shards = SHARDS if case.optimizer_state else SHARDS[:1]
    trainer = None if case.optimizer_state else {}
    output = work / name / "checkpoint"
    record = {
        "case": name,
        "source": str(source.relative_to(ROOT)),
        "layout": case.layout,
        "optimizer_state": case.optimizer_state,
        "values_of": str(reference_dir.relative_to(ROOT)),
        "writer": args.writer,
    }
    try:
        if args.writer == "ours":
            command = ours_save(args.binary, source, case, output)
            record["command"] = " ".join([pathlib.Path(command[0]).name, *command[1:-2], record["source"], "OUT"])
        else:
            fast_llm_save(reference_dir, case.layout, output, shards, trainer, source_base_model(case))
    except Exception as error:  # noqa: BLE001
        record["written"] = False
        record["error"] = f"{type(error).__name__}: {error}"
        record["passed"] = False
        return record
    record["written"] = True
    if args.corrupt:
        record["corrupted"] = corrupt(output, shards[-1])
    record["sha256"] = sha256_of_files(output)
    if case.reference not in references:
        references[case.reference] = reload(reference_dir)
    record["fast_llm"] = loader_verdict(output, case, reference_dir, references[case.reference])
    record["passed"] = record["fast_llm"].get("passed", False)
    if args.writer == "ours":
        fast_llm_output = work / name / "fast_llm_save"
        fast_llm_save(reference_dir, case.layout, fast_llm_output, shards, trainer, source_base_model(case))
        record.update(against_fast_llm_save(output, fast_llm_output))
    return record


def binary_version(binary: pathlib.Path) -> str:
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    return result.stdout.strip() or result.stderr.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=pathlib.Path, help="our fastllm-convert (needed with --writer ours)")
    parser.add_argument("--binary-commit", help="the commit the binary was built from (recorded as given)")
    parser.add_argument("--writer", choices=("ours", "fast_llm"), default="ours")
    parser.add_argument("--record", type=pathlib.Path, help="where to write the JSON record")
    parser.add_argument("--corrupt", action="store_true", help="negate one value of each output before the check")
    parser.add_argument("--keep", type=pathlib.Path, help="keep the outputs in this directory")
    parser.add_argument("cases", nargs="*", help=f"default: all of {', '.join(CASES)}")
    args = parser.parse_args()
    if args.writer == "ours":
        if args.binary is None:
            parser.error("--writer ours needs --binary")
        args.binary = args.binary.resolve()
    for name in args.cases:
        if name not in CASES:
            parser.error(f"unknown case {name!r}")

    records = []
    references = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or pathlib.Path(tmp)
        for name in args.cases or list(CASES):
            if args.keep:
                shutil.rmtree(work / name, ignore_errors=True)
            record = run_case(name, args, work, references)
            records.append(record)
            extra = "" if args.writer != "ours" else f", same as Fast-LLM's save: {record.get('same_as_fast_llm_save')}"
            print(f"{name} ({record['layout']}): {'PASS' if record['passed'] else 'FAIL'}{extra}", flush=True)
            if not record["passed"]:
                print(json.dumps(record, indent=1), flush=True)

    document = {
        "fast_llm_commit": FAST_LLM_COMMIT,
        "fast_llm_version": fast_llm.__version__,
        "torch": torch.__version__,
        "writer": args.writer,
        "binary": binary_version(args.binary) if args.writer == "ours" else None,
        "binary_commit": args.binary_commit,
        "corrupted": args.corrupt,
        "cases": records,
        "all_passed": all(record["passed"] for record in records),
    }
    if args.record:
        args.record.write_text(json.dumps(document, indent=1) + "\n")
    return 0 if document["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
