"""Vectorisable, relatively accurate ``erfc``, normal CDF and ``sech²`` for Numba kernels.

A companion of :mod:`symnn.codegen.fastmath` (same conventions: straight-line arithmetic,
selects instead of branches, ``forceinline``, float32 in → float32 out), kept in its own
module so that each stays small.  Generated kernels import these two functions from here.

================  ===========================  =============================
function          definition                   max error vs mpmath (ulps)
================  ===========================  =============================
``fm_erfc``       ``1 - erf(x)``               3 (whole range, tail included)
``fm_ndtr``       ``Φ(z) = erfc(-z/√2) / 2``   3 (whole range, tail included)
``fm_sech2``      ``1 - tanh(x)²``             3 (whole range)
================  ===========================  =============================

Both keep full *relative* accuracy where ``1 - erf`` cancels: ``erfc(x)`` for large ``x``
(down to the subnormal range, ``erfc(27.2) ≈ 5e-324``) and ``Φ(z)`` for ``z ≪ 0`` (down to
``z ≈ -38.5``), which :func:`fm_erf` cannot give.  (Measured with
``tests/test_fastmath_erfc.py``; subnormal results are counted in units of the smallest
subnormal.)

``fm_sech2`` is tanh's derivative in the form ``4e / (1 + e)²``, ``e = exp(-2|x|)``, which
keeps its relative accuracy where ``1 - tanh²`` cancels (all digits lost at ``|x| ≥ 19``).

Method
------
For ``a = |x|``, ``erfc(a) = exp(-a²) · erfcx(a)`` where the scaled function
``erfcx(a) · (1 + 2a)`` is smooth and bounded (between 1 and 2/√π) on ``[0, ∞)``.  In the
variable ``t = (a - K) / (a + K)``, ``K = 3.5`` (Schonfelder's map of ``[0, ∞)`` onto
``[-1, 1)``), it is one polynomial of degree 26 (:data:`_ERFCX_T`; Chebyshev interpolation
at 64 nodes in 50-digit ``mpmath``, converted to monomials; error with the rounded
coefficients 2**-56.1).  ``exp(-a²)`` is computed from the exact split
``a² = h + l`` (``l = fma(a, a, -h)``) as ``exp(-h) · (1 - l)``, so the rounding of
``a²`` (relative error up to 1e-13 at the tail) does not reach the result.  For
``|x| < 1/2``, ``1 - erf(x)`` from :func:`fm_erf`'s polynomial (no cancellation there) is
a little more accurate.  Negative arguments use ``erfc(-a) = 2 - erfc(a)`` (no cancellation: the result is ≥ 1).
:func:`fm_ndtr` uses the same kernel with ``a = |z|/√2`` but the exponent ``z²/2`` split
exactly from ``z``, so the rounding of ``z/√2`` costs at most one ulp of the smooth factor.

>>> fm_erfc(0.0), fm_ndtr(0.0), fm_sech2(0.0)
(1.0, 0.5, 1.0)
>>> 0 < fm_ndtr(-38.0) < 1e-300, fm_erfc(-30.0)
(True, 2.0)
"""

from __future__ import annotations

import numba
import numpy as np

from symnn.codegen.fastmath import _ERF_U, _JIT_OPTIONS, _estrin, _exp64, _fma, _horner, _like

__all__ = ["fm_erfc", "fm_ndtr", "fm_sech2"]

#: erfcx(a) (1 + 2a) = sum _ERFCX_T[i] t**i, t = (a - 3.5) / (a + 3.5), a >= 0.
_ERFCX_T = (
    1.2423492448711544,
    -0.1400091801376194,
    -0.0105555963322182,
    0.09751909515325616,
    -0.11508959816019923,
    0.08798315382498854,
    -0.048823325827670266,
    0.019099330939674558,
    -0.0042150199115769844,
    -0.0003022678446604841,
    0.0005643844535746208,
    -0.0001215126588509358,
    -4.278244003113202e-05,
    2.4262038916276542e-05,
    2.3290774963829093e-06,
    -3.817786378297826e-06,
    -4.604578227023044e-08,
    6.070320817702346e-07,
    -5.228060947623165e-09,
    -1.0185275898831116e-07,
    -1.9046418547468445e-09,
    1.7051623945135418e-08,
    1.287790687723343e-09,
    -2.4119164858055925e-09,
    -3.2876618296575205e-10,
    1.9939963150163616e-10,
    3.668727685241104e-11,
)
_K = 3.5
_A_MAX = 27.3  # erfc(a) rounds to 0 for a > 27.23 (and a*a stays below 745.3)
_INV_SQRT2 = 0.7071067811865476
_SMALL = 0.5  # below: 1 - erf(x) with fastmath's erf polynomial (the t-polynomial loses ~2 ulp)


@numba.njit(**_JIT_OPTIONS)
def _erfc_pos(a, h, l):
    """``erfc(a)`` for ``0 <= a <= _A_MAX``, given ``a² = h + l`` (``l`` the rounding error)."""
    t = (a - _K) / (a + _K)
    e = _exp64(-h)
    e = _fma(-l, e, e)  # exp(-h - l) = exp(-h) (1 - l); |l| < 1e-13
    return e * (_horner(t, _ERFCX_T) / _fma(2.0, a, 1.0))


@numba.njit(**_JIT_OPTIONS)
def _erfc64(x):
    """erfc(x) for float64 ``x``; see :func:`fm_erfc`."""
    a = min(abs(x), _A_MAX)  # NaN passes through
    h = a * a
    r = _erfc_pos(a, h, _fma(a, a, -h))
    small = 1.0 - _fma(x, _estrin(x * x, _ERF_U), x)  # 1 - erf(x): at most 1.5, no cancellation
    return small if a < _SMALL else (2.0 - r if x < 0.0 else r)


@numba.njit(**_JIT_OPTIONS)
def _ndtr64(z):
    """Φ(z) for float64 ``z``; see :func:`fm_ndtr`."""
    zc = max(min(z, _A_MAX * 1.4142135623730951), -_A_MAX * 1.4142135623730951)
    h = zc * zc
    l = _fma(zc, zc, -h)
    x = zc * _INV_SQRT2
    r = 0.5 * _erfc_pos(abs(x), 0.5 * h, 0.5 * l)  # Φ(-|z|)
    small = _fma(0.5, _fma(x, _estrin(x * x, _ERF_U), x), 0.5)  # (1 + erf(z/√2)) / 2
    return small if abs(x) < _SMALL else (1.0 - r if z > 0.0 else r)


@numba.njit(**_JIT_OPTIONS)
def fm_erfc(x):
    """Complementary error function ``erfc(x) = 1 - erf(x)``, relatively accurate.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``erfc(x)`` in the precision of ``x``: 2 for ``x < -6``, underflows gradually to 0
        at ``x ≈ 27.2`` (including ``+inf``); NaN propagates.
    """
    return _like(x, _erfc64(np.float64(x)))


@numba.njit(**_JIT_OPTIONS)
def fm_ndtr(z):
    """Standard normal CDF ``Φ(z) = erfc(-z/√2) / 2``, relatively accurate for ``z ≪ 0``.

    Parameters
    ----------
    z : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``Φ(z)`` in the precision of ``z``: 1 for ``z > 8.3``, underflows gradually to 0 at
        ``z ≈ -38.5`` (including ``-inf``); NaN propagates.
    """
    return _like(z, _ndtr64(np.float64(z)))


@numba.njit(**_JIT_OPTIONS)
def _sech2_64(x):
    """sech²(x) for float64 ``x``; see :func:`fm_sech2`."""
    e = _exp64(-2.0 * abs(x))  # NaN passes through
    d = 1.0 + e
    return (4.0 * e) / (d * d)


@numba.njit(**_JIT_OPTIONS)
def fm_sech2(x):
    """``sech²(x) = 1 - tanh(x)²`` (tanh's derivative), relatively accurate at large ``|x|``.

    Parameters
    ----------
    x : float
        Argument (float64, float32, integer or bool).

    Returns
    -------
    float
        ``sech²(x)`` in the precision of ``x``: ``4 exp(-2|x|)`` for large ``|x|``, underflowing
        gradually to 0 at ``|x| ≈ 373``; NaN propagates.
    """
    return _like(x, _sech2_64(np.float64(x)))
