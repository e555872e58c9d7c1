"""NumPy evaluation support for Map bodies: the scalar functions' NumPy implementations.

:data:`NUMPY_FUNCTIONS` is the one table of names that :func:`sympy.lambdify` resolves in a
Map body (symnn's own functions — ``sigmoid``, ``softplus`` … — and the SymPy functions
NumPy lacks); :func:`numpy_function` turns a body into a cached NumPy function.  It is
the function registry's table (:data:`symnn.functions.NUMPY_IMPLS`).

Examples
--------
>>> import sympy as sp
>>> z = sp.Symbol("z", real=True)
>>> float(numpy_function((z,), sp.Heaviside(z))(2.0))
1.0
"""

from __future__ import annotations

import sympy as sp

from symnn.functions import NUMPY_IMPLS

__all__ = ["NUMPY_FUNCTIONS", "numpy_function"]


#: NumPy implementations of the functions that appear in Map bodies: the function
#: registry's table itself (kept current as functions are defined).
NUMPY_FUNCTIONS = NUMPY_IMPLS

_LAMBDIFY_CACHE: dict = {}


def numpy_function(symbols: tuple, expr: sp.Expr):
    """A NumPy function of ``symbols`` computing ``expr`` (cached)."""
    key = (symbols, expr)
    fn = _LAMBDIFY_CACHE.get(key)
    if fn is None:
        fn = sp.lambdify(symbols, expr, modules=[NUMPY_FUNCTIONS, "numpy", "scipy"])
        _LAMBDIFY_CACHE[key] = fn
    return fn
