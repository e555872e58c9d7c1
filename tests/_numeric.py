"""Numeric helpers shared by the tests (finite differences, random data)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from symnn.codegen.reference import NUMPY_FUNCTIONS


def lambdify(symbols, expr):
    return sp.lambdify(symbols, expr, modules=[NUMPY_FUNCTIONS, "numpy", "scipy"], cse=True)


def central_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar function, coordinate by coordinate."""
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h * max(1.0, abs(x[i]))
        g[i] = (f(x + e) - f(x - e)) / (2 * e[i])
    return g


def rel_err(a, b, floor: float = 1e-8) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), floor))


def targets(rng, loss_name: str, B: int, n: int) -> np.ndarray:
    """Targets valid for a loss: probability rows for cross-entropy/KL, [0, 1] for BCE."""
    if loss_name in ("cross_entropy", "kl"):
        Y = rng.random((B, n)) + 0.05
        return Y / Y.sum(axis=1, keepdims=True)
    if loss_name == "bce":
        return rng.random((B, n))
    return rng.normal(size=(B, n))
