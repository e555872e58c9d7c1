"""Layer-normalisation ops (:mod:`symnn.ops.norm`) as plain loops over the rows of each
sample: the row's mean and ``1/σ̂`` are computed in two passes (mean, then the centred sum
of squares, as the NumPy reference does), then the row is written.

Every emitter walks the batch (``i``) and, when its output carries tangent directions, the
directions (``k``); an input without directions is read without ``k``.  These ops are never
later terms of a sum computed in place (they are not in the writers' accumulating set), so
each writes its output in full.
"""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.slots import Slot
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError

__all__ = ["emit_norm_standardize", "emit_norm_standardize_t", "emit_norm_standardize_t_dot",
           "emit_norm_scale_shift", "emit_norm_col_mean"]


def _at(s: Slot, n: int, idx: str) -> str:
    """Component ``idx`` of value ``s`` (``n`` components per sample) for sample i,
    direction k."""
    if s.mode == "sample":
        return s.at(f"i * {n} + {idx}")
    if s.mode == "sampleK":
        return s.at(f"(i * K + k) * {n} + {idx}")
    if s.mode == "paramK":
        return s.at(f"k * {n} + {idx}")
    return s.at(idx)


def _open(w: KernelWriter, out: Slot) -> int:
    if w.acc:
        raise CompileError("a layer-normalisation op cannot add into a sum in place")
    w.b("for i in range(B):")
    if out.is_k:
        w.b("for k in range(K):", 2)
        return 3
    return 2


def _rowloop(w: KernelWriter, op, d: int) -> int:
    if op.rows == 1:
        return d
    w.b(f"for r in range({op.rows}):", d)
    return d + 1


def _idx(op) -> str:
    """The component ``j`` of row ``r``."""
    return "j" if op.rows == 1 else f"r * {op.n} + j"


def _stats(w: KernelWriter, op, x: Slot, d: int) -> tuple[str, str]:
    """Lines computing the row's mean and 1/σ̂ of ``x``; returns their local names."""
    mu, s = w.fresh("n_mu"), w.fresh("n_s")
    size, ix = op.rows * op.n, _idx(op)
    w.b(f"{mu} = {w.lit(0.0)}", d)
    w.b(f"for j in range({op.n}):", d)
    w.b(f"{mu} += {_at(x, size, ix)}", d + 1)
    w.b(f"{mu} = {mu} / {w.lit(float(op.n))}", d)
    w.b(f"{s} = {w.lit(0.0)}", d)
    w.b(f"for j in range({op.n}):", d)
    w.b(f"e = {_at(x, size, ix)} - {mu}", d + 1)
    w.b(f"{s} += e * e", d + 1)
    w.b(f"{s} = {w.lit(1.0)} / math.sqrt({s} / {w.lit(float(op.n))} + {w.lit(op.eps)})", d)
    return mu, s


def _mean(w: KernelWriter, op, d: int, name: str, *factors: tuple[Slot, str]) -> str:
    """``name = mean_j(Π factors)`` over the row; ``factors``: (slot, extra text)."""
    v = w.fresh(name)
    size, ix = op.rows * op.n, _idx(op)
    w.b(f"{v} = {w.lit(0.0)}", d)
    w.b(f"for j in range({op.n}):", d)
    prod = " * ".join(f"{_at(s, size, ix)}{extra}" for s, extra in factors)
    w.b(f"{v} += {prod}", d + 1)
    w.b(f"{v} = {v} / {w.lit(float(op.n))}", d)
    return v


@emits(P.NormStandardize)
def emit_norm_standardize(w: KernelWriter, op: P.NormStandardize) -> None:
    x, o = w.slot(op.x), w.slot(op.out)
    d = _rowloop(w, op, _open(w, o))
    mu, s = _stats(w, op, x, d)
    size, ix = op.rows * op.n, _idx(op)
    w.b(f"for j in range({op.n}):", d)
    w.b(f"{_at(o, size, ix)} = ({_at(x, size, ix)} - {mu}) * {s}", d + 1)


@emits(P.NormStandardizeT)
def emit_norm_standardize_t(w: KernelWriter, op: P.NormStandardizeT) -> None:
    x, h, g, o = w.slot(op.x), w.slot(op.h), w.slot(op.g), w.slot(op.out)
    d = _rowloop(w, op, _open(w, o))
    _mu, s = _stats(w, op, x, d)
    mg = _mean(w, op, d, "n_mg", (g, ""))
    mhg = _mean(w, op, d, "n_mhg", (h, ""), (g, ""))
    size, ix = op.rows * op.n, _idx(op)
    w.b(f"for j in range({op.n}):", d)
    w.b(f"{_at(o, size, ix)} = {s} * ({_at(g, size, ix)} - {mg} - {_at(h, size, ix)} * {mhg})",
        d + 1)


@emits(P.NormStandardizeTDot)
def emit_norm_standardize_t_dot(w: KernelWriter, op: P.NormStandardizeTDot) -> None:
    x, h, g, r, o = (w.slot(v) for v in (op.x, op.h, op.g, op.r, op.out))
    d = _rowloop(w, op, _open(w, o))
    mu, s = _stats(w, op, x, d)
    size, ix = op.rows * op.n, _idx(op)
    terms = []
    if op.dh is not None:
        dh = w.slot(op.dh)
        mhg = _mean(w, op, d, "n_mhg", (h, ""), (g, ""))
        mdg = _mean(w, op, d, "n_mdg", (dh, ""), (g, ""))
        terms.append(f"{s} * ({_at(dh, size, ix)} * {mhg} + {_at(h, size, ix)} * {mdg})")
    if op.dx is not None:
        dx = w.slot(op.dx)
        v = w.fresh("n_mxd")
        w.b(f"{v} = {w.lit(0.0)}", d)
        w.b(f"for j in range({op.n}):", d)
        w.b(f"{v} += ({_at(x, size, ix)} - {mu}) * {_at(dx, size, ix)}", d + 1)
        w.b(f"{v} = {v} * {s} * {s} / {w.lit(float(op.n))}", d)
        terms.append(f"{v} * {_at(r, size, ix)}")
    w.b(f"for j in range({op.n}):", d)
    w.b(f"{_at(o, size, ix)} = -({' + '.join(terms) if terms else w.lit(0.0)})", d + 1)


@emits(P.NormScaleShift)
def emit_norm_scale_shift(w: KernelWriter, op: P.NormScaleShift) -> None:
    o = w.slot(op.out)
    d = _rowloop(w, op, _open(w, o))
    size, ix = op.rows * op.n, _idx(op)
    parts = []
    if op.v is not None:
        v = _at(w.slot(op.v), size, ix)
        parts.append(v if op.gamma is None else f"{_at(w.slot(op.gamma), op.n, 'j')} * {v}")
    if op.beta is not None:
        parts.append(_at(w.slot(op.beta), op.n, "j"))
    w.b(f"for j in range({op.n}):", d)
    w.b(f"{_at(o, size, ix)} = {' + '.join(parts) if parts else w.lit(0.0)}", d + 1)


@emits(P.NormColMean)
def emit_norm_col_mean(w: KernelWriter, op: P.NormColMean) -> None:
    u, o = w.slot(op.u), w.slot(op.out)
    w.uses_inv_b = True
    if w.acc:
        raise CompileError("a layer-normalisation op cannot add into a sum in place")
    rows = "K" if o.is_k else "1"
    w.b(f"for q in range({rows} * {op.n}):")
    w.b(f"{o.at('q')} = {w.lit(0.0)}", 2)
    d = _rowloop(w, op, _open(w, o))
    size, ix = op.rows * op.n, _idx(op)
    prod = _at(u, size, ix)
    if op.v is not None:
        prod += f" * {_at(w.slot(op.v), size, ix)}"
    w.b(f"for j in range({op.n}):", d)
    w.b(f"{_at(o, op.n, 'j')} += {prod} * inv_B", d + 1)
