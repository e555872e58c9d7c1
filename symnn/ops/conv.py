r"""Convolution and pooling ops on per-sample ``(channels, length)`` values.

A per-sample value of shape ``(C, L)`` is a flat vector of size ``C·L`` in row-major
``(c, t)`` order: component ``c·L + t``.  The geometry lives in the op (:class:`Geom`,
:class:`Pool`); the values stay flat vectors.

``Conv1D`` (``Geom``: ``C_in, L_in, C_out, K``, stride ``s``, zero padding ``p``;
``L_out = ⌊(L_in + 2p − K)/s⌋ + 1``)::

    z[c, t] = Σ_{c', k} W[c, c', k] · x[c', t·s + k − p] + b[c]      (x = 0 outside 0…L_in−1)

==================  =============================================================
op                  meaning
==================  =============================================================
``Conv1D``          ``z = W ⋆ x + b`` (the formula above; ``b`` optional)
``ConvT1D``         ``x̄[c', u] = Σ_{c, k: u = t·s + k − p} W[c, c', k] g[c, t]``: the adjoint
                    of ``x ↦ W ⋆ x`` — a correlation of ``g`` with the flipped kernel
``ConvWMean``       ``M[c, c', k] = ⟨Σ_t u[c, t] v[c', t·s + k − p]⟩`` (batch mean)
``ChannelMean``     ``r[c] = ⟨Σ_t g[c, t]⟩`` (batch mean; a convolution's bias gradient)
``ChannelBcast``    ``r[c, t] = v[c]`` (``v`` parameter-shaped)
``AvgPool``         ``r[c, t] = (1/m) Σ_{j<m} x[c, t·m + j]`` (``Pool``: ``C, L, m``;
                    ``L_out = ⌊L/m⌋``, windows do not overlap, a tail shorter than ``m`` is
                    dropped, as ``torch.nn.functional.avg_pool1d(x, m)``)
``AvgPoolT``        its adjoint: ``x̄[c, t·m + j] = g[c, t]/m`` (0 on the dropped tail)
``MaxGather``       ``r[c, t] = v[c, t·m + j*]``, ``j* = argmax_j x[c, t·m + j]`` (ties: the
                    first); ``MaxPool1D`` is ``MaxGather(x, x)``
``MaxScatter``      its adjoint in ``v``: ``x̄[c, t·m + j*] = g[c, t]``, 0 elsewhere
==================  =============================================================

Rules (cotangent ``g`` of the output; per-sample cotangents per sample, parameter
cotangents batch means; ``Ẋ`` a tangent):

==============  ============================================  ================================
op              reverse                                       forward
==============  ============================================  ================================
Conv1D          ``x̄ = ConvT1D(W, g)``, ``W̄ = ConvWMean(g,x)``  ``Conv1D(Ẇ, x, ḃ) + Conv1D(W, ẋ)``
                ``b̄ = ChannelMean(g)``
ConvT1D(W, h)   ``h̄ = Conv1D(W, g)``, ``W̄ = ConvWMean(h, g)``  ``ConvT1D(Ẇ, h) + ConvT1D(W, ḣ)``
ConvWMean(u,v)  ``ū = Conv1D(G, v)``, ``v̄ = ConvT1D(G, u)``    ``ConvWMean(u̇, v) + ConvWMean(u, v̇)``
ChannelMean     ``ChannelBcast(G)``                            ``ChannelMean(ġ)``
ChannelBcast    ``ChannelMean(g)``                             ``ChannelBcast(v̇)``
AvgPool         ``AvgPoolT(g)``                                ``AvgPool(ẋ)``
AvgPoolT        ``AvgPool(g)``                                 ``AvgPoolT(ġ)``
MaxGather(x,v)  ``v̄ = MaxScatter(x, g)``; ``x̄ = 0``            ``MaxGather(x, v̇)``
MaxScatter(x,h) ``h̄ = MaxGather(x, g)``; ``x̄ = 0``            ``MaxScatter(x, ḣ)``
==============  ============================================  ================================

The max pool's derivative in the argument of the argmax is zero wherever the argmax is
unique (the max is locally one of its inputs); at a tie the derivative does not exist and
symnn, like PyTorch, routes the cotangent to the first maximal component.

Examples
--------
>>> import numpy as np
>>> g = Geom(1, 4, 1, 2, 1, 0)
>>> g.l_out
3
>>> x = np.array([[1.0, 2.0, 3.0, 4.0]])
>>> conv_numpy(np.array([[[1.0, -1.0]]]), x, g)
array([[-1., -1., -1.]])
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops.ir import Op, Var
from symnn.ops.registry import generic_text, op, op_class, register

__all__ = ["Geom", "Pool", "Conv1D", "ConvT1D", "ConvWMean", "conv_numpy", "convt_numpy",
           "taps"]


class _Shape:
    """Iterable like a tuple (``tuple(g)``), yet no tuple: ``Op.renamed`` maps tuples."""

    def __iter__(self):
        return iter(astuple(self))


@dataclass(frozen=True)
class Geom(_Shape):
    """The geometry of a 1-D convolution: channels and length in, channels out, kernel
    size, stride and zero padding."""

    c_in: int
    l_in: int
    c_out: int
    k: int
    s: int = 1
    p: int = 0

    @property
    def l_out(self) -> int:
        return (self.l_in + 2 * self.p - self.k) // self.s + 1

    def __str__(self) -> str:
        return (f"{self.c_in}×{self.l_in}→{self.c_out}×{self.l_out}, k={self.k}, "
                f"s={self.s}, p={self.p}")


@dataclass(frozen=True)
class Pool(_Shape):
    """The geometry of a non-overlapping pool: channels, length in, window."""

    c: int
    l_in: int
    m: int

    @property
    def l_out(self) -> int:
        return self.l_in // self.m


def taps(g: Geom):
    """``(t, k, u)`` for every output position t, tap k and input position ``u = t·s+k−p``
    inside the input."""
    for t in range(g.l_out):
        for k in range(g.k):
            u = t * g.s + k - g.p
            if 0 <= u < g.l_in:
                yield t, k, u


class _GeomOp:
    """Mixin: the op's fingerprint line includes its geometry."""

    def fingerprint_line(self) -> str:
        return f"{self.out.name}{self.out.shape} = {generic_text(self)} [{tuple(self.g)}]"


def _sum(terms):
    return sp.Add(*terms)


# -- NumPy forms ---------------------------------------------------------------------------

def conv_numpy(W, x, g: Geom, bias=None):
    """``(B, C_in·L_in)`` → ``(B, C_out·L_out)`` (the reference evaluation)."""
    B = x.shape[0]
    xs = np.asarray(x).reshape(B, g.c_in, g.l_in)
    W = np.asarray(W).reshape(g.c_out, g.c_in, g.k)
    out = np.zeros((B, g.c_out, g.l_out), dtype=np.result_type(xs, W))
    for t, k, u in taps(g):
        out[:, :, t] += xs[:, :, u] @ W[:, :, k].T
    if bias is not None:
        out += np.asarray(bias)[None, :, None]
    return out.reshape(B, -1)


def convt_numpy(W, gr, g: Geom):
    """The adjoint: ``(B, C_out·L_out)`` → ``(B, C_in·L_in)``."""
    B = gr.shape[0]
    gs = np.asarray(gr).reshape(B, g.c_out, g.l_out)
    W = np.asarray(W).reshape(g.c_out, g.c_in, g.k)
    out = np.zeros((B, g.c_in, g.l_in), dtype=np.result_type(gs, W))
    for t, k, u in taps(g):
        out[:, :, u] += gs[:, :, t] @ W[:, :, k]
    return out.reshape(B, -1)


def convw_numpy(u, v, g: Geom):
    B = u.shape[0]
    us = np.asarray(u).reshape(B, g.c_out, g.l_out)
    vs = np.asarray(v).reshape(B, g.c_in, g.l_in)
    out = np.zeros((g.c_out, g.c_in, g.k), dtype=np.result_type(us, vs))
    for t, k, uu in taps(g):
        out[:, :, k] += us[:, :, t].T @ vs[:, :, uu]
    return out / B


# -- Conv1D ---------------------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class Conv1D(_GeomOp, Op):
    """``out[c, t] = Σ_{c', k} W[c, c', k] x[c', t·s + k − p] + b[c]`` per sample."""

    out: Var
    W: Var
    x: Var
    b: Var | None
    g: Geom

    @property
    def inputs(self):
        return (self.W, self.x) + ((self.b,) if self.b is not None else ())


def _tsum(b, like, terms):
    return H.tangent_sum(b, like, terms)


def conv_vjp(b, o: Conv1D, g, active):
    """ḡ_x = ConvT1D(W, g);  ∂L/∂W = ConvWMean(g, x);  ∂L/∂b = ChannelMean(g)."""
    g = H.materialise(b, g, o.out.size)
    out = []
    if o.W in active:
        out.append((o.W, b.emit(ConvWMean(b.temp(o.W.shape, "param"), g, o.x, o.g))))
    if o.b is not None and o.b in active:
        out.append((o.b, b.emit(op.ChannelMean(b.temp(o.b.shape, "param"), g, o.g.c_out,
                                               o.g.l_out))))
    if o.x in active:
        out.append((o.x, b.emit(ConvT1D(b.temp(o.x.shape), o.W, g, o.g))))
    return out


def conv_jvp(b, o: Conv1D, d):
    Wd, xd = d.get(o.W), d.get(o.x)
    bd = d.get(o.b) if o.b is not None else None
    terms = []
    if Wd is not None:
        terms.append(b.emit(Conv1D(b.temp(o.out.shape), Wd, o.x, bd, o.g)))
    elif bd is not None:
        z = b.emit(op.Map(b.temp(o.x.shape), (0,), ()))  # W ⋆ 0 + ḃ: the bias tangent alone
        terms.append(b.emit(Conv1D(b.temp(o.out.shape), o.W, z, bd, o.g)))
    if xd is not None:
        terms.append(b.emit(Conv1D(b.temp(o.out.shape), o.W, xd, None, o.g)))
    return _tsum(b, o.out, terms)


def conv_sympy(o: Conv1D, env, B):
    W, x, g = env[o.W], env[o.x], o.g
    W = np.asarray(W, dtype=object).reshape(g.c_out, g.c_in, g.k)
    r = np.empty((B, g.c_out * g.l_out), dtype=object)
    bias = env[o.b] if o.b is not None else None
    for s in range(B):
        for c in range(g.c_out):
            for t in range(g.l_out):
                terms = [W[c, ci, k] * x[s, ci * g.l_in + u]
                         for tt, k, u in taps(g) if tt == t for ci in range(g.c_in)]
                if bias is not None:
                    terms.append(bias[c])
                r[s, c * g.l_out + t] = _sum(terms)
    return r


def _idx(g: Geom) -> str:
    u = "t" if g.s == 1 else f"{g.s}t"
    return u + (f" + k − {g.p}" if g.p else " + k")


def _idx_tex(g: Geom) -> str:
    u = "t" if g.s == 1 else f"{g.s}t"
    return u + (f" + k - {g.p}" if g.p else " + k")


def conv_equation(o: Conv1D, ctx):
    g = o.g
    t = (f"Σ_{{c′,k}} {o.W.text}[c,c′,k] {o.x.text}[c′, {_idx(g)}]"
         + (f" + {o.b.text}[c]" if o.b is not None else ""))
    x = (r"\sum_{c',k} %s_{c,c',k}\, %s_{c',\,%s}" % (o.W.tex, o.x.tex, _idx_tex(g))
         + (r" + %s_{c}" % o.b.tex if o.b is not None else ""))
    eq = ctx.equation(o, t, x)
    return _indexed(eq, "[c,t]", "_{c,t}")


def _indexed(eq, text_idx, tex_idx):
    """The equation's left-hand side written with its indices: ``z⁽¹⁾[c,t] = …``."""
    return replace(eq, lhs_text=eq.lhs_text + text_idx,
                   lhs_tex="{%s}%s" % (eq.lhs_tex, tex_idx))


register(
    Conv1D,
    vjp=conv_vjp,
    jvp=conv_jvp,
    numpy=lambda o, env, B: conv_numpy(env[o.W], env[o.x], o.g,
                                       env[o.b] if o.b is not None else None),
    sympy=conv_sympy,
    equation=conv_equation,
    text=lambda o: f"conv1d({o.W.name}, {o.x.name}, {o.g})"
    + (f" + {o.b.name}" if o.b is not None else ""),
    describe=lambda o: f"{o.out.name} = {o.W.name} ⋆ {o.x.name}"
    + (f" + {o.b.name}" if o.b is not None else "") + f" ({o.g})",
)


# -- ConvT1D ---------------------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class ConvT1D(_GeomOp, Op):
    """``out[c', u] = Σ_{c, k, t: t·s + k − p = u} W[c, c', k] h[c, t]`` per sample: the
    adjoint of ``x ↦ W ⋆ x``, a correlation of ``h`` with the flipped kernel."""

    out: Var
    W: Var
    h: Var
    g: Geom

    @property
    def inputs(self):
        return (self.W, self.h)


def convt_vjp(b, o: ConvT1D, g, active):
    """x = ConvT1D(W, h):  h̄ = Conv1D(W, g);  ∂/∂W = ConvWMean(h, g)."""
    g = H.materialise(b, g, o.out.size)
    out = []
    if o.W in active:
        out.append((o.W, b.emit(ConvWMean(b.temp(o.W.shape, "param"), o.h, g, o.g))))
    if o.h in active:
        out.append((o.h, b.emit(Conv1D(b.temp(o.h.shape), o.W, g, None, o.g))))
    return out


def convt_jvp(b, o: ConvT1D, d):
    Wd, hd = d.get(o.W), d.get(o.h)
    terms = []
    if Wd is not None:
        terms.append(b.emit(ConvT1D(b.temp(o.out.shape), Wd, o.h, o.g)))
    if hd is not None:
        terms.append(b.emit(ConvT1D(b.temp(o.out.shape), o.W, hd, o.g)))
    return _tsum(b, o.out, terms)


def convt_sympy(o: ConvT1D, env, B):
    W, h, g = env[o.W], env[o.h], o.g
    W = np.asarray(W, dtype=object).reshape(g.c_out, g.c_in, g.k)
    r = np.empty((B, g.c_in * g.l_in), dtype=object)
    for s in range(B):
        terms: dict = {}
        for t, k, u in taps(g):
            for ci in range(g.c_in):
                for c in range(g.c_out):
                    terms.setdefault((ci, u), []).append(W[c, ci, k] * h[s, c * g.l_out + t])
        for ci in range(g.c_in):
            for u in range(g.l_in):
                r[s, ci * g.l_in + u] = _sum(terms.get((ci, u), []))
    return r


def convt_equation(o: ConvT1D, ctx):
    g = o.g
    if g.s == 1:
        # the correlation with the flipped kernel W̃[c, c′, j] = W[c, c′, K−1−j]
        sh = g.k - 1 - g.p
        idx = "u" + (f" + j − {sh}" if sh > 0 else (f" + j + {-sh}" if sh < 0 else " + j"))
        idx_tex = idx.replace("−", "-")
        t = (f"Σ_{{c,j}} {o.W.text}[c,c′,{g.k - 1}−j] {o.h.text}[c, {idx}]"
             f"  (a correlation with the flipped kernel; {o.h.text} = 0 outside 0…{g.l_out - 1})")
        x = r"\sum_{c,j} %s_{c,c',%d-j}\, %s_{c,\,%s}" % (o.W.tex, g.k - 1, o.h.tex, idx_tex)
    else:
        t = (f"Σ_{{c,k,t: {g.s}t + k − {g.p} = u}} {o.W.text}[c,c′,k] {o.h.text}[c,t]"
             "  (a strided correlation with the flipped kernel)")
        x = r"\sum_{c,k,t:\ %dt + k - %d = u} %s_{c,c',k}\, %s_{c,t}" % (
            g.s, g.p, o.W.tex, o.h.tex)
    return _indexed(ctx.equation(o, t, x), "[c′,u]", "_{c',u}")


register(
    ConvT1D,
    vjp=convt_vjp,
    jvp=convt_jvp,
    numpy=lambda o, env, B: convt_numpy(env[o.W], env[o.h], o.g),
    sympy=convt_sympy,
    equation=convt_equation,
    text=lambda o: f"conv1dᵀ({o.W.name}, {o.h.name}, {o.g})",
    describe=lambda o: f"{o.out.name} = {o.W.name}ᵀ ⋆ {o.h.name} ({o.g})",
)


# -- ConvWMean --------------------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class ConvWMean(_GeomOp, Op):
    """``out[c, c', k] = (1/B) Σ_s Σ_t u_s[c, t] v_s[c', t·s + k − p]``: the batch mean of
    the kernel-shaped products (a convolution's weight gradient when ``u`` is its δ)."""

    out: Var
    u: Var
    v: Var
    g: Geom

    @property
    def inputs(self):
        return (self.u, self.v)


def convw_vjp(b, o: ConvWMean, G, active):
    """M = ConvWMean(u, v) with cotangent G:  ū = Conv1D(G, v);  v̄ = ConvT1D(G, u)."""
    if H.is_const(G):
        raise DerivationError(f"{o.out.name}: a constant cotangent of ConvWMean has no rule")
    out = []
    if o.u in active:
        out.append((o.u, b.emit(Conv1D(b.temp(o.u.shape), G, o.v, None, o.g))))
    if o.v in active:
        out.append((o.v, b.emit(ConvT1D(b.temp(o.v.shape), G, o.u, o.g))))
    return out


def convw_jvp(b, o: ConvWMean, d):
    ud, vd = d.get(o.u), d.get(o.v)
    terms = []
    if ud is not None:
        terms.append(b.emit(ConvWMean(b.temp(o.out.shape, "param"), ud, o.v, o.g)))
    if vd is not None:
        terms.append(b.emit(ConvWMean(b.temp(o.out.shape, "param"), o.u, vd, o.g)))
    return _tsum(b, o.out, terms)


def convw_sympy(o: ConvWMean, env, B):
    u, v, g = env[o.u], env[o.v], o.g
    r = np.empty((g.c_out, g.c_in, g.k), dtype=object)
    for c in range(g.c_out):
        for ci in range(g.c_in):
            for k in range(g.k):
                r[c, ci, k] = _sum([u[s, c * g.l_out + t] * v[s, ci * g.l_in + uu]
                                    for s in range(B) for t, kk, uu in taps(g)
                                    if kk == k]) / B
    return r.reshape(o.out.shape)


def convw_equation(o: ConvWMean, ctx):
    g = o.g
    t = f"⟨Σ_t {o.u.text}[c,t] {o.v.text}[c′, {_idx(g)}]⟩"
    x = r"\frac{1}{B}\sum_{s=1}^{B} \sum_{t} %s_{s,c,t}\, %s_{s,c',\,%s}" % (
        o.u.tex, o.v.tex, _idx_tex(g))
    return _indexed(ctx.equation(o, t, x), "[c,c′,k]", "_{c,c',k}")


register(
    ConvWMean,
    vjp=convw_vjp,
    jvp=convw_jvp,
    numpy=lambda o, env, B: convw_numpy(env[o.u], env[o.v], o.g).reshape(o.out.shape),
    sympy=convw_sympy,
    equation=convw_equation,
    text=lambda o: f"mean over batch(conv1d_w({o.u.name}, {o.v.name}, {o.g}))",
    describe=lambda o: f"{o.out.name} = batch mean of {o.u.name} ⋆ {o.v.name} ({o.g})",
)
