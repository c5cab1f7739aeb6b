"""Extract every config class's fields (dataclass order) and hints from a Fast-LLM checkout.

Usage: python3 extract_fast_llm_fields.py FAST_LLM_CHECKOUT > fast_llm_fields.json

Reads the source with `ast` (no Fast-LLM import, so no torch), resolves each class's MRO with C3
and lists its init fields the way `dataclasses` orders them: base-most first, overridden fields
keeping their first position. A field without `hint=` has Fast-LLM's default hint, `unknown`.
The output is the reference the Rust config model's field tables are tested against.
"""

import ast
import json
import pathlib
import sys

FILES = [
    "fast_llm/engine/base_model/config.py",
    "fast_llm/engine/config_utils/parameter.py",
    "fast_llm/engine/config_utils/initialization.py",
    "fast_llm/data/document/config.py",
    "fast_llm/layers/block/config.py",
    "fast_llm/layers/common/linear/config.py",
    "fast_llm/layers/common/normalization/config.py",
    "fast_llm/layers/common/peft/config.py",
    "fast_llm/layers/attention/config.py",
    "fast_llm/layers/attention/rotary/config.py",
    "fast_llm/layers/decoder/config.py",
    "fast_llm/layers/decoder/mlp/config.py",
    "fast_llm/layers/language_model/config.py",
    "fast_llm/layers/language_model/loss/config.py",
    "fast_llm/layers/ssm/config.py",
    "fast_llm/layers/vision/config.py",
    "fast_llm/models/gpt/config.py",
    "fast_llm/models/multimodal/config.py",
]
# Read for enum values only.
ENUM_FILES = ["fast_llm/functional/config.py"]


MISSING = object()


def default_of(call, enums):
    """The literal default of a `Field(...)` call; enum members become their values.

    Returns MISSING for no default, and {"expr": source} for a default that is not a literal."""
    for keyword in call.keywords:
        if keyword.arg == "default":
            value = keyword.value
            if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id in enums:
                return enums[value.value.id][value.attr]
            try:
                literal = ast.literal_eval(value)
            except ValueError:
                return {"expr": ast.unparse(value)}
            return list(literal) if isinstance(literal, tuple) else literal
        if keyword.arg == "default_factory":
            return {"expr": ast.unparse(keyword.value) + "()"}
    return MISSING


def hint_of(call):
    for keyword in call.keywords:
        if keyword.arg == "hint" and isinstance(keyword.value, ast.Attribute):
            return keyword.value.attr
    return None


def main(root):
    # Config itself declares `type` (hint feature); every class inherits it first.
    classes = {"Config": {"bases": [], "fields": [("type", "feature", False, None)]}}
    enums = {}
    trees = []
    for file in ENUM_FILES + FILES:
        source = (pathlib.Path(root) / file).read_text()
        try:
            tree = ast.parse(source)
        except SyntaxError:
            # data/document/config.py may use newer syntax: fall back to its classes we need.
            tree = ast.parse("\n".join(l for l in source.splitlines() if "[" not in l.split("(")[0] or "class" not in l))
        trees.append(tree)
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(getattr(b, "attr", getattr(b, "id", "")) in ("StrEnum", "Enum") for b in node.bases):
                enums[node.name] = {
                    item.targets[0].id: item.value.value
                    for item in node.body
                    if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant)
                }
    for tree in trees[len(ENUM_FILES):]:
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", None) for b in node.bases]
            fields = []
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and isinstance(item.value, ast.Call):
                    func = item.value.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                    if name == "Field":
                        init = all(not (k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False) for k in item.value.keywords)
                        if init:
                            fields.append((item.target.id, hint_of(item.value) or "unknown", False, default_of(item.value, enums)))
                    elif name == "FieldOverride":
                        fields.append((item.target.id, hint_of(item.value), True, default_of(item.value, enums)))
            classes[node.name] = {"bases": [b for b in bases if b], "fields": fields}

    def mro(name):
        if name not in classes:
            return [name]
        seqs = [mro(b) for b in classes[name]["bases"] if b in classes] + [[b for b in classes[name]["bases"] if b in classes]]
        out = [name]
        while any(seqs):
            seqs = [s for s in seqs if s]
            for seq in seqs:
                head = seq[0]
                if not any(head in s[1:] for s in seqs):
                    break
            else:
                raise ValueError(f"inconsistent MRO for {name}")
            out.append(head)
            seqs = [s[1:] if s[0] == head else s for s in seqs]
        return out

    result = {}
    for name in classes:
        order = {}
        for base in reversed(mro(name)):
            for field, hint, is_override, default in classes.get(base, {"fields": []})["fields"]:
                previous = order.get(field)
                if is_override and previous is not None:
                    hint = hint or previous[0]
                    default = previous[1] if default is MISSING else default
                order[field] = (hint, default)
        if "Config" in mro(name):
            result[name] = [
                {"name": field, "hint": hint, **({} if default is MISSING else {"default": default})}
                for field, (hint, default) in order.items()
            ]
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
