"""Convolution and pooling ops (:mod:`symnn.ops.conv`, :mod:`symnn.ops.pool`) as plain
loops, which Numba compiles well at the sizes of 1-D convolutions.

Every emitter walks the batch (``i``) and, when its output carries tangent directions,
the directions (``k``); an input without directions is read without ``k``.  An op whose
output is a sum computed in place (``w.acc``) adds into it; a scatter (the adjoints)
clears its output first unless it adds.

A convolution of at least :data:`BLAS_MADDS` multiply-adds a sample (and direction) calls
a block of :mod:`symnn.codegen.numba.runtime_conv` instead (im2col and one BLAS product a
sample): the loops' weight gradient is a strict sum that does not vectorise.  At stride 1,
Conv1D and ConvT1D of that size take *direct* loops instead (:class:`_Direct`), which
beat im2col + BLAS at these sizes.
"""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.slots import Slot
from symnn.codegen.numba.writer import KernelWriter, emits

__all__ = ["BLAS_MADDS", "emit_conv1d", "emit_convt1d", "emit_convwmean", "emit_channel_mean",
           "emit_channel_bcast", "emit_avgpool", "emit_avgpoolt", "emit_maxgather",
           "emit_maxscatter"]


#: From this many multiply-adds a sample (``C_out·C_in·k·L_out``), Conv1D, ConvT1D and
#: ConvWMean call the im2col + BLAS blocks (:mod:`symnn.codegen.numba.runtime_conv`) — at
#: stride 1, Conv1D and ConvT1D take the direct loops instead; below, loops (a BLAS call costs
#: about a microsecond).
BLAS_MADDS = 8192


def _direct(g, out: Slot) -> bool:
    """Whether a Conv1D or ConvT1D of geometry ``g`` into ``out`` takes the direct loops
    (:class:`_Direct`): stride 1, at least :data:`BLAS_MADDS` multiply-adds, and an output
    without tangent directions (the loops are long to compile; the HVP's and Gauss-Newton
    product's tangent convolutions keep the blocks)."""
    return g.s == 1 and g.c_out * g.c_in * g.k * g.l_out >= BLAS_MADDS and not out.is_k


def _blas(g, params: tuple, samples: tuple) -> bool:
    """Whether the op of geometry ``g`` calls the BLAS block: large enough, the slots
    ``params`` parameters and ``samples`` per-sample values (with or without directions)."""
    return (g.c_out * g.c_in * g.k * g.l_out >= BLAS_MADDS
            and all(s.mode in ("param", "paramK") for s in params if s is not None)
            and all(s.mode in ("sample", "sampleK") for s in samples))


def _addr(s: Slot, n: int) -> str:
    """``arr, off, bs, ks``: value ``s`` (n components a row) of sample i, direction k is at
    ``off + i·bs + k·ks`` (see :mod:`symnn.codegen.numba.runtime_conv`)."""
    bs, ks = {"sample": (str(n), "0"), "sampleK": (f"K * {n}", str(n)),
              "paramK": ("0", str(n))}.get(s.mode, ("0", "0"))
    return f"{s.arr}, {s.off}, {bs}, {ks}"


def _addr_k(s: Slot, n: int) -> str:
    """``arr, off, ks``: a parameter (``bs`` = 0) with or without directions."""
    arr_off, _bs, ks = _addr(s, n).rsplit(", ", 2)
    return f"{arr_off}, {ks}"


def _geom(g, out: Slot) -> str:
    """``B, K, C_in, L_in, C_out, k, s, p`` (K: the output's directions, or 1)."""
    return f"B, {'K' if out.is_k else 1}, {g.c_in}, {g.l_in}, {g.c_out}, {g.k}, {g.s}, {g.p}"


def _col(w: KernelWriter, op, g) -> str:
    """``work, offset`` of the op's im2col scratch (``C_in·k·L_out`` values)."""
    return "work, " + w.carve(op.out.name + "_col", "one", g.c_in * g.k * g.l_out)


def _at(s: Slot, n: int, idx: str) -> str:
    """Component ``idx`` of value ``s`` (n components a row) for sample i, direction k."""
    if s.mode == "sample":
        return s.at(f"i * {n} + {idx}")
    if s.mode == "sampleK":
        return s.at(f"(i * K + k) * {n} + {idx}")
    if s.mode == "paramK":
        return s.at(f"k * {n} + {idx}")
    return s.at(idx)


def _open(w: KernelWriter, out: Slot) -> int:
    """The sample loop and, for an output with directions, the direction loop; returns the
    indentation of the body."""
    w.b("for i in range(B):")
    if out.is_k:
        w.b("for k in range(K):", 2)
        return 3
    return 2


def _clear(w: KernelWriter, out: Slot, n: int) -> None:
    """Zero the output (all rows) unless the op adds into a sum in place."""
    if w.acc:
        return
    rows = {"sample": "B", "sampleK": "B * K", "paramK": "K"}.get(out.mode, "1")
    w.b(f"for q in range({rows} * {n}):")
    w.b(f"{out.at('q')} = {w.lit(0.0)}", 2)


def _store(w: KernelWriter) -> str:
    return "+=" if w.acc else "="


def _taps(w: KernelWriter, g, d: int) -> None:
    """For tap ``j``: the output positions ``q0 ≤ q < q1`` whose input ``q·s + j − p`` lies
    inside the input (the loops over q are then contiguous and vectorise)."""
    w.b(f"q0 = max(0, ({g.p} - j + {g.s - 1}) // {g.s})", d)
    w.b(f"q1 = min({g.l_out}, ({g.l_in - 1 + g.p} - j) // {g.s} + 1)", d)


def _xi(g) -> str:
    """The input position of output q and tap j."""
    u = "q" if g.s == 1 else f"q * {g.s}"
    return f"{u} + j - {g.p}" if g.p else f"{u} + j"


#: The most taps a pass of the direct loops adds (each pass loads and stores the output rows).
_TAPS = 8


def _tap_groups(kw: int) -> list[tuple[int, int]]:
    """The taps ``0 ≤ j < kw`` in groups ``(j0, n)`` of at most :data:`_TAPS`, as even as
    can be (k = 10: 5 and 5)."""
    passes = -(-kw // _TAPS)
    sizes = [kw // passes + (1 if p < kw % passes else 0) for p in range(passes)]
    return [(sum(sizes[:p]), n) for p, n in enumerate(sizes)]


def _plus(a: str, n: int) -> str:
    return a if n == 0 else (f"{a} + {n}" if n > 0 else f"{a} - {-n}")


#: Output rows a pass of the direct loops (each input value loaded once for all of them;
#: four ran no faster and took longer to compile).
_ROWS = 2


class _Direct:
    """A stride-1 convolution ``out[ρ, q] (+)= Σ_{r, j} w(ρ, r, j) · x[r, q + j − pd]``
    (0 outside x) for one sample and direction: ``o`` (``rows`` × ``lo``), ``x`` (``ci`` ×
    ``li``), ``widx(ρ, r, j)`` the weight's index in ``W``."""

    def __init__(self, w, W, n_w, widx, x, n_x, ci, li, o, n_o, rows, lo, kw, pd):
        self.w, self.W, self.n_w, self.widx = w, W, n_w, widx
        self.x, self.n_x, self.ci, self.li = x, n_x, ci, li
        self.o, self.n_o, self.rows, self.lo, self.kw, self.pd = o, n_o, rows, lo, kw, pd

    def xat(self, j: int) -> str:
        return _at(self.x, self.n_x, _plus(f"r * {self.li} + q", j - self.pd))

    def oat(self, row: str) -> str:
        return _at(self.o, self.n_o, f"{row} * {self.lo} + q")

    def group(self, rows: list, j0: int, n: int, d: int) -> None:
        """Taps j0 … j0 + n − 1 of input row r into the output rows ``rows``: one loop over
        the positions where all n read inside the input, one a tap at the ends."""
        w, lo, pd, li = self.w, self.lo, self.pd, self.li
        for a, row in enumerate(rows):
            for t in range(n):
                w.b(f"_a{a}{t} = {_at(self.W, self.n_w, self.widx(row, 'r', j0 + t))}", d)
        qa = min(lo, max(0, pd - j0))
        qb = max(qa, min(lo, li + pd - j0 - n + 1))
        if qb > qa:
            w.b(f"for q in range({qa}, {qb}):", d)
            for t in range(n):
                w.b(f"_v{t} = {self.xat(j0 + t)}", d + 1)
            for a, row in enumerate(rows):
                s = " + ".join(f"_a{a}{t} * _v{t}" for t in range(n))
                w.b(f"{self.oat(row)} += {s}", d + 1)
        for t in range(n):  # the ends: tap j0 + t alone where it reads inside the input
            lo_j, hi_j = max(0, pd - j0 - t), min(lo, li + pd - j0 - t)
            for q0, q1 in ((lo_j, min(qa, hi_j)), (max(qb, lo_j), hi_j)):
                if q1 > q0:
                    w.b(f"for q in range({q0}, {q1}):", d)
                    for a, row in enumerate(rows):
                        w.b(f"{self.oat(row)} += _a{a}{t} * {self.xat(j0 + t)}", d + 1)

    def body(self, init, d: int) -> None:
        """Every output row, two a pass (the last alone for an odd count); ``init(row, d)``
        emits a row's first value (or nothing, when adding)."""
        m = _ROWS if self.rows >= _ROWS else self.rows
        full = self.rows - self.rows % m
        passes = [(["c"] + [f"(c + {a})" for a in range(1, m)], d + 1)]
        self.w.b(f"for c in range(0, {full}, {m}):", d)
        if full < self.rows:
            passes.append(([str(r) for r in range(full, self.rows)], d))
        for rows, dd in passes:
            for row in rows:
                init(row, dd)
            self.w.b(f"for r in range({self.ci}):", dd)
            for j0, n in _tap_groups(self.kw):
                self.group(rows, j0, n, dd + 1)


@emits(P.Conv1D)
def emit_conv1d(w: KernelWriter, op: P.Conv1D) -> None:
    g = op.g
    W, x, o = w.slot(op.W), w.slot(op.x), w.slot(op.out)
    bb = w.slot(op.b) if op.b is not None else None
    n_w = g.c_out * g.c_in * g.k
    n_o, n_x = g.c_out * g.l_out, g.c_in * g.l_in
    if _direct(g, o):
        def init(row: str, dd: int) -> None:
            if bb is not None or not w.acc:
                w.b(f"e = {_at(bb, g.c_out, row) if bb is not None else w.lit(0.0)}", dd)
                w.b(f"for q in range({g.l_out}):", dd)
                w.b(f"{_at(o, n_o, f'{row} * {g.l_out} + q')} {_store(w)} e", dd + 1)

        def widx(row: str, r: str, j: int) -> str:
            return f"({row} * {g.c_in} + {r}) * {g.k} + {j}"

        _Direct(w, W, n_w, widx, x, n_x, g.c_in, g.l_in, o, n_o, g.c_out, g.l_out, g.k,
                g.p).body(init, _open(w, o))
        return
    if _blas(g, (W, bb), (x, o)):
        ba = _addr_k(bb, g.c_out) if bb is not None else f"{W.arr}, 0, 0"
        w.b(f"_conv_fwd({_addr_k(W, n_w)}, {_addr(x, n_x)}, {ba}, {int(bb is not None)}, "
            f"{_addr(o, n_o)}, {_geom(g, o)}, {w.acc}, {_col(w, op, g)})")
        return
    d = _open(w, o)
    w.b(f"for c in range({g.c_out}):", d)
    if bb is not None or not w.acc:
        w.b(f"e = {_at(bb, g.c_out, 'c') if bb is not None else w.lit(0.0)}", d + 1)
        w.b(f"for q in range({g.l_out}):", d + 1)
        w.b(f"{_at(o, n_o, f'c * {g.l_out} + q')} {_store(w)} e", d + 2)
    w.b(f"for r in range({g.c_in}):", d + 1)
    w.b(f"for j in range({g.k}):", d + 2)
    w.b(f"e = {_at(W, n_w, f'(c * {g.c_in} + r) * {g.k} + j')}", d + 3)
    _taps(w, g, d + 3)
    w.b("for q in range(q0, q1):", d + 3)
    w.b(f"{_at(o, n_o, f'c * {g.l_out} + q')} += "
        f"e * {_at(x, n_x, f'r * {g.l_in} + {_xi(g)}')}", d + 4)


@emits(P.ConvT1D)
def emit_convt1d(w: KernelWriter, op: P.ConvT1D) -> None:
    g = op.g
    W, h, o = w.slot(op.W), w.slot(op.h), w.slot(op.out)
    n_w = g.c_out * g.c_in * g.k
    n_h, n_o = g.c_out * g.l_out, g.c_in * g.l_in
    if _direct(g, o):  # the convolution of h (padded by k − 1 − p) with the flipped kernel
        def init(row: str, dd: int) -> None:
            if not w.acc:
                w.b(f"for q in range({g.l_in}):", dd)
                w.b(f"{_at(o, n_o, f'{row} * {g.l_in} + q')} = {w.lit(0.0)}", dd + 1)

        def widx(row: str, r: str, j: int) -> str:
            return f"({r} * {g.c_in} + {row}) * {g.k} + {g.k - 1 - j}"

        _Direct(w, W, n_w, widx, h, n_h, g.c_out, g.l_out, o, n_o, g.c_in, g.l_in, g.k,
                g.k - 1 - g.p).body(init, _open(w, o))
        return
    if _blas(g, (W,), (h, o)):
        w.b(f"_conv_t({_addr_k(W, n_w)}, {_addr(h, n_h)}, {_addr(o, n_o)}, {_geom(g, o)}, "
            f"{w.acc}, {_col(w, op, g)})")
        return
    _clear(w, o, n_o)
    d = _open(w, o)
    w.b(f"for c in range({g.c_out}):", d)
    w.b(f"for r in range({g.c_in}):", d + 1)
    w.b(f"for j in range({g.k}):", d + 2)
    w.b(f"e = {_at(W, n_w, f'(c * {g.c_in} + r) * {g.k} + j')}", d + 3)
    _taps(w, g, d + 3)
    w.b("for q in range(q0, q1):", d + 3)
    w.b(f"{_at(o, n_o, f'r * {g.l_in} + {_xi(g)}')} += "
        f"e * {_at(h, n_h, f'c * {g.l_out} + q')}", d + 4)


@emits(P.ConvWMean)
def emit_convwmean(w: KernelWriter, op: P.ConvWMean) -> None:
    g = op.g
    u, v, o = w.slot(op.u), w.slot(op.v), w.slot(op.out)
    n_w = g.c_out * g.c_in * g.k
    n_u, n_v = g.c_out * g.l_out, g.c_in * g.l_in
    w.uses_inv_b = True
    if _blas(g, (o,), (u, v)):
        tr = w.carve(op.out.name + "_t", "K" if o.is_k else "one", n_w)
        w.b(f"_conv_wmean({_addr(u, n_u)}, {_addr(v, n_v)}, {_addr_k(o, n_w)}, "
            f"{_geom(g, o)}, inv_B, {w.acc}, {_col(w, op, g)}, {tr})")
        return
    _clear(w, o, n_w)
    d = _open(w, o)
    w.b(f"for c in range({g.c_out}):", d)
    w.b(f"for r in range({g.c_in}):", d + 1)
    w.b(f"for j in range({g.k}):", d + 2)
    _taps(w, g, d + 3)
    w.b(f"s = {w.lit(0.0)}", d + 3)
    w.b("for q in range(q0, q1):", d + 3)
    w.b(f"s += {_at(u, n_u, f'c * {g.l_out} + q')} * "
        f"{_at(v, n_v, f'r * {g.l_in} + {_xi(g)}')}", d + 4)
    w.b(f"{_at(o, n_w, f'(c * {g.c_in} + r) * {g.k} + j')} += s * inv_B", d + 3)


@emits(P.ChannelMean)
def emit_channel_mean(w: KernelWriter, op: P.ChannelMean) -> None:
    """The batch mean of the row sums: first the sum over the batch of every (c, t) in a
    scratch (a loop over c·t that vectorises), then each row's sum: Σ_t (Σ_i v[i, c, t])."""
    v, o = w.slot(op.v), w.slot(op.out)
    w.uses_inv_b = True
    n = op.c * op.l
    ps = w.carve(op.out.name + "_p", "K" if o.is_k else "one", n)
    pk = f"k * {n} + " if o.is_k else ""
    w.b(f"for q in range({'K * ' if o.is_k else ''}{n}):")
    w.b(f"work[_u({ps} + q)] = {w.lit(0.0)}", 2)
    d = _open(w, o)
    w.b(f"for q in range({n}):", d)
    w.b(f"work[_u({ps} + {pk}q)] += {_at(v, n, 'q')}", d + 1)
    d = 1
    if o.is_k:
        w.b("for k in range(K):")
        d = 2
    w.b(f"for c in range({op.c}):", d)
    w.b(f"s = {w.lit(0.0)}", d + 1)
    w.b(f"for q in range({op.l}):", d + 1)
    w.b(f"s += work[_u({ps} + {pk}c * {op.l} + q)]", d + 2)
    w.b(f"{_at(o, op.c, 'c')} {_store(w)} s * inv_B", d + 1)


@emits(P.ChannelBcast)
def emit_channel_bcast(w: KernelWriter, op: P.ChannelBcast) -> None:
    v, o = w.slot(op.v), w.slot(op.out)
    d = _open(w, o)
    w.b(f"for c in range({op.c}):", d)
    w.b(f"e = {_at(v, op.c, 'c')}", d + 1)
    w.b(f"for q in range({op.l}):", d + 1)
    w.b(f"{_at(o, op.c * op.l, f'c * {op.l} + q')} {_store(w)} e", d + 2)


@emits(P.AvgPool)
def emit_avgpool(w: KernelWriter, op: P.AvgPool) -> None:
    p = op.g
    x, o = w.slot(op.x), w.slot(op.out)
    d = _open(w, o)
    w.b(f"for c in range({p.c}):", d)
    w.b(f"for q in range({p.l_out}):", d + 1)
    w.b(f"s = {w.lit(0.0)}", d + 2)
    w.b(f"for j in range({p.m}):", d + 2)
    w.b(f"s += {_at(x, p.c * p.l_in, f'c * {p.l_in} + q * {p.m} + j')}", d + 3)
    w.b(f"{_at(o, p.c * p.l_out, f'c * {p.l_out} + q')} {_store(w)} s / {w.lit(float(p.m))}",
        d + 2)


@emits(P.AvgPoolT)
def emit_avgpoolt(w: KernelWriter, op: P.AvgPoolT) -> None:
    p = op.g
    h, o = w.slot(op.h), w.slot(op.out)
    _clear(w, o, p.c * p.l_in)
    d = _open(w, o)
    w.b(f"for c in range({p.c}):", d)
    w.b(f"for q in range({p.l_out}):", d + 1)
    w.b(f"e = {_at(h, p.c * p.l_out, f'c * {p.l_out} + q')} / {w.lit(float(p.m))}", d + 2)
    w.b(f"for j in range({p.m}):", d + 2)
    w.b(f"{_at(o, p.c * p.l_in, f'c * {p.l_in} + q * {p.m} + j')} += e", d + 3)


def _argmax_lines(w: KernelWriter, x: Slot, p, d: int) -> None:
    """``j`` ← the first argmax of x's window (c, q)."""
    n = p.c * p.l_in
    w.b("j = 0", d)
    w.b(f"e = {_at(x, n, f'c * {p.l_in} + q * {p.m}')}", d)
    w.b(f"for r in range(1, {p.m}):", d)
    w.b(f"if {_at(x, n, f'c * {p.l_in} + q * {p.m} + r')} > e:", d + 1)
    w.b(f"e = {_at(x, n, f'c * {p.l_in} + q * {p.m} + r')}", d + 2)
    w.b("j = r", d + 2)


@emits(P.MaxGather)
def emit_maxgather(w: KernelWriter, op: P.MaxGather) -> None:
    p = op.g
    x, v, o = w.slot(op.x), w.slot(op.v), w.slot(op.out)
    d = _open(w, o)
    w.b(f"for c in range({p.c}):", d)
    w.b(f"for q in range({p.l_out}):", d + 1)
    _argmax_lines(w, x, p, d + 2)
    w.b(f"{_at(o, p.c * p.l_out, f'c * {p.l_out} + q')} {_store(w)} "
        f"{_at(v, p.c * p.l_in, f'c * {p.l_in} + q * {p.m} + j')}", d + 2)


@emits(P.MaxScatter)
def emit_maxscatter(w: KernelWriter, op: P.MaxScatter) -> None:
    p = op.g
    x, h, o = w.slot(op.x), w.slot(op.h), w.slot(op.out)
    _clear(w, o, p.c * p.l_in)
    d = _open(w, o)
    w.b(f"for c in range({p.c}):", d)
    w.b(f"for q in range({p.l_out}):", d + 1)
    _argmax_lines(w, x, p, d + 2)
    w.b(f"{_at(o, p.c * p.l_in, f'c * {p.l_in} + q * {p.m} + j')} += "
        f"{_at(h, p.c * p.l_out, f'c * {p.l_out} + q')}", d + 2)
