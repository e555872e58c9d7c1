"""Numba's own cache files of a generated module: telling their errors, deleting them.

:meth:`symnn.codegen.model.CompiledModel._call` retries a kernel call once after deleting
the module's damaged cache files (Numba then compiles it again).

>>> _from_numba_cache(ValueError("not from the cache"))
False
"""

from __future__ import annotations

__all__ = ["_from_numba_cache", "_purge_numba_cache"]


def _from_numba_cache(err: BaseException) -> bool:
    """True when an exception was raised while Numba read its cache files."""
    import traceback

    return any(fr.filename.replace("\\", "/").endswith("numba/core/caching.py")
               for fr in traceback.extract_tb(err.__traceback__))


def _purge_numba_cache(module) -> None:
    """Delete Numba's index and data files of a generated module (they are rebuilt)."""
    import glob
    import os

    path = getattr(module, "__file__", None)
    if not path or not os.path.exists(path):
        return
    folder = os.path.join(os.path.dirname(path), "__pycache__")
    stem = os.path.splitext(os.path.basename(path))[0]
    for f in glob.glob(os.path.join(folder, stem + ".*")):
        try:
            os.unlink(f)
        except OSError:
            pass
