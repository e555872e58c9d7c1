"""Printers for elementwise (Map) bodies in vector notation.

A Map body is a scalar SymPy expression; printed for a layer, each bound symbol stands for
a whole vector, products of vectors are Hadamard products (⊙) and powers are elementwise.
``_print_<Class>`` methods follow SymPy's printer dispatch.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from symnn.printing._tex import SafeNamesMixin

__all__ = ["VectorTextPrinter", "VectorLatexPrinter", "vector_text", "vector_latex"]

_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


class _VectorMixin:
    """Shared logic: which symbols are vectors, and how a product is split."""

    names: dict
    vectors: set

    def _is_vec(self, e) -> bool:
        return bool(e.free_symbols & self.vectors)

    def _split(self, expr: sp.Mul):
        c, factors = expr.as_coeff_mul()
        scal = [f for f in factors if not self._is_vec(f)]
        vec = [f for f in factors if self._is_vec(f)]
        return c, scal, vec


class VectorTextPrinter(_VectorMixin, StrPrinter):
    """Unicode text: ``a⁽¹⁾ ⊙ (1 - a⁽¹⁾)``."""

    def __init__(self, names: dict, vectors: set, **settings):
        super().__init__(settings)
        self.names = names
        self.vectors = vectors

    def _print_Symbol(self, expr):
        return self.names.get(expr, expr.name)

    def _print_Mul(self, expr):
        c, scal, vec = self._split(expr)
        if not vec and not scal:
            return super()._print_Mul(expr)
        if len(scal) > 1 and any(f.is_Pow and f.exp.is_negative for f in scal):
            # a quotient of scalars reads as one: (sqrt(2)/sqrt(pi)), not sqrt(2)·1/sqrt(pi)
            parts = ["(" + super()._print_Mul(sp.Mul(*scal)) + ")"]
        else:
            parts = [self.parenthesize(f, PRECEDENCE["Mul"]) for f in scal]
        vparts = [self.parenthesize(f, PRECEDENCE["Mul"]) for f in vec]
        body = "·".join(parts)
        if vparts:
            body = (body + "·" if body else "") + " ⊙ ".join(vparts)
        if c == 1:
            return body
        if c == -1:
            return "-" + body
        cs = self._print(c)
        if isinstance(c, sp.Rational) and not c.is_Integer:
            cs = "(" + cs + ")"
        return cs + "·" + body

    def _print_Pow(self, expr, rational=False):
        b, e = expr.as_base_exp()
        if e.is_Integer and 1 < e < 10:
            base = self._print(b)
            if not (b.is_Symbol or b.is_Function):
                base = "(" + base + ")"
            elif b.is_Symbol and self._is_vec(b) and any(ch in base for ch in "⁽⁾"):
                base = "(" + base + ")"
            return base + str(e).translate(_SUP)
        return super()._print_Pow(expr, rational)

    def _print_Heaviside(self, expr):
        return "H(%s)" % self._print(expr.args[0])

    def _print_Piecewise(self, expr):
        parts = []
        for e, c in expr.args:
            cond = "otherwise" if c is sp.true else self._print(c)
            parts.append(f"{self._print(e)} if {cond}")
        return "{" + "; ".join(parts) + "}"


class VectorLatexPrinter(_VectorMixin, SafeNamesMixin, LatexPrinter):
    r"""LaTeX: ``a^{(1)} \odot \left(1 - a^{(1)}\right)``."""

    def __init__(self, names: dict, vectors: set, **settings):
        super().__init__(settings)
        self.names = names
        self.vectors = vectors

    def _print_Symbol(self, expr, style="plain"):
        if expr in self.names:
            return self.names[expr]
        return super()._print_Symbol(expr, style)

    def _print_Mul(self, expr):
        c, scal, vec = self._split(expr)
        if len(vec) < 2:
            return super()._print_Mul(expr)
        vparts = [self._paren_vec(f) for f in vec]
        body = r" \odot ".join(vparts)
        # the scalar factors as one product: \frac{\sqrt{2}}{2 \sqrt{\pi}}, not
        # \sqrt{2} \frac{1}{\sqrt{\pi}}
        scalar = sp.Mul(c, *scal)
        if scalar == 1:
            return body
        if scalar == -1:
            return "- " + body
        if scalar.could_extract_minus_sign():
            return "- " + self.parenthesize(-scalar, PRECEDENCE["Mul"], strict=True) + " " + body
        return self.parenthesize(scalar, PRECEDENCE["Mul"], strict=True) + " " + body

    def _paren_vec(self, f):
        if precedence(f) < PRECEDENCE["Mul"]:
            return r"\left(%s\right)" % self._print(f)
        return self._print(f)

    def _print_Heaviside(self, expr, exp=None):
        return r"H\left(%s\right)" % self._print(expr.args[0])


def _display_form(expr: sp.Expr) -> sp.Expr:
    """Pull common numeric factors out for display: ``2a - 2y`` → ``2(a - y)``."""
    try:
        f = sp.factor_terms(expr)
    except Exception:  # pragma: no cover - display only
        return expr
    return f if sp.count_ops(f) <= sp.count_ops(expr) else expr


def vector_text(expr: sp.Expr, names: dict, vectors: set) -> str:
    """Print ``expr`` as vector text with ``names`` for its symbols."""
    return VectorTextPrinter(names, vectors).doprint(_display_form(expr)).replace(" - ", " − ")


def vector_latex(expr: sp.Expr, names: dict, vectors: set) -> str:
    """Print ``expr`` as vector LaTeX with ``names`` for its symbols."""
    return VectorLatexPrinter(names, vectors).doprint(_display_form(expr))
