"""Ahead-of-time kernels: a model's Numba kernels as an extension module in the cache.

A warm process that runs its kernels through Numba pays for Numba's CPU target (built on
the first call of any compiled function: its typing and lowering registries, LLVM, and
SciPy's ``scipy.linalg`` for BLAS) although it compiles nothing.  This module lets
:func:`symnn.load_compiled` skip that: with ``aot=True`` it builds, once per model, an
extension module holding the model's kernels and the argument checks they need
(:mod:`numba.pycc`: the same Numba compiler and LLVM, for this CPU, with each function's own
options — :mod:`symnn.codegen._aotbuild`), stored in the kernel cache beside the generated
modules (``<cache>/symnn-aot/``).  Later processes import it: their kernels run without
Numba's target, and the BLAS ``?gemm`` the kernels call is SciPy's, taken from
``scipy.linalg.cython_blas`` alone (about a tenth of importing ``scipy.linalg``).  The
results are the Numba path's, bit for bit (tests/test_aot.py).

Keyed and checked like the kernel cache: the file name is a hash of the generated module's
key (the symnn runtime, Numba, llvmlite, NumPy, Python), the dtype, this module's and the
builder's source and that of the compiled checks, and the CPU (``/proc/cpuinfo``: model
and flags); a JSON record written after the module holds its SHA-256, which is checked
before the module is imported.  A missing, stale or damaged entry is ignored (and
deleted), as is one in a folder that others
can write (:func:`symnn.codegen.cache.unsafe_directory`): the model runs through
Numba as before, and with ``aot=True`` the entry is rebuilt.  A failed build (no C
compiler, a Numba without :mod:`numba.pycc`, anything) is silent and leaves the Numba path.
Only Linux is served (the CPU's identity comes from ``/proc/cpuinfo``).

Calls are guarded: an ahead-of-time function runs only for arguments of exactly the types
it was built for (1-D, C-contiguous, writable arrays of the model's dtype, ...); anything
else goes to the Numba dispatcher, as without this module.

Examples
--------
>>> import numpy as np
>>> guard_ok((np.zeros(3), np.ones(2)), np.dtype(np.float64))
True
>>> guard_ok((np.zeros(3, np.float32),), np.dtype(np.float64))
False
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from symnn.codegen._aotbuild import CHECKS, FORMAT, entry_paths

__all__ = ["attach", "guard_ok", "entry_paths", "aot_key"]

_LOADED: dict = {}     # key → the imported extension module
_INSTALLED: dict = {}  # (module name, check name) → {dtype: compiled function}
_CPU: list = []
_BLAS: list = []  # scipy.linalg.cython_blas, when loaded on its own


def _cpu_identity() -> str | None:
    """The CPU's model name and feature flags (Linux), or None where unknown."""
    if _CPU:
        return _CPU[0]
    ident = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            head = f.read(1 << 16)
        keep = [ln for ln in head.splitlines()[:40]
                if ln.startswith(("vendor_id", "model name", "flags", "cpu family", "model\t"))]
        ident = "\n".join(keep) if keep else None
    except OSError:
        ident = None
    _CPU.append(ident)
    return ident


def _own_source() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    # the checks compiled into every module (_aotbuild.CHECKS) too (issue 16, callpath)
    for name in ("aot.py", "_aotbuild.py", "_validate.py", "_fastpath.py"):
        try:
            h.update((here / name).read_bytes())
        except OSError:
            h.update(b"?")
    return h.hexdigest()


def aot_key(module_key: str, dtype: str) -> str | None:
    """The key of a model's ahead-of-time module, or None where none is served."""
    cpu = _cpu_identity() if sys.platform.startswith("linux") else None
    if cpu is None or not module_key:
        return None
    h = hashlib.sha256()
    for part in (str(FORMAT), module_key, dtype, _own_source(), cpu, sys.version):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def guard_ok(args: tuple, dtype: np.dtype) -> bool:
    """Every argument is a 1-D, C-contiguous, writable, aligned ndarray of ``dtype``."""
    for a in args:  # (carray: C-contiguous, aligned and writable in one test; issue 16)
        if (type(a) is not np.ndarray or a.ndim != 1 or not a.flags.carray
                or (a.dtype is not dtype and a.dtype != dtype)):
            return False
    return True


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _discard(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except OSError:
            pass


def _read_record(key: str, so: Path, rec: Path) -> dict | None:
    """The entry's record when it and the module match the key and the checksum; a damaged
    entry is deleted."""
    try:
        record = json.loads(rec.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        if rec.exists() or so.exists():
            _discard(so, rec)
        return None
    ok = (isinstance(record, dict) and record.get("key") == key
          and isinstance(record.get("kernels"), dict) and isinstance(record.get("checks"), list)
          and record.get("sha256") == _sha256(so))
    if not ok:
        _discard(so, rec)
        return None
    return record


def _safe(root: Path) -> bool:
    """The entry's folder and the cache folder above it pass the kernel cache's rule
    (:func:`symnn.codegen.cache.unsafe_directory`: yours, not writable by others)."""
    from symnn.codegen.cache import unsafe_directory

    return unsafe_directory(root) is None and unsafe_directory(root.parent) is None


def _blas_module() -> bool:
    """Make ``scipy.linalg.cython_blas`` importable at no more than its own cost: the
    module's ``?gemm`` is looked up there on first use (as Numba's is), and importing it
    the usual way would import all of ``scipy.linalg``.  True when it was loaded here (to
    be withdrawn from ``sys.modules`` once the look-ups are done: :func:`_import`)."""
    name = "scipy.linalg.cython_blas"
    if name in sys.modules or "scipy.linalg" in sys.modules:
        return False
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = Path(list(spec.submodule_search_locations)[0]) / "linalg"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / ("cython_blas" + suffix)
        if path.is_file():
            loader = importlib.machinery.ExtensionFileLoader(name, str(path))
            mspec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
            module = importlib.util.module_from_spec(mspec)
            sys.modules[name] = module
            try:
                loader.exec_module(module)
            except Exception:
                del sys.modules[name]
                return False
            _BLAS.append(module)  # kept: the looked-up pointers point into it
            return True
    return False


def _probe(module: Any, loaded_blas: bool) -> None:
    """Let the module look its ``?gemm`` up now, then withdraw the BLAS module loaded by
    :func:`_blas_module` (so that ``import scipy.linalg`` later binds it as usual)."""
    try:
        if loaded_blas:
            module._blas_probe(np.array([1.0, 1.0, 0.0]), np.array([1, 1, 0], np.float32))
    finally:
        if loaded_blas:
            sys.modules.pop("scipy.linalg.cython_blas", None)


def _follow_gemm_switch(so: Path) -> None:
    """The module's own copy of the products' switch (``_aotbuild.GEMM_FLAG``) follows
    :func:`symnn.codegen.numba.gemm.set_gemm` (the module is loaded: ``CDLL`` finds it)."""
    import ctypes

    from symnn.codegen._aotbuild import GEMM_FLAG
    from symnn.codegen.numba.gemm import mirror_flag

    try:
        flag = ctypes.c_int32.in_dll(ctypes.CDLL(str(so)), GEMM_FLAG)
    except ValueError:  # a module whose kernels make no product
        return
    mirror_flag(flag)


def _import(key: str, cache_dir) -> tuple[Any, dict] | None:
    """The extension module of ``key`` and its record, or None (missing or damaged)."""
    if key in _LOADED:
        return _LOADED[key]
    name, so, rec = entry_paths(key, cache_dir)
    if not so.is_file() or not _safe(so.parent):
        return None
    record = _read_record(key, so, rec)
    if record is None:
        return None
    loaded_blas = _blas_module()
    try:
        loader = importlib.machinery.ExtensionFileLoader(name, str(so))
        spec = importlib.util.spec_from_file_location(name, str(so), loader=loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        _probe(module, loaded_blas)
        _follow_gemm_switch(so)
    except Exception:  # a module that does not load: the Numba path, and rebuild
        if loaded_blas:
            sys.modules.pop("scipy.linalg.cython_blas", None)
        _discard(so, rec)
        return None
    _LOADED[key] = (module, record)
    return _LOADED[key]


def _install_checks(module: Any, record: dict, dtype: np.dtype) -> None:
    """Route the argument checks of :data:`CHECKS` to the module's compiled ones for
    arguments of the types they were built for (a guarded wrapper around the original)."""
    for check in record["checks"]:
        if check not in CHECKS or not hasattr(module, check):
            continue
        where = CHECKS[check][0]
        table = _INSTALLED.get((where, check))
        if table is None:
            mod = importlib.import_module(where)
            table = _INSTALLED[(where, check)] = {}
            setattr(mod, check, _guarded(getattr(mod, check), table, CHECKS[check][1]))
        table.setdefault(dtype, getattr(module, check))


def _guarded(original, table: dict, codes: str):
    """``original`` (a Numba dispatcher), but the compiled function of ``table`` (by dtype)
    for arguments exactly of its types."""
    def check(*args):
        fn = table.get(_dtype_of(args, codes))
        if fn is not None:
            return fn(*args)
        return original(*args)

    check._symnn_original = original
    check.__doc__ = getattr(original, "__doc__", None)
    check.py_func = getattr(original, "py_func", None)
    return check


def _dtype_of(args: tuple, codes: str):
    """The dtype of the ``a`` arguments when every argument has the type its code says,
    else None."""
    if len(args) != len(codes):
        return None
    dt = None
    for a, c in zip(args, codes):
        if c in "aL":
            if type(a) is not np.ndarray or a.ndim != 1 or not a.flags.carray:
                return None
            if c == "L":
                if a.dtype != np.int64:
                    return None
            elif dt is None:
                dt = a.dtype
                if dt != np.float64 and dt != np.float32:
                    return None
            elif a.dtype != dt:
                return None
        elif not _scalar_ok(a, c):
            return None
    return dt


def _scalar_ok(a, code: str) -> bool:
    if code == "i":
        return type(a) is int and -(1 << 63) <= a < (1 << 63)
    if code == "f":
        return type(a) is float
    return type(a) is bool


def attach(model: Any, cache_dir=None, build: bool | None = False) -> bool:
    """Give ``model`` its ahead-of-time kernels when its entry is in the cache (with
    ``build``: build the entry first when it is not; None: start building it in the
    background for later processes, :mod:`symnn.codegen._aotauto`).  Returns whether it
    has them; False leaves the model on the Numba path, unchanged."""
    key = aot_key(getattr(model, "_module_key", "") or "", model.dtype.name)
    if key is None or os.environ.get("SYMNN_AOT", "1") == "0":
        return False
    loaded = _import(key, cache_dir)
    if loaded is None and build:
        from symnn.codegen import _aotbuild

        if _aotbuild.build(model, key, cache_dir):
            loaded = _import(key, cache_dir)
    elif loaded is None and build is None:  # the default: built in the background (issue 16)
        from symnn.codegen import _aotauto

        if _aotauto.enabled():
            _aotauto.start(model, key, cache_dir)
    if loaded is None:
        return False
    module, record = loaded
    kernels = {kind: getattr(module, sym) for kind, sym in record["kernels"].items()
               if kind in model.generated.kernels and hasattr(module, sym)}
    if not kernels:
        return False
    _install_checks(module, record, model.dtype)
    model._aot = kernels
    model.__dict__.pop("_entry_lg", None)  # a compiled entry (_fusedentry) calls Numba's kernel
    return True
