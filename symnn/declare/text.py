"""Expressions as plain text in the language of spec files (see ``docs/spec-format.md``).

Saved models and spec files store a custom model's expressions as this text, which is read
back by the whitelist parser :func:`symnn.spec.parse_expression` — never by ``eval`` or
``sympify``.

Examples
--------
>>> import sympy as sp
>>> from symnn.functions import sigmoid
>>> a, x = sp.symbols("a x")
>>> expr_text(a * sigmoid(-x) + sp.Abs(x) ** sp.Rational(3, 2))
'abs(x)**(3/2) + a*sigmoid(-x)'
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.str import StrPrinter

from symnn.errors import DeclarationError
from symnn.functions import TEXT_NAMES

__all__ = ["expr_text", "TEXT_FUNCTIONS"]

#: SymPy function class name → name in the expression language (derived from the function
#: registry :mod:`symnn.functions`, kept current when a function class is defined).
TEXT_FUNCTIONS = TEXT_NAMES


class _TextPrinter(StrPrinter):
    printmethod = "_symnn_text"  # ignore the display forms (σ(z)) of symnn's functions

    def _print_Function(self, expr):
        name = TEXT_FUNCTIONS.get(type(expr).__name__)
        if name is None:
            raise DeclarationError(
                f"{type(expr).__name__} cannot be written in the spec expression language; "
                f"it knows {sorted(set(TEXT_FUNCTIONS.values()))}"
            )
        return "%s(%s)" % (name, ", ".join(self._print(a) for a in expr.args))

    _print_Abs = _print_Function
    _print_Max = _print_Function
    _print_Min = _print_Function

    def _print_Rational(self, expr):
        return "%d/%d" % (expr.p, expr.q) if expr.q != 1 else str(expr.p)

    def _print_Exp1(self, expr):
        return "e"

    def _print_Pi(self, expr):
        return "pi"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Piecewise(self, expr):
        raise DeclarationError("piecewise expressions cannot be written in the spec language")


def expr_text(expr: sp.Expr) -> str:
    """``expr`` as text that :func:`symnn.spec.parse_expression` reads back exactly."""
    return _TextPrinter({"order": "none"}).doprint(expr)
