"""The BLAS call of the runtime blocks: :func:`_gemm`, ``?gemm`` on flat arrays at offsets.

Its own module so that the runtime blocks of :mod:`symnn.codegen.numba.runtime` and
:mod:`symnn.codegen.numba.runtime_conv` share it without importing one another.  Part of the
runtime's fingerprint (:data:`symnn.codegen.numba.runtime.RUNTIME_FILES`).
"""

from __future__ import annotations

from llvmlite import ir as llvmir
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["_gemm"]


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
