"""A SymPy code printer for the scalar bodies of :class:`~symnn.ops.Map` ops.

The printer turns one SymPy scalar expression into one line of Python that Numba compiles
in nopython mode.  It follows SymPy's own printers: one ``_print_<Class>`` method per node
type, and a *name table* (:data:`FUNCTIONS`) for the elementary functions, which maps
each function to the vectorisable implementation in :mod:`symnn.codegen.fastmath` or,
where that module is missing, to :mod:`math`.

Conventions of the printed code

* every number is a literal of the kernel's dtype: ``0.5`` for float64,
  ``_f(0.5)`` (``_f = np.float32``) for float32, so that float32 kernels stay in float32;
* integer powers are multiplications (``x*x``), ``x**(1/2)`` is ``math.sqrt(x)``;
* symnn's own functions print through their ``_numbacode`` hook (this printer's
  ``printmethod``), defined beside them in :mod:`symnn.functions`; the activations print
  in stable forms: ``softplus(z) = max(z, 0) + log1p(exp(-|z|))``,
  ``sigmoid`` never overflows, ``xlogy(0, y) = 0``;
* subgradient convention: ``DiracDelta`` (the derivative of a step) prints as ``0``, and
  ``Heaviside(z, h0)`` takes the value ``h0`` at ``z = 0``, as in
  :mod:`symnn.declare.activations`;
* ``Piecewise`` prints as nested conditional expressions, its conditions as Python
  comparisons.

Symbols print as their names: the code generator names each symbol after the array
element it stands for (``z1_f[q]``) or the local variable a common subexpression was
assigned to.

Examples
--------
>>> import sympy as sp
>>> from symnn.functions import sigmoid
>>> z = sp.Symbol("z")
>>> KernelPrinter(fast=False).doprint(sigmoid(z) * (1 - sigmoid(z)))
'(1.0 - _sigmoid(z))*_sigmoid(z)'
>>> KernelPrinter(dtype="float32", fast=True).doprint(z**2 / 2)
'(z*z)/_f(2.0)'
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from symnn.functions import KERNEL_CALLS

__all__ = ["KernelPrinter", "FUNCTIONS", "fastmath_available"]

#: Function name → (vectorisable fastmath name, fallback in plain Numba-compilable Python),
#: derived from the function registry :mod:`symnn.functions` (its ``kernel`` entries).  The
#: fallback names starting with ``_`` are stable helpers in :mod:`symnn.codegen.numba`.
#: symnn's own functions without an entry print through their ``_numbacode`` hook.
FUNCTIONS: dict[str, tuple[str, str]] = KERNEL_CALLS

# (no SymPy needed: the kernel runtime asks it when a cached module loads)
from symnn.codegen._fastcheck import FASTMATH_NAMES as _FASTMATH_NAMES  # noqa: E402,F401
from symnn.codegen._fastcheck import fastmath_available  # noqa: E402


class KernelPrinter(StrPrinter):
    """Print a SymPy scalar expression as Numba-compilable Python.

    Parameters
    ----------
    dtype : {"float64", "float32"}
        Precision of every literal.
    fast : bool
        Use the :mod:`symnn.codegen.fastmath` functions (``fm_tanh`` …) rather than
        :mod:`math`.
    """

    printmethod = "_numbacode"

    def __init__(self, dtype: str = "float64", fast: bool = True) -> None:
        super().__init__({"order": "none"})
        self.dtype = np.dtype(dtype).name
        self.fast = fast
        self.used: set[str] = set()

    # -- numbers ---------------------------------------------------------------------------
    def literal(self, value: float) -> str:
        """A float literal of the kernel's dtype."""
        v = float(value)
        if v != v:
            text = "np.nan"
        elif v in (float("inf"), float("-inf")):
            text = "np.inf" if v > 0 else "-np.inf"
        else:
            text = repr(v)
        if self.dtype == "float32":
            return f"_f({text})"
        return text if not text.startswith("-") else f"({text})"

    def _print_number(self, expr) -> str:
        return self.literal(float(expr))

    def constant(self, expr) -> str | None:
        """The literal of a constant subexpression, or None when it has no float value here
        (``softplus(1)``: a symnn function of a number, which then prints as a call)."""
        try:
            return self.literal(float(expr))
        except (TypeError, ValueError):
            return None

    @staticmethod
    def _foldable(a) -> bool:
        """A factor that folds into one float literal (``sqrt(2)``, ``pi``, ``1/2``)."""
        if not a.is_number:
            return False
        try:
            float(a)
        except (TypeError, ValueError):
            return False
        return True

    _print_Integer = _print_number
    _print_Rational = _print_number
    _print_Float = _print_number
    _print_NumberSymbol = _print_number
    _print_Pi = _print_number
    _print_Exp1 = _print_number
    _print_Zero = _print_number
    _print_One = _print_number
    _print_NegativeOne = _print_number
    _print_Half = _print_number

    def _print_Infinity(self, expr) -> str:
        return self.literal(float("inf"))

    def _print_NegativeInfinity(self, expr) -> str:
        return self.literal(float("-inf"))

    def _print_NaN(self, expr) -> str:
        return self.literal(float("nan"))

    def _print_BooleanTrue(self, expr) -> str:
        return "True"

    def _print_BooleanFalse(self, expr) -> str:
        return "False"

    def _print_Symbol(self, expr) -> str:
        return expr.name

    _print_Dummy = _print_Symbol

    # -- arithmetic ------------------------------------------------------------------------
    def _print_Mul(self, expr) -> str:
        if expr.is_number and (lit := self.constant(expr)) is not None:
            return lit
        nums = [a for a in expr.args if self._foldable(a)]
        if len(nums) > 1 or (nums and not nums[0].is_Rational):
            # fold every constant factor (sqrt(2), pi, 1/2 …) into one literal: without
            # fastmath the compiler may not reassociate ``z*1.41/2.0`` itself
            c = float(sp.Mul(*nums))
            rest = sp.Mul(*[a for a in expr.args if a not in nums])
            if c == 1.0:
                return self._print(rest)
            if c == -1.0:
                return "-" + self.parenthesize(rest, PRECEDENCE["Mul"], strict=True)
            return f"{self.literal(c)}*{self.parenthesize(rest, PRECEDENCE['Mul'], strict=True)}"
        return super()._print_Mul(expr)

    def _print_Add(self, expr, order=None) -> str:
        if expr.is_number and (lit := self.constant(expr)) is not None:
            return lit
        return super()._print_Add(expr, order)

    def _print_Pow(self, expr, rational=False) -> str:
        base, e = expr.as_base_exp()
        if expr.is_number and (lit := self.constant(expr)) is not None:
            return lit
        if base == sp.E:
            return self._call("exp", e)
        pb = self.parenthesize(base, PRECEDENCE["Mul"])
        if e.is_Integer:
            n = int(e)
            if n == 0:
                return self.literal(1.0)
            if 1 <= abs(n) <= 4:
                prod = "*".join([pb] * abs(n))
                prod = prod if abs(n) == 1 else f"({prod})"
                return prod if n > 0 else f"{self.literal(1.0)}/{prod}"
        if e == sp.S.Half:
            return f"math.sqrt({self._print(base)})"
        if e == -sp.S.Half:
            return f"{self.literal(1.0)}/math.sqrt({self._print(base)})"
        # ``**`` is right-associative in Python: a power as the base needs parentheses too
        pb = self.parenthesize(base, PRECEDENCE["Pow"])
        pe = self.parenthesize(e, PRECEDENCE["Pow"])
        return f"{pb}**{pe}"

    # -- functions -------------------------------------------------------------------------
    def _call(self, name: str, *args) -> str:
        fast, slow = FUNCTIONS[name]
        fn = fast if self.fast else slow
        self.used.add(fn)
        return f"{fn}({', '.join(self._print(a) for a in args)})"

    def _print_Function(self, expr) -> str:
        name = type(expr).__name__
        if name in FUNCTIONS:
            return self._call(name, *expr.args)
        raise NotImplementedError(
            f"the kernel printer has no rule for the function {name!r} (in {expr}); define "
            "it as a symnn.functions.SymnnFunction subclass (its _numbacode hook prints it) "
            "or register a kernel call for it in symnn.functions"
        )

    def _print_log(self, expr) -> str:
        (arg,) = expr.args
        # log(1 + u) → log1p(u): keeps accuracy for small u
        if arg.is_Add and sp.S.One in arg.args:
            rest = arg - 1
            return self._call("log1p", rest)
        return self._call("log", arg)

    def _print_exp(self, expr) -> str:
        return self._call("exp", expr.args[0])

    def _print_Heaviside(self, expr) -> str:
        z = expr.args[0]
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        pz, zero = self._print(z), self.literal(0.0)
        if h0 == 0:
            return f"({self.literal(1.0)} if {pz} > {zero} else {zero})"
        return (f"({self.literal(1.0)} if {pz} > {zero} else "
                f"({self._print(h0)} if {pz} == {zero} else {zero}))")

    def _print_DiracDelta(self, expr) -> str:
        # subgradient convention: the derivative of a step is 0 (also at the step)
        return self.literal(0.0)

    def _print_Abs(self, expr) -> str:
        return f"abs({self._print(expr.args[0])})"

    def _print_sign(self, expr) -> str:
        pz, zero = self._print(expr.args[0]), self.literal(0.0)
        return (f"({self.literal(1.0)} if {pz} > {zero} else "
                f"({self.literal(-1.0)} if {pz} < {zero} else {zero}))")

    def _minmax(self, fn: str, args) -> str:
        args = list(args)
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{fn}({text}, {self._print(a)})"
        return text

    def _print_Max(self, expr) -> str:
        return self._minmax("max", expr.args)

    def _print_Min(self, expr) -> str:
        return self._minmax("min", expr.args)

    # -- logic -----------------------------------------------------------------------------
    def _print_Piecewise(self, expr) -> str:
        pieces = list(expr.args)
        if pieces[-1].cond == sp.true:
            text = self._print(pieces[-1].expr)
            pieces = pieces[:-1]
        else:
            text = self.literal(float("nan"))
        for e, c in reversed(pieces):
            text = f"({self._print(e)} if {self._print(c)} else {text})"
        return text

    def _print_Relational(self, expr) -> str:
        op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[expr.rel_op]
        lhs = self.parenthesize(expr.lhs, PRECEDENCE["Relational"], strict=True)
        rhs = self.parenthesize(expr.rhs, PRECEDENCE["Relational"], strict=True)
        return f"{lhs} {op} {rhs}"

    def _print_And(self, expr) -> str:
        return "(" + " and ".join(f"({self._print(a)})" for a in expr.args) + ")"

    def _print_Or(self, expr) -> str:
        return "(" + " or ".join(f"({self._print(a)})" for a in expr.args) + ")"

    def _print_Not(self, expr) -> str:
        return f"(not ({self._print(expr.args[0])}))"

    def parenthesize(self, item, level, strict=False) -> str:
        """``item`` printed, in parentheses when it binds no tighter than ``level``.

        SymPy's convention, which :class:`~sympy.printing.str.StrPrinter` relies on:
        parenthesise when ``precedence(item) <= level``, or ``< level`` when ``strict``.
        (``StrPrinter._print_Mul`` passes the precedence of the whole product, which is
        that of an Add when the product is negative: ``-y*(1 - a)`` needs ``<=``.)
        """
        p = precedence(item)
        text = self._print(item)
        if p < level or (not strict and p <= level):
            return f"({text})"
        return text
