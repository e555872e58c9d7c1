"""The declaration index: compiled kernels found again without deriving anything.

:func:`symnn.codegen.model.compile_model` derives a network's programs and generates its
kernel module before it can compute the module's cache key (:func:`~symnn.codegen.cache.
module_key` hashes the generated source).  On a warm start that work — a tenth of a second
for a small network, more for a large one — produces a module that is already on disk.

This index keys the same module on the *declaration's canonical form* instead: an entry

    <cache dir>/symnn-index/<sha256>.json

where the SHA-256 covers

* the declaration's plain-data form (:meth:`symnn.Network.spec`: layers, loss, penalties,
  name), plus every activation's identity key (a custom ``Lambda``: the ``srepr`` of its
  body, so two custom activations of one name never share an entry);
* the dtype;
* the text of every source file of the ``symnn`` package (:func:`symnn_fingerprint`: a
  changed derivation rule, emitter or runtime block gives new keys) and the versions of
  symnn, SymPy, Numba, llvmlite, NumPy and Python.

The entry records the generated module's cache key, the SHA-256 of its source and the
plain-data parts of :class:`~symnn.codegen.numba.GeneratedModule` (kernel names and
arguments, work-buffer sizes, parameter layout).  On a hit, the module file is read, its
checksum line and the recorded source hash are both checked, and it is loaded exactly as
:func:`~symnn.codegen.cache.load_module` would after a derivation.

Only declarations whose canonical form says everything are indexed: a
:class:`~symnn.Network` whose loss is a built-in one and whose activations are built in
(SymPy's or symnn's own) or ``Lambda`` bodies.  A custom :class:`~symnn.Model`, a custom
loss object, or an activation class defined outside symnn (its definition is code, not
data) is always derived.

Safety: an entry that is not valid JSON, lacks a field, has a wrong checksum, names a
module file that is missing, or whose file's source hash differs from the recorded one is
ignored (the caller derives and rewrites it); it can never select kernels other than those
its key's declaration derives to.  The directory obeys the same ownership rules as the
kernel cache (:func:`~symnn.codegen.cache.unsafe_directory`).

Examples
--------
>>> import symnn
>>> a = declaration_key(symnn.mlp([2, 3, 1], activation="tanh"), "float64")
>>> b = declaration_key(symnn.mlp([2, 3, 1], activation="sigmoid"), "float64")
>>> c = declaration_key(symnn.mlp([2, 3, 1], activation="tanh"), "float32")
>>> len({a, b, c}), len(a)
(3, 64)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from symnn._atomic import atomic_write_text
from symnn.codegen.cache import (
    _CHECK_PREFIX,
    _checksum,
    _read_regular,
    _versions,
    default_cache_dir,
    module_name,
    unsafe_directory,
)
from symnn.codegen.numba.module import GeneratedModule, Kernel

__all__ = ["declaration_key", "spec_key", "canonical_form", "symnn_fingerprint", "lookup", "store",
           "clear_index", "INDEX_DIR"]

#: The index's folder inside the kernel cache directory.
INDEX_DIR = "symnn-index"

#: Version of the entry format (part of every key).
_FORMAT = "1"

_FINGERPRINT: list[str] = []


def symnn_fingerprint() -> str:
    """SHA-256 of every ``.py`` file of the ``symnn`` package (paths and contents), computed
    once per process."""
    if _FINGERPRINT:
        return _FINGERPRINT[0]
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "__pycache__" in rel:
            continue
        h.update(rel.encode("utf-8") + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    _FINGERPRINT.append(h.hexdigest())
    return _FINGERPRINT[0]


def _sympy_version() -> str:
    try:
        from importlib.metadata import version

        return version("sympy")
    except Exception:  # pragma: no cover - sympy is a dependency
        return "?"


def _activation_keys(declared) -> list | None:
    """Every activation's identity, or None when one is not plain data (a class defined
    outside symnn and SymPy, whose definition is code)."""
    import sympy as sp

    from symnn.declare.blocks import flat_layers

    z = sp.Symbol("z")
    keys = []
    for layer, _, depth in flat_layers(declared):
        act = getattr(layer, "activation", None)
        if act is None:
            keys.append([type(layer).__name__, depth])
            continue
        if act.key and act.key[0] == "lambda":
            keys.append(["lambda", act.name, act.key[1], depth])
            continue
        expr = act.apply(z)
        module = type(expr).__module__ or ""
        if not (module.startswith("symnn.") or module.startswith("sympy.")
                or module == "symnn"):
            return None
        keys.append([act.name, list(map(str, act.key)), bool(act.identity),
                     f"{module}.{type(expr).__qualname__}", sp.srepr(expr), depth])
    return keys


def canonical_form(declared) -> str | None:
    """The declaration as canonical JSON text, or None when it cannot be indexed."""
    from symnn.declare.losses import LOSSES
    from symnn.declare.network import Network

    if type(declared) is not Network:
        return None
    loss = getattr(declared, "loss", None)
    if loss is None or LOSSES.get(loss.name) is not loss:
        return None
    acts = _activation_keys(declared)
    if acts is None:
        return None
    try:
        spec = declared.spec()
        return json.dumps({"spec": spec, "activations": acts,
                           "input_shape": list(declared.input_shape)},
                          sort_keys=True, allow_nan=False, ensure_ascii=True)
    except (TypeError, ValueError):
        return None


def declaration_key(declared, dtype: str) -> str | None:
    """The index key (SHA-256 hex) of a declaration compiled to ``dtype``, or None when the
    declaration is not indexed (see the module docstring)."""
    try:
        form = canonical_form(declared)
    except Exception:  # whatever cannot be written as plain data is simply not indexed
        return None
    if form is None:
        return None
    h = hashlib.sha256()
    for part in (_FORMAT, form, str(dtype), symnn_fingerprint(), _versions(),
                 "sympy=" + _sympy_version()):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def spec_key(spec, dtype: str) -> str | None:
    """The index key of a *stored* spec (a model file's ``spec``, plain data) compiled to
    ``dtype``, or None when it is not JSON.  Entries under such keys are written only for
    specs whose rebuilt declaration is indexable (:func:`canonical_form`), so the spec
    determines the kernels without SymPy being imported to check it."""
    try:
        form = json.dumps(spec, sort_keys=True, allow_nan=False, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        return None
    h = hashlib.sha256()
    for part in (_FORMAT, "model-file spec", form, str(dtype), symnn_fingerprint(),
                 _versions(), "sympy=" + _sympy_version()):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _directory(cache_dir) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _entry_path(cache_dir, key: str) -> Path:
    return _directory(cache_dir) / INDEX_DIR / f"{key}.json"


def _generated_data(g: GeneratedModule) -> dict:
    return {
        "kernels": {k: [v.kind, v.name, list(v.args), v.doc] for k, v in g.kernels.items()},
        "layout": [[n, list(s), int(o)] for n, s, o in g.layout],
        "n_params": g.n_params, "n_inputs": g.n_inputs, "n_outputs": g.n_outputs,
        "dtype": g.dtype, "fast": bool(g.fast),
        "op_lines": [[int(n), t] for n, t in g.op_lines],
        "work": {k: list(map(int, w)) for k, w in g.work.items()},
    }


def _generated_from(data: dict, source: str) -> GeneratedModule:
    return GeneratedModule(
        source=source,
        kernels={k: Kernel(v[0], v[1], tuple(v[2]), v[3]) for k, v in data["kernels"].items()},
        layout=[(n, tuple(s), int(o)) for n, s, o in data["layout"]],
        n_params=int(data["n_params"]), n_inputs=int(data["n_inputs"]),
        n_outputs=int(data["n_outputs"]), dtype=str(data["dtype"]), fast=bool(data["fast"]),
        op_lines=[(int(n), str(t)) for n, t in data["op_lines"]],
        work={k: tuple(int(x) for x in w) for k, w in data["work"].items()},
    )


def store(key: str | None, module_key: str, generated: GeneratedModule, layout: dict,
          cache_dir=None) -> bool:
    """Record that declaration ``key`` compiles to module ``module_key``; False (and
    nothing written) when the key is None or the directory is not usable."""
    if key is None:
        return False
    directory = _directory(cache_dir)
    try:
        if unsafe_directory(directory) is not None:
            return False
        (directory / INDEX_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
        if unsafe_directory(directory / INDEX_DIR) is not None:
            return False
        body = json.dumps({"key": key, "module_key": module_key,
                           "source_sha256": _checksum(generated.source),
                           "generated": _generated_data(generated), "layout": layout},
                          sort_keys=True)
        atomic_write_text(_entry_path(cache_dir, key), f"{_CHECK_PREFIX}{_checksum(body)}\n{body}")
    except (OSError, TypeError, ValueError):
        return False
    return True


def _read_entry(path: Path, key: str) -> dict | None:
    text = _read_regular(path)
    if text is None:
        return None
    head, sep, body = text.partition("\n")
    if not sep or not head.startswith(_CHECK_PREFIX):
        return None
    if head[len(_CHECK_PREFIX):].strip() != _checksum(body):
        return None
    try:
        entry = json.loads(body)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    return entry


def lookup(key: str | None, cache_dir=None) -> tuple[str, GeneratedModule, dict] | None:
    """``(module key, generated module, layout)`` of an indexed declaration whose module
    file is intact, else None (the caller derives)."""
    if key is None:
        return None
    directory = _directory(cache_dir)
    if not directory.is_dir() or unsafe_directory(directory) is not None:
        return None
    entry = _read_entry(_entry_path(cache_dir, key), key)
    if entry is None:
        return None
    try:
        mkey = str(entry["module_key"])
        text = _read_regular(directory / f"{module_name(mkey)}.py")
        if text is None:
            return None
        head, sep, source = text.partition("\n")
        if (not sep or head[len(_CHECK_PREFIX):].strip() != _checksum(source)
                or _checksum(source) != entry["source_sha256"]):
            return None
        generated = _generated_from(entry["generated"], source)
        layout = dict(entry["layout"])
        layout["param_shapes"] = [(str(n), tuple(int(x) for x in s))
                                  for n, s in layout["param_shapes"]]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
    return mkey, generated, layout


def clear_index(cache_dir=None) -> int:
    """Delete every index entry; returns the count removed."""
    folder = _directory(cache_dir) / INDEX_DIR
    count = 0
    for p in folder.glob("*.json") if folder.is_dir() else ():
        try:
            os.unlink(p)
            count += 1
        except OSError:
            pass
    return count
