"""A whitelist expression parser: text in, SymPy expression out, no code run.

Spec files carry model expressions (``a*exp(-b*x)``) and custom activations
(``x/(1+abs(x))``) as text.  They are read by a small tokenizer and a precedence-climbing
recursive-descent parser that knows exactly these constructs and nothing else:

* numbers: ``3``, ``0.5``, ``.5``, ``1e-3`` (exact rationals, never floats);
* names from the caller's symbol table, and the constants ``pi`` and ``e``;
* ``+ - * /``, powers ``^`` and ``**`` (right-associative, binding tighter than unary
  minus: ``-x^2`` is ``-(x^2)``), unary ``+``/``-`` and parentheses;
* calls of the functions in :data:`ALLOWED` (``exp``, ``log``, ``tanh``, ``sigmoid``,
  ``max`` …), with their arity checked.

Anything else — strings, attribute access, subscripts, keywords, a name not declared — is a
:class:`~symnn.errors.SpecError` that names where it came from (file and key), the column
of the offending character, and shows the text with a caret under it.  Nothing here calls
``eval``, ``exec``, ``sympify`` or ``parse_expr``; every node is built by a SymPy
constructor from tokens the tokenizer has already checked.

Examples
--------
>>> import sympy as sp
>>> x, a, b = sp.symbols("x a b", real=True)
>>> parse_expression("a*exp(-b*x)", {"x": x, "a": a, "b": b})
a*exp(-b*x)
>>> parse_expression("2^-1 + 1.5e1", {})
31/2
>>> parse_expression("x.real", {"x": x})
Traceback (most recent call last):
...
symnn.errors.SpecError: expression: '.' is not allowed (attribute access, strings and \
subscripts are not part of the expression language) at column 2
  x.real
   ^
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

import sympy as sp

from symnn.declare.model import call_problem, constant_problem, power_problem
from symnn.errors import SpecError
from symnn.functions import SPEC_FUNCTIONS, subscribe

__all__ = [
    "ALLOWED",
    "CONSTANTS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Function",
    "expression_error",
    "parse_expression",
]

#: Longest expression text accepted (characters).
MAX_LENGTH = 2000
#: Deepest nesting of parentheses, calls, unary signs and powers accepted.
MAX_DEPTH = 100
#: Longest numeric literal accepted (characters).
MAX_NUMBER_LENGTH = 60
#: Largest decimal exponent of a literal (``1e308``).
MAX_LITERAL_EXPONENT = 308
#: Largest number of decimal digits a power of two numbers may produce.
MAX_POWER_DIGITS = 2000


@dataclass(frozen=True)
class Function:
    """A function the expression language may call.

    Parameters
    ----------
    name : str
        The name as written in a spec (``"abs"``).
    build : callable
        Takes SymPy arguments and returns the SymPy expression.
    min_args, max_args : int
        Accepted argument counts; ``max_args=None`` means any number ≥ ``min_args``.
    doc : str
        One line for the spec-format documentation.
    """

    name: str
    build: Callable[..., sp.Expr]
    min_args: int = 1
    max_args: int | None = 1
    doc: str = ""

    def arity(self) -> str:
        if self.max_args == self.min_args:
            return str(self.min_args)
        if self.max_args is None:
            return f"{self.min_args} or more"
        return f"{self.min_args} to {self.max_args}"


_ALLOWED: dict[str, Function] = {}


def _sync() -> None:
    """Rebuild the spec functions from the function registry (:mod:`symnn.functions`)."""
    _ALLOWED.clear()
    for name, info in SPEC_FUNCTIONS.items():
        _ALLOWED[name] = Function(name, info.builder, info.min_args, info.max_args, info.doc)


subscribe(_sync)

#: The functions a spec expression may call (name → :class:`Function`): the entries of the
#: function registry :mod:`symnn.functions` with a spec name (a read-only view, current when
#: a new function class is defined).
ALLOWED: Mapping[str, Function] = MappingProxyType(_ALLOWED)

#: Named constants (a symbol of the same name, if declared, takes precedence).
CONSTANTS: Mapping[str, sp.Expr] = MappingProxyType({"pi": sp.pi, "e": sp.E})

_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = " \t"
_OPS = ("**", "+", "-", "*", "/", "^", "(", ")", ",")
# binary operators: precedence, right-associative?
_BINARY = {"+": (1, False), "-": (1, False), "*": (2, False), "/": (2, False),
           "^": (4, True), "**": (4, True)}
_UNARY_PREC = 3

_FORBIDDEN_HINTS = {
    "'": "strings are not part of the expression language",
    '"': "strings are not part of the expression language",
    ".": "attribute access, strings and subscripts are not part of the expression language",
    "[": "subscripts and lists are not part of the expression language",
    "]": "subscripts and lists are not part of the expression language",
    "{": "braces are not part of the expression language",
    "}": "braces are not part of the expression language",
    ":": "lambdas, slices and annotations are not part of the expression language",
    "=": "assignments and comparisons are not part of the expression language",
    ";": "statements are not part of the expression language",
    "@": "matrix products and decorators are not part of the expression language",
    "\\": "backslashes are not part of the expression language",
    "#": "comments are not part of the expression language",
}


def expression_error(message: str, text: str, column: int, where: str = "expression"
                     ) -> SpecError:
    """A :class:`SpecError` pointing at ``column`` (1-based) of ``text`` with a caret line.

    The first line is ``"<where>: <message> at column <n>"``; the next two lines show the
    (one-line, at most 76 characters around the column) text and a caret under the column.

    Examples
    --------
    >>> print(expression_error("unknown name 'q'", "a*q", 3, "f.toml: [model] expr"))
    f.toml: [model] expr: unknown name 'q' at column 3
      a*q
        ^
    """
    shown = text.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    start = 0
    if len(shown) > 76:
        start = max(0, min(column - 1 - 38, len(shown) - 76))
        shown = shown[start : start + 76]
    shown = "".join(ch if ch.isprintable() else "?" for ch in shown)
    caret = " " * (column - 1 - start) + "^"
    err = SpecError(f"{where}: {message} at column {column}\n  {shown}\n  {caret}")
    err.column = column  # type: ignore[attr-defined]
    err.where = where  # type: ignore[attr-defined]
    err.summary = f"{where}: {message} at column {column}"  # type: ignore[attr-defined]
    err.text = text  # type: ignore[attr-defined]
    return err


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "name", "op", "end"
    text: str
    col: int  # 1-based


#: Unicode look-alikes of the expression language's operators (walk 7).
_LOOKALIKES = {"\u2212": "-", "\u2013": "-", "\u00d7": "*", "\u22c5": "*", "\u00b7": "*",
               "\u2217": "*", "\u00f7": "/", "\u2215": "/", "\u00b2": "^2", "\u00b3": "^3",
               "\uff08": "(", "\uff09": ")", "\uff0b": "+", "\uff0d": "-"}


def _tokenize(text: str, fail) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACE or ch in "\n\r":
            i += 1
            continue
        m = _NUMBER.match(text, i)
        if m and (ch.isdigit() or ch == "."):
            tok = m.group()
            if len(tok) > MAX_NUMBER_LENGTH:
                raise fail(f"number longer than {MAX_NUMBER_LENGTH} characters", i + 1)
            tokens.append(_Token("num", tok, i + 1))
            i = m.end()
            if i < n and (text[i].isalnum() or text[i] == "_" or text[i] == "."):
                raise fail(
                    f"unexpected {text[i]!r} after the number {tok!r} (write the operator "
                    "explicitly, e.g. 2*x)", i + 1)
            continue
        m = _NAME.match(text, i)
        if m:
            tokens.append(_Token("name", m.group(), i + 1))
            i = m.end()
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", op, i + 1))
            i += len(op)
            continue
        hint = _FORBIDDEN_HINTS.get(ch)
        if hint:
            raise fail(f"{ch!r} is not allowed ({hint})", i + 1)
        ascii_ = _LOOKALIKES.get(ch)  # walk 7: a formula pasted from a paper or a PDF
        raise fail(f"unexpected character {ch!r}" + (
            f" (type the ASCII {ascii_!r})" if ascii_ else ""), i + 1)
    tokens.append(_Token("end", "", n + 1))
    return tokens


def _number(tok: str) -> sp.Rational:
    mant, _, exp = tok.lower().partition("e")
    if exp and abs(int(exp)) > MAX_LITERAL_EXPONENT:
        raise ValueError(f"exponent of {tok!r} is beyond ±{MAX_LITERAL_EXPONENT}")
    frac = Fraction(mant) * (Fraction(10) ** int(exp or 0))
    return sp.Rational(frac.numerator, frac.denominator)


def _digits(r: sp.Rational) -> int:
    return max(len(str(abs(r.p))), len(str(r.q)))


def _power_too_big(base: sp.Expr, exp: sp.Expr) -> bool:
    """True when ``base^exp`` of two numbers would be an exact number of too many digits."""
    if not (base.is_Rational and exp.is_Rational) or base in (0, 1, -1):
        return False
    return abs(exp) > 10_000 or _digits(base) * abs(float(exp)) > MAX_POWER_DIGITS


class _Parser:
    def __init__(self, text, tokens, symbols, functions, fail, max_depth):
        self.text = text
        self.toks = tokens
        self.pos = 0
        self.symbols = symbols
        self.functions = functions
        self.fail = fail
        self.max_depth = max_depth
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.toks[self.pos]

    def advance(self) -> _Token:
        t = self.toks[self.pos]
        self.pos += 1
        return t

    def enter(self, col: int) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise self.fail(f"expression nested deeper than {self.max_depth} levels", col)

    def expect(self, op: str, context: str) -> _Token:
        t = self.tok
        if t.kind == "op" and t.text == op:
            return self.advance()
        raise self.fail(f"expected {op!r} {context}, found {_describe(t)}", t.col)

    # expression := unary (binop expression)*   — precedence climbing
    def expression(self, min_prec: int = 0):
        self.enter(self.tok.col)
        lhs = self.unary()
        while True:
            t = self.tok
            if t.kind != "op" or t.text not in _BINARY:
                break
            prec, right = _BINARY[t.text]
            if prec < min_prec:
                break
            self.advance()
            rhs = self.expression(prec if right else prec + 1)
            lhs = self.apply(t, lhs, rhs)
        self.depth -= 1
        return lhs

    def unary(self):
        t = self.tok
        if t.kind == "op" and t.text in "+-":
            self.advance()
            operand = self.expression(_UNARY_PREC)
            return -operand if t.text == "-" else operand
        return self.atom()

    def atom(self):
        t = self.tok
        if t.kind == "num":
            self.advance()
            try:
                return _number(t.text)
            except (ValueError, ZeroDivisionError) as err:
                raise self.fail(f"bad number {t.text!r}: {err}", t.col) from err
        if t.kind == "name":
            self.advance()
            nxt = self.tok
            if nxt.kind == "op" and nxt.text == "(":
                return self.call(t)
            if t.text in self.symbols:
                return self.symbols[t.text]
            if t.text in CONSTANTS:
                return CONSTANTS[t.text]
            if t.text in self.functions:
                raise self.fail(f"function {t.text!r} must be called, e.g. {t.text}(x)", t.col)
            raise self.fail(f"unknown name {t.text!r}; {self.known()}", t.col)
        if t.kind == "op" and t.text == "(":
            self.advance()
            inner = self.expression()
            self.expect(")", f"to close the '(' at column {t.col}")
            return inner
        raise self.fail(f"expected a number, name or '(', found {_describe(t)}", t.col)

    def call(self, name: _Token):
        fn = self.functions.get(name.text)
        if fn is None:
            what = "a symbol, not a function" if name.text in self.symbols else "not allowed"
            raise self.fail(
                f"{name.text!r} is {what}; callable functions: "
                f"{', '.join(sorted(self.functions))}", name.col)
        open_ = self.advance()
        args = []
        if not (self.tok.kind == "op" and self.tok.text == ")"):
            while True:
                args.append(self.expression())
                if self.tok.kind == "op" and self.tok.text == ",":
                    self.advance()
                    continue
                break
        self.expect(")", f"to close the call of {name.text!r} at column {open_.col}")
        if len(args) < fn.min_args or (fn.max_args is not None and len(args) > fn.max_args):
            raise self.fail(
                f"{name.text}() takes {fn.arity()} argument{'s' if fn.max_args != 1 else ''}, "
                f"got {len(args)}", name.col)
        problem = call_problem(fn.build, args)
        if problem:
            raise self.fail(problem, name.col)
        try:
            result = fn.build(*args)
        except (TypeError, ValueError, ArithmeticError) as err:
            raise self.fail(f"{name.text}() cannot be applied here: {err}", name.col) from err
        return self.finite(result, name.col)

    def apply(self, op: _Token, lhs, rhs):
        o = op.text
        if o in ("^", "**"):
            if _power_too_big(lhs, rhs):
                raise self.fail(
                    f"the power {lhs}^{rhs} would have more than {MAX_POWER_DIGITS} digits",
                    op.col)
            problem = power_problem(lhs, rhs)
            if problem:
                raise self.fail(problem, op.col)
            result = sp.Pow(lhs, rhs)
        elif o == "+":
            result = lhs + rhs
        elif o == "-":
            result = lhs - rhs
        elif o == "*":
            result = lhs * rhs
        else:
            if rhs.is_zero:
                raise self.fail("division by zero", op.col)
            result = lhs / rhs
        return self.finite(result, op.col)

    def finite(self, result, col: int):
        if result.has(sp.zoo, sp.oo, sp.nan) or result.has(-sp.oo):
            raise self.fail("the value is infinite or undefined (division by zero?)", col)
        if result.has(sp.I):
            raise self.fail("the value is complex (square root or log of a negative number?)",
                            col)
        if isinstance(result, sp.Expr) and result.is_number:
            problem = constant_problem(result)
            if problem:
                raise self.fail(problem, col)
        return result

    def known(self) -> str:
        names = sorted(self.symbols)
        consts = sorted(c for c in CONSTANTS if c not in self.symbols)
        s = f"allowed names: {', '.join(names) if names else '(none)'}"
        if consts:
            s += f"; constants: {', '.join(consts)}"
        return s + "; functions: " + ", ".join(sorted(self.functions))


def _describe(t: _Token) -> str:
    if t.kind == "end":
        return "the end of the expression"
    return repr(t.text)


def parse_expression(
    text: str,
    symbols: Mapping[str, sp.Symbol],
    functions: Mapping[str, Function] = ALLOWED,
    *,
    where: str = "expression",
    max_length: int = MAX_LENGTH,
    max_depth: int = MAX_DEPTH,
) -> sp.Expr:
    """Parse ``text`` into a SymPy expression, allowing only whitelisted constructs.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"a*exp(-b*x)"``.
    symbols : mapping of str to sympy.Symbol
        The names the expression may use, and the symbols they stand for.  A declared
        symbol shadows the constants ``pi`` and ``e``.
    functions : mapping of str to Function
        The callable functions (default :data:`ALLOWED`); pass a subset to allow fewer.
    where : str
        Prefix of error messages: the file and key the text came from.
    max_length, max_depth : int
        Limits on the text's length and nesting depth.

    Returns
    -------
    sympy.Expr
        A finite, real-valued-looking expression in the given symbols.

    Raises
    ------
    SpecError
        For anything not in the language: unknown names, unbalanced parentheses, strings,
        attribute access, wrong argument counts, division by zero, over-long or too deeply
        nested text.  The message gives ``where``, the column and a caret line.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x", real=True)
    >>> parse_expression("x/(1+abs(x))", {"x": x})
    x/(Abs(x) + 1)
    >>> parse_expression("-x^2", {"x": x})
    -x**2
    >>> parse_expression("max(0, x) + log(2*pi)", {"x": x})
    Max(0, x) + log(2*pi)
    """
    def fail(message: str, column: int) -> SpecError:
        return expression_error(message, text if isinstance(text, str) else "", column, where)

    if not isinstance(text, str):
        raise SpecError(f"{where}: expected the expression as a string, got "
                        f"{type(text).__name__}")
    if len(text) > max_length:
        raise fail(f"expression longer than {max_length} characters", max_length + 1)
    tokens = _tokenize(text, fail)
    if tokens[0].kind == "end":
        raise SpecError(f"{where}: the expression is empty")
    parser = _Parser(text, tokens, dict(symbols), dict(functions), fail, max_depth)
    try:
        expr = parser.expression()
    except RecursionError as err:  # pragma: no cover - max_depth is far below the limit
        raise fail("expression nested too deeply", 1) from err
    end = parser.tok
    if end.kind != "end":
        if end.kind == "op" and end.text == ")":
            raise fail("unmatched ')'", end.col)
        if end.kind == "op" and end.text == "(":
            raise fail("unexpected '(' (write the operator explicitly, e.g. x*(y+1); only "
                       "allowed functions can be called)", end.col)
        raise fail(f"expected an operator, found {_describe(end)} (write products as a*b)",
                   end.col)
    if not isinstance(expr, sp.Expr):  # pragma: no cover - every node is an Expr
        raise SpecError(f"{where}: not a scalar expression")
    problem = constant_problem(expr)  # e.g. a coefficient 10^309 gathered from a product
    if problem:
        raise SpecError(f"{where}: {problem}")
    return expr
