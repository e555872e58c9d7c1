"""Register-blocked float64 matrix products compiled by Numba for the host processor, and
the switch between them and BLAS (issue 16).

The runtime blocks' products (:mod:`symnn.codegen.numba.runtime`) call :func:`_gemm` of this
module, with the contract of :func:`symnn.codegen.numba._blas._gemm` (row-major
``C ← alpha·op(A)·op(B) + beta·C`` on flat arrays at offsets).  It takes one of two paths:

* **BLAS** — ``?gemm`` of SciPy's OpenBLAS, as before;
* **tiles** — 8 × 16 blocks of ``C`` held in sixteen 8-wide vector registers across the
  contraction (LLVM's ``<8 x double>`` and ``llvm.fma``), the contraction cut into panels of
  256.  LLVM compiles this for the host, so on an AVX-512 processor it runs AVX-512 whatever
  kernels the installed BLAS picked (an ``OPENBLAS_CORETYPE`` pin to Haswell, a BLAS that does
  not know the processor).  Rows and columns beyond the last whole block, other ``beta``
  values, float32 and small products go to BLAS.

:func:`set_gemm` chooses: ``"auto"`` (the default) takes tiles where the host has AVX-512F
(where they were measured faster, ``benchmarks/bench_blas.py``) and BLAS elsewhere;
``"tiles"`` and ``"blas"`` force a path (on a processor without AVX-512 the tiles are correct
but slow: 8-wide vectors are split and spill).  The environment variable ``SYMNN_GEMM``, read
once at import, sets the initial choice.  The choice is a flag read at run time by compiled
code (an external symbol resolved when the code is loaded), so it takes effect at once, for
kernels already compiled or loaded from a cache.  Both paths sum in a different order from
each other, as BLAS already does: results agree within rounding.

>>> from symnn.codegen.numba.gemm import gemm_mode, set_gemm
>>> previous = set_gemm("blas")
>>> gemm_mode()
'blas'
>>> _ = set_gemm(previous)
"""

from __future__ import annotations

import ctypes
import os

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir as llvmir
from numba.core import cgutils, types
from numba.extending import intrinsic

from symnn.codegen.numba._blas import _gemm as _blas_gemm
from symnn.codegen.numba._stamp import install as _stamp_cache  # walk, round 6
from symnn.errors import ArgumentError

_stamp_cache()  # walk, round 6: Numba's cache of these blocks keyed on every runtime file

__all__ = ["GEMM_MODES", "gemm_mode", "host_has_avx512", "set_gemm"]

#: The choices of :func:`set_gemm`.
GEMM_MODES = ("auto", "tiles", "blas")

MR, NV = 8, 2  # a tile: MR rows × NV vectors of 8 columns
NR = 8 * NV
KC = 256  # the contraction in panels of KC (A's and B's panels stay in the L2 cache)
MIN_MADDS = 1 << 15  # smaller products stay with BLAS (or the runtime's own loops)
#: op(B) = Bᵀ is copied transposed first; below this many rows the copy costs more than the
#: tiles save (measured: 2048-row products 1.9× faster than Haswell OpenBLAS, 64-row 1.05×
#: slower, 32-row 1.6× slower)
PACK_MIN_ROWS = 128

_SYMBOL = "symnn_gemm_tiles"
_FLAG = ctypes.c_int32(0)
llvm.add_symbol(_SYMBOL, ctypes.addressof(_FLAG))
_MODE = {"mode": "auto"}
#: Copies of the flag defined by ahead-of-time modules (symnn.codegen.aot), kept in step
_MIRRORS: list = []


def host_has_avx512() -> bool:
    """Whether the processor Numba compiles for has AVX-512F.

    >>> isinstance(host_has_avx512(), bool)
    True
    """
    return bool(llvm.get_host_cpu_features().get("avx512f", False))


def set_gemm(mode: str) -> str:
    """Choose the products' path: ``"auto"``, ``"tiles"`` or ``"blas"`` (see the module's
    docstring); returns the previous choice.

    >>> old = set_gemm("tiles"); gemm_mode()
    'tiles'
    >>> _ = set_gemm(old)
    >>> set_gemm("fast")
    Traceback (most recent call last):
    ...
    symnn.errors.ArgumentError: set_gemm: unknown mode 'fast'; use one of 'auto', 'tiles', 'blas'
    """
    if mode not in GEMM_MODES:
        raise ArgumentError(f"set_gemm: unknown mode {mode!r}; use one of "
                          + ", ".join(repr(m) for m in GEMM_MODES))
    old = _MODE["mode"]
    _MODE["mode"] = mode
    _FLAG.value = int(mode == "tiles" or (mode == "auto" and host_has_avx512()))
    for flag in _MIRRORS:
        flag.value = _FLAG.value
    return old


def mirror_flag(flag) -> None:
    """Keep ``flag`` (a ``ctypes.c_int32``: the switch an ahead-of-time module defines)
    equal to this process's switch, now and after every :func:`set_gemm`."""
    flag.value = _FLAG.value
    _MIRRORS.append(flag)


def gemm_mode() -> str:
    """The current choice of :func:`set_gemm`.

    >>> gemm_mode() in GEMM_MODES
    True
    """
    return _MODE["mode"]


set_gemm(os.environ.get("SYMNN_GEMM", "auto").strip().lower() or "auto")


@intrinsic
def _tiles_on(typingctx):
    """The flag of :func:`set_gemm`, read at run time (an external global, by name)."""

    def codegen(context, builder, signature, args):
        i32 = llvmir.IntType(32)
        mod = builder.module
        gv = mod.globals.get(_SYMBOL)
        if gv is None:
            gv = llvmir.GlobalVariable(mod, i32, _SYMBOL)
            gv.linkage = "external"
        return builder.icmp_signed("!=", builder.load(gv), i32(0))

    return types.boolean(), codegen


def _splat(builder, vec, x):
    i32 = llvmir.IntType(32)
    v = builder.insert_element(llvmir.Constant(vec, llvmir.Undefined), x, i32(0))
    return builder.shuffle_vector(v, llvmir.Constant(vec, llvmir.Undefined),
                                  llvmir.Constant(llvmir.VectorType(i32, 8), [0] * 8))


@intrinsic
def _tile(typingctx, A, oa, rsa, csa, Bm, ob, ldb, C, oc, ldc, kc, alpha, accum):
    """``C[oc:]`` (MR × NR, row stride ldc) ← alpha · Σ_{l<kc} A[oa + i·rsa + l·csa] ·
    Bm[ob + l·ldb + j] (added to C if accum): MR·NV accumulators of ``<8 x double>``."""
    sig = types.void(A, oa, rsa, csa, Bm, ob, ldb, C, oc, ldc, kc, alpha, accum)

    def codegen(context, builder, signature, args):
        A, oa, rsa, csa, Bm, ob, ldb, C, oc, ldc, kc, alpha, accum = args
        tys = signature.args
        dt = tys[0].dtype  # float64 runs; float32 only compiles (see _gemm)
        elem = context.get_value_type(dt)
        vec = llvmir.VectorType(elem, 8)
        i64 = llvmir.IntType(64)
        alpha = context.cast(builder, alpha, tys[11], dt)
        pa, pb, pc = (context.make_array(tys[i])(context, builder, x).data
                      for i, x in ((0, A), (4, Bm), (7, C)))
        fma = cgutils.get_or_insert_function(
            builder.module, llvmir.FunctionType(vec, [vec, vec, vec]),
            "llvm.fma.v8f64" if dt == types.float64 else "llvm.fma.v8f32")
        zero = llvmir.Constant(vec, [0.0] * 8)
        acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(NV)] for _ in range(MR)]

        def vptr(p, off):
            return builder.bitcast(builder.gep(p, [off]), vec.as_pointer())

        with cgutils.for_range(builder, kc) as loop:
            brow = builder.add(ob, builder.mul(loop.index, ldb))
            bv = [builder.load(vptr(pb, builder.add(brow, i64(8 * v))), align=8)
                  for v in range(NV)]
            acol = builder.add(oa, builder.mul(loop.index, csa))
            for i in range(MR):
                a = builder.load(builder.gep(pa, [builder.add(acol, builder.mul(rsa, i64(i)))]))
                s = _splat(builder, vec, a)
                for v in range(NV):
                    builder.store(builder.call(fma, [s, bv[v], builder.load(acc[i][v])]),
                                  acc[i][v])
        al = _splat(builder, vec, alpha)
        add = builder.icmp_signed("!=", accum, accum.type(0))
        for i in range(MR):
            crow = builder.add(oc, builder.mul(ldc, i64(i)))
            for v in range(NV):
                p = vptr(pc, builder.add(crow, i64(8 * v)))
                r = builder.fmul(builder.load(acc[i][v]), al)
                old = builder.load(p, align=8)  # read always, used only if accum: a NaN
                builder.store(builder.select(add, builder.fadd(old, r), r), p, align=8)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, error_model="numpy")
def _tiled(m0, n0, k, alpha, A, oa, rsa, csa, Bm, ob, ldb, acc, C, oc, ldc):
    """The whole tiles of ``C`` (m0 × n0, multiples of MR and NR): panels of KC, then tile
    rows, then tiles across."""
    for k0 in range(0, k, KC):
        kc = min(KC, k - k0)
        accum = 1 if (acc or k0 > 0) else 0
        for i0 in range(0, m0, MR):
            for j0 in range(0, n0, NR):
                _tile(A, oa + i0 * rsa + k0 * csa, rsa, csa, Bm, ob + k0 * ldb + j0, ldb,
                      C, oc + i0 * ldc + j0, ldc, kc, alpha, accum)


@numba.njit(cache=True, error_model="numpy")
def _gemm_tiles(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc):
    """Tiles where whole ones fit, BLAS for the rows and columns left over.  op(B) = Bᵀ is
    first copied transposed (k × n), so that a tile reads rows of B."""
    m0 = m - m % MR
    n0 = n - n % NR
    rsa, csa = (1, lda) if ta else (lda, 1)
    acc = beta != 0.0
    if tb:
        T = np.empty(k * n0, dtype=Bm.dtype)
        for j in range(n0):
            for l in range(k):
                T[l * n0 + j] = Bm[ob + j * ldb + l]
        _tiled(m0, n0, k, alpha, A, oa, rsa, csa, T, 0, n0, acc, C, oc, ldc)
    else:
        _tiled(m0, n0, k, alpha, A, oa, rsa, csa, Bm, ob, ldb, acc, C, oc, ldc)
    if n0 < n:  # the columns left over, on the whole rows
        _blas_gemm(ta, tb, m0, n - n0, k, alpha, A, oa, lda, Bm, ob + n0 * (ldb if tb else 1),
                   ldb, beta, C, oc + n0, ldc)
    if m0 < m:  # the rows left over, every column
        _blas_gemm(ta, tb, m - m0, n, k, alpha, A, oa + m0 * rsa, lda, Bm, ob, ldb, beta,
                   C, oc + m0 * ldc, ldc)


@numba.njit(cache=True, error_model="numpy")
def _gemm(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc):
    """``C[oc:]`` (m × n, row stride ldc) ← alpha·op(A[oa:])·op(Bm[ob:]) + beta·C, as
    :func:`symnn.codegen.numba._blas._gemm`: tiles when :func:`set_gemm` allows, the
    product is float64, large enough, ``beta`` is 0 or 1, one tile fits and (for op(B) = Bᵀ)
    it has :data:`PACK_MIN_ROWS` rows; else BLAS."""
    if (_is_f64(A) and _tiles_on() and m >= MR and n >= NR and m * n * k >= MIN_MADDS
            and (beta == 0.0 or beta == 1.0) and (tb == 0 or m >= PACK_MIN_ROWS)):
        _gemm_tiles(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)
    else:
        _blas_gemm(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)


@intrinsic
def _is_f64(typingctx, A):
    """True (a constant) for a float64 array: the tiles are float64 only."""
    is64 = A.dtype == types.float64

    def codegen(context, builder, signature, args):
        return context.get_constant(types.boolean, is64)

    return types.boolean(A), codegen
