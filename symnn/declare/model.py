"""Custom models: any SymPy expression f(x; θ) with declared inputs and parameters.

Examples
--------
>>> import sympy as sp, symnn
>>> x, a, b = sp.symbols("x a b")
>>> m = symnn.Model(a * sp.exp(-b * x), inputs=[x], params=[a, b], loss="mse")
>>> m.n_params, m.n_inputs, m.n_outputs
(2, 1, 1)
"""

from __future__ import annotations

from typing import Any, Sequence

import sympy as sp

from symnn.declare.layers import Act, Softmax, as_layer, output_kind
from symnn.declare.losses import Loss, Penalty, check_output, get_loss
from symnn.declare.network import Declared, _identifier
from symnn.declare.text import expr_text
from symnn.errors import DeclarationError

__all__ = ["Model", "constant_problem", "derivative_problem", "power_problem",
           "call_problem", "MAX_EXPONENT"]

#: Largest |exponent| of a power accepted in a model expression (x^10000 is already far
#: beyond anything a float64 kernel evaluates usefully).
MAX_EXPONENT = 10_000
#: Largest decimal exponent of a constant (float64 tops out near 1.8e308).
_MAX_DECIMAL_EXPONENT = 308
#: The largest float64, as an exact integer.
_FLOAT_MAX = int(1.7976931348623157e308)
#: exp(±745) under/overflows float64; SymPy would evaluate exp(n·log 2) exactly as 2ⁿ.
_MAX_EXP_ARGUMENT = 745


def _value(expr: sp.Expr):
    """A 15-digit numeric value of a constant expression, or None when it has none.

    The exact numbers are replaced by 30-digit floats *first*, so nothing SymPy (or an
    activation's ``_eval_evalf``) rebuilds from them can turn into an exact power with
    astronomically many digits: ``sigmoid(10^300*log(2))`` is evaluated in floating point,
    not as ``1/(1 + 2^(-10^300))``.
    """
    try:
        floats = {r: sp.Float(r, 30) for r in expr.atoms(sp.Rational)}
        return sp.N(expr.xreplace(floats), 15)
    except (TypeError, ValueError, ArithmeticError, RecursionError, AttributeError):
        return None


def constant_problem(expr: sp.Basic) -> str | None:
    """Why a constant (symbol-free) subexpression of ``expr`` cannot be used, or None.

    Infinities (``oo``, ``zoo``), NaN, complex values (``acos(2)``, ``sqrt(-1)``) and
    values beyond float64 (``2^1100``) are refused: the compiled kernels are real float64.

    Examples
    --------
    >>> x = sp.Symbol("x", real=True)
    >>> constant_problem(x + sp.acos(2))
    'the constant acos(2) is complex (1.31695789692482*I)'
    >>> constant_problem(x * 2**1100) is not None, constant_problem(x + 1)
    (True, None)
    """
    if not isinstance(expr, sp.Basic):
        return f"{expr!r} is not a SymPy expression"
    if expr.has(sp.oo, -sp.oo, sp.zoo, sp.nan):
        return f"the expression contains an infinity or an undefined value ({expr})"
    if expr.has(sp.I):
        return f"the expression contains the imaginary unit ({expr})"
    if expr.has(*_UNEVALUATED):  # walk 7: Numba failed on these at compile time
        held = next(k.__name__ for k in _UNEVALUATED if expr.has(k))
        return (f"the expression holds an unevaluated {held} ({_short(expr)}); evaluate "
                "it (.doit()) or write it in closed form")
    if isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Atom or (
            isinstance(expr, sp.Number)):
        if isinstance(expr, sp.Rational):
            if (max(expr.p.bit_length(), expr.q.bit_length()) > 4000
                    or abs(expr.p) > _FLOAT_MAX * expr.q):
                return f"the constant {_short(expr)} is beyond float64's range"
            return None
        v = _value(expr)
        if v is None:
            return None  # no numeric value here (the kernel computes it): nothing to check
        if v.has(sp.I) or (v.is_Number and not v.is_real):
            return f"the constant {_short(expr)} is complex ({_short(v)})"
        if not v.is_Number:
            return None  # a function SymPy cannot evaluate numerically (softplus(2))
        if not v.is_finite or abs(v) > sp.Float("1.7976931348623157e308"):
            return f"the constant {_short(expr)} is beyond float64's range"
        return None
    for a in expr.args:
        problem = constant_problem(a)
        if problem:
            return problem
    return None


_UNEVALUATED = (sp.Integral, sp.Sum, sp.Product, sp.Limit)


def _short(expr) -> str:
    text = str(expr)
    return text if len(text) <= 60 else text[:57] + "..."


def power_problem(base: sp.Basic, exp: sp.Basic) -> str | None:
    """Why ``base**exp`` must not be built (SymPy would compute it exactly), or None."""
    if not (isinstance(base, sp.Expr) and isinstance(exp, sp.Expr)):
        return None
    if exp.is_Number:
        if abs(exp) > MAX_EXPONENT and base not in (sp.S.Zero, sp.S.One, sp.S.NegativeOne):
            return f"the exponent {_short(exp)} is beyond ±{MAX_EXPONENT}"
        if base.is_number:
            if base == sp.E:
                return call_problem(sp.exp, (exp,))
            b = _value(base)
            if b is None or b.has(sp.I):
                return None  # reported by constant_problem
            if b != 0 and abs(float(exp)) * abs(float(sp.log(abs(b), 10))) > _MAX_DECIMAL_EXPONENT:
                return f"the power {_short(base)}^{_short(exp)} is beyond float64's range"
    elif exp.is_number:
        v = _value(exp)
        if v is None or v.has(sp.I) or not v.is_finite or abs(v) > MAX_EXPONENT:
            return f"the exponent {_short(exp)} is beyond ±{MAX_EXPONENT}"
    return None


def call_problem(func, args) -> str | None:
    """Why ``func(*args)`` must not be built (exp of a huge constant), or None."""
    name = getattr(func, "__name__", str(func))
    if name == "exp" and len(args) == 1 and isinstance(args[0], sp.Expr) and args[0].is_number:
        v = _value(args[0])
        if v is None or v.has(sp.I) or not v.is_finite or abs(v) > _MAX_EXP_ARGUMENT:
            return f"exp({_short(args[0])}) is beyond float64's range"
    return None


def derivative_problem(expr: sp.Basic) -> str | None:
    """The first function in ``expr`` with no derivative rule (``floor``), or None."""
    seen = set()
    for node in sp.preorder_traversal(expr):
        if not isinstance(node, sp.Function) or node in seen:
            continue
        seen.add(node)
        for s in node.free_symbols:
            d = sp.diff(node, s)
            if d.has(sp.Derivative) or d.has(sp.Subs):
                return (f"{type(node).__name__} has no derivative rule ({_short(node)} "
                        f"cannot be differentiated); write the model with differentiable "
                        "functions")
    return None


class Model(Declared):
    """A custom model ``ŷ = f(x; θ)`` given as SymPy expressions.

    Parameters
    ----------
    expr : sympy.Expr or sequence of sympy.Expr
        One expression per output.
    inputs : sequence of sympy.Symbol
        The input symbols, in the column order of ``X``.
    params : sequence of sympy.Symbol
        The trainable parameters, in the order of the flat vector θ.
    loss : str or Loss
    output : str, optional
        An activation applied to the outputs (``"sigmoid"``, ``"softmax"``, …).
    penalties : sequence of Penalty, optional
        Penalties name parameters by their symbol names (default: all parameters).
    """

    def __init__(
        self,
        expr: "sp.Expr | Sequence[sp.Expr]",
        inputs: Sequence[sp.Symbol],
        params: Sequence[sp.Symbol],
        loss: "str | Loss" = "mse",
        output: Any = None,
        penalties: Sequence[Penalty] = (),
        name: str = "model",
    ) -> None:
        exprs = _outputs(expr)
        self.inputs = tuple(_symbols(inputs, "inputs"))
        self.params = tuple(_symbols(params, "params"))
        _check_symbols(exprs, self.inputs, self.params)
        self.exprs = tuple(exprs)
        self.loss = get_loss(loss, where="Model loss")
        self.output = _output_layer(output)
        check_output(self.loss, output_kind(self.output), "Model")
        self.n_inputs = len(self.inputs)
        self.n_outputs = len(self.exprs)
        names = {str(p) for p in self.params}
        for pen in penalties:
            for p in pen.params or ():
                if p not in names:
                    raise DeclarationError(
                        f"{pen.kind.upper()} penalty names parameter {p!r}; the model's "
                        f"parameters are {sorted(names)}"
                    )
        self.penalties = tuple(penalties)
        self.name = _identifier(name)

    @property
    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """One flat parameter vector ``theta`` of shape ``(P,)`` in the order of ``params``."""
        return [("theta", (len(self.params),))]

    def spec(self) -> dict:
        """Plain data from which the model is rebuilt: expressions as text in the spec
        language (read back by :func:`symnn.spec.parse_expression`, never evaluated)."""
        out = {
            "kind": "model",
            "name": self.name,
            "exprs": [expr_text(e) for e in self.exprs],
            "inputs": [str(s) for s in self.inputs],
            "params": [str(s) for s in self.params],
            "loss": self.loss.name,
            "penalties": [
                {"kind": p.kind, "lam": p.lam, "params": list(p.params) if p.params else None}
                for p in self.penalties
            ],
        }
        if self.output is not None:
            out["output"] = getattr(self.output, "name", "softmax")
        return out

    def __repr__(self) -> str:
        body = self.exprs[0] if len(self.exprs) == 1 else list(self.exprs)
        return (
            f"Model({body}, inputs={list(self.inputs)}, params={list(self.params)}, "
            f"loss={self.loss.name!r})"
        )


def _symbols(items, what):
    out = []
    for s in items:
        if not isinstance(s, sp.Symbol):
            raise DeclarationError(
                f"Model {what}: expected sympy.Symbol objects, got {s!r} "
                f"({type(s).__name__})"
            )
        if s in out:
            raise DeclarationError(f"Model {what}: symbol {s} is listed twice")
        out.append(s)
    return out


def _outputs(expr) -> list[sp.Expr]:
    """The model's output expressions, each a finite, differentiable scalar expression."""
    if isinstance(expr, (sp.MatrixBase, list, tuple)):
        exprs = list(expr)
    else:
        exprs = [expr]
    if not exprs:
        raise DeclarationError("Model: give at least one output expression")
    try:
        exprs = [sp.sympify(e, strict=True) for e in exprs]
    except (sp.SympifyError, TypeError) as err:
        raise DeclarationError(
            "Model: each output must be a SymPy expression (build it from sympy symbols, "
            "not a string)"
        ) from err
    for i, e in enumerate(exprs):
        if not isinstance(e, sp.Expr) or isinstance(e, sp.MatrixBase):
            raise DeclarationError(f"Model output {i}: expected a scalar SymPy expression")
        problem = constant_problem(e) or derivative_problem(e)
        if problem:
            raise DeclarationError(f"Model output {i}: {problem}")
    return exprs


def _check_symbols(exprs, inputs, params) -> None:
    """Inputs and parameters apart, every symbol used declared, every parameter used."""
    if not params:
        raise DeclarationError("Model: declare at least one parameter symbol in params=")
    clash = set(inputs) & set(params)
    if clash:
        raise DeclarationError(
            f"Model: {sorted(map(str, clash))} declared both as input and as parameter"
        )
    declared = set(inputs) | set(params)
    used: set = set()
    for i, e in enumerate(exprs):
        extra = e.free_symbols - declared
        if extra:
            raise DeclarationError(
                f"Model output {i} uses undeclared symbols {sorted(map(str, extra))}; add "
                "them to inputs= or params=, or substitute numbers"
            )
        used |= e.free_symbols
    missing = [str(p) for p in params if p not in used]
    if missing:
        raise DeclarationError(
            f"Model: parameters {missing} do not appear in the model's expression; remove "
            "them from params= or use them in the expression"
        )


def _output_layer(output):
    """The activation layer applied to the outputs, or None (identity)."""
    if output is None or (isinstance(output, str) and output.lower() in ("identity", "linear")):
        return None
    layer = as_layer(output, where="Model output")
    if not isinstance(layer, (Act, Softmax)):
        raise DeclarationError("Model output= must be an activation name or 'softmax'")
    return layer
