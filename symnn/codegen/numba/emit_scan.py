"""The sequence ops looped over time (:mod:`symnn.ops.scan`).

A value is ``(T, d)`` per sample (and per direction ``k`` for a tangent): flat, row-major,
so the rows of step ``t`` of every sample (and direction) form one matrix of ``B`` (or
``B·K``) rows with the stride ``T·d``.  A recurrence is a loop over ``t`` in the kernel:
per step one matrix product over those rows (BLAS ``?gemm`` with strides above the size
threshold, :func:`~symnn.codegen.numba.runtime._mm_nn_ld`) and one elementwise loop, so
the code does not grow with ``T``.  The per-step-shared products (``SeqAffine``,
``SeqOuter``, ``SeqSum``) are one product over all ``B·T`` rows, or one per sample and
direction when a factor carries directions.  These ops never add into an in-place sum
(they are not in :data:`~symnn.codegen.numba.passes._ACCUMULATING`).
"""

from __future__ import annotations

import sympy as sp

from symnn import ops as P
from symnn.codegen.numba.emit_conv import _at
from symnn.codegen.numba.slots import Slot, plus
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError

__all__ = ["emit_seq_affine", "emit_seq_outer", "emit_seq_sum", "emit_seq_bcast",
           "emit_seq_shift", "emit_rnn_seq", "emit_linrec"]


def _row(s: Slot, n: int) -> str:
    """Where the value of sample ``i`` (direction ``k``) starts (n values a row)."""
    if s.mode == "sample":
        return plus(s.off, f"i * {n}")
    if s.mode == "sampleK":
        return plus(s.off, f"(i * K + k) * {n}")
    if s.mode == "paramK":
        return plus(s.off, f"k * {n}")
    return s.off


def _no_acc(w: KernelWriter, op) -> None:
    if w.acc:
        raise CompileError(f"{type(op).__name__} cannot add into an in-place sum")


def _loops(w: KernelWriter, out: Slot, d: int) -> int:
    """The sample loop (and the direction loop for a value with directions) at indent d."""
    w.b("for i in range(B):", d)
    if out.is_k:
        w.b("for k in range(K):", d + 1)
        return d + 2
    return d + 1


def _link(T: int, cut: int, later: str) -> str:
    """The condition that row ``later − 1`` reaches row ``later`` (see ``linked``)."""
    cond = f"{later} >= 1 and {later} < {T}"
    return cond + (f" and ({T} - ({later})) % {cut} != 0" if cut else "")


@emits(P.SeqAffine)
def emit_seq_affine(w: KernelWriter, op: P.SeqAffine) -> None:
    W, x, o = w.slot(op.W), w.slot(op.x), w.slot(op.out)
    bb = w.slot(op.b) if op.b is not None else None
    _no_acc(w, op)
    m, n = op.W.shape
    n_in, n_out = (m, n) if op.trans else (n, m)
    if bb is not None and op.trans:
        raise CompileError("SeqAffine with Wᵀ takes no bias")

    def call(xo: str, rows: str, wo: str, bo: str | None, oo: str, d: int) -> None:
        if op.trans:
            w.b(f"_mm_nn({x.arr}, {xo}, {rows}, {n_in}, {W.arr}, {wo}, {n_out}, 0, "
                f"{o.arr}, {oo})", d)
            return
        barg = f"{bb.arr}, {bo}, 1" if bb is not None else f"{W.arr}, 0, 0"
        w.b(f"_mm_nt({x.arr}, {xo}, {rows}, {n_in}, {W.arr}, {wo}, {n_out}, {barg}, 0, "
            f"{o.arr}, {oo})", d)

    if not W.is_k and (bb is None or not bb.is_k) and x.is_k == o.is_k:
        call(x.off, f"{w.rows(x)} * {op.T}", W.off, bb.off if bb else None, o.off, 1)
        return
    d = _loops(w, o, 1)
    call(_row(x, op.x.size), str(op.T), _row(W, op.W.size),
         _row(bb, n_out) if bb else None, _row(o, op.out.size), d)


@emits(P.SeqOuter)
def emit_seq_outer(w: KernelWriter, op: P.SeqOuter) -> None:
    u, v, o = w.slot(op.u), w.slot(op.v), w.slot(op.out)
    _no_acc(w, op)
    du, dv = op.out.shape
    w.uses_inv_b = True
    if not u.is_k and not v.is_k:
        w.b(f"_mm_tn({u.arr}, {u.off}, B * {op.T}, {du}, {v.arr}, {v.off}, {dv}, inv_B, 0, "
            f"{o.arr}, {o.off})")
        return
    w.b("for k in range(K):")
    w.b("for i in range(B):", 2)
    w.b(f"_mm_tn({u.arr}, {_row(u, op.u.size)}, {op.T}, {du}, {v.arr}, {_row(v, op.v.size)}, "
        f"{dv}, inv_B, min(i, 1), {o.arr}, {_row(o, du * dv)})", 3)


@emits(P.SeqSum)
def emit_seq_sum(w: KernelWriter, op: P.SeqSum) -> None:
    g, o = w.slot(op.g), w.slot(op.out)
    _no_acc(w, op)
    n = op.out.size
    w.uses_inv_b = True
    if not g.is_k:
        w.b(f"_colmean({g.arr}, {g.off}, B * {op.T}, {n}, inv_B, 0, {o.arr}, {o.off})")
        return
    w.b("for k in range(K):")
    w.b("for i in range(B):", 2)
    w.b(f"_colmean({g.arr}, {_row(g, op.g.size)}, {op.T}, {n}, inv_B, min(i, 1), {o.arr}, "
        f"{_row(o, n)})", 3)


@emits(P.SeqBcast)
def emit_seq_bcast(w: KernelWriter, op: P.SeqBcast) -> None:
    v, o = w.slot(op.v), w.slot(op.out)
    _no_acc(w, op)
    n, dd = op.out.size, op.v.size
    d = _loops(w, o, 1)
    w.b(f"for q in range({op.T}):", d)
    w.b(f"for j in range({dd}):", d + 1)
    w.b(f"{_at(o, n, f'q * {dd} + j')} = {_at(v, dd, 'j')}", d + 2)


@emits(P.SeqShift)
def emit_seq_shift(w: KernelWriter, op: P.SeqShift) -> None:
    x, o = w.slot(op.x), w.slot(op.out)
    _no_acc(w, op)
    n = op.out.size
    dd = n // op.T
    d = _loops(w, o, 1)
    src = "q - 1" if op.lag > 0 else "q + 1"
    w.b(f"for q in range({op.T}):", d)
    w.b(f"if {_link(op.T, op.cut, 'q' if op.lag > 0 else 'q + 1')}:", d + 1)
    w.b(f"for j in range({dd}):", d + 2)
    w.b(f"{_at(o, n, f'q * {dd} + j')} = {_at(x, n, f'({src}) * {dd} + j')}", d + 3)
    w.b("else:", d + 1)
    w.b(f"for j in range({dd}):", d + 2)
    w.b(f"{_at(o, n, f'q * {dd} + j')} = {w.lit(0.0)}", d + 3)


@emits(P.RNNSeq)
def emit_rnn_seq(w: KernelWriter, op: P.RNNSeq) -> None:
    """``z_t = u_t + W σ(z_{t−1})``: per step the B rows of σ(z_{t−1}) (a buffer) times
    ``Wᵀ`` (a copy made once) added to ``u_t``."""
    u, W, o = w.slot(op.u), w.slot(op.W), w.slot(op.out)
    _no_acc(w, op)
    if u.is_k or W.is_k or o.is_k:
        raise CompileError("RNNSeq of a tangent value: its forward rule makes a LinRec")
    H, n, T = op.W.shape[0], op.out.size, op.T
    wt = w.carve(op.out.name + "_wt", "one", H * H)
    hb = w.carve(op.out.name + "_h", "B", H)
    t = w.fresh("t_")
    act = w.printer.doprint(op.body.xreplace({op.z: sp.Symbol("e", real=True)}))
    w.b(f"_swap01({W.arr}, {W.off}, {H}, {H}, 1, work, {wt}, 0)")
    w.b(f"for {t} in range({T}):")
    w.b("for i in range(B):", 2)
    w.b(f"for j in range({H}):", 3)
    w.b(f"{_at(o, n, f'{t} * {H} + j')} = {_at(u, n, f'{t} * {H} + j')}", 4)
    w.b(f"if {t} > 0:", 2)
    w.b(f"_mm_nn_ld(work, {hb}, {H}, B, {H}, work, {wt}, {H}, {H}, 1, {o.arr}, "
        f"{plus(o.off, f'{t} * {H}')}, {n})", 3)
    w.b(f"if {t} < {T - 1}:", 2)
    w.b("for i in range(B):", 3)
    w.b(f"for j in range({H}):", 4)
    w.b(f"e = {_at(o, n, f'{t} * {H} + j')}", 5)
    w.b(f"work[_u({hb} + i * {H} + j)] = {act}", 5)


@emits(P.LinRec)
def emit_linrec(w: KernelWriter, op: P.LinRec) -> None:
    """``y_t = s_t ⊙ (u_t + op(W) y_{t'}) + e_t``: per step the carried rows (B or B·K) times
    ``op(W)ᵀ`` into row t, then one elementwise pass."""
    s, W, o = w.slot(op.s), w.slot(op.W), w.slot(op.out)
    u = w.slot(op.u) if op.u is not None else None
    e = w.slot(op.e) if op.e is not None else None
    _no_acc(w, op)
    if W.is_k:
        raise CompileError("LinRec with a tangent weight")
    dd, n, T = op.W.shape[0], op.out.size, op.T
    if op.trans:
        M, Moff = W.arr, W.off
    else:
        M, Moff = "work", w.carve(op.out.name + "_wt", "one", dd * dd)
        w.b(f"_swap01({W.arr}, {W.off}, {dd}, {dd}, 1, work, {Moff}, 0)")
    tt, t = w.fresh("tt_"), w.fresh("t_")
    w.b(f"for {tt} in range({T}):")
    w.b(f"{t} = {tt}" if not op.rev else f"{t} = {T - 1} - {tt}", 2)
    prev = f"{t} - 1" if not op.rev else f"{t} + 1"
    w.b(f"if {_link(T, op.cut, t if not op.rev else t + ' + 1')}:", 2)
    w.b(f"_mm_nn_ld({o.arr}, {plus(o.off, f'({prev}) * {dd}')}, {n}, {w.rows(o)}, {dd}, "
        f"{M}, {Moff}, {dd}, {dd}, 0, {o.arr}, {plus(o.off, f'{t} * {dd}')}, {n})", 3)
    w.b("else:", 2)
    d = _loops(w, o, 3)
    w.b(f"for j in range({dd}):", d)
    w.b(f"{_at(o, n, f'{t} * {dd} + j')} = {w.lit(0.0)}", d + 1)
    d = _loops(w, o, 2)
    idx = f"{t} * {dd} + j"
    inner = _at(o, n, idx) if u is None else f"{_at(u, n, idx)} + {_at(o, n, idx)}"
    rhs = f"{_at(s, n, idx)} * ({inner})" + (f" + {_at(e, n, idx)}" if e is not None else "")
    w.b(f"for j in range({dd}):", d)
    w.b(f"{_at(o, n, idx)} = {rhs}", d + 1)
