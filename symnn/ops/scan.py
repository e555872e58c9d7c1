r"""Sequence ops looped over time: a recurrent layer whose program does not grow with ``T``.

Every value here is a per-sample sequence ``(T, d)`` held flat in row-major ``(t, i)``
order (row ``t`` is step ``t + 1``), like the values of :mod:`symnn.ops.recurrent`; the op
carries ``T``.  The unrolled form of a recurrent layer writes one affine and one
elementwise op per step; here one op writes the whole sequence and the kernel loops over
time, so the program, the generated code and the compile time do not depend on ``T``, and
memory is linear in ``T``.

================  =====================================================================
op                meaning (per sample, ``t`` over the steps)
================  =====================================================================
``SeqAffine``     ``out_t = op(W) x_t + b`` (``op(W)`` is ``W``, or ``Wᵀ`` when ``trans``)
``SeqOuter``      ``M = ⟨Σ_t u_t v_tᵀ⟩`` (batch mean; a shared weight's gradient)
``SeqSum``        ``r = ⟨Σ_t g_t⟩`` (batch mean; a shared bias's gradient)
``SeqBcast``      ``out_t = v`` (``v`` parameter-shaped; the adjoint of ``SeqSum``)
``SeqShift``      ``out_t = x_{t−lag}`` (``lag`` ±1; 0 off the ends and across a cut)
``RNNSeq``        ``z_1 = u_1``, ``z_t = u_t + W σ(z_{t−1})``: an Elman layer's
                  pre-activations (``h_t = σ(z_t)``, ``h_0 = 0``)
``LinRec``        ``y_t = s_t ⊙ (u_t + op(W) y_{t∓1}) + e_t`` (forward, or backward when
                  ``rev``; ``y`` = 0 before the first step and across a cut)
================  =====================================================================

**Cuts** (truncated BPTT, ``cut = k > 0``): the link between steps ``t`` and ``t + 1``
(1-based) is cut for ``t = T − k, T − 2k, … ≥ 1`` — the :meth:`~symnn.RNN.cuts` of a
layer with ``truncate=k``.  In ``LinRec`` and ``SeqShift`` no value crosses a cut.  In
``RNNSeq`` the cut is a stop-gradient: the values cross it, the reverse rule's recurrence
does not.

Rules (``g``: the output's cotangent; ``S = σ'(Z)``, ``H = σ(Z)``; ``L⁺``: ``SeqShift``
by ``+1``, ``L⁻`` by ``−1``; every sum over ``t``):

===========  =================================================  ===========================
op           reverse                                            forward
===========  =================================================  ===========================
RNNSeq       ``a = LinRec(S, 0, W, g, rev, Wᵀ)`` (BPTT:          ``u' = u̇ + Ẇ L⁺H``,
             ``a_t = g_t + S_t ⊙ Wᵀ a_{t+1}``); ``ū = a``,       ``ḣ = LinRec(S, u', W)``,
             ``W̄ = ⟨Σ a_t (L⁺H)_tᵀ⟩``                           ``ż = u' + L⁺(W ḣ)``
LinRec       ``p = LinRec(s, g, W, 0)`` the other way with        ``LinRec(s, u̇ + Ẇ ỹ,``
             ``op(W)ᵀ``; ``ū = p``, ``W̄ = ⟨Σ p ỹᵀ⟩`` (``⟨Σ ỹ pᵀ⟩``   ``W, ė + ṡ ⊙ q)``
             transposed), ``a = g + L(op(W)ᵀ p)``, ``ē = a``,
             ``s̄ = a ⊙ q``; ``ỹ = L y``, ``q = u + op(W) ỹ``
SeqAffine    ``x̄ = SeqAffine(W, g)ᵀ``, ``W̄ = SeqOuter(g, x)``,     ``Ẇ x + ḃ + W ẋ``
             ``b̄ = SeqSum(g)``
SeqOuter     ``ū = SeqAffine(G, v)``, ``v̄ = SeqAffine(Gᵀ, u)``      ``⟨u̇ vᵀ⟩ + ⟨u v̇ᵀ⟩``
SeqSum       ``SeqBcast(G)``                                     ``SeqSum(ġ)``
SeqBcast     ``SeqSum(g)``                                       ``SeqBcast(v̇)``
SeqShift     ``SeqShift(g, −lag)``                               ``SeqShift(ẋ, lag)``
===========  =================================================  ===========================

(``L`` in LinRec's rules is the shift towards the carried step, by ``+1`` forward.)  So
gradients, Hessian-vector and Gauss-Newton products, Hessians and input Jacobians close
over this family and the elementwise ``Map``: every recurrence, forward or backward, is
one loop over time.

Examples
--------
>>> import numpy as np
>>> from symnn import ops as P
>>> u = P.Var("u", "input", (3,))
>>> W = P.Var("W", "param", (1, 1))
>>> z = P.Var("z", "sample", (3,))
>>> o = RNNSeq(z, u, W, 3, sp.Symbol("z", real=True), sp.Symbol("z", real=True))
>>> P.NUMPY[RNNSeq](o, {u: np.array([[1.0, 1.0, 1.0]]), W: np.array([[0.5]])}, 1)
array([[1.  , 1.5 , 1.75]])
>>> print(P.TEXT[RNNSeq](o))
rnn_scan(u, W, σ = z, T=3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops._bptt import over_dsigma as _over_dsigma  # (tests patch scan._over_dsigma)
from symnn.ops._numpy import numpy_function
from symnn.ops._tanh import diff as _diff
from symnn.ops.ir import Arg, Op, Var, sym
from symnn.ops.registry import generic_text, op, op_class, register

__all__ = ["SeqAffine", "SeqOuter", "SeqSum", "SeqBcast", "SeqShift", "RNNSeq", "LinRec",
           "linked"]


def linked(T: int, cut: int, t: int) -> bool:
    """Whether the value of step ``t − 1`` reaches step ``t`` (0-based rows): ``1 ≤ t < T``
    and, with ``cut = k > 0``, ``(T − t) mod k ≠ 0``.

    >>> [t for t in range(8) if linked(7, 3, t)]
    [2, 3, 5, 6]
    """
    return 1 <= t < T and (not cut or (T - t) % cut != 0)


class _SeqOp:
    """Mixin: the op's fingerprint line includes its fixed fields (T, flags)."""

    _extra: tuple = ("T",)

    def fingerprint_line(self) -> str:
        extra = ", ".join(f"{k}={getattr(self, k)}" for k in self._extra)
        return f"{self.out.name}{self.out.shape} = {generic_text(self)} [{extra}]"


def _rows(v, T: int):
    """A ``(B, T·d)`` value as ``(B, T, d)``."""
    v = np.asarray(v)
    return v.reshape(v.shape[0], T, -1)


def _zeros(shape, *like):
    """Zeros of ``shape``: an object array when any of ``like`` holds SymPy scalars."""
    if any(np.asarray(v).dtype == object for v in like):
        return np.zeros(shape, dtype=object)
    return np.zeros(shape, dtype=np.result_type(*like, 0.0))


# -- ops -------------------------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class SeqAffine(_SeqOp, Op):
    """``out_t = op(W) x_t + b`` for every step (``b`` optional; ``op(W) = Wᵀ`` if
    ``trans``)."""

    out: Var
    W: Var
    x: Var
    b: Var | None
    T: int
    trans: bool = False
    _extra = ("T", "trans")

    @property
    def inputs(self):
        return (self.W, self.x) + ((self.b,) if self.b is not None else ())


@op_class
@dataclass(frozen=True)
class SeqOuter(_SeqOp, Op):
    """``out = ⟨Σ_t u_t v_tᵀ⟩`` (parameter-shaped, a batch mean)."""

    out: Var
    u: Var
    v: Var
    T: int

    @property
    def inputs(self):
        return (self.u, self.v)


@op_class
@dataclass(frozen=True)
class SeqSum(_SeqOp, Op):
    """``out = ⟨Σ_t g_t⟩`` (parameter-shaped, a batch mean)."""

    out: Var
    g: Var
    T: int

    @property
    def inputs(self):
        return (self.g,)


@op_class
@dataclass(frozen=True)
class SeqBcast(_SeqOp, Op):
    """``out_t = v`` for every step (``v`` parameter-shaped)."""

    out: Var
    v: Var
    T: int

    @property
    def inputs(self):
        return (self.v,)


@op_class
@dataclass(frozen=True)
class SeqShift(_SeqOp, Op):
    """``out_t = x_{t−lag}`` (``lag`` = ±1), 0 off the ends and across a cut."""

    out: Var
    x: Var
    T: int
    lag: int
    cut: int = 0
    _extra = ("T", "lag", "cut")

    @property
    def inputs(self):
        return (self.x,)


@op_class
@dataclass(frozen=True)
class RNNSeq(_SeqOp, Op):
    """``z_1 = u_1``, ``z_t = u_t + W σ(z_{t−1})``; ``σ`` is ``body`` in the symbol ``z``;
    ``cut``: truncated BPTT (a stop-gradient on ``σ(z_t)`` at the layer's cuts)."""

    out: Var
    u: Var
    W: Var
    T: int
    body: sp.Expr
    z: sp.Symbol
    cut: int = 0
    _extra = ("T", "body", "cut")

    @property
    def inputs(self):
        return (self.u, self.W)


@op_class
@dataclass(frozen=True)
class LinRec(_SeqOp, Op):
    """``y_t = s_t ⊙ (u_t + op(W) y_{t'}) + e_t``, ``t' = t − 1`` (``t + 1`` if ``rev``),
    ``y_{t'} = 0`` off the ends and across a cut; ``u``, ``e`` optional (0)."""

    out: Var
    s: Var
    u: Var | None
    W: Var
    e: Var | None
    T: int
    rev: bool = False
    trans: bool = False
    cut: int = 0
    _extra = ("T", "rev", "trans", "cut")

    @property
    def inputs(self):
        return tuple(v for v in (self.s, self.u, self.W, self.e) if v is not None)

    @property
    def lag(self) -> int:
        """Which step is carried: +1 reads ``y_{t−1}`` (forward), −1 ``y_{t+1}``."""
        return -1 if self.rev else 1


# -- NumPy / SymPy evaluation (one form for both: object arrays hold SymPy scalars) ----------

def _opW(W, trans: bool):
    W = np.asarray(W)
    return W.T if trans else W


def _affine_numpy(o: SeqAffine, env, B):
    x = _rows(env[o.x], o.T)
    r = x @ _opW(env[o.W], o.trans).T
    if o.b is not None:
        r = r + np.asarray(env[o.b])
    return r.reshape(x.shape[0], -1)


def _outer_numpy(o: SeqOuter, env, B):
    u, v = _rows(env[o.u], o.T), _rows(env[o.v], o.T)
    n = u.shape[0] * o.T
    r = u.reshape(n, -1).T @ v.reshape(n, -1)
    return r / B


def _sum_numpy(o: SeqSum, env, B):
    return _rows(env[o.g], o.T).sum(axis=(0, 1)) / B


def _bcast_numpy(o: SeqBcast, env, B):
    v = np.asarray(env[o.v]).reshape(-1)
    r = _zeros((B, o.T, v.size), v) + v
    return r.reshape(B, -1)


def _shift_numpy(o: SeqShift, env, B):
    x = _rows(env[o.x], o.T)
    r = _zeros(x.shape, x)
    for t in range(o.T):
        src = t - o.lag
        if linked(o.T, o.cut, max(t, src)) and 0 <= src < o.T:
            r[:, t] = x[:, src]
    return r.reshape(x.shape[0], -1)


def _act(o: RNNSeq, z):
    if z.dtype == object:
        return np.vectorize(lambda v: o.body.xreplace({o.z: v}), otypes=[object])(z)
    return np.broadcast_to(numpy_function((o.z,), o.body)(z), z.shape)


def _rnn_numpy(o: RNNSeq, env, B):
    u = _rows(env[o.u], o.T)
    W = np.asarray(env[o.W])
    z = _zeros(u.shape, u, W)
    z[:, 0] = u[:, 0]
    for t in range(1, o.T):
        z[:, t] = u[:, t] + _act(o, z[:, t - 1]) @ W.T
    return z.reshape(u.shape[0], -1)


def _linrec_numpy(o: LinRec, env, B):
    s = _rows(env[o.s], o.T)
    W = _opW(env[o.W], o.trans)
    parts = [s, W] + [_rows(env[v], o.T) for v in (o.u, o.e) if v is not None]
    y = _zeros((B, o.T, W.shape[0]), *parts)
    order = range(o.T - 1, -1, -1) if o.rev else range(o.T)
    for t in order:
        q = _rows(env[o.u], o.T)[:, t] if o.u is not None else _zeros(y[:, t].shape, y)
        tp = t - o.lag
        if linked(o.T, o.cut, max(t, tp)) and 0 <= tp < o.T:
            q = q + y[:, tp] @ W.T
        y[:, t] = s[:, t] * q
        if o.e is not None:
            y[:, t] = y[:, t] + _rows(env[o.e], o.T)[:, t]
    return y.reshape(B, -1)


# -- rules -----------------------------------------------------------------------------------

def _t(b, like: Var, kind: str = "sample") -> Var:
    return b.temp(like.shape, kind)


def _map_of(b, like: Var, expr: sp.Expr, args) -> Var:
    """``Map(expr)``: the Map already in ``b`` with this body and arguments, or a new one."""
    args = tuple(args)
    for o in b.prog.ops:
        if (isinstance(o, op.Map) and o.exprs == (expr,) and o.args == args
                and o.out.shape == like.shape):
            return o.out
    return b.emit(op.Map(_t(b, like), (expr,), args))


def _sigma(b, o: RNNSeq) -> Var:
    """``H = σ(Z)`` (the layer's own Map when it is there)."""
    zs = sym(o.out)
    return _map_of(b, o.out, o.body.xreplace({o.z: zs}), (Arg(zs, o.out),))


def _dsigma(b, o: RNNSeq) -> Var:
    """``S = σ'(Z)``, written through ``H`` where it can be (tanh's: ``sech²(Z)``, from Z)."""
    zs = sym(o.out)
    d = _diff(o.body, o.z).xreplace({o.z: zs})  # tanh' as sech² (round 6, exact)
    args = [Arg(zs, o.out)]
    d, extra = H.through_outputs(d, H.known_bodies(b), args)
    used = sp.sympify(d).free_symbols
    args = H.dedupe([a for a in args + extra if a.symbol in used])
    return _map_of(b, o.out, sp.sympify(d), args)


def _shift(b, x: Var, T: int, lag: int, cut: int = 0) -> Var:
    return b.emit(SeqShift(_t(b, x), x, T, lag, cut))


def _rnn_vjp(b, o: RNNSeq, g, active):
    """BPTT: ``a_t = g_t + σ'(z_t) ⊙ Wᵀ a_{t+1}`` (one backward LinRec, cut where the layer
    truncates); ``ū = a``, ``W̄ = ⟨Σ_t a_t h_{t−1}ᵀ⟩``."""
    g = H.materialise(b, g, o.out.size)
    s = _dsigma(b, o)
    x = _over_dsigma(b, g, s, o.out.size)
    if x is not None:  # g = x ⊙ σ'(Z): a_t = σ'(z_t) ⊙ (x_t + Wᵀ a_{t+1}), σ' evaluated once
        a = b.emit(LinRec(_t(b, o.out), s, x, o.W, None, o.T, True, True, o.cut))
    else:
        a = b.emit(LinRec(_t(b, o.out), s, None, o.W, g, o.T, True, True, o.cut))
    out = []
    if o.u in active:
        out.append((o.u, a))
    if o.W in active:
        hp = _shift(b, _sigma(b, o), o.T, 1)
        out.append((o.W, b.emit(SeqOuter(b.temp(o.W.shape, "param"), a, hp, o.T))))
    return out


def _rnn_jvp(b, o: RNNSeq, d, cut: int = 0):
    """``u' = u̇ + Ẇ h_{t−1}``, ``ḣ = LinRec(σ'(Z), u', W)``, ``ż = u' + W ḣ_{t−1}``
    (``cut``: the tangent does not cross the layer's cuts — the Gauss-Newton product's
    truncated ``J v``)."""
    ud, Wd = d.get(o.u), d.get(o.W)
    terms = [ud]
    if Wd is not None:
        hp = _shift(b, _sigma(b, o), o.T, 1)
        terms.append(b.emit(SeqAffine(_t(b, o.out), Wd, hp, None, o.T)))
    up = H.tangent_sum(b, o.out, terms)
    if up is None:
        return None
    hd = b.emit(LinRec(_t(b, o.out), _dsigma(b, o), up, o.W, None, o.T, cut=cut))
    c = _shift(b, b.emit(SeqAffine(_t(b, o.out), o.W, hd, None, o.T)), o.T, 1, cut)
    return H.tangent_sum(b, o.out, [up, c])


def _carried(b, o: LinRec) -> Var:
    """``ỹ``: the carried value of every step (``y_{t'}``, 0 off the ends and at cuts)."""
    return _shift(b, o.out, o.T, o.lag, o.cut)


def _q(b, o: LinRec) -> Var:
    """``q = u + op(W) ỹ`` (what ``s`` multiplies)."""
    w = b.emit(SeqAffine(_t(b, o.out), o.W, _carried(b, o), None, o.T, o.trans))
    if o.u is None:
        return w
    return _add(b, o.out, [o.u, w])


def _add(b, like: Var, vs) -> Var:
    """``Σ vs`` (a plain elementwise sum)."""
    return b.map_elementwise(_t(b, like), sp.Add(*(sym(v) for v in vs)), list(vs))


def _mul(b, like: Var, x: Var, y: Var) -> Var:
    return b.map_elementwise(_t(b, like), sym(x) * sym(y), [x, y])


def _linrec_vjp(b, o: LinRec, g, active):
    """``p = LinRec(s, g)`` the other way with ``op(W)ᵀ``; ``ū = p``, ``W̄ = ⟨Σ p ỹᵀ⟩``,
    ``ē = a = g + L(op(W)ᵀ p)``, ``s̄ = a ⊙ q``."""
    g = H.materialise(b, g, o.out.size)
    p = b.emit(LinRec(_t(b, o.out), o.s, g, o.W, None, o.T, not o.rev, not o.trans, o.cut))
    out = []
    if o.u is not None and o.u in active:
        out.append((o.u, p))
    if o.W in active:
        yt = _carried(b, o)
        u, v = (yt, p) if o.trans else (p, yt)
        out.append((o.W, b.emit(SeqOuter(b.temp(o.W.shape, "param"), u, v, o.T))))
    e_on = o.e is not None and o.e in active
    if e_on or o.s in active:
        back = b.emit(SeqAffine(_t(b, o.out), o.W, p, None, o.T, not o.trans))
        a = _add(b, o.out, [g, _shift(b, back, o.T, -o.lag, o.cut)])
        if e_on:
            out.append((o.e, a))
        if o.s in active:
            out.append((o.s, _mul(b, o.out, a, _q(b, o))))
    return out


def _linrec_jvp(b, o: LinRec, d):
    """``ẏ = LinRec(s, u̇ + Ẇ ỹ, W, ė + ṡ ⊙ q)``."""
    sd, Wd = d.get(o.s), d.get(o.W)
    ud = d.get(o.u) if o.u is not None else None
    ed = d.get(o.e) if o.e is not None else None
    us = [ud]
    if Wd is not None:
        us.append(b.emit(SeqAffine(_t(b, o.out), Wd, _carried(b, o), None, o.T, o.trans)))
    es = [ed] + ([_mul(b, o.out, sd, _q(b, o))] if sd is not None else [])
    u2, e2 = H.tangent_sum(b, o.out, us), H.tangent_sum(b, o.out, es)
    if u2 is None and e2 is None:
        return None
    return b.emit(LinRec(H.dot_var(b, o.out), o.s, u2, o.W, e2, o.T, o.rev, o.trans, o.cut))


def _affine_vjp(b, o: SeqAffine, g, active):
    g = H.materialise(b, g, o.out.size)
    out = []
    if o.W in active:
        u, v = (o.x, g) if o.trans else (g, o.x)
        out.append((o.W, b.emit(SeqOuter(b.temp(o.W.shape, "param"), u, v, o.T))))
    if o.b is not None and o.b in active:
        out.append((o.b, b.emit(SeqSum(b.temp(o.b.shape, "param"), g, o.T))))
    if o.x in active:
        out.append((o.x, b.emit(SeqAffine(_t(b, o.x), o.W, g, None, o.T, not o.trans))))
    return out


def _affine_jvp(b, o: SeqAffine, d):
    Wd, xd = d.get(o.W), d.get(o.x)
    bd = d.get(o.b) if o.b is not None else None
    terms = []
    if Wd is not None:
        terms.append(b.emit(SeqAffine(_t(b, o.out), Wd, o.x, bd, o.T, o.trans)))
    elif bd is not None:
        terms.append(b.emit(SeqBcast(_t(b, o.out), bd, o.T)))
    if xd is not None:
        terms.append(b.emit(SeqAffine(_t(b, o.out), o.W, xd, None, o.T, o.trans)))
    return H.tangent_sum(b, o.out, terms)


def _param_g(g, o) -> Var:
    if H.is_const(g):
        raise DerivationError(f"{o.out.name}: a constant cotangent for the parameter-shaped "
                              f"value of {type(o).__name__} has no reverse rule")
    return g


def _outer_vjp(b, o: SeqOuter, g, active):
    G = _param_g(g, o)
    out = []
    if o.u in active:
        out.append((o.u, b.emit(SeqAffine(_t(b, o.u), G, o.v, None, o.T))))
    if o.v in active:
        out.append((o.v, b.emit(SeqAffine(_t(b, o.v), G, o.u, None, o.T, True))))
    return out


def _outer_jvp(b, o: SeqOuter, d):
    ud, vd = d.get(o.u), d.get(o.v)
    terms = []
    if ud is not None:
        terms.append(b.emit(SeqOuter(b.temp(o.out.shape, "param"), ud, o.v, o.T)))
    if vd is not None:
        terms.append(b.emit(SeqOuter(b.temp(o.out.shape, "param"), o.u, vd, o.T)))
    return H.tangent_sum(b, o.out, terms)


def _linear(cls, field: str, adjoint):
    """The reverse and forward rules of a linear op of one input: ``adjoint(b, o, g)``."""

    def vjp(b, o, g, active):
        x = getattr(o, field)
        if x not in active:
            return []
        g = _param_g(g, o) if not o.out.per_sample else H.materialise(b, g, o.out.size)
        return [(x, adjoint(b, o, g))]

    def jvp(b, o, d):
        xd = d.get(getattr(o, field))
        if xd is None:
            return None
        kind = o.out.kind if o.out.kind == "param" else "sample"
        return b.emit(cls(**{**_fields(o), "out": b.temp(o.out.shape, kind), field: xd}))

    return vjp, jvp


def _fields(o) -> dict:
    return {k: getattr(o, k) for k in o.__dataclass_fields__}


_sum_vjp, _sum_jvp = _linear(SeqSum, "g", lambda b, o, g: b.emit(
    SeqBcast(b.temp(o.g.shape), g, o.T)))
_bcast_vjp, _bcast_jvp = _linear(SeqBcast, "v", lambda b, o, g: b.emit(
    SeqSum(b.temp(o.v.shape, "param"), g, o.T)))
_shift_vjp, _shift_jvp = _linear(SeqShift, "x", lambda b, o, g: b.emit(
    SeqShift(b.temp(o.x.shape), g, o.T, -o.lag, o.cut)))


# -- display ---------------------------------------------------------------------------------

def _W(o) -> str:
    return f"{o.W.text}ᵀ" if getattr(o, "trans", False) else o.W.text


def _Wtex(o) -> str:
    return r"%s^{\top}" % o.W.tex if getattr(o, "trans", False) else o.W.tex


def _cut_note(o) -> str:
    return f", no link across t = T − {o.cut}j" if getattr(o, "cut", 0) else ""


def _rnn_eq(o: RNNSeq, ctx):
    s = str(o.body.xreplace({o.z: sp.Symbol(f"{o.out.text}ₜ₋₁")}))
    return ctx.equation(
        o, f"{o.u.text}ₜ + {o.W.text} {s}  (t = 1…{o.T}, the last term 0 at t = 1)",
        r"%s_{t} + %s\, \sigma\!\left(%s_{t-1}\right) \quad (t = 1, \dots, %d;\ "
        r"\sigma(%s) = %s)" % (o.u.tex, o.W.tex, o.out.tex, o.T, sp.latex(o.z),
                               sp.latex(o.body)))


def _linrec_eq(o: LinRec, ctx):
    tp = "t+1" if o.rev else "t−1"
    u = f"{o.u.text}ₜ + " if o.u is not None else ""
    e = f" + {o.e.text}ₜ" if o.e is not None else ""
    ut = r"%s_{t} + " % o.u.tex if o.u is not None else ""
    et = r" + %s_{t}" % o.e.tex if o.e is not None else ""
    order = "t = T…1" if o.rev else "t = 1…T"
    return ctx.equation(
        o, f"{o.s.text}ₜ ⊙ ({u}{_W(o)} {o.out.text}_{tp}){e}  ({order}{_cut_note(o)})",
        r"%s_{t} \odot \left(%s%s\, %s_{%s}\right)%s" % (
            o.s.tex, ut, _Wtex(o), o.out.tex, tp.replace("−", "-"), et))


def _rec_text(o: LinRec) -> str:
    u = f"{o.u.name} + " if o.u is not None else ""
    e = f" + {o.e.name}" if o.e is not None else ""
    way = "backward" if o.rev else "forward"
    return (f"linrec_{way}({o.s.name} ⊙ ({u}{o.W.name}{'ᵀ' if o.trans else ''}·carry){e}, "
            f"T={o.T}{', cut=' + str(o.cut) if o.cut else ''})")


register(
    SeqAffine,
    vjp=_affine_vjp,
    jvp=_affine_jvp,
    numpy=_affine_numpy,
    sympy=_affine_numpy,
    equation=lambda o, ctx: ctx.equation(
        o, f"{_W(o)} {o.x.text}ₜ" + (f" + {o.b.text}" if o.b is not None else "") + "  (every t)",
        r"%s\, %s_{t}%s" % (_Wtex(o), o.x.tex, r" + %s" % o.b.tex if o.b is not None else "")),
    text=lambda o: f"{o.W.name}{'ᵀ' if o.trans else ''}·{o.x.name}[t]"
    + (f" + {o.b.name}" if o.b is not None else "") + f" (every t of {o.T})",
    describe=lambda o: f"{o.out.name} = {_W(o)} {o.x.name}_t"
    + (f" + {o.b.name}" if o.b is not None else "") + f", t < {o.T}",
)

register(
    SeqOuter,
    vjp=_outer_vjp,
    jvp=_outer_jvp,
    numpy=_outer_numpy,
    sympy=_outer_numpy,
    equation=lambda o, ctx: ctx.equation(
        o, f"⟨Σₜ {o.u.text}ₜ ({o.v.text}ₜ)ᵀ⟩",
        r"\frac{1}{B}\sum_{s=1}^{B} \sum_{t=1}^{%d} %s_{s,t} \left(%s_{s,t}\right)^{\top}"
        % (o.T, o.u.tex, o.v.tex)),
    text=lambda o: f"mean over batch(Σ_t {o.u.name}[t]·{o.v.name}[t]ᵀ)",
    describe=lambda o: f"{o.out.name} = batch mean of Σ_t {o.u.name}_t {o.v.name}_tᵀ",
)

register(
    SeqSum,
    vjp=_sum_vjp,
    jvp=_sum_jvp,
    numpy=_sum_numpy,
    sympy=_sum_numpy,
    equation=lambda o, ctx: ctx.equation(
        o, f"⟨Σₜ {o.g.text}ₜ⟩",
        r"\frac{1}{B}\sum_{s=1}^{B} \sum_{t=1}^{%d} %s_{s,t}" % (o.T, o.g.tex)),
    text=lambda o: f"mean over batch(Σ_t {o.g.name}[t])",
    describe=lambda o: f"{o.out.name} = batch mean of Σ_t {o.g.name}_t",
)

register(
    SeqBcast,
    vjp=_bcast_vjp,
    jvp=_bcast_jvp,
    numpy=_bcast_numpy,
    sympy=_bcast_numpy,
    equation=lambda o, ctx: ctx.equation(o, f"{o.v.text}  (every t)",
                                         r"%s \quad (\text{every } t)" % o.v.tex),
    text=lambda o: f"{o.v.name} (every t of {o.T})",
    describe=lambda o: f"{o.out.name} = {o.v.name} in each of {o.T} rows",
)

register(
    SeqShift,
    vjp=_shift_vjp,
    jvp=_shift_jvp,
    numpy=_shift_numpy,
    sympy=_shift_numpy,
    equation=lambda o, ctx: ctx.equation(
        o, f"{o.x.text}_t{'−' if o.lag > 0 else '+'}1  (0 off the ends{_cut_note(o)})",
        r"%s_{t%s1}" % (o.x.tex, "-" if o.lag > 0 else "+")),
    text=lambda o: f"shift({o.x.name}, {o.lag:+d}{', cut=' + str(o.cut) if o.cut else ''})",
    describe=lambda o: f"{o.out.name} = {o.x.name} shifted by {o.lag:+d} step",
)

register(
    RNNSeq,
    vjp=_rnn_vjp,
    jvp=_rnn_jvp,
    numpy=_rnn_numpy,
    sympy=_rnn_numpy,
    equation=_rnn_eq,
    text=lambda o: f"rnn_scan({o.u.name}, {o.W.name}, σ = {o.body}, T={o.T}"
    + (f", cut={o.cut})" if o.cut else ")"),
    describe=lambda o: f"{o.out.name} = {o.u.name}_t + {o.W.name} σ({o.out.name}_t-1), "
    f"loop over {o.T} steps",
)

#: The Gauss-Newton product's ``J v`` (symnn.derive.tangent): the tangent stops at the cuts.
RNNSeq.cuts_gauss_newton_inside = staticmethod(lambda b, o, d: _rnn_jvp(b, o, d, o.cut))

register(
    LinRec,
    vjp=_linrec_vjp,
    jvp=_linrec_jvp,
    numpy=_linrec_numpy,
    sympy=_linrec_numpy,
    equation=_linrec_eq,
    text=_rec_text,
    describe=lambda o: f"{o.out.name} = {_rec_text(o)}",
)
