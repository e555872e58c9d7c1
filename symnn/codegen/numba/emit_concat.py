"""Concatenation and its adjoint (:mod:`symnn.ops.concat`) as plain copy loops."""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.emit_conv import _at, _open, _store
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError

__all__ = ["emit_concat", "emit_slice"]


def _check(op, *slots) -> None:
    for s in slots:
        if s.mode not in ("sample", "sampleK"):
            raise CompileError(f"{op.out.name}: {type(op).__name__} of a {s.mode} value "
                               f"{s.var.name!r}; it joins per-sample vectors only")


@emits(P.Concat)
def emit_concat(w: KernelWriter, op: P.Concat) -> None:
    o = w.slot(op.out)
    parts = [None if p is None else w.slot(p) for p in op.parts]
    _check(op, o, *[p for p in parts if p is not None])
    n = op.out.size
    d = _open(w, o)
    for p, off, m in zip(parts, op.offsets(), op.sizes):
        if p is None and w.acc:
            continue  # adding zeros
        w.b(f"for q in range({m}):", d)
        src = w.lit(0.0) if p is None else _at(p, m, "q")
        w.b(f"{_at(o, n, f'{off} + q' if off else 'q')} {_store(w)} {src}", d + 1)


@emits(P.Slice)
def emit_slice(w: KernelWriter, op: P.Slice) -> None:
    u, o = w.slot(op.u), w.slot(op.out)
    _check(op, u, o)
    m, n = op.out.size, op.u.size
    d = _open(w, o)
    w.b(f"for q in range({m}):", d)
    w.b(f"{_at(o, m, 'q')} {_store(w)} {_at(u, n, f'{op.start} + q' if op.start else 'q')}",
        d + 1)
