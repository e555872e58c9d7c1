"""BLAS threads chosen by problem size.

OpenBLAS splits a matrix product over its threads whatever the shapes; for the skinny
products of a small network (a side of 32 or less) and for symmetric eigenproblems of a few
hundred rows, the threads' start-up and synchronisation cost more than they save — on a
2-core machine the 193-parameter dense Hessian took 0.91 ms with one thread and 2.11 ms
with two, and ``eigvalsh`` of a 193×193 matrix 1.2 ms against tens of ms when the other core
is busy.  :func:`blas_threads` runs a block with the BLAS libraries loaded in this process
(NumPy's and SciPy's OpenBLAS, which the kernels call) limited to ``n`` threads, through
`threadpoolctl <https://github.com/joblib/threadpoolctl>`_ when it is installed (a
dependency of scikit-learn); without it the block runs unchanged.

:data:`SMALL_PARAMS` is the size below which symnn's dense second-order work (the dense
Hessian's batched Hessian-vector products, the dense eigensolve) runs single-threaded: a
network of at most 1024 parameters has no weight matrix with both sides above 32, so its
products are all skinny.

Examples
--------
>>> import numpy as np
>>> with blas_threads(1):
...     float(np.linalg.eigvalsh(np.eye(3))[0])
1.0
>>> small_problem(193), small_problem(5000)
(True, False)
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["SMALL_PARAMS", "blas_threads", "small_problem", "single_threaded_if_small"]

#: Parameter count up to which dense second-order work runs on one BLAS thread.
SMALL_PARAMS = 1024

#: ``[(libraries-loaded key, controller or None)]``: one cached ThreadpoolController (its
#: construction scans the loaded libraries, about 5 ms), rebuilt when SciPy's BLAS loads.
_CONTROLLER: list = []


def _controller():
    key = ("numpy" in sys.modules, "scipy.linalg" in sys.modules)
    if _CONTROLLER and _CONTROLLER[0][0] == key:
        return _CONTROLLER[0][1]
    try:
        from threadpoolctl import ThreadpoolController

        ctl = ThreadpoolController()
    except Exception:  # not installed, or a library it cannot inspect
        ctl = None
    _CONTROLLER[:] = [(key, ctl)]
    return ctl


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with at most ``n`` BLAS threads (unchanged without threadpoolctl)."""
    ctl = _controller()
    if ctl is None:
        yield
        return
    with ctl.limit(limits=int(n), user_api="blas"):
        yield


def small_problem(n_params: int) -> bool:
    """True when ``n_params`` ≤ :data:`SMALL_PARAMS` (dense work runs on one thread)."""
    return int(n_params) <= SMALL_PARAMS


@contextmanager
def single_threaded_if_small(n_params: int) -> Iterator[None]:
    """:func:`blas_threads` (1) for a small problem, else the block unchanged."""
    if small_problem(n_params):
        with blas_threads(1):
            yield
    else:
        yield
