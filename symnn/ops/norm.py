r"""Layer-normalisation ops on per-sample values of ``rows`` rows of ``n`` components (flat,
row-major ``(r, i)``: component ``r·n + i``; ``rows = 1`` for a flat vector, ``T`` for a
sequence value ``(T, n)``).  Every statistic is taken over one row's ``n`` components:
``μ = mean(x)``, ``σ² = mean((x − μ)²)`` (the biased variance, as PyTorch), ``σ̂ =
sqrt(σ² + ε)`` and ``x̂ = (x − μ)/σ̂``.

========================  =====================================================================
op                        meaning (per sample, per row)
========================  =====================================================================
``NormStandardize``       ``x̂ = (x − μ(x)) / σ̂(x)``
``NormStandardizeT``      ``r = (1/σ̂(x)) (g − mean(g) − h ⊙ mean(h ⊙ g))`` (``h = x̂``): the
                          Jacobian of ``NormStandardize``, which is symmetric, applied to ``g``
``NormStandardizeTDot``   ``−(1/σ̂(x)) (ḣ ⊙ mean(h ⊙ g) + h ⊙ mean(ḣ ⊙ g) + mean(x̂(x) ⊙ ẋ) r)``
                          (``r`` the ``NormStandardizeT`` value): the rest of its tangent
``NormScaleShift``        ``y = γ ⊙ v + β`` (``γ``, ``β`` of shape ``(n,)``, the same for every
                          row; each of ``v``, ``γ``, ``β`` optional: ``v`` absent is 0, ``γ``
                          absent is 1, ``β`` absent is 0)
``NormColMean``           ``M[i] = ⟨Σ_r u[r, i] v[r, i]⟩`` (``v`` absent: 1), a batch mean
========================  =====================================================================

Rules (``g`` the output's cotangent, ``Ẋ`` a tangent, ``s = 1/σ̂(x)``):

======================  =========================================  ===============================
op                      reverse                                    forward
======================  =========================================  ===============================
NormStandardize(x)      ``x̄ = NormStandardizeT(x, x̂, g)``          ``NormStandardizeT(x, x̂, ẋ)``
NormStandardizeT        ``ḡ_g = NormStandardizeT(x, h, g)``        ``NormStandardizeT(x, h, ġ)``
(x, h, g)               (``x``, ``h``: third order, refused)        ``+ NormStandardizeTDot(…)``
NormScaleShift          ``v̄ = γ ⊙ g``, ``γ̄ = ⟨Σ_r g ⊙ v⟩``,        ``γ ⊙ v̇ + γ̇ ⊙ v + β̇``
(v, γ, β)               ``β̄ = ⟨Σ_r g⟩``
NormColMean(u, v)       ``ū = G ⊙ v``, ``v̄ = G ⊙ u``               ``⟨Σ u̇ v⟩ + ⟨Σ u v̇⟩``
NormStandardizeTDot     (third order, refused)                     (third order, refused)
======================  =========================================  ===============================

The reverse rule of ``NormStandardize`` is the closed form
``x̄ = (1/σ̂)(ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂))`` (``ĝ`` the cotangent of ``x̂``), and since the
Jacobian ``(1/σ̂)(I − 11ᵀ/n − x̂x̂ᵀ/n)`` is symmetric the same op is its forward rule.  The
tangent of ``NormStandardizeT`` (needed by Hessian-vector products, forward over reverse)
follows from ``ṡ = −s² mean(x̂ ẋ)`` (``s = 1/σ̂``).

Examples
--------
>>> import numpy as np
>>> x = np.array([[1.0, 2.0, 3.0]])
>>> np.round(standardize_numpy(x, 1, 3, 0.0), 6)
array([[-1.224745,  0.      ,  1.224745]])
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops.ir import Op, Var
from symnn.ops.registry import op_class, register

__all__ = ["NormStandardize", "NormStandardizeT", "NormStandardizeTDot", "NormScaleShift",
           "NormColMean", "standardize_numpy", "eps_expr"]


class _NormOp:
    """Mixin: the fingerprint line names every field (values, rows, n, ε exactly)."""

    def fingerprint_line(self) -> str:
        parts = []
        for f in fields(self):
            if f.name == "out":
                continue
            v = getattr(self, f.name)
            parts.append(f"{f.name}={v.name if isinstance(v, Var) else repr(v)}")
        return f"{self.out.name}{self.out.shape} = {type(self).__name__}({', '.join(parts)})"

    @property
    def inputs(self):
        return tuple(getattr(self, f.name) for f in fields(self)
                     if f.name != "out" and isinstance(getattr(self, f.name), Var))


def eps_expr(eps: float):
    """ε as a SymPy number: exact when the float is a short decimal (1e-5 → 1/100000)."""
    r = sp.nsimplify(eps, rational=True)
    return r if float(r) == float(eps) else sp.Float(eps, 17)


@op_class
@dataclass(frozen=True)
class NormStandardize(_NormOp, Op):
    """``out = (x − μ(x)) / sqrt(σ²(x) + ε)`` per row of ``n`` components."""

    out: Var
    x: Var
    rows: int
    n: int
    eps: float


@op_class
@dataclass(frozen=True)
class NormStandardizeT(_NormOp, Op):
    """``out = (1/σ̂(x)) (g − mean(g) − h ⊙ mean(h ⊙ g))`` per row (``h`` = x̂)."""

    out: Var
    x: Var
    h: Var
    g: Var
    rows: int
    n: int
    eps: float


@op_class
@dataclass(frozen=True)
class NormStandardizeTDot(_NormOp, Op):
    """``out = −(1/σ̂(x)) (ḣ ⊙ mean(h ⊙ g) + h ⊙ mean(ḣ ⊙ g) + mean(x̂(x) ⊙ ẋ) r)`` per row,
    ``r`` the value of ``NormStandardizeT(x, h, g)``; ``ẋ``/``ḣ`` absent are 0."""

    out: Var
    x: Var
    h: Var
    g: Var
    r: Var
    dx: Var | None
    dh: Var | None
    rows: int
    n: int
    eps: float


@op_class
@dataclass(frozen=True)
class NormScaleShift(_NormOp, Op):
    """``out[r, i] = γ[i] v[r, i] + β[i]`` (``v`` None: 0; ``γ`` None: 1; ``β`` None: 0)."""

    out: Var
    v: Var | None
    gamma: Var | None
    beta: Var | None
    rows: int
    n: int


@op_class
@dataclass(frozen=True)
class NormColMean(_NormOp, Op):
    """``out[i] = (1/B) Σ_s Σ_r u[s, r, i] v[s, r, i]`` (``v`` None: 1)."""

    out: Var
    u: Var
    v: Var | None
    rows: int
    n: int


# ------------------------------------------------------------------------------------------
# NumPy


def _rows(a, B, o):
    return np.asarray(a).reshape(B, o.rows, o.n)


def _stats(x, eps):
    """(x − μ, 1/σ̂) of rows of ``x`` (..., n)."""
    c = x - x.mean(axis=-1, keepdims=True)
    return c, 1.0 / np.sqrt((c * c).mean(axis=-1, keepdims=True) + eps)


def standardize_numpy(x, rows: int, n: int, eps: float) -> np.ndarray:
    """``(x − μ)/σ̂`` per row of a batch ``x`` (B, rows·n)."""
    B = x.shape[0]
    c, s = _stats(np.asarray(x).reshape(B, rows, n), eps)
    return (c * s).reshape(B, -1)


def _stdt_numpy(o, env, B):
    _, s = _stats(_rows(env[o.x], B, o), o.eps)
    h, g = _rows(env[o.h], B, o), _rows(env[o.g], B, o)
    r = s * (g - g.mean(-1, keepdims=True) - h * (h * g).mean(-1, keepdims=True))
    return r.reshape(B, -1)


def _stdtdot_numpy(o, env, B):
    c, s = _stats(_rows(env[o.x], B, o), o.eps)
    h, g, r = (_rows(env[v], B, o) for v in (o.h, o.g, o.r))
    out = np.zeros_like(g)
    if o.dh is not None:
        dh = _rows(env[o.dh], B, o)
        out -= s * (dh * (h * g).mean(-1, keepdims=True) + h * (dh * g).mean(-1, keepdims=True))
    if o.dx is not None:
        dx = _rows(env[o.dx], B, o)
        out -= s * (c * s * dx).mean(-1, keepdims=True) * r
    return out.reshape(B, -1)


def _scaleshift_numpy(o, env, B):
    out = np.zeros((B, o.rows, o.n))
    if o.v is not None:
        v = _rows(env[o.v], B, o)
        out = v * np.asarray(env[o.gamma]).reshape(o.n) if o.gamma is not None else v + 0.0
    if o.beta is not None:
        out = out + np.asarray(env[o.beta]).reshape(o.n)
    return out.reshape(B, -1)


def _colmean_numpy(o, env, B):
    u = _rows(env[o.u], B, o)
    if o.v is not None:
        u = u * _rows(env[o.v], B, o)
    return u.sum(axis=(0, 1)) / B


# ------------------------------------------------------------------------------------------
# SymPy (per sample, exact)


def _row(a, s, r, n):
    return [a[s, r * n + i] for i in range(n)]


def _sstats(xs, eps):
    n = len(xs)
    mu = sp.Add(*xs) / n
    c = [xi - mu for xi in xs]
    return c, 1 / sp.sqrt(sp.Add(*[ci ** 2 for ci in c]) / n + eps_expr(eps))


def _mean(vals):
    return sp.Add(*vals) / len(vals)


def _per_row(o, B, fn):
    out = np.empty((B, o.rows * o.n), dtype=object)
    for s in range(B):
        for r in range(o.rows):
            out[s, r * o.n:(r + 1) * o.n] = fn(s, r)
    return out


def _std_sympy(o, env, B):
    def row(s, r):
        c, inv = _sstats(_row(env[o.x], s, r, o.n), o.eps)
        return [ci * inv for ci in c]
    return _per_row(o, B, row)


def _stdt_sympy(o, env, B):
    def row(s, r):
        _, inv = _sstats(_row(env[o.x], s, r, o.n), o.eps)
        h, g = _row(env[o.h], s, r, o.n), _row(env[o.g], s, r, o.n)
        mg, mhg = _mean(g), _mean([a * b for a, b in zip(h, g)])
        return [inv * (gi - mg - hi * mhg) for hi, gi in zip(h, g)]
    return _per_row(o, B, row)


def _stdtdot_sympy(o, env, B):
    def row(s, r):
        c, inv = _sstats(_row(env[o.x], s, r, o.n), o.eps)
        h, g, rr = (_row(env[v], s, r, o.n) for v in (o.h, o.g, o.r))
        out = [sp.Integer(0)] * o.n
        if o.dh is not None:
            dh = _row(env[o.dh], s, r, o.n)
            mhg, mdg = _mean([a * b for a, b in zip(h, g)]), _mean([a * b for a, b in zip(dh, g)])
            out = [t - inv * (dhi * mhg + hi * mdg) for t, dhi, hi in zip(out, dh, h)]
        if o.dx is not None:
            dx = _row(env[o.dx], s, r, o.n)
            m = _mean([ci * inv * di for ci, di in zip(c, dx)])
            out = [t - inv * m * ri for t, ri in zip(out, rr)]
        return out
    return _per_row(o, B, row)


def _scaleshift_sympy(o, env, B):
    def row(s, r):
        out = [sp.Integer(0)] * o.n
        if o.v is not None:
            v = _row(env[o.v], s, r, o.n)
            out = [vi * env[o.gamma][i] if o.gamma is not None else vi for i, vi in enumerate(v)]
        if o.beta is not None:
            out = [t + env[o.beta][i] for i, t in enumerate(out)]
        return out
    return _per_row(o, B, row)


def _colmean_sympy(o, env, B):
    u, v = env[o.u], env[o.v] if o.v is not None else None
    out = np.empty((o.n,), dtype=object)
    for i in range(o.n):
        terms = [u[s, r * o.n + i] * (v[s, r * o.n + i] if v is not None else 1)
                 for s in range(B) for r in range(o.rows)]
        out[i] = sp.Add(*terms) / B
    return out


# ------------------------------------------------------------------------------------------
# reverse and forward rules


def _tmp(b, o, kind="sample"):
    return b.temp((o.rows * o.n,) if kind == "sample" else (o.n,), kind)


def _std_vjp(b, o, g, active):
    """x̂ = (x − μ)/σ̂:  x̄ = (1/σ̂)(g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))."""
    if o.x not in active:
        return []
    g = H.materialise(b, g, o.out.size)
    return [(o.x, b.emit(NormStandardizeT(_tmp(b, o), o.x, o.out, g, o.rows, o.n, o.eps)))]


def _std_jvp(b, o, d):
    dx = d.get(o.x)
    if dx is None:
        return None
    return b.emit(NormStandardizeT(_tmp(b, o), o.x, o.out, dx, o.rows, o.n, o.eps))


def _third_order(what):
    def rule(b, o, *rest):
        raise DerivationError(
            f"{o.out.name}: {what} of a layer normalisation's backward pass would be a third "
            "derivative, which symnn does not derive; gradients, Hessian-vector and "
            "Gauss-Newton products and Hessians are covered")
    return rule


def _stdt_vjp(b, o, g, active):
    """r = J(x) g with J symmetric:  ḡ_g = J(x) ḡ; the rules in x and h are third order."""
    if o.x in active or o.h in active:
        return _third_order("the reverse rule in x")(b, o)
    if o.g not in active:
        return []
    g = H.materialise(b, g, o.out.size)
    return [(o.g, b.emit(NormStandardizeT(_tmp(b, o), o.x, o.h, g, o.rows, o.n, o.eps)))]


def _stdt_jvp(b, o, d):
    dx, dh, dg = d.get(o.x), d.get(o.h), d.get(o.g)
    terms = []
    if dg is not None:
        terms.append(b.emit(NormStandardizeT(_tmp(b, o), o.x, o.h, dg, o.rows, o.n, o.eps)))
    if dx is not None or dh is not None:
        terms.append(b.emit(NormStandardizeTDot(_tmp(b, o), o.x, o.h, o.g, o.out, dx, dh,
                                                o.rows, o.n, o.eps)))
    return H.tangent_sum(b, o.out, terms)


def _ss_vjp(b, o, g, active):
    """y = γ ⊙ v + β:  v̄ = γ ⊙ g;  γ̄ = ⟨Σ_r g ⊙ v⟩;  β̄ = ⟨Σ_r g⟩."""
    g = H.materialise(b, g, o.out.size)
    out = []
    if o.v is not None and o.v in active:
        out.append((o.v, g if o.gamma is None else
                    b.emit(NormScaleShift(_tmp(b, o), g, o.gamma, None, o.rows, o.n))))
    if o.gamma is not None and o.gamma in active and o.v is not None:
        out.append((o.gamma, b.emit(NormColMean(_tmp(b, o, o.gamma.kind), g, o.v,
                                                o.rows, o.n))))
    if o.beta is not None and o.beta in active:
        out.append((o.beta, b.emit(NormColMean(_tmp(b, o, o.beta.kind), g, None,
                                               o.rows, o.n))))
    return out


def _ss_jvp(b, o, d):
    dv = d.get(o.v) if o.v is not None else None
    dgam = d.get(o.gamma) if o.gamma is not None else None
    dbeta = d.get(o.beta) if o.beta is not None else None
    terms = []
    if dv is not None:
        terms.append(b.emit(NormScaleShift(_tmp(b, o), dv, o.gamma, dbeta, o.rows, o.n)))
        dbeta = None
    if dgam is not None and o.v is not None:
        terms.append(b.emit(NormScaleShift(_tmp(b, o), o.v, dgam, dbeta, o.rows, o.n)))
        dbeta = None
    if dbeta is not None:
        terms.append(b.emit(NormScaleShift(_tmp(b, o), None, None, dbeta, o.rows, o.n)))
    return H.tangent_sum(b, o.out, terms)


def _cm_vjp(b, o, G, active):
    """M = ⟨Σ_r u ⊙ v⟩ with cotangent G:  ū = G ⊙ v,  v̄ = G ⊙ u (per sample)."""
    if H.is_const(G):
        raise DerivationError(f"{o.out.name}: a constant cotangent of NormColMean has no rule")
    out = []
    if o.u in active:
        out.append((o.u, b.emit(NormScaleShift(_tmp(b, o), o.v, G if o.v is not None else None,
                                               None if o.v is not None else G, o.rows, o.n))))
    if o.v is not None and o.v in active:
        out.append((o.v, b.emit(NormScaleShift(_tmp(b, o), o.u, G, None, o.rows, o.n))))
    return out


def _cm_jvp(b, o, d):
    du = d.get(o.u)
    dv = d.get(o.v) if o.v is not None else None
    terms = []
    if du is not None:
        terms.append(b.emit(NormColMean(_tmp(b, o, "param"), du, o.v, o.rows, o.n)))
    if dv is not None:
        terms.append(b.emit(NormColMean(_tmp(b, o, "param"), o.u, dv, o.rows, o.n)))
    return H.tangent_sum(b, o.out, terms)


# ------------------------------------------------------------------------------------------
# printing


def _row_note(o) -> str:
    return "" if o.rows == 1 else f"   (each row t of {o.rows}; μ, σ̂, mean over its {o.n})"


def _std_equation(o, ctx):
    x = o.x
    t = (f"({x.text} − μ({x.text})) / σ̂({x.text}),  μ = mean({x.text}),  "
         f"σ̂ = √(mean(({x.text} − μ)²) + ε), ε = {o.eps:g}" + _row_note(o))
    tex = (r"\frac{%s - \mu(%s)}{\hat\sigma(%s)}, \quad \mu = \tfrac{1}{%d}\textstyle\sum_i "
           r"%s_i, \quad \hat\sigma = \sqrt{\tfrac{1}{%d}\textstyle\sum_i (%s_i - \mu)^2 + "
           r"\varepsilon}" % (x.tex, x.tex, x.tex, o.n, x.tex, o.n, x.tex))
    return ctx.equation(o, t, tex)


def _stdt_equation(o, ctx):
    g, h, x = o.g, o.h, o.x
    t = (f"(1/σ̂({x.text})) ⊙ ({g.text} − mean({g.text}) − {h.text} ⊙ mean({g.text} ⊙ "
         f"{h.text}))" + _row_note(o))
    tex = (r"\frac{1}{\hat\sigma(%s)}\left(%s - \operatorname{mean}(%s) - %s \odot "
           r"\operatorname{mean}(%s \odot %s)\right)" % (x.tex, g.tex, g.tex, h.tex, g.tex,
                                                          h.tex))
    return ctx.equation(o, t, tex)


def _stdtdot_equation(o, ctx):
    parts, tex = [], []
    if o.dh is not None:
        parts.append(f"(1/σ̂({o.x.text})) ({o.dh.text} ⊙ mean({o.h.text} ⊙ {o.g.text}) + "
                     f"{o.h.text} ⊙ mean({o.dh.text} ⊙ {o.g.text}))")
        tex.append(r"\frac{1}{\hat\sigma(%s)}\left(%s \odot \operatorname{mean}(%s \odot %s) + "
                   r"%s \odot \operatorname{mean}(%s \odot %s)\right)"
                   % (o.x.tex, o.dh.tex, o.h.tex, o.g.tex, o.h.tex, o.dh.tex, o.g.tex))
    if o.dx is not None:
        parts.append(f"(1/σ̂({o.x.text})) mean(x̂({o.x.text}) ⊙ {o.dx.text}) {o.r.text}")
        tex.append(r"\frac{1}{\hat\sigma(%s)} \operatorname{mean}(\hat{x}(%s) \odot %s)\, %s"
                   % (o.x.tex, o.x.tex, o.dx.tex, o.r.tex))
    return ctx.equation(o, "−" + " − ".join(parts) if parts else "0",
                        "-" + " - ".join(tex) if tex else "0")


def _ss_terms(o, text: bool):
    v = None if o.v is None else (o.v.text if text else o.v.tex)
    gam = None if o.gamma is None else (o.gamma.text if text else o.gamma.tex)
    beta = None if o.beta is None else (o.beta.text if text else o.beta.tex)
    dot = "⊙" if text else r"\odot"
    first = (f"{gam} {dot} {v}" if gam else v) if v else None
    terms = [t for t in (first, beta) if t]
    return " + ".join(terms) if terms else "0"


def _ss_equation(o, ctx):
    note = "" if o.rows == 1 else f"   (each row t of {o.rows})"
    return ctx.equation(o, _ss_terms(o, True) + note, _ss_terms(o, False))


def _cm_equation(o, ctx):
    u, v = o.u, o.v
    t = f"⟨Σ_t {u.text}[t] ⊙ {v.text}[t]⟩" if v is not None else f"⟨Σ_t {u.text}[t]⟩"
    if o.rows == 1:
        t = f"⟨{u.text} ⊙ {v.text}⟩" if v is not None else f"⟨{u.text}⟩"
    body = u.tex + (r" \odot %s" % v.tex if v is not None else "")
    inner = body if o.rows == 1 else r"\sum_{t} {%s}_{t}" % body
    return ctx.equation(o, t, r"\frac{1}{B}\sum_{s=1}^{B} %s" % inner)


def _name(v) -> str:
    return "–" if v is None else v.name


register(
    NormStandardize,
    vjp=_std_vjp,
    jvp=_std_jvp,
    numpy=lambda o, env, B: standardize_numpy(env[o.x], o.rows, o.n, o.eps),
    sympy=_std_sympy,
    equation=_std_equation,
    text=lambda o: f"standardize({o.x.name}, {o.rows}×{o.n}, ε={o.eps!r})",
    describe=lambda o: f"{o.out.name} = ({o.x.name} − μ)/σ̂ per row ({o.rows}×{o.n})",
)

register(
    NormStandardizeT,
    vjp=_stdt_vjp,
    jvp=_stdt_jvp,
    numpy=_stdt_numpy,
    sympy=_stdt_sympy,
    equation=_stdt_equation,
    text=lambda o: f"standardize_T({o.x.name}, {o.h.name}, {o.g.name}, {o.rows}×{o.n})",
    describe=lambda o: f"{o.out.name} = (1/σ̂)({o.g.name} − mean − {o.h.name} mean({o.h.name}"
    f" {o.g.name})) per row",
)

register(
    NormStandardizeTDot,
    vjp=_third_order("the reverse rule"),
    jvp=_third_order("the forward rule"),
    numpy=_stdtdot_numpy,
    sympy=_stdtdot_sympy,
    equation=_stdtdot_equation,
    text=lambda o: f"standardize_T_dot({o.x.name}, {o.h.name}, {o.g.name}, {o.r.name}, "
    f"{_name(o.dx)}, {_name(o.dh)})",
    describe=lambda o: f"{o.out.name} = tangent of (1/σ̂)(…) in {o.x.name}, {o.h.name} per row",
)

register(
    NormScaleShift,
    vjp=_ss_vjp,
    jvp=_ss_jvp,
    numpy=_scaleshift_numpy,
    sympy=_scaleshift_sympy,
    equation=_ss_equation,
    text=lambda o: f"scale_shift({_name(o.v)}, {_name(o.gamma)}, {_name(o.beta)}, "
    f"{o.rows}×{o.n})",
    describe=lambda o: f"{o.out.name} = {_name(o.gamma)} ⊙ {_name(o.v)} + {_name(o.beta)} "
    "per row",
)

register(
    NormColMean,
    vjp=_cm_vjp,
    jvp=_cm_jvp,
    numpy=_colmean_numpy,
    sympy=_colmean_sympy,
    equation=_cm_equation,
    text=lambda o: f"mean over batch(column_sum({o.u.name} ⊙ {_name(o.v)}, {o.rows}×{o.n}))",
    describe=lambda o: f"{o.out.name} = batch mean of Σ_rows {o.u.name} ⊙ {_name(o.v)}",
)
