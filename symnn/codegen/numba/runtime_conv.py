"""Runtime blocks of the 1-D convolutions: im2col and one BLAS product per sample.

For a geometry ``C_in, L_in → C_out, L_out`` with kernel ``k`` (stride ``s``, padding ``p``)
and ``m = C_in·k``, the *columns* of a sample ``x`` (``C_in × L_in``) are the ``m × L_out``
matrix ``col[(r, j), q] = x[r, q·s + j − p]`` (0 outside the input).  Then

* ``Conv1D``:    ``z = W col(x) (+ b)``           — ``(C_out × m)(m × L_out)``;
* ``ConvWMean``: ``M += scale · u col(v)ᵀ``       — ``(C_out × L_out)(L_out × m)``;
* ``ConvT1D``:   ``x̄ = col⁻¹(Wᵀ h)``              — ``(m × C_out)(C_out × L_out)``, whose
  columns are added back where they were read (col2im).

so each is one ``?gemm`` per sample (and tangent direction) of ``C_out·m·L_out``
multiply-adds, on a scratch of ``m·L_out`` values (``col``), instead of loops whose weight
gradient is a strict, unvectorised sum.  BLAS reorders these sums, as it does every matrix
product of the kernels.  The code generator (:mod:`symnn.codegen.numba.emit_conv`) calls
these blocks for convolutions of at least :data:`~symnn.codegen.numba.emit_conv.BLAS_MADDS`
multiply-adds a sample, and loops below — except Conv1D and ConvT1D at stride 1, which it
emits as direct loops (faster than a product a sample at these sizes).

Every operand is addressed as ``off + i·bs + k·ks`` — sample ``i``, direction ``k``
(``bs``, ``ks`` are 0 for what does not vary with them: a parameter, a value without
directions); ``K`` is the number of directions of the output (1 without).  The functions
are plain here: :mod:`symnn.codegen.numba.runtime` compiles and registers the blocks
(:data:`SPECS`), so that generated kernels import every block from there.
"""

from __future__ import annotations

import numba
import numpy as np

from symnn.codegen.numba._stamp import install as _stamp_cache  # walk, round 6
from symnn.codegen.numba.gemm import _gemm  # BLAS or host-compiled tiles (issue 16)

_stamp_cache()  # walk, round 6: Numba's cache of these blocks keyed on every runtime file

__all__ = ["SPECS"]

_u = np.uint64  # an index cast to unsigned skips the negative-index test, so loops vectorise

#: The blocks' signatures (letters as in :func:`symnn.codegen.numba.runtime.prepare_runtime`).
SPECS = {
    "_conv_fwd": "v:aiiaiiiaiiiaiiiiiiiiiiiiai",
    "_conv_wmean": "v:aiiiaiiiaiiiiiiiiiisiaii",
    "_conv_t": "v:aiiaiiiaiiiiiiiiiiiiai",
}


@numba.njit(error_model="numpy", cache=True)
def _im2col(X, ox, ci, li, lo, kw, st, pd, col, oc):
    """col[oc:] (ci·kw, lo) ← the columns of X[ox:] (ci, li): ``X[r, q·st + j − pd]``, 0
    outside the input."""
    for r in range(ci):
        for j in range(kw):
            o = oc + (r * kw + j) * lo
            x = ox + r * li + j - pd
            q0 = min(lo, max(0, (pd - j + st - 1) // st))
            q1 = max(q0, min(lo, (li - 1 + pd - j) // st + 1))
            for q in range(q0):
                col[_u(o + q)] = 0.0
            if st == 1:
                for q in range(q0, q1):
                    col[_u(o + q)] = X[_u(x + q)]
            else:
                for q in range(q0, q1):
                    col[_u(o + q)] = X[_u(x + q * st)]
            for q in range(q1, lo):
                col[_u(o + q)] = 0.0


@numba.njit(error_model="numpy", cache=True)
def _col2im(col, oc, ci, li, lo, kw, st, pd, acc, out, oo):
    """out[oo:] (ci, li) (+)= the columns col[oc:] (ci·kw, lo) added where they were read."""
    if not acc:
        for q in range(ci * li):
            out[_u(oo + q)] = 0.0
    for r in range(ci):
        for j in range(kw):
            o = oc + (r * kw + j) * lo
            x = oo + r * li + j - pd
            q0 = min(lo, max(0, (pd - j + st - 1) // st))
            q1 = max(q0, min(lo, (li - 1 + pd - j) // st + 1))
            if st == 1:
                for q in range(q0, q1):
                    out[_u(x + q)] += col[_u(o + q)]
            else:
                for q in range(q0, q1):
                    out[_u(x + q * st)] += col[_u(o + q)]


@numba.njit(error_model="numpy", cache=True)
def _bias_rows(out, o0, rows, n, bias, b0, acc):
    """out[o0:] (rows, n): every row r set to (or, acc, added) bias[b0 + r]."""
    for r in range(rows):
        e = bias[_u(b0 + r)]
        o = o0 + r * n
        if acc:
            for q in range(n):
                out[_u(o + q)] += e
        else:
            for q in range(n):
                out[_u(o + q)] = e


def _conv_fwd(W, ow, wks, X, ox, xbs, xks, bias, ob, bks, hasb, out, oo, obs, oks, B, K,
             ci, li, co, kw, st, pd, acc, col, oc):
    """out (co, lo) (+)= W_k (co, ci·kw) · col(X_ik) (+ bias_k per row) for every sample i and
    direction k.  X without directions and W with them (a tangent weight): the K weights are
    one (K·co, ci·kw) matrix, one product a sample."""
    m = ci * kw
    lo = (li + 2 * pd - kw) // st + 1
    stacked = K > 1 and xks == 0 and wks == co * m and oks == co * lo and (
        not hasb or bks == co)
    for i in range(B):
        for k in range(1 if stacked else K):
            x0 = ox + i * xbs + k * xks
            if k == 0 or xks != 0:
                _im2col(X, x0, ci, li, lo, kw, st, pd, col, oc)
            o0 = oo + i * obs + k * oks
            rows = K * co if stacked else co
            if hasb:
                _bias_rows(out, o0, rows, lo, bias, ob + k * bks, acc)
            beta = 1.0 if (acc or hasb) else 0.0
            _gemm(0, 0, rows, lo, m, 1.0, W, ow + k * wks, m, col, oc, lo, beta, out, o0, lo)


def _conv_wmean(U, ou, ubs, uks, V, ov, vbs, vks, out, oo, oks, B, K, ci, li, co, kw, st, pd,
               scale, acc, col, oc, ot):
    """out_k (co, ci·kw) (+)= scale · Σ_i U_ik (co, lo) · col(V_ik)ᵀ: the batch mean of the
    weight gradients.  U with directions and V without: the K directions of U are one
    (K·co, lo) matrix, one product a sample.  The products are summed transposed,
    col(V_ik) · U_ikᵀ (ci·kw × co), in ``col[ot:]`` (K·co·ci·kw values), which BLAS computes
    faster at these shapes, and added to out at the end."""
    m = ci * kw
    lo = (li + 2 * pd - kw) // st + 1
    for q in range(K * co * m):
        col[_u(ot + q)] = 0.0
    stacked = K > 1 and vks == 0 and uks == co * lo and oks == co * m
    rows = K * co if stacked else co
    for i in range(B):
        for k in range(1 if stacked else K):
            v0 = ov + i * vbs + k * vks
            if k == 0 or vks != 0:
                _im2col(V, v0, ci, li, lo, kw, st, pd, col, oc)
            _gemm(0, 1, m, rows, lo, scale, col, oc, lo, U, ou + i * ubs + k * uks, lo, 1.0,
                  col, ot + k * co * m, rows)
    for k in range(K):  # stacked: one (m, K·co) sum, direction k its columns k·co …
        t0, ld = (ot + k * co, K * co) if stacked else (ot + k * co * m, co)
        for c in range(co):
            o = oo + k * oks + c * m
            for q in range(m):
                e = col[_u(t0 + q * ld + c)]
                if acc:
                    out[_u(o + q)] += e
                else:
                    out[_u(o + q)] = e


def _conv_t(W, ow, wks, H, oh, hbs, hks, out, oo, obs, oks, B, K, ci, li, co, kw, st, pd,
           acc, col, oc):
    """out_ik (ci, li) (+)= col⁻¹(W_kᵀ H_ik): the adjoint of the convolution, the columns
    W_kᵀ H_ik (ci·kw, lo) added where a convolution reads them."""
    m = ci * kw
    lo = (li + 2 * pd - kw) // st + 1
    for i in range(B):
        for k in range(K):
            _gemm(1, 0, m, lo, co, 1.0, W, ow + k * wks, m, H, oh + i * hbs + k * hks, lo, 0.0,
                  col, oc, lo)
            _col2im(col, oc, ci, li, lo, kw, st, pd, acc, out, oo + i * obs + k * oks)
