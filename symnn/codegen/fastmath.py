"""Vectorisable, accurate elementary functions for Numba kernels.

Inside ``numba.njit`` code, ``math.exp``/``math.tanh``/``np.tanh`` and friends
are lowered to scalar libm calls (about 14 ns per element on the reference
machine) and therefore block LLVM's loop vectoriser.  The functions in this
module are written with straight-line arithmetic, integer bit manipulation and
``select``-style conditionals only, so that a plain loop such as::

    @numba.njit(cache=True, error_model="numpy", fastmath=False)
    def kernel(x, out):
        for i in range(x.size):
            out[i] = fm_tanh(x[i])

is compiled into SIMD code (AVX2: four doubles per instruction).

Public functions
----------------
All take one real scalar (``float64``, ``float32``, integer or boolean) and
return a scalar of the *argument's* precision inside compiled code: ``float32``
in, ``float32`` out; everything else is evaluated and returned as ``float64``.
(Called from Python, Numba boxes a float32 result as a Python ``float`` holding
the float32 value.)

================  =====================  ==========  ==========  ==========
function          definition             vs NumPy    vs exact    float32
================  =====================  ==========  ==========  ==========
``fm_exp``        ``exp(x)``             1           1           0
``fm_expm1``      ``exp(x) - 1``         1           1           0
``fm_log``        ``log(x)``             1           1           0
``fm_log1p``      ``log(1 + x)``         1           1           0
``fm_tanh``       ``tanh(x)``            2           1           0
``fm_sigmoid``    ``1 / (1 + exp(-x))``  2           1           0
``fm_softplus``   ``log(1 + exp(x))``    2           1           0
``fm_erf``        ``erf(x)``             3           1           0
================  =====================  ==========  ==========  ==========

Maximum errors in units in the last place (ulps) measured over several million
points (dense grids over the whole range, random bit patterns, the special
values and Hypothesis-drawn floats); subnormal results are counted in units of
the smallest subnormal.  "vs NumPy" compares with ``np.exp``, ``np.expm1``,
``np.log``, ``np.log1p``, ``np.tanh`` and ``np.logaddexp(0, x)``, with
``scipy.special.expit`` for the sigmoid and ``scipy.special.erf`` (itself up to
2 ulp off) for erf.  "vs exact" compares with correctly rounded values (80-bit
long double NumPy or ``mpmath``).  "float32" compares ``fm_*(np.float32(x))``
with the exact value rounded to float32.  The test-suite asserts these bounds,
except that it allows 1 ulp for float32 and 2 ulp for softplus against exact
values (its error analysis does not exclude 1.5 ulp; 14 % of points in
``[-40, 40]`` are 1 ulp off, none more in 4 million tested).

Implementation notes
--------------------
* Every function is computed in float64.  A float32 argument is widened
  (exactly), evaluated, and the result rounded once to float32, so float32
  results are correctly rounded in practice.  The float32 path is therefore not
  faster than the float64 one (four, not eight, AVX2 lanes).
* The functions are compiled with ``forceinline=True``, which marks them
  ``alwaysinline`` for LLVM: they are inlined into the calling kernel (a
  prerequisite for vectorisation) *after* being compiled with their own
  options, so the caller's ``error_model`` and ``fastmath`` flags do not change
  their results.  (Numba's ``inline="always"`` also vectorises, but re-compiles
  the body inside every caller, which is two to three times slower to compile,
  and it lets ``fastmath=True`` callers re-associate the compensated sums.)
  The surrounding loop still has to be compiled with ``error_model="numpy"`` to
  vectorise if it divides, and ``fastmath=False`` is fine.
* Multiply-adds use ``llvm.fmuladd``: a fused multiply-add where the target
  has one (x86-64 with FMA3, AArch64), a separate multiply and add otherwise.
  The algorithms are accurate either way; the figures above were measured on
  an AVX2 + FMA machine (AMD EPYC).
* ``2**k`` is built by writing ``k + 1023`` into the exponent field, and the
  integer ``k = round(x / log(2))`` is extracted with the classic
  ``x + 1.5 * 2**52`` shifter trick, so no float-to-integer conversion (and no
  poison value for NaN inputs) is involved.  Very large and very small results
  are scaled by two such factors, which gives correct overflow to ``inf`` and
  gradual underflow into the subnormal range without branches.  ``log`` splits
  its argument with integer operations on the bit pattern (subnormals are
  pre-scaled by ``2**52``).
* Conditionals are written as selects (both sides are evaluated, so every
  intermediate is kept finite or harmless), and there is no libm call.
* Special values: NaN propagates; ``exp(+inf) = inf``, ``exp(-inf) = 0``;
  ``log(0) = -inf``, ``log(x < 0) = nan``; ``log1p(-1) = -inf``;
  ``tanh(+-inf) = +-1``; ``sigmoid(-inf) = 0``; ``softplus(+inf) = inf``;
  ``erf(+-inf) = +-1``.  The sign of zero is preserved by ``expm1``,
  ``log1p``, ``tanh`` and ``erf``.  Numba does not inspect floating-point
  exception flags, so no overflow/underflow warnings are emitted either.
* Polynomial coefficients were computed with a Remez exchange in 60-digit
  ``mpmath`` arithmetic (relative error weight for ``exp``/``log``, absolute
  weight for ``erf``); the rational ``tanh`` kernel is Cephes' ``tanh``
  (S. L. Moshier), whose approximation error is below ``2**-57``.

The functions are ordinary Numba dispatchers, so they can also be called from
Python (slowly) for testing.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir as llvmir
from numba import types
from numba.extending import intrinsic, overload

__all__ = [
    "FASTMATH_FUNCTIONS",
    "fm_erf",
    "fm_exp",
    "fm_expm1",
    "fm_log",
    "fm_log1p",
    "fm_sigmoid",
    "fm_softplus",
    "fm_tanh",
]

#: Options used for every compiled function in this module.  ``error_model="numpy"``: the
#: default Python error model guards each division with a zero test that raises
#: ``ZeroDivisionError`` and blocks vectorisation.  ``forceinline``: LLVM ``alwaysinline``.
_JIT_OPTIONS = {"error_model": "numpy", "cache": True, "fastmath": False, "forceinline": True}

# -- Low-level intrinsics --------------------------------------------------------------------


@intrinsic
def _bits(typingctx, x):
    """Reinterpret a float64 as int64 (a bit cast, not a conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvmir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, i):
    """Reinterpret an int64 as float64 (a bit cast, not a conversion)."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvmir.DoubleType())

    return types.float64(types.int64), codegen


def _declare_fmuladd(builder):
    """Declare (once per LLVM module) and return ``llvm.fmuladd.f64``."""
    dbl = llvmir.DoubleType()
    fnty = llvmir.FunctionType(dbl, [dbl, dbl, dbl])
    return builder.module.declare_intrinsic("llvm.fmuladd", [dbl], fnty)


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` via ``llvm.fmuladd.f64`` (fused where the target supports it)."""
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, signature, args):
        return builder.call(_declare_fmuladd(builder), args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@intrinsic
def _lshr52(typingctx, i):
    """Logical right shift of an int64 by 52 bits (AVX2 has no 64-bit arithmetic shift)."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.lshr(args[0], llvmir.Constant(llvmir.IntType(64), 52))

    return types.int64(types.int64), codegen


@intrinsic
def _horner(typingctx, t, c):
    """Evaluate ``sum(c[i] * t**i)`` by Horner's rule with ``llvm.fmuladd``.

    ``c`` is a homogeneous float64 tuple (a compile-time constant in practice); the
    chain is emitted unrolled, so no loop or bounds check survives into the kernel.
    """
    if t != types.float64 or not (
        isinstance(c, types.UniTuple) and c.dtype == types.float64 and c.count > 0
    ):
        return None

    def codegen(context, builder, signature, args):
        tv, cv = args
        n = signature.args[1].count
        fn = _declare_fmuladd(builder)
        p = builder.extract_value(cv, n - 1)
        for i in range(n - 2, -1, -1):
            p = builder.call(fn, [p, tv, builder.extract_value(cv, i)])
        return p

    return types.float64(t, c), codegen


@intrinsic
def _estrin(typingctx, t, c):
    """Evaluate ``sum(c[i] * t**i)`` by Estrin's scheme (shorter dependency chains).

    Only for small ``|t|`` (well-conditioned, rapidly decreasing terms); same
    interface as :func:`_horner`.
    """
    if t != types.float64 or not (
        isinstance(c, types.UniTuple) and c.dtype == types.float64 and c.count > 0
    ):
        return None

    def codegen(context, builder, signature, args):
        tv, cv = args
        fn = _declare_fmuladd(builder)
        terms = [builder.extract_value(cv, i) for i in range(signature.args[1].count)]
        power = tv
        while len(terms) > 1:
            pairs = [
                builder.call(fn, [terms[i + 1], power, terms[i]])
                for i in range(0, len(terms) - 1, 2)
            ]
            if len(terms) % 2:
                pairs.append(terms[-1])
            terms = pairs
            if len(terms) > 1:
                power = builder.fmul(power, power)
        return terms[0]

    return types.float64(t, c), codegen


def _like(x, y):
    """Return ``y`` converted to the floating-point precision of ``x``.

    Parameters
    ----------
    x : scalar
        The original argument; only its type matters.
    y : float
        A float64 result.

    Returns
    -------
    float
        ``np.float32(y)`` if ``x`` is a float32, otherwise ``y`` unchanged.
    """
    if isinstance(x, np.float32):
        return np.float32(y)
    return y


@overload(_like, inline="always")
def _like_overload(x, y):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x, y: np.float32(y)
    if isinstance(x, (types.Float, types.Integer, types.Boolean)):
        return lambda x, y: y
    return None


# -- Constants -------------------------------------------------------------------------------

_INF = float("inf")
_NAN = float("nan")
_LOG2E = 1.4426950408889634  # 1 / log(2)
_LN2_HI = 6.93147180369123816490e-01  # 0x3fe62e42fee00000: low 21 bits zero, k * hi exact
_LN2_LO = 1.90821492927058770002e-10  # log(2) - _LN2_HI
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: x + shifter rounds x to an integer
_TWO52 = 4503599627370496.0  # 2**52
_TINY = 2.2250738585072014e-308  # smallest normal float64
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # bit pattern of sqrt(0.5)
_EXP_MASK = -4503599627370496  # 0xfff0000000000000 as int64: sign + exponent field
_ONE_BITS = 0x3FF0000000000000  # bit pattern of 1.0 == 1023 << 52
_MAGIC_BITS = 0x4330000000000000  # bit pattern of 2**52

#: exp(r) = 1 + r + r**2 * q(r) for |r| <= log(2)/2; q(r) = sum EXP_Q[i] r**i.
#: Minimax with relative weight, approximation error 2**-58.4.
_EXP_Q = (
    0.5,
    0.1666666666666667,
    0.041666666666666616,
    0.008333333333326162,
    0.0013888888888917979,
    0.00019841269874740813,
    2.480158724571422e-05,
    2.755725548881014e-06,
    2.7557349627067626e-07,
    2.5105184220393e-08,
    2.0889377799779933e-09,
)

#: log(1 + f) = 2 atanh(s), s = f / (2 + f); 2 atanh(s) = 2 s + s z T(z), z = s**2,
#: 0 <= z <= (3 - 2 sqrt 2)**2.  Minimax with relative weight, error 2**-51.0 on T
#: (T contributes at most 2**-5.6 of the result, so the total is below 2**-56).
_LOG_T = (
    0.666666666666667,
    0.3999999999989911,
    0.2857142862613437,
    0.22222211111246493,
    0.18182890701650128,
    0.15331672989859146,
    0.14617011539399014,
)

#: tanh(x) = x + x z P(z) / Q(z), z = x**2, |x| <= 0.625 (Cephes tanh.c; error 2**-57.5).
_TANH_P = (
    -1.61468768441708447952e3,
    -9.92877231001918586564e1,
    -9.64399179425052238628e-1,
)
_TANH_Q = (
    4.84406305325125486048e3,
    2.23548839060100448583e3,
    1.12811678491632931402e2,
    1.0,
)
_TANH_SMALL = 0.625
_TANH_CLAMP = 20.0  # tanh(x) == 1.0 in float64 for x > 19.07

#: erf(x) = x + x U(z), z = x**2, |x| < 1.  Minimax, absolute error 2**-57.0.
_ERF_U = (
    0.12837916709551256,
    -0.3761263890318355,
    0.11283791670945242,
    -0.026866170643274435,
    0.00522397760740856,
    -0.0008548325988969252,
    0.0001205529529837001,
    -1.4924744231478597e-05,
    1.6447512266677055e-06,
    -1.620913384635869e-07,
    1.3722791644470963e-08,
    -7.800839319120131e-10,
)

#: erfc(x) = exp(-x**2) g(x), g(x) = sum ERF_G[i] (x - 1)**i for 1 <= x <= 6.  Minimax with
#: weight exp(-x**2), i.e. absolute error in erfc: 2**-58.7.  For x > 5.922 erf(x) rounds to 1.
_ERF_G = (
    0.427583576155807,
    -0.27321201478389595,
    0.15437156137171504,
    -0.0792269689356987,
    0.037572296129817946,
    -0.016661868306402396,
    0.0069701376325137804,
    -0.002769044726239296,
    0.0010502076906877729,
    -0.00038181207586841836,
    0.00013341075671589094,
    -4.479548973024185e-05,
    1.4372524581880766e-05,
    -4.343014629606653e-06,
    1.2052359827293464e-06,
    -2.9672071683683327e-07,
    6.219609783565517e-08,
    -1.0596761048743808e-08,
    1.3891323148148526e-09,
    -1.3007513546727786e-10,
    7.685178317557535e-12,
    -2.1409164538518839e-13,
)
_ERF_HI = 6.0

# -- float64 kernels -------------------------------------------------------------------------


@numba.njit(**_JIT_OPTIONS)
def _exp64(x):
    """exp(x) for float64 ``x``; see :func:`fm_exp`."""
    # Clamp: beyond these bounds the result is inf / 0 anyway.  NaN passes through (Numba's
    # min/max, like Python's, return the first argument when a comparison is unordered).
    x = max(min(x, 710.0), -746.0)
    # k = round(x / log 2); the low bits of t hold k.
    t = _fma(x, _LOG2E, _SHIFTER)
    kf = t - _SHIFTER
    # r = rh + rl = x - k log(2), kept as an unevaluated sum.
    rh = _fma(kf, -_LN2_HI, x)  # exact
    rl = kf * -_LN2_LO
    r = rh + rl
    # exp(r) = hi + lo + rl + r**2 q(r) with hi + lo == 1 + rh exactly (Fast2Sum), so that
    # essentially only the final addition rounds.
    hi = 1.0 + rh
    lo = (1.0 - hi) + rh
    p = hi + _fma(r * r, _estrin(r, _EXP_Q), lo + rl)
    # 2**k as 2**k1 * 2**(k - k1), k1 = round(k / 2), so both factors are normal numbers.
    t1 = _fma(kf, 0.5, _SHIFTER)
    b1 = _bits(t1)
    s1 = _from_bits((b1 + 1023) << 52)
    s2 = _from_bits((_bits(t) - b1 + 1023) << 52)
    return (p * s1) * s2


@numba.njit(**_JIT_OPTIONS)
def _expm1_64(x):
    """exp(x) - 1 for float64 ``x``; see :func:`fm_expm1`."""
    xc = max(min(x, 710.0), -60.0)  # expm1(x) == -1.0 for x < -37.43; NaN passes through
    t = _fma(xc, _LOG2E, _SHIFTER)
    kf = t - _SHIFTER
    # r = rh + rl = x - k log 2, kept as an unevaluated sum.
    rh = _fma(kf, -_LN2_HI, xc)  # exact
    rl = kf * -_LN2_LO
    r = rh + rl
    poly = (r * r) * _estrin(r, _EXP_Q)  # exp(r) - 1 - r
    # exp(r) = hi + lo exactly up to the polynomial error.
    hi = 1.0 + rh
    lo = ((1.0 - hi) + rh) + (rl + poly)
    # expm1(x) = 2 * (2**(k-1) * (hi + lo) - 1/2); 2**(k-1) is normal for -87 <= k <= 1024.
    sh = _from_bits((_bits(t) + 1022) << 52)
    res = 2.0 * (_fma(sh, hi, -0.5) + sh * lo)
    # expm1(x) rounds to x for |x| < 2**-54 (this also keeps the sign of zero).
    return x if abs(x) < 5.551115123125783e-17 else res


@numba.njit(**_JIT_OPTIONS)
def _log_kernel(ix, kadj):
    """Split bits ``ix`` of a positive finite number ``u = 2**k * z``, ``sqrt(1/2) <= z < sqrt(2)``.

    Returns ``k + kadj`` (as a float) together with ``f = z - 1``, ``hfsq = f**2 / 2``
    and ``s * (hfsq + R)`` such that ``log(z) = f - hfsq + s * (hfsq + R)``.
    """
    tmp = ix - _SQRT_HALF_BITS
    # Biased exponent k + 1023 in 0..2047 without a signed shift, converted exactly to float.
    ebias = _lshr52(tmp + _ONE_BITS)
    kf = (_from_bits(ebias | _MAGIC_BITS) - (_TWO52 + 1023.0)) + kadj
    z = _from_bits(ix - (tmp & _EXP_MASK))
    f = z - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    zz = s * s
    rr = zz * _estrin(zz, _LOG_T)
    return kf, f, hfsq, s * (hfsq + rr)


@numba.njit(**_JIT_OPTIONS)
def _log64(x):
    """log(x) for float64 ``x``; see :func:`fm_log`."""
    # Invalid arguments are replaced by 1.0 before the bit manipulation, so that every
    # intermediate stays finite (and no denominator can vanish); selects fix the result.
    valid = (x > 0.0) & (x < _INF)
    xv = x if valid else 1.0
    tiny = xv < _TINY
    xs = xv * _TWO52 if tiny else xv  # normalise subnormal inputs
    kadj = -52.0 if tiny else 0.0
    kf, f, hfsq, corr = _log_kernel(_bits(xs), kadj)
    res = kf * _LN2_HI - ((hfsq - (corr + kf * _LN2_LO)) - f)
    special = -_INF if x == 0.0 else (_NAN if x < 0.0 else x)  # 0, < 0, +inf, nan
    return res if valid else special


@numba.njit(**_JIT_OPTIONS)
def _log1p64(x):
    """log(1 + x) for float64 ``x``; see :func:`fm_log1p`."""
    valid = (x > -1.0) & (x < _INF)
    xv = x if valid else 0.0
    u = 1.0 + xv
    # c = (1 + x) - u exactly (Fast2Sum, larger operand first); c / u corrects log(u).
    c = (xv - (u - 1.0)) if xv < 1.0 else (1.0 - (u - xv))
    c = c / u
    kf, f, hfsq, corr = _log_kernel(_bits(u), 0.0)
    res = kf * _LN2_HI - ((hfsq - (corr + (kf * _LN2_LO + c))) - f)
    special = -_INF if x == -1.0 else (_NAN if x < -1.0 else x)  # -1, < -1, +inf, nan
    res = res if valid else special
    # log1p(x) rounds to x for |x| < 2**-54 (this also keeps the sign of zero).
    return x if abs(x) < 5.551115123125783e-17 else res


@numba.njit(**_JIT_OPTIONS)
def _tanh64(x):
    """tanh(x) for float64 ``x``; see :func:`fm_tanh`."""
    ax = abs(x)
    z = x * x
    # Both branches are evaluated and combined as a + b / c, so only one division is needed.
    # |x| < 0.625:  x + (x z P(z)) / Q(z)
    # |x| >= 0.625: sign(x) * (1 - 2 / (exp(2|x|) + 1))
    e = _exp64(2.0 * min(ax, _TANH_CLAMP))
    sgn = 1.0 if x > 0.0 else -1.0
    small = ax < _TANH_SMALL
    a = x if small else sgn
    b = (x * z) * _estrin(z, _TANH_P) if small else -2.0 * sgn
    c = _estrin(z, _TANH_Q) if small else e + 1.0
    res = a + b / c
    # tanh(x) rounds to x for |x| < 2**-28 (this also keeps the sign of zero).
    return x if ax < 3.725290298461914e-09 else res


@numba.njit(**_JIT_OPTIONS)
def _sigmoid64(x):
    """1 / (1 + exp(-x)) for float64 ``x``; see :func:`fm_sigmoid`."""
    t = _exp64(-abs(x))
    pos = x >= 0.0
    num = 1.0 if pos else t
    # d + dl == 1 + t exactly; q = num / d rounded, rem = num - q * d exactly (with FMA).
    d = 1.0 + t
    dl = (1.0 - d) + t
    q = num / d
    rem = _fma(-q, d, num)
    # num / (d + dl) ~= q + (rem - q * dl) / d, and 1 / d == q (x >= 0) or 1 - q (x < 0)
    # to the accuracy a correction term needs.
    inv = q if pos else 1.0 - q
    return _fma(rem - q * dl, inv, q)


@numba.njit(**_JIT_OPTIONS)
def _softplus64(x):
    """log(1 + exp(x)) for float64 ``x``; see :func:`fm_softplus`."""
    # max(x, 0) + log1p(exp(-|x|)); NaN propagates through the second term.
    return _log1p64(_exp64(-abs(x))) + max(x, 0.0)


@numba.njit(**_JIT_OPTIONS)
def _erf64(x):
    """erf(x) for float64 ``x``; see :func:`fm_erf`."""
    ax = abs(x)
    # |x| < 1: odd polynomial.
    small = _fma(x, _estrin(x * x, _ERF_U), x)
    # |x| >= 1: 1 - exp(-x**2) g(x), with |x| clamped to [1, 6] (erf(6) == 1.0).
    a = max(min(ax, _ERF_HI), 1.0)
    big = 1.0 - _exp64(-(a * a)) * _horner(a - 1.0, _ERF_G)
    big = big if x > 0.0 else -big
    return small if ax < 1.0 else big


# -- Public API ------------------------------------------------------------------------------


@numba.njit(**_JIT_OPTIONS)
def fm_exp(x):
    """Exponential ``exp(x)``.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``exp(x)`` in the precision of ``x`` (float32 for float32, else float64).
        Overflows to ``inf`` for ``x > 709.78``, underflows gradually through the
        subnormal range to ``0`` for ``x < -745.13``; NaN propagates.
    """
    return _like(x, _exp64(np.float64(x)))


@numba.njit(**_JIT_OPTIONS)
def fm_expm1(x):
    """``exp(x) - 1``, accurate also for small ``|x|``.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``expm1(x)`` in the precision of ``x``; ``-1`` for ``x < -37.43``, ``inf`` on
        overflow, signed zero preserved, NaN propagates.
    """
    return _like(x, _expm1_64(np.float64(x)))


@numba.njit(**_JIT_OPTIONS)
def fm_log(x):
    """Natural logarithm ``log(x)``.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``log(x)`` in the precision of ``x``; ``-inf`` for ``x == 0``, ``nan`` for
        ``x < 0``, ``inf`` for ``x == inf``.  Subnormal ``x`` is handled exactly.
    """
    return _like(x, _log64(np.float64(x)))


@numba.njit(**_JIT_OPTIONS)
def fm_log1p(x):
    """``log(1 + x)``, accurate also for small ``|x|``.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``log1p(x)`` in the precision of ``x``; ``-inf`` for ``x == -1``, ``nan`` for
        ``x < -1``, signed zero preserved, NaN propagates.
    """
    return _like(x, _log1p64(np.float64(x)))


@numba.njit(**_JIT_OPTIONS)
def fm_tanh(x):
    """Hyperbolic tangent ``tanh(x)``.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``tanh(x)`` in the precision of ``x``; exactly ``+-1`` for ``|x| > 19.07``
        (including ``+-inf``), signed zero preserved, NaN propagates.
    """
    return _like(x, _tanh64(np.float64(x)))


@numba.njit(**_JIT_OPTIONS)
def fm_sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``.

    Evaluated as ``1 / (1 + exp(-|x|))`` for ``x >= 0`` and
    ``exp(x) / (1 + exp(x))`` for ``x < 0``, so it never overflows and keeps
    full relative accuracy for large negative ``x``.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``sigmoid(x)`` in the precision of ``x``; exactly ``1`` for ``x > 37.43``,
        subnormal then exactly ``0`` for ``x < -745.13``, NaN propagates.
    """
    return _like(x, _sigmoid64(np.float64(x)))


@numba.njit(**_JIT_OPTIONS)
def fm_softplus(x):
    """Softplus ``log(1 + exp(x))``.

    Evaluated as ``max(x, 0) + log1p(exp(-|x|))``, which never overflows and is
    accurate for large ``|x|`` of either sign.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``softplus(x)`` in the precision of ``x``; ``x`` for large positive ``x``
        (``inf`` for ``inf``), ``exp(x)`` for large negative ``x``, NaN propagates.
    """
    return _like(x, _softplus64(np.float64(x)))


@numba.njit(**_JIT_OPTIONS)
def fm_erf(x):
    """Error function ``erf(x) = 2 / sqrt(pi) * integral_0^x exp(-t**2) dt``.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``erf(x)`` in the precision of ``x``; exactly ``+-1`` for ``|x| > 5.922``
        (including ``+-inf``), signed zero preserved, NaN propagates.

    Notes
    -----
    The result is accurate to about one ulp *absolutely near 1*; ``1 - erf(x)``
    computed from it has no relative accuracy for large ``x`` (there is no
    ``erfc`` here).
    """
    return _like(x, _erf64(np.float64(x)))


#: Name -> compiled function, for code generators that map symbolic functions to kernels.
FASTMATH_FUNCTIONS = {
    "exp": fm_exp,
    "expm1": fm_expm1,
    "log": fm_log,
    "log1p": fm_log1p,
    "tanh": fm_tanh,
    "sigmoid": fm_sigmoid,
    "softplus": fm_softplus,
    "erf": fm_erf,
}
