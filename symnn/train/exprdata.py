"""Expressions as plain data: the tree form a model file stores SymPy expressions in.

A custom :class:`~symnn.Model`'s outputs and a custom activation's body are stored as a tree
of node names and arguments, walked from the expression; on load each node is rebuilt by the
SymPy constructor a fixed whitelist (:data:`NODES`) names — no ``sympify``, ``eval`` or
``srepr`` parsing.  The function nodes come from the function registry
(:mod:`symnn.functions`); numbers and trees are bounded (digits, depth, node and argument
counts) *before* SymPy evaluates anything.
"""

from __future__ import annotations

import re
from typing import Any

import sympy as sp

from symnn.errors import ModelFileError
from symnn.functions import FILE_NODES, subscribe

__all__ = ["expr_to_data", "expr_from_data", "NODES", "CONSTANTS", "MAX_DEPTH", "MAX_NODES",
           "MAX_DIGITS", "MAX_ARGS", "roundtrip"]

#: Deepest expression tree and most nodes accepted when loading.
MAX_DEPTH = 200
MAX_NODES = 20_000
#: Most digits of an integer (numerator, denominator) in a stored expression.
MAX_DIGITS = 400
#: Most arguments of one node (Max/Min with thousands of arguments is quadratic in SymPy).
MAX_ARGS = 256


#: The structural nodes (sums, products, powers, pieces, logic) besides the functions.
_STRUCTURE = (sp.Add, sp.Mul, sp.Pow, sp.Piecewise, sp.And, sp.Or, sp.Not,
              sp.StrictGreaterThan, sp.GreaterThan, sp.StrictLessThan, sp.LessThan,
              sp.Equality, sp.Unequality, sp.functions.elementary.piecewise.ExprCondPair)


def _sync_nodes() -> None:
    NODES.clear()
    NODES.update({cls.__name__: cls for cls in _STRUCTURE})
    NODES.update(FILE_NODES)


#: Node names an expression file may contain, and the SymPy class each one builds (besides
#: the leaves ``Symbol``, ``Integer``, ``Rational``, ``Float`` and the constants in
#: :data:`CONSTANTS`): the structural nodes and every function of the registry
#: :mod:`symnn.functions` that may be saved (kept current when a function class is defined).
NODES: dict[str, Any] = {}
subscribe(_sync_nodes)
CONSTANTS: dict[str, Any] = {"Pi": sp.pi, "Exp1": sp.E, "Half": sp.S.Half, "One": sp.S.One,
                             "Zero": sp.S.Zero, "NegativeOne": sp.S.NegativeOne,
                             "BooleanTrue": sp.true, "BooleanFalse": sp.false}


def _assumption_names() -> frozenset:
    from sympy.core.assumptions import _assume_defined

    return frozenset(_assume_defined)


def expr_to_data(expr: sp.Basic) -> Any:
    """A SymPy expression as JSON-able nested dicts (raises ModelFileError if a node type is
    not in :data:`NODES`).

    Examples
    --------
    >>> x = sp.Symbol("x", real=True)
    >>> data = expr_to_data(sp.exp(-x) / 2)
    >>> expr_from_data(data) == sp.exp(-x) / 2
    True
    """
    name = type(expr).__name__
    if isinstance(expr, sp.Symbol) and type(expr) is sp.Symbol:
        allowed = _assumption_names()
        assumptions = {k: bool(v) for k, v in expr._assumptions_orig.items()
                       if k in allowed and v is not None}
        return {"f": "Symbol", "name": expr.name, "assumptions": assumptions}
    if isinstance(expr, sp.Integer):
        return {"f": "Integer", "v": str(int(expr))}
    if isinstance(expr, sp.Rational):
        return {"f": "Rational", "p": str(expr.p), "q": str(expr.q)}
    if isinstance(expr, sp.Float):
        r = sp.Rational(expr)
        return {"f": "Float", "p": str(r.p), "q": str(r.q), "prec": int(expr._prec)}
    for key, value in CONSTANTS.items():
        if expr is value:
            return {"f": key}
    if name in NODES and type(expr) is NODES[name]:
        return {"f": name, "a": [expr_to_data(a) for a in expr.args]}
    raise ModelFileError(
        f"cannot save the expression node {name} ({expr}): symnn model files store only "
        f"these SymPy node types: Symbol, numbers, {', '.join(sorted(NODES))}"
    )


def _int(text: Any, where: str) -> int:
    if not isinstance(text, str) or len(text) > MAX_DIGITS:
        raise ModelFileError(f"{where}: expected an integer as a string of at most "
                             f"{MAX_DIGITS} digits")
    if not re.fullmatch(r"-?[0-9]+", text):
        raise ModelFileError(f"{where}: {text[:40]!r} is not an integer")
    try:
        return int(text)
    except ValueError as err:
        raise ModelFileError(f"{where}: {text[:40]!r} is not an integer") from err


def _symbol(data: dict) -> sp.Symbol:
    name = data.get("name")
    assumptions = data.get("assumptions", {})
    if not isinstance(name, str) or not name or len(name) > 200:
        raise ModelFileError(f"malformed symbol name {str(name)[:80]!r}")
    allowed = _assumption_names()
    if not isinstance(assumptions, dict) or any(
            k not in allowed or not isinstance(v, bool) for k, v in assumptions.items()):
        raise ModelFileError(f"symbol {name!r}: malformed assumptions {assumptions!r}")
    return sp.Symbol(name, **assumptions)


def _integer(data: dict) -> sp.Integer:
    return sp.Integer(_int(data.get("v"), "Integer"))


def _ratio(f: str, data: dict) -> sp.Rational:
    p, q = _int(data.get("p"), f), _int(data.get("q"), f)
    if q <= 0:
        raise ModelFileError(f"{f}: denominator must be positive")
    return sp.Rational(p, q)


def _float(data: dict) -> sp.Float:
    prec = data.get("prec")
    if prec is not None and not (isinstance(prec, int) and 1 <= prec <= 1000):
        raise ModelFileError("Float: malformed precision")  # before the digits are read
    r = _ratio("Float", data)
    if not isinstance(prec, int) or not 1 <= prec <= 1000:
        raise ModelFileError("Float: malformed precision")
    return sp.Float(r, precision=prec)


#: The leaves: how each is read from its fields.
_LEAVES = {"Symbol": _symbol, "Integer": _integer, "Rational": lambda d: _ratio("Rational", d),
           "Float": _float}


def expr_from_data(data: Any, _depth: int = 0, _count: list | None = None) -> sp.Basic:
    """Rebuild an expression from :func:`expr_to_data` output (whitelisted nodes only)."""
    count = _count if _count is not None else [0]
    count[0] += 1
    if _depth > MAX_DEPTH or count[0] > MAX_NODES:
        raise ModelFileError(f"expression too deep or too large (limits: depth {MAX_DEPTH}, "
                             f"{MAX_NODES} nodes)")
    if not isinstance(data, dict) or not isinstance(data.get("f"), str):
        raise ModelFileError(f"malformed expression node {str(data)[:80]!r}")
    f = data["f"]
    if f in _LEAVES:
        return _LEAVES[f](data)
    if f in CONSTANTS:
        return CONSTANTS[f]
    if f not in NODES:
        raise ModelFileError(f"expression node {f!r} is not one a symnn model file may "
                             f"contain (allowed: {', '.join(sorted(NODES))})")
    args = data.get("a")
    if not isinstance(args, list):
        raise ModelFileError(f"expression node {f!r}: malformed arguments")
    if len(args) > MAX_ARGS:
        raise ModelFileError(f"expression node {f!r} has {len(args)} arguments (limit "
                             f"{MAX_ARGS})")
    return _build(f, [expr_from_data(a, _depth + 1, count) for a in args])


def _build(f: str, built: list) -> sp.Basic:
    """The node ``f`` of the arguments ``built``, refused when it would be unbounded work
    or a value without a float (checked before and after SymPy evaluates it)."""
    from symnn.declare.model import call_problem, constant_problem, power_problem

    problem = None
    if f == "Pow" and len(built) == 2:
        problem = power_problem(*built)
    elif f == "exp":
        problem = call_problem(sp.exp, built)
    if problem:
        raise ModelFileError(f"expression node {f!r}: {problem}")
    try:
        out = NODES[f](*built)
    except (TypeError, ValueError, ArithmeticError) as err:
        raise ModelFileError(f"expression node {f!r}: cannot be built from its "
                             f"arguments: {err}") from err
    if isinstance(out, sp.Expr) and (out.is_number or out.has(sp.zoo, sp.oo, sp.nan)):
        problem = constant_problem(out)
        if problem:
            raise ModelFileError(f"expression node {f!r}: {problem}")
    return out


def roundtrip(expr: sp.Basic, what: str) -> Any:
    """``expr_to_data(expr)``, refused unless it loads back identical."""
    data = expr_to_data(expr)
    if expr_from_data(data) != expr:
        raise ModelFileError(f"{what}: the expression {expr} would not load back identical; "
                             "symnn cannot store it")
    return data
