"""Numba's cache of the runtime blocks keyed on every runtime file, not on one (walk, round 6).

Numba keys a cached function on the content of *its own* source file.  The runtime blocks
(:mod:`symnn.codegen.numba.runtime`, ``runtime_conv``, ``gemm``) call jitted code of other
files (``gemm._gemm``, ``_blas._gemm``, :mod:`symnn.codegen.fastmath`) and carry a compiled
copy of it; so after an upgrade that changed only ``gemm.py``, ``runtime._mm_nn`` was
still loaded from ``symnn/codegen/numba/__pycache__`` with the *old* product inside — even
with a fresh ``SYMNN_CACHE_DIR`` (the generated kernels' own names already carry
:func:`~symnn.codegen.numba.runtime.runtime_fingerprint`).

:func:`install` puts, in front of Numba's cache locators, subclasses that serve exactly
the runtime files and add the SHA-256 of all of them (:data:`FILES`) to the source stamp
Numba stores in its index: a change to any runtime file makes every runtime block's index
stale, and Numba recompiles them.  This reaches into ``numba.core.caching`` (as
:func:`~symnn.codegen.numba.runtime._no_inline` reaches into the code library); on a Numba
without these internals it does nothing.

Examples
--------
>>> install()
True
>>> len(files_fingerprint())
64
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["FILES", "files_fingerprint", "install"]

_CODEGEN = Path(__file__).resolve().parent.parent

#: The runtime files, relative to ``symnn/codegen``: the same tuple as
#: :data:`symnn.codegen.numba.runtime.RUNTIME_FILES` (a test keeps them equal; this module
#: cannot import runtime.py, which needs it before its first block is defined).
FILES = ("numba/runtime.py", "fastmath.py", "numba/_blas.py", "numba/runtime_conv.py",
         "numba/gemm.py", "fastmath_extra.py")


@functools.lru_cache(maxsize=None)
def files_fingerprint() -> str:
    """SHA-256 of the bytes of :data:`FILES`."""
    h = hashlib.sha256()
    for name in FILES:
        try:
            h.update((_CODEGEN / name).read_bytes())
        except OSError:
            h.update(name.encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _served() -> frozenset:
    return frozenset(str((_CODEGEN / name).resolve()) for name in FILES)


def _stamped(base):
    class Stamped(base):
        _symnn_stamped = True

        @classmethod
        def from_function(cls, py_func, py_file):
            try:
                if str(Path(py_file).resolve()) not in _served():
                    return None
            except (OSError, RuntimeError, TypeError, ValueError):
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return (super().get_source_stamp(), files_fingerprint())

    Stamped.__name__ = Stamped.__qualname__ = "Symnn" + base.__name__.lstrip("_")
    return Stamped


def install() -> bool:
    """Put the stamped locators in front of Numba's (once); False where Numba lacks them."""
    try:
        from numba.core import caching

        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
        classes = impl._locator_classes
    except (ImportError, AttributeError):  # pragma: no cover - depends on Numba internals
        return False
    if any(getattr(c, "_symnn_stamped", False) for c in classes):
        return True
    bases = [c for c in classes if c.__name__.lstrip("_") in (
        "UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")]
    classes[:0] = [_stamped(b) for b in bases]
    return bool(bases)
