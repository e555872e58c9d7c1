"""The runtime blocks of the generated kernels: the only module kernel sources import.

A generated kernel module holds only offset arithmetic, one loop per elementwise ``Map`` and
calls to the blocks below (``_mm_nt`` …).  They take flat arrays plus offsets and sizes, so
that each is compiled once per dtype with one fixed signature (:func:`prepare_runtime`) for
every kernel of every model, and cached by Numba beside this file.  (A Numba function called
with literal constants is otherwise recompiled for every call site.)  Matrix products call
BLAS ``?gemm`` directly (:func:`_gemm`), which gives the batch mean's 1/B (``alpha``),
accumulation into an existing value (``beta = 1``) and strided operands for free; below a
size threshold (:data:`BLAS_THRESHOLDS`) they loop, since a BLAS call costs about a
microsecond, which a batch of one should not pay.  Accumulators of the loop paths are
float64 in both dtypes.

:func:`runtime_fingerprint` hashes this file and :mod:`symnn.codegen.fastmath` (the two
modules generated kernels import), nothing else: editing the code generator does not
invalidate cached kernels, editing what they call does.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from pathlib import Path

import numba
import numpy as np
from numba.core import types

from symnn.codegen._fastcheck import fastmath_available
from symnn.codegen.numba._stamp import install as _stamp_cache  # walk, round 6
from symnn.codegen.numba.gemm import _dot1, _dot4, _gemm  # tiles, dots (issue 16)

_stamp_cache()  # walk, round 6: Numba's cache of these blocks keyed on every runtime file

__all__ = ["BLAS_THRESHOLDS", "RUNTIME_FILES", "prepare_runtime", "runtime_fingerprint",
           "runtime_names"]

if fastmath_available():
    from symnn.codegen import fastmath as fm
else:  # pragma: no cover - fastmath ships with symnn
    fm = None

#: When the matrix helpers call BLAS instead of loops (measured on the 2-core AVX2 machine
#: of issue #3 with ``benchmarks/bench_kernels.py`` and single-product timings): a product
#: with at most ``*_rows`` rows (a batch of 1 to 4) loops — a BLAS call costs about a
#: microsecond and its small-matrix paths are slow; so does one with fewer than ``madds``
#: multiply-adds, and a ``Uᵀ V`` or ``G W`` whose contraction or output has at most
#: ``skinny`` rows (a rank-one update, where OpenBLAS is 2–4× slower than a loop).
BLAS_THRESHOLDS = {"nt_rows": 4, "tn_rows": 4, "nn_rows": 4, "madds": 4096, "skinny": 2}

_NT_ROWS = BLAS_THRESHOLDS["nt_rows"]
_TN_ROWS = BLAS_THRESHOLDS["tn_rows"]
_NN_ROWS = BLAS_THRESHOLDS["nn_rows"]
_NT_MADDS = BLAS_THRESHOLDS["madds"]
_K_DIRECT = 8  # up to this many directions: one strided product each, no transposes
_SKINNY = BLAS_THRESHOLDS["skinny"]
_u = np.uint64  # an index cast to unsigned skips the negative-index test, so loops vectorise
_exp = fm.fm_exp if fm is not None else math.exp
_log = fm.fm_log if fm is not None else math.log
_RUNTIME: dict = {}
_SIGNATURES: dict = {}

#: The files whose code generated kernels import (and Numba inlines or links into them),
#: relative to ``symnn/codegen``: what :func:`runtime_fingerprint` hashes.
RUNTIME_FILES = ("numba/runtime.py", "fastmath.py", "numba/_blas.py", "numba/runtime_conv.py",
                 "numba/gemm.py", "fastmath_extra.py")


def _runtime(spec: str):
    """Register a runtime block; ``spec`` gives its types (see :func:`prepare_runtime`)."""

    def register(fn):
        disp = numba.njit(cache=True, error_model="numpy", fastmath=False)(fn)
        _RUNTIME[fn.__name__] = disp
        _SIGNATURES[fn.__name__] = spec
        return disp

    return register


@numba.njit(error_model="numpy", cache=True)
def _nt_small(A, oa, m, n, W, ow, p, b, ob, hasb, acc, out, oo):
    """:func:`_mm_nt` for few rows: dot products, four rows of W per pass over a row of A
    (:func:`~symnn.codegen.numba.gemm._dot4`: explicit vectors, one fixed order of the
    sums, so the same bits in the block and in a kernel's copy of it), the leftover rows
    one by one.  Issue 16: a 128 × 128 product at B = 1 took 1.3–1.4 µs through a 4-row
    helper with a row-count test per element, 1.05–1.1 µs so, as the hand-written
    kernel's."""
    p4 = p - p % 4
    for r in range(m):
        a = oa + r * n
        for c in range(0, p4, 4):
            s0, s1, s2, s3 = _dot4(A, a, W, ow + c * n, n)
            o = oo + r * p + c
            if hasb:
                s0 += b[_u(ob + c)]
                s1 += b[_u(ob + c + 1)]
                s2 += b[_u(ob + c + 2)]
                s3 += b[_u(ob + c + 3)]
            if acc:
                s0 += out[_u(o)]
                s1 += out[_u(o + 1)]
                s2 += out[_u(o + 2)]
                s3 += out[_u(o + 3)]
            out[_u(o)] = s0
            out[_u(o + 1)] = s1
            out[_u(o + 2)] = s2
            out[_u(o + 3)] = s3
        for c in range(p4, p):
            s = _dot1(A, a, W, ow + c * n, n)
            if hasb:
                s += b[_u(ob + c)]
            if acc:
                s += out[_u(oo + r * p + c)]
            out[_u(oo + r * p + c)] = s


@_runtime("v:aiiiaiiaiiiai")
def _mm_nt(A, oa, m, n, W, ow, p, b, ob, hasb, acc, out, oo):
    """out[oo:] (m, p) = A[oa:] (m, n) · W[ow:] (p, n)ᵀ (+ b[ob:] (p,) on every row if hasb;
    added to out's values if acc): the Affine op.  Few rows: dot products, four rows of W
    per pass (:func:`_nt_small`); otherwise BLAS."""
    if m > _NT_ROWS and m * n * p >= _NT_MADDS:
        if hasb:
            for r in range(m):
                for c in range(p):
                    if acc:
                        out[_u(oo + r * p + c)] += b[_u(ob + c)]
                    else:
                        out[_u(oo + r * p + c)] = b[_u(ob + c)]
        _gemm(0, 1, m, p, n, 1.0, A, oa, n, W, ow, n, 1.0 if (acc or hasb) else 0.0, out, oo, p)
        return
    _nt_small(A, oa, m, n, W, ow, p, b, ob, hasb, acc, out, oo)


@numba.njit(error_model="numpy", cache=True)
def _outer1(U, ou, p, Vm, ov, n, scale, acc, out, oo, ldo):
    """out (p × n, row stride ldo) (+)= scale · U[ou:ou + p] ⊗ Vm[ov:ov + n]: :func:`_tn` for
    one sample, the same products in the same order (issue 16: a 128 × 128 gradient at
    B = 1 took about 1.1 µs through the general loops, as the hand-written kernel's 0.8–1.0
    so)."""
    if acc:
        for r in range(p):
            d0 = U[_u(ou + r)] * scale
            o = oo + r * ldo
            for c in range(n):
                out[_u(o + c)] += d0 * Vm[_u(ov + c)]
        return
    for r in range(p):
        d0 = U[_u(ou + r)] * scale
        o = oo + r * ldo
        for c in range(n):
            out[_u(o + c)] = d0 * Vm[_u(ov + c)]


@numba.njit(error_model="numpy", cache=True)
def _tn(U, ou, ldu, m, p, Vm, ov, ldv, n, scale, acc, out, oo, ldo):
    """out (p × n, row stride ldo) (+)= scale · Uᵀ Vm for U (m × p, ldu), Vm (m × n, ldv).
    Few rows: one scaled row of Vm per (sample, row of out), four samples per pass."""
    if m > _TN_ROWS and p > _SKINNY and m * n * p >= _NT_MADDS:
        _gemm(1, 0, p, n, m, scale, U, ou, ldu, Vm, ov, ldv, 1.0 if acc else 0.0, out, oo, ldo)
        return
    if m == 1:  # one sample (issue 16): the loop below, without its tests per row
        _outer1(U, ou, p, Vm, ov, n, scale, acc, out, oo, ldo)
        return
    m4 = m - m % 4
    for r in range(p):
        o = oo + r * ldo
        start = 0
        if not acc:
            if m4 > 0:
                d0 = U[_u(ou + r)] * scale
                d1 = U[_u(ou + ldu + r)] * scale
                d2 = U[_u(ou + 2 * ldu + r)] * scale
                d3 = U[_u(ou + 3 * ldu + r)] * scale
                for c in range(n):
                    out[_u(o + c)] = ((d0 * Vm[_u(ov + c)] + d1 * Vm[_u(ov + ldv + c)])
                                      + (d2 * Vm[_u(ov + 2 * ldv + c)]
                                         + d3 * Vm[_u(ov + 3 * ldv + c)]))
                start = 4
            else:
                d0 = U[_u(ou + r)] * scale
                for c in range(n):
                    out[_u(o + c)] = d0 * Vm[_u(ov + c)]
                start = 1
        for s in range(start, m4 if start <= m4 else start, 4):
            d0 = U[_u(ou + s * ldu + r)] * scale
            d1 = U[_u(ou + (s + 1) * ldu + r)] * scale
            d2 = U[_u(ou + (s + 2) * ldu + r)] * scale
            d3 = U[_u(ou + (s + 3) * ldu + r)] * scale
            v = ov + s * ldv
            for c in range(n):
                out[_u(o + c)] += ((d0 * Vm[_u(v + c)] + d1 * Vm[_u(v + ldv + c)])
                                   + (d2 * Vm[_u(v + 2 * ldv + c)]
                                      + d3 * Vm[_u(v + 3 * ldv + c)]))
        for s in range(max(start, m4), m):
            d0 = U[_u(ou + s * ldu + r)] * scale
            v = ov + s * ldv
            for c in range(n):
                out[_u(o + c)] += d0 * Vm[_u(v + c)]


@numba.njit(error_model="numpy", cache=True)
def _nn(G, og, ldg, m, p, W, ow, ldw, n, acc, out, oo, ldo):
    """out (m × n, row stride ldo) (+)= G (m × p, ldg) · W (p × n, ldw).  Few rows: four
    rows of W per pass over a row of out."""
    if m > _NN_ROWS and p > _SKINNY and m * n * p >= _NT_MADDS:
        _gemm(0, 0, m, n, p, 1.0, G, og, ldg, W, ow, ldw, 1.0 if acc else 0.0, out, oo, ldo)
        return
    p4 = p - p % 4
    for s in range(m):
        o = oo + s * ldo
        g = og + s * ldg
        start = 0
        if not acc:
            if p4 > 0:
                d0 = G[_u(g)]
                d1 = G[_u(g + 1)]
                d2 = G[_u(g + 2)]
                d3 = G[_u(g + 3)]
                for c in range(n):
                    out[_u(o + c)] = ((d0 * W[_u(ow + c)] + d1 * W[_u(ow + ldw + c)])
                                      + (d2 * W[_u(ow + 2 * ldw + c)]
                                         + d3 * W[_u(ow + 3 * ldw + c)]))
                start = 4
            else:
                d0 = G[_u(g)]
                for c in range(n):
                    out[_u(o + c)] = d0 * W[_u(ow + c)]
                start = 1
        for r in range(start, p4 if start <= p4 else start, 4):
            d0 = G[_u(g + r)]
            d1 = G[_u(g + r + 1)]
            d2 = G[_u(g + r + 2)]
            d3 = G[_u(g + r + 3)]
            w = ow + r * ldw
            for c in range(n):
                out[_u(o + c)] += ((d0 * W[_u(w + c)] + d1 * W[_u(w + ldw + c)])
                                   + (d2 * W[_u(w + 2 * ldw + c)] + d3 * W[_u(w + 3 * ldw + c)]))
        for r in range(max(start, p4), p):
            d0 = G[_u(g + r)]
            w = ow + r * ldw
            for c in range(n):
                out[_u(o + c)] += d0 * W[_u(w + c)]


@_runtime("v:aiiiaiisiai")
def _mm_tn(U, ou, m, p, Vm, ov, n, scale, acc, out, oo):
    """out[oo:] (p, n) = scale · U[ou:] (m, p)ᵀ · Vm[ov:] (m, n) (added to out if acc): a
    batch mean of outer products, the OuterMean op."""
    _tn(U, ou, p, m, p, Vm, ov, n, n, scale, acc, out, oo, n)


@_runtime("v:aiiiaiiiai")
def _mm_nn(G, og, m, p, W, ow, n, acc, out, oo):
    """out[oo:] (m, n) = G[og:] (m, p) · W[ow:] (p, n) (added to out if acc): the adjoint of a
    linear map, the MatTVec op."""
    _nn(G, og, p, m, p, W, ow, n, n, acc, out, oo, n)


@_runtime("v:aiiiiaiiiiaii")
def _mm_nn_ld(G, og, ldg, m, p, W, ow, ldw, n, acc, out, oo, ldo):
    """``_nn`` with row strides: one step of a recurrence looped over time (the rows of
    step t of every sample; :mod:`symnn.ops.scan`)."""
    _nn(G, og, ldg, m, p, W, ow, ldw, n, acc, out, oo, ldo)


@_runtime("v:aiiiaiiisiaiai")
def _outer_k(U, ou, B, nu, Vm, ov, K, nv, scale, acc, tmp, ot, out, oo):
    """out[oo:] (K, nu, nv) (+)= scale · Σ_i U[i] (nu) ⊗ Vm[i, k] (nv) for every direction k:
    the batch mean of outer products of an ordinary value with a tangent.  Few directions:
    one product per direction, reading Vm with a stride; many: one product into tmp and a
    transpose."""
    if K <= _K_DIRECT:
        for k in range(K):
            _tn(U, ou, nu, B, nu, Vm, ov + k * nv, K * nv, nv, scale, acc, out,
                oo + k * nu * nv, nv)
        return
    _tn(U, ou, nu, B, nu, Vm, ov, K * nv, K * nv, scale, 0, tmp, ot, K * nv)
    _swap(tmp, ot, nu, K, nv, out, oo, acc)


@_runtime("v:aiiiaiiiiaiai")
def _adjoint_k(G, og, B, n_out, W, ow, K, n_in, acc, tmp, ot, out, oo):
    """out[oo:] (B, K, n_in) (+)= G[i] (n_out) · W_k (n_out, n_in) for every sample and
    direction: the adjoint of a tangent weight.  Few directions: one product per direction,
    writing with a stride; many: the weights side by side (a transpose into tmp) and one
    product."""
    if K <= _K_DIRECT:
        for k in range(K):
            _nn(G, og, n_out, B, n_out, W, ow + k * n_out * n_in, n_in, n_in, acc, out,
                oo + k * n_in, K * n_in)
        return
    _swap(W, ow, K, n_out, n_in, tmp, ot, 0)
    _nn(G, og, n_out, B, n_out, tmp, ot, K * n_in, K * n_in, acc, out, oo, K * n_in)


@_runtime("v:aiiisiai")
def _colmean(U, ou, m, n, scale, acc, out, oo):
    """out[oo:] (n,) = scale · Σ_r U[ou:] (m, n)[r] (added to out if acc): a batch mean.
    Rows are added in order, one contiguous row at a time."""
    if acc:
        for r in range(m):
            for c in range(n):
                out[_u(oo + c)] += scale * U[_u(ou + r * n + c)]
        return
    for c in range(n):
        out[_u(oo + c)] = U[_u(ou + c)]
    for r in range(1, m):
        for c in range(n):
            out[_u(oo + c)] += U[_u(ou + r * n + c)]
    for c in range(n):
        out[_u(oo + c)] *= scale


@_runtime("v:aiiiaiaii")
def _softmax_lse(Z, oz, R, n, Pm, op, Lm, ol, what):
    """Per row of Z[oz:] (R, n): what & 1 → Pm[op:] ← softmax, what & 2 → Lm[ol:] ← log Σ exp;
    both subtract the row maximum first, so neither overflows."""
    for r in range(R):
        o = oz + r * n
        mx = Z[_u(o)]
        for c in range(1, n):
            mx = max(mx, Z[_u(o + c)])
        s = 0.0
        if what & 1:
            for c in range(n):
                e = _exp(Z[_u(o + c)] - mx)
                Pm[_u(op + r * n + c)] = e
                s += e
            inv = 1.0 / s
            for c in range(n):
                Pm[_u(op + r * n + c)] *= inv
        else:
            for c in range(n):
                s += _exp(Z[_u(o + c)] - mx)
        if what & 2:
            Lm[_u(ol + r)] = mx + _log(s)


@_runtime("v:aiiaiiiiiai")
def _rowdot(U, ou, uk, Vv, ov, vk, B, K, n, out, oo):
    """out[_u(oo + i·K + k)] = U-row · V-row for every sample i and direction k; a row of a
    tangent value (uk, vk = 1) is (i, k), of an ordinary value just i: the Dot op."""
    for i in range(B):
        for k in range(K):
            a = ou + ((i * K + k) * n if uk else i * n)
            b = ov + ((i * K + k) * n if vk else i * n)
            s = 0.0
            for c in range(n):
                s += U[_u(a + c)] * Vv[_u(b + c)]
            out[_u(oo + i * K + k)] = s


@_runtime("v:aiiiai")
def _rowsum(U, ou, R, n, out, oo):
    """out[_u(oo + r)] = Σ_c U[ou:] (R, n)[r, c]: the SumComp op."""
    for r in range(R):
        s = 0.0
        for c in range(n):
            s += U[_u(ou + r * n + c)]
        out[_u(oo + r)] = s


@_runtime("v:aiiiiai")
def _add_rows(out, oo, R, K, n, b, ob):
    """out[oo:] (R, K, n) += b[ob:] (K, n) on every row."""
    for i in range(R):
        for k in range(K * n):
            out[_u(oo + i * K * n + k)] += b[_u(ob + k)]


@numba.njit(error_model="numpy", cache=True)
def _swap(src, os, a, b, c, dst, od, acc):
    """dst[od:] (b, a, c) ← src[os:] (a, b, c) with the first two axes swapped (or += if acc)."""
    for i in range(a):
        for j in range(b):
            for l in range(c):
                if acc:
                    dst[_u(od + (j * a + i) * c + l)] += src[_u(os + (i * b + j) * c + l)]
                else:
                    dst[_u(od + (j * a + i) * c + l)] = src[_u(os + (i * b + j) * c + l)]


@_runtime("v:aiiiiaii")
def _swap01(src, os, a, b, c, dst, od, acc):
    """dst[od:] (b, a, c) ← src[os:] (a, b, c) with the first two axes swapped (or += if acc)."""
    _swap(src, os, a, b, c, dst, od, acc)


@_runtime("v:aiiaiiii")
def _copy_rows(src, os, ss, dst, od, ds, R, n):
    """dst[_u(od + r·ds + c)] ← src[_u(os + r·ss + c)] for R rows of n (ss = 0 repeats one row)."""
    for r in range(R):
        for c in range(n):
            dst[_u(od + r * ds + c)] = src[_u(os + r * ss + c)]


@_runtime("v:aiiiLaii")
def _blocks(src, os, R, P, layout, dst, od, unpack):
    """Between R rows of θ-layout vectors (src/dst, row length P) and per-parameter blocks
    (R, size) stored one after another: ``layout`` holds (offset, size) pairs.  unpack: rows
    → blocks (the directions V into tangent parameters); else blocks → rows (the products)."""
    o = od if unpack else os
    for t in range(layout.shape[0] // 2):
        off = layout[_u(2 * t)]
        size = layout[_u(2 * t + 1)]
        for r in range(R):
            for c in range(size):
                if unpack:
                    dst[_u(o + r * size + c)] = src[_u(os + r * P + off + c)]
                else:
                    dst[_u(od + r * P + off + c)] = src[_u(o + r * size + c)]
        o += R * size


@_runtime("v:aiisi")
def _fill(a, oa, n, value, scale):
    """a[oa:oa + n] ← value, or (scale) a[oa:oa + n] *= value."""
    for c in range(n):
        if scale:
            a[_u(oa + c)] *= value
        else:
            a[_u(oa + c)] = value


@_runtime("a:ai")
def _workspace(work, n):
    """``work`` when it holds ``n`` values, else a new NaN-filled buffer of ``n``.

    A kernel's buffer is defined once, from this call: reassigning the ``work`` argument
    inside the kernel made Numba's SSA pass walk back through every block for every use of
    it, which recursed past Python's limit in the kernels of deep networks."""
    if work.shape[0] >= n:
        return work
    fresh = np.empty(n, work.dtype)
    fresh[:] = np.nan
    return fresh


@_runtime("v:aiaiaiii")
def _add2(a, oa, b, ob, out, oo, n, acc):
    """out[oo:oo + n] = a[oa:] + b[ob:] (added to out if acc)."""
    for c in range(n):
        if acc:
            out[_u(oo + c)] += a[_u(oa + c)] + b[_u(ob + c)]
        else:
            out[_u(oo + c)] = a[_u(oa + c)] + b[_u(ob + c)]


@_runtime("v:aiiiisaiii")
def _penalty_grad(t, ot, st, n, l1, coef, out, oo, R, acc):
    """out[oo:] (R, n) ← 2 coef t (L2) or coef sign(t) (L1) for R rows of t[ot:] (row stride
    st), added to out if acc."""
    for r in range(R):
        for c in range(n):
            x = t[_u(ot + r * st + c)]
            if l1:
                g = coef * (1.0 if x > 0 else (-1.0 if x < 0 else 0.0))
            else:
                g = 2.0 * coef * x
            if acc:
                out[_u(oo + r * n + c)] += g
            else:
                out[_u(oo + r * n + c)] = g


_PREPARED: set = set()


@numba.njit(inline="always", error_model="numpy", fastmath=False, cache=True)
def _sigmoid(x):
    """1 / (1 + exp(-x)) without overflow (used when symnn.codegen.fastmath is missing)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(inline="always", error_model="numpy", fastmath=False, cache=True)
def _softplus(x):
    """max(x, 0) + log1p(exp(-|x|)): log(1 + exp(x)) without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def runtime_names() -> list[str]:
    """The names of the runtime blocks a kernel may call (compiled by :func:`prepare_runtime`)."""
    return list(_RUNTIME)


@functools.lru_cache(maxsize=None)
def runtime_fingerprint() -> str:
    """SHA-256 of the code the generated kernels call or inline (:data:`RUNTIME_FILES`:
    this file and fastmath; no other file of the code generator).

    It goes into every generated module's header, so that a change to the runtime blocks
    gives new module names: Numba's cache of a kernel does not notice when a function it
    inlined or linked changes."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent.parent
    for name in RUNTIME_FILES:
        try:
            h.update((here / name).read_bytes())
        except OSError:
            h.update(name.encode())
    return h.hexdigest()


_PREPARE_LOCK = threading.Lock()


def prepare_runtime(dtype: str) -> None:
    """Compile (or load from Numba's cache) the runtime blocks for ``dtype``, then freeze
    them, so that calls with literal arguments convert instead of specialising.

    Signature letters: ``a`` a flat C-contiguous array of the dtype, ``L`` a read-only
    int64 array, ``i`` int64, ``s`` a scalar of the dtype, ``v`` no result."""
    dtype = np.dtype(dtype).name
    if dtype in _PREPARED:
        return
    with _PREPARE_LOCK:  # two threads' first calls: one compiles, the other waits
        if dtype not in _PREPARED:
            _prepare(dtype)


def _prepare(dtype: str) -> None:
    scalar = getattr(types, dtype)
    conv = {"a": types.Array(scalar, 1, "C"), "i": types.int64, "s": scalar,
            "v": types.void, "L": types.Array(types.int64, 1, "C", readonly=True)}
    for name, spec in _SIGNATURES.items():
        disp = _RUNTIME[name]
        res, args = spec.split(":")
        sig = conv[res](*(conv[c] for c in args))
        disp.disable_compile(False)
        try:
            disp.compile(sig)
        finally:
            disp.disable_compile(True)
        _no_inline(disp)
    _PREPARED.add(dtype)


def _no_inline(disp) -> None:
    """Keep LLVM from inlining (or cloning) a runtime block into every kernel calling it.

    Numba links a callee's IR into each caller, and LLVM then inlined it at every call
    site — a kernel with 25 calls re-optimised 25 copies, which dominated compile time.
    Marked ``noinline`` and ``optnone`` in the copy linked into a kernel (that copy was
    already optimised when Numba compiled the block's own library, so ``optnone`` only
    stops LLVM from re-optimising it, or cloning it per constant argument, in every kernel),
    each block is optimised once; a call costs nanoseconds next to the loops and BLAS calls
    inside.  This reaches into Numba's code library; on a Numba
    without these internals it does nothing and kernels only compile slower.
    """
    for cres in disp.overloads.values():
        try:
            module = cres.library._get_module_for_linking()
            for fn in module.functions:
                if fn.is_declaration or fn.name.startswith(("NRT_", "cpython.", "cfunc.")):
                    continue
                attrs = b" ".join(bytes(a) for a in fn.attributes)
                if b"noinline" not in attrs:
                    fn.add_function_attribute("noinline")
                if b"optnone" not in attrs:
                    fn.add_function_attribute("optnone")
        except Exception:  # pragma: no cover - depends on Numba internals
            continue



# -- self-attention (issue 13: symnn.codegen.numba.emit_attention) ------------------------------
# Every operand is addressed as off + i·bs + k·ks (+ its position): sample i, direction k;
# bs, ks are 0 for what does not vary with them (a parameter; a value without directions).


@_runtime("v:aiiiiiaiiiiiiiiiisiaiii")
def _attn_mm(A, oa, abs_, aks, ars, acs, Bm, ob, bbs, bks, brs, bcs, B, K, m, kk, n, scale,
             mean, out, oo, obs, oks):
    """out (m, n) ← scale · op(A) op(B) for every sample i and direction k, op(A)[r, q] at
    ``r·ars + q·acs`` and op(B)[q, c] at ``q·brs + c·bcs``; ``mean``: out (K, m, n) cleared,
    then the sum over the samples (the caller's scale holds 1/B)."""
    if mean:
        for q in range(K * m * n):
            out[_u(oo + q)] = 0.0
    for i in range(B):
        for k in range(K):
            a0 = oa + i * abs_ + k * aks
            b0 = ob + i * bbs + k * bks
            o0 = oo + i * obs + k * oks
            for r in range(m):
                for c in range(n):
                    s = 0.0
                    for q in range(kk):
                        s += A[_u(a0 + r * ars + q * acs)] * Bm[_u(b0 + q * brs + c * bcs)]
                    if mean:
                        out[_u(o0 + r * n + c)] += s * scale
                    else:
                        out[_u(o0 + r * n + c)] = s * scale


@_runtime("v:aiiiiiai")
def _attn_softmax(Z, oz, R, T, n, causal, out, oo):
    """Each row of the R (T, n) matrices Z[oz:] → its softmax in out[oo:], the row maximum
    subtracted first; ``causal``: entries u > t are 0."""
    for i in range(R):
        for t in range(T):
            o = oz + (i * T + t) * n
            p = oo + (i * T + t) * n
            j = min(n, t + 1) if causal else n
            mx = Z[_u(o)]
            for c in range(1, j):
                mx = max(mx, Z[_u(o + c)])
            s = 0.0
            for c in range(j):
                e = _exp(Z[_u(o + c)] - mx)
                out[_u(p + c)] = e
                s += e
            inv = 1.0 / s
            for c in range(j):
                out[_u(p + c)] *= inv
            for c in range(j, n):
                out[_u(p + c)] = 0.0


@_runtime("v:aiiiaiiiiiiiiaiii")
def _attn_rows(U, ou, ubs, uks, V, ov, vbs, vks, B, K, T, n, what, out, oo, obs, oks):
    """Row by row of (T, n) matrices U, V: what 0 → out = U ⊙ (V − rowsum(U ⊙ V)) (the row
    softmax's Jacobian at U times V; on a softmax row (Σ U = 1 to 1e-12), with w = V where
    U > 1/2, else 0, as U ⊙ ((V − w) − rowsum(U ⊙ (V − w))): the same value without the
    dominant entry's cancellation); 1 → out[t] = rowsum(U ⊙ V); 2 → out[t, c] = U[t, c]·V[t]
    (V of length T)."""
    for i in range(B):
        for k in range(K):
            a0 = ou + i * ubs + k * uks
            b0 = ov + i * vbs + k * vks
            o0 = oo + i * obs + k * oks
            for t in range(T):
                if what == 2:
                    e = V[_u(b0 + t)]
                    for c in range(n):
                        out[_u(o0 + t * n + c)] = U[_u(a0 + t * n + c)] * e
                    continue
                s = 0.0
                wc = 0.0  # round 7 (sweep): what 0 centred on V at the entry with U > 1/2
                if what == 0:
                    su = 0.0
                    for c in range(n):
                        su += U[_u(a0 + t * n + c)]
                    for c in range(n):
                        if U[_u(a0 + t * n + c)] > 0.5 and abs(su - 1.0) <= 1e-12:
                            wc = V[_u(b0 + t * n + c)]
                for c in range(n):
                    s += U[_u(a0 + t * n + c)] * (V[_u(b0 + t * n + c)] - wc)
                if what == 1:
                    out[_u(o0 + t)] = s
                    continue
                for c in range(n):
                    out[_u(o0 + t * n + c)] = U[_u(a0 + t * n + c)] * (
                        (V[_u(b0 + t * n + c)] - wc) - s)


# -- 1-D convolutions (symnn.codegen.numba.runtime_conv): im2col + one BLAS product a sample ----
from symnn.codegen.numba import runtime_conv as _rconv  # noqa: E402

_conv_fwd = _runtime(_rconv.SPECS["_conv_fwd"])(_rconv._conv_fwd)
_conv_wmean = _runtime(_rconv.SPECS["_conv_wmean"])(_rconv._conv_wmean)
_conv_t = _runtime(_rconv.SPECS["_conv_t"])(_rconv._conv_t)


# -- round 7 (helper "sweep"): the batch mean of a total (the loss) without a needless overflow --
@_runtime("s:aiii")
def _batch_mean(U, ou, n, B):
    """(Σ U[ou:ou + n]) / B, finite whenever that mean is: Σ overflowing (or inf − inf) with
    every term finite is summed again scaled by 2⁻⁶⁴ (exact) and divided before scaling
    back, so the mean is rounded as if the exponent range were unbounded."""
    s = 0.0
    for r in range(n):
        s += U[_u(ou + r)]
    if math.isfinite(s):
        return s / B
    t = 0.0
    for r in range(n):
        if not math.isfinite(U[_u(ou + r)]):
            return s / B
        t += U[_u(ou + r)] * 5.421010862427522e-20
    return (t / B) * 1.8446744073709552e19
