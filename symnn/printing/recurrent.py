r"""Backpropagation through time in textbook form, for the :class:`~symnn.RNN` layers of a
network: the recursion of ``δₜ = ∂ℓ/∂zₜ`` and the gradients as sums over time.

Nothing here is typed in per layer: each factor is derived by SymPy from the layer's cell
``zₜ = W_xh xₜ + W_hh hₜ₋₁ + b``, ``hₜ = σ(zₜ)`` — the step back ``∂(δₜ₊₁ᵀ zₜ₊₁)/∂hₜ``
(``W_hhᵀ δₜ₊₁``), the parameter gradients ``∂(δₜᵀ zₜ)/∂W`` (``δₜ hₜ₋₁ᵀ``, ``δₜ xₜᵀ``, ``δₜ``)
by matrix calculus on :class:`sympy.MatrixSymbol` values, and ``σ'`` by ``sympy.diff`` of
the activation.  The unrolled program (the other sections of
:meth:`symnn.Network.equations`) computes exactly these sums.

Examples
--------
>>> import symnn
>>> net = symnn.Network([symnn.RNN(2, 3, length=4), symnn.Dense(3, 1)])
>>> for name, lhs, rhs, *tex in bptt_equations(net):
...     print(lhs, "=", rhs[0])
δ⁽¹⁾ₜ = (W_hh⁽¹⁾ᵀ δ⁽¹⁾ₜ₊₁ + ∂ℓ/∂h⁽¹⁾ₜ) ⊙ tanh'(z⁽¹⁾ₜ),   t = T, …, 1;  δ⁽¹⁾_T₊₁ = 0
tanh'(z⁽¹⁾ₜ) = 1 − tanh(z⁽¹⁾ₜ)²
∂L/∂W_xh⁽¹⁾ = ⟨Σₜ δ⁽¹⁾ₜ x⁽¹⁾ₜᵀ⟩
∂L/∂W_hh⁽¹⁾ = ⟨Σₜ δ⁽¹⁾ₜ h⁽¹⁾ₜ₋₁ᵀ⟩
∂L/∂b⁽¹⁾ = ⟨Σₜ δ⁽¹⁾ₜ⟩
"""

from __future__ import annotations

import sympy as sp
from sympy.tensor.array.expressions import convert_array_to_matrix

from symnn.declare.layers import layer_numbers
from symnn.declare.recurrent import GRU, RNN
from symnn.printing._tex import activation_tex
from symnn.printing.elementwise import vector_latex, vector_text
from symnn.printing.recurrent_gru import gru_bptt_equations  # issue 13: the GRU's lines

__all__ = ["bptt_equations", "Cell"]

_SUP = str.maketrans("0123456789()", "⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾")


class Cell:
    """The symbols of layer ``l``'s cell (text and TeX names on MatrixSymbols)."""

    def __init__(self, layer: RNN, l: int):
        H, N = sp.Integer(layer.n_hidden), sp.Integer(layer.n_in)
        s = f"({l})".translate(_SUP)
        self.names: dict = {}

        def m(key, rows, cols, text, tex):
            sym = sp.MatrixSymbol(key, rows, cols)
            self.names[sym] = (text, tex)
            return sym

        self.W_xh = m(f"W_xh{l}", H, N, f"W_xh{s}", r"W_{xh}^{(%d)}" % l)
        self.W_hh = m(f"W_hh{l}", H, H, f"W_hh{s}", r"W_{hh}^{(%d)}" % l)
        self.b = m(f"b{l}", H, 1, f"b{s}", r"b^{(%d)}" % l)
        self.x = m(f"x{l}", N, 1, f"x{s}ₜ", r"x^{(%d)}_{t}" % l)
        self.h_prev = m(f"hprev{l}", H, 1, f"h{s}ₜ₋₁", r"h^{(%d)}_{t-1}" % l)
        self.h = m(f"h{l}", H, 1, f"h{s}ₜ", r"h^{(%d)}_{t}" % l)
        self.delta = m(f"delta{l}", H, 1, f"δ{s}ₜ", r"\delta^{(%d)}_{t}" % l)
        self.delta_next = m(f"deltanext{l}", H, 1, f"δ{s}ₜ₊₁", r"\delta^{(%d)}_{t+1}" % l)
        self.g = m(f"g{l}", H, 1, f"∂ℓ/∂h{s}ₜ",
                   r"\frac{\partial \ell}{\partial h^{(%d)}_{t}}" % l)
        self.dsigma = m(f"dsigma{l}", H, 1, "σ'", "σ'")
        self.act = layer.act()
        self.l = l

    def z(self, x, h_prev):
        """The cell's pre-activation ``W_xh x + W_hh h_prev + b``."""
        return self.W_xh * x + self.W_hh * h_prev + self.b

    def grad(self, delta, wrt, x=None, h_prev=None):
        """``∂(δᵀ z)/∂wrt`` (a matrix expression)."""
        z = self.z(self.x if x is None else x, self.h_prev if h_prev is None else h_prev)
        d = convert_array_to_matrix((delta.T * z).diff(wrt))
        if not isinstance(d, sp.MatrixExpr):
            # SymPy leaves ∂/∂W of a non-square W as an array expression: the same
            # derivative on square shapes, named back (the form does not depend on sizes)
            H = self.W_hh.shape[0]
            sq = {v: sp.MatrixSymbol(v.name, H, v.shape[1] if v.shape[1] == 1 else H)
                  for v in (self.W_xh, self.x)}
            z = z.xreplace(sq)
            d = convert_array_to_matrix((delta.T * z).diff(sq.get(wrt, wrt)))
            d = d.xreplace({v: k for k, v in sq.items()})
        return sp.simplify(d)


def _text(e, names, tex: bool) -> str:
    """A matrix expression in the names of the cell (``W_hh⁽¹⁾ᵀ δ⁽¹⁾ₜ₊₁``)."""
    if e in names:
        return names[e][1 if tex else 0]
    if isinstance(e, sp.Transpose):
        inner = _text(e.arg, names, tex)
        return (r"{%s}^{\top}" % inner) if tex else inner + "ᵀ"
    if isinstance(e, sp.MatMul):
        return (r" " if tex else " ").join(_text(a, names, tex) for a in e.args)
    if isinstance(e, sp.MatAdd):
        return " + ".join(_text(a, names, tex) for a in e.args)
    return sp.latex(e) if tex else str(e)


class _Eq:
    """Plain (name, text, TeX, expression) of one printed line; wrapped by the caller."""

    def __init__(self, name, lhs_t, rhs_t, lhs_x, rhs_x, expr=None):
        self.name, self.lhs_t, self.rhs_t = name, lhs_t, rhs_t
        self.lhs_x, self.rhs_x, self.expr = lhs_x, rhs_x, expr


def _layer_lines(c: Cell, above: "Cell | None", cuts: set) -> list[_Eq]:
    names = dict(c.names)
    l = c.l
    # ∂(δₜ₊₁ᵀ zₜ₊₁)/∂hₜ: the cell's derivative in its previous state, read one step on
    back = c.grad(c.delta_next, c.h_prev).xreplace({c.h_prev: c.h})
    g = c.g
    if above is not None:                      # the layer above reads hₜ as its input xₜ
        names.update(above.names)
        g = above.grad(above.delta, above.x)
    inner = sp.MatAdd(back, g)
    rhs = sp.HadamardProduct(inner, c.dsigma)
    act = c.act
    zs = sp.Symbol("z", real=True)
    dz = sp.diff(act.apply(zs), zs)
    zt, zx = f"z{'(%d)' % l}ₜ".translate(_SUP), r"z^{(%d)}_{t}" % l
    label_t = f"{act.symbol_text}'({zt})"
    label_x = r"%s'\left(%s\right)" % (activation_tex(act), zx)
    sup = f"({l})".translate(_SUP)
    tail_t = f",   t = T, …, 1;  δ{sup}_T₊₁ = 0"
    tail_x = r",\quad t = T, \dots, 1,\ \delta^{(%d)}_{T+1} = 0" % l
    if cuts:
        tail_t += f"; W_hhᵀ δₜ₊₁ dropped at t ∈ {sorted(cuts)} (truncated)"
        tail_x += r";\ \text{no } W_{hh}^{\top}\delta_{t+1} \text{ at } t \in \{%s\}" % (
            ", ".join(map(str, sorted(cuts))))
    out = [_Eq(f"bptt_delta{l}", f"δ{sup}ₜ",
               f"({_text(inner, names, False)}) ⊙ {label_t}" + tail_t,
               r"\delta^{(%d)}_{t}" % l,
               r"\left(%s\right) \odot %s" % (_text(inner, names, True), label_x) + tail_x,
               rhs),
           _Eq(f"bptt_dsigma{l}", label_t, vector_text(dz, {zs: zt}, {zs}), label_x,
               vector_latex(dz, {zs: zx}, {zs}), dz)]
    for P in (c.W_xh, c.W_hh, c.b):
        gP = c.grad(c.delta, P)
        pt, px = names[P]
        out.append(_Eq(f"bptt_g{P.name}", f"∂L/∂{pt}", f"⟨Σₜ {_text(gP, names, False)}⟩",
                       r"\frac{\partial L}{\partial %s}" % px,
                       r"\Big\langle \sum_{t} %s \Big\rangle" % _text(gP, names, True), gP))
    return out


def bptt_equations(declared) -> list:
    """``(name, lhs text, [rhs text], lhs TeX, [rhs TeX], SymPy rhs)`` of the BPTT lines
    of every :class:`~symnn.RNN` layer of a network (empty if none): the recursion of
    δ⁽ˡ⁾ₜ, σ', and the gradients of W_xh, W_hh and b as sums over t; and of every
    :class:`~symnn.GRU` layer (:func:`symnn.printing.recurrent_gru.gru_bptt_equations`).
    A layer whose sequence an RNN above reads gets ``∂ℓ/∂hₜ = W_xh⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾ₜ`` from
    it."""
    if not hasattr(declared, "layers"):
        return []
    numbered = [(la, l) for la, l in layer_numbers(declared) if isinstance(la, (RNN, GRU))]
    all_layers = [la for la, _ in layer_numbers(declared)]
    out = []
    for la, l in numbered:
        if isinstance(la, GRU):  # issue 13: through the gates (symnn.printing.recurrent_gru)
            out.extend(gru_bptt_equations(la, l))
            continue
        i = all_layers.index(la)
        nxt = next((x for x in all_layers[i + 1:] if hasattr(x, "parameters")
                    and x.parameters(0)), None)
        above = None
        if la.return_sequences and isinstance(nxt, RNN):
            above = Cell(nxt, l + 1)
        for e in _layer_lines(Cell(la, l), above, la.cuts()):
            out.append((e.name, e.lhs_t, [e.rhs_t], e.lhs_x, [e.rhs_x], e.expr))
    return out
