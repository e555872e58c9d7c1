"""Softmax ops: ``Softmax`` (``exp(z) / Σ exp(z)``) and ``LogSumExp`` (``log Σ exp(z)``).

Both are computed stably (the maximum of ``z`` subtracted first).

================  =========================================  =========================
op                reverse                                    forward
================  =========================================  =========================
``Softmax``       ``ḡ_z = p ⊙ (g − gᵀp)``                    ``ṗ = p ⊙ (ż − pᵀż)``
``LogSumExp``     ``ḡ_z = g p`` with ``p = softmax(z)``      ``ṡ = pᵀ ż``
================  =========================================  =========================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symnn.ops import _rules as H
from symnn.ops.ir import Arg, Op, Var, sym
from symnn.ops.registry import generic_text, op, op_class, register

__all__ = ["Softmax", "LogSumExp"]


@op_class
@dataclass(frozen=True)
class Softmax(Op):
    """``out = exp(z) / Σ exp(z)`` per sample (computed stably)."""

    out: Var
    z: Var

    @property
    def inputs(self):
        return (self.z,)


def _centred(b, p: Var, x: Var) -> tuple[sp.Expr, tuple]:
    """``p ⊙ (x − pᵀx)``, relatively accurate also where the softmax saturates (round 6, exact).

    ``x_k − pᵀx`` of the dominant class (``p_k > 1/2``) cancels: it is
    ``(1 − p_k) x_k − …`` and ``1 − p_k`` rounds away (the Hessian's ``p(1 − p)`` lost ~1e-8
    at logits ×10).  With ``w = x_k`` (0 when no class has ``p > 1/2``), ``d = x − w``
    and ``c = pᵀd``, the same value is ``p ⊙ (d − c)``: ``d_k = 0`` exactly, so the
    dominant entry is ``−p_k c`` with ``c = Σ_{j≠k} p_j (x_j − x_k)`` (no cancellation);
    the others are unchanged.
    """
    ps, xs = sym(p), sym(x)
    m = b.emit(op.Map(b.temp(p.shape), (sp.Heaviside(ps - sp.S.Half, 0),), (Arg(ps, p),)))
    w = b.emit(op.Dot(b.temp((1,)), m, x))
    d = b.emit(op.Map(b.temp(p.shape), (xs - sym(w),), (Arg(xs, x), Arg(sym(w), w))))
    c = b.emit(op.Dot(b.temp((1,)), p, d))
    ds, cs = sym(d), sym(c)
    return ps * (ds - cs), (Arg(ps, p), Arg(ds, d), Arg(cs, c))


def softmax_vjp(b, o: Softmax, g, active):
    """p = softmax(z):  ḡ_z = p ⊙ (g − gᵀp), in the form of :func:`_centred` (round 7: the
    plain form's ``g_k − gᵀp`` of the dominant class cancels, and the gradient of a
    saturated softmax lost every digit; the tangent used :func:`_centred` since round 6)."""
    if o.z not in active:
        return []
    if H.is_const(g):
        return []  # a constant cotangent is orthogonal to softmax's tangent space
    n = len(b.prog.ops)
    body, args = _centred(b, o.out, g)
    helpers = tuple(h.out for h in b.prog.ops[n:])  # printed as the textbook's one line
    return [(o.z, b.emit(op.Map(b.temp(o.z.shape), (body,), args, role="centred",
                                label=(o.out, g, helpers))))]


def softmax_jvp(b, o: Softmax, d):
    """ṗ = p ⊙ (ż − pᵀż)  (in the form of :func:`_centred`)."""
    zd = d.get(o.z)
    if zd is None:
        return None
    body, args = _centred(b, o.out, zd)
    return b.emit(op.Map(H.dot_var(b, o.out), (body,), args))


def softmax_numpy(o: Softmax, env, B):
    z = env[o.z]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_sympy(o: Softmax, env, B):
    z = env[o.z]
    r = np.empty(z.shape, dtype=object)
    for s in range(B):
        e = [sp.exp(v) for v in z[s]]
        tot = sp.Add(*e)
        for k in range(len(e)):
            r[s, k] = e[k] / tot
    return r


register(
    Softmax,
    vjp=softmax_vjp,
    jvp=softmax_jvp,
    numpy=softmax_numpy,
    sympy=softmax_sympy,
    equation=lambda o, ctx: ctx.equation(o, f"softmax({o.z.text})",
                                         r"\operatorname{softmax}\left(%s\right)" % o.z.tex),
    text=lambda o: f"softmax({o.z.name})",
    describe=lambda o: generic_text(o, f"{o.out.name} = "),
)


# ----------------------------------------------------------------------------------------


@op_class
@dataclass(frozen=True)
class LogSumExp(Op):
    """``out = log Σ_k exp(z_k)`` per sample (size-1 output; computed stably)."""

    out: Var
    z: Var

    @property
    def inputs(self):
        return (self.z,)


def logsumexp_vjp(b, o: LogSumExp, g, active):
    """s = log Σ exp(z):  ḡ_z = g p,  p = softmax(z)."""
    if o.z not in active:
        return []
    p = H.softmax_of(b, o.z)
    if H.is_const(g) and g == 1:
        return [(o.z, p)]
    return [(o.z, H.map_contrib(b, o.z.size, sym(p), [Arg(sym(p), p)], g))]


def logsumexp_jvp(b, o: LogSumExp, d):
    zd = d.get(o.z)
    if zd is None:
        return None
    p = H.softmax_of(b, o.z)
    return b.emit(op.Dot(H.dot_var(b, o.out), p, zd))


def logsumexp_numpy(o: LogSumExp, env, B):
    z = env[o.z]
    m = z.max(axis=1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def logsumexp_sympy(o: LogSumExp, env, B):
    z = env[o.z]
    r = np.empty((B, 1), dtype=object)
    for s in range(B):
        r[s, 0] = sp.log(sp.Add(*[sp.exp(v) for v in z[s]]))
    return r


register(
    LogSumExp,
    vjp=logsumexp_vjp,
    jvp=logsumexp_jvp,
    numpy=logsumexp_numpy,
    sympy=logsumexp_sympy,
    equation=lambda o, ctx: ctx.equation(o, f"log Σₖ exp({o.z.text}ₖ)",
                                         r"\log \sum_k e^{%s_k}" % o.z.tex),
    text=lambda o: f"logsumexp({o.z.name})",
    describe=lambda o: generic_text(o, f"{o.out.name} = "),
)
