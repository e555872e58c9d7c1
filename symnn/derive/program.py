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
code generator.  Elementwise work is a :class:`Map` whose body is a SymPy scalar
expression; its derivatives come from ``sympy.diff`` of that body.

Batch convention: per-sample operations act on each sample; the loss of a batch is the mean
of the per-sample losses, and parameter gradients are batch means (:class:`BatchMean`,
:class:`OuterMean`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import sympy as sp

__all__ = [
    "Var",
    "Arg",
    "Op",
    "Affine",
    "MatTVec",
    "Map",
    "Softmax",
    "LogSumExp",
    "Dot",
    "SumComp",
    "BatchMean",
    "OuterMean",
    "Add",
    "Penalty",
    "Program",
]

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
    kind : {"input", "target", "sample", "param", "total"}
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
        return self.kind in ("input", "target", "sample")

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
    """Base class of program operations.  ``out`` is the value written."""

    out: Var

    @property
    def inputs(self) -> tuple[Var, ...]:
        raise NotImplementedError


@dataclass(frozen=True)
class Affine(Op):
    """``out = W a + b`` per sample (``b`` optional)."""

    out: Var
    W: Var
    a: Var
    b: Var | None = None

    @property
    def inputs(self):
        return (self.W, self.a) + ((self.b,) if self.b is not None else ())


@dataclass(frozen=True)
class MatTVec(Op):
    """``out = Wᵀ g`` per sample: the adjoint of the linear map ``a ↦ W a``."""

    out: Var
    W: Var
    g: Var

    @property
    def inputs(self):
        return (self.W, self.g)


@dataclass(frozen=True)
class Map(Op):
    """Elementwise (or per-component) scalar expressions.

    ``exprs`` holds one SymPy expression used for every output component, or one per
    component.  ``args`` binds the free symbols of the expressions to values (see
    :class:`Arg`).  ``role`` and ``label`` are display hints for the printers
    (e.g. ``role="act_grad"`` with ``label`` the derivative factor's name).
    """

    out: Var
    exprs: tuple[sp.Expr, ...]
    args: tuple[Arg, ...]
    role: str = ""
    label: tuple = field(default=(), compare=False)

    @property
    def inputs(self):
        seen: list[Var] = []
        for a in self.args:
            if a.var not in seen:
                seen.append(a.var)
        return tuple(seen)

    def expr_for(self, k: int) -> sp.Expr:
        return self.exprs[0] if len(self.exprs) == 1 else self.exprs[k]


@dataclass(frozen=True)
class Softmax(Op):
    """``out = exp(z) / Σ exp(z)`` per sample (computed stably)."""

    out: Var
    z: Var

    @property
    def inputs(self):
        return (self.z,)


@dataclass(frozen=True)
class LogSumExp(Op):
    """``out = log Σ_k exp(z_k)`` per sample (size-1 output; computed stably)."""

    out: Var
    z: Var

    @property
    def inputs(self):
        return (self.z,)


@dataclass(frozen=True)
class Dot(Op):
    """``out = Σ_k u_k v_k`` per sample (size-1 output)."""

    out: Var
    u: Var
    v: Var

    @property
    def inputs(self):
        return (self.u, self.v)


@dataclass(frozen=True)
class SumComp(Op):
    """``out = Σ_k u_k`` per sample (size-1 output)."""

    out: Var
    u: Var

    @property
    def inputs(self):
        return (self.u,)


@dataclass(frozen=True)
class BatchMean(Op):
    """``out = (1/B) Σ_s u_s``: a per-sample value averaged over the batch.

    The output is a ``param``-kind gradient (shape of the parameter it belongs to) or the
    ``total`` loss.
    """

    out: Var
    u: Var

    @property
    def inputs(self):
        return (self.u,)


@dataclass(frozen=True)
class OuterMean(Op):
    """``out = (1/B) Σ_s u_s v_sᵀ`` (shape ``(len(u), len(v))``)."""

    out: Var
    u: Var
    v: Var

    @property
    def inputs(self):
        return (self.u, self.v)


@dataclass(frozen=True)
class Add(Op):
    """``out = Σ terms`` (all of the same kind and shape; size-1 terms broadcast)."""

    out: Var
    terms: tuple[Var, ...]

    @property
    def inputs(self):
        return self.terms


@dataclass(frozen=True)
class Penalty(Op):
    """A regularisation term on a parameter: ``out = coef · Σ θ²`` (L2) or ``coef · Σ |θ|`` (L1).

    When ``grad`` is true the op is instead the penalty's gradient with respect to θ
    (``2 coef θ`` or ``coef sign(θ)``), of θ's shape.  ``indices`` restricts the penalty
    to those flat components of θ (``None``: all).
    """

    out: Var
    param: Var
    kind: str
    coef: sp.Rational | sp.Float
    grad: bool = False
    indices: tuple[int, ...] | None = None

    @property
    def inputs(self):
        return (self.param,)


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
            lines.append(_op_repr(op))
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
    if isinstance(op, Affine):
        rhs = f"{op.W.name}·{op.a.name}" + (f" + {op.b.name}" if op.b is not None else "")
    elif isinstance(op, MatTVec):
        rhs = f"{op.W.name}ᵀ·{op.g.name}"
    elif isinstance(op, Map):
        sub = {a.symbol: sp.Symbol(a.var.name if a.index is None else f"{a.var.name}[{a.index}]")
               for a in op.args}
        bodies = [str(e.xreplace(sub)) for e in op.exprs]
        rhs = bodies[0] if len(bodies) == 1 else "[" + ", ".join(bodies) + "]"
        if len(op.exprs) == 1 and any(a.index is None and a.var.size > 1 for a in op.args):
            rhs += "   (elementwise)"
    elif isinstance(op, Softmax):
        rhs = f"softmax({op.z.name})"
    elif isinstance(op, LogSumExp):
        rhs = f"logsumexp({op.z.name})"
    elif isinstance(op, Dot):
        rhs = f"{op.u.name}ᵀ·{op.v.name}"
    elif isinstance(op, SumComp):
        rhs = f"sum({op.u.name})"
    elif isinstance(op, BatchMean):
        rhs = f"mean over batch({op.u.name})"
    elif isinstance(op, OuterMean):
        rhs = f"mean over batch({op.u.name}·{op.v.name}ᵀ)"
    elif isinstance(op, Add):
        rhs = " + ".join(t.name for t in op.terms)
    elif isinstance(op, Penalty):
        part = op.param.name + ("" if op.indices is None else f"[{list(op.indices)}]")
        coef = op.coef * 2 if op.grad and op.kind == "l2" else op.coef
        c = f"({coef})" if "/" in str(coef) else str(coef)
        if op.grad:
            rhs = f"{c}·{part}" if op.kind == "l2" else f"{c}·sign({part})"
        else:
            rhs = f"{c}·‖{part}‖²" if op.kind == "l2" else f"{c}·‖{part}‖₁"
    else:
        rhs = f"{type(op).__name__}({', '.join(v.name for v in op.inputs)})"
    return f"{lhs} = {rhs}"


def _op_repr(op: Op) -> str:
    name = type(op).__name__
    if isinstance(op, Map):
        body = "; ".join(sp.srepr(e) for e in op.exprs)
        args = ",".join(
            f"{a.symbol}={a.var.name}" + ("" if a.index is None else f"[{a.index}]")
            for a in op.args
        )
        return f"{op.out.name}{op.out.shape} = Map[{body}]({args})"
    if isinstance(op, Penalty):
        return (
            f"{op.out.name}{op.out.shape} = Penalty[{op.kind},{op.coef},{op.grad},{op.indices}]"
            f"({op.param.name})"
        )
    return f"{op.out.name}{op.out.shape} = {name}({', '.join(v.name for v in op.inputs)})"
