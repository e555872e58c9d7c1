"""Code generation: derived programs → the Python source of batched Numba kernels.

:func:`generate` turns the programs of one network or model (:func:`symnn.derive.derive`
and its Hessian-vector, Gauss-Newton and input-Jacobian extensions) into the text of one
Python module with one ``numba.njit`` function per entry point, named after the network:

=====================  ==================================  ================================
entry                  arguments                           effect
=====================  ==================================  ================================
``<name>_predict``     ``params, X, out, work``            ``out`` ← ŷ ``(B, n_out)``
``<name>_loss``        ``params, X, Y, work``              returns the batch loss L
``<name>_loss_grad``   ``params, X, Y, grad, work``        returns L; ``grad`` ← ∂L/∂θ
``<name>_hvp``         ``params, V, X, Y, out, work``      ``out[k]`` ← H ``V[k]``, K dirs
``<name>_gnvp``        ``params, V, X, Y, out, work``      ``out[k]`` ← G ``V[k]`` (Gauss-
                                                           Newton)
``<name>_jacobian``    ``params, X, out, work``            ``out`` ← ∂ŷ/∂x ``(B, n_out, n_in)``
=====================  ==================================  ================================

Every argument is a flat, C-contiguous 1-D array of the kernel's dtype (``X`` is the
``(B, n_in)`` batch flattened row by row, ``V`` the ``(K, P)`` directions, and so on); the
batch size ``B`` and the number of directions ``K`` are read from the lengths.  ``work`` is
a scratch buffer the caller keeps between calls (:meth:`GeneratedModule.work_size`; a
kernel given a shorter one allocates its own, filled with NaN so that a value read before
it is written shows).  Checking and reshaping the caller's arrays
is :mod:`symnn.codegen.model`'s job.

Why flat arrays and offsets: Numba's compile time grows with every array view, reshape and
loop in a function, and a function called with literal constants is recompiled per call
site.  So the generated entry points hold only offset arithmetic, one loop per elementwise
``Map`` and calls to the *runtime blocks* below (``_mm_nt`` …), which are compiled once per
dtype with fixed signatures (:func:`prepare_runtime`), cached beside this file, and kept
from being inlined into every caller.  Indices are cast to unsigned (``_u``): Numba then
skips its negative-index test and LLVM vectorises the loops.  The matrix blocks call BLAS
``?gemm`` directly (alpha, beta and strides for free) above a size threshold
(:data:`BLAS_THRESHOLDS`) and loop below it: a BLAS call costs about a microsecond, which a
batch of one should not pay.

How each op becomes code is one rule per op type, in the table :data:`EMITTERS`:

* ``Affine`` / ``MatTVec`` / ``OuterMean`` — the matrix blocks; the batch mean's ``1/B`` is
  BLAS's alpha; an Affine's bias is added where its value is read when only Maps read it;
* ``Map`` — chains are fused first (:func:`symnn.derive.simplify.fuse_maps`), then each is
  one loop whose body :class:`~symnn.codegen.printer.KernelPrinter` prints after
  :func:`sympy.cse`; a body that recomputes an earlier Map's value (``tanh(z1)`` in a
  tangent when ``a1 = tanh(z1)`` exists) reads that value instead;
* sums of products (``ż = V a + W ȧ``) are computed in place: the second product adds into
  the first's buffer (BLAS ``beta = 1``) and the sum disappears (:func:`_sum_plan`);
* ``Softmax`` / ``LogSumExp`` — max-shifted, sharing one pass when they read the same logits;
* the gradient is written straight into ``grad`` (θ layout); everything else lives in the
  work buffer.

Second order, forward-over-reverse, many directions at once: the Hessian-vector program is
split into the ops that do not depend on the direction (forward and backward pass, computed
once) and the tangent ops, computed for ``K`` directions together — a tangent per-sample
value is laid out ``(B, K, n)``, a tangent parameter ``(K, *shape)``.  Every product with a
weight matrix then stays one BLAS call over ``B·K`` rows, and the full Hessian is P
Hessian-vector products in one batch (``V = I``).  The input Jacobian is the same
machinery with ``K = n_in`` input tangents.
"""

from __future__ import annotations

import functools
import hashlib
import keyword
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numba
import numpy as np
import sympy as sp
from llvmlite import ir as llvmir
from numba.core import cgutils, types
from numba.extending import intrinsic

from symnn.codegen.printer import KernelPrinter, fastmath_available
from symnn.derive import gnvp_program, hvp_program, input_jvp_program
from symnn.derive import program as P
from symnn.derive.simplify import fuse_maps
from symnn.errors import CompileError

__all__ = ["generate", "GeneratedModule", "Kernel", "EMITTERS", "BLAS_THRESHOLDS",
           "prepare_runtime", "runtime_fingerprint"]

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

_RESERVED = {
    "params", "grad", "V", "X", "Y", "out", "B", "K", "work", "np", "math", "njit", "i", "k",
    "j", "q", "r", "c", "l", "_f", "inv_B", "acc", "m", "e", "d", "prange", "fm", "True",
}

# ------------------------------------------------------------------------------------------
# runtime blocks: the helpers the generated kernels call
# ------------------------------------------------------------------------------------------
#
# They take flat arrays plus offsets and sizes, so that each is compiled once per dtype with
# one fixed signature (:func:`prepare_runtime`) for every kernel of every model, and cached
# by Numba beside this file.  (A Numba function called with literal constants is otherwise
# recompiled for every call site.)  Matrix products call BLAS ``?gemm`` directly
# (:func:`_gemm`), which gives the batch mean's 1/B (``alpha``), accumulation into an
# existing value (``beta = 1``) and strided operands for free.  Accumulators of the loop
# paths are float64 in both dtypes.

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


def _runtime(spec: str):
    """Register a runtime block; ``spec`` gives its types (see :func:`prepare_runtime`)."""

    def register(fn):
        disp = numba.njit(cache=True, error_model="numpy", fastmath=False)(fn)
        _RUNTIME[fn.__name__] = disp
        _SIGNATURES[fn.__name__] = spec
        return disp

    return register


@intrinsic
def _gemm(typingctx, ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc):
    """``C[oc:]`` (m × n, row stride ldc) ← alpha·op(A[oa:])·op(Bm[ob:]) + beta·C.

    Row-major operands with leading dimensions; ``ta``/``tb`` non-zero: transpose.  Calls
    the ``?gemm`` that Numba's own ``np.dot`` uses (``numba_xxgemm``, SciPy's BLAS)."""
    from numba.np.linalg import ensure_blas

    ensure_blas()
    dtype = A.dtype
    kind = {types.float64: "d", types.float32: "s"}[dtype]
    sig = types.void(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)

    def codegen(context, builder, signature, args):
        ta, tb, m, n, k, alpha, a, oa, lda, b, ob, ldb, beta, c, oc, ldc = args
        char = llvmir.IntType(8)
        intp = context.get_value_type(types.intp)
        vp = char.as_pointer()
        fnty = llvmir.FunctionType(llvmir.IntType(32), [char, char, char, intp, intp, intp, vp,
                                                        vp, intp, vp, intp, vp, vp, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        tys = signature.args

        def ptr(i, arr, off):
            ary = context.make_array(tys[i])(context, builder, arr)
            return builder.bitcast(builder.gep(ary.data, [off]), vp)

        def slot(i, value):
            lt = context.get_value_type(dtype)
            s = cgutils.alloca_once(builder, lt)
            builder.store(context.cast(builder, value, tys[i], dtype), s)
            return builder.bitcast(s, vp)

        def flag(t):
            return builder.select(builder.icmp_signed("!=", t, t.type(0)),
                                  char(ord("t")), char(ord("n")))

        # row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands
        builder.call(fn, [char(ord(kind)), flag(tb), flag(ta), n, m, k, slot(5, alpha),
                          ptr(9, b, ob), ldb, ptr(6, a, oa), lda, slot(12, beta),
                          ptr(13, c, oc), ldc])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(error_model="numpy", fastmath={"reassoc", "contract"}, cache=True)
def _dot_rows(A, a, W, w, n, c4):
    """Σ_l A[a + l]·W[w + c·n + l] for the four rows c < c4 ≤ 4 of W at w (row length n).

    The one place where symnn lets the compiler reorder a sum (``reassoc``) and fuse
    multiply-adds (``contract``): without it Numba does not vectorise a dot product.  BLAS
    reorders the same sums; no other fast-math assumption (no NaN or inf) is made."""
    s0 = s1 = s2 = s3 = 0.0
    for l in range(n):
        x = A[_u(a + l)]
        s0 += x * W[_u(w + l)]
        if c4 > 1:
            s1 += x * W[_u(w + n + l)]
        if c4 > 2:
            s2 += x * W[_u(w + 2 * n + l)]
        if c4 > 3:
            s3 += x * W[_u(w + 3 * n + l)]
    return s0, s1, s2, s3


@_runtime("v:aiiiaiiaiiiai")
def _mm_nt(A, oa, m, n, W, ow, p, b, ob, hasb, acc, out, oo):
    """out[oo:] (m, p) = A[oa:] (m, n) · W[ow:] (p, n)ᵀ (+ b[ob:] (p,) on every row if hasb;
    added to out's values if acc): the Affine op.  Few rows: dot products, four rows of W
    per pass (:func:`_dot_rows`); otherwise BLAS."""
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
    for r in range(m):
        for c in range(0, p, 4):
            c4 = min(4, p - c)
            t = _dot_rows(A, oa + r * n, W, ow + c * n, n, c4)
            for q in range(c4):
                v = t[q]
                if hasb:
                    v += b[_u(ob + c + q)]
                if acc:
                    out[_u(oo + r * p + c + q)] += v
                else:
                    out[_u(oo + r * p + c + q)] = v


@numba.njit(error_model="numpy", cache=True)
def _tn(U, ou, ldu, m, p, Vm, ov, ldv, n, scale, acc, out, oo, ldo):
    """out (p × n, row stride ldo) (+)= scale · Uᵀ Vm for U (m × p, ldu), Vm (m × n, ldv).
    Few rows: one scaled row of Vm per (sample, row of out), four samples per pass."""
    if m > _TN_ROWS and p > _SKINNY and m * n * p >= _NT_MADDS:
        _gemm(1, 0, p, n, m, scale, U, ou, ldu, Vm, ov, ldv, 1.0 if acc else 0.0, out, oo, ldo)
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


@_runtime("s:aii")
def _total(U, ou, n):
    """Σ U[ou:ou + n]."""
    s = 0.0
    for r in range(n):
        s += U[_u(ou + r)]
    return s


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


@functools.lru_cache(maxsize=None)
def runtime_fingerprint() -> str:
    """SHA-256 of the code the generated kernels call or inline (this file, fastmath).

    It goes into every generated module's header, so that a change to the runtime blocks
    gives new module names: Numba's cache of a kernel does not notice when a function it
    inlined or linked changes."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("numba_gen.py", "fastmath.py"):
        try:
            h.update((here / name).read_bytes())
        except OSError:
            h.update(name.encode())
    return h.hexdigest()


def prepare_runtime(dtype: str) -> None:
    """Compile (or load from Numba's cache) the runtime blocks for ``dtype``, then freeze
    them, so that calls with literal arguments convert instead of specialising.

    Signature letters: ``a`` a flat C-contiguous array of the dtype, ``L`` a read-only
    int64 array, ``i`` int64, ``s`` a scalar of the dtype, ``v`` no result."""
    dtype = np.dtype(dtype).name
    if dtype in _PREPARED:
        return
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
    Marked ``noinline`` (and ``optsize``, which stops LLVM from cloning it per constant
    argument), each block is optimised once per kernel; a call costs nanoseconds next to
    the loops and BLAS calls inside.  This reaches into Numba's code library; on a Numba
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


@dataclass
class Kernel:
    """One entry point of a generated module."""

    kind: str
    name: str
    args: tuple[str, ...]
    doc: str = ""


@dataclass
class GeneratedModule:
    """The generated source and what it contains.

    Attributes
    ----------
    source : str
        The module text.
    kernels : dict
        ``{kind: Kernel}`` for ``predict``, ``loss``, ``loss_and_grad``, ``hvp``, ``gnvp``,
        ``jacobian``.
    layout : list of (str, tuple, int)
        ``(parameter name, shape, offset in θ)`` in flat order.
    n_params, n_inputs, n_outputs : int
    dtype : str
    fast : bool
        Whether the vectorisable :mod:`symnn.codegen.fastmath` functions are used.
    op_lines : list of (int, str)
        ``(line number in source, "kernel: op")`` of the comment opening each op's code,
        so that a Numba error can name the op.
    work : dict
        ``{kind: (b, bk, k, c)}``: the kernel's work buffer holds ``b·B + bk·B·K + k·K + c``
        values (B samples, K directions); callers pass one that large (or any array: a
        kernel given too small a buffer allocates its own).
    """

    source: str
    kernels: dict[str, Kernel]
    layout: list[tuple[str, tuple[int, ...], int]]
    n_params: int
    n_inputs: int
    n_outputs: int
    dtype: str
    fast: bool
    op_lines: list[tuple[int, str]] = field(default_factory=list)
    work: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def tangent_sizes(self) -> dict[str, tuple[int, int]]:
        """``{kind: (floats per sample per direction, floats per direction)}`` of the work
        buffers of the tangent kernels (to bound how many directions run at once)."""
        return {k: (w[1], w[2]) for k, w in self.work.items() if k in ("hvp", "gnvp", "jacobian")}

    def work_size(self, kind: str, B: int, K: int = 1) -> int:
        """Length of the work buffer of kernel ``kind`` for B samples and K directions."""
        b, bk, k, c = self.work[kind]
        return b * B + bk * B * K + k * K + c

    def op_at(self, line: int) -> str | None:
        """The op whose code contains source line ``line`` (1-based), if any."""
        best = None
        for ln, text in self.op_lines:
            if ln <= line:
                best = text
        return best


# ------------------------------------------------------------------------------------------
# where values live
# ------------------------------------------------------------------------------------------


@dataclass
class Slot:
    """Where a value lives inside one kernel: ``arr[off + …]``.

    ``mode``: ``sample`` ``(B, n)``, ``sampleK`` ``(B, K, n)``, ``param`` (its shape, flat),
    ``paramK`` ``(K, size)``, ``total`` (a scalar local named ``arr``) or ``totalK`` ``(K,)``.
    ``off`` is an int literal or the name of a local holding the offset.
    """

    var: P.Var
    mode: str
    arr: str
    off: str = "0"

    @property
    def n(self) -> int:
        return self.var.size

    @property
    def is_k(self) -> bool:
        return self.mode.endswith("K")

    def at(self, index: str) -> str:
        """``arr[off + index]``, trivial offsets folded; an index with arithmetic is cast to
        unsigned (``_u``), which spares Numba's negative-index test and lets LLVM vectorise."""
        i = _plus(self.off, index)
        if i.isdigit() or i.isidentifier():
            return f"{self.arr}[{i}]"
        return f"{self.arr}[_u({i})]"


def _plus(a: str, b: str) -> str:
    if a == "0":
        return b
    if b == "0":
        return a
    if a.isdigit() and b.isdigit():
        return str(int(a) + int(b))
    return f"{a} + {b}"


def _ident(name: str) -> str:
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit() or keyword.iskeyword(text) or text in _RESERVED:
        text = "v_" + text
    return text


# ------------------------------------------------------------------------------------------
# one kernel
# ------------------------------------------------------------------------------------------


class _KernelWriter:
    """Writes one entry function: storage plan, one block of code per op, epilogue."""

    def __init__(self, gen: "_Generator", kind: str, fname: str):
        self.gen = gen
        self.kind = kind
        self.fname = fname
        self.slots: dict[P.Var, Slot] = {}
        self.kvars: set[P.Var] = set()
        self.printer = KernelPrinter(gen.dtype, gen.fast)
        self.names: set[str] = set(_RESERVED)
        self.units = {"B": 0, "BK": 0, "K": 0, "one": 0}
        self.offsets: list[tuple[str, str]] = []
        self.body: list = []  # code lines and ("op", description) markers
        self.values: dict[sp.Expr, tuple[sp.Symbol, P.Var]] = {}
        self.uses_inv_b = False
        self.pre: list[str] = []  # code run before the ops (unpacking directions …)
        self.acc = 0  # 1 while emitting an op that adds into its output (see _sum_plan)
        self.shared: set = set()  # values stored in an in-place sum's storage

    # -- utilities -------------------------------------------------------------------------
    def lit(self, v: float) -> str:
        return self.printer.literal(v)

    def fresh(self, base: str) -> str:
        name = _ident(base)
        cand, i = name, 2
        while cand in self.names:
            cand = f"{name}_{i}"
            i += 1
        self.names.add(cand)
        return cand

    def slot(self, v: P.Var) -> Slot:
        try:
            return self.slots[v]
        except KeyError:
            raise CompileError(f"value {v.name!r} is read before it is computed") from None

    def b(self, text: str, indent: int = 1) -> None:
        self.body.append("    " * indent + text)

    def carve(self, name: str, unit: str, n: int) -> str:
        """Reserve ``n`` floats per unit (B, B·K, K or one) of the work buffer."""
        size = {"B": f"B * {n}", "BK": f"B * K * {n}", "K": f"K * {n}", "one": f"{n}"}[unit]
        off = self.fresh("o_" + name)
        self.offsets.append((off, size))
        self.units[unit] += n
        return off

    def alloc(self, v: P.Var, k: bool) -> Slot:
        if v.kind == "total" and not k:
            return Slot(v, "total", self.fresh(v.name))
        if v.per_sample:
            unit, mode = ("BK", "sampleK") if k else ("B", "sample")
        elif v.kind == "total":
            unit, mode = "K", "totalK"
        else:
            unit, mode = ("K", "paramK") if k else ("one", "param")
        return Slot(v, mode, "work", self.carve(v.name, unit, v.size))

    # -- driver ----------------------------------------------------------------------------
    def write(self, ops, seeds: dict, fixed: dict, header: list[str], epilogue, args, doc):
        """Plan storage for ``ops``, emit their code; returns the function's lines."""
        self.slots.update(seeds)
        for op in ops:
            if any(v in self.kvars for v in op.inputs):
                self.kvars.add(op.out)
        keep = set(fixed) | set(seeds)
        plan, dropped = _sum_plan(ops, self.kvars, keep)
        # values whose storage is shared with an in-place sum: later terms add into it, so
        # no later Map may read them in place of recomputing their body (see remember)
        self.shared = set(plan)
        for op in ops:
            if op in dropped or op.out in self.slots:
                continue
            target = plan[op.out][0] if op.out in plan else op.out
            if target not in self.slots:
                self.slots[target] = fixed.get(target) or self.alloc(target, target in self.kvars)
            self.slots[op.out] = self.slots[target]
        pairs = _softmax_lse_pairs(ops)
        skip = set(dropped)
        consumers: dict = {}
        for op in ops:
            for v in op.inputs:
                consumers.setdefault(v, []).append(op)
        # a bias added where the affine value is read (by Maps only): one pass fewer
        self.deferred = {}
        for op in ops:
            if (isinstance(op, P.Affine) and op.b is not None and op.out not in plan
                    and op.out not in keep and op.a not in self.gen.identity_tangents
                    and consumers.get(op.out)
                    and all(isinstance(c, P.Map) and c not in dropped
                            for c in consumers[op.out])):
                self.deferred[op.out] = self.slot(op.b)
        # a tangent's batch mean accumulated inside the loop of the Map that makes the
        # tangent (one pass fewer over a B·K·n array; not worth the code for ordinary values)
        # (only a Map that is itself emitted: a sum computed in place by _sum_plan has no
        # loop of its own, so a mean hung on it would never be written)
        self.means = {}
        emitted_maps = {o.out for o in ops if isinstance(o, P.Map) and o not in skip}
        for op in ops:
            if (isinstance(op, P.BatchMean) and op.out.kind != "total" and op not in skip
                    and op.out in self.kvars and plan.get(op.out, (None, 0))[1] == 0
                    and op.u in emitted_maps
                    and op.u not in plan and op.u.size == op.out.size):
                self.means.setdefault(op.u, []).append(op)
                skip.add(op)
        for op in ops:
            if op in skip:
                continue
            desc = _describe(op)
            self.body.append(("op", desc))
            self.acc = plan[op.out][1] if op.out in plan else 0
            try:
                if op in pairs:
                    skip.add(pairs[op])
                    self.emit_softmax_pair(op, pairs[op])
                else:
                    rule = EMITTERS.get(type(op))
                    if rule is None:
                        raise CompileError(
                            f"no code generation rule for {type(op).__name__}; add one to "
                            "symnn.codegen.numba_gen.EMITTERS"
                        )
                    rule(self, op)
            except CompileError as err:
                raise CompileError(f"kernel {self.fname}, op {desc}: {err}") from err
            except Exception as err:
                raise CompileError(
                    f"kernel {self.fname}: generating the code of op {desc} failed: "
                    f"{type(err).__name__}: {err}"
                ) from err
        # the buffer argument is ``work_in``; ``work`` is defined once from it (_workspace)
        params = ", ".join("work_in" if a == "work" else a for a in args)
        lines = [
            '@njit(cache=True, error_model="numpy", fastmath=False)',
            f"def {self.fname}({params}):",
            f'    """{doc}"""',
        ]
        lines += ["    " + h for h in header]
        if self.uses_inv_b:
            lines.append("    inv_B = _f(1.0) / _f(B)")
        prev = "0"
        for off, size in self.offsets:
            lines.append(f"    {off} = {prev}")
            prev = f"{off} + {size}"
        self.work_units = dict(self.units)
        # a buffer too small is replaced by a NaN-filled one, so that a read before a write
        # shows (see CompiledModel(debug=True))
        lines.append(f"    work = _workspace(work_in, {prev})")
        lines += ["    " + ln for ln in self.pre]
        self.op_starts = []
        for item in self.body:
            if isinstance(item, tuple):
                self.op_starts.append((len(lines), item[1]))
                lines.append(f"    # {item[1]}")
            else:
                lines.append(item)
        lines += ["    " + ln for ln in epilogue(self)]
        return lines

    # -- Map -------------------------------------------------------------------------------
    def canonical(self, op: P.Map):
        return _canonical(op)

    def reuse_values(self, exprs, args, out: P.Var):
        """Read earlier Maps' values where a body recomputes them (``tanh(z1)`` → ``a1``)."""
        repl = {body: sym for body, (sym, var) in self.values.items()
                if var.size in (out.size, 1)}
        if not repl:
            return exprs, args
        new = [e.xreplace(repl) for e in exprs]
        if new == exprs:
            return exprs, args
        args = dict(args)
        for _body, (sym, var) in self.values.items():
            args.setdefault(sym, P.Arg(sym, var, None))
        used = set().union(*(e.free_symbols for e in new))
        return new, {s: a for s, a in args.items() if s in used}

    def remember(self, op: P.Map, exprs, args) -> None:
        if len(exprs) != 1 or op.out in self.kvars or self.acc or op.out in self.shared:
            return
        e = exprs[0]
        if e.is_Symbol or not e.free_symbols:
            return
        for a in args.values():
            if a.index is not None or not (a.var.per_sample or a.var.kind == "total"):
                return
            if a.var.per_sample and a.var.size not in (op.out.size, 1):
                return
        self.values.setdefault(e, (sp.Symbol(op.out.name, real=True), op.out))

    def access(self, a: P.Arg, loop: str, comp) -> str:
        """Text reading argument ``a`` inside a Map loop.

        ``loop``: ``flat`` (index ``q`` runs over the whole value), ``elem`` (row ``i`` or
        ``(i, k)``, component ``j``) or ``row`` (component ``comp``).  Row offsets are the
        locals ``ri<n>`` = i·n and ``rk<n>`` = (i·K + k)·n set up by :meth:`emit_map`."""
        s = self.slot(a.var)
        idx = a.index if a.index is not None else 0
        if s.mode == "total":
            return s.arr
        if s.mode == "totalK":
            return s.at("k")
        if s.mode == "param":
            return s.at(str(idx))
        if s.mode == "paramK":
            return s.at(f"k * {s.n} + {idx}" if idx else f"k * {s.n}")
        if loop == "flat":
            return s.at("q")
        if a.index is not None:
            c = str(a.index)
        elif s.n == 1:
            c = "0"
        else:
            c = "j" if loop == "elem" else str(comp)
        row = self.row_name(s)
        text = s.at(row if c == "0" else f"{row} + {c}")
        b = self.deferred.get(a.var)
        if b is not None:  # the affine value's bias, added where it is read (see write)
            if b.is_k:
                return text, b.at(f"k * {s.n} + {c}" if c != "0" else f"k * {s.n}")
            return text, b.at(c)
        return text

    def row_name(self, s: Slot) -> str:
        name = (f"rk{s.n}" if s.is_k else f"ri{s.n}") if s.n > 1 else ("ik" if s.is_k else "i")
        self.rows_used.add(name)
        return name

    def emit_map(self, op: P.Map) -> None:
        out = self.slot(op.out)
        exprs, args = self.canonical(op)
        exprs, args = self.reuse_values(exprs, args, op.out)
        n = op.out.size
        single = len(exprs) == 1
        if not single and len(exprs) != n:
            raise CompileError(f"{len(exprs)} bodies for {n} components")
        for a in args.values():
            if a.var.per_sample and a.index is None and a.var.size not in (n, 1):
                raise CompileError(
                    f"elementwise argument {a.var.name} has size {a.var.size}, the output {n}"
                )
        is_k = out.is_k
        means = [self.slot(m.out) for m in self.means.get(op.out, [])]
        flat = single and not means and all(
            (self.slot(a.var).mode in ("total", "param"))
            or (a.var.per_sample and a.index is None and a.var.size == n
                and self.slot(a.var).is_k == is_k and a.var not in self.deferred)
            for a in args.values()
        )
        loop = "flat" if flat else ("elem" if single and n > 1 else "row")
        self.rows_used = set()
        invariant: set = set()  # values read that do not change inside the loops

        def read(a, comp):
            text = self.access(a, loop, comp)
            if isinstance(text, tuple):  # value + deferred bias: CSE shares the sum
                return sp.Symbol(text[0], real=True) + sp.Symbol(text[1], real=True)
            s = sp.Symbol(text, real=True)
            if self.slot(a.var).mode in ("param", "total"):
                invariant.add(s)
            return s

        if loop == "row":
            bodies = []
            for c in range(n):
                sub = {s: read(a, c) for s, a in args.items()}
                bodies.append((exprs[0] if single else exprs[c]).xreplace(sub))
            targets = [out.at(f"{self.row_name(out)} + {c}" if c else self.row_name(out))
                       for c in range(n)]
        elif loop == "elem":
            sub = {s: read(a, None) for s, a in args.items()}
            bodies = [exprs[0].xreplace(sub)]
            targets = [out.at(f"{self.row_name(out)} + j")]
        else:
            sub = {s: read(a, None) for s, a in args.items()}
            bodies = [exprs[0].xreplace(sub)]
            targets = [out.at("q")]
        bodies, hoisted = _hoist_invariant(bodies, invariant, lambda: self.fresh("h"))
        for sym, e in hoisted:
            self.b(f"{sym} = {self.printer.doprint(e)}")
        repl, reduced = sp.cse(bodies, symbols=sp.numbered_symbols("c"), order="none")
        if loop == "flat":
            size = "B * K" if is_k else "B"
            if n > 1:
                size += f" * {n}"
            self.b(f"for q in range({size}):")
            ind = 2
        else:
            self.b("for i in range(B):")
            ind = 2
            for r in sorted(self.rows_used):
                if r.startswith("ri"):
                    self.b(f"{r} = i * {r[2:]}", ind)
            if is_k:
                self.b("for k in range(K):", ind)
                ind += 1
                if "ik" in self.rows_used or any(r.startswith("rk") for r in self.rows_used):
                    self.b("ik = i * K + k", ind)
                for r in sorted(self.rows_used):
                    if r.startswith("rk"):
                        self.b(f"{r} = ik * {r[2:]}", ind)
            if loop == "elem":
                self.b(f"for j in range({n}):", ind)
                ind += 1
        pr = self.printer
        op_ = "+=" if self.acc else "="
        for sym, e in repl:
            self.b(f"{sym} = {pr.doprint(e)}", ind)
        if not means:
            for t, e in zip(targets, reduced):
                self.b(f"{t} {op_} {pr.doprint(e)}", ind)
        else:
            # the batch means of this value, summed in the same loop (rows in order)
            comps = ["j"] if loop == "elem" else [str(c) for c in range(n)]
            for c, (t, e) in enumerate(zip(targets, reduced)):
                self.b(f"e = {pr.doprint(e)}", ind)
                self.b(f"{t} {op_} e", ind)
                for ms in means:
                    col = comps[c] if comps[c] != "0" else "0"
                    idx = f"k * {n} + {col}" if ms.is_k else col
                    self.b(f"{ms.at(idx)} += e", ind)
            self.uses_inv_b = True
            zero, tail = [], []
            for ms in means:
                size = f"K * {n}" if ms.is_k else str(n)
                zero.append(f"_fill({ms.arr}, {ms.off}, {size}, 0.0, 0)")
                tail.append(f"_fill({ms.arr}, {ms.off}, {size}, inv_B, 1)")
            at = len(self.body) - 1
            while not isinstance(self.body[at], tuple):
                at -= 1
            self.body[at + 1:at + 1] = ["    " + z for z in zero]
            for t in tail:
                self.b(t)
        self.remember(op, exprs, args)

    # -- per-row ops ----------------------------------------------------------------------
    def rows(self, s: Slot) -> str:
        return "B * K" if s.is_k else "B"

    def emit_softmax_pair(self, op, other) -> None:
        sm = op if isinstance(op, P.Softmax) else other
        lse = other if sm is op else op
        self._softmax(sm.z, self.slot(sm.out), self.slot(lse.out))

    def _softmax(self, z: P.Var, p: Slot | None, lse: Slot | None) -> None:
        zs = self.slot(z)
        for s in (p, lse):
            if s is not None and s.is_k != zs.is_k:
                raise CompileError("a softmax and its logits differ in directions")
        what = (1 if p is not None else 0) | (2 if lse is not None else 0)
        pa, po = (p.arr, p.off) if p is not None else (zs.arr, "0")
        la, lo = (lse.arr, lse.off) if lse is not None else (zs.arr, "0")
        self.b(f"_softmax_lse({zs.arr}, {zs.off}, {self.rows(zs)}, {z.size}, {pa}, {po}, "
               f"{la}, {lo}, {what})")

    def emit_softmax(self, op: P.Softmax) -> None:
        self._softmax(op.z, self.slot(op.out), None)

    def emit_lse(self, op: P.LogSumExp) -> None:
        self._softmax(op.z, None, self.slot(op.out))

    def emit_dot(self, op: P.Dot) -> None:
        u, v, o = self.slot(op.u), self.slot(op.v), self.slot(op.out)
        if op.u.size != op.v.size:
            raise CompileError(f"Dot of sizes {op.u.size} and {op.v.size}")
        K = "K" if o.is_k else "1"
        self.b(f"_rowdot({u.arr}, {u.off}, {int(u.is_k)}, {v.arr}, {v.off}, {int(v.is_k)}, "
               f"B, {K}, {op.u.size}, {o.arr}, {o.off})")

    def emit_sumcomp(self, op: P.SumComp) -> None:
        u, o = self.slot(op.u), self.slot(op.out)
        self.b(f"_rowsum({u.arr}, {u.off}, {self.rows(u)}, {op.u.size}, {o.arr}, {o.off})")

    # -- batch means ------------------------------------------------------------------------
    def emit_batchmean(self, op: P.BatchMean) -> None:
        u, o = self.slot(op.u), self.slot(op.out)
        n = op.u.size
        if o.mode == "total":
            self.b(f"{o.arr} = _total({u.arr}, {u.off}, {'B' if n == 1 else f'B * {n}'}) "
                   "/ _f(B)")
            return
        if u.is_k != o.is_k:
            raise CompileError("a batch mean of an ordinary value into a tangent")
        if o.var.size != n:
            raise CompileError(f"batch mean of size {n} into {op.out.name} of size {o.var.size}")
        self.uses_inv_b = True
        cols = ("K" if n == 1 else f"K * {n}") if u.is_k else str(n)
        self.b(f"_colmean({u.arr}, {u.off}, B, {cols}, inv_B, {self.acc}, {o.arr}, {o.off})")

    def emit_outermean(self, op: P.OuterMean) -> None:
        u, v, o = self.slot(op.u), self.slot(op.v), self.slot(op.out)
        nu, nv = op.u.size, op.v.size
        self.uses_inv_b = True
        if not u.is_k and not v.is_k:
            self.b(f"_mm_tn({u.arr}, {u.off}, B, {nu}, {v.arr}, {v.off}, {nv}, inv_B, "
                   f"{self.acc}, {o.arr}, {o.off})")
        elif u.is_k and not v.is_k:
            # (B, K·nu)ᵀ (B, nv) is (K·nu, nv): every direction's mean outer product at once
            self.b(f"_mm_tn({u.arr}, {u.off}, B, K * {nu}, {v.arr}, {v.off}, {nv}, inv_B, "
                   f"{self.acc}, {o.arr}, {o.off})")
        elif v.is_k and not u.is_k:
            t = self.carve(op.out.name + "_t", "K", nu * nv)
            self.b(f"_outer_k({u.arr}, {u.off}, B, {nu}, {v.arr}, {v.off}, K, {nv}, inv_B, "
                   f"{self.acc}, work, {t}, {o.arr}, {o.off})")
        else:
            if not self.acc:
                self.b(f"for q in range(K * {nu * nv}):")
                self.b(f"{o.at('q')} = {self.lit(0.0)}", 2)
            self.b("for i in range(B):")
            self.b("for k in range(K):", 2)
            self.b(f"for r in range({nu}):", 3)
            self.b(f"d = {u.at(f'(i * K + k) * {nu} + r')} * inv_B", 4)
            self.b(f"for c in range({nv}):", 4)
            self.b(f"{o.at(f'(k * {nu} + r) * {nv} + c')} += "
                   f"d * {v.at(f'(i * K + k) * {nv} + c')}", 5)

    # -- linear maps -------------------------------------------------------------------------
    def emit_affine(self, op: P.Affine) -> None:
        W, a, o = self.slot(op.W), self.slot(op.a), self.slot(op.out)
        bb = self.slot(op.b) if op.b is not None and op.out not in self.deferred else None
        n_out, n_in = op.W.shape
        acc = self.acc
        if op.a in self.gen.identity_tangents and not W.is_k and not acc:
            # a is the identity input tangent: (W ẋ)[i, k, :] = W[:, k]
            self.b("for i in range(B):")
            self.b(f"for k in range({n_in}):", 2)
            self.b(f"for j in range({n_out}):", 3)
            self.b(f"{o.at(f'(i * K + k) * {n_out} + j')} = {W.at(f'j * {n_in} + k')}", 4)
            if bb is not None:
                self._bias_rows(o, bb, n_out)
            return
        if not W.is_k and (a.is_k or not o.is_k):
            rows = "B * K" if a.is_k else "B"
            hasb = bb is not None and not bb.is_k
            barg = f"{bb.arr}, {bb.off}, 1" if hasb else f"{W.arr}, 0, 0"
            self.b(f"_mm_nt({a.arr}, {a.off}, {rows}, {n_in}, {W.arr}, {W.off}, {n_out}, "
                   f"{barg}, {acc}, {o.arr}, {o.off})")
            if bb is not None and bb.is_k:
                self._bias_rows(o, bb, n_out)
            return
        if W.is_k and not a.is_k:
            # a (B, n_in) times the stacked directions (K·n_out, n_in): (B, K·n_out) at once,
            # and a bias of the directions, (K, n_out), is a bias of K·n_out columns
            if bb is not None and bb.is_k:
                barg = f"{bb.arr}, {bb.off}, 1"
            else:
                barg = f"{W.arr}, 0, 0"
            self.b(f"_mm_nt({a.arr}, {a.off}, B, {n_in}, {W.arr}, {W.off}, K * {n_out}, "
                   f"{barg}, {acc}, {o.arr}, {o.off})")
            if bb is not None and not bb.is_k:
                self.b(f"_add_rows({o.arr}, {o.off}, B * K, 1, {n_out}, {bb.arr}, {bb.off})")
            return
        # the rest (a direction in both factors, or only in the bias): loops
        op_ = "+=" if acc else "="
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for j in range({n_out}):", 3)
        self.b(f"s = {self.lit(0.0)}", 4)
        self.b(f"for l in range({n_in}):", 4)
        wt = W.at(f"(k * {n_out} + j) * {n_in} + l") if W.is_k else W.at(f"j * {n_in} + l")
        at = a.at(f"(i * K + k) * {n_in} + l") if a.is_k else a.at(f"i * {n_in} + l")
        self.b(f"s += {wt} * {at}", 5)
        if bb is not None:
            self.b(f"s += {bb.at(f'k * {n_out} + j') if bb.is_k else bb.at('j')}", 4)
        self.b(f"{o.at(f'(i * K + k) * {n_out} + j')} {op_} s", 4)

    def _bias_rows(self, o: Slot, bb: Slot, n: int) -> None:
        if bb.is_k:
            self.b(f"_add_rows({o.arr}, {o.off}, B, K, {n}, {bb.arr}, {bb.off})")
        else:
            self.b(f"_add_rows({o.arr}, {o.off}, {self.rows(o)}, 1, {n}, {bb.arr}, {bb.off})")

    def emit_mattvec(self, op: P.MatTVec) -> None:
        W, g, o = self.slot(op.W), self.slot(op.g), self.slot(op.out)
        n_out, n_in = op.W.shape
        if not W.is_k:
            rows = "B * K" if g.is_k else "B"
            if o.is_k and not g.is_k:
                raise CompileError("inconsistent directions in MatTVec")
            self.b(f"_mm_nn({g.arr}, {g.off}, {rows}, {n_out}, {W.arr}, {W.off}, {n_in}, "
                   f"{self.acc}, {o.arr}, {o.off})")
            return
        if not g.is_k:
            t = self.carve(op.W.name + "_h", "K", n_out * n_in)
            self.b(f"_adjoint_k({g.arr}, {g.off}, B, {n_out}, {W.arr}, {W.off}, K, {n_in}, "
                   f"{self.acc}, work, {t}, {o.arr}, {o.off})")
            return
        op_ = "+=" if self.acc else "="
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for c in range({n_in}):", 3)
        self.b(f"s = {self.lit(0.0)}", 4)
        self.b(f"for r in range({n_out}):", 4)
        self.b(f"s += {g.at(f'(i * K + k) * {n_out} + r')} * "
               f"{W.at(f'(k * {n_out} + r) * {n_in} + c')}", 5)
        self.b(f"{o.at(f'(i * K + k) * {n_in} + c')} {op_} s", 4)

    # -- sums and penalties ---------------------------------------------------------------------
    def emit_add(self, op: P.Add) -> None:
        o = self.slot(op.out)
        terms = [self.slot(t) for t in op.terms]
        if o.mode == "total":
            self.b(f"{o.arr} = " + " + ".join(t.arr for t in terms))
            return
        n = op.out.size
        size = {"paramK": f"K * {n}", "totalK": "K", "param": str(n)}.get(
            o.mode, f"{self.rows(o)} * {n}")
        same = all(t.n == n and t.is_k == o.is_k for t in terms)
        acc = self.acc
        if same and len(terms) >= 2:
            first, second = terms[0], terms[1]
            self.b(f"_add2({first.arr}, {first.off}, {second.arr}, {second.off}, "
                   f"{o.arr}, {o.off}, {size}, {acc})")
            for t in terms[2:]:
                self.b(f"_add2({t.arr}, {t.off}, {o.arr}, {o.off}, {o.arr}, {o.off}, {size}, 0)")
            return
        op_ = "+=" if acc else "="
        if same:
            t = terms[0]
            self.b(f"for q in range({size}):")
            self.b(f"{o.at('q')} {op_} {t.at('q')}", 2)
            return
        # mixed sizes (size-1 terms broadcast) or directions: a loop
        if o.mode in ("param", "paramK", "totalK"):
            self.b("for k in range(K):" if o.is_k else "for k in range(1):")
            self.b(f"for j in range({n}):", 2)
            parts = []
            for t in terms:
                c = "j" if t.n > 1 else "0"
                parts.append(t.at(f"k * {t.n} + {c}") if t.is_k else t.at(c))
            tgt = o.at(f"k * {n} + j") if o.is_k else o.at("j")
            self.b(f"{tgt} {op_} " + " + ".join(parts), 3)
            return
        self.b("for i in range(B):")
        self.b("for k in range(K):" if o.is_k else "for k in range(1):", 2)
        self.b(f"for j in range({n}):", 3)
        parts = []
        for t in terms:
            c = " + j" if t.n > 1 else ""
            parts.append(t.at(f"(i * K + k) * {t.n}{c}" if t.is_k else f"i * {t.n}{c}"))
        tgt = o.at(f"(i * K + k) * {n} + j" if o.is_k else f"i * {n} + j")
        self.b(f"{tgt} {op_} " + " + ".join(parts), 4)

    def emit_penalty(self, op: P.Penalty) -> None:
        p, o = self.slot(op.param), self.slot(op.out)
        size = op.param.size
        coef = self.lit(float(op.coef))
        l1 = int(op.kind == "l1")
        if not op.grad:
            if p.is_k:
                raise CompileError("the value of a penalty has no tangent here")
            self.b(f"acc = {self.lit(0.0)}")
            idx = list(range(size)) if op.indices is None else list(op.indices)
            if op.indices is None:
                self.b(f"for j in range({size}):")
                e = p.at("j")
                self.b(f"acc += {'abs(' + e + ')' if l1 else e + ' * ' + e}", 2)
            else:
                for j in idx:
                    e = p.at(str(j))
                    self.b(f"acc += {'abs(' + e + ')' if l1 else e + ' * ' + e}")
            self.b(f"{o.arr} = {coef} * acc")
            return
        R = "K" if o.is_k else "1"
        st = str(size) if p.is_k else "0"
        if op.indices is None:
            self.b(f"_penalty_grad({p.arr}, {p.off}, {st}, {size}, {l1}, {coef}, "
                   f"{o.arr}, {o.off}, {R}, {self.acc})")
            return
        if not self.acc:
            self.b(f"for q in range({R} * {size}):")
            self.b(f"{o.at('q')} = {self.lit(0.0)}", 2)
        for j in op.indices:
            self.b(f"for k in range({R}):")
            src = p.at(f"k * {size} + {j}") if p.is_k else p.at(str(j))
            g = (f"{coef} * ({self.lit(1.0)} if {src} > 0 else ({self.lit(-1.0)} if {src} < 0 "
                 f"else {self.lit(0.0)}))" if l1 else f"{self.lit(2.0 * float(op.coef))} * {src}")
            self.b(f"{o.at(f'k * {size} + {j}')} += {g}", 2)


def _hoist_invariant(bodies, invariant: set, fresh):
    """Loop-invariant work out of a Map's loops: every largest subexpression of the bodies
    that reads only parameters and totals and calls a function or takes a power is computed
    once, before the loop (``h = fm_exp(-params[2])``), and read inside it.

    Besides the saved work, this keeps LLVM from a pathological case: nested fast-math
    calls on a loop-invariant value (``fm_exp(-fm_exp(-fm_exp(-params[2])))`` inside a
    per-sample loop) took it minutes to optimise.  The hoisted expression is printed as it
    would have been inside the loop, so results do not change.  Returns
    ``(new bodies, [(symbol, expression), …])``."""
    found: dict = {}

    def visit(e):
        if e.is_Atom or not isinstance(e, sp.Expr):
            if not e.is_Atom:
                for arg in e.args:
                    visit(arg)
            return
        fs = e.free_symbols
        if fs and fs <= invariant and (e.atoms(sp.Function) or e.atoms(sp.Pow)):
            if e not in found:
                found[e] = sp.Symbol(fresh(), real=True)
            return
        for arg in e.args:
            visit(arg)

    for body in bodies:
        visit(body)
    if not found:
        return bodies, []
    return [b.xreplace(found) for b in bodies], [(h, e) for e, h in found.items()]


def _canonical(op: P.Map):
    """A Map's bodies in canonical symbols (one per value or fixed component read), with
    ``DiracDelta`` replaced by 0 (the subgradient convention)."""
    subs, args = {}, {}
    for a in op.args:
        cname = a.var.name if a.index is None else f"{a.var.name}__{a.index}"
        sym = sp.Symbol(cname, real=True)
        subs[a.symbol] = sym
        args[sym] = a
    exprs = []
    for e in op.exprs:
        e = sp.sympify(e).xreplace(subs)
        if e.has(sp.DiracDelta):
            e = e.replace(sp.DiracDelta, lambda *x: sp.S.Zero)
        exprs.append(e)
    return exprs, args


def _drop_dirac(ops):
    """Maps whose bodies hold ``DiracDelta`` (the derivative of a step): replace it by 0
    and drop the arguments that no longer appear, so that pruning removes their producers."""
    out = []
    for op in ops:
        if isinstance(op, P.Map) and any(sp.sympify(e).has(sp.DiracDelta) for e in op.exprs):
            exprs = tuple(sp.sympify(e).replace(sp.DiracDelta, lambda *x: sp.S.Zero)
                          for e in op.exprs)
            used = set().union(*(e.free_symbols for e in exprs))
            op = replace(op, exprs=exprs, args=tuple(a for a in op.args if a.symbol in used))
        out.append(op)
    return out


#: Ops whose emitters can add into an existing value (``self.acc``).
_ACCUMULATING = (P.Affine, P.MatTVec, P.OuterMean, P.Map, P.Penalty, P.BatchMean, P.Add)


def _sum_plan(ops, kvars: set, keep: set):
    """Sums computed in place: ``s = t1 + t2`` where each term is used only by the sum.

    The terms are written into the sum's storage — the first writer (in program order)
    overwrites, the others add to it (BLAS ``beta = 1``) — and the sum op disappears.  In a
    Hessian-vector product that is ``ż = v_W a + v_b + W ȧ`` as two products into one
    buffer.  Sums of sums collapse into one storage.  Returns
    ``({value: (storage value, add?)}, {dropped sum ops})``."""
    uses: dict = {}
    index = {}
    for i, op in enumerate(ops):
        index[op.out] = i
        for v in op.inputs:
            uses[v] = uses.get(v, 0) + 1
    cands = {}
    for op in ops:
        terms = _sum_terms(op)
        if not terms or len(terms) < 2 or len(set(terms)) != len(terms):
            continue
        if op.out.kind == "total" or not all(
                t not in keep and t in index and uses.get(t, 0) == 1 and t.size == op.out.size
                and (t in kvars) == (op.out in kvars) and t.kind == op.out.kind
                for t in terms):
            continue
        cands[op.out] = (op, terms)
    def root(v, parent):
        while v in parent:
            v = parent[v]
        return v

    while True:
        parent = {t: s for s, (_, terms) in cands.items() for t in terms}
        writers: dict = {}
        for op in ops:
            if op.out in parent and op.out not in cands:
                writers.setdefault(root(op.out, parent), []).append(op)
        bad = []
        for r, ws in writers.items():
            if not all(isinstance(w, _ACCUMULATING) for w in ws[1:]) or any(
                    isinstance(w, P.BatchMean) and w.out.kind == "total" for w in ws):
                bad.append(r)
        if not bad:
            break
        for r in bad:
            cands.pop(r, None)
    plan = {}
    for r, ws in writers.items():
        for n, w in enumerate(ws):
            plan[w.out] = (r, 1 if n else 0)
    for s in cands:
        if s in parent:
            plan[s] = (root(s, parent), 1)
    return plan, {op for op, _ in cands.values()}


def _sum_values(ops) -> set:
    """Values of plain sums of products: kept out of Map fusion, so that :func:`_sum_plan`
    can compute them in place (``g = W₂ᵀ δ̇ + V₂ᵀ δ`` as two products into one buffer)."""
    gemm = (P.Affine, P.MatTVec, P.OuterMean)
    made = {op.out for op in ops if isinstance(op, gemm)}
    return {op.out for op in ops
            if isinstance(op, P.Map) and (_sum_terms(op) or [None])[0] in made}


def _sum_terms(op) -> list | None:
    """The terms of ``op`` if it is a plain elementwise sum of values, else None."""
    if isinstance(op, P.Add):
        return list(op.terms)
    if isinstance(op, P.Map) and len(op.exprs) == 1:
        e = sp.sympify(op.exprs[0])
        if not isinstance(e, sp.Add):
            return None
        bind = {a.symbol: a for a in op.args}
        terms = []
        for t in e.args:
            a = bind.get(t)
            if a is None or a.index is not None or not a.var.per_sample:
                return None
            terms.append(a.var)
        return terms
    return None


#: Code generation rules, one per op type (see the module docstring).
EMITTERS = {
    P.Affine: _KernelWriter.emit_affine,
    P.MatTVec: _KernelWriter.emit_mattvec,
    P.Map: _KernelWriter.emit_map,
    P.Softmax: _KernelWriter.emit_softmax,
    P.LogSumExp: _KernelWriter.emit_lse,
    P.Dot: _KernelWriter.emit_dot,
    P.SumComp: _KernelWriter.emit_sumcomp,
    P.BatchMean: _KernelWriter.emit_batchmean,
    P.OuterMean: _KernelWriter.emit_outermean,
    P.Add: _KernelWriter.emit_add,
    P.Penalty: _KernelWriter.emit_penalty,
}


def _describe(op: P.Op) -> str:
    """A one-line comment for the op's code."""
    if isinstance(op, P.Map):
        subs = {a.symbol: sp.Symbol(a.var.name if a.index is None else f"{a.var.name}[{a.index}]")
                for a in op.args}
        bodies = [str(sp.sympify(e).xreplace(subs)) for e in op.exprs]
        text = f"{op.out.name} = " + (bodies[0] if len(bodies) == 1
                                      else "[" + "; ".join(bodies) + "]")
    elif isinstance(op, P.Affine):
        text = f"{op.out.name} = {op.W.name} {op.a.name}" + (f" + {op.b.name}" if op.b else "")
    elif isinstance(op, P.MatTVec):
        text = f"{op.out.name} = {op.W.name}ᵀ {op.g.name}"
    elif isinstance(op, P.OuterMean):
        text = f"{op.out.name} = batch mean of {op.u.name} {op.v.name}ᵀ"
    elif isinstance(op, P.BatchMean):
        text = f"{op.out.name} = batch mean of {op.u.name}"
    elif isinstance(op, P.Penalty):
        what = "gradient of the " if op.grad else ""
        text = f"{op.out.name} = {what}{op.kind.upper()} penalty {op.coef} on {op.param.name}"
    elif isinstance(op, P.Dot):
        text = f"{op.out.name} = {op.u.name} · {op.v.name}"
    elif isinstance(op, P.SumComp):
        text = f"{op.out.name} = sum of the components of {op.u.name}"
    else:
        text = f"{op.out.name} = {type(op).__name__}({', '.join(v.name for v in op.inputs)})"
    text = " ".join(text.split())
    return text if len(text) <= 100 else text[:97] + "..."


def _softmax_lse_pairs(ops) -> dict:
    """A Softmax and a LogSumExp of the same logits share one pass (at the first)."""
    first: dict = {}
    pairs: dict = {}
    for op in ops:
        if isinstance(op, (P.Softmax, P.LogSumExp)):
            prev = first.get(op.z)
            if prev is None:
                first[op.z] = op
            elif type(prev) is not type(op) and prev not in pairs:
                pairs[prev] = op
    return pairs


# ------------------------------------------------------------------------------------------
# the module
# ------------------------------------------------------------------------------------------


class _Generator:
    def __init__(self, derived, dtype: str, fast: bool):
        self.d = derived
        self.dtype = np.dtype(dtype).name
        self.fast = fast
        self.identity_tangents: set = set()
        self.params = derived.params
        self.layout = []
        off = 0
        for p in self.params:
            self.layout.append((p.name, tuple(p.shape), off))
            off += p.size
        self.n_params = off
        self.x = derived.x
        self.y = derived.y
        self.pred = derived.meta["prediction"]
        self.name = _ident(getattr(derived.declared, "name", "net"))

    def seeds(self, with_y: bool) -> dict:
        seeds = {self.x: Slot(self.x, "sample", "X")}
        if with_y:
            seeds[self.y] = Slot(self.y, "sample", "Y")
        for (_name, _shape, off), p in zip(self.layout, self.params):
            seeds[p] = Slot(p, "param", "params", str(off))
        return seeds

    @staticmethod
    def prune(ops, outputs):
        return P.Program(_drop_dirac(ops), {}, {}).needed(outputs).ops

    # -- first-order kernels -----------------------------------------------------------------
    def base_kernel(self, kind: str):
        prog = self.d.program
        fname = f"{self.name}_{'loss_grad' if kind == 'loss_and_grad' else kind}"
        w = _KernelWriter(self, kind, fname)
        L = prog.outputs["loss"]
        grads = [prog.outputs["grad:" + p.name] for p in self.params]
        outs = {"predict": [self.pred], "loss": [L]}.get(kind, [L] + grads)
        ops = self.prune(prog.ops, outs)
        ops = fuse_maps(ops, set(outs) | _sum_values(ops))
        seeds = self.seeds(any(self.y in op.inputs for op in ops))
        header = [f"B = X.shape[0] // {self.x.size}"]
        fixed = {}
        if kind == "predict":
            if self.pred in seeds:
                raise CompileError("the prediction is the input itself")
            fixed[self.pred] = Slot(self.pred, "sample", "out")
            args = ("params", "X", "out", "work")
            doc = f"Prediction of {self.name!r}: out (B·{self.pred.size},) ← ŷ(X; params)."

            def epilogue(w):
                return []
        elif kind == "loss":
            args = ("params", "X", "Y", "work")
            doc = f"The batch loss L of {self.name!r}."

            def epilogue(w):
                return [f"return {w.slot(L).arr}"]
        else:
            for (_name, _shape, off), g in zip(self.layout, grads):
                if g not in seeds and g not in fixed:
                    fixed[g] = Slot(g, "param", "grad", str(off))
            args = ("params", "X", "Y", "grad", "work")
            doc = (f"Loss and gradient of {self.name!r}: returns L and writes ∂L/∂params "
                   "into grad (θ layout).")

            def epilogue(w):
                lines = []
                for (_name, _shape, off), g in zip(self.layout, grads):
                    s = w.slot(g)
                    if not (s.arr == "grad" and s.off == str(off)):
                        lines.append(f"_copy_rows({s.arr}, {s.off}, 0, grad, {off}, 0, 1, "
                                     f"{g.size})")
                lines.append(f"return {w.slot(L).arr}")
                return lines

        lines = w.write(ops, seeds, fixed, header, epilogue, args, doc)
        return w, Kernel(kind, fname, args, doc), lines

    # -- tangent kernels -------------------------------------------------------------------
    def tangent_kernel(self, kind: str):
        d = self.d
        fname = f"{self.name}_{kind}"
        w = _KernelWriter(self, kind, fname)
        if kind in ("hvp", "gnvp"):
            extra, tangents, outs = (hvp_program if kind == "hvp" else gnvp_program)(d)
            out_vars = [outs[p.name] for p in self.params]
            seeds_t = list(tangents.values())
        else:
            extra, x_dot, pred_dot = input_jvp_program(d)
            out_vars = [pred_dot] if pred_dot is not None else []
            seeds_t = [x_dot]
        ops = self.prune(list(d.program.ops) + list(extra), out_vars)
        kset = set(seeds_t)
        base, kops = [], []
        for op in ops:
            if any(v in kset for v in op.inputs):
                kset.add(op.out)
                kops.append(op)
            else:
                base.append(op)
        need = {v for op in kops for v in op.inputs} | set(out_vars)
        ops = (fuse_maps(base, need | _sum_values(base))
               + fuse_maps(kops, set(out_vars) | _sum_values(kops)))
        seeds = self.seeds(any(self.y in op.inputs for op in ops))
        w.kvars = set(seeds_t)
        P_ = self.n_params
        fixed = {}
        if kind in ("hvp", "gnvp"):
            header = [f"B = X.shape[0] // {self.x.size}", f"K = V.shape[0] // {P_}"]
            first = None
            for (_name, _shape, _off), p in zip(self.layout, self.params):
                t = tangents[p]
                o = w.carve(t.name, "K", t.size)
                first = first or o
                seeds[t] = Slot(t, "paramK", "work", o)
            w.pre.append(f"_blocks(V, 0, K, {P_}, _LAYOUT, work, {first}, 1)")
            # the products, one block per parameter in θ order, packed into out at the end
            packed = (len(set(out_vars)) == len(out_vars)
                      and all(v in kset and v not in seeds for v in out_vars))
            out_first = None
            if packed:
                for v in out_vars:
                    s = Slot(v, "paramK", "work", w.carve(v.name, "K", v.size))
                    fixed[v] = s
                    out_first = out_first or s.off
            args = ("params", "V", "X", "Y", "out", "work")
            what = "Hessian" if kind == "hvp" else "Gauss-Newton"
            doc = (f"{what}-vector products of {self.name!r}: out[k] ← "
                   f"{'H' if kind == 'hvp' else 'G'} V[k] for the K directions in V "
                   f"(K·{P_},), θ layout.")

            def epilogue(w):
                if packed:
                    return [f"_blocks(work, {out_first}, K, {P_}, _LAYOUT, out, 0, 0)"]
                lines = []
                for (_name, _shape, off), ov in zip(self.layout, out_vars):
                    s = w.slot(ov)
                    ss = str(ov.size) if s.is_k else "0"
                    lines.append(f"_copy_rows({s.arr}, {s.off}, {ss}, out, {off}, {P_}, K, "
                                 f"{ov.size})")
                return lines
        else:
            n_in, n_out = self.x.size, self.pred.size
            self.identity_tangents = {x_dot}
            header = [f"B = X.shape[0] // {n_in}", f"K = {n_in}"]
            o = w.carve("x_dot", "BK", n_in)
            seeds[x_dot] = Slot(x_dot, "sampleK", "work", o)
            w.pre += [
                f"for q in range(B * K * {n_in}):",
                f"    work[{o} + q] = {w.lit(0.0)}",
                "for i in range(B):",
                "    for k in range(K):",
                f"        work[{o} + (i * K + k) * {n_in} + k] = {w.lit(1.0)}",
            ]
            args = ("params", "X", "out", "work")
            doc = (f"Input Jacobian of {self.name!r}: out[i] ← ∂ŷ/∂x at sample i, "
                   f"(B·{n_out}·{n_in},).")

            def epilogue(w):
                if not out_vars:
                    return ["for q in range(out.shape[0]):", f"    out[q] = {w.lit(0.0)}"]
                s = w.slot(out_vars[0])
                if not s.is_k:
                    raise CompileError("the prediction does not depend on the input")
                return ["for i in range(B):",
                        f"    _swap01({s.arr}, {_plus(s.off, f'i * K * {n_out}')}, K, "
                        f"{n_out}, 1, out, i * {n_out * n_in}, 0)"]

        lines = w.write(ops, seeds, fixed, header, epilogue, args, doc)
        self.identity_tangents = set()
        return w, Kernel(kind, fname, args, doc), lines

    def module(self) -> GeneratedModule:
        parts, kernels, work = [], {}, {}
        for kind in ("predict", "loss", "loss_and_grad"):
            parts.append(self.base_kernel(kind))
        for kind in ("hvp", "gnvp", "jacobian"):
            parts.append(self.tangent_kernel(kind))
        for w, k, _ in parts:
            u = w.work_units
            work[k.kind] = (u["B"], u["BK"], u["K"], u["one"])
        used = set()
        for w, k, _ in parts:
            used |= w.printer.used
            kernels[k.kind] = k
        text = "\n".join(ln for _, _, lines in parts for ln in lines)
        blocks = sorted(n for n in _RUNTIME if re.search(rf"\b{n}\(", text))
        blocks += sorted(u for u in used if u in ("_sigmoid", "_softplus"))
        fmn = sorted(u for u in used if u.startswith("fm_"))
        decl = self.d.declared
        layout = ", ".join(f"{o}, {int(np.prod(s, dtype=np.int64))}" for n, s, o in self.layout)
        lines = [
            f"# symnn generated kernels — {type(decl).__name__.lower()} {self.name!r}",
            f"#   {_oneline(repr(decl))}",
            f"#   dtype {self.dtype}; {self.n_params} parameters; elementary functions from "
            + ("symnn.codegen.fastmath" if self.fast else "math"),
            "#   θ layout: " + ", ".join(f"{n}{list(s)}@{o}" for n, s, o in self.layout),
            "#   Generated by symnn.codegen.numba_gen from the derived program; do not edit.",
            f"#   runtime {runtime_fingerprint()[:16]}",
            "import math",
            "",
            "import numpy as np",
            "from numba import njit",
        ]
        if fmn:
            lines.append(f"from symnn.codegen.fastmath import {', '.join(fmn)}")
        if blocks:
            lines.append(f"from symnn.codegen.numba_gen import {', '.join(blocks)}")
        lines += [
            "",
            f"_f = np.{self.dtype}",
            "_u = np.uint64  # unsigned indices: no negative-index test, so loops vectorise",
            "#: (offset, size) in θ of every parameter",
            f"_LAYOUT = np.array([{layout}], dtype=np.int64)",
        ]
        op_lines = []
        for w, _k, text in parts:
            lines += ["", ""]
            base = len(lines)
            lines += text
            op_lines += [(base + ln + 1, f"{w.fname}: {t}") for ln, t in w.op_starts]
        return GeneratedModule(
            source="\n".join(lines) + "\n",
            kernels=kernels,
            layout=self.layout,
            n_params=self.n_params,
            n_inputs=self.x.size,
            n_outputs=self.pred.size,
            dtype=self.dtype,
            fast=self.fast,
            op_lines=op_lines,
            work=work,
        )


def _oneline(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 150 else text[:147] + "..."


def generate(derived, dtype: str = "float64", fast: bool | None = None) -> GeneratedModule:
    """Generate the kernel module of a derived network or model.

    Parameters
    ----------
    derived : Derived
        From :func:`symnn.derive.derive`.
    dtype : {"float64", "float32"}
    fast : bool, optional
        Use :mod:`symnn.codegen.fastmath` (default: when it is importable).

    Returns
    -------
    GeneratedModule

    Raises
    ------
    CompileError
        When an op has no code generation rule or its code cannot be generated; the
        message names the kernel and the op.

    Examples
    --------
    >>> import symnn
    >>> from symnn.derive import derive
    >>> g = generate(derive(symnn.mlp([2, 2, 1], activation="sigmoid", loss="mse")))
    >>> g.kernels["loss_and_grad"].name
    'mlp_loss_grad'
    """
    if fast is None:
        fast = fastmath_available()
    return _Generator(derived, dtype, fast).module()
