"""The op tables: one rule per op class and back end, filled next to each op.

Every op kit (:mod:`symnn.ops.linear`, :mod:`~symnn.ops.elementwise`,
:mod:`~symnn.ops.softmax`, :mod:`~symnn.ops.reduce`, :mod:`~symnn.ops.penalty`) declares
its op's dataclass with :func:`op_class` and registers its rules with :func:`register`
(or the :func:`rule` decorator) in the same module.  The drivers — reverse and forward mode
(:mod:`symnn.derive`), the NumPy reference (:mod:`symnn.codegen.reference`), the SymPy
instantiation (:mod:`symnn.derive.expanded`) and the printers — look rules up here by
``type(op)``; none of them names an op class.

=============  =====================================================================
table          rule signature
=============  =====================================================================
``VJP``        ``(builder, op, g, active) -> [(input Var, cotangent), ...]``
``JVP``        ``(builder, op, tangents) -> tangent Var or None``
``NUMPY``      ``(op, env, B) -> ndarray`` (batched NumPy evaluation)
``SYMPY``      ``(op, env, B) -> object ndarray`` (SymPy scalars, per sample)
``EQUATION``   ``(op, ctx) -> equation or None`` (``ctx``: the printer's context)
``TEXT``       ``(op) -> str``: the right-hand side of ``Program.__str__``'s line
``DESCRIBE``   ``(op) -> str``: a short description, ``"z1 = W1 x + b1"``
=============  =====================================================================

Cross-family rules build other families' ops through :data:`op` (``op.Map(...)``), which
looks the class up when the rule runs; so the kits import none of each other.

Examples
--------
>>> import symnn.ops
>>> missing()
{}
>>> sorted(TABLES)
['DESCRIBE', 'EQUATION', 'JVP', 'NUMPY', 'SYMPY', 'TEXT', 'VJP']
"""

from __future__ import annotations

from typing import Callable

from symnn.errors import DerivationError

__all__ = [
    "VJP",
    "JVP",
    "NUMPY",
    "SYMPY",
    "EQUATION",
    "TEXT",
    "DESCRIBE",
    "TABLES",
    "OPS",
    "op",
    "op_class",
    "register",
    "rule",
    "missing",
    "describe",
]

#: Reverse mode: vector-Jacobian products.
VJP: dict[type, Callable] = {}
#: Forward mode: Jacobian-vector products.
JVP: dict[type, Callable] = {}
#: Batched NumPy evaluation (the uncompiled reference).
NUMPY: dict[type, Callable] = {}
#: Per-sample evaluation on SymPy scalars (the expanded forms).
SYMPY: dict[type, Callable] = {}
#: The printed equation (Unicode text and TeX).
EQUATION: dict[type, Callable] = {}
#: The readable line of ``Program.__str__``.
TEXT: dict[type, Callable] = {}
#: A short description (a comment in generated code).
DESCRIBE: dict[type, Callable] = {}

#: Every table, by name.
TABLES: dict[str, dict[type, Callable]] = {
    "VJP": VJP,
    "JVP": JVP,
    "NUMPY": NUMPY,
    "SYMPY": SYMPY,
    "EQUATION": EQUATION,
    "TEXT": TEXT,
    "DESCRIBE": DESCRIBE,
}

#: Every op class declared with :func:`op_class`, by name.
OPS: dict[str, type] = {}


def op_class(cls: type) -> type:
    """Class decorator: declare an op class (so :data:`op` and :func:`missing` know it)."""
    OPS[cls.__name__] = cls
    return cls


class _OpNamespace:
    """``op.Map`` is the op class named ``Map``, looked up when used."""

    def __getattr__(self, name: str) -> type:
        try:
            return OPS[name]
        except KeyError:
            raise DerivationError(f"no op class named {name!r} is declared") from None

    def __dir__(self):
        return sorted(OPS)


#: The declared op classes by attribute: ``op.Map``, ``op.SumComp`` ….
op = _OpNamespace()


def register(cls: type, **rules: Callable) -> None:
    """Enter the rules of op class ``cls``: ``register(Dot, vjp=…, jvp=…, numpy=…)``.

    Keyword names are the table names in lower case.
    """
    for key, fn in rules.items():
        table = TABLES.get(key.upper())
        if table is None:
            raise DerivationError(f"register: no table {key!r}; tables: {sorted(TABLES)}")
        table[cls] = fn


def rule(table: dict, cls: type) -> Callable:
    """Decorator form of :func:`register`: ``@rule(VJP, Affine)`` above the rule."""

    def deco(fn: Callable) -> Callable:
        table[cls] = fn
        return fn

    return deco


def missing(classes=None) -> dict[str, list[str]]:
    """``{table name: [op classes without a rule]}`` (empty when every table is full).

    ``classes`` defaults to every declared op class (:data:`OPS`).
    """
    classes = list(OPS.values()) if classes is None else list(classes)
    out = {}
    for name, table in TABLES.items():
        gaps = [c.__name__ for c in classes if c not in table]
        if gaps:
            out[name] = gaps
    return out


def describe(o) -> str:
    """A one-line description of op ``o`` (at most 100 characters)."""
    fn = DESCRIBE.get(type(o))
    text = fn(o) if fn is not None else generic_text(o, f"{o.out.name} = ")
    text = " ".join(text.split())
    return text if len(text) <= 100 else text[:97] + "..."


def generic_text(o, prefix: str = "") -> str:
    """``prefix + Name(inputs)``: the form of an op with no rule of its own."""
    return f"{prefix}{type(o).__name__}({', '.join(v.name for v in o.inputs)})"
