r"""Row ops on per-sample sequence values ``(T, d)`` (flat, row-major ``(t, i)``): what a
recurrent layer unrolled over time needs besides the affine and elementwise ops.

================  ================================  ==================================
op                meaning                           reverse / forward
================  ================================  ==================================
``RecRow``        ``r = x[t, :]``                   ``x̄ = RecRowT(ḡ, t)``; ``ṙ = ẋ[t, :]``
``RecRowT``       ``X[t, :] = g``, 0 elsewhere      ``ḡ = ḡ_X[t, :]``; ``Ẋ = RecRowT(ġ, t)``
``RecStack``      ``S = [h₁; …; h_T]`` (rows)       ``h̄ₜ = S̄[t, :]``; ``Ṡ = [ḣ₁; …; ḣ_T]``
``RecStop``       ``s = h`` (stop-gradient)         ``h̄ = 0``; ``ṡ = ḣ``
================  ================================  ==================================

``RecRow`` and ``RecRowT`` are an adjoint pair; each is linear, so its forward rule is
itself applied to the tangent.  ``RecStop`` is the identity whose reverse rule is zero
(truncated backpropagation through time: the gradient is not passed back through it); its
forward rule is the identity, so a Hessian-vector product is the exact derivative of the
truncated gradient.

Examples
--------
>>> import numpy as np
>>> from symnn import ops as P
>>> x = P.Var("x", "input", (6,))
>>> o = RecRow(P.Var("r", "sample", (2,)), x, 1)
>>> P.NUMPY[RecRow](o, {x: np.arange(6.0)[None, :]}, 1)
array([[2., 3.]])
>>> print(P.TEXT[RecRow](o))
x[row 1 of 3]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symnn.ops import _rules as H
from symnn.ops.ir import Op, Var
from symnn.ops.registry import op, op_class, register

__all__ = ["RecRow", "RecRowT", "RecStack", "RecStop"]


@op_class
@dataclass(frozen=True)
class RecRow(Op):
    """``out = x[t·d : (t+1)·d]`` per sample, ``d = out.size`` (row ``t`` of a ``(T, d)``
    value)."""

    out: Var
    x: Var
    t: int

    @property
    def inputs(self):
        return (self.x,)


@op_class
@dataclass(frozen=True)
class RecRowT(Op):
    """``out[t·d : (t+1)·d] = g`` and 0 elsewhere, ``d = g.size``: the adjoint of
    :class:`RecRow`."""

    out: Var
    g: Var
    t: int

    @property
    def inputs(self):
        return (self.g,)


@op_class
@dataclass(frozen=True)
class RecStack(Op):
    """``out = [rows[0]; rows[1]; …]``: equal-sized per-sample rows stacked into a
    ``(T, d)`` value."""

    out: Var
    rows: tuple[Var, ...]

    @property
    def inputs(self):
        return tuple(dict.fromkeys(self.rows))


@op_class
@dataclass(frozen=True)
class RecStop(Op):
    """``out = h``; the gradient stops here (truncated BPTT)."""

    out: Var
    h: Var

    #: The Gauss-Newton product's ``J v`` stops here too (its Jacobian is the truncated one
    #: on both sides, ``J_trᵀ H_ℓ J_tr``: symmetric, positive semi-definite, the matrix
    #: ``diag_ggn`` and K-FAC describe); the Hessian-vector product's tangent passes on
    #: (``ṡ = ḣ``: the exact derivative of the truncated gradient).
    cuts_gauss_newton = True

    @property
    def inputs(self):
        return (self.h,)


# -- reverse ---------------------------------------------------------------------------------

def _row_vjp(b, o: RecRow, g, active):
    """r = x[t]:  x̄ = g in row t, 0 elsewhere."""
    if o.x not in active:
        return []
    g = H.materialise(b, g, o.out.size)
    return [(o.x, b.emit(RecRowT(b.temp(o.x.shape), g, o.t)))]


def _rowt_vjp(b, o: RecRowT, g, active):
    """X = g in row t:  ḡ = X̄[t]."""
    if o.g not in active:
        return []
    g = H.materialise(b, g, o.out.size)
    return [(o.g, b.emit(RecRow(b.temp(o.g.shape), g, o.t)))]


def _stack_vjp(b, o: RecStack, g, active):
    """S = [h₁; …]:  h̄ₜ = S̄[t]."""
    g = H.materialise(b, g, o.out.size)
    return [(h, b.emit(RecRow(b.temp(h.shape), g, t)))
            for t, h in enumerate(o.rows) if h in active]


# -- forward ---------------------------------------------------------------------------------

def _row_jvp(b, o: RecRow, d):
    xd = d.get(o.x)
    return None if xd is None else b.emit(RecRow(H.dot_var(b, o.out), xd, o.t))


def _rowt_jvp(b, o: RecRowT, d):
    gd = d.get(o.g)
    return None if gd is None else b.emit(RecRowT(H.dot_var(b, o.out), gd, o.t))


def _stack_jvp(b, o: RecStack, d):
    dots = [d.get(h) for h in o.rows]
    if all(x is None for x in dots):
        return None
    zero = None
    rows = []
    for h, x in zip(o.rows, dots):
        if x is None:
            if zero is None:
                zero = b.emit(op.Map(b.temp(h.shape), (sp.S.Zero,), ()))
            x = zero
        rows.append(x)
    return b.emit(RecStack(H.dot_var(b, o.out), tuple(rows)))


def _stop_jvp(b, o: RecStop, d):
    return d.get(o.h)


# -- evaluation ------------------------------------------------------------------------------

def _row_numpy(o: RecRow, env, B):
    n = o.out.size
    return np.array(env[o.x][:, o.t * n:(o.t + 1) * n])


def _rowt_numpy(o: RecRowT, env, B):
    g = env[o.g]
    n = o.g.size
    r = np.zeros((g.shape[0], o.out.size), dtype=g.dtype if g.dtype != object else float)
    if g.dtype == object:
        r = r.astype(object)
    r[:, o.t * n:(o.t + 1) * n] = g
    return r


def _stack_numpy(o: RecStack, env, B):
    return np.concatenate([env[h] for h in o.rows], axis=1)


def _rowt_sympy(o: RecRowT, env, B):
    g = env[o.g]
    n = o.g.size
    r = np.full((B, o.out.size), sp.S.Zero, dtype=object)
    r[:, o.t * n:(o.t + 1) * n] = g
    return r


def _rows(o) -> int:
    return o.x.size // o.out.size if isinstance(o, RecRow) else o.out.size // o.g.size


register(
    RecRow,
    vjp=_row_vjp,
    jvp=_row_jvp,
    numpy=_row_numpy,
    sympy=_row_numpy,
    equation=lambda o, ctx: ctx.equation(o, f"{o.x.text}[{o.t + 1}]",
                                         r"%s_{[%d]}" % (o.x.tex, o.t + 1)),
    text=lambda o: f"{o.x.name}[row {o.t} of {_rows(o)}]",
    describe=lambda o: f"{o.out.name} = row {o.t} of {o.x.name} ({_rows(o)} rows)",
)

register(
    RecRowT,
    vjp=_rowt_vjp,
    jvp=_rowt_jvp,
    numpy=_rowt_numpy,
    sympy=_rowt_sympy,
    equation=lambda o, ctx: ctx.equation(
        o, f"{o.g.text} in row {o.t + 1}, 0 elsewhere",
        r"\left[0; \dots; %s; \dots; 0\right]_{\text{row } %d}" % (o.g.tex, o.t + 1)),
    text=lambda o: f"{o.g.name} into row {o.t} of {_rows(o)} (0 elsewhere)",
    describe=lambda o: f"{o.out.name} = {o.g.name} in row {o.t} of {_rows(o)}, 0 elsewhere",
)

register(
    RecStack,
    vjp=_stack_vjp,
    jvp=_stack_jvp,
    numpy=_stack_numpy,
    sympy=_stack_numpy,
    equation=lambda o, ctx: ctx.equation(
        o, "[" + "; ".join(h.text for h in o.rows) + "]",
        r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(
            r"\left(%s\right)^{\top}" % h.tex for h in o.rows)),
    text=lambda o: "stack(" + ", ".join(h.name for h in o.rows) + ")",
    describe=lambda o: f"{o.out.name} = the rows {o.rows[0].name} … {o.rows[-1].name} stacked",
)

register(
    RecStop,
    vjp=lambda b, o, g, active: [],
    jvp=_stop_jvp,
    numpy=lambda o, env, B: np.array(env[o.h]),
    sympy=lambda o, env, B: np.array(env[o.h]),
    equation=lambda o, ctx: ctx.equation(o, f"{o.h.text}   (no gradient passes back)",
                                         r"%s \quad (\text{no gradient passes back})"
                                         % o.h.tex),
    text=lambda o: f"stop_gradient({o.h.name})",
    describe=lambda o: f"{o.out.name} = {o.h.name}, the gradient stops here",
)
