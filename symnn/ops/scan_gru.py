r"""A GRU layer looped over time: ``GRUSeq`` (the states) and ``GateRec`` (its linear
recurrences, forward and backward).

Values are per-sample sequences ``(T, H)`` held flat, row-major (row ``t`` is step
``t + 1``), as in :mod:`symnn.ops.scan`.  ``GRUSeq`` reads the input pre-activations
``a_r, a_z, a_n`` (``W_i· x_t + b_i·``, every step) and the recurrent weights and biases::

    c_g,t = W_hg h_{t−1} + b_hg  (g = r, z, n),   r_t = σ(a_r,t + c_r,t),
    u_t = σ(a_z,t + c_z,t),   n_t = tanh(a_n,t + r_t ⊙ c_n,t),
    h_t = (1 − u_t) ⊙ n_t + u_t ⊙ h_{t−1},   h_0 = 0.

Its step Jacobian ``∂h_t/∂h_{t−1}`` is ``J_t = diag(c_t) + Σ_g diag(β_g,t) W_hg`` with
``c = u``, ``β_n = d ⊙ r``, ``β_r = d ⊙ c_n ⊙ r(1 − r)``, ``β_z = (h_{t−1} − n) ⊙ u(1 − u)``,
``d = (1 − u)(1 − n²)`` — every coefficient a parallel (per-step) value of ``H`` shifted.
``GateRec`` is the linear recurrence of that family::

    forward  (rev=False):  y_t = e_t + c_t ⊙ y_{t−1} + Σ_g β_g,t ⊙ (W_g y_{t−1})
    backward (rev=True):   y_t = e_t + c_{t+1} ⊙ y_{t+1} + Σ_g W_gᵀ (β_g,t+1 ⊙ y_{t+1})

(the carried value 0 off the ends and across a cut).  The two directions are each other's
adjoints, so the family is closed: ``GRUSeq``'s reverse rule is one backward ``GateRec``
(BPTT, cut where the layer truncates) and parallel ops; its forward rule one forward
``GateRec``; ``GateRec``'s reverse rule the other direction, its forward rule the same
direction with a new ``e``.  Memory is linear in ``T`` (the gates are recomputed from
``H`` in parallel, not stored per step).

Examples
--------
>>> import numpy as np
>>> from symnn import ops as P
>>> a = [P.Var(n, "input", (2,)) for n in ("ar", "az", "an")]
>>> W = [P.Var(n, "param", (1, 1)) for n in ("Wr", "Wz", "Wn")]
>>> bb = [P.Var(n, "param", (1,)) for n in ("br", "bz", "bn")]
>>> o = GRUSeq(P.Var("h", "sample", (2,)), *a, *W, *bb, 2)
>>> env = {v: np.full((1, 2), float(v.name == "an")) for v in a}
>>> env |= {v: np.ones((1, 1)) for v in W} | {v: np.zeros(1) for v in bb}
>>> P.NUMPY[GRUSeq](o, env, 1).round(4)  # h_1 = tanh(1) / 2
array([[0.3808, 0.5678]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symnn.ops import _rules as H
from symnn.functions import sigmoid
from symnn.ops._tanh import sech2
from symnn.ops.ir import Op, Var, sym
from symnn.ops.registry import op_class, register
from symnn.ops.scan import SeqAffine, SeqBcast, SeqOuter, SeqShift, SeqSum, _SeqOp, linked

__all__ = ["GRUSeq", "GateRec", "gru_sigmoid"]


def gru_sigmoid(x):
    """``σ(x) = 1 / (1 + exp(−x))`` as the GRU ops write it: symnn's :class:`sigmoid`
    (round 7, sweep: it was the raw ``1/(1 + exp(−x))``, whose derived tangent
    ``e^{−x}/(1 + e^{−x})²`` is inf/inf = NaN at x < −709: the HVP of a GRU with a
    saturated gate was NaN; σ's rule is σ(x)σ(−x), finite everywhere)."""
    return sigmoid(x)


@op_class
@dataclass(frozen=True)
class GRUSeq(_SeqOp, Op):
    """The states ``H`` of a GRU layer (module notes); ``cut``: truncated BPTT (a
    stop-gradient on ``h_t`` at the layer's cuts; the values cross it)."""

    out: Var
    ar: Var
    az: Var
    an: Var
    Wr: Var
    Wz: Var
    Wn: Var
    br: Var
    bz: Var
    bn: Var
    T: int
    cut: int = 0
    _extra = ("T", "cut")

    @property
    def inputs(self):
        return (self.ar, self.az, self.an, self.Wr, self.Wz, self.Wn, self.br, self.bz,
                self.bn)


@op_class
@dataclass(frozen=True)
class GateRec(_SeqOp, Op):
    """``y_t = e_t + c ⊙ y_{t'} + Σ_g …`` (module notes; ``t' = t − 1``, or ``t + 1`` with
    the coefficients of step ``t + 1`` and ``W_gᵀ`` if ``rev``)."""

    out: Var
    e: Var
    c: Var
    br: Var
    bz: Var
    bn: Var
    Wr: Var
    Wz: Var
    Wn: Var
    T: int
    rev: bool = False
    cut: int = 0
    _extra = ("T", "rev", "cut")

    @property
    def inputs(self):
        return (self.e, self.c, self.br, self.bz, self.bn, self.Wr, self.Wz, self.Wn)


# -- NumPy / SymPy evaluation ----------------------------------------------------------------

def _rows(v, T):
    v = np.asarray(v)
    return v.reshape(v.shape[0], T, -1)


def _fn(x, f, g):
    x = np.asarray(x)
    if x.dtype == object:
        return np.vectorize(lambda v: g(v), otypes=[object])(x)
    return f(x)


def _sig(x):
    return _fn(x, sigmoid.numpy_impl, gru_sigmoid)


def _tanh(x):
    return _fn(x, np.tanh, sp.tanh)


def _gru_numpy(o: GRUSeq, env, B):
    ar, az, an = (_rows(env[v], o.T) for v in (o.ar, o.az, o.an))
    Wr, Wz, Wn = (np.asarray(env[v]) for v in (o.Wr, o.Wz, o.Wn))
    br, bz, bn = (np.asarray(env[v]).reshape(-1) for v in (o.br, o.bz, o.bn))
    obj = any(np.asarray(v).dtype == object for v in (ar, az, an, Wr, Wz, Wn, br, bz, bn))
    h = np.zeros(ar.shape, dtype=object if obj else np.result_type(ar, Wr, 0.0))
    hp = np.zeros_like(h[:, 0])
    for t in range(o.T):
        r = _sig(ar[:, t] + hp @ Wr.T + br)
        su = az[:, t] + hp @ Wz.T + bz
        u = _sig(su)
        n = _tanh(an[:, t] + r * (hp @ Wn.T + bn))
        h[:, t] = _sig(-su) * n + u * hp  # 1 − u as σ(−s): exact where u → 1 (round 6)
        hp = h[:, t]
    return h.reshape(h.shape[0], -1)


def _gaterec_numpy(o: GateRec, env, B):
    e, c = _rows(env[o.e], o.T), _rows(env[o.c], o.T)
    bs = [_rows(env[v], o.T) for v in (o.br, o.bz, o.bn)]
    Ws = [np.asarray(env[v]) for v in (o.Wr, o.Wz, o.Wn)]
    obj = any(np.asarray(v).dtype == object for v in [e, c] + bs + Ws)
    y = np.zeros(e.shape, dtype=object if obj else np.result_type(e, c, *bs, *Ws, 0.0))
    order = range(o.T - 1, -1, -1) if o.rev else range(o.T)
    for t in order:
        y[:, t] = e[:, t]
        tp = t + 1 if o.rev else t - 1
        if not (0 <= tp < o.T and linked(o.T, o.cut, max(t, tp))):
            continue
        k = tp if o.rev else t
        y[:, t] = y[:, t] + c[:, k] * y[:, tp]
        for bj, W in zip(bs, Ws):
            y[:, t] = y[:, t] + ((bj[:, k] * y[:, tp]) @ W if o.rev else
                                 bj[:, k] * (y[:, tp] @ W.T))
    return y.reshape(y.shape[0], -1)


# -- rules -----------------------------------------------------------------------------------

def _t(b, like: Var) -> Var:
    return b.temp(like.shape, "sample")


def _map(b, like: Var, expr, args) -> Var:
    return b.map_elementwise(_t(b, like), expr, list(args))


def _mul(b, like: Var, x: Var, y: Var) -> Var:
    return _map(b, like, sym(x) * sym(y), [x, y])


def _gates(b, o: GRUSeq) -> dict:
    """The per-step values recomputed in parallel from ``H``: ``hp`` (``h_{t−1}``), ``c_n``,
    ``r``, ``u``, ``n`` and the step Jacobian's coefficients ``c, β_r, β_z, β_n, d``."""
    T, v = o.T, {}
    v["hp"] = b.emit(SeqShift(_t(b, o.out), o.out, T, 1))
    c = {g: b.emit(SeqAffine(_t(b, o.out), W, v["hp"], bb, T))
         for g, W, bb in (("r", o.Wr, o.br), ("z", o.Wz, o.bz), ("n", o.Wn, o.bn))}
    v["cn"] = c["n"]
    v["r"] = _map(b, o.out, gru_sigmoid(sym(o.ar) + sym(c["r"])), [o.ar, c["r"]])
    v["u"] = _map(b, o.out, gru_sigmoid(sym(o.az) + sym(c["z"])), [o.az, c["z"]])
    v["n"] = _map(b, o.out, sp.tanh(sym(o.an) + sym(v["r"]) * sym(c["n"])),
                  [o.an, v["r"], c["n"]])
    r, u, n, cn, hp = (sym(v[k]) for k in ("r", "u", "n", "cn", "hp"))
    # 1 − u, r(1 − r), u(1 − u), 1 − n² from the pre-activations: σ(−s) and sech², which keep
    # their relative accuracy where the gates saturate (round 6, exact)
    su, sr = sym(o.az) + sym(c["z"]), sym(o.ar) + sym(c["r"])
    v["d"] = _map(b, o.out, gru_sigmoid(-su) * sech2(sym(o.an) + r * cn),
                  [o.az, c["z"], o.an, v["r"], c["n"]])
    d = sym(v["d"])
    v["bn"] = _map(b, o.out, d * r, [v["d"], v["r"]])
    v["br"] = _map(b, o.out, d * cn * r * gru_sigmoid(-sr),
                   [v["d"], v["cn"], v["r"], o.ar, c["r"]])
    v["bz"] = _map(b, o.out, (hp - n) * u * gru_sigmoid(-su),
                   [v["hp"], v["n"], v["u"], o.az, c["z"]])
    return v


def _gru_vjp(b, o: GRUSeq, g, active):
    """BPTT: ``a = GateRec(g, u, β, W, rev)``; ``δ_g = a ⊙ β_g`` (``δ_n = a ⊙ d`` for
    ``a_n``), ``W̄_hg = ⟨Σ δ_g h_{t−1}ᵀ⟩``, ``b̄_hg = ⟨Σ δ_g⟩``."""
    g = H.materialise(b, g, o.out.size)
    v = _gates(b, o)
    a = b.emit(GateRec(_t(b, o.out), g, v["u"], v["br"], v["bz"], v["bn"], o.Wr, o.Wz,
                       o.Wn, o.T, True, o.cut))
    dl = {"r": _mul(b, o.out, a, v["br"]), "z": _mul(b, o.out, a, v["bz"]),
          "n": _mul(b, o.out, a, v["bn"])}
    out = []
    if o.an in active:
        out.append((o.an, _mul(b, o.out, a, v["d"])))
    for x, gg in ((o.ar, "r"), (o.az, "z")):
        if x in active:
            out.append((x, dl[gg]))
    for W, bb, gg in ((o.Wr, o.br, "r"), (o.Wz, o.bz, "z"), (o.Wn, o.bn, "n")):
        if W in active:
            out.append((W, b.emit(SeqOuter(b.temp(W.shape, "param"), dl[gg], v["hp"], o.T))))
        if bb in active:
            out.append((bb, b.emit(SeqSum(b.temp(bb.shape, "param"), dl[gg], o.T))))
    return out


def _wdot(b, o, like: Var, Wd, bd, x: Var):
    """``Ẇ x_t + ḃ`` (None when both tangents are)."""
    if Wd is not None:
        return b.emit(SeqAffine(_t(b, like), Wd, x, bd, o.T))
    if bd is not None:
        return b.emit(SeqBcast(_t(b, like), bd, o.T))
    return None


def _gru_jvp(b, o: GRUSeq, d, cut: int = 0):
    """``Ḣ = GateRec(e, u, β, W)`` forward, ``e = d ⊙ ȧ_n + β_n ⊙ ċ_n + β_r ⊙ ṗ_r +
    β_z ⊙ ṗ_z`` (``ṗ_g = ȧ_g + Ẇ_hg h_{t−1} + ḃ_hg``, ``ċ_n = Ẇ_hn h_{t−1} + ḃ_hn``)."""
    if not any(d.get(x) is not None for x in o.inputs):
        return None
    v = _gates(b, o)
    pr = H.tangent_sum(b, o.out, [d.get(o.ar), _wdot(b, o, o.out, d.get(o.Wr), d.get(o.br),
                                                     v["hp"])])
    pz = H.tangent_sum(b, o.out, [d.get(o.az), _wdot(b, o, o.out, d.get(o.Wz), d.get(o.bz),
                                                     v["hp"])])
    cn = _wdot(b, o, o.out, d.get(o.Wn), d.get(o.bn), v["hp"])
    terms = [_mul(b, o.out, v[k], x) for k, x in (("d", d.get(o.an)), ("bn", cn),
                                                   ("br", pr), ("bz", pz)) if x is not None]
    e = H.tangent_sum(b, o.out, terms)
    return b.emit(GateRec(H.dot_var(b, o.out), e, v["u"], v["br"], v["bz"], v["bn"], o.Wr,
                          o.Wz, o.Wn, o.T, False, cut))


def _coef(o: GateRec):
    return ((o.br, o.Wr), (o.bz, o.Wz), (o.bn, o.Wn))


def _extra(b, o: GateRec, y: Var, dc, dbs, dWs):
    """The tangent of the carried term with ``y`` held: ``ċ ⊙ ỹ + Σ β̇ ⊙ (W ỹ) + β ⊙ (Ẇ ỹ)``
    (forward) or its transpose ``S(ċ ⊙ y + Σ Wᵀ(β̇ ⊙ y) + Ẇᵀ(β ⊙ y))`` (backward)."""
    T, terms = o.T, []
    if not o.rev:
        yl = b.emit(SeqShift(_t(b, o.out), y, T, 1, o.cut))
        if dc is not None:
            terms.append(_mul(b, o.out, dc, yl))
        for (bj, W), dbj, dW in zip(_coef(o), dbs, dWs):
            if dbj is not None:
                wy = b.emit(SeqAffine(_t(b, o.out), W, yl, None, T))
                terms.append(_mul(b, o.out, dbj, wy))
            if dW is not None:
                terms.append(_mul(b, o.out, bj, b.emit(SeqAffine(_t(b, o.out), dW, yl, None,
                                                                  T))))
        return H.tangent_sum(b, o.out, terms)
    if dc is not None:
        terms.append(_mul(b, o.out, dc, y))
    for (bj, W), dbj, dW in zip(_coef(o), dbs, dWs):
        if dbj is not None:
            terms.append(b.emit(SeqAffine(_t(b, o.out), W, _mul(b, o.out, dbj, y), None, T,
                                          True)))
        if dW is not None:
            terms.append(b.emit(SeqAffine(_t(b, o.out), dW, _mul(b, o.out, bj, y), None, T,
                                          True)))
    s = H.tangent_sum(b, o.out, terms)
    return None if s is None else b.emit(SeqShift(_t(b, o.out), s, T, -1, o.cut))


def _gaterec_jvp(b, o: GateRec, d):
    """``ẏ = GateRec(ė + extra, same coefficients, same direction)``."""
    dbs = [d.get(bj) for bj, _ in _coef(o)]
    dWs = [d.get(W) for _, W in _coef(o)]
    ex = _extra(b, o, o.out, d.get(o.c), dbs, dWs)
    e = H.tangent_sum(b, o.out, [d.get(o.e), ex])
    if e is None:
        return None
    return b.emit(GateRec(H.dot_var(b, o.out), e, o.c, o.br, o.bz, o.bn, o.Wr, o.Wz, o.Wn,
                          o.T, o.rev, o.cut))


def _gaterec_vjp(b, o: GateRec, g, active):
    """``p = GateRec(g)`` the other way (the adjoint); ``ē = p``; with ``ỹ`` the carried
    value and ``p̃`` the adjoint's: ``c̄ = p ⊙ ỹ``, ``β̄ = p ⊙ W ỹ``, ``W̄ = ⟨Σ (β ⊙ p) ỹᵀ⟩``
    (forward); backward: ``c̄ = p̃ ⊙ y``, ``β̄ = (W p̃) ⊙ y``, ``W̄ = ⟨Σ (β ⊙ y) p̃ᵀ⟩``."""
    g = H.materialise(b, g, o.out.size)
    T = o.T
    p = b.emit(GateRec(_t(b, o.out), g, o.c, o.br, o.bz, o.bn, o.Wr, o.Wz, o.Wn, T,
                       not o.rev, o.cut))
    out = [(o.e, p)] if o.e in active else []
    if o.rev:  # y = e + S(c ⊙ y + Σ Wᵀ(β ⊙ y)); Sᵀ = shift by +1
        x, q = o.out, b.emit(SeqShift(_t(b, o.out), p, T, 1, o.cut))
    else:  # y = e + c ⊙ L y + Σ β ⊙ (W L y)
        x, q = b.emit(SeqShift(_t(b, o.out), o.out, T, 1, o.cut)), p
    # x: the value multiplied by c (and β); q: its cotangent partner, so ⟨q, c ⊙ x⟩ …
    if o.c in active:
        out.append((o.c, _mul(b, o.out, q, x)))
    for bj, W in _coef(o):
        if o.rev:
            if bj in active:
                wq = b.emit(SeqAffine(_t(b, o.out), W, q, None, T))
                out.append((bj, _mul(b, o.out, wq, x)))
            if W in active:
                out.append((W, b.emit(SeqOuter(b.temp(W.shape, "param"),
                                               _mul(b, o.out, bj, x), q, T))))
        else:
            if bj in active:
                wx = b.emit(SeqAffine(_t(b, o.out), W, x, None, T))
                out.append((bj, _mul(b, o.out, q, wx)))
            if W in active:
                out.append((W, b.emit(SeqOuter(b.temp(W.shape, "param"),
                                               _mul(b, o.out, bj, q), x, T))))
    return out


# -- display ---------------------------------------------------------------------------------

def _gru_text(o: GRUSeq) -> str:
    return (f"gru_scan({o.ar.name}, {o.az.name}, {o.an.name}; {o.Wr.name}, {o.Wz.name}, "
            f"{o.Wn.name}; T={o.T}{', cut=' + str(o.cut) if o.cut else ''})")


def _gaterec_text(o: GateRec) -> str:
    way = "backward" if o.rev else "forward"
    return (f"gaterec_{way}({o.e.name} + {o.c.name} ⊙ carry + Σ_g "
            f"{'Wᵀ(β ⊙ carry)' if o.rev else 'β ⊙ (W carry)'}; β = {o.br.name}, {o.bz.name}, "
            f"{o.bn.name}; W = {o.Wr.name}, {o.Wz.name}, {o.Wn.name}; T={o.T}"
            f"{', cut=' + str(o.cut) if o.cut else ''})")


def _gru_eq(o: GRUSeq, ctx):
    h = o.out.text
    return ctx.equation(
        o, f"(1 − uₜ) ⊙ nₜ + uₜ ⊙ {h}ₜ₋₁, rₜ = σ({o.ar.text}ₜ + {o.Wr.text} {h}ₜ₋₁ + "
        f"{o.br.text}), uₜ = σ({o.az.text}ₜ + {o.Wz.text} {h}ₜ₋₁ + {o.bz.text}), nₜ = "
        f"tanh({o.an.text}ₜ + rₜ ⊙ ({o.Wn.text} {h}ₜ₋₁ + {o.bn.text}))  (t = 1…{o.T})",
        r"(1 - u_{t}) \odot n_{t} + u_{t} \odot %s_{t-1} \quad (t = 1, \dots, %d;\ "
        r"\text{GRU gates of } %s, %s, %s)" % (o.out.tex, o.T, o.ar.tex, o.az.tex, o.an.tex))


def _gaterec_eq(o: GateRec, ctx):
    tp = "t+1" if o.rev else "t−1"
    y = o.out.text
    body = (f"Σ_g W_gᵀ(β_g ⊙ {y})_{tp}" if o.rev else f"Σ_g β_g,ₜ ⊙ (W_g {y}_{tp})")
    return ctx.equation(
        o, f"{o.e.text}ₜ + {o.c.text} ⊙ {y}_{tp} + {body}  (β = {o.br.text}, {o.bz.text}, "
        f"{o.bn.text}; W = {o.Wr.text}, {o.Wz.text}, {o.Wn.text})",
        r"%s_{t} + %s \odot %s_{%s} + \sum_{g} \ldots" % (o.e.tex, o.c.tex, o.out.tex,
                                                          tp.replace("−", "-")))


#: The Gauss-Newton product's ``J v`` (symnn.derive.tangent): the tangent stops at the cuts.
GRUSeq.cuts_gauss_newton_inside = staticmethod(lambda b, o, d: _gru_jvp(b, o, d, o.cut))

register(
    GRUSeq,
    vjp=_gru_vjp,
    jvp=_gru_jvp,
    numpy=_gru_numpy,
    sympy=_gru_numpy,
    equation=_gru_eq,
    text=_gru_text,
    describe=lambda o: f"{o.out.name} = GRU states, loop over {o.T} steps",
)

register(
    GateRec,
    vjp=_gaterec_vjp,
    jvp=_gaterec_jvp,
    numpy=_gaterec_numpy,
    sympy=_gaterec_numpy,
    equation=_gaterec_eq,
    text=_gaterec_text,
    describe=lambda o: f"{o.out.name} = {_gaterec_text(o)}",
)
