"""The Python API of fastllm_convert: every function, round trips read back with the
safetensors package, rejections and their problems, interruption, threads, the command line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import fastllm_convert as fc

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTED = ROOT / "crates/checkpoint/tests/data/distributed/llama_tp2_pp2_dp2/checkpoint"


def cli(*args: str) -> "subprocess.CompletedProcess[str]":
    """The command line, through `python -m fastllm_convert`."""
    return subprocess.run(
        [sys.executable, "-m", "fastllm_convert", *args], capture_output=True, text=True, cwd=ROOT
    )


def tensors(directory: Path) -> Dict[str, "np.ndarray[Any, Any]"]:
    out: Dict[str, "np.ndarray[Any, Any]"] = {}
    for file in sorted(directory.glob("*.safetensors")):
        out.update(load_file(str(file)))
    return out


def test_formats_and_explain() -> None:
    formats = fc.formats()
    names = [f["name"] for f in formats]
    assert "llama" in names and "gemma4_conditional" in names
    llama = next(f for f in formats if f["name"] == "llama")
    assert llama == {
        "name": "llama",
        "family": "llama",
        "model": "gpt",
        "model_types": ["llama"],
        "architecture": "LlamaForCausalLM",
    }
    rows = fc.explain("llama")
    assert any(r["hf"] == "num_hidden_layers" for r in rows)
    assert set(rows[0]) == {"fast_llm", "hf", "primitive", "note"}


def test_import_export_normalize(root: Path) -> None:
    path = root / "samples/llama-3.2-1b-config.json"
    from_file = fc.import_config(path)
    hf = json.loads(path.read_text())
    assert fc.import_config(hf, format="llama") == from_file
    assert from_file["hidden_size"] == hf["hidden_size"]
    exported = fc.export_config(from_file, format="llama")
    assert exported["num_hidden_layers"] == hf["num_hidden_layers"]
    assert "rope_parameters" in fc.export_config(from_file, format="mistral", hf_layout="v5")
    complete = fc.export_config(from_file, format="llama", complete=True)
    assert set(exported) <= set(complete)
    normalized = fc.normalize(root / "samples/llama-base-model.yaml")
    assert normalized == fc.normalize(normalized)
    assert len(fc.normalize(normalized, form="full")) >= len(normalized)
    # The same as the command line's.
    run = cli("config", "import", "--format", "auto", str(path))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == from_file


def test_inspect(llama_hf: Path) -> None:
    described = fc.inspect(llama_hf)
    assert described["format"] == "llama"
    assert described["model"]["layers"] == 2
    assert described["files"] == ["model.safetensors"]
    assert described["parameters"] == sum(a.size for a in tensors(llama_hf).values())
    training = fc.inspect(DISTRIBUTED)
    assert training["format"] == "fast_llm_distributed"
    assert training["parallel"]["world_size"] == 8
    assert training["shards"] == ["weights", "exp_avgs", "exp_avgs_sq"]
    assert training["step"] == 1000


def test_round_trip_reads_back_equal(llama_hf: Path, tmp_path: Path) -> None:
    calls: List[tuple[int, int]] = []
    summary = fc.convert(
        llama_hf, tmp_path / "fast_llm", to="fast_llm", progress=lambda done, total: calls.append((done, total))
    )
    assert isinstance(summary, fc.Summary)
    assert summary.from_ == "llama" and summary.to == "fast_llm"
    assert summary.tensor_count == len(summary.tensors) and summary.files == ["model_0.safetensors"]
    assert summary.copied_files == ["generation_config.json"]
    assert calls and calls[-1][0] == calls[-1][1] == summary.bytes
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    back = fc.convert(tmp_path / "fast_llm", tmp_path / "hf", from_="fast_llm", to="llama")
    assert back.bytes == summary.bytes
    original, converted = tensors(llama_hf), tensors(tmp_path / "hf")
    assert sorted(original) == sorted(converted)
    for name, array in original.items():
        assert converted[name].dtype == array.dtype, name
        np.testing.assert_array_equal(converted[name], array, err_msg=name)


def test_summary_is_the_json_of_the_command_line(llama_hf: Path, tmp_path: Path) -> None:
    run = cli("convert", "--from", "auto", "--to", "mistral", "--json", "--dry-run", str(llama_hf), str(tmp_path / "o"))
    assert run.returncode == 0, run.stderr
    expected = json.loads(run.stdout)
    got = fc.convert(llama_hf, tmp_path / "o", to="mistral", dry_run=True).to_dict()
    expected.pop("peak_rss_bytes"), got.pop("peak_rss_bytes")
    assert got == expected
    assert not (tmp_path / "o").exists()


def test_summary_reads_and_writes_every_record_under_its_json_names() -> None:
    document: Dict[str, Any] = {
        "bytes": 12,
        "carried_keys": ["bos_token_id"],
        "copied_files": ["tokenizer.json"],
        "dropped_keys": [{"by": "--drop-key", "key": "k", "value": [1, {"a": 2}]}],
        "dropped_tensors": ["vision.w"],
        "dry_run": False,
        "dtype": "bf16",
        "files": ["model.safetensors"],
        "from": "llama",
        "missing_extra_files": ["special_tokens_map.json"],
        "not_carried_keys": [{"key": "n", "reason": "no place", "value": None}],
        "not_copied_files": [{"file": "x.bin", "reason": "not a config file"}],
        "output": "/o",
        "overflows": [{"count": 3, "from": "f32", "largest": 1e39, "tensor": "w", "to": "bf16"}],
        "peak_rss_bytes": 7,
        "skipped_shards": ["exp_avgs"],
        "tensor_count": 1,
        "tensors": [
            {
                "bytes": 12,
                "cast_from": "f32",
                "dtype": "bf16",
                "from": ["a", "b"],
                "name": "w",
                "shape": [2, 3],
                "transform": "concat",
            }
        ],
        "to": "fast_llm",
        "training_state": {"step": 3},
    }
    summary = fc.Summary.from_dict(document)
    assert summary.from_ == "llama" and summary.tensors[0].from_ == ["a", "b"]
    assert summary.overflows[0].from_ == "f32" and summary.not_copied_files[0].file == "x.bin"
    written = summary.to_dict()
    assert written == document
    assert list(written) == sorted(document) and list(written["tensors"][0]) == sorted(document["tensors"][0])


def test_options(llama_hf: Path, tmp_path: Path) -> None:
    config_only = fc.convert(llama_hf, tmp_path / "c", to="mistral", config_only=True)
    assert (tmp_path / "c/config.json").is_file() and not list((tmp_path / "c").glob("*.safetensors"))
    assert config_only.files == []
    sharded = fc.convert(llama_hf, tmp_path / "s", to="llama", max_shard_size="100KB")
    assert len(sharded.files) > 1 and (tmp_path / "s/model.safetensors.index.json").is_file()
    # force replaces; without it an existing output is refused, naming force's flag.
    with pytest.raises(fc.ConversionError, match="--force") as error:
        fc.convert(llama_hf, tmp_path / "s", to="llama")
    assert error.value.problems[0].file == str(tmp_path / "s")
    fc.convert(llama_hf, tmp_path / "s", to="llama", force=True)
    assert len(list((tmp_path / "s").glob("*.safetensors"))) == 1
    training = fc.convert(DISTRIBUTED, tmp_path / "t", to="llama")
    assert training.from_ == "fast_llm_distributed"
    assert training.skipped_shards == ["exp_avgs", "exp_avgs_sq"]
    with pytest.raises(fc.ConversionError) as error:
        fc.convert(DISTRIBUTED, tmp_path / "t2", to="llama", shard="exp_avgs")
    assert [p.tensor for p in error.value.problems] == [
        "decoder.0.mlp.layer_2.weight",
        "decoder.1.mlp.layer_2.weight",
    ]
    assert {p.file for p in error.value.problems} == {str(DISTRIBUTED)}
    assert training.training_state["metadata.completed_steps"] == 1000


def test_layout_and_optimizer_state(tmp_path: Path) -> None:
    # Re-shard a training checkpoint to one rank, then back to its layout: the same rank files.
    single = fc.convert(DISTRIBUTED, tmp_path / "one", to="fast_llm_distributed", layout="", optimizer_state=True)
    assert single.files == ["metadata.yaml", "rank_0.safetensors"] and single.skipped_shards == []
    back = fc.convert(
        tmp_path / "one",
        tmp_path / "back",
        to="fast_llm_distributed",
        layout="tp=2,pp=2,dp=2,zero=3,pipeline_first,layers_per_stage=2",
        optimizer_state=True,
    )
    assert len(back.files) == 9
    for rank in range(8):
        ours = load_file(str(tmp_path / f"back/rank_{rank}.safetensors"))
        theirs = load_file(str(DISTRIBUTED / f"rank_{rank}.safetensors"))
        assert ours.keys() == theirs.keys()
        assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    state = fc.convert(tmp_path / "back", tmp_path / "state", to="fast_llm", optimizer_state=True)
    # 17 weights, and the optimizer state of the 15 trained parameters (2 are frozen).
    assert len(state.tensors) == 17 + 2 * 15


def test_a_rejection_carries_every_problem_and_the_way_out(llama_hf: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    shutil.copytree(llama_hf, source)
    config = json.loads((source / "config.json").read_text())
    config["max_sequence_length"] = 4096
    config["internal_version"] = "1.2"
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(fc.ConversionError) as error:
        fc.convert(source, tmp_path / "out", to="fast_llm")
    assert isinstance(error.value, ValueError)
    problems = {p.hf_key: p for p in error.value.problems}
    assert set(problems) == {"max_sequence_length", "internal_version"}
    problem = problems["max_sequence_length"]
    assert problem.file == str(source / "config.json")
    assert problem.fast_llm_path is None and problem.tensor is None
    assert problem.message.endswith("(to convert without it: --drop-key max_sequence_length)")
    # str() is the command line's message.
    run = cli("convert", "--from", "auto", "--to", "fast_llm", str(source), str(tmp_path / "out"))
    assert run.returncode == 2 and run.stderr.strip() == f"error: {error.value}"
    assert not (tmp_path / "out").exists()
    # The way out works.
    summary = fc.convert(source, tmp_path / "out", to="fast_llm", drop_keys=["max_sequence_length", "internal_version"])
    assert [(k.key, k.value, k.by) for k in summary.dropped_keys] == [
        ("internal_version", "1.2", "--drop-key"),
        ("max_sequence_length", 4096, "--drop-key"),
    ] or sorted(k.key for k in summary.dropped_keys) == ["internal_version", "max_sequence_length"]


def test_gemma4_towers_say_text_only(root: Path) -> None:
    config = root / "crates/gemma4/tests/data/gemma-4-31B-it.config.json"
    with pytest.raises(fc.ConversionError, match="--text-only") as error:
        fc.import_config(config)
    assert all(p.hf_key for p in error.value.problems)
    assert fc.import_config(config, text_only=True)["hidden_size"] > 0


def test_bad_arguments_name_the_argument(llama_hf: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    cases: List[tuple[Dict[str, Any], type, str]] = [
        ({"to": "nope"}, ValueError, "to:"),
        ({"to": "llama", "from_": "nope"}, ValueError, "from_:"),
        ({"to": "llama", "hf_layout": "v6"}, ValueError, "hf_layout:"),
        ({"to": "llama", "dtype": "int8"}, ValueError, "dtype:"),
        ({"to": "llama", "dtype": "bf16", "allow_overflow": "yes"}, TypeError, "allow_overflow:"),
        ({"to": "llama", "force": "yes"}, TypeError, "force:"),
        ({"to": "llama", "drop_keys": "max_sequence_length"}, TypeError, "drop_keys:"),
        ({"to": "llama", "max_shard_size": "5XB"}, ValueError, "max_shard_size:"),
        ({"to": "llama", "max_shard_size": 0}, ValueError, "max_shard_size:"),
        ({"to": "llama", "progress": 3}, TypeError, "progress:"),
        ({"to": 3}, TypeError, "to:"),
        ({"to": "fast_llm_distributed", "layout": "tensor=2"}, ValueError, "layout:"),
        ({"to": "fast_llm_distributed", "layout": 2}, TypeError, "layout:"),
        ({"to": "fast_llm", "optimizer_state": "yes"}, TypeError, "optimizer_state:"),
    ]
    for kwargs, kind, name in cases:
        with pytest.raises(kind, match=name):
            fc.convert(llama_hf, out, **kwargs)
    with pytest.raises(TypeError, match="input:"):
        fc.convert(3, out, to="llama")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format:"):
        fc.export_config({}, format="auto")
    with pytest.raises(ValueError, match="form:"):
        fc.normalize({}, form="short")
    with pytest.raises(TypeError, match="hf:"):
        fc.import_config(3)  # type: ignore[arg-type]
    assert not out.exists()


def test_the_extension_names_a_bad_choice_and_the_choices() -> None:
    # Checked again behind the Python layer's checks, for a caller of the extension itself.
    from fastllm_convert import _native

    with pytest.raises(ValueError, match=r"""^form: "short" is not one of 'explicit', 'architecture', 'full'$"""):
        _native.normalize("{}", None, "short", "gpt")
    with pytest.raises(ValueError, match=r"""^model: "vit" is not one of 'gpt', 'multimodal'$"""):
        _native.normalize("{}", None, "full", "vit")
    with pytest.raises(ValueError, match=r"""^hf_layout: "v6" is not one of 'v4', 'v5'$"""):
        _native.export_config("{}", None, "llama", "v6", False)


def big_checkpoint(directory: Path, llama_hf: Path, vocab: int = 120_000) -> Path:
    """The fixture's Llama with a large vocabulary: ~60 MB of embeddings and head."""
    directory.mkdir()
    config = json.loads((llama_hf / "config.json").read_text())
    config["vocab_size"] = vocab
    (directory / "config.json").write_text(json.dumps(config))
    arrays = tensors(llama_hf)
    rng = np.random.default_rng(0)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        arrays[name] = rng.standard_normal((vocab, config["hidden_size"]), dtype=np.float32)
    save_file(arrays, str(directory / "model.safetensors"))
    return directory


def leftovers(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir())


def test_keyboard_interrupt_stops_within_a_second_and_leaves_nothing(llama_hf: Path, tmp_path: Path) -> None:
    source = big_checkpoint(tmp_path / "big", llama_hf)
    before = leftovers(tmp_path)
    # A callback that raises stops the conversion; the exception is raised.
    with pytest.raises(KeyboardInterrupt):

        def raising(done: int, total: int) -> None:
            if done > 0:
                raise KeyboardInterrupt

        fc.convert(source, tmp_path / "new/parents/out", to="fast_llm", progress=raising)
    assert leftovers(tmp_path) == before
    # A real SIGINT (Ctrl-C) during a conversion with no callback at all: the conversion checks
    # for signals as it writes. A slow callback keeps the conversion going long enough.
    sent: List[float] = []

    def slow(done: int, total: int) -> None:
        if not sent:
            sent.append(time.monotonic())
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
        time.sleep(0.1)

    with pytest.raises(KeyboardInterrupt):
        fc.convert(source, tmp_path / "new/parents/out", to="fast_llm", progress=slow)
    assert time.monotonic() - sent[0] < 1.0
    assert leftovers(tmp_path) == before
    # With force, the old output stays as it was.
    (tmp_path / "old").mkdir()
    (tmp_path / "old/file").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        fc.convert(source, tmp_path / "old", to="fast_llm", force=True, progress=raising)
    assert leftovers(tmp_path) == sorted(before + ["old"]) and leftovers(tmp_path / "old") == ["file"]
    # The process goes on converting.
    fc.convert(source, tmp_path / "out", to="fast_llm")


def test_ctrl_c_without_a_callback(llama_hf: Path, tmp_path: Path) -> None:
    source = big_checkpoint(tmp_path / "big", llama_hf, vocab=400_000)
    before = leftovers(tmp_path)
    sent: List[float] = []

    def interrupt_once_writing() -> None:
        # As soon as the staging directory shows, as Ctrl-C would.
        deadline = time.monotonic() + 10
        while leftovers(tmp_path) == before and time.monotonic() < deadline:
            time.sleep(0.001)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt_once_writing)
    finished = False
    try:
        killer.start()
        try:
            fc.convert(source, tmp_path / "out", to="llama")
            finished = True
        except KeyboardInterrupt:
            stopped = time.monotonic()
        killer.join()
        time.sleep(0.1)
    except KeyboardInterrupt:
        pass  # The signal arrived after the conversion had finished.
    if finished:
        shutil.rmtree(tmp_path / "out")
        pytest.skip("the conversion finished before SIGINT arrived")
    assert stopped - sent[0] < 1.0
    assert leftovers(tmp_path) == before


def test_threads_convert_at_once(llama_hf: Path, tmp_path: Path) -> None:
    source = big_checkpoint(tmp_path / "big", llama_hf)
    results: Dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            results[name] = fc.convert(source, tmp_path / name, to="mistral")
        except BaseException as error:  # noqa: BLE001 - reported below
            results[name] = error

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    # The GIL is released meanwhile: this thread runs.
    ticks = 0
    while any(t.is_alive() for t in threads):
        ticks += 1
        time.sleep(0.001)
    for thread in threads:
        thread.join()
    assert all(isinstance(r, fc.Summary) for r in results.values()), results
    a, b = tensors(tmp_path / "a"), tensors(tmp_path / "b")
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert ticks > 0


def test_python_m_runs_the_command_line(llama_hf: Path, tmp_path: Path) -> None:
    run = cli("formats")
    assert run.returncode == 0 and run.stdout.startswith("families: ")
    run = cli("convert", "--from", "auto", "--to", "fast_llm", str(llama_hf), str(tmp_path / "o"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("wrote ")
    run = cli("convert", "--bogus")
    assert run.returncode == 2 and "--bogus" in run.stderr
    assert cli("--version").returncode == 0


def test_stubs_pass_mypy_strict() -> None:
    mypy = pytest.importorskip("mypy.api")
    usage = Path(__file__).with_name("typing_usage.py")
    stdout, stderr, status = mypy.run(["--strict", "--no-incremental", str(usage)])
    assert status == 0, stdout + stderr


def test_progress_true_draws_a_tqdm_bar(llama_hf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    summary = fc.convert(llama_hf, tmp_path / "o", to="fast_llm", progress=True)
    err = capsys.readouterr().err
    assert "100%" in err, err
    assert summary.tensor_count > 0


def test_the_module_docstring_examples() -> None:
    import doctest

    failures, tried = doctest.testmod(fc)
    assert tried > 0 and failures == 0


def test_dtype_casts_as_torch_rounds(llama_hf: Path, tmp_path: Path) -> None:
    """F32 -> fast_llm in bf16 -> HF in f32: every value is its bf16 rounding (to nearest even)."""
    narrow = fc.convert(llama_hf, tmp_path / "bf16", to="fast_llm", dtype="bf16")
    assert narrow.dtype == "BF16" and narrow.overflows == []
    assert all(t.dtype == "BF16" and t.cast_from == "F32" for t in narrow.tensors)
    back = fc.convert(tmp_path / "bf16", tmp_path / "f32", from_="fast_llm", to="llama", dtype="f32")
    assert all(t.cast_from == "BF16" for t in back.tensors)
    original, converted = tensors(llama_hf), tensors(tmp_path / "f32")
    assert sorted(original) == sorted(converted)
    for name, array in original.items():
        bits = array.astype(np.float32).view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
        assert converted[name].dtype == np.float32, name
        np.testing.assert_array_equal(converted[name].view(np.uint32), rounded, err_msg=name)
