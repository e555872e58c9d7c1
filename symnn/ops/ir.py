"""The derived program: a small typed IR of array operations over one batch.

A :class:`Program` is a straight-line list of operations.  Its values are
:class:`Var` objects of four kinds:

``input`` / ``target``
    per-sample vectors (batched as ``(B, size)``) given by the caller (``x``, ``y``);
``sample``
    per-sample vectors computed by the program (``z1``, ``a1``, ``delta1``); a per-sample
    *scalar* is a sample vector of size 1;
``param``
    model parameters and their gradients, of fixed ``shape`` (``W1`` is ``(n1, n0)``);
``total``
    scalars of the whole batch (the loss ``L``).

Every operation has one output and reads earlier values.  The same program is consumed by
four back ends that never talk to each other: the printers (equations), the symbolic
instantiation (:mod:`symnn.derive.expanded`), the NumPy reference evaluator and the Numba
code generator.  Each back end finds its rule for an op in the tables of
:mod:`symnn.ops.registry`, filled by the op kits (one module per family of ops).

Batch convention: per-sample operations act on each sample; the loss of a batch is the mean
of the per-sample losses, and parameter gradients are batch means.

This module holds what every kit shares: the values (:class:`Var`, :class:`Arg`), the op
base class, the :class:`Program` and the :class:`Builder` that appends ops to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Iterable

import sympy as sp

from symnn.ops import registry as R

__all__ = ["Var", "Arg", "Op", "Program", "superscript", "sym", "Builder"]

_SUPERSCRIPT = str.maketrans("0123456789-+()L", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺⁽⁾ᴸ")


def superscript(text: str) -> str:
    """Unicode superscript of a short label: ``superscript("(2)") == "⁽²⁾"``."""
    return text.translate(_SUPERSCRIPT)


@dataclass(frozen=True)
class Var:
    """A named array value of a program.

    Parameters
    ----------
    name : str
        Identifier used in generated code (``"z1"``, ``"W2"``, ``"gW2"``).
    kind : {"input", "target", "sample", "param", "total", "mask"}
        (``mask``: a per-sample value given by the caller, a Dropout layer's mask)
    shape : tuple of int
        Per-sample shape ``(size,)`` for input/target/sample values; the full shape for
        params (``()`` for a scalar parameter); ``()`` for totals.
    tex, text : str
        LaTeX and Unicode display names (``z^{(1)}`` / ``z⁽¹⁾``).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    tex: str = ""
    text: str = ""

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def per_sample(self) -> bool:
        return self.kind in ("input", "target", "sample", "mask")

    def __repr__(self) -> str:
        return f"Var({self.name!r}, {self.kind}, {self.shape})"


@dataclass(frozen=True)
class Arg:
    """Binding of a scalar symbol in a :class:`Map` body to (part of) a value.

    ``index=None`` binds elementwise: component ``k`` of the output reads component ``k``
    of a vector of the output's size, or the only component of a size-1 value (broadcast).
    An integer ``index`` reads that fixed component (flat index for params).
    """

    symbol: sp.Symbol
    var: Var
    index: int | None = None


class Op:
    """Base class of program operations.  ``out`` is the value written.

    A concrete op is a frozen dataclass declared in an op kit with
    :func:`symnn.ops.registry.op_class`; its rules live in the registry's tables.
    """

    out: Var

    @property
    def inputs(self) -> tuple[Var, ...]:
        raise NotImplementedError

    def fingerprint_line(self) -> str:
        """The op's exact line in :meth:`Program.fingerprint`."""
        return f"{self.out.name}{self.out.shape} = " + R.generic_text(self)

    def renamed(self, mapping: dict) -> "Op":
        """A copy with its values renamed (``mapping``: old Var → new Var)."""

        def sub(v):
            if isinstance(v, Var):
                return mapping.get(v, v)
            if isinstance(v, Arg):
                return Arg(v.symbol, mapping.get(v.var, v.var), v.index)
            if isinstance(v, tuple):
                return tuple(sub(x) for x in v)
            return v

        changes = {f.name: sub(getattr(self, f.name)) for f in fields(self)}  # (labels too)
        return replace(self, **changes)


@dataclass
class Program:
    """A straight-line derived program.

    Attributes
    ----------
    ops : list of Op
    inputs : dict
        Named entry values: ``{"x": Var, "y": Var, "W1": Var, ...}``.
    outputs : dict
        Named results: ``{"loss": Var, "prediction": Var, "grad:W1": Var, ...}``.
    """

    ops: list[Op] = field(default_factory=list)
    inputs: dict[str, Var] = field(default_factory=dict)
    outputs: dict[str, Var] = field(default_factory=dict)

    def producer(self) -> dict[Var, Op]:
        return {op.out: op for op in self.ops}

    def consumers(self) -> dict[Var, list[Op]]:
        uses: dict[Var, list[Op]] = {}
        for op in self.ops:
            for v in op.inputs:
                uses.setdefault(v, []).append(op)
        return uses

    def needed(self, outputs: Iterable[Var]) -> "Program":
        """A copy keeping only the ops that the given outputs depend on."""
        prod = self.producer()
        need: set[Var] = set()
        stack = list(outputs)
        while stack:
            v = stack.pop()
            if v in need:
                continue
            need.add(v)
            if v in prod:
                stack.extend(prod[v].inputs)
        ops = [op for op in self.ops if op.out in need]
        return Program(ops, dict(self.inputs), dict(self.outputs))

    def fingerprint(self) -> str:
        """A stable text form of the program (used to key the kernel cache)."""
        lines = []
        for op in self.ops:
            lines.append(op.fingerprint_line())
        lines.append("in:" + ",".join(f"{k}={v.name}{v.shape}" for k, v in self.inputs.items()))
        lines.append("out:" + ",".join(f"{k}={v.name}" for k, v in self.outputs.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        """The program as readable lines, one per op: ``z1[3] = W1·x + b1``.

        (``fingerprint()`` is the exact, machine-oriented form.)
        """
        def decl(v: Var) -> str:
            return f"{v.name}{list(v.shape) if v.shape else ''}"

        lines = ["inputs:  " + ", ".join(decl(v) for v in self.inputs.values())]
        lines.extend(_op_str(op) for op in self.ops)
        lines.append("outputs: " + ", ".join(
            k if k == v.name else f"{k} = {v.name}" for k, v in self.outputs.items()))
        return "\n".join(lines)


def _op_str(op: Op) -> str:
    """One readable line for an op (used by ``Program.__str__``)."""
    o = op.out
    lhs = f"{o.name}{list(o.shape) if o.shape else ''}"
    fn = R.TEXT.get(type(op))
    rhs = fn(op) if fn is not None else R.generic_text(op)
    return f"{lhs} = {rhs}"


def sym(var: Var, index: int | None = None) -> sp.Symbol:
    """The canonical real scalar symbol standing for (a component of) ``var`` in Map bodies."""
    if index is None:
        return sp.Symbol(var.name, real=True)
    return sp.Symbol(f"{var.name}_{index}", real=True)


@dataclass
class Builder:
    """Accumulates ops; hands out fresh temporary names."""

    prog: Program = field(default_factory=Program)
    counter: int = 0
    meta: dict = field(default_factory=dict)

    def temp(self, shape, kind="sample", prefix="t") -> Var:
        self.counter += 1
        name = f"{prefix}{self.counter}"
        return Var(name, kind, tuple(shape), tex=name, text=name)

    def emit(self, op: Op) -> Var:
        self.prog.ops.append(op)
        return op.out

    def map_elementwise(self, out: Var, expr: sp.Expr, vars_: list[Var], **kw) -> Var:
        args = tuple(Arg(sym(v), v) for v in vars_)
        return self.emit(R.op.Map(out, (expr,), args, **kw))
