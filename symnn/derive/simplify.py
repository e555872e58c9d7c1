"""Program simplification: fusing elementwise maps.

``fuse_maps`` inlines a :class:`Map` whose output is read by exactly one other Map into that
Map's body, so ``t = −y; δ = p + t`` becomes ``δ = p − y``.  The derivation fuses only its
own temporaries (the printed equations keep the textbook's named steps); code generation
fuses everything it is not asked to keep.
"""

from __future__ import annotations

import re
from dataclasses import replace

import sympy as sp

from symnn import ops as P

__all__ = ["fuse_maps", "is_temp"]

_TEMP = re.compile(r"^t\d+$")


def is_temp(var: P.Var) -> bool:
    """True for the derivation's unnamed temporaries (``t12``)."""
    return bool(_TEMP.match(var.name))


def _inlinable(inner: P.Map, binding: P.Arg, consumer: P.Map) -> bool:
    if len(inner.exprs) != 1 or binding.index is not None:
        return False
    n_out = consumer.out.size
    t = inner.out
    if t.size not in (n_out, 1):
        return False
    for a in inner.args:
        if a.index is not None and a.var.kind != "param":
            return False
        if a.index is None and a.var.per_sample and a.var.size not in (t.size, 1):
            return False
        if t.size == 1 and n_out > 1 and a.index is None and a.var.size != 1:
            return False
    return True


def fuse_maps(ops: list[P.Op], keep: set, only_temps: bool = False) -> list[P.Op]:
    """Inline single-use Maps into the Map that reads them.

    Parameters
    ----------
    ops : list of Op
    keep : set of Var
        Values that must stay materialised (program outputs, values read later).
    only_temps : bool
        Fuse only unnamed temporaries (see :func:`is_temp`).
    """
    ops = list(ops)
    changed = True
    while changed:
        changed = False
        uses: dict[P.Var, int] = {}
        for op in ops:
            for v in op.inputs:
                uses[v] = uses.get(v, 0) + 1
        producers = {op.out: i for i, op in enumerate(ops)}
        for ci, cons in enumerate(ops):
            if not isinstance(cons, P.Map):
                continue
            for binding in cons.args:
                v = binding.var
                pi = producers.get(v)
                if pi is None or pi >= ci or v in keep or uses.get(v, 0) != 1:
                    continue
                inner = ops[pi]
                if not isinstance(inner, P.Map) or (only_temps and not is_temp(v)):
                    continue
                if not _inlinable(inner, binding, cons):
                    continue
                ops[ci] = _inline(inner, binding, cons)
                del ops[pi]
                changed = True
                break
            if changed:
                break
    return ops


def _inline(inner: P.Map, binding: P.Arg, cons: P.Map) -> P.Map:
    taken = {a.symbol: (a.var, a.index) for a in cons.args if a.symbol != binding.symbol}
    ren = {}
    new_args = [a for a in cons.args if a.symbol != binding.symbol]
    for a in inner.args:
        if a.symbol in taken and taken[a.symbol] != (a.var, a.index):
            fresh = sp.Symbol(a.symbol.name + "_", real=True)
            while fresh in taken:
                fresh = sp.Symbol(fresh.name + "_", real=True)
            ren[a.symbol] = fresh
            new_args.append(P.Arg(fresh, a.var, a.index))
            taken[fresh] = (a.var, a.index)
        elif a.symbol not in taken:
            new_args.append(a)
            taken[a.symbol] = (a.var, a.index)
    body = inner.exprs[0].xreplace(ren)
    exprs = tuple(e.xreplace({binding.symbol: body}) for e in cons.exprs)
    used = set().union(*(sp.sympify(e).free_symbols for e in exprs))
    new_args = tuple(a for a in new_args if a.symbol in used)
    return replace(cons, exprs=exprs, args=new_args)
