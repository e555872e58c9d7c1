"""A kernel's first call, from Numba's cache when it can: then the runtime blocks wait.

A generated kernel calls the runtime blocks (:mod:`symnn.codegen.numba.runtime`), which
must be compiled — or loaded from Numba's cache, one index and one object file each — with
their fixed signatures *before* the kernel is compiled (:func:`prepare_runtime`).  A kernel
that Numba loads from its own cache needs none of that: its cached machine code already
holds the blocks it calls, linked in when it was compiled.  So the first call of a kernel
first asks Numba's cache for it (:func:`load_cached`); only on a miss are the runtime
blocks prepared and the kernel compiled.  A warm process that computes one gradient loads
one kernel instead of one plus every runtime block (22 cache entries for an MLP).

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
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_cached"]


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
