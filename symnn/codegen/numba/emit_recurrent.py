"""The row ops of recurrent layers (:mod:`symnn.ops.recurrent`) as plain copy loops.

Like the convolution emitters, each walks the batch (``i``) and, when its output carries
tangent directions, the directions (``k``); an input without directions is read without
``k``.  An op whose output is a sum computed in place (``w.acc``) adds into it: the
cotangent of a sequence is the sum of its rows' ``RecRowT`` values, each adding its row.
"""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.emit_conv import _at, _clear, _open, _store
from symnn.codegen.numba.writer import KernelWriter, emits

__all__ = ["emit_rec_row", "emit_rec_rowt", "emit_rec_stack", "emit_rec_stop"]


def _copy(w: KernelWriter, o, n_o: int, o_at: str, x, n_x: int, x_at: str, n: int,
          d: int) -> None:
    w.b(f"for j in range({n}):", d)
    w.b(f"{_at(o, n_o, plus_j(o_at))} {_store(w)} {_at(x, n_x, plus_j(x_at))}", d + 1)


def plus_j(base: str) -> str:
    return "j" if base == "0" else f"{base} + j"


@emits(P.RecRow)
def emit_rec_row(w: KernelWriter, op: P.RecRow) -> None:
    x, o = w.slot(op.x), w.slot(op.out)
    n = op.out.size
    d = _open(w, o)
    _copy(w, o, n, "0", x, op.x.size, str(op.t * n), n, d)


@emits(P.RecRowT)
def emit_rec_rowt(w: KernelWriter, op: P.RecRowT) -> None:
    g, o = w.slot(op.g), w.slot(op.out)
    n = op.g.size
    _clear(w, o, op.out.size)
    d = _open(w, o)
    _copy(w, o, op.out.size, str(op.t * n), g, n, "0", n, d)


@emits(P.RecStack)
def emit_rec_stack(w: KernelWriter, op: P.RecStack) -> None:
    o = w.slot(op.out)
    n = op.rows[0].size
    d = _open(w, o)
    for t, h in enumerate(op.rows):
        _copy(w, o, op.out.size, str(t * n), w.slot(h), n, "0", n, d)


@emits(P.RecStop)
def emit_rec_stop(w: KernelWriter, op: P.RecStop) -> None:
    h, o = w.slot(op.h), w.slot(op.out)
    n = op.out.size
    d = _open(w, o)
    _copy(w, o, n, "0", h, n, "0", n, d)
