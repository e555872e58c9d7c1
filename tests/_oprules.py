"""The op-rule harness shared by the op-kit tests (tests/test_conv.py, test_attention.py,
test_layernorm.py): one op, built on inputs of the kinds the derivation uses, has its
reverse rule (through ``symnn.derive.reverse``) and its forward rule (through
``symnn.derive.tangent.jvp``) checked against central differences of the NumPy reference.

An op case is ``(label, make, ins, out_shape)``: ``make(out_var)`` builds the op, ``ins``
its input Vars, ``out_shape`` an int (a per-sample output of that size) or a tuple (a
parameter-shaped output).  The data are seeded from ``crc32(label)`` (reproducible across
processes, unlike ``hash``).
"""

from __future__ import annotations

import zlib

import numpy as np
import sympy as sp

from symnn import ops as P
from symnn.codegen.reference import evaluate
from symnn.derive.reverse import reverse
from symnn.derive.tangent import jvp

__all__ = ["var", "check_reverse_rule", "check_forward_rule"]

B = 3      # samples in a batch
H = 1e-6   # central-difference step


def var(name, kind, n):
    """A Var of size ``n`` (an int) or shape ``n`` (a tuple)."""
    return P.Var(name, kind, (n,) if isinstance(n, int) else n)


def _out_var(out_shape):
    per_sample = isinstance(out_shape, int)
    return P.Var("o", "sample" if per_sample else "param",
                 (out_shape,) if per_sample else out_shape)


def _scalar_program(make, out_shape):
    """L = ⟨r · op(ins)⟩ for a per-sample output, L = ‖op(ins)‖² for a parameter-shaped one."""
    b = P.Builder()
    out = b.emit(make(_out_var(out_shape)))
    r = None
    if isinstance(out_shape, int):
        r = var("r", "input", out_shape)
        d = b.emit(P.Dot(var("d", "sample", 1), out, r))
        L = b.emit(P.BatchMean(P.Var("L", "total", ()), d))
    else:
        L = b.emit(P.Penalty(P.Var("L", "total", ()), out, "l2", sp.Integer(1)))
    return b, out, r, L


def _values(ins, rng):
    return {v: rng.normal(size=(B, v.size)) if v.per_sample else rng.normal(size=v.shape)
            for v in ins}


def check_reverse_rule(label, make, ins, out_shape, active=None) -> None:
    """The cotangent of every input in ``active`` (default: all of ``ins``) of
    ``L(op(ins))`` against central differences of L (a per-sample cotangent is
    ``∂ℓ_s/∂v_s = B·∂L/∂v_s``)."""
    rng = np.random.default_rng(zlib.crc32(label.encode()))
    b, out, r, L = _scalar_program(make, out_shape)
    forward = list(b.prog.ops)
    active = list(ins) if active is None else list(active)
    ct = reverse(b, L, active, forward)
    env = _values(ins, rng)
    if r is not None:
        env[r] = rng.normal(size=(B, r.size))
    got = evaluate(list(b.prog.ops), dict(env))
    for v in active:
        base = env[v]
        fd = np.zeros_like(base)
        for i in range(base.size):
            e = np.zeros_like(base)
            e.flat[i] = H
            lp = float(evaluate(forward, {**env, v: base + e})[L])
            lm = float(evaluate(forward, {**env, v: base - e})[L])
            fd.flat[i] = (lp - lm) / (2 * H)
        if v.per_sample:
            fd = fd * B
        mine = got[ct[v]] if v in ct else np.zeros_like(fd)
        assert np.allclose(np.reshape(mine, fd.shape), fd, rtol=1e-6, atol=1e-7), (label, v)


def check_forward_rule(label, make, ins, out_shape) -> None:
    """The tangent of ``op(ins)`` along random directions against central differences."""
    rng = np.random.default_rng(1 + zlib.crc32(label.encode()))
    b = P.Builder()
    out = b.emit(make(_out_var(out_shape)))
    forward = list(b.prog.ops)
    dots = {v: P.Var(v.name + "_d", "sample" if v.per_sample else "param", v.shape)
            for v in ins}
    d = jvp(b, forward, dots)
    env = _values(ins, rng)
    dirs = _values(ins, rng)
    env.update({dots[v]: dirs[v] for v in ins})
    batch = {var("batch", "input", 1): np.zeros((B, 1))}  # the batch size, for the evaluator
    got = evaluate(list(b.prog.ops), {**env, **batch})[d[out]]
    plus = evaluate(forward, {**batch, **{v: env[v] + H * dirs[v] for v in ins}})[out]
    minus = evaluate(forward, {**batch, **{v: env[v] - H * dirs[v] for v in ins}})[out]
    fd = (plus - minus) / (2 * H)
    assert np.allclose(np.reshape(got, fd.shape), fd, rtol=1e-6, atol=1e-7), label
