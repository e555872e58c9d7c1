"""Linear ops: ``Affine`` (``W a + b``), ``MatTVec`` (``Wᵀ g``) and ``OuterMean`` (``⟨u vᵀ⟩``).

Each op's dataclass is followed by its rules (see :mod:`symnn.ops.registry`).  Cotangents
of per-sample values are per-sample (the seed ``ℓ`` has cotangent 1); parameter cotangents
are batch means.

================  ===============================================================
rule              ``Affine``: ``z = W a + b``
================  ===============================================================
reverse           ``ḡ_a = Wᵀ g``, ``∂L/∂W = ⟨g aᵀ⟩``, ``∂L/∂b = ⟨g⟩``
forward           ``ż = Ẇ a + W ȧ + ḃ``
================  ===============================================================

``MatTVec`` ``m = Wᵀ g``: reverse ``ḡ_g = W ḡ``, ``∂/∂W = ⟨g ḡᵀ⟩``; forward
``ṁ = Ẇᵀ g + Wᵀ ġ``.  ``OuterMean`` ``M = ⟨u vᵀ⟩``: reverse (cotangent ``G``)
``ḡ_u = G v``, ``ḡ_v = Gᵀ u``; forward ``Ṁ = ⟨u̇ vᵀ⟩ + ⟨u v̇ᵀ⟩``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops.ir import Op, Var
from symnn.ops.registry import op, op_class, register

__all__ = ["Affine", "MatTVec", "OuterMean"]


def _add(terms):
    return sp.Add(*terms)


def _param_cotangent(g, o) -> Var:
    if H.is_const(g):
        raise DerivationError(
            f"{o.out.name}: a constant cotangent for the parameter-shaped value of "
            f"{type(o).__name__} has no reverse rule")
    return g


# ----------------------------------------------------------------------------------------


@op_class
@dataclass(frozen=True)
class Affine(Op):
    """``out = W a + b`` per sample (``b`` optional)."""

    out: Var
    W: Var
    a: Var
    b: Var | None = None

    @property
    def inputs(self):
        return (self.W, self.a) + ((self.b,) if self.b is not None else ())


def affine_vjp(b, o: Affine, g, active):
    """z = W a + b:  ḡ_a = Wᵀ g;  ∂L/∂W = ⟨g aᵀ⟩;  ∂L/∂b = ⟨g⟩."""
    g = H.materialise(b, g, o.out.size)
    out = []
    if o.W in active:
        out.append((o.W, b.emit(OuterMean(b.temp(o.W.shape, "param"), g, o.a))))
    if o.b is not None and o.b in active:
        out.append((o.b, b.emit(op.BatchMean(b.temp(o.b.shape, "param"), g))))
    if o.a in active:
        out.append((o.a, b.emit(MatTVec(b.temp(o.a.shape), o.W, g))))
    return out


def affine_jvp(b, o: Affine, d):
    Wd, ad = d.get(o.W), d.get(o.a)
    bd = d.get(o.b) if o.b is not None else None
    terms = []
    if Wd is not None:
        terms.append(b.emit(Affine(b.temp(o.out.shape), Wd, o.a, bd)))
    elif bd is not None:
        z = b.emit(op.Map(b.temp(o.a.shape), (0,), ()))  # W·0 + ḃ: the bias tangent alone
        terms.append(b.emit(Affine(b.temp(o.out.shape), o.W, z, bd)))
    if ad is not None:
        terms.append(b.emit(Affine(b.temp(o.out.shape), o.W, ad, None)))
    return H.tangent_sum(b, o.out, terms)


def affine_numpy(o: Affine, env, B):
    r = env[o.a] @ np.asarray(env[o.W]).T
    if o.b is not None:
        r = r + env[o.b]
    return r


def affine_sympy(o: Affine, env, B):
    W, a = env[o.W], env[o.a]
    n_out, n_in = o.W.shape
    r = np.empty((B, n_out), dtype=object)
    bias = env[o.b] if o.b is not None else None
    for s in range(B):
        for i in range(n_out):
            terms = [W[i, j] * a[s, j] for j in range(n_in)]
            if bias is not None:
                terms.append(bias[i])
            r[s, i] = _add(terms)
    return r


def affine_equation(o: Affine, ctx):
    t = f"{o.W.text} {o.a.text}" + (f" + {o.b.text}" if o.b is not None else "")
    x = f"{o.W.tex} {o.a.tex}" + (f" + {o.b.tex}" if o.b is not None else "")
    return ctx.equation(o, t, x)


register(
    Affine,
    vjp=affine_vjp,
    jvp=affine_jvp,
    numpy=affine_numpy,
    sympy=affine_sympy,
    equation=affine_equation,
    text=lambda o: f"{o.W.name}·{o.a.name}" + (f" + {o.b.name}" if o.b is not None else ""),
    describe=lambda o: f"{o.out.name} = {o.W.name} {o.a.name}" + (f" + {o.b.name}" if o.b
                                                                  else ""),
)


# ----------------------------------------------------------------------------------------


@op_class
@dataclass(frozen=True)
class MatTVec(Op):
    """``out = Wᵀ g`` per sample: the adjoint of the linear map ``a ↦ W a``."""

    out: Var
    W: Var
    g: Var

    @property
    def inputs(self):
        return (self.W, self.g)


def mattvec_vjp(b, o: MatTVec, g, active):
    """m = Wᵀ u:  ḡ_u = W g;  ∂/∂W = ⟨u gᵀ⟩."""
    g = H.materialise(b, g, o.out.size)
    out = []
    if o.W in active:
        out.append((o.W, b.emit(OuterMean(b.temp(o.W.shape, "param"), o.g, g))))
    if o.g in active:
        out.append((o.g, b.emit(Affine(b.temp(o.g.shape), o.W, g, None))))
    return out


def mattvec_jvp(b, o: MatTVec, d):
    Wd, gd = d.get(o.W), d.get(o.g)
    terms = []
    if Wd is not None:
        terms.append(b.emit(MatTVec(b.temp(o.out.shape), Wd, o.g)))
    if gd is not None:
        terms.append(b.emit(MatTVec(b.temp(o.out.shape), o.W, gd)))
    return H.tangent_sum(b, o.out, terms)


def mattvec_sympy(o: MatTVec, env, B):
    W, g = env[o.W], env[o.g]
    n_out, n_in = o.W.shape
    r = np.empty((B, n_in), dtype=object)
    for s in range(B):
        for j in range(n_in):
            r[s, j] = _add([W[i, j] * g[s, i] for i in range(n_out)])
    return r


register(
    MatTVec,
    vjp=mattvec_vjp,
    jvp=mattvec_jvp,
    numpy=lambda o, env, B: env[o.g] @ env[o.W],
    sympy=mattvec_sympy,
    equation=lambda o, ctx: ctx.equation(o, f"({o.W.text})ᵀ {o.g.text}",
                                         f"\\left({o.W.tex}\\right)^{{\\top}} {o.g.tex}"),
    text=lambda o: f"{o.W.name}ᵀ·{o.g.name}",
    describe=lambda o: f"{o.out.name} = {o.W.name}ᵀ {o.g.name}",
)


# ----------------------------------------------------------------------------------------


@op_class
@dataclass(frozen=True)
class OuterMean(Op):
    """``out = (1/B) Σ_s u_s v_sᵀ`` (shape ``(len(u), len(v))``)."""

    out: Var
    u: Var
    v: Var

    @property
    def inputs(self):
        return (self.u, self.v)


def outermean_vjp(b, o: OuterMean, g, active):
    """M = ⟨u vᵀ⟩ with cotangent G:  ḡ_u = G v,  ḡ_v = Gᵀ u (per sample)."""
    G = _param_cotangent(g, o)
    out = []
    if o.u in active:
        out.append((o.u, b.emit(Affine(b.temp(o.u.shape), G, o.v, None))))
    if o.v in active:
        out.append((o.v, b.emit(MatTVec(b.temp(o.v.shape), G, o.u))))
    return out


def outermean_jvp(b, o: OuterMean, d):
    ud, vd = d.get(o.u), d.get(o.v)
    terms = []
    if ud is not None:
        terms.append(b.emit(OuterMean(b.temp(o.out.shape, "param"), ud, o.v)))
    if vd is not None:
        terms.append(b.emit(OuterMean(b.temp(o.out.shape, "param"), o.u, vd)))
    return H.tangent_sum(b, o.out, terms)


def outermean_sympy(o: OuterMean, env, B):
    u, v = env[o.u], env[o.v]
    r = np.empty(o.out.shape, dtype=object)
    for i in range(o.out.shape[0]):
        for j in range(o.out.shape[1]):
            r[i, j] = _add([u[s, i] * v[s, j] for s in range(B)]) / B
    return r


register(
    OuterMean,
    vjp=outermean_vjp,
    jvp=outermean_jvp,
    numpy=lambda o, env, B: env[o.u].T @ env[o.v] / B,
    sympy=outermean_sympy,
    equation=lambda o, ctx: ctx.equation(
        o, f"⟨{o.u.text} ({o.v.text})ᵀ⟩",
        r"\frac{1}{B}\sum_{s=1}^{B} %s_s \left(%s_s\right)^{\top}" % (o.u.tex, o.v.tex)),
    text=lambda o: f"mean over batch({o.u.name}·{o.v.name}ᵀ)",
    describe=lambda o: f"{o.out.name} = batch mean of {o.u.name} {o.v.name}ᵀ",
)
