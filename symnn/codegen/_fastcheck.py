"""Whether :mod:`symnn.codegen.fastmath` is usable — without importing SymPy (the kernel
runtime asks this when a cached kernel module is loaded; :mod:`symnn.codegen.printer`
re-exports it)."""

from __future__ import annotations

import importlib
import importlib.util

__all__ = ["fastmath_available", "FASTMATH_NAMES"]

#: The functions :mod:`symnn.codegen.fastmath` must export.
FASTMATH_NAMES = ("fm_exp", "fm_expm1", "fm_log", "fm_log1p", "fm_tanh", "fm_sigmoid",
                  "fm_softplus", "fm_erf")


def fastmath_available() -> bool:
    """True when :mod:`symnn.codegen.fastmath` exists and exports every ``fm_*`` function.

    >>> fastmath_available()
    True
    """
    try:
        if importlib.util.find_spec("symnn.codegen.fastmath") is None:
            return False
        mod = importlib.import_module("symnn.codegen.fastmath")
    except Exception:  # a broken module is as good as a missing one
        return False
    return all(hasattr(mod, n) for n in FASTMATH_NAMES)
