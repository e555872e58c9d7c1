r"""Backpropagation through time for a :class:`~symnn.GRU` layer, in textbook form: the
recursion of ``δhₜ = ∂L/∂hₜ`` (total, through every later step) and of the gates'
``δrₜ``, ``δuₜ``, ``δnₜ`` (the gradients at their pre-activations), and the gradients of
the twelve parameters as sums over time (issue 13).

Nothing is typed in per gate: the cell is **traced** from :meth:`symnn.GRU.forward` (its
second step, so that the previous state is a variable) and every factor comes from
``sympy.diff`` of the traced elementwise bodies with the forward values substituted back
(``1 − tanh(·)²`` → ``1 − nₜ²``, ``σ(·)(1 − σ(·))`` → ``rₜ(1 − rₜ)``); the step back from
``hₜ₊₁`` to ``hₜ`` collects the direct path ``∂hₜ₊₁/∂hₜ`` and ``W_h·ᵀ δ`` of each affine map
that reads ``hₜ``; the parameter gradients ``∂(δᵀ(W v + b))/∂W = δ vᵀ`` by matrix calculus
on :class:`sympy.MatrixSymbol` values.  The tests evaluate these lines along a trajectory
and meet the derived program's cotangents and gradient.

Examples
--------
>>> import symnn
>>> net = symnn.Network([symnn.GRU(1, 2, length=3), symnn.Dense(2, 1)])
>>> eqs = gru_bptt_equations(net.layers[0], 1)
>>> print(eqs[0][1], "=")             # the recursion, term by term
δh⁽¹⁾ₜ =
>>> for term in eqs[0][2][0].split(",")[0].split(" + "):
...     print("   ", term)
    ∂ℓ/∂h⁽¹⁾ₜ
    u⁽¹⁾ₜ₊₁ ⊙ δh⁽¹⁾ₜ₊₁
    W_hr⁽¹⁾ᵀ δr⁽¹⁾ₜ₊₁
    W_hz⁽¹⁾ᵀ δu⁽¹⁾ₜ₊₁
    W_hn⁽¹⁾ᵀ (r⁽¹⁾ₜ₊₁ ⊙ δn⁽¹⁾ₜ₊₁)
>>> for name, lhs, rhs, *tex in eqs[1:4]:   # the gates
...     print(lhs, "=", rhs[0])
δn⁽¹⁾ₜ = δh⁽¹⁾ₜ ⊙ (1 − u⁽¹⁾ₜ) ⊙ (1 − (n⁽¹⁾ₜ)²)
δu⁽¹⁾ₜ = u⁽¹⁾ₜ ⊙ δh⁽¹⁾ₜ ⊙ (1 − u⁽¹⁾ₜ) ⊙ (h⁽¹⁾ₜ₋₁ − n⁽¹⁾ₜ)
δr⁽¹⁾ₜ = c_n⁽¹⁾ₜ ⊙ r⁽¹⁾ₜ ⊙ δn⁽¹⁾ₜ ⊙ (1 − r⁽¹⁾ₜ)
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp
from sympy.tensor.array.expressions import convert_array_to_matrix

from symnn import ops as P
from symnn.functions import sigmoid
from symnn.printing.elementwise import vector_latex, vector_text

__all__ = ["gru_bptt_equations"]

_SUP = str.maketrans("0123456789()", "⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾")
_STEP = {"t": ("ₜ", "t"), "t+1": ("ₜ₊₁", "t+1"), "t-1": ("ₜ₋₁", "t-1")}


def _trace(layer, l: int):
    """The ops of step 2 of the layer's unrolled cell and its previous state ``h⁽ˡ⁾₁``."""
    b = P.Builder()
    x = P.Var(f"x{l}", "sample", (2 * layer.n_in,))
    replace(layer, length=2, return_sequences=False, truncate=None,
            unroll=None).forward(b, l, x)  # the unrolled cell, also for a looped GRU
    step = [op for op in b.prog.ops if op.out.name.endswith(f"{l}_2")]
    prev = next(op.out for op in b.prog.ops if op.out.name == f"h{l}_1")
    return step, prev


class _Names:
    """Display symbols of the traced values at step ``t`` / ``t+1`` (text and TeX)."""

    def __init__(self, l: int, H: int):
        self.l, self.H = l, H
        self.sup = f"({l})".translate(_SUP)
        self.text: dict = {}
        self.tex: dict = {}
        self.vec: dict = {}
        self.bases: dict = {}

    def sym(self, key: str, step: str, text: str | None = None,
            tex: str | None = None) -> sp.Symbol:
        """The symbol of value ``key`` at ``step``; ``text``/``tex``: its printed base (given
        once per key)."""
        s = sp.Symbol(f"{key}{self.l}[{step}]")
        sub_t, sub_x = _STEP[step]
        text, tex = self.bases.setdefault(key, (text or key, tex or key))
        self.text[s] = f"{text}{self.sup}{sub_t}"
        self.tex[s] = r"{%s}^{(%d)}_{%s}" % (tex, self.l, sub_x)
        self.vec[s] = sp.MatrixSymbol(s.name, self.H, 1)
        return s

    def vtext(self, e) -> str:
        return vector_text(e, self.text, set(self.text))

    def vtex(self, e) -> str:
        return vector_latex(e, self.tex, set(self.tex))

    def hadamard(self, e):
        """The scalar body ``e`` as a vector expression (products → ⊙)."""
        if isinstance(e, sp.Symbol):
            return self.vec[e]
        if e.is_Number:
            return e * sp.OneMatrix(self.H, 1)
        if isinstance(e, sp.Add):
            return sp.MatAdd(*(self.hadamard(a) for a in e.args))
        if isinstance(e, sp.Mul):
            c, fs = e.as_coeff_mul()
            body = sp.HadamardProduct(*(self.hadamard(f) for f in fs)) if len(fs) > 1 \
                else self.hadamard(fs[0])
            return body if c == 1 else c * body
        if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
            return sp.HadamardPower(self.hadamard(e.base), e.exp)
        raise NotImplementedError(f"no vector form of {e}")  # pragma: no cover - by design


def _gate_deltas(step, prev, nm: _Names):
    """Back through the traced elementwise ops: ``(lines, δ of each affine output, direct
    factor of h_{t−1})``; lines: ``(gate, δ symbol, scalar rhs)``."""
    maps = [op for op in step if isinstance(op, P.Map)]
    affine = {op.out for op in step if isinstance(op, P.Affine)}
    body = {P.sym(op.out): op.exprs[0] for op in maps}
    disp = {P.sym(op.out): nm.sym(op.out.name[0], "t") for op in maps}
    for v in affine:
        disp[P.sym(v)] = nm.sym(v.name[:2], "t", f"{v.name[0]}_{v.name[1]}",
                                "%s_{%s}" % (v.name[0], v.name[1]))
    disp[P.sym(prev)] = nm.sym("h", "t-1")
    back = {e: s for s, e in body.items()}

    def local(f, v):          # ∂f/∂v with the forward values written back by name
        d = sp.diff(f, v)
        # round 5 (exact): σ' is derived as σ(z)σ(−z) (accurate at large z); the textbook
        # line reads it σ(z)(1 − σ(z)) = r(1 − r)
        d = d.replace(lambda e: isinstance(e, sigmoid) and e.args[0].could_extract_minus_sign(),
                      lambda e: 1 - sigmoid(-e.args[0]))
        return d.xreplace(back).xreplace(disp)

    out_h = maps[-1]                       # hₜ = (1 − uₜ) nₜ + uₜ hₜ₋₁
    dh = nm.sym("δh", "t", tex=r"\delta h")
    up = {a.symbol: dh * local(out_h.exprs[0], a.symbol) for a in out_h.args}
    direct = local(out_h.exprs[0], P.sym(prev))
    lines, d_aff = [], {}
    for op in reversed(maps[:-1]):         # the gates, last first
        s, f = P.sym(op.out), op.exprs[0]
        ref = op.args[0].symbol           # its input-side pre-activation a_·
        g = op.out.name[0]
        dg = nm.sym(f"δ{g}", "t", tex=r"\delta %s" % g)
        lines.append((g, dg, sp.Mul(up[s], local(f, ref), evaluate=False)))
        for a in op.args:
            ratio = sp.simplify(local(f, a.symbol) / local(f, ref))
            if a.var in affine:
                d_aff[a.var] = dg * ratio
            else:
                up[a.symbol] = up.get(a.symbol, 0) + dg * ratio
    return lines, d_aff, direct, dh, disp


def _affine_grad(delta, W, v, b, wrt):
    """``∂(δᵀ(W v + b))/∂wrt`` by matrix calculus (square stand-ins for a non-square W:
    SymPy leaves that derivative an array expression; the form does not depend on sizes)."""
    H = W.shape[0]
    sq = {W: sp.MatrixSymbol(W.name, H, H), v: sp.MatrixSymbol(v.name, H, 1)}
    d = convert_array_to_matrix((delta.T * (sq[W] * sq[v] + b)).diff(sq.get(wrt, wrt)))
    return d.xreplace({s: m for m, s in sq.items()})


def _shift(e, nm: _Names):
    """``e`` (symbols at t) one step on, at t + 1."""
    m = {}
    for s in e.free_symbols:
        base = s.name.split(f"{nm.l}[")[0]
        m[s] = nm.sym(base, "t+1")
    return e.xreplace(m)


def _recursion(step, prev, d_aff, direct, dh, nm: _Names, params, cuts):
    """The line of δhₜ: ``∂ℓ/∂hₜ`` plus every path from ``hₜ`` into step t + 1."""
    g = sp.MatrixSymbol(f"g{nm.l}", nm.H, 1)
    terms_t = [f"∂ℓ/∂h{nm.sup}ₜ"]
    terms_x = [r"\frac{\partial \ell}{\partial h^{(%d)}_{t}}" % nm.l]
    e = _shift(direct * dh, nm)
    terms_t.append(nm.vtext(e))
    terms_x.append(nm.vtex(e))
    mats = [g, nm.hadamard(e)]
    for op in step:
        if isinstance(op, P.Affine) and op.a == prev:
            W, name = params[op.W.name]
            d = _shift(d_aff[op.out], nm)
            dt, dx = nm.vtext(d), nm.vtex(d)
            if isinstance(d, sp.Mul):
                dt, dx = f"({dt})", r"\left(%s\right)" % dx
            terms_t.append(f"{name[0]}ᵀ {dt}")
            terms_x.append(r"{%s}^{\top} %s" % (name[1], dx))
            mats.append(W.T * nm.hadamard(d))
    tail_t = f",   t = T, …, 1;  δh{nm.sup}_T₊₁ = 0"
    tail_x = r",\quad t = T, \dots, 1,\ \delta h^{(%d)}_{T+1} = 0" % nm.l
    if cuts:
        tail_t += f"; the terms of step t + 1 dropped at t ∈ {sorted(cuts)} (truncated)"
        tail_x += r";\ \text{only the first term at } t \in \{%s\}" % (
            ", ".join(map(str, sorted(cuts))))
    return (f"bptt_dh{nm.l}", f"δh{nm.sup}ₜ", [" + ".join(terms_t) + tail_t],
            r"\delta h^{(%d)}_{t}" % nm.l, [" + ".join(terms_x) + tail_x], sp.MatAdd(*mats))


def gru_bptt_equations(layer, l: int) -> list:
    """``(name, lhs text, [rhs text], lhs TeX, [rhs TeX], SymPy rhs)`` of the BPTT lines of
    the GRU layer numbered ``l``: ``bptt_dh<l>`` (the recursion; its SymPy rhs a matrix
    expression), ``bptt_d{n,u,r}<l>`` (the gates; scalar bodies, products read ⊙), and
    ``bptt_g<param>`` for each parameter (a matrix expression)."""
    H = layer.n_hidden
    nm = _Names(l, H)
    step, prev = _trace(layer, l)
    lines, d_aff, direct, dh, disp = _gate_deltas(step, prev, nm)
    params = {}
    for spec in layer.parameters(l):
        params[spec.name] = (sp.MatrixSymbol(spec.name, *(spec.shape + (1,))[:2]),
                             (spec.text, spec.tex))
    out = [_recursion(step, prev, d_aff, direct, dh, nm, params, layer.cuts())]
    for g, dg, rhs in lines:
        out.append((f"bptt_d{g}{l}", nm.text[dg], [nm.vtext(rhs)], nm.tex[dg],
                    [nm.vtex(rhs)], rhs))
    x_t = sp.MatrixSymbol(f"x{l}[t]", layer.n_in, 1)
    nm.text[x_t], nm.tex[x_t] = f"x{nm.sup}ₜ", r"x^{(%d)}_{t}" % l
    for op in step:
        if not isinstance(op, P.Affine):
            continue
        d = d_aff[op.out]
        dv = sp.MatrixSymbol(f"D{l}", H, 1)
        v = nm.vec[disp[P.sym(prev)]] if op.a == prev else x_t
        W, b = params[op.W.name][0], params[op.b.name][0]
        for P_ in (op.W, op.b):
            M, (pt, px) = params[P_.name]
            gP = _affine_grad(dv, W, v, b, M)
            wrap = isinstance(d, sp.Mul)
            dt, dx = nm.vtext(d), nm.vtex(d)
            gt = " ".join(([f"({dt})" if wrap else dt] + ([nm.text.get(v) or
                           nm.text[disp[P.sym(prev)]]] if P_ is op.W else [])))
            gt = gt + ("ᵀ" if P_ is op.W else "")
            gx = (r"\left(%s\right)" % dx if wrap else dx) + (
                (" {%s}^{\\top}" % (nm.tex.get(v) or nm.tex[disp[P.sym(prev)]]))
                if P_ is op.W else "")
            out.append((f"bptt_g{P_.name}", f"∂L/∂{pt}", [f"⟨Σₜ {gt}⟩"],
                        r"\frac{\partial L}{\partial %s}" % px,
                        [r"\Big\langle \sum_{t} %s \Big\rangle" % gx],
                        gP.xreplace({dv: nm.hadamard(d)})))
    return out
