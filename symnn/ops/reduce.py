"""Reductions and sums: ``Dot`` (``uᵀv``), ``SumComp`` (``Σ u``), ``BatchMean`` (``⟨u⟩``)
and ``Add`` (``Σ terms``).

Cotangents of per-sample values are per-sample (the seed ``ℓ`` has cotangent 1, so the
batch mean ``L = ⟨ℓ⟩`` passes its cotangent on unchanged).

================  =================================  ==================================
op                reverse                            forward
================  =================================  ==================================
``Dot``           ``ḡ_u = g v``, ``ḡ_v = g u``       ``(uᵀv)˙ = u̇ᵀv + uᵀv̇``
``SumComp``       ``ḡ_u = g 1``                      ``(Σu)˙ = Σu̇``
``BatchMean``     ``ḡ_u = g`` (each sample)          ``⟨u⟩˙ = ⟨u̇⟩``
``Add``           ``ḡ_t = g`` (summed if broadcast)  ``(Σ tᵢ)˙ = Σ ṫᵢ``
================  =================================  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops.ir import Arg, Op, Var, sym
from symnn.ops.registry import op, op_class, register

__all__ = ["Dot", "SumComp", "BatchMean", "Add"]


def _add(terms):
    return sp.Add(*terms)


@op_class
@dataclass(frozen=True)
class Dot(Op):
    """``out = Σ_k u_k v_k`` per sample (size-1 output)."""

    out: Var
    u: Var
    v: Var

    @property
    def inputs(self):
        return (self.u, self.v)


def dot_vjp(b, o: Dot, g, active):
    """s = uᵀv:  ḡ_u = g v,  ḡ_v = g u."""
    out = []
    if o.u in active:
        out.append((o.u, H.map_contrib(b, o.u.size, sym(o.v), [Arg(sym(o.v), o.v)], g)))
    if o.v in active:
        out.append((o.v, H.map_contrib(b, o.v.size, sym(o.u), [Arg(sym(o.u), o.u)], g)))
    return out


def dot_jvp(b, o: Dot, d):
    ud, vd = d.get(o.u), d.get(o.v)
    terms = []
    if ud is not None:
        terms.append(b.emit(Dot(b.temp((1,)), ud, o.v)))
    if vd is not None:
        terms.append(b.emit(Dot(b.temp((1,)), o.u, vd)))
    return H.tangent_sum(b, o.out, terms)


def dot_sympy(o: Dot, env, B):
    u, v = env[o.u], env[o.v]
    r = np.empty((B, 1), dtype=object)
    for s in range(B):
        uu = u[s] if u.shape[1] > 1 else [u[s, 0]] * v.shape[1]
        vv = v[s] if v.shape[1] > 1 else [v[s, 0]] * u.shape[1]
        r[s, 0] = _add([p * q for p, q in zip(uu, vv)])
    return r


register(
    Dot,
    vjp=dot_vjp,
    jvp=dot_jvp,
    numpy=lambda o, env, B: (env[o.u] * env[o.v]).sum(axis=1, keepdims=True),
    sympy=dot_sympy,
    equation=lambda o, ctx: ctx.equation(o, f"{o.u.text}ᵀ {o.v.text}",
                                         f"{o.u.tex}^{{\\top}} {o.v.tex}"),
    text=lambda o: f"{o.u.name}ᵀ·{o.v.name}",
    describe=lambda o: f"{o.out.name} = {o.u.name} · {o.v.name}",
)


# ----------------------------------------------------------------------------------------


@op_class
@dataclass(frozen=True)
class SumComp(Op):
    """``out = Σ_k u_k`` per sample (size-1 output)."""

    out: Var
    u: Var

    @property
    def inputs(self):
        return (self.u,)


def sumcomp_vjp(b, o: SumComp, g, active):
    """s = Σ u:  ḡ_u = g 1."""
    if o.u not in active:
        return []
    if H.is_const(g):
        return [(o.u, g)]
    gs = sym(g)
    return [(o.u, b.emit(op.Map(b.temp(o.u.shape), (gs,), (Arg(gs, g),))))]


def sumcomp_jvp(b, o: SumComp, d):
    ud = d.get(o.u)
    return None if ud is None else b.emit(SumComp(H.dot_var(b, o.out), ud))


def sumcomp_sympy(o: SumComp, env, B):
    u = env[o.u]
    r = np.empty((B, 1), dtype=object)
    for s in range(B):
        r[s, 0] = _add(list(u[s]))
    return r


register(
    SumComp,
    vjp=sumcomp_vjp,
    jvp=sumcomp_jvp,
    numpy=lambda o, env, B: env[o.u].sum(axis=1, keepdims=True),
    sympy=sumcomp_sympy,
    equation=lambda o, ctx: ctx.equation(o, f"Σₖ {o.u.text}ₖ", r"\sum_k %s_k" % o.u.tex),
    text=lambda o: f"sum({o.u.name})",
    describe=lambda o: f"{o.out.name} = sum of the components of {o.u.name}",
)


# ----------------------------------------------------------------------------------------


@op_class
@dataclass(frozen=True)
class BatchMean(Op):
    """``out = (1/B) Σ_s u_s``: a per-sample value averaged over the batch.

    The output is a ``param``-kind gradient (shape of the parameter it belongs to) or the
    ``total`` loss.
    """

    out: Var
    u: Var

    @property
    def inputs(self):
        return (self.u,)


def batchmean_vjp(b, o: BatchMean, g, active):
    """⟨u⟩ with cotangent g:  ḡ_uₛ = g for every sample (a parameter-shaped g per component)."""
    if o.u not in active:
        return []
    if H.is_const(g):
        return [(o.u, g)]
    if g.kind != "param":
        raise DerivationError(f"{o.out.name}: a {g.kind} cotangent of a batch mean has no "
                              "reverse rule")
    syms = tuple(sym(g, k) for k in range(o.u.size))
    args = tuple(Arg(s, g, k) for k, s in enumerate(syms))
    return [(o.u, b.emit(op.Map(b.temp(o.u.shape), syms, args)))]


def batchmean_jvp(b, o: BatchMean, d):
    ud = d.get(o.u)
    return None if ud is None else b.emit(BatchMean(H.dot_var(b, o.out), ud))


def batchmean_sympy(o: BatchMean, env, B):
    u = env[o.u]
    flat = [_add([u[s, k] for s in range(B)]) / B for k in range(u.shape[1])]
    return np.array(flat, dtype=object).reshape(o.out.shape) if o.out.shape else flat[0]


def batchmean_numpy(u):
    """The batch mean of ``u`` (B, n) over its rows, finite wherever the mean is (round 7):
    a column whose sum overflows (or is inf − inf) with every entry finite is summed again
    scaled by 2⁻⁶⁴ (exact) and divided before scaling back, as the kernels' ``_batch_mean``.

    >>> batchmean_numpy(np.array([[1e308], [1e308], [-1e308]]))
    array([3.33333333e+307])
    """
    u = np.asarray(u)
    with np.errstate(over="ignore", invalid="ignore"):
        m = u.mean(axis=0)
    if u.dtype.kind != "f" or u.ndim == 0 or np.isfinite(m).all():
        return m
    u2 = u.reshape(u.shape[0], -1)
    m2 = np.array(m, copy=True).reshape(-1)
    bad = ~np.isfinite(m2) & np.isfinite(u2).all(axis=0)
    m2[bad] = (u2[:, bad] * 2.0**-64).mean(axis=0) * 2.0**64
    return m2.reshape(np.shape(m))


def batchmean_equation(o: BatchMean, ctx):
    if o.u.name in ctx.temps:
        ut, ux = ctx.temps[o.u.name]
        return ctx.equation(o, f"⟨{ut}⟩", r"\frac{1}{B}\sum_{s=1}^{B} \left(%s\right)_s" % ux)
    return ctx.equation(o, f"⟨{o.u.text}⟩", r"\frac{1}{B}\sum_{s=1}^{B} %s_s" % o.u.tex)


register(
    BatchMean,
    vjp=batchmean_vjp,
    jvp=batchmean_jvp,
    numpy=lambda o, env, B: batchmean_numpy(env[o.u]).reshape(o.out.shape),
    sympy=batchmean_sympy,
    equation=batchmean_equation,
    text=lambda o: f"mean over batch({o.u.name})",
    describe=lambda o: f"{o.out.name} = batch mean of {o.u.name}",
)


# ----------------------------------------------------------------------------------------


@op_class
@dataclass(frozen=True)
class Add(Op):
    """``out = Σ terms`` (all of the same kind and shape; size-1 terms broadcast)."""

    out: Var
    terms: tuple[Var, ...]

    @property
    def inputs(self):
        return self.terms


def add_vjp(b, o: Add, g, active):
    """Σ tᵢ:  ḡ_tᵢ = g (summed over the components for a broadcast size-1 term)."""
    n = o.out.size
    out = []
    for t in o.terms:
        if t not in active:
            continue
        if o.out.per_sample and t.size == 1 and n > 1:
            c = g * n if H.is_const(g) else b.emit(SumComp(b.temp((1,)), g))
            out.append((t, c))
        else:
            out.append((t, g))
    return out


def add_jvp(b, o: Add, d):
    return H.tangent_sum(b, o.out, [d.get(t) for t in o.terms])


def add_numpy(o: Add, env, B):
    r = env[o.terms[0]]
    for t in o.terms[1:]:
        r = r + env[t]
    return np.asarray(r)


def add_sympy(o: Add, env, B):
    vals = [env[t] for t in o.terms]
    if o.out.kind in ("param", "total"):
        r = vals[0]
        for v in vals[1:]:
            r = r + v
        return r
    r = np.empty((B, o.out.size), dtype=object)
    for s in range(B):
        for k in range(o.out.size):
            r[s, k] = _add([v[s, k if v.shape[1] > 1 else 0] for v in vals])
    return r


def add_equation(o: Add, ctx):
    tt = [ctx.temps.get(t.name, (t.text, t.tex))[0] for t in o.terms]
    tx = [ctx.temps.get(t.name, (t.text, t.tex))[1] for t in o.terms]
    return ctx.equation(o, " + ".join(tt), " + ".join(tx))


register(
    Add,
    vjp=add_vjp,
    jvp=add_jvp,
    numpy=add_numpy,
    sympy=add_sympy,
    equation=add_equation,
    text=lambda o: " + ".join(t.name for t in o.terms),
    describe=lambda o: f"{o.out.name} = Add({', '.join(v.name for v in o.inputs)})",
)
