"""Reductions and sums: ``Dot`` (row dot products), ``SumComp`` (sum of components),
``BatchMean`` (mean over the batch) and ``Add`` (elementwise sums of values)."""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.slots import Slot
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError

__all__ = ["emit_dot", "emit_sumcomp", "emit_batchmean", "emit_add"]


@emits(P.Dot)
def emit_dot(w: KernelWriter, op: P.Dot) -> None:
    u, v, o = w.slot(op.u), w.slot(op.v), w.slot(op.out)
    if op.u.size != op.v.size:
        raise CompileError(f"Dot of sizes {op.u.size} and {op.v.size}")
    K = "K" if o.is_k else "1"
    w.b(f"_rowdot({u.arr}, {u.off}, {int(u.is_k)}, {v.arr}, {v.off}, {int(v.is_k)}, "
        f"B, {K}, {op.u.size}, {o.arr}, {o.off})")


@emits(P.SumComp)
def emit_sumcomp(w: KernelWriter, op: P.SumComp) -> None:
    u, o = w.slot(op.u), w.slot(op.out)
    w.b(f"_rowsum({u.arr}, {u.off}, {w.rows(u)}, {op.u.size}, {o.arr}, {o.off})")


@emits(P.BatchMean)
def emit_batchmean(w: KernelWriter, op: P.BatchMean) -> None:
    u, o = w.slot(op.u), w.slot(op.out)
    n = op.u.size
    if o.mode == "total":
        # round 7: _batch_mean, not _total(...) / B (a sum overflowing where the mean is finite)
        w.b(f"{o.arr} = _batch_mean({u.arr}, {u.off}, {'B' if n == 1 else f'B * {n}'}, B)")
        return
    if u.is_k != o.is_k:
        raise CompileError("a batch mean of an ordinary value into a tangent")
    if o.var.size != n:
        raise CompileError(f"batch mean of size {n} into {op.out.name} of size {o.var.size}")
    w.uses_inv_b = True
    cols = ("K" if n == 1 else f"K * {n}") if u.is_k else str(n)
    w.b(f"_colmean({u.arr}, {u.off}, B, {cols}, inv_B, {w.acc}, {o.arr}, {o.off})")


@emits(P.Add)
def emit_add(w: KernelWriter, op: P.Add) -> None:
    o = w.slot(op.out)
    terms = [w.slot(t) for t in op.terms]
    if o.mode == "total":
        w.b(f"{o.arr} = " + " + ".join(t.arr for t in terms))
        return
    n = op.out.size
    size = {"paramK": f"K * {n}", "totalK": "K", "param": str(n)}.get(
        o.mode, f"{w.rows(o)} * {n}")
    same = all(t.n == n and t.is_k == o.is_k for t in terms)
    acc = w.acc
    if same and len(terms) >= 2:
        first, second = terms[0], terms[1]
        w.b(f"_add2({first.arr}, {first.off}, {second.arr}, {second.off}, "
            f"{o.arr}, {o.off}, {size}, {acc})")
        for t in terms[2:]:
            w.b(f"_add2({t.arr}, {t.off}, {o.arr}, {o.off}, {o.arr}, {o.off}, {size}, 0)")
        return
    op_ = "+=" if acc else "="
    if same:
        t = terms[0]
        w.b(f"for q in range({size}):")
        w.b(f"{o.at('q')} {op_} {t.at('q')}", 2)
        return
    _add_broadcast(w, o, terms, n)


def _add_broadcast(w: KernelWriter, o: Slot, terms: list[Slot], n: int) -> None:
    """A sum with mixed sizes (size-1 terms broadcast) or directions: a loop."""
    op_ = "+=" if w.acc else "="
    if o.mode in ("param", "paramK", "totalK"):
        w.b("for k in range(K):" if o.is_k else "for k in range(1):")
        w.b(f"for j in range({n}):", 2)
        parts = []
        for t in terms:
            c = "j" if t.n > 1 else "0"
            parts.append(t.at(f"k * {t.n} + {c}") if t.is_k else t.at(c))
        tgt = o.at(f"k * {n} + j") if o.is_k else o.at("j")
        w.b(f"{tgt} {op_} " + " + ".join(parts), 3)
        return
    w.b("for i in range(B):")
    w.b("for k in range(K):" if o.is_k else "for k in range(1):", 2)
    w.b(f"for j in range({n}):", 3)
    parts = []
    for t in terms:
        c = " + j" if t.n > 1 else ""
        parts.append(t.at(f"(i * K + k) * {t.n}{c}" if t.is_k else f"i * {t.n}{c}"))
    tgt = o.at(f"(i * K + k) * {n} + j" if o.is_k else f"i * {n} + j")
    w.b(f"{tgt} {op_} " + " + ".join(parts), 4)
