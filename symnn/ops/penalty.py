"""Regularisation: ``Penalty``, an L1 or L2 term on a parameter (or its gradient).

================  ===============================================================
reverse           value: ``∂(λ‖θ‖²)/∂θ = 2λθ``, ``∂(λ‖θ‖₁)/∂θ = λ sign θ`` (a
                  constant cotangent scales λ); gradient: L2 ``2λ ḡ``, L1 ``0``
forward           L2: ``(2λθ)˙ = 2λθ̇``; L1: ``(λ sign θ)˙ = 0``
================  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops.ir import Op, Var
from symnn.ops.registry import op_class, register

__all__ = ["Penalty"]


@op_class
@dataclass(frozen=True)
class Penalty(Op):
    """A regularisation term on a parameter: ``out = coef · Σ θ²`` (L2) or ``coef · Σ |θ|`` (L1).

    When ``grad`` is true the op is instead the penalty's gradient with respect to θ
    (``2 coef θ`` or ``coef sign(θ)``), of θ's shape.  ``indices`` restricts the penalty
    to those flat components of θ (``None``: all).
    """

    out: Var
    param: Var
    kind: str
    coef: sp.Rational | sp.Float
    grad: bool = False
    indices: tuple[int, ...] | None = None

    @property
    def inputs(self):
        return (self.param,)

    def fingerprint_line(self) -> str:
        return (
            f"{self.out.name}{self.out.shape} = Penalty[{self.kind},{self.coef},{self.grad},"
            f"{self.indices}]({self.param.name})"
        )


def penalty_vjp(b, o: Penalty, g, active):
    """value: ḡ_θ = g ∇R(θ) (g constant);  gradient: L2 ḡ_θ = 2λ g, L1 none."""
    if o.param not in active:
        return []
    if not o.grad:
        if not H.is_const(g):
            raise DerivationError(f"{o.out.name}: a penalty value's cotangent must be constant")
        out = b.temp(o.param.shape, "param")
        return [(o.param, b.emit(Penalty(out, o.param, o.kind, o.coef * g, True, o.indices)))]
    if o.kind == "l1":
        return []  # d/dθ sign(θ) = 0 almost everywhere
    if H.is_const(g):
        raise DerivationError(f"{o.out.name}: a constant cotangent for a penalty gradient "
                              "has no reverse rule")
    out = b.temp(o.param.shape, "param")
    return [(o.param, b.emit(Penalty(out, g, "l2", o.coef, True, o.indices)))]


def penalty_jvp(b, o: Penalty, d):
    """The tangent of the penalty's gradient (the products need no penalty value's tangent:
    a value penalty gets none, as if constant)."""
    pd = d.get(o.param)
    if pd is None or not o.grad:
        return None
    if o.kind == "l1":
        return None  # d/dθ sign(θ) = 0 almost everywhere
    return b.emit(Penalty(H.dot_var(b, o.out), pd, "l2", o.coef, True, o.indices))


def penalty_numpy(o: Penalty, env, B):
    theta = np.asarray(env[o.param], dtype=float)
    coef = float(o.coef)
    mask = np.ones(theta.shape, dtype=bool)
    if o.indices is not None:
        mask = np.zeros(theta.size, dtype=bool)
        mask[list(o.indices)] = True
        mask = mask.reshape(theta.shape)
    if o.grad:
        g = 2.0 * coef * theta if o.kind == "l2" else coef * np.sign(theta)
        return np.where(mask, g, 0.0)
    t = theta[mask]
    return np.asarray(coef * (np.sum(t * t) if o.kind == "l2" else np.sum(np.abs(t))))


def penalty_sympy(o: Penalty, env, B):
    theta = env[o.param]
    flat = list(np.ravel(theta))
    idx = range(len(flat)) if o.indices is None else o.indices
    coef = o.coef
    if o.grad:
        g = [sp.S.Zero] * len(flat)
        for i in idx:
            g[i] = 2 * coef * flat[i] if o.kind == "l2" else coef * sp.sign(flat[i])
        return np.array(g, dtype=object).reshape(np.shape(theta))
    terms = [flat[i] ** 2 if o.kind == "l2" else sp.Abs(flat[i]) for i in idx]
    return coef * sp.Add(*terms)


def _number_text(c) -> str:
    t = str(c)
    return f"({t})" if "/" in t else t


def penalty_equation(o: Penalty, ctx):
    lam, lam_t = sp.latex(o.coef), _number_text(o.coef)
    p_t, p_x = o.param.text, o.param.tex
    if o.grad and o.kind == "l2":
        # d/dθ λ‖θ‖² = 2λθ, with 2λ printed as one number: (1/500)·W, 0.002·W
        two = 2 * o.coef
        return ctx.equation(o, f"{_number_text(two)}·{p_t}", f"{sp.latex(two)} \\, {p_x}")
    if o.grad:
        return ctx.equation(o, f"{lam_t}·sign({p_t})",
                            f"{lam} \\operatorname{{sign}}\\left({p_x}\\right)")
    if o.kind == "l2":
        return ctx.equation(o, f"{lam_t}·‖{p_t}‖²", f"{lam} \\lVert {p_x} \\rVert_2^2")
    return ctx.equation(o, f"{lam_t}·‖{p_t}‖₁", f"{lam} \\lVert {p_x} \\rVert_1")


def penalty_text(o: Penalty) -> str:
    part = o.param.name + ("" if o.indices is None else f"[{list(o.indices)}]")
    coef = o.coef * 2 if o.grad and o.kind == "l2" else o.coef
    c = f"({coef})" if "/" in str(coef) else str(coef)
    if o.grad:
        return f"{c}·{part}" if o.kind == "l2" else f"{c}·sign({part})"
    return f"{c}·‖{part}‖²" if o.kind == "l2" else f"{c}·‖{part}‖₁"


def penalty_describe(o: Penalty) -> str:
    what = "gradient of the " if o.grad else ""
    return f"{o.out.name} = {what}{o.kind.upper()} penalty {o.coef} on {o.param.name}"


register(
    Penalty,
    vjp=penalty_vjp,
    jvp=penalty_jvp,
    numpy=penalty_numpy,
    sympy=penalty_sympy,
    equation=penalty_equation,
    text=penalty_text,
    describe=penalty_describe,
)
