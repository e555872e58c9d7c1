"""Numba building blocks of the :mod:`peers` Numba peer: a vectorisable tanh/exp and a
direct BLAS ``dgemm``."""

from __future__ import annotations

import llvmlite.binding as ll
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address, intrinsic

# --------------------------------------------------------------------------------------
# Numba: vectorisable tanh/exp
# --------------------------------------------------------------------------------------


@intrinsic
def _f64_as_i64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64 (LLVM ``bitcast``, vectorisable)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@intrinsic
def _i64_as_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (LLVM ``bitcast``, vectorisable)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93145751953125e-1  # Cody-Waite split of ln 2 (Cephes)
_LN2_LO = 1.42860682030941723212e-6
_ROUND_SHIFT = 6755399441055744.0  # 1.5 * 2**52: x + shift rounds x to an integer


@njit(error_model="numpy", cache=True)
def _exp_approx(x):
    """``exp(x)`` for ``-708 <= x <= 708``, ~1.6 ulp, branch-free (Cephes Padé).

    ``n = round(x / ln 2)`` is obtained with the ``1.5 * 2**52`` shifter, so ``2**n`` is
    built from the shifted value's low bits without a float->int conversion; every
    operation maps to an AVX2 instruction and the loops calling it vectorise.
    """
    kd = x * _LOG2E + _ROUND_SHIFT
    n = kd - _ROUND_SHIFT
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    rr = r * r
    px = r * (
        (1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
        + 9.99999999999999999910e-1
    )
    qx = (
        (3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
        + 2.27265548208155028766e-1
    ) * rr + 2.00000000000000000009e0
    e = 1.0 + 2.0 * px / (qx - px)
    # low bits of kd hold n (two's complement); shifting by 52 drops the shifter's bits.
    return e * _i64_as_f64((_f64_as_i64(kd) + 1023) << 52)


@njit(error_model="numpy", cache=True)
def _tanh_approx(x):
    """Branch-free ``tanh(x)`` (Cephes algorithm), max error ~1.4 ulp over the reals.

    ``|x| < 0.625``: ``x + x^3 P(x^2)/Q(x^2)``; otherwise ``1 - 2/(exp(2|x|) + 1)`` with the
    inline :func:`_exp_approx` (argument clamped at 40, where ``tanh`` rounds to 1).
    Both branches are computed and one is selected, so loops over it vectorise.
    NaN propagates; the sign of ``-0.0`` is not preserved.
    """
    ax = abs(x)
    z = x * x
    p = x + x * z * (
        ((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3)
        / (
            ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
            + 4.84406305325125486048e3
        )
    )
    s = _exp_approx(min(2.0 * ax, 40.0))
    q = 1.0 - 2.0 / (s + 1.0)
    q = q if x >= 0.0 else -q
    return p if ax < 0.625 else q


@njit(error_model="numpy", cache=True)
def _tanh_array(x, out):
    for i in range(x.size):
        out[i] = _tanh_approx(x[i])


def numba_tanh(x: np.ndarray) -> np.ndarray:
    """Elementwise ``tanh`` with the inline approximation used by the Numba kernels.

    Provided for testing its accuracy (max ~1.4 ulp vs. ~1.2 ulp for ``np.tanh``).

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        float64, same shape as ``x``.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _tanh_array(x.reshape(-1), out.reshape(-1))
    return out


# --------------------------------------------------------------------------------------
# Numba: BLAS dgemm called directly (scipy's LP64 OpenBLAS, the one numba's np.dot uses)
# --------------------------------------------------------------------------------------

# Calling dgemm through a named external symbol (instead of np.dot) gives alpha/beta
# accumulation and free transposes, and compiles several times faster than np.dot's
# generic lowering; the symbol is re-registered on import, so on-disk caching works.
_DGEMM_SYMBOL = "symnn_bench_peers_dgemm"
ll.add_symbol(_DGEMM_SYMBOL, get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))
_dgemm = types.ExternalFunction(_DGEMM_SYMBOL, types.void(*([types.voidptr] * 13)))


@njit(
    "void(boolean, boolean, float64, float64[:, ::1], float64[:, ::1], float64, float64[:, ::1])",
    cache=True,
)
def _gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """Row-major ``C = alpha * op(A) @ op(B) + beta * C`` on 2-D C-contiguous arrays.

    A row-major matrix is its transpose in column-major terms, so this calls the
    column-major ``C.T = op(B).T @ op(A).T``. The explicit signature keeps numba from
    compiling one specialisation per literal ``trans_a``/``trans_b`` combination.
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    ib = np.empty(8, np.int32)
    db = np.empty(2)
    ib[0] = n
    ib[1] = m
    ib[2] = k
    ib[3] = B.shape[1]  # ldb
    ib[4] = A.shape[1]  # lda
    ib[5] = n  # ldc
    ib[6] = 84 if trans_b else 78  # 'T' / 'N'
    ib[7] = 84 if trans_a else 78
    db[0] = alpha
    db[1] = beta
    _dgemm(
        ib[6:].ctypes,
        ib[7:].ctypes,
        ib.ctypes,
        ib[1:].ctypes,
        ib[2:].ctypes,
        db.ctypes,
        B.ctypes,
        ib[3:].ctypes,
        A.ctypes,
        ib[4:].ctypes,
        db[1:].ctypes,
        C.ctypes,
        ib[5:].ctypes,
    )
