"""Register-blocked float64 and float32 matrix products compiled by Numba for the host
processor, split over threads for large products, and the switch between them and BLAS
(issue 16).

The runtime blocks' products (:mod:`symnn.codegen.numba.runtime`) call :func:`_gemm` of this
module, with the contract of :func:`symnn.codegen.numba._blas._gemm` (row-major
``C ← alpha·op(A)·op(B) + beta·C`` on flat arrays at offsets).  It takes one of two paths:

* **BLAS** — ``?gemm`` of SciPy's OpenBLAS, as before;
* **tiles** — 8 × 16 blocks of ``C`` held in sixteen 8-wide vector registers across the
  contraction (LLVM's ``<8 x double>`` and ``llvm.fma``), the contraction cut into panels of
  256.  LLVM compiles this for the host, so on an AVX-512 processor it runs AVX-512 whatever
  kernels the installed BLAS picked (an ``OPENBLAS_CORETYPE`` pin to Haswell, a BLAS that does
  not know the processor).  Rows and columns beyond the last whole block, other ``beta``
  values and small products go to BLAS.  float32 has its own tiles, 8 × 32 in sixteen
  ``<16 x float>`` registers.
* **tiles over threads** — when allowed (:func:`set_gemm_threads`, off by default) and :func:`numba.get_num_threads` is
  above 1 on the calling thread, a product of at least :data:`SPLIT_MIN_MADDS`
  multiply-adds splits its 8-row blocks over the threads (:func:`_split_rows`, a ``prange``
  region).  Compiled kernels reach it through a C entry whose address they read at run time
  (as the switch), so that no threading runtime is linked into them; every element is the
  same sum as on one thread, so the bits do not change.  On a machine whose cores are busy
  with other work the threads wait on each other, as BLAS's do (with GNU OpenMP, Numba's
  usual layer on Linux, they spin: a B = 2048 gradient took 100 ms instead of 8 ms at a
  load of 10 on 2 cores); ``numba.set_num_threads(1)`` or ``set_gemm_threads(False)``
  keeps the products on the calling thread.

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

__all__ = ["GEMM_MODES", "gemm_mode", "host_has_avx512", "set_gemm", "set_gemm_threads"]

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
#: hvp, round 7: op(A) = Aᵀ is copied into panels (:func:`_packed_a`) for a contraction of
#: at least this many and at least this many whole-tile columns (each panel is read once per
#: 16 columns): 128 × 128 × 256 ran 84 → 73 µs; with k = 32 (128 × 128) the copy cost more
#: than it saved (8.7 → 9.5 µs), so did 64 columns (128 × 64 × 64: 8.3 → 10.7 µs); and
#: above PACK_A_MAX_K the copy (k × m values, past the L2 cache) costs more than it saves:
#: the B = 2048 gradient ran 3.5 → 4.0 ms with it (lead, round 7, bench_kernels --threads 1)
PACK_A_MIN_K = 64
PACK_A_MAX_K = 512
PACK_A_MIN_COLS = 128

_SYMBOL = "symnn_gemm_tiles"
_FLAG = ctypes.c_int32(0)
llvm.add_symbol(_SYMBOL, ctypes.addressof(_FLAG))
#: products of at least this many multiply-adds are split over Numba's threads (when more
#: than one is allowed): a 2048 × 128 × 128 product (33.5 M) is, one of 256 × 128 × 128
#: (4.2 M) is not — starting the threads would cost a noticeable share of it
SPLIT_MIN_MADDS = 1 << 23
#: the address of the threaded entry per dtype (:func:`_install_split`), 0 while there is
#: none: an external global read by compiled code, as the switch (an ahead-of-time module
#: defines it as 0, so that no threading runtime is linked into it)
_SPLIT_SYMBOLS = {"float64": "symnn_gemm_split_f64", "float32": "symnn_gemm_split_f32"}
_SPLIT = {dt: ctypes.c_int64(0) for dt in _SPLIT_SYMBOLS}
for _dt, _name in _SPLIT_SYMBOLS.items():
    llvm.add_symbol(_name, ctypes.addressof(_SPLIT[_dt]))
_MODE = {"mode": "auto"}
#: Copies of the flag defined by ahead-of-time modules (symnn.codegen.aot), kept in step
_MIRRORS: list = []
_u = np.uint64  # hvp, round 7: unsigned indices (no negative-index test) in _packed


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


def _lanes(dt) -> int:
    """The vector width of a tile row: 8 doubles or 16 floats (one 512-bit register)."""
    return 8 if dt == types.float64 else 16


def _splat(builder, vec, x):
    i32 = llvmir.IntType(32)
    v = builder.insert_element(llvmir.Constant(vec, llvmir.Undefined), x, i32(0))
    return builder.shuffle_vector(v, llvmir.Constant(vec, llvmir.Undefined),
                                  llvmir.Constant(llvmir.VectorType(i32, vec.count),
                                                  [0] * vec.count))


@intrinsic
def _tile(typingctx, A, oa, rsa, csa, Bm, ob, ldb, C, oc, ldc, kc, alpha, accum):
    """``C[oc:]`` (MR × NV·W, row stride ldc) ← alpha · Σ_{l<kc} A[oa + i·rsa + l·csa] ·
    Bm[ob + l·ldb + j] (added to C if accum): MR·NV accumulators of W lanes (``<8 x
    double>`` or ``<16 x float>``)."""
    sig = types.void(A, oa, rsa, csa, Bm, ob, ldb, C, oc, ldc, kc, alpha, accum)

    def codegen(context, builder, signature, args):
        A, oa, rsa, csa, Bm, ob, ldb, C, oc, ldc, kc, alpha, accum = args
        tys = signature.args
        dt = tys[0].dtype
        W = _lanes(dt)
        elem = context.get_value_type(dt)
        vec = llvmir.VectorType(elem, W)
        align = 8 if dt == types.float64 else 4
        i64 = llvmir.IntType(64)
        alpha = context.cast(builder, alpha, tys[11], dt)
        pa, pb, pc = (context.make_array(tys[i])(context, builder, x).data
                      for i, x in ((0, A), (4, Bm), (7, C)))
        fma = cgutils.get_or_insert_function(
            builder.module, llvmir.FunctionType(vec, [vec, vec, vec]),
            "llvm.fma.v8f64" if dt == types.float64 else "llvm.fma.v16f32")
        zero = llvmir.Constant(vec, [0.0] * W)
        acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(NV)] for _ in range(MR)]

        def vptr(p, off):
            return builder.bitcast(builder.gep(p, [off]), vec.as_pointer())

        with cgutils.for_range(builder, kc) as loop:
            brow = builder.add(ob, builder.mul(loop.index, ldb))
            bv = [builder.load(vptr(pb, builder.add(brow, i64(W * v))), align=align)
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
                p = vptr(pc, builder.add(crow, i64(W * v)))
                r = builder.fmul(builder.load(acc[i][v]), al)
                old = builder.load(p, align=align)  # read always, used only if accum: a NaN
                builder.store(builder.select(add, builder.fadd(old, r), r), p, align=align)
        return context.get_dummy_value()

    return sig, codegen


def _hsum(builder, v):
    """The 8 lanes of ``v`` summed in one fixed order: (0+4 + 2+6) + (1+5 + 3+7)."""
    i32 = llvmir.IntType(32)
    e = [builder.extract_element(v, i32(i)) for i in range(8)]
    return builder.fadd(builder.fadd(builder.fadd(e[0], e[4]), builder.fadd(e[2], e[6])),
                        builder.fadd(builder.fadd(e[1], e[5]), builder.fadd(e[3], e[7])))


def _dots_codegen(rows: int):
    """Codegen of :func:`_dot4` / :func:`_dot1` for ``rows`` rows of W."""

    def codegen(context, builder, signature, args):
        A, oa, W, ow, n = args
        dt = signature.args[0].dtype
        f64 = llvmir.DoubleType()
        vd = llvmir.VectorType(f64, 8)
        ve = llvmir.VectorType(context.get_value_type(dt), 8)
        i64 = llvmir.IntType(64)
        pa, pw = (context.make_array(signature.args[i])(context, builder, x).data
                  for i, x in ((0, A), (2, W)))
        vfma = cgutils.get_or_insert_function(
            builder.module, llvmir.FunctionType(vd, [vd, vd, vd]), "llvm.fma.v8f64")
        sfma = cgutils.get_or_insert_function(
            builder.module, llvmir.FunctionType(f64, [f64, f64, f64]), "llvm.fma.f64")

        def load8(p, off):  # 8 values widened to doubles (exact for float32)
            v = builder.load(builder.bitcast(builder.gep(p, [off]), ve.as_pointer()), align=4)
            return v if dt == types.float64 else builder.fpext(v, vd)

        def load1(p, off):
            x = builder.load(builder.gep(p, [off]))
            return x if dt == types.float64 else builder.fpext(x, f64)

        zero = llvmir.Constant(vd, [0.0] * 8)
        acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(2)]
               for _ in range(rows)]
        wrow = [builder.add(ow, builder.mul(n, i64(r))) for r in range(rows)]
        n16 = builder.sub(n, builder.and_(n, i64(15)))
        n8 = builder.sub(n, builder.and_(n, i64(7)))

        def chunk(l, u):
            x = load8(pa, builder.add(oa, builder.add(l, i64(8 * u))))
            for r in range(rows):
                w = load8(pw, builder.add(wrow[r], builder.add(l, i64(8 * u))))
                builder.store(builder.call(vfma, [x, w, builder.load(acc[r][u])]), acc[r][u])

        with cgutils.for_range_slice(builder, i64(0), n16, i64(16)) as (l, _):
            chunk(l, 0)
            chunk(l, 1)
        with builder.if_then(builder.icmp_signed("<", n16, n8)):
            chunk(n16, 0)
        sums = [cgutils.alloca_once_value(
            builder, _hsum(builder, builder.fadd(builder.load(acc[r][0]),
                                                 builder.load(acc[r][1]))))
                for r in range(rows)]
        with cgutils.for_range_slice(builder, n8, n, i64(1)) as (l, _):
            x = load1(pa, builder.add(oa, l))
            for r in range(rows):
                w = load1(pw, builder.add(wrow[r], l))
                builder.store(builder.call(sfma, [x, w, builder.load(sums[r])]), sums[r])
        vals = [builder.load(s) for s in sums]
        if rows == 1:
            return vals[0]
        return context.make_tuple(builder, signature.return_type, vals)

    return codegen


@intrinsic
def _dot4(typingctx, A, oa, W, ow, n):
    """The four float64 dot products Σ_{l<n} A[oa + l] · W[ow + r·n + l], r = 0 … 3 (four
    consecutive rows of W): each in two ``<8 x double>`` accumulators (``llvm.fma``), their
    lanes summed in one fixed order, then the last n mod 8 terms by scalar ``llvm.fma``.
    Explicit vectors and no fast-math flag: the same bits wherever LLVM inlines it or
    whatever it knows of n (lead, round 8: the loop it replaces, vectorised by ``reassoc``,
    summed in another order when copied into a kernel, and a warm process that ran the
    kernel's copy got other last bits than the cold one)."""
    return types.UniTuple(types.float64, 4)(A, oa, W, ow, n), _dots_codegen(4)


@intrinsic
def _dot1(typingctx, A, oa, W, ow, n):
    """One row of :func:`_dot4`: Σ_{l<n} A[oa + l] · W[ow + l] in float64, the same order."""
    return types.float64(A, oa, W, ow, n), _dots_codegen(1)


@intrinsic
def _nr(typingctx, A):
    """The columns of a tile for ``A``'s dtype (a constant): NV·8 (float64), NV·16
    (float32)."""
    nr = NV * _lanes(A.dtype)

    def codegen(context, builder, signature, args):
        return context.get_constant(types.int64, nr)

    return types.int64(A), codegen


@numba.njit(cache=True, error_model="numpy")
def _tiled(m0, n0, k, alpha, A, oa, rsa, csa, Bm, ob, ldb, acc, C, oc, ldc):
    """The whole tiles of ``C`` (m0 × n0, multiples of MR and of the tile's columns): panels
    of KC, then tile rows, then tiles across."""
    nr = _nr(A)
    for k0 in range(0, k, KC):
        kc = min(KC, k - k0)
        accum = 1 if (acc or k0 > 0) else 0
        for i0 in range(0, m0, MR):
            for j0 in range(0, n0, nr):
                _tile(A, oa + i0 * rsa + k0 * csa, rsa, csa, Bm, ob + k0 * ldb + j0, ldb,
                      C, oc + i0 * ldc + j0, ldc, kc, alpha, accum)


@numba.njit(cache=True, error_model="numpy")
def _packed(Bm, ob, ldb, k, n0):
    """The first n0 columns of op(B) = Bᵀ, copied k × n0 (rows of B become columns).

    hvp, round 7: in strips of 16 columns of the copy (16 rows of B read side by side), so
    that neither the reads nor the writes step a whole row per element: the plain double
    loop took 47 µs for 128 × 128 (every write a new cache line, at a 1 KB stride that
    maps to few cache sets), the strips 5 µs — a third of a 256 × 128 × 128 ``A·Bᵀ``."""
    T = np.empty(k * n0, dtype=Bm.dtype)
    for j0 in range(0, n0, 16):
        j1 = min(j0 + 16, n0)
        for l in range(k):
            for j in range(j0, j1):
                T[_u(l * n0 + j)] = Bm[_u(ob + j * ldb + l)]
    return T


@numba.njit(cache=True, error_model="numpy")
def _packed_a(A, oa, lda, k, m):
    """hvp, round 7: op(A) = Aᵀ's m rows in MR-row panels, ``P[b·MR·k + l·MR + i] =
    A[oa + l·lda + b·MR + i]`` (rows beyond m zero): a tile then reads its rows of A from
    one contiguous run.  Read in place, a tile's A steps ``lda`` per contraction index; at
    lda = 128 (1 KB) those lines fall in few cache sets and evict each other and B's (a
    128 × 128 × 256 ``Aᵀ·B`` ran at 50 G multiply-adds/s against 61 for ``A·B``)."""
    nb = (m + MR - 1) // MR
    P = np.zeros(nb * MR * k, dtype=A.dtype)
    for b in range(nb):
        r = min(MR, m - b * MR)
        for l in range(k):
            for i in range(r):
                P[_u(b * MR * k + l * MR + i)] = A[_u(oa + l * lda + b * MR + i)]
    return P


@numba.njit(cache=True, error_model="numpy")
def _packed_strip(Bm, ob, ldb, k, n0, n, nr):
    """hvp, round 7: columns n0 … n − 1 of op(B) = Bᵀ, k × nr, zero beyond n: the last
    columns of a product (all of a 10-column one) in one zero-padded tile's width."""
    T = np.zeros(k * nr, dtype=Bm.dtype)
    for j in range(n0, n):
        for l in range(k):
            T[_u(l * nr + j - n0)] = Bm[_u(ob + j * ldb + l)]
    return T


@numba.njit(cache=True, error_model="numpy")
def _merge(tmp, ldt, r, c, acc, C, oc, ldc):
    """hvp, round 7: ``C[oc:]`` (r × c, row stride ldc) ← tmp (row stride ldt), added to C
    if acc: the part of a padded tile's result that belongs to C."""
    for i in range(r):
        for j in range(c):
            if acc:
                C[_u(oc + i * ldc + j)] += tmp[_u(i * ldt + j)]
            else:
                C[_u(oc + i * ldc + j)] = tmp[_u(i * ldt + j)]


@numba.njit(cache=True, error_model="numpy")
def _tiled_pa(m0, n0, k, alpha, P, Bm, ob, ldb, acc, C, oc, ldc):
    """hvp, round 7: :func:`_tiled` for A packed by :func:`_packed_a`, one MR-row panel at
    a time (each tile of C sums its panels in the same order as :func:`_tiled`, so the
    bits are the same)."""
    for b in range(m0 // MR):
        _tiled(MR, n0, k, alpha, P, b * MR * k, 1, MR, Bm, ob, ldb, acc, C, oc + b * MR * ldc,
               ldc)


@numba.njit(cache=True, error_model="numpy")
def _rest(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc, m_done, n_done):
    """BLAS for the columns from n_done on (rows below m_done), then the rows from m_done
    on (every column): what the tiles left."""
    if n_done < n and m_done > 0:
        _blas_gemm(ta, tb, m_done, n - n_done, k, alpha, A, oa, lda, Bm,
                   ob + n_done * (ldb if tb else 1), ldb, beta, C, oc + n_done, ldc)
    if m_done < m:
        _blas_gemm(ta, tb, m - m_done, n, k, alpha, A, oa + m_done * (1 if ta else lda), lda,
                   Bm, ob, ldb, beta, C, oc + m_done * ldc, ldc)


@numba.njit(cache=True, error_model="numpy")
def _gemm_tiles(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc):
    """Tiles where whole ones fit, BLAS for the rows and columns left over.  op(B) = Bᵀ is
    first copied transposed (k × n), so that a tile reads rows of B."""
    m0 = m - m % MR
    n0 = n - n % _nr(A)
    rsa, csa = (1, lda) if ta else (lda, 1)
    acc = beta != 0.0
    if ta and not tb and PACK_A_MIN_K <= k <= PACK_A_MAX_K and n0 >= PACK_A_MIN_COLS:
        # hvp, round 7: Aᵀ·B with A's rows in panels (see _packed_a)
        _tiled_pa(m0, n0, k, alpha, _packed_a(A, oa, lda, k, m0), Bm, ob, ldb, acc, C, oc,
                  ldc)
    elif tb:
        T = _packed(Bm, ob, ldb, k, n0)
        _tiled(m0, n0, k, alpha, A, oa, rsa, csa, T, 0, n0, acc, C, oc, ldc)
    else:
        _tiled(m0, n0, k, alpha, A, oa, rsa, csa, Bm, ob, ldb, acc, C, oc, ldc)
    m_done, n_done = _edges(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, acc, C, oc, ldc)
    _rest(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc, m_done, n_done)


@numba.njit(cache=True, error_model="numpy")
def _edges(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, acc, C, oc, ldc):
    """hvp, round 7: the rows of Aᵀ·B below the whole tiles (a zero-padded panel of Aᵀ)
    or the columns of A·Bᵀ right of them (a zero-padded strip of Bᵀ), through the tiles
    into scratch and merged into C — a 10-row or 10-column product of an output layer ran
    at 17 G multiply-adds/s in BLAS, 36 so.  Returns the rows and columns now done."""
    nr = _nr(A)
    m0 = m - m % MR
    n0 = n - n % nr
    if ta and not tb and m0 < m and n0 > 0:
        P = _packed_a(A, oa + m0, lda, k, m - m0)
        tmp = np.empty(MR * n0, dtype=C.dtype)
        _tiled(MR, n0, k, alpha, P, 0, 1, MR, Bm, ob, ldb, False, tmp, 0, n0)
        _merge(tmp, n0, m - m0, n0, acc, C, oc + m0 * ldc, ldc)
        return m, n0
    if tb and n0 < n and m0 > 0:
        rsa, csa = (1, lda) if ta else (lda, 1)
        S = _packed_strip(Bm, ob, ldb, k, n0, n, nr)
        tmp = np.empty(m0 * nr, dtype=C.dtype)
        _tiled(m0, nr, k, alpha, A, oa, rsa, csa, S, 0, nr, False, tmp, 0, nr)
        _merge(tmp, nr, m0, n - n0, acc, C, oc + n0, ldc)
        return m0, n
    return m0, n0


@numba.njit(cache=True, error_model="numpy")
def _gemm(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc):
    """``C[oc:]`` (m × n, row stride ldc) ← alpha·op(A[oa:])·op(Bm[ob:]) + beta·C, as
    :func:`symnn.codegen.numba._blas._gemm`: tiles when :func:`set_gemm` allows, the
    product is large enough, ``beta`` is 0 or 1, one tile fits (for op(B) = Bᵀ its rows:
    the last columns are padded) and (for op(B) = Bᵀ) it has
    :data:`PACK_MIN_ROWS` rows — split over the threads when it has
    :data:`SPLIT_MIN_MADDS` multiply-adds and a threaded entry is installed; else BLAS."""
    if (_tiles_on() and m >= MR and (n >= _nr(A) or tb) and m * n * k >= MIN_MADDS
            and (beta == 0.0 or beta == 1.0) and (tb == 0 or m >= PACK_MIN_ROWS)):
        if m * n * k >= SPLIT_MIN_MADDS and _split_entry(A) != 0:
            _call_split(_split_entry(A), ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb,
                        beta, C, oc, ldc)
        else:
            _gemm_tiles(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)
    else:
        _blas_gemm(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)


@intrinsic
def _split_entry(typingctx, A):
    """The address of the threaded entry for ``A``'s dtype (0: none installed), read at run
    time from an external global, as the switch."""
    name = _SPLIT_SYMBOLS.get(str(A.dtype))

    def codegen(context, builder, signature, args):
        i64 = llvmir.IntType(64)
        if name is None:
            return i64(0)
        gv = builder.module.globals.get(name)
        if gv is None:
            gv = llvmir.GlobalVariable(builder.module, i64, name)
            gv.linkage = "external"
        return builder.load(gv)

    return types.int64(A), codegen


@intrinsic
def _call_split(typingctx, addr, ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C,
                oc, ldc):
    """Call the threaded entry at ``addr`` (C ABI, :func:`_entry_signature`): each array
    passes as its data pointer and length, integers as int64, scalars as double."""
    sig = types.void(addr, ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)

    def codegen(context, builder, signature, args):
        tys = signature.args
        f64 = context.get_value_type(types.float64)
        vals, argtys = [], []
        for i in range(1, len(args)):
            ty = tys[i]
            if isinstance(ty, types.Array):
                arr = context.make_array(ty)(context, builder, args[i])
                vals += [arr.data, arr.nitems]
                argtys += [arr.data.type, llvmir.IntType(64)]
            elif i in (6, 13):  # alpha, beta
                vals.append(context.cast(builder, args[i], ty, types.float64))
                argtys.append(f64)
            else:
                vals.append(context.cast(builder, args[i], ty, types.int64))
                argtys.append(llvmir.IntType(64))
        fnty = llvmir.FunctionType(llvmir.VoidType(), argtys)
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(fn, vals)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _split_rows(parts, m0, n0, k, alpha, A, oa, rsa, csa, Bm, ob, ldb, acc, C, oc, ldc):
    """:func:`_tiled` with the MR-row blocks cut into ``parts`` contiguous runs, one per
    thread: every element is the same sum as in one run, so the bits do not change."""
    blocks = m0 // MR
    for p in numba.prange(parts):
        b0 = blocks * p // parts
        b1 = blocks * (p + 1) // parts
        if b1 > b0:
            _tiled((b1 - b0) * MR, n0, k, alpha, A, oa + b0 * MR * rsa, rsa, csa, Bm, ob, ldb,
                   acc, C, oc + b0 * MR * ldc, ldc)


@numba.njit(cache=True, error_model="numpy")
def _gemm_split(parts, ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc):
    """:func:`_gemm_tiles` with the whole tiles split over ``parts`` threads
    (:func:`_split_rows`); the leftovers on this thread."""
    m0 = m - m % MR
    n0 = n - n % _nr(A)
    rsa, csa = (1, lda) if ta else (lda, 1)
    acc = beta != 0.0
    if tb:
        T = _packed(Bm, ob, ldb, k, n0)
        _split_rows(parts, m0, n0, k, alpha, A, oa, rsa, csa, T, 0, n0, acc, C, oc, ldc)
    else:
        _split_rows(parts, m0, n0, k, alpha, A, oa, rsa, csa, Bm, ob, ldb, acc, C, oc, ldc)
    m_done, n_done = _edges(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, acc, C, oc, ldc)
    _rest(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc, m_done, n_done)


@intrinsic
def _threads(typingctx):
    """:func:`numba.get_num_threads` (this thread's setting) by the threading layer's own
    symbol, so that the entry can be cached (Numba's overload reads it through ctypes)."""

    def codegen(context, builder, signature, args):
        fnty = llvmir.FunctionType(llvmir.IntType(32), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "get_num_threads")
        return builder.sext(builder.call(fn, []), llvmir.IntType(64))

    return types.int64(), codegen


def _split_body(ta, tb, m, n, k, alpha, pa, na, oa, lda, pb, nb, ob, ldb, beta, pc, nc, oc,
                ldc):
    """The threaded entry (compiled as a C callback by :func:`_install_split`): the tiles
    over :func:`numba.get_num_threads` threads, or on this one when that is 1."""
    A = numba.carray(pa, na)
    Bm = numba.carray(pb, nb)
    C = numba.carray(pc, nc)
    parts = _threads()
    if parts > 1:
        _gemm_split(parts, ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)
    else:
        _gemm_tiles(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)


def _entry_signature(dt):
    """The C signature of the threaded entry for element type ``dt``."""
    i, f, p = types.int64, types.float64, types.CPointer(dt)
    return types.void(i, i, i, i, i, f, p, i, i, i, p, i, i, i, f, p, i, i, i)


#: the compiled entries (kept alive: compiled code holds their addresses)
_ENTRIES: dict = {}


def _install_split() -> None:
    """Compile (or load from Numba's cache) the threaded entries and publish their
    addresses to compiled code; done at import when Numba may use more than one thread
    (``NUMBA_NUM_THREADS`` > 1).  With one thread allowed the products never reach it."""
    from numba.np.ufunc.parallel import _launch_threads

    _launch_threads()  # the threading layer's symbols, before the entries load
    for name, dt in (("float64", types.float64), ("float32", types.float32)):
        if name not in _ENTRIES:
            _ENTRIES[name] = numba.cfunc(_entry_signature(dt), cache=True,
                                         error_model="numpy")(_split_body)
        _SPLIT[name].value = _ENTRIES[name].address
    if not _ENTRIES.get("at_fork"):
        # a forked child may not start the threads of GNU OpenMP (Numba terminates it):
        # its products stay on its own thread
        os.register_at_fork(after_in_child=_serial_after_fork)
        _ENTRIES["at_fork"] = True


def _serial_after_fork() -> None:
    for flag in _SPLIT.values():
        flag.value = 0


def set_gemm_threads(on: bool) -> bool:
    """Split the large products over Numba's threads (``on``) or keep them on the calling
    thread; returns the previous setting.  Off until turned on: with OpenBLAS's threads
    also running, the B = 2048 gradient took 8.0 ms on 2 threads against 4.0 ms on one
    (``bench_kernels.py --threads 2``, quiet 2-core machine), and on a machine busy with
    other work threads that wait on each other cost more than they save.  Turning it on
    compiles the threaded entry (or loads it from Numba's cache) and starts Numba's
    threading layer.

    >>> old = set_gemm_threads(False)
    >>> set_gemm_threads(old)
    False
    """
    was = _SPLIT["float64"].value != 0
    if on:
        _install_split()
    else:
        _serial_after_fork()
    return was
