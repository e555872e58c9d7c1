"""NumPy evaluation support for Map bodies: the scalar functions' NumPy implementations.

:data:`NUMPY_FUNCTIONS` is the one table of names that :func:`sympy.lambdify` resolves in a
Map body (symnn's own functions — ``sigmoid``, ``softplus`` … — and the SymPy functions
NumPy lacks); :func:`numpy_function` turns a body into a cached NumPy function.  Keep it
the only such table, so that it can be replaced by the function registry's NumPy names.

Examples
--------
>>> import sympy as sp
>>> z = sp.Symbol("z", real=True)
>>> float(numpy_function((z,), sp.Heaviside(z))(2.0))
1.0
"""

from __future__ import annotations

import numpy as np
import scipy.special
import sympy as sp

__all__ = ["NUMPY_FUNCTIONS", "numpy_function"]


def _sigmoid(x):
    return scipy.special.expit(x)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _relu(x):
    return np.maximum(x, 0.0)


def _leaky_relu(x, alpha):
    return np.where(x > 0, x, alpha * x)


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _gelu(x):
    return 0.5 * x * (1.0 + scipy.special.erf(x / np.sqrt(2.0)))


def _swish(x):
    return x * scipy.special.expit(x)


def _xlogy(x, y):
    return scipy.special.xlogy(x, y)


def _heaviside(x, h0=0.5):
    return np.heaviside(x, h0)


def _dirac(x, *k):
    # the derivative of a step is zero away from the step; at the step it is undefined and
    # symnn uses the subgradient convention 0 (documented in symnn.declare.activations)
    return np.zeros_like(np.asarray(x, dtype=float))


#: NumPy implementations of the functions that appear in Map bodies (a name table).
NUMPY_FUNCTIONS = {
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "gelu": _gelu,
    "swish": _swish,
    "xlogy": _xlogy,
    "Heaviside": _heaviside,
    "DiracDelta": _dirac,
    "erf": scipy.special.erf,
}

_LAMBDIFY_CACHE: dict = {}


def numpy_function(symbols: tuple, expr: sp.Expr):
    """A NumPy function of ``symbols`` computing ``expr`` (cached)."""
    key = (symbols, expr)
    fn = _LAMBDIFY_CACHE.get(key)
    if fn is None:
        fn = sp.lambdify(symbols, expr, modules=[NUMPY_FUNCTIONS, "numpy", "scipy"])
        _LAMBDIFY_CACHE[key] = fn
    return fn
