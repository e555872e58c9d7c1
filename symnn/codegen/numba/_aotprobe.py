"""One call of each BLAS ``?gemm`` that the runtime blocks use, for ahead-of-time modules.

An ahead-of-time module (:mod:`symnn.codegen.aot`) carries Numba's helper library, which
looks ``dgemm`` and ``sgemm`` up in ``scipy.linalg.cython_blas`` on first use and keeps
them.  :func:`_blas_probe`, compiled into every such module, makes both look-ups happen
while :mod:`symnn.codegen.aot` has that extension module loaded on its own (without
importing all of ``scipy.linalg``), so that it can withdraw it from ``sys.modules`` at
once: a later ``import scipy.linalg`` then finds SciPy as usual.
"""

from __future__ import annotations

import numba

from symnn.codegen.numba._blas import _gemm

__all__ = ["_blas_probe"]


@numba.njit(error_model="numpy")
def _blas_probe(a, s):
    """``a[2] ← a[0]·a[1]`` by ``dgemm`` and ``s[2] ← s[0]·s[1]`` by ``sgemm`` (1×1
    products); returns ``a[2] + s[2]``.

    >>> import numpy as np
    >>> float(_blas_probe(np.array([2.0, 3.0, 0.0]), np.array([4, 5, 0], np.float32)))
    26.0
    """
    _gemm(0, 0, 1, 1, 1, 1.0, a, 0, 1, a, 1, 1, 0.0, a, 2, 1)
    _gemm(0, 0, 1, 1, 1, 1.0, s, 0, 1, s, 1, 1, 0.0, s, 2, 1)
    return a[2] + s[2]
