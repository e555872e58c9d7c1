"""``Softmax`` and ``LogSumExp``: max-shifted, sharing one pass when they read the same
logits (:func:`~symnn.codegen.numba.passes.softmax_lse_pairs`: the pass is written at the
first of the two, and the second is skipped)."""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.slots import Slot
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError

__all__ = ["emit_softmax", "emit_lse"]


@emits(P.Softmax)
def emit_softmax(w: KernelWriter, op: P.Softmax) -> None:
    other = w.pairs.get(op)
    lse = None if other is None else w.slot(other.out)
    if other is not None:
        w.skip.add(other)
    _softmax(w, op.z, w.slot(op.out), lse)


@emits(P.LogSumExp)
def emit_lse(w: KernelWriter, op: P.LogSumExp) -> None:
    other = w.pairs.get(op)
    if other is None:
        _softmax(w, op.z, None, w.slot(op.out))
        return
    w.skip.add(other)
    _softmax(w, other.z, w.slot(other.out), w.slot(op.out))


def _softmax(w: KernelWriter, z: P.Var, p: Slot | None, lse: Slot | None) -> None:
    zs = w.slot(z)
    for s in (p, lse):
        if s is not None and s.is_k != zs.is_k:
            raise CompileError("a softmax and its logits differ in directions")
    what = (1 if p is not None else 0) | (2 if lse is not None else 0)
    pa, po = (p.arr, p.off) if p is not None else (zs.arr, "0")
    la, lo = (lse.arr, lse.off) if lse is not None else (zs.arr, "0")
    w.b(f"_softmax_lse({zs.arr}, {zs.off}, {w.rows(zs)}, {z.size}, {pa}, {po}, "
        f"{la}, {lo}, {what})")
