"""Round 6 (exact): regression tests for the accuracy fixes of this round.

* ``fm_erfc`` / ``fm_ndtr`` (:mod:`symnn.codegen.fastmath_extra`): vectorisable and within a
  few ulps of mpmath over the whole range, the tail included (``Φ(z)`` down to ``z ≈ -38.5``,
  where it underflows).  GELU's kernels used ``math.erfc`` (a libm call: the loop did not
  vectorise) for its derivative and ``(1 + erf)/2`` (0 at ``z ≲ -8``) for its value.
"""

from __future__ import annotations

import math

import mpmath as mp
import numba
import numpy as np
import pytest
import sympy as sp

import symnn

from symnn.codegen import fastmath, fastmath_extra
from symnn.codegen.fastmath_extra import fm_erfc, fm_ndtr
from symnn.codegen.printer import KernelPrinter
from symnn.functions import REGISTRY, gelu, normcdf

mp.mp.dps = 40


@numba.njit(error_model="numpy", fastmath=False)
def _loop(x, which):  # the way generated kernels call them
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = fm_erfc(x[i]) if which == 0 else fm_ndtr(x[i])
    return out


def _ulps(got, want) -> np.ndarray:
    """|got − want| in ulps of the exact value (subnormals in units of the smallest one)."""
    w = np.array([float(v) for v in want])
    unit = np.maximum(np.spacing(np.abs(w)), 5e-324)
    return np.array([float(abs(mp.mpf(float(g)) - v)) for g, v in zip(got, want)]) / unit


def _grid(lo, hi, n, seed):
    rng = np.random.default_rng(seed)
    tiny = 10.0 ** rng.uniform(-12, 0, n // 4)
    return np.concatenate([np.linspace(lo, hi, n), rng.uniform(lo, hi, n), tiny, -tiny])


@pytest.mark.parametrize("which, lo, hi, ref",
                         [(0, -7.0, 27.5, mp.erfc), (1, -38.8, 9.0, mp.ncdf)], ids=["erfc", "ndtr"])
def test_fm_erfc_and_fm_ndtr_are_within_a_few_ulps_of_mpmath(which, lo, hi, ref):
    x = _grid(lo, hi, 300, 61 + which)
    u = _ulps(_loop(x, which), [ref(mp.mpf(float(v))) for v in x])
    assert u.max() <= 4.0, (x[np.argmax(u)], u.max())  # measured: 2.9 (erfc), 3.6 (ndtr)


def test_fm_erfc_special_values_and_float32():
    assert fm_erfc(0.0) == 1.0 and fm_erfc(math.inf) == 0.0 and fm_erfc(-math.inf) == 2.0
    assert fm_ndtr(-math.inf) == 0.0 and fm_ndtr(math.inf) == 1.0 and fm_ndtr(0.0) == 0.5
    assert math.isnan(fm_erfc(math.nan)) and math.isnan(fm_ndtr(math.nan))
    assert 0.0 < fm_erfc(27.2) < 1e-322 and 0.0 < fm_ndtr(-38.4) < 1e-321  # gradual underflow
    for v in (-3.0, 0.3, 2.0, 9.0):
        want = np.float32(float(mp.erfc(v)))
        assert _loop(np.array([v], np.float32), 0)[0] == want


def test_the_erf_form_loses_the_tail_the_check_can_fail():
    """``1 - erf(x)`` (what fm_erf gives) has no digits left at x = 6: the ulp check fails."""
    x = np.array([6.0])
    old = np.array([1.0 - fastmath.fm_erf(6.0)])
    assert _ulps(old, [mp.erfc(6)]).max() > 1e10


def _kernel_value(expr, z: float, fast: bool) -> float:
    zs = sp.Symbol("z", real=True)
    src = KernelPrinter(fast=fast).doprint(expr(zs))
    ns = {"math": math, "fm_ndtr": fm_ndtr, "fm_erfc": fastmath_extra.fm_erfc,
          **{k: getattr(fastmath, k) for k in fastmath.__all__ if k.startswith("fm_")}}
    return eval(compile(src, "<kernel form>", "eval"), dict(ns, z=z))  # noqa: S307


Z_TAIL = [-38.0, -30.0, -20.0, -10.0, -8.0, -3.0, -0.7, 0.0, 0.4, 2.0, 9.0]


@pytest.mark.parametrize("fast", [True, False])
def test_gelu_value_and_derivative_keep_relative_accuracy_in_the_tail(fast):
    """GELU(−10) = −7.6e-23 (the erf form gave 0); Φ and GELU' in the kernels' forms, and
    the NumPy reference, are relatively accurate down to z = −38."""
    z = sp.Symbol("z", real=True)
    cases = [(gelu, lambda v: v * mp.ncdf(v)), (normcdf, mp.ncdf),
             (lambda s: sp.diff(gelu(s), s), lambda v: mp.ncdf(v) + v * mp.npdf(v))]
    for expr, exact in cases:
        for v in Z_TAIL:
            want = float(exact(mp.mpf(v)))
            got = _kernel_value(expr, v, fast)
            tol = 1e-13 if fast else 1e-12  # math.erfc(-z/√2): the rounded z/√2 costs ~z² ulp
            assert abs(got - want) <= tol * abs(want) + 1e-320, (expr, v, fast, got, want)
    ref = REGISTRY["gelu"].numpy(np.array(Z_TAIL))
    want = np.array([float(mp.mpf(v) * mp.ncdf(v)) for v in Z_TAIL])
    np.testing.assert_allclose(ref, want, rtol=1e-13, atol=1e-300)  # scipy's ndtr flushes at -38
    assert _kernel_value(gelu, -10.0, fast) < -7e-23


def test_the_fast_kernels_call_no_libm_erfc():
    """The printed (fastmath) forms of GELU, GELU' and GELU'' call the vectorisable helpers."""
    z = sp.Symbol("z", real=True)
    for k in range(3):
        src = KernelPrinter(fast=True).doprint(sp.diff(gelu(z), z, k))
        assert "math.erf" not in src and "fm_erf(" not in src, src
    assert "fm_ndtr" in KernelPrinter(fast=True).doprint(gelu(z))


# --------------------------------------------------------------------------------------------
# tanh' = sech²(z) (was 1 − tanh², 0 at |z| ≥ 19) in Map rules and the RNN's BPTT
# --------------------------------------------------------------------------------------------


def _mp_grad(f, theta):
    """The gradient of ``f`` (mpmath arithmetic) at ``theta``, by 50-digit differences."""
    with mp.workdps(90):  # the gradient spans 1e-45 … 1 (40 digits do not resolve it)
        theta = [mp.mpf(float(t)) for t in theta]
        out = []
        for i in range(len(theta)):
            def fi(t, i=i):
                return f(theta[:i] + [t] + theta[i + 1:])
            out.append(float(mp.diff(fi, theta[i])))
    return np.array(out)


def test_rnn_bptt_keeps_relative_accuracy_where_tanh_saturates():
    """RNN(1, 1, length=2) → Dense(1, 1), MSE, pre-activations ≈ 20: the gradient of the
    recurrent weights goes through tanh'(z) ≈ 1.7e-17 (old rule: exactly 0)."""
    from symnn.codegen.model import ReferenceModel

    net = symnn.Network([symnn.RNN(1, 1, length=2), symnn.Dense(1, 1)], loss="mse")
    ref = ReferenceModel(net)
    names = list(ref.unflatten(np.zeros(ref.n_params)))
    assert names == ["W_xh1", "W_hh1", "b1", "W2", "b2"]
    theta = np.array([10.0, 0.5, 0.25, 1.5, 0.1])
    X, Y = np.array([[1.0, 2.0]]), np.array([[0.3]])

    def loss(t):
        wx, wh, b, w2, b2 = t
        h = mp.tanh(wx * X[0, 0] + b)
        h = mp.tanh(wx * X[0, 1] + wh * h + b)
        return (w2 * h + b2 - Y[0, 0]) ** 2

    want = _mp_grad(loss, theta)
    _, got = ref.loss_and_grad(theta, X, Y)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert 0 < abs(got[1]) < 1e-12  # ∂L/∂W_hh through tanh'(20.5): not 0


def test_the_derived_rules_print_sech2_and_the_old_form_fails_the_check():
    from symnn.ops._tanh import diff, sech2

    z = sp.Symbol("z", real=True)
    assert diff(sp.tanh(z), z) == sech2(z)
    assert diff(3 * sp.tanh(z), z) == 3 * sech2(z)
    assert diff(sp.tanh(z) ** 2, z) == 2 * sp.tanh(z) * sech2(z)
    assert diff(sp.tanh(z) ** 2 + z, z).has(sech2)
    old = 1.0 - np.tanh(20.0) ** 2
    assert old == 0.0 and float(mp.sech(20) ** 2) > 1e-17  # what the check above catches


# --------------------------------------------------------------------------------------------
# softmax: p ⊙ (x − pᵀx) exact for the dominant class (the Hessian's p(1 − p))
# --------------------------------------------------------------------------------------------


def _softmax_case(scale, output_loss):
    from symnn.codegen.model import ReferenceModel

    net = symnn.mlp([3, 4], output="softmax", loss=output_loss)
    ref = ReferenceModel(net)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 3)) * scale
    Y = np.eye(4)[[0, 2]]
    return ref, rng.normal(size=ref.n_params), rng.normal(size=ref.n_params), X, Y


def _mp_softmax_hvp(theta, v, X):
    """Exact HVP of mean CE(softmax(W x + b)) in θ = (W, b): Jᵀ (diag p − p pᵀ) J v."""
    W, b = np.reshape(theta[:12], (4, 3)), theta[12:]
    Vw, Vb = np.reshape(v[:12], (4, 3)), v[12:]
    out = [mp.mpf(0)] * 16
    for x in X:
        u = [sum(mp.mpf(W[i, j]) * x[j] for j in range(3)) + b[i] for i in range(4)]
        ud = [sum(mp.mpf(Vw[i, j]) * x[j] for j in range(3)) + Vb[i] for i in range(4)]
        e = [mp.exp(ui) for ui in u]
        p = [ei / sum(e) for ei in e]
        t = sum(pi * di for pi, di in zip(p, ud))
        pd = [p[i] * (ud[i] - t) for i in range(4)]
        for i in range(4):
            for j in range(3):
                out[3 * i + j] += pd[i] * x[j] / len(X)
            out[12 + i] += pd[i] / len(X)
    return np.array([float(o) for o in out])


@pytest.mark.parametrize("scale", [1.0, 10.0, 100.0])
def test_softmax_cross_entropy_hvp_keeps_relative_accuracy_at_saturation(scale):
    """Was 6.9e-9 (relative) at inputs ×10: ``ż_k − pᵀż`` cancels for the dominant class."""
    ref, theta, v, X, Y = _softmax_case(scale, "cross_entropy")
    with mp.workdps(80):  # logits ≈ ±300: 40 digits are not enough for the witness itself
        want = _mp_softmax_hvp(theta, v, X)
    np.testing.assert_allclose(ref.hvp(theta, v, X, Y), want, rtol=1e-13)


@pytest.mark.parametrize("unroll", [False, True], ids=["looped", "unrolled"])
def test_gru_bptt_keeps_relative_accuracy_where_the_gates_saturate(unroll):
    """GRU(1, 1, length=2): gate pre-activations ≈ 12–25, where ``1 − u``, ``r(1 − r)``,
    ``u(1 − u)`` and ``1 − n²`` (the old coefficients and forward value) lose their digits.
    The unrolled GRU still writes ``h = (1 − u) n + u h₋₁`` (its textbook printer traces that
    form; open item), so there the update gate saturates towards 0 instead."""
    from symnn.codegen.model import ReferenceModel

    net = symnn.Network([symnn.GRU(1, 1, length=2, unroll=unroll), symnn.Dense(1, 1)],
                        loss="mse")
    ref = ReferenceModel(net)
    names = list(ref.unflatten(np.zeros(ref.n_params)))
    assert names[:6] == ["W_ir1", "W_iz1", "W_in1", "W_hr1", "W_hz1", "W_hn1"]
    #                  W_ir  W_iz  W_in  W_hr W_hz W_hn b_ir  b_iz b_in  b_hr b_hz b_hn  W2   b2
    theta = np.array([10.0, 12.0, 9.0, 0.5, 0.5, 0.7, 2.0, 1.0, 3.0, 0.1, 0.2, 0.3, 1.5, 0.1])
    if unroll:
        theta[[1, 7]] = -12.0, -1.0  # u → 0
    X, Y = np.array([[1.0, 2.0]]), np.array([[0.3]])

    def loss(t):
        wir, wiz, win, whr, whz, whn, bir, biz, bin_, bhr, bhz, bhn, w2, b2 = t
        h = 0
        for x in X[0]:
            r = 1 / (1 + mp.exp(-(wir * x + bir + whr * h + bhr)))
            u = 1 / (1 + mp.exp(-(wiz * x + biz + whz * h + bhz)))
            n = mp.tanh(win * x + bin_ + r * (whn * h + bhn))
            h = (1 - u) * n + u * h
        return (w2 * h + b2 - Y[0, 0]) ** 2

    want = _mp_grad(loss, theta)
    _, got = ref.loss_and_grad(theta, X, Y)
    np.testing.assert_allclose(got, want, rtol=1e-11)
