"""The kernel writer: one entry function's storage plan, one block of code per op (from
the emitter table :data:`EMITTERS`), and its assembly into lines.

An emitter is a free function ``emit_x(w, op)`` registered for its op type with
``@emits(OpType)``; it writes lines through the writer ``w`` (``w.b(text, indent)``), reads
where values live with ``w.slot(var)`` and adds into its output when ``w.acc`` is 1 (the
op is a later term of a sum computed in place, :func:`~symnn.codegen.numba.passes.sum_plan`).
"""

from __future__ import annotations

from typing import Callable

import sympy as sp

from symnn import ops as P
from symnn.codegen.numba.passes import (
    deferred_biases,
    softmax_lse_pairs,
    sum_plan,
    tangent_means,
)
from symnn.codegen.numba.slots import RESERVED, Slot, ident
from symnn.codegen.printer import KernelPrinter
from symnn.errors import CompileError

__all__ = ["EMITTERS", "emits", "KernelWriter"]

#: Code generation rules, one per op type: ``{op class: emit(w, op)}`` (see :func:`emits`).
EMITTERS: dict[type, Callable] = {}


def emits(op_type: type):
    """Register the decorated ``emit(w, op)`` as the code generation rule of ``op_type``."""

    def register(fn):
        EMITTERS[op_type] = fn
        return fn

    return register


class KernelWriter:
    """Writes one entry function: storage plan, one block of code per op, epilogue."""

    def __init__(self, gen, kind: str, fname: str):
        self.gen = gen
        self.kind = kind
        self.fname = fname
        self.slots: dict[P.Var, Slot] = {}
        self.kvars: set[P.Var] = set()
        self.printer = KernelPrinter(gen.dtype, gen.fast)
        self.names: set[str] = set(RESERVED)
        self.units = {"B": 0, "BK": 0, "K": 0, "one": 0}
        self.offsets: list[tuple[str, str]] = []
        self.body: list = []  # code lines and ("op", description) markers
        self.values: dict[sp.Expr, tuple[sp.Symbol, P.Var]] = {}
        self.uses_inv_b = False
        self.pre: list[str] = []  # code run before the ops (unpacking directions …)
        self.acc = 0  # 1 while emitting an op that adds into its output (see sum_plan)
        self.shared: set = set()  # values stored in an in-place sum's storage
        self.deferred: dict = {}  # affine value → Slot of the bias added where it is read
        self.means: dict = {}  # tangent value → BatchMean ops summed in its Map's loop
        self.pairs: dict = {}  # Softmax/LogSumExp → its partner sharing the pass
        self.skip: set = set()  # ops whose code is written by another op's (or none)
        self.rows_used: set = set()  # row offset locals a Map loop needs

    # -- utilities -------------------------------------------------------------------------
    def lit(self, v: float) -> str:
        return self.printer.literal(v)

    def fresh(self, base: str) -> str:
        name = ident(base)
        cand, i = name, 2
        while cand in self.names:
            cand = f"{name}_{i}"
            i += 1
        self.names.add(cand)
        return cand

    def slot(self, v: P.Var) -> Slot:
        try:
            return self.slots[v]
        except KeyError:
            raise CompileError(f"value {v.name!r} is read before it is computed") from None

    def b(self, text: str, indent: int = 1) -> None:
        self.body.append("    " * indent + text)

    def rows(self, s: Slot) -> str:
        return "B * K" if s.is_k else "B"

    def carve(self, name: str, unit: str, n: int) -> str:
        """Reserve ``n`` floats per unit (B, B·K, K or one) of the work buffer."""
        size = {"B": f"B * {n}", "BK": f"B * K * {n}", "K": f"K * {n}", "one": f"{n}"}[unit]
        off = self.fresh("o_" + name)
        self.offsets.append((off, size))
        self.units[unit] += n
        return off

    def alloc(self, v: P.Var, k: bool) -> Slot:
        if v.kind == "total" and not k:
            return Slot(v, "total", self.fresh(v.name))
        if v.per_sample:
            unit, mode = ("BK", "sampleK") if k else ("B", "sample")
        elif v.kind == "total":
            unit, mode = "K", "totalK"
        else:
            unit, mode = ("K", "paramK") if k else ("one", "param")
        return Slot(v, mode, "work", self.carve(v.name, unit, v.size))

    # -- driver ----------------------------------------------------------------------------
    def write(self, ops, seeds: dict, fixed: dict, header: list[str], epilogue, args, doc):
        """Plan storage for ``ops``, emit their code; returns the function's lines."""
        self.slots.update(seeds)
        for op in ops:
            if any(v in self.kvars for v in op.inputs):
                self.kvars.add(op.out)
        keep = set(fixed) | set(seeds)
        plan, dropped = sum_plan(ops, self.kvars, keep)
        # values whose storage is shared with an in-place sum: later terms add into it, so
        # no later Map may read them in place of recomputing their body (see remember)
        self.shared = set(plan)
        self._place(ops, plan, dropped, fixed)
        self.pairs = softmax_lse_pairs(ops)
        self.skip = set(dropped)
        biases = deferred_biases(ops, plan, keep, dropped, self.gen.identity_tangents)
        self.deferred = {v: self.slot(bias) for v, bias in biases.items()}
        self.means = tangent_means(ops, self.skip, self.kvars, plan)
        for op in ops:
            if op not in self.skip:  # (an emitter may add a later op: softmax pairs)
                self._emit(op, plan[op.out][1] if op.out in plan else 0)
        return self._lines(header, epilogue, args, doc)

    def _place(self, ops, plan: dict, dropped: set, fixed: dict) -> None:
        """Storage for every value: its own, or the in-place sum's it is a term of."""
        for op in ops:
            if op in dropped or op.out in self.slots:
                continue
            target = plan[op.out][0] if op.out in plan else op.out
            if target not in self.slots:
                self.slots[target] = fixed.get(target) or self.alloc(target, target in self.kvars)
            self.slots[op.out] = self.slots[target]

    def _emit(self, op: P.Op, acc: int) -> None:
        desc = P.describe(op)
        self.body.append(("op", desc))
        self.acc = acc
        try:
            rule = EMITTERS.get(type(op))
            if rule is None:
                raise CompileError(
                    f"no code generation rule for {type(op).__name__}; add one to "
                    "symnn.codegen.numba.EMITTERS"
                )
            rule(self, op)
        except CompileError as err:
            raise CompileError(f"kernel {self.fname}, op {desc}: {err}") from err
        except Exception as err:
            raise CompileError(
                f"kernel {self.fname}: generating the code of op {desc} failed: "
                f"{type(err).__name__}: {err}"
            ) from err

    def _lines(self, header: list[str], epilogue, args, doc) -> list[str]:
        """The function: signature, header, work offsets, pre-code, ops' code, epilogue."""
        # the buffer argument is ``work_in``; ``work`` is defined once from it (_workspace)
        params = ", ".join("work_in" if a == "work" else a for a in args)
        lines = [
            '@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)',
            f"def {self.fname}({params}):",
            f'    """{doc}"""',
        ]
        lines += ["    " + h for h in header]
        if self.uses_inv_b:
            lines.append("    inv_B = _f(1.0) / _f(B)")
        prev = "0"
        for off, size in self.offsets:
            lines.append(f"    {off} = {prev}")
            prev = f"{off} + {size}"
        self.work_units = dict(self.units)
        # a buffer too small is replaced by a NaN-filled one, so that a read before a write
        # shows (see CompiledModel(debug=True))
        lines.append(f"    work = _workspace(work_in, {prev})")
        lines += ["    " + ln for ln in self.pre]
        self.op_starts = []
        for item in self.body:
            if isinstance(item, tuple):
                self.op_starts.append((len(lines), item[1]))
                lines.append(f"    # {item[1]}")
            else:
                lines.append(item)
        lines += ["    " + ln for ln in epilogue(self)]
        return lines
