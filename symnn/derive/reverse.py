"""Reverse mode over the program: the driver of the vector-Jacobian rules.

Each op kit (:mod:`symnn.ops`) registers its rule in :data:`symnn.ops.VJP`: it receives
the op and the cotangent ``g`` of its output (a :class:`~symnn.ops.Var`, or a SymPy number
meaning "every component equals this constant") and returns the cotangent contributions of
the op's inputs, emitting the ops that compute them.  This module sweeps the ops backwards,
sums each value's contributions and hands them on.
"""

from __future__ import annotations

import sympy as sp

from symnn import ops as P
from symnn.errors import DerivationError
from symnn.ops import VJP
from symnn.ops.ir import Builder, sym

__all__ = ["VJP_RULES", "reverse", "rename_vars", "active_vars"]

#: The vector-Jacobian rules, keyed by op class (the table :data:`symnn.ops.VJP`).
VJP_RULES = VJP


def _is_const(g) -> bool:
    return not isinstance(g, P.Var)


def _accumulate(b: Builder, var: P.Var, items: list):
    """Sum the cotangent contributions of ``var`` into one Var (or constant)."""
    consts = [c for c in items if _is_const(c)]
    vars_ = [v for v in items if not _is_const(v)]
    const = sp.Add(*consts) if consts else sp.S.Zero
    if not vars_:
        return const
    if len(vars_) == 1 and const == 0:
        return vars_[0]
    if var.kind == "param":
        if const != 0:
            raise DerivationError(f"constant cotangent for parameter {var.name}")
        return b.emit(P.Add(b.temp(var.shape, "param"), tuple(vars_)))
    # a value that arrives twice (the two sides of Dot(c, c)) is one argument, counted twice
    args = tuple(dict.fromkeys(P.Arg(sym(v), v) for v in vars_))
    body = sp.Add(*(sym(v) for v in vars_)) + const
    return b.emit(P.Map(b.temp(var.shape), (body,), args, role="sum"))


def active_vars(prog: P.Program, sources) -> set:
    """Values that depend on any of ``sources``."""
    active = set(sources)
    for op in prog.ops:
        if any(v in active for v in op.inputs):
            active.add(op.out)
    return active


def reverse(b: Builder, seed_var: P.Var, wrt: list[P.Var], forward_ops: list[P.Op]) -> dict:
    """Append to ``b`` the reverse sweep from per-sample ``seed_var`` (cotangent 1).

    Returns ``{var: cotangent}`` for every value reached (``wrt`` params included).
    """
    fwd = P.Program(list(forward_ops))
    active = active_vars(fwd, wrt)
    pending: dict[P.Var, list] = {seed_var: [sp.S.One]}
    result: dict[P.Var, object] = {}
    for op in reversed(forward_ops):
        if op.out not in pending or op.out not in active:
            continue
        g = _accumulate(b, op.out, pending.pop(op.out))
        result[op.out] = g
        if _is_const(g) and g == 0:
            continue
        rule = VJP.get(type(op))
        if rule is None:
            raise DerivationError(
                f"no reverse-mode rule for {type(op).__name__} (computing {op.out.name}); "
                "register one in symnn.ops.VJP"
            )
        for var, c in rule(b, op, g, active):
            if _is_const(c) and c == 0:
                continue
            pending.setdefault(var, []).append(c)
    for var, items in pending.items():
        result[var] = _accumulate(b, var, items)
    return result


def rename_vars(ops: list[P.Op], mapping: dict) -> list[P.Op]:
    """Rename values throughout ``ops`` (``mapping`` old Var → new Var; see
    :meth:`symnn.ops.Op.renamed`)."""
    if not mapping:
        return list(ops)
    return [op.renamed(mapping) for op in ops]
