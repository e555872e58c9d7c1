"""The GRU ops looped over time (:mod:`symnn.ops.scan_gru`).

Per step: the carried rows (``B``, or ``B·K`` for a tangent; stride ``T·H``) times one
matrix per gate (``?gemm`` above the size threshold, copies of ``W_gᵀ`` made once where
needed), then one elementwise loop; the code does not grow with ``T``.
"""

from __future__ import annotations

import sympy as sp

from symnn import ops as P
from symnn.codegen.numba.emit_conv import _at
from symnn.codegen.numba.emit_scan import _link, _loops, _no_acc
from symnn.codegen.numba.slots import plus
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError
from symnn.ops.scan_gru import gru_sigmoid

__all__ = ["emit_gru_seq", "emit_gate_rec"]


def _transposed(w: KernelWriter, W, name: str, H: int) -> str:
    """A copy of ``Wᵀ`` in the work buffer (made once); its offset."""
    off = w.carve(name, "one", H * H)
    w.b(f"_swap01({W.arr}, {W.off}, {H}, {H}, 1, work, {off}, 0)")
    return off


@emits(P.GRUSeq)
def emit_gru_seq(w: KernelWriter, op: P.GRUSeq) -> None:
    """Per step ``c_g = h_{t−1} W_gᵀ`` (three products into a buffer), then the gates and
    ``h_t`` elementwise."""
    sl = {k: w.slot(getattr(op, k)) for k in ("ar", "az", "an", "Wr", "Wz", "Wn", "br", "bz",
                                               "bn", "out")}
    _no_acc(w, op)
    if any(s.is_k for s in sl.values()):
        raise CompileError("GRUSeq of a tangent value: its forward rule makes a GateRec")
    H, n, T = op.Wr.shape[0], op.out.size, op.T
    o = sl["out"]
    wts = [_transposed(w, sl[k], f"{op.out.name}_{k}t", H) for k in ("Wr", "Wz", "Wn")]
    cb = w.carve(op.out.name + "_c", "B", 3 * H)
    t = w.fresh("t_")
    names = {k: sp.Symbol(f"gq_{k}", real=True) for k in ("ar", "az", "an", "cr", "cz",
                                                          "cn", "hp", "r", "u", "n")}
    s = names
    pr = w.printer.doprint
    w.b(f"for {t} in range({T}):")
    w.b(f"if {t} > 0:", 2)
    for g, wt in enumerate(wts):
        w.b(f"_mm_nn_ld({o.arr}, {plus(o.off, f'({t} - 1) * {H}')}, {n}, B, {H}, work, {wt}, "
            f"{H}, {H}, 0, work, {cb} + {g * H}, {3 * H})", 3)
    w.b("for i in range(B):", 2)
    w.b(f"for j in range({H}):", 3)
    idx = f"{t} * {H} + j"
    for k in ("ar", "az", "an"):
        w.b(f"gq_{k} = {_at(sl[k], n, idx)}", 4)
    w.b(f"if {t} > 0:", 4)
    for g, k in enumerate(("cr", "cz", "cn")):
        w.b(f"gq_{k} = work[_u({cb} + i * {3 * H} + {g * H} + j)] + "
            f"{_at(sl['b' + k[1]], H, 'j')}", 5)
    w.b(f"gq_hp = {_at(o, n, f'({t} - 1) * {H} + j')}", 5)
    w.b("else:", 4)
    for k in ("cr", "cz", "cn"):
        w.b(f"gq_{k} = {_at(sl['b' + k[1]], H, 'j')}", 5)
    w.b(f"gq_hp = {w.lit(0.0)}", 5)
    w.b(f"gq_r = {pr(gru_sigmoid(s['ar'] + s['cr']))}", 4)
    w.b(f"gq_u = {pr(gru_sigmoid(s['az'] + s['cz']))}", 4)
    w.b(f"gq_n = {pr(sp.tanh(s['an'] + s['r'] * s['cn']))}", 4)
    omu = gru_sigmoid(-(s["az"] + s["cz"]))  # 1 − u, exact where u → 1 (round 6, exact)
    w.b(f"{_at(o, n, idx)} = {pr(omu * s['n'] + s['u'] * s['hp'])}", 4)


def _rowi(o) -> str:
    return "(i * K + k)" if o.is_k else "i"


@emits(P.GateRec)
def emit_gate_rec(w: KernelWriter, op: P.GateRec) -> None:
    """Per step: ``y_t = e_t``, then (where linked) the carried term: forward, per gate
    ``y_{t−1} W_gᵀ`` into a buffer and ``β_g,t ⊙`` it added; backward, per gate
    ``β_g,t+1 ⊙ y_{t+1}`` into a buffer times ``W_g`` added into row ``t``."""
    names = ("e", "c", "br", "bz", "bn", "Wr", "Wz", "Wn", "out")
    sl = {k: w.slot(getattr(op, k)) for k in names}
    _no_acc(w, op)
    if any(sl[k].is_k for k in ("Wr", "Wz", "Wn")):
        raise CompileError("GateRec with a tangent weight")
    o = sl["out"]
    H, n, T = op.Wr.shape[0], op.out.size, op.T
    unit = "BK" if o.is_k else "B"
    tmp = w.carve(op.out.name + "_g", unit, H)
    rows = w.rows(o)
    wts = ([None] * 3 if op.rev else
           [_transposed(w, sl[k], f"{op.out.name}_{k}t", H) for k in ("Wr", "Wz", "Wn")])
    tt, t = w.fresh("tt_"), w.fresh("t_")
    w.b(f"for {tt} in range({T}):")
    w.b(f"{t} = {tt}" if not op.rev else f"{t} = {T - 1} - {tt}", 2)
    cur, prev = f"{t} * {H} + j", (f"({t} + 1) * {H} + j" if op.rev else f"({t} - 1) * {H} + j")
    co = prev if op.rev else cur  # which step's coefficients
    d = _loops(w, o, 2)
    w.b(f"for j in range({H}):", d)
    w.b(f"{_at(o, n, cur)} = {_at(sl['e'], n, cur)}", d + 1)
    w.b(f"if {_link(T, op.cut, t + ' + 1' if op.rev else t)}:", 2)
    d = _loops(w, o, 3)
    w.b(f"for j in range({H}):", d)
    w.b(f"{_at(o, n, cur)} += {_at(sl['c'], n, co)} * {_at(o, n, prev)}", d + 1)
    trow = f"{tmp} + {_rowi(o)} * {H} + j"
    for g, (bk, wk) in enumerate((("br", "Wr"), ("bz", "Wz"), ("bn", "Wn"))):
        if op.rev:
            d = _loops(w, o, 3)
            w.b(f"for j in range({H}):", d)
            w.b(f"work[_u({trow})] = {_at(sl[bk], n, co)} * {_at(o, n, prev)}", d + 1)
            W = sl[wk]
            w.b(f"_mm_nn_ld(work, {tmp}, {H}, {rows}, {H}, {W.arr}, {W.off}, {H}, {H}, 1, "
                f"{o.arr}, {plus(o.off, f'{t} * {H}')}, {n})", 3)
            continue
        w.b(f"_mm_nn_ld({o.arr}, {plus(o.off, f'({t} - 1) * {H}')}, {n}, {rows}, {H}, work, "
            f"{wts[g]}, {H}, {H}, 0, work, {tmp}, {H})", 3)
        d = _loops(w, o, 3)
        w.b(f"for j in range({H}):", d)
        w.b(f"{_at(o, n, cur)} += {_at(sl[bk], n, co)} * work[_u({trow})]", d + 1)
