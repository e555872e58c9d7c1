"""The uncompiled reference path: interpret a derived program with NumPy.

This evaluator shares nothing with the Numba code generator except the program itself, so
comparing the two is a real witness: same derivation, independent execution.  Map bodies
are turned into NumPy functions with :func:`sympy.lambdify`; each op's NumPy rule is its
kit's entry in :data:`symnn.ops.NUMPY`.

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

from symnn import ops as P
from symnn.errors import DerivationError
from symnn.ops._numpy import NUMPY_FUNCTIONS, numpy_function

__all__ = ["evaluate", "NUMPY_FUNCTIONS", "numpy_function"]


def evaluate(ops, env: dict) -> dict:
    """Run ``ops`` on the values in ``env`` (``{Var: ndarray}``); returns the extended env.

    Per-sample values are arrays of shape ``(B, size)``; params have their own shapes;
    totals are 0-d.
    """
    env = dict(env)
    B = next(v.shape[0] for k, v in env.items() if k.per_sample)
    for op in ops:
        rule = P.NUMPY.get(type(op))
        if rule is None:
            raise DerivationError(f"reference evaluator: no rule for {type(op).__name__}")
        env[op.out] = rule(op, env, B)
    return env
