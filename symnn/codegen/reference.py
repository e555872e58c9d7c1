"""The uncompiled reference path: interpret a derived program with NumPy.

This evaluator shares nothing with the Numba code generator except the program itself, so
comparing the two is a real witness: same derivation, independent execution.  Map bodies
are turned into NumPy functions with :func:`sympy.lambdify`.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.derive import derive
>>> d = derive(symnn.mlp([2, 3, 1], activation="tanh"))
>>> env = {"x": np.ones((4, 2)), "y": np.zeros((4, 1)),
...        "W1": np.full((3, 2), 0.1), "b1": np.zeros(3),
...        "W2": np.full((1, 3), 0.2), "b2": np.zeros(1)}
>>> out = evaluate(d.program.ops, {d.program.inputs[k]: v for k, v in env.items()})
>>> round(float(out[d.program.outputs["loss"]]), 6)
0.014025
"""

from __future__ import annotations

import numpy as np
import scipy.special
import sympy as sp

from symnn.derive import program as P
from symnn.errors import DerivationError

__all__ = ["evaluate", "NUMPY_FUNCTIONS", "numpy_function"]


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


#: NumPy implementations of the functions that appear in Map bodies (a name table),
#: derived from the function registry (its ``numpy`` entries; kept current).
from symnn.functions import NUMPY_IMPLS as NUMPY_FUNCTIONS  # noqa: E402

_LAMBDIFY_CACHE: dict = {}


def numpy_function(symbols: tuple, expr: sp.Expr):
    """A NumPy function of ``symbols`` computing ``expr`` (cached)."""
    key = (symbols, expr)
    fn = _LAMBDIFY_CACHE.get(key)
    if fn is None:
        fn = sp.lambdify(symbols, expr, modules=[NUMPY_FUNCTIONS, "numpy", "scipy"])
        _LAMBDIFY_CACHE[key] = fn
    return fn


def _arg_value(env, a: P.Arg, k: int | None, B: int):
    v = env[a.var]
    if a.var.kind == "param":
        flat = np.ravel(v)
        return flat[a.index if a.index is not None else 0]
    if a.index is not None:
        return v[:, a.index]
    if a.var.size == 1:
        return v[:, 0]
    return v[:, k] if k is not None else v


def _map(env, op: P.Map, B: int):
    n = op.out.size
    syms = tuple(a.symbol for a in op.args)
    out = np.empty((B, n))
    if len(op.exprs) == 1 and n > 1:
        vals = []
        for a in op.args:
            v = env[a.var]
            if a.var.kind == "param":
                vals.append(np.ravel(v)[a.index if a.index is not None else 0])
            elif a.index is not None:
                vals.append(v[:, a.index : a.index + 1])
            else:
                vals.append(v)  # (B, n) or (B, 1): broadcasts
        out[:] = numpy_function(syms, op.exprs[0])(*vals)
        return out
    for k in range(n):
        vals = [_arg_value(env, a, k, B) for a in op.args]
        out[:, k] = numpy_function(syms, op.expr_for(k))(*vals)
    return out


def evaluate(ops, env: dict) -> dict:
    """Run ``ops`` on the values in ``env`` (``{Var: ndarray}``); returns the extended env.

    Per-sample values are arrays of shape ``(B, size)``; params have their own shapes;
    totals are 0-d.
    """
    env = dict(env)
    B = next(v.shape[0] for k, v in env.items() if k.per_sample)
    for op in ops:
        if isinstance(op, P.Affine):
            r = env[op.a] @ np.asarray(env[op.W]).T
            if op.b is not None:
                r = r + env[op.b]
        elif isinstance(op, P.MatTVec):
            r = env[op.g] @ env[op.W]
        elif isinstance(op, P.Map):
            r = _map(env, op, B)
        elif isinstance(op, P.Softmax):
            z = env[op.z]
            e = np.exp(z - z.max(axis=1, keepdims=True))
            r = e / e.sum(axis=1, keepdims=True)
        elif isinstance(op, P.LogSumExp):
            z = env[op.z]
            m = z.max(axis=1, keepdims=True)
            r = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        elif isinstance(op, P.Dot):
            r = (env[op.u] * env[op.v]).sum(axis=1, keepdims=True)
        elif isinstance(op, P.SumComp):
            r = env[op.u].sum(axis=1, keepdims=True)
        elif isinstance(op, P.BatchMean):
            r = env[op.u].mean(axis=0).reshape(op.out.shape)
        elif isinstance(op, P.OuterMean):
            r = env[op.u].T @ env[op.v] / B
        elif isinstance(op, P.Add):
            r = env[op.terms[0]]
            for t in op.terms[1:]:
                r = r + env[t]
            r = np.asarray(r)
        elif isinstance(op, P.Penalty):
            r = _penalty(op, np.asarray(env[op.param], dtype=float))
        else:
            raise DerivationError(f"reference evaluator: no rule for {type(op).__name__}")
        env[op.out] = r
    return env


def _penalty(op: P.Penalty, theta: np.ndarray):
    coef = float(op.coef)
    mask = np.ones(theta.shape, dtype=bool)
    if op.indices is not None:
        mask = np.zeros(theta.size, dtype=bool)
        mask[list(op.indices)] = True
        mask = mask.reshape(theta.shape)
    if op.grad:
        g = 2.0 * coef * theta if op.kind == "l2" else coef * np.sign(theta)
        return np.where(mask, g, 0.0)
    t = theta[mask]
    return np.asarray(coef * (np.sum(t * t) if op.kind == "l2" else np.sum(np.abs(t))))
