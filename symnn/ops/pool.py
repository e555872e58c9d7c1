r"""Channel and pooling ops on per-sample ``(channels, length)`` values (flat, row-major
``(c, t)``; see :mod:`symnn.ops.conv` for the table of their meanings and rules).

``ChannelMean``/``ChannelBcast`` (a convolution's bias gradient and its adjoint),
``AvgPool``/``AvgPoolT`` and ``MaxGather``/``MaxScatter`` are adjoint pairs: each one's
reverse rule is the other, and each is linear in its value argument, so the forward rules
are the ops themselves applied to the tangents.  ``MaxGather(x, v)`` picks ``v`` at the
argmax of ``x`` in each window (ties: the first maximal component, as PyTorch); its
derivative in ``x`` is zero wherever the argmax is unique.

Examples
--------
>>> import numpy as np
>>> from symnn.ops.conv import Pool
>>> x = np.array([[1.0, 3.0, 3.0, 2.0, 5.0]])
>>> maxgather_numpy(x, x, Pool(1, 5, 2))
array([[3., 3.]])
>>> maxscatter_numpy(x, np.array([[10.0, 20.0]]), Pool(1, 5, 2))
array([[ 0., 10., 20.,  0.,  0.]])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops.conv import Pool, _GeomOp, _indexed
from symnn.ops.ir import Op, Var
from symnn.ops.registry import op_class, register

__all__ = ["ChannelMean", "ChannelBcast", "AvgPool", "AvgPoolT", "MaxGather", "MaxScatter",
           "maxgather_numpy", "maxscatter_numpy"]


def _linear_vjp(adjoint, field):
    """The reverse rule of an op linear in ``field``: the adjoint op applied to ``g``."""

    def vjp(b, o, g, active):
        v = getattr(o, field)
        if v not in active:
            return []
        g = H.materialise(b, g, o.out.size)
        return [(v, b.emit(adjoint(o, b.temp(v.shape), g)))]

    return vjp


def _linear_jvp(field, kind="sample"):
    def jvp(b, o, d):
        vd = d.get(getattr(o, field))
        if vd is None:
            return None
        return b.emit(_with(o, b.temp(o.out.shape, kind), vd))

    return jvp


def _with(o, out, value):
    """``o`` with another output and value argument (the last Var field)."""
    return replace(o, **{"out": out, o.VALUE: value})


# -- ChannelMean / ChannelBcast --------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class ChannelMean(_GeomOp, Op):
    """``out[c] = ⟨Σ_t v[c, t]⟩`` (``v`` per sample of shape ``(c, l)``, ``out`` a
    parameter-shaped batch mean): a convolution's bias gradient."""

    out: Var
    v: Var
    c: int
    l: int
    VALUE = "v"

    @property
    def g(self):
        return (self.c, self.l)

    @property
    def inputs(self):
        return (self.v,)


@op_class
@dataclass(frozen=True)
class ChannelBcast(_GeomOp, Op):
    """``out[c, t] = v[c]`` per sample (``v`` parameter-shaped, ``(c,)``; ``out`` of shape
    ``(c, l)``): the adjoint of :class:`ChannelMean`."""

    out: Var
    v: Var
    c: int
    l: int
    VALUE = "v"

    @property
    def g(self):
        return (self.c, self.l)

    @property
    def inputs(self):
        return (self.v,)


def _cmean_vjp(b, o, G, active):
    """M = ⟨Σ_t v[c,t]⟩ with cotangent G:  v̄[c, t] = G[c] (per sample)."""
    if o.v not in active:
        return []
    if H.is_const(G):
        raise DerivationError(f"{o.out.name}: a constant cotangent of ChannelMean has no rule")
    return [(o.v, b.emit(ChannelBcast(b.temp(o.v.shape), G, o.c, o.l)))]


def _cbcast_vjp(b, o, g, active):
    """r[c, t] = v[c] with v a parameter:  v̄ = ⟨Σ_t g[c, t]⟩."""
    if o.v not in active:
        return []
    g = H.materialise(b, g, o.out.size)
    return [(o.v, b.emit(ChannelMean(b.temp(o.v.shape, "param"), g, o.c, o.l)))]


def _cmean_sympy(o, env, B):
    v = env[o.v]
    r = np.empty((o.c,), dtype=object)
    for c in range(o.c):
        r[c] = sp.Add(*[v[s, c * o.l + t] for s in range(B) for t in range(o.l)]) / B
    return r


def _cbcast_sympy(o, env, B):
    v = env[o.v]
    r = np.empty((B, o.c * o.l), dtype=object)
    for s in range(B):
        for c in range(o.c):
            for t in range(o.l):
                r[s, c * o.l + t] = v[c]
    return r


def _cbcast_numpy(o, env, B):
    v = np.asarray(env[o.v]).reshape(o.c)
    return np.broadcast_to(np.repeat(v, o.l)[None, :], (B, o.c * o.l)).copy()


register(
    ChannelMean,
    vjp=_cmean_vjp,
    jvp=_linear_jvp("v", "param"),
    numpy=lambda o, env, B: env[o.v].reshape(B, o.c, o.l).sum(axis=2).mean(axis=0),
    sympy=_cmean_sympy,
    equation=lambda o, ctx: _indexed(ctx.equation(
        o, f"⟨Σ_t {o.v.text}[c,t]⟩", r"\frac{1}{B}\sum_{s=1}^{B} \sum_{t} %s_{s,c,t}" % o.v.tex),
        "[c]", "_{c}"),
    text=lambda o: f"mean over batch(channel_sum({o.v.name}, {o.c}×{o.l}))",
    describe=lambda o: f"{o.out.name} = batch mean of the sums over t of {o.v.name}[c, t] "
    f"({o.c}×{o.l})",
)

register(
    ChannelBcast,
    vjp=_cbcast_vjp,
    jvp=_linear_jvp("v"),
    numpy=_cbcast_numpy,
    sympy=_cbcast_sympy,
    equation=lambda o, ctx: _indexed(ctx.equation(o, f"{o.v.text}[c]", r"%s_{c}" % o.v.tex),
                                     "[c,t]", "_{c,t}"),
    text=lambda o: f"channel_broadcast({o.v.name}, {o.c}×{o.l})",
    describe=lambda o: f"{o.out.name}[c, t] = {o.v.name}[c] ({o.c}×{o.l})",
)


# -- AvgPool / AvgPoolT ----------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class AvgPool(_GeomOp, Op):
    """``out[c, t] = (1/m) Σ_{j<m} x[c, t·m + j]`` per sample."""

    out: Var
    x: Var
    g: Pool
    VALUE = "x"

    @property
    def inputs(self):
        return (self.x,)


@op_class
@dataclass(frozen=True)
class AvgPoolT(_GeomOp, Op):
    """``out[c, t·m + j] = h[c, t]/m`` (0 on a tail shorter than ``m``): the adjoint of
    :class:`AvgPool`."""

    out: Var
    h: Var
    g: Pool
    VALUE = "h"

    @property
    def inputs(self):
        return (self.h,)


def _avg_numpy(o, env, B):
    p = o.g
    x = env[o.x].reshape(B, p.c, p.l_in)[:, :, :p.l_out * p.m]
    return x.reshape(B, p.c, p.l_out, p.m).mean(axis=3).reshape(B, -1)


def _avgt_numpy(o, env, B):
    p = o.g
    h = env[o.h].reshape(B, p.c, p.l_out)
    out = np.zeros((B, p.c, p.l_in), dtype=h.dtype)
    out[:, :, :p.l_out * p.m] = np.repeat(h / p.m, p.m, axis=2)
    return out.reshape(B, -1)


def _avg_sympy(o, env, B):
    p, x = o.g, env[o.x]
    r = np.empty((B, p.c * p.l_out), dtype=object)
    for s in range(B):
        for c in range(p.c):
            for t in range(p.l_out):
                r[s, c * p.l_out + t] = sp.Add(*[x[s, c * p.l_in + t * p.m + j]
                                                 for j in range(p.m)]) / p.m
    return r


def _avgt_sympy(o, env, B):
    p, h = o.g, env[o.h]
    r = np.full((B, p.c * p.l_in), sp.Integer(0), dtype=object)
    for s in range(B):
        for c in range(p.c):
            for t in range(p.l_out):
                for j in range(p.m):
                    r[s, c * p.l_in + t * p.m + j] = h[s, c * p.l_out + t] / p.m
    return r


register(
    AvgPool,
    vjp=_linear_vjp(lambda o, out, g: AvgPoolT(out, g, o.g), "x"),
    jvp=_linear_jvp("x"),
    numpy=_avg_numpy,
    sympy=_avg_sympy,
    equation=lambda o, ctx: _indexed(ctx.equation(
        o, f"(1/{o.g.m}) Σ_{{j<{o.g.m}}} {o.x.text}[c, {o.g.m}t + j]",
        r"\frac{1}{%d}\sum_{j=0}^{%d} %s_{c,\,%dt + j}" % (o.g.m, o.g.m - 1, o.x.tex, o.g.m)),
        "[c,t]", "_{c,t}"),
    text=lambda o: f"avg_pool({o.x.name}, {tuple(o.g)})",
    describe=lambda o: f"{o.out.name} = average pool of {o.x.name} {tuple(o.g)}",
)

register(
    AvgPoolT,
    vjp=_linear_vjp(lambda o, out, g: AvgPool(out, g, o.g), "h"),
    jvp=_linear_jvp("h"),
    numpy=_avgt_numpy,
    sympy=_avgt_sympy,
    equation=lambda o, ctx: _indexed(ctx.equation(
        o, f"{o.h.text}[c, ⌊u/{o.g.m}⌋] / {o.g.m}",
        r"\frac{1}{%d} %s_{c,\,\lfloor u/%d \rfloor}" % (o.g.m, o.h.tex, o.g.m)),
        "[c,u]", "_{c,u}"),
    text=lambda o: f"avg_pool_adjoint({o.h.name}, {tuple(o.g)})",
    describe=lambda o: f"{o.out.name} = average pool adjoint of {o.h.name} {tuple(o.g)}",
)


# -- MaxGather / MaxScatter ------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class MaxGather(_GeomOp, Op):
    """``out[c, t] = v[c, t·m + j*]`` with ``j* = argmax_j x[c, t·m + j]`` (the first on a
    tie); ``MaxGather(x, x)`` is the max pool."""

    out: Var
    x: Var
    v: Var
    g: Pool
    VALUE = "v"

    @property
    def inputs(self):
        return (self.x,) if self.x == self.v else (self.x, self.v)


@op_class
@dataclass(frozen=True)
class MaxScatter(_GeomOp, Op):
    """``out[c, t·m + j*] = h[c, t]``, 0 elsewhere: the adjoint of ``v ↦ MaxGather(x, v)``."""

    out: Var
    x: Var
    h: Var
    g: Pool
    VALUE = "h"

    @property
    def inputs(self):
        return (self.x, self.h)


def _argmax(x, p: Pool):
    B = x.shape[0]
    xs = np.asarray(x).reshape(B, p.c, p.l_in)[:, :, :p.l_out * p.m]
    return np.argmax(xs.reshape(B, p.c, p.l_out, p.m), axis=3)  # the first maximum


def maxgather_numpy(x, v, p: Pool):
    B = x.shape[0]
    j = _argmax(x, p)
    vs = np.asarray(v).reshape(B, p.c, p.l_in)[:, :, :p.l_out * p.m]
    vs = vs.reshape(B, p.c, p.l_out, p.m)
    return np.take_along_axis(vs, j[..., None], axis=3)[..., 0].reshape(B, -1)


def maxscatter_numpy(x, h, p: Pool):
    B = x.shape[0]
    j = _argmax(x, p)
    h = np.asarray(h).reshape(B, p.c, p.l_out)
    out = np.zeros((B, p.c, p.l_out, p.m), dtype=h.dtype)
    np.put_along_axis(out, j[..., None], h[..., None], axis=3)
    full = np.zeros((B, p.c, p.l_in), dtype=h.dtype)
    full[:, :, :p.l_out * p.m] = out.reshape(B, p.c, -1)
    return full.reshape(B, -1)


def _argmax_sym(x, s, c, t, p: Pool) -> int:
    """The window's argmax from the numeric values (expanded forms need numbers here)."""
    vals = [x[s, c * p.l_in + t * p.m + j] for j in range(p.m)]
    try:
        nums = [float(v) for v in vals]
    except TypeError:
        raise DerivationError(
            "a max pool's expanded form needs numeric inputs: the argmax of symbolic values "
            "is not an expression; evaluate at numbers or use the compiled kernels") from None
    return int(np.argmax(nums))


def _gather_sympy(o, env, B):
    p, x, v = o.g, env[o.x], env[o.v]
    r = np.empty((B, p.c * p.l_out), dtype=object)
    for s in range(B):
        for c in range(p.c):
            for t in range(p.l_out):
                r[s, c * p.l_out + t] = v[s, c * p.l_in + t * p.m + _argmax_sym(x, s, c, t, p)]
    return r


def _scatter_sympy(o, env, B):
    p, x, h = o.g, env[o.x], env[o.h]
    r = np.full((B, p.c * p.l_in), sp.Integer(0), dtype=object)
    for s in range(B):
        for c in range(p.c):
            for t in range(p.l_out):
                j = _argmax_sym(x, s, c, t, p)
                r[s, c * p.l_in + t * p.m + j] = h[s, c * p.l_out + t]
    return r


def _gather_eq(o, ctx):
    m = o.g.m
    if o.x == o.v:
        return _indexed(ctx.equation(o, f"max_{{j<{m}}} {o.x.text}[c, {m}t + j]",
                                     r"\max_{0 \le j < %d} %s_{c,\,%dt + j}" % (m, o.x.tex, m)),
                        "[c,t]", "_{c,t}")
    return _indexed(ctx.equation(
        o, f"{o.v.text}[c, {m}t + j*],  j* = argmax_j {o.x.text}[c, {m}t + j]",
        r"%s_{c,\,%dt + j^*},\quad j^* = \operatorname{argmax}_j %s_{c,\,%dt + j}"
        % (o.v.tex, m, o.x.tex, m)), "[c,t]", "_{c,t}")


def _scatter_eq(o, ctx):
    m = o.g.m
    return _indexed(ctx.equation(
        o, f"{o.h.text}[c, t] if u = {m}t + j*(c,t) (the first argmax of {o.x.text} in its "
        "window), else 0",
        r"%s_{c,t}\ \text{if}\ u = %dt + j^*_{c,t}\ (\text{first argmax of } %s),\ "
        r"\text{else } 0" % (o.h.tex, m, o.x.tex)), "[c,u]", "_{c,u}")


register(
    MaxGather,
    vjp=_linear_vjp(lambda o, out, g: MaxScatter(out, o.x, g, o.g), "v"),
    jvp=_linear_jvp("v"),
    numpy=lambda o, env, B: maxgather_numpy(env[o.x], env[o.v], o.g),
    sympy=_gather_sympy,
    equation=_gather_eq,
    text=lambda o: f"max_gather({o.x.name}, {o.v.name}, {tuple(o.g)})",
    describe=lambda o: f"{o.out.name} = {o.v.name} at the window argmax of {o.x.name} "
    f"{tuple(o.g)}",
)

register(
    MaxScatter,
    vjp=_linear_vjp(lambda o, out, g: MaxGather(out, o.x, g, o.g), "h"),
    jvp=_linear_jvp("h"),
    numpy=lambda o, env, B: maxscatter_numpy(env[o.x], env[o.h], o.g),
    sympy=_scatter_sympy,
    equation=_scatter_eq,
    text=lambda o: f"max_scatter({o.x.name}, {o.h.name}, {tuple(o.g)})",
    describe=lambda o: f"{o.out.name} = {o.h.name} routed to the window argmax of {o.x.name} "
    f"{tuple(o.g)}",
)
