"""Convert LLM checkpoints between HuggingFace formats and Fast-LLM's format, in process.

Every function here is the command line's (``fastllm-convert``) as a function: dicts in, dicts
out, and every rejection a :class:`ConversionError` carrying each problem. The work is done in
Rust with the GIL released, so other Python threads run meanwhile, and several conversions may
run at once from different threads.

>>> import fastllm_convert
>>> [f["name"] for f in fastllm_convert.formats()][:2]
['apriel2', 'apriel2_text']
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from . import _native

__all__ = [
    "ConversionError",
    "DroppedKey",
    "NotCarried",
    "NotCopied",
    "Problem",
    "Summary",
    "Tensor",
    "convert",
    "explain",
    "export_config",
    "formats",
    "import_config",
    "inspect",
    "normalize",
]

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[bool, Callable[[int, int], object], None]


@dataclass(frozen=True)
class Problem:
    """One problem of a rejection: where (each part when known) and what is wrong.

    ``message`` ends with the way out when an option resolves it, e.g.
    ``(to convert without it: --drop-key max_sequence_length)``; in Python the option is the
    keyword argument of the same name (``drop_keys=["max_sequence_length"]``).
    """

    file: Optional[str]
    hf_key: Optional[str]
    fast_llm_path: Optional[str]
    tensor: Optional[str]
    message: str


class ConversionError(ValueError):
    """A rejection: the input does not convert, or the output cannot be written.

    ``str(error)`` is the message the command line prints after ``error:``; ``problems`` lists
    each problem in it. Nothing was written: a conversion that fails leaves no output.
    """

    problems: List[Problem]

    def __init__(self, message: str, problems: Sequence[Problem]) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class Tensor:
    """One output tensor and the input tensors it is made of."""

    name: str
    dtype: str
    shape: List[int]
    bytes: int
    from_: List[str]
    transform: str
    cast_from: Optional[str] = None


@dataclass(frozen=True)
class Overflow:
    """A tensor whose cast (``dtype``) wrote finite values as infinities (``allow_overflow``)."""

    tensor: str
    from_: str
    to: str
    count: int
    largest: float


@dataclass(frozen=True)
class DroppedKey:
    """An input config key dropped, and by which option (``--drop-key`` or ``--text-only``)."""

    key: str
    value: Any
    by: str


@dataclass(frozen=True)
class NotCarried:
    """An input config key the output format has no place for, and why."""

    key: str
    value: Any
    reason: str


@dataclass(frozen=True)
class NotCopied:
    """An entry of the input directory not copied into the output, and why."""

    file: str
    reason: str


@dataclass(frozen=True)
class Summary:
    """What a conversion did (or, with ``dry_run``, would do): the fields of ``convert --json``.

    ``Tensor.from_`` is the JSON's ``from`` of a tensor and ``from_`` the summary's ``from`` (a
    Python keyword); :meth:`to_dict` gives the JSON's own names.
    """

    from_: str
    to: str
    output: str
    dry_run: bool
    tensor_count: int
    bytes: int
    files: List[str]
    tensors: List[Tensor]
    dropped_tensors: List[str]
    skipped_shards: List[str]
    training_state: Dict[str, Any]
    missing_extra_files: List[str]
    carried_keys: List[str]
    not_carried_keys: List[NotCarried]
    dropped_keys: List[DroppedKey]
    copied_files: List[str]
    not_copied_files: List[NotCopied]
    peak_rss_bytes: Optional[int]
    dtype: Optional[str] = None
    overflows: List[Overflow] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Summary":
        """The summary of a ``convert --json`` document."""
        values = _fields_of(cls, d)
        for name, element in _ELEMENTS.items():
            values[name] = [element(**_fields_of(element, e)) for e in values[name]]
        return cls(**values)

    def to_dict(self) -> Dict[str, Any]:
        """The summary as ``convert --json`` prints it (the same keys and values)."""
        return _to_json(self)


# The fields of Summary that list records, and the class of each record.
_ELEMENTS: Dict[str, Any] = {
    "tensors": Tensor,
    "dropped_keys": DroppedKey,
    "not_carried_keys": NotCarried,
    "not_copied_files": NotCopied,
    "overflows": Overflow,
}


def _json_name(name: str) -> str:
    """A field's key in ``convert --json``: its name without the ``_`` a Python keyword takes
    (``from_`` is ``from``)."""
    return name[:-1] if name.endswith("_") else name


def _fields_of(record: Any, d: Dict[str, Any]) -> Dict[str, Any]:
    """The fields of the dataclass ``record`` in the ``convert --json`` dict ``d``, by name."""
    return {f.name: d[_json_name(f.name)] for f in fields(record)}


def _to_json(value: Any) -> Any:
    """``value`` as ``convert --json`` writes it: a record (a dataclass) as a dict of its fields
    under their JSON names, sorted; lists and dicts as copies."""
    if is_dataclass(value) and not isinstance(value, type):
        named = {_json_name(f.name): getattr(value, f.name) for f in fields(value)}
        return {key: _to_json(named[key]) for key in sorted(named)}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        return dict(value)
    return value


def _failure(error: _native.NativeFailure) -> ConversionError:
    message, problems = error.args
    return ConversionError(message, [Problem(**p) for p in json.loads(problems)])


def _native_json(function: Callable[..., str], *args: object) -> Any:
    """The JSON ``function(*args)`` returns, parsed; its rejection raised as a
    :class:`ConversionError`."""
    try:
        out = function(*args)
    except _native.NativeFailure as error:
        raise _failure(error) from None
    return json.loads(out)


def _path(value: object, argument: str) -> str:
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise TypeError(f"{argument}: expected a str or os.PathLike path, got {type(value).__name__}")


def _string(value: object, argument: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{argument}: expected a str, got {type(value).__name__}")
    return value


def _flag(value: object, argument: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{argument}: expected a bool, got {type(value).__name__}")
    return value


def _choice(value: object, argument: str, choices: Sequence[str]) -> str:
    text = _string(value, argument)
    if text not in choices:
        raise ValueError(f"{argument}: {text!r} is not one of {', '.join(map(repr, choices))}")
    return text


def _keys(value: object, argument: str) -> List[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{argument}: expected a sequence of str (e.g. [\"max_sequence_length\"]), got {value!r}")
    keys = list(value)
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"{argument}: expected str items, got {type(key).__name__}")
    return keys


def _format(value: object, argument: str, extra: Sequence[str]) -> str:
    name = _string(value, argument)
    known = [f["name"] for f in formats()]
    if name not in known and name not in extra:
        raise ValueError(f"{argument}: unknown format {name!r}; registered formats: {', '.join(list(extra) + known)}")
    return name


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def _size(value: object, argument: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{argument}: expected an int (bytes) or a str such as '5GB', got bool")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        text = value.strip()
        split = len(text.rstrip("BbKkMmGgTtIi "))
        number, unit = text[:split], text[split:].strip().upper()
        if unit not in _UNITS:
            raise ValueError(f"{argument}: unknown size unit {unit!r} (B, KB, MB, GB, TB, KiB, MiB, GiB)")
        try:
            size = int(float(number) * _UNITS[unit])
        except ValueError:
            raise ValueError(f"{argument}: {value!r} is not a size") from None
    else:
        raise TypeError(f"{argument}: expected an int (bytes) or a str such as '5GB', got {type(value).__name__}")
    if size < 1:
        raise ValueError(f"{argument}: {value!r} is too small a shard size")
    return size


def _dict_or_path(value: object, argument: str) -> "tuple[Optional[str], Optional[str]]":
    """(JSON text, None) for a dict, (None, path) for a path."""
    if isinstance(value, dict):
        try:
            return json.dumps(value, allow_nan=False), None
        except (TypeError, ValueError) as error:
            raise ValueError(f"{argument}: not JSON-serializable: {error}") from None
    if isinstance(value, (str, os.PathLike)):
        return None, _path(value, argument)
    raise TypeError(f"{argument}: expected a dict, str or os.PathLike, got {type(value).__name__}")


def _tqdm_progress() -> Callable[[int, int], None]:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ValueError("progress=True needs tqdm (pip install tqdm), or pass a callable") from None
    bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def convert(
    input: PathLike,
    output: PathLike,
    *,
    from_: str = "auto",
    to: str,
    hf_layout: str = "v4",
    dtype: Optional[str] = None,
    allow_overflow: bool = False,
    force: bool = False,
    dry_run: bool = False,
    config_only: bool = False,
    text_only: bool = False,
    drop_keys: Iterable[str] = (),
    max_shard_size: Union[int, str, None] = None,
    shard: Optional[str] = None,
    layout: Optional[str] = None,
    optimizer_state: bool = False,
    progress: Progress = None,
) -> Summary:
    """Convert the checkpoint at ``input`` to ``output``: ``fastllm-convert convert``.

    ``from_`` (``"auto"``, ``"fast_llm"``, ``"fast_llm_distributed"`` or a registered format) and
    ``to`` (``"fast_llm"``, ``"fast_llm_distributed"`` or a registered format) name the formats; ``hf_layout`` (``"v4"`` or
    ``"v5"``) the rope layout of a written ``config.json``. ``force`` replaces an existing
    output; ``dry_run`` plans without reading tensor data or writing; ``config_only`` converts
    the config alone; ``text_only`` drops (and lists) the parts of a multimodal input the format
    does not convert (Gemma 4's towers); ``drop_keys`` drops input config keys the format does
    not know (dotted when nested); ``max_shard_size`` is the largest HF shard (bytes or
    ``"5GB"``, default 5 GB); ``shard`` the shard of a training checkpoint to convert (default
    ``"weights"``).

    ``layout`` (``"tp=2,pp=2,dp=2,zero=3"``, with ``sdp=N``, ``pipeline_first`` and
    ``layers_per_stage=N`` too) is the parallel layout of a ``"fast_llm_distributed"`` output
    (``--layout``); ``optimizer_state`` carries a training checkpoint's optimizer state into a
    ``"fast_llm"`` or ``"fast_llm_distributed"`` output (``--optimizer-state``).

    ``dtype`` (``"bf16"``, ``"f16"`` or ``"f32"``; default ``None``: each tensor keeps its own)
    casts every float tensor, rounding to nearest even as torch's ``tensor.to(dtype)`` does
    (``--dtype``); a finite value the cast would turn into an infinity fails the conversion
    unless ``allow_overflow`` (then ``Summary.overflows`` lists it).

    ``progress`` is a callable ``(done_bytes, total_bytes)``, called at least every 16 MiB
    written, or ``True`` for a tqdm bar. An exception it raises stops the conversion and is
    raised here; so does ``KeyboardInterrupt`` (Ctrl-C) within a second. A conversion that stops
    or fails leaves no output and no staging directory (an old output, with ``force``, stays).

    Returns the :class:`Summary` (the fields of ``--json``); raises :class:`ConversionError`
    with every problem when the checkpoint does not convert, ``TypeError``/``ValueError``
    naming the argument when an argument is wrong.
    """
    cast = None if dtype is None else _choice(dtype, "dtype", ["bf16", "f16", "f32"])
    input_path = _path(input, "input")
    output_path = _path(output, "output")
    source = _format(from_, "from_", ["auto", "fast_llm", "fast_llm_distributed"])
    target = _format(to, "to", ["fast_llm", "fast_llm_distributed"])
    rope_layout = _choice(hf_layout, "hf_layout", ["v4", "v5"])
    shard_name = None if shard is None else _string(shard, "shard")
    parallel = None if layout is None else _string(layout, "layout")
    size = 5_000_000_000 if max_shard_size is None else _size(max_shard_size, "max_shard_size")
    callback: Optional[Callable[[int, int], object]]
    if progress is None or progress is False:
        callback = None
    elif progress is True:
        callback = _tqdm_progress()
    elif callable(progress):
        callback = progress
    else:
        raise TypeError(f"progress: expected a callable (done_bytes, total_bytes), True or None, got {progress!r}")
    summary = _native_json(
        _native.convert,
        input_path,
        output_path,
        source,
        target,
        rope_layout,
        cast,
        _flag(allow_overflow, "allow_overflow"),
        _flag(force, "force"),
        _flag(dry_run, "dry_run"),
        _flag(config_only, "config_only"),
        _flag(text_only, "text_only"),
        _keys(drop_keys, "drop_keys"),
        size,
        shard_name,
        parallel,
        _flag(optimizer_state, "optimizer_state"),
        callback,
    )
    return Summary.from_dict(summary)


def import_config(
    hf: Union[Dict[str, Any], PathLike],
    *,
    format: str = "auto",
    drop_keys: Iterable[str] = (),
    text_only: bool = False,
) -> Dict[str, Any]:
    """Import an HF ``config.json`` (a dict, or a path to the file): ``config import``.

    Returns the Fast-LLM base-model config in architecture form. ``format`` is a registered
    format or ``"auto"`` (from ``model_type``); ``drop_keys`` drops keys the format does not
    know; ``text_only`` drops the parts the format does not convert (Gemma 4's towers).
    Raises :class:`ConversionError` naming every problem.
    """
    text, path = _dict_or_path(hf, "hf")
    name = _format(format, "format", ["auto"])
    keys = _keys(drop_keys, "drop_keys")
    result: Dict[str, Any] = _native_json(_native.import_config, text, path, name, keys, _flag(text_only, "text_only"))
    return result


def export_config(
    fast_llm: Union[Dict[str, Any], PathLike],
    *,
    format: str,
    hf_layout: str = "v4",
    complete: bool = False,
) -> Dict[str, Any]:
    """Export a Fast-LLM base-model config (a dict, or a JSON/YAML file) as ``format``'s HF
    ``config.json`` dict: ``config export``.

    ``hf_layout`` is ``"v4"`` (``rope_theta`` + ``rope_scaling``) or ``"v5"``
    (``rope_parameters``); ``complete`` gives every key transformers' ``save_pretrained``
    writes, as ``convert`` does. Raises :class:`ConversionError` naming every problem.
    """
    text, path = _dict_or_path(fast_llm, "fast_llm")
    name = _format(format, "format", [])
    layout = _choice(hf_layout, "hf_layout", ["v4", "v5"])
    result: Dict[str, Any] = _native_json(_native.export_config, text, path, name, layout, _flag(complete, "complete"))
    return result


def normalize(
    fast_llm: Union[Dict[str, Any], PathLike],
    *,
    form: str = "architecture",
    model: str = "gpt",
) -> Dict[str, Any]:
    """Validate a Fast-LLM base-model config (a dict, or a JSON/YAML file) and resolve it:
    ``config normalize``.

    ``form`` is ``"explicit"`` (what Fast-LLM writes), ``"architecture"`` (every core and
    architecture field) or ``"full"`` (every field); ``model`` is ``"gpt"`` or ``"multimodal"``.
    Raises :class:`ConversionError` naming every problem.
    """
    text, path = _dict_or_path(fast_llm, "fast_llm")
    chosen_form = _choice(form, "form", ["explicit", "architecture", "full"])
    chosen_model = _choice(model, "model", ["gpt", "multimodal"])
    result: Dict[str, Any] = _native_json(_native.normalize, text, path, chosen_form, chosen_model)
    return result


def inspect(path: PathLike) -> Dict[str, Any]:
    """Describe a checkpoint directory (HF, Fast-LLM or a Fast-LLM training checkpoint):
    ``inspect``.

    Returns ``format``, ``model`` (kind, hidden size, layers, vocabulary), ``tensors``,
    ``parameters``, ``files`` and, by kind, ``dtypes`` and ``not_converted`` or the training
    checkpoint's ``parallel`` layout, ``shards``, ``dtype``, ``step`` and ``documents_seen``.
    """
    result: Dict[str, Any] = _native_json(_native.inspect, _path(path, "path"))
    return result


def formats() -> List[Dict[str, Any]]:
    """The registered formats: ``name``, ``family``, ``model``, ``model_types``,
    ``architecture`` (what ``fastllm-convert formats`` lists)."""
    result: List[Dict[str, Any]] = json.loads(_native.formats())
    return result


def explain(format: str) -> List[Dict[str, Any]]:
    """A format's mapping table, from its declarations: one dict per row with ``fast_llm``
    (the Fast-LLM path), ``hf`` (the HF key), ``primitive`` and ``note``."""
    result: List[Dict[str, Any]] = _native_json(_native.explain, _format(format, "format", []))
    return result
