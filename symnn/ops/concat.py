"""Joining and cutting per-sample vectors: ``Concat`` (``[u; v; …]``) and its adjoint
``Slice`` (``u[s : s + m]``).

A part of a ``Concat`` may be ``None``: that many zeros (the tangent of a part that has
none, the adjoint of a ``Slice``).  The two are each other's adjoints, so reverse and
forward mode stay inside this kit:

================  ======================================  ===============================
op                reverse                                 forward
================  ======================================  ===============================
``Concat``        ``ḡ_uᵢ = g[oᵢ : oᵢ + |uᵢ|]`` (Slice)     ``[u̇₁; u̇₂; …]`` (0 for none)
``Slice``         ``ḡ_u = [0; g; 0]`` (Concat)             ``u̇[s : s + m]``
================  ======================================  ===============================

Examples
--------
>>> import numpy as np
>>> from symnn.ops import NUMPY, Var
>>> u, v = Var("u", "sample", (2,)), Var("v", "sample", (1,))
>>> c = Concat(Var("c", "sample", (3,)), (u, v), (2, 1))
>>> NUMPY[Concat](c, {u: np.array([[1.0, 2.0]]), v: np.array([[3.0]])}, 1)
array([[1., 2., 3.]])
>>> s = Slice(Var("s", "sample", (1,)), c.out, 2)
>>> NUMPY[Slice](s, {c.out: np.array([[1.0, 2.0, 3.0]])}, 1)
array([[3.]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops.ir import Op, Var
from symnn.ops.registry import op_class, register

__all__ = ["Concat", "Slice"]


@op_class
@dataclass(frozen=True)
class Concat(Op):
    """``out = [p₁; p₂; …]`` per sample: the parts one after the other (a ``None`` part is
    ``sizes[i]`` zeros)."""

    out: Var
    parts: tuple
    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.parts) != len(self.sizes) or sum(self.sizes) != self.out.size:
            raise DerivationError(f"{self.out.name}: Concat of sizes {self.sizes} into a "
                                  f"value of size {self.out.size}")

    @property
    def inputs(self):
        seen: list[Var] = []
        for p in self.parts:
            if p is not None and p not in seen:
                seen.append(p)
        return tuple(seen)

    def offsets(self) -> list[int]:
        out, o = [], 0
        for s in self.sizes:
            out.append(o)
            o += s
        return out


@op_class
@dataclass(frozen=True)
class Slice(Op):
    """``out = u[start : start + |out|]`` per sample."""

    out: Var
    u: Var
    start: int

    @property
    def inputs(self):
        return (self.u,)


def concat_vjp(b, o: Concat, g, active):
    """[u; v]:  ḡ_u = g[0 : |u|],  ḡ_v = g[|u| : |u| + |v|]."""
    out = []
    for p, off, n in zip(o.parts, o.offsets(), o.sizes):
        if p is None or p not in active:
            continue
        if H.is_const(g):
            out.append((p, g))
        else:
            out.append((p, b.emit(Slice(b.temp((n,)), g, off))))
    return out


def concat_jvp(b, o: Concat, d):
    tangents = tuple(None if p is None else d.get(p) for p in o.parts)
    if all(t is None for t in tangents):
        return None
    return b.emit(Concat(H.dot_var(b, o.out), tangents, o.sizes))


def slice_vjp(b, o: Slice, g, active):
    """u[s : s + m]:  ḡ_u = [0 (s); g; 0 (|u| − s − m)]."""
    if o.u not in active:
        return []
    m, n = o.out.size, o.u.size
    g = H.materialise(b, g, m)
    parts = [(None, o.start), (g, m), (None, n - o.start - m)]
    parts = [(p, s) for p, s in parts if s > 0]
    return [(o.u, b.emit(Concat(b.temp((n,)), tuple(p for p, _ in parts),
                                tuple(s for _, s in parts))))]


def slice_jvp(b, o: Slice, d):
    t = d.get(o.u)
    return None if t is None else b.emit(Slice(H.dot_var(b, o.out), t, o.start))


def concat_numpy(o: Concat, env, B: int):
    return np.concatenate([np.zeros((B, n)) if p is None else np.asarray(env[p], float)
                           .reshape(B, n) for p, n in zip(o.parts, o.sizes)], axis=1)


def concat_sympy(o: Concat, env, B: int):
    cols = []
    for p, n in zip(o.parts, o.sizes):
        cols.append(np.full((B, n), sp.S.Zero, dtype=object) if p is None else env[p])
    return np.concatenate(cols, axis=1)


def _name(v, ctx, tex: bool) -> str:
    if v is None:
        return "0"
    t = ctx.temps.get(v.name, (v.text, v.tex))
    return t[1] if tex else t[0]


def concat_equation(o: Concat, ctx):
    text = "[" + "; ".join(_name(p, ctx, False) for p in o.parts) + "]"
    tex = r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(_name(p, ctx, True)
                                                              for p in o.parts)
    return ctx.equation(o, text, tex)


def slice_equation(o: Slice, ctx):
    a, m = o.start, o.out.size
    u_t, u_x = _name(o.u, ctx, False), _name(o.u, ctx, True)
    return ctx.equation(o, f"({u_t})[{a + 1}:{a + m}]",
                        r"\left(%s\right)_{%d:%d}" % (u_x, a + 1, a + m))


def _parts_text(o: Concat) -> str:
    return "[" + "; ".join(f"0({n})" if p is None else p.name
                           for p, n in zip(o.parts, o.sizes)) + "]"


register(
    Concat,
    vjp=concat_vjp,
    jvp=concat_jvp,
    numpy=concat_numpy,
    sympy=concat_sympy,
    equation=concat_equation,
    text=_parts_text,
    describe=lambda o: f"{o.out.name} = concatenation {_parts_text(o)}",
)

register(
    Slice,
    vjp=slice_vjp,
    jvp=slice_jvp,
    numpy=lambda o, env, B: np.asarray(env[o.u])[:, o.start:o.start + o.out.size].copy(),
    sympy=lambda o, env, B: env[o.u][:, o.start:o.start + o.out.size],
    equation=slice_equation,
    text=lambda o: f"{o.u.name}[{o.start}:{o.start + o.out.size}]",
    describe=lambda o: f"{o.out.name} = {o.u.name}[{o.start}:{o.start + o.out.size}]",
)
