"""A kernel's first call: only the runtime blocks it calls, then the kernel from the cache.

A generated kernel calls the runtime blocks (:mod:`symnn.codegen.numba.runtime`), which
are compiled — or loaded from Numba's cache, one index and one object file each — with
their fixed signatures before the kernel (:func:`prepare_runtime`), so that the kernel
calls *their* code.  (A kernel's cached machine code also carries a copy of every block it
calls, but the definition loaded first in a process is the one every caller uses: were
the kernel loaded before the blocks, it would run its own copies, whose last bits may
differ — a warm process would not reproduce the cold one's numbers exactly.)

A warm process needs no more than the blocks its kernel calls: :func:`prepare_blocks`
loads exactly those (the runtime names in the kernel's code; no block calls another), and
:func:`load_cached` then loads the kernel from Numba's cache.  Only on a miss is the whole
runtime prepared and the kernel compiled, as before.  The first gradient of a warm MLP
loads 8 cache entries instead of 22.

This reaches into the Numba dispatcher (``_cache``, ``add_overload``: what its own
``compile`` does on a cache hit); on a Numba without them, :func:`load_cached` answers
False and the kernel is prepared and compiled as before.

Examples
--------
>>> import numpy as np
>>> from numba import njit
>>> f = njit(lambda a: a.sum())     # not cacheable (a lambda): never a hit
>>> load_cached(f, (np.ones(3),))
False
>>> float(f(np.ones(3)))
3.0
>>> blocks_called(f)                # it calls no runtime block
[]
"""

from __future__ import annotations

from typing import Any

__all__ = ["blocks_called", "load_cached", "prepare_blocks"]

_DONE: set = set()  # (dtype, block name) loaded or compiled in this process


def blocks_called(dispatcher: Any) -> list[str]:
    """The names of the runtime blocks ``dispatcher``'s Python function refers to."""
    from symnn.codegen.numba.runtime import _RUNTIME

    code = getattr(getattr(dispatcher, "py_func", None), "__code__", None)
    return sorted(set(code.co_names) & set(_RUNTIME)) if code is not None else []


def prepare_blocks(dtype: str, names) -> None:
    """Compile (or load from Numba's cache) the runtime blocks ``names`` for ``dtype``, as
    :func:`~symnn.codegen.numba.runtime.prepare_runtime` does for all of them."""
    from symnn.codegen.numba import runtime as R

    todo = [n for n in names if (dtype, n) not in _DONE]
    if not todo or dtype in R._PREPARED:
        return
    from numba.core import types

    scalar = getattr(types, dtype)
    conv = {"a": types.Array(scalar, 1, "C"), "i": types.int64, "s": scalar,
            "v": types.void, "L": types.Array(types.int64, 1, "C", readonly=True)}
    with R._PREPARE_LOCK:
        for name in todo:
            disp = R._RUNTIME[name]
            res, args = R._SIGNATURES[name].split(":")
            disp.disable_compile(False)
            try:
                disp.compile(conv[res](*(conv[c] for c in args)))
            finally:
                disp.disable_compile(True)
            R._no_inline(disp)
            _DONE.add((dtype, name))


def load_cached(dispatcher: Any, args: tuple) -> bool:
    """Load ``dispatcher``'s machine code for ``args`` from Numba's cache, compiling nothing.

    Returns True when the dispatcher can now run ``args`` without compiling (loaded now,
    or already loaded), False when calling it would compile.  An error while reading
    Numba's cache files propagates, as a call of the kernel would raise it.
    """
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or not hasattr(dispatcher, "add_overload"):
        return False
    try:
        from numba.core.compiler_lock import global_compiler_lock

        sig = tuple(dispatcher.typeof_pyval(a) for a in args)
    except Exception:  # pragma: no cover - an argument Numba cannot type: let the call say
        return False
    if sig in dispatcher.overloads:
        return True
    with global_compiler_lock:
        if sig in dispatcher.overloads:  # pragma: no cover - another thread loaded it
            return True
        cres = cache.load_overload(sig, dispatcher.targetctx)
        if cres is None or cres.objectmode:
            return False
        dispatcher._cache_hits[sig] += 1
        dispatcher.targetctx.insert_user_function(cres.entry_point, cres.fndesc,
                                                  [cres.library])
        dispatcher.add_overload(cres)
    return True
