"""Expanded scalar forms: the derived program instantiated on SymPy scalars.

The same program whose layer form prints as the backprop equations is run here with every
input, target and parameter a SymPy symbol.  The results are exact expressions in those
symbols; identical subexpressions are shared objects (run :func:`sympy.cse` over the values
to name them).  Nothing here differentiates the expanded loss: the derivative structure
comes from the program (reverse mode), so the cost grows linearly with network size.

Symbol names: inputs ``x1 … xn`` (one sample) or ``x_s_i`` (batch), targets ``y1 … ym`` /
``y_s_k``; network parameters ``W{l}_{i}{j}`` (1-based; ``W{l}_{i}_{j}`` when an index
exceeds 9) and ``b{l}_{i}``; a custom model's parameters are its own symbols; the mask
of the j-th Dropout layer ``m{j}_{i}`` / ``m{j}_{s}_{i}`` (0 or 1; the forms hold for every
mask, divided by ``1 − p`` where the layer scales).

Examples
--------
>>> import symnn
>>> net = symnn.mlp([1, 1], activation="identity", loss="mse")
>>> g = net.gradient()
>>> sorted(map(str, g))
['W1_11', 'b1_1']
>>> g[sorted(g, key=str)[1]]
2*W1_11*x1 + 2*b1_1 - 2*y1
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symnn import ops as P
from symnn.declare.limits import check_expanded
from symnn.declare.model import Model
from symnn.derive import derive, hvp_program, input_jvp_program
from symnn.derive.named import SymbolDict
from symnn.errors import DerivationError, SizeLimitError

__all__ = [
    "param_symbols",
    "expanded_gradient",
    "expanded_loss",
    "expanded_hessian",
    "expanded_jacobian",
    "GRADIENT_LIMIT",
    "HESSIAN_LIMIT",
]

#: Default largest parameter count for :func:`expanded_gradient`.
GRADIENT_LIMIT = 5000
#: Default largest parameter count for :func:`expanded_hessian`.
HESSIAN_LIMIT = 400
#: Default largest n_inputs × n_outputs for :func:`expanded_jacobian`.
JACOBIAN_LIMIT = 10000


def _idx(*ix) -> str:
    if all(i < 9 for i in ix):
        return "".join(str(i + 1) for i in ix)
    return "_".join(str(i + 1) for i in ix)


def param_symbols(declared) -> dict[str, np.ndarray]:
    """Symbol arrays for each parameter, keyed by parameter name (``W1`` → (n1, n0) array)."""
    if isinstance(declared, Model):
        return {"theta": np.array(declared.params, dtype=object)}
    out = {}
    for name, shape in declared.param_shapes:
        arr = np.empty(shape, dtype=object)
        for ix in np.ndindex(*shape):
            arr[ix] = sp.Symbol(f"{name}_{_idx(*ix)}", real=True)
        out[name] = arr
    return out


def _sample_symbols(prefix: str, B: int, n: int, declared=None) -> np.ndarray:
    arr = np.empty((B, n), dtype=object)
    custom = isinstance(declared, Model) and prefix == "x"
    for s in range(B):
        for i in range(n):
            if custom and B == 1:
                arr[s, i] = declared.inputs[i]
            elif custom:
                arr[s, i] = sp.Symbol(f"{declared.inputs[i]}_{s + 1}", real=True)
            elif B == 1:
                arr[s, i] = sp.Symbol(f"{prefix}{i + 1}", real=True)
            else:
                arr[s, i] = sp.Symbol(f"{prefix}_{s + 1}_{i + 1}", real=True)
    return arr


def _check(declared, limit, default, what, alternative):
    P_ = declared.n_params
    lim = default if limit is None else limit
    if P_ > lim:
        raise SizeLimitError(
            f"{what} of a network with {P_} parameters exceeds the limit of {lim} "
            f"(limit= raises it); {alternative}"
        )


def _env(d, declared, B):
    env = {d.x: _sample_symbols("x", B, declared.n_inputs, declared),
           d.y: _sample_symbols("y", B, declared.n_outputs)}
    syms = param_symbols(declared)
    for p in d.params:
        env[p] = syms[p.name]
    for j, (m, p) in enumerate(d.meta.get("masks", ()), 1):  # Dropout: m_j symbols
        env[m] = _mask_symbols(j, p, B, m.size)
    return env


def _mask_symbols(j: int, p: float, B: int, n: int) -> np.ndarray:
    """The scaled mask ``m / (1 − p)`` of Dropout layer ``j``: symbols ``m{j}_{i}`` (one
    sample) or ``m{j}_{s}_{i}`` over ``1 − p`` (exact for a short decimal ``p``)."""
    q = sp.nsimplify(p)
    scale = 1 / (1 - (q if float(q) == p else sp.Float(p)))
    arr = np.empty((B, n), dtype=object)
    for s, i in np.ndindex(B, n):
        name = f"m{j}_{i + 1}" if B == 1 else f"m{j}_{s + 1}_{i + 1}"
        arr[s, i] = scale * sp.Symbol(name, real=True)
    return arr


def _run(ops, env, B):
    """Interpret ``ops`` on object arrays of SymPy expressions (each op's rule is its
    kit's entry in :data:`symnn.ops.SYMPY`)."""
    env = dict(env)
    for op in ops:
        rule = P.SYMPY.get(type(op))
        if rule is None:
            raise DerivationError(f"expanded form: no rule for op {type(op).__name__}")
        env[op.out] = rule(op, env, B)
    return env


def _flat_symbols(declared, d):
    syms = param_symbols(declared)
    return [s for p in d.params for s in np.ravel(syms[p.name])]


def expanded_loss(declared, batch_size: int = 1) -> sp.Expr:
    """The batch loss L as one SymPy expression (mean over ``batch_size`` samples)."""
    _check(declared, None, GRADIENT_LIMIT, "the expanded loss",
           "use net.equations() or net.compile()")
    check_expanded(declared, batch_size, "the expanded loss")
    d = derive(declared)
    env = _run(d.forward_ops, _env(d, declared, batch_size), batch_size)
    return env[d.program.outputs["loss"]]


def expanded_gradient(declared, batch_size: int = 1, limit: int | None = None) -> dict:
    """``{parameter symbol: ∂L/∂θ}``, exact, in flat-layout order.

    Raises
    ------
    SizeLimitError
        If the network has more than ``limit`` (default :data:`GRADIENT_LIMIT`) parameters.
    """
    _check(declared, limit, GRADIENT_LIMIT, "the expanded gradient",
           "use net.equations() for the matrix form or net.compile() for numbers")
    check_expanded(declared, batch_size, "the expanded gradient")
    d = derive(declared)
    env = _run(d.program.ops, _env(d, declared, batch_size), batch_size)
    syms = param_symbols(declared)
    out = SymbolDict()
    for p in d.params:
        g = env[d.program.outputs["grad:" + p.name]]
        for ix in np.ndindex(*p.shape):
            out[syms[p.name][ix]] = g[ix]
    return out


def expanded_hessian(declared, batch_size: int = 1, limit: int | None = None) -> sp.Matrix:
    """The exact P × P Hessian, one symbolic Hessian-vector product per column.

    Column ``j`` is the forward-over-reverse tangent of the gradient along the unit vector
    ``e_j``; zero tangents prune themselves, so each column costs one pass over the program.
    """
    _check(declared, limit, HESSIAN_LIMIT, "the expanded Hessian",
           "use net.compile().hessian(θ, X, y) or .hvp(...) for numbers")
    check_expanded(declared, batch_size, "the expanded Hessian")
    d = derive(declared)
    base = _run(d.program.ops, _env(d, declared, batch_size), batch_size)
    ops, tangents, outs = hvp_program(d)
    P_ = declared.n_params
    H = sp.zeros(P_, P_)
    col = 0
    for p in d.params:
        for ix in np.ndindex(*p.shape):
            env = dict(base)
            for q in d.params:
                z = np.zeros(q.shape, dtype=object)
                z[...] = sp.S.Zero
                env[tangents[q]] = z
            env[tangents[p]][ix] = sp.S.One
            env = _run(ops, env, batch_size)
            row = 0
            for q in d.params:
                hv = np.ravel(env[outs[q.name]])
                for k in range(q.size):
                    H[row + k, col] = hv[k]
                row += q.size
            col += 1
    return H


def expanded_jacobian(declared, limit: int | None = None) -> sp.Matrix:
    """∂ŷ/∂x for one sample: an ``n_out × n_in`` matrix of exact expressions."""
    n_in, n_out = declared.n_inputs, declared.n_outputs
    lim = JACOBIAN_LIMIT if limit is None else limit
    if n_in * n_out > lim or declared.n_params > GRADIENT_LIMIT:
        raise SizeLimitError(
            f"the expanded Jacobian ({n_out}×{n_in}, {declared.n_params} parameters) exceeds "
            f"the limit; use net.compile().jacobian(θ, X)"
        )
    d = derive(declared)
    base = _run(d.forward_ops, _env(d, declared, 1), 1)
    ops, x_dot, out = input_jvp_program(d)
    J = sp.zeros(n_out, n_in)
    for i in range(n_in):
        env = dict(base)
        e = np.empty((1, n_in), dtype=object)
        e[...] = sp.S.Zero
        e[0, i] = sp.S.One
        env[x_dot] = e
        env = _run(ops, env, 1)
        for k in range(n_out):
            J[k, i] = env[out][0, k]
    return J
