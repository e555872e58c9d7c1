"""Curvature and analysis: exact spectra, critical points, Lipschitz bounds."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symnn
from symnn.analysis import (
    condition_number,
    critical_point,
    derivative_bound,
    find_saddle,
    hessian_spectrum,
    lipschitz_bound,
    weight_spectra,
)
from symnn.declare.activations import ACTIVATIONS
from symnn.errors import DataError, ShapeError, SymnnError

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


@pytest.fixture(scope="module")
def xor():
    return symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse").compile()


@pytest.fixture(scope="module")
def clf():
    return symnn.mlp([4, 6, 5, 3], activation="tanh", output="softmax",
                     loss="cross_entropy").compile()


def _data(rng, B=32, n_in=4, n_out=3):
    X = rng.normal(size=(B, n_in))
    labels = rng.integers(0, n_out, size=B)
    return X, np.eye(n_out)[labels]


@pytest.mark.slow
def test_lanczos_extremes_equal_the_dense_spectrum(clf):
    rng = np.random.default_rng(0)
    X, Y = _data(rng)
    theta = clf.init(seed=1)
    dense = hessian_spectrum(clf, theta, X, Y)
    assert dense.shape == (clf.n_params,)
    lz = hessian_spectrum(clf, theta, X, Y, k=6, tol=1e-12)
    expect = np.concatenate([dense[:3], dense[-3:]])
    assert np.allclose(lz, expect, rtol=1e-8, atol=1e-10 * np.max(np.abs(dense)))
    top = hessian_spectrum(clf, theta, X, Y, k=2, which="largest", tol=1e-12)
    assert np.allclose(top, dense[-2:], rtol=1e-8)


def test_origin_of_a_tanh_net_is_a_saddle():
    """At W = 0 (hidden units interchangeable, output = mean target) the gradient vanishes;
    a target correlated with the inputs couples W1 and W2 into an indefinite Hessian."""
    rng = np.random.default_rng(0)
    model = symnn.mlp([2, 2, 1], activation="tanh", loss="mse").compile()
    X = rng.normal(size=(40, 2))
    Y = X @ np.array([[1.0], [-0.5]]) + 0.3
    theta = model.flatten({"W1": np.zeros((2, 2)), "b1": np.zeros(2), "W2": np.zeros((1, 2)),
                           "b2": np.array([Y.mean()])})
    cp = critical_point(model, theta, X, Y)
    assert cp.grad_norm < 1e-12
    assert cp.kind == "saddle" and cp.n_negative >= 1 and cp.n_positive >= 1
    # moving along the escape direction lowers the loss (second-order decrease)
    v = cp.escape_direction
    L0 = model.loss(theta, X, Y)
    assert model.loss(theta + 1e-2 * v, X, Y) < L0
    assert "saddle" in str(cp) and "escape" in str(cp)


def test_xor_origin_is_degenerate(xor):
    """XOR is orthogonal to every linear feature: at the origin the W1–W2 coupling vanishes
    and the Hessian is only semidefinite — the XOR plateau."""
    cp = critical_point(xor, np.zeros(xor.n_params), XOR_X, XOR_Y)
    assert cp.grad_norm < 1e-12 and cp.kind == "degenerate" and cp.n_zero > 0


def test_least_squares_solution_is_a_minimum():
    rng = np.random.default_rng(2)
    model = symnn.mlp([3, 2], activation="identity", loss="mse").compile()
    X = rng.normal(size=(20, 3))
    Y = rng.normal(size=(20, 2))
    A = np.hstack([X, np.ones((20, 1))])
    sol, *_ = np.linalg.lstsq(A, Y, rcond=None)
    theta = model.flatten({"W1": sol[:3].T, "b1": sol[3]})
    cp = critical_point(model, theta, X, Y, tol=1e-10)
    assert cp.kind == "minimum" and cp.n_negative == 0 and cp.n_zero == 0
    assert condition_number(model, theta, X, Y) == pytest.approx(cp.condition_number)
    # for a linear model with MSE the Hessian *is* the Gauss-Newton matrix
    assert condition_number(model, theta, X, Y, "gauss_newton") == pytest.approx(
        cp.condition_number, rel=1e-9)


def test_a_maximum_is_classified():
    x, a = sp.symbols("x a")
    m = symnn.Model(sp.sin(a) + 0 * x, inputs=[x], params=[a], loss="mse").compile()
    X = np.zeros((3, 1))
    Y = np.zeros((3, 1))
    cp = critical_point(m, np.array([np.pi / 2]), X, Y)
    assert cp.kind == "maximum"


def test_find_saddle_converges_to_a_critical_point(xor):
    theta0 = np.full(xor.n_params, 0.05) + np.random.default_rng(4).normal(size=9) * 1e-3
    theta, cp = find_saddle(xor, theta0, XOR_X, XOR_Y)
    assert cp.grad_norm < 1e-5
    assert cp.kind in ("saddle", "minimum", "degenerate")


def test_weight_spectra_match_svd(clf):
    theta = clf.init(seed=3)
    specs = weight_spectra(clf, theta)
    arrays = clf.unflatten(theta)
    assert [s.name for s in specs] == ["W1", "W2", "W3"]
    for s in specs:
        sv = np.linalg.svd(arrays[s.name], compute_uv=False)
        assert np.allclose(s.singular_values, sv)
        assert s.rank == min(s.shape) and s.spectral_norm == pytest.approx(sv[0])


def test_activation_derivative_bounds_are_derived():
    assert derivative_bound(ACTIVATIONS["sigmoid"]) == sp.Rational(1, 4)
    assert derivative_bound(ACTIVATIONS["tanh"]) == 1
    assert float(derivative_bound(ACTIVATIONS["gelu"])) == pytest.approx(1.1289, abs=1e-4)
    assert float(derivative_bound(ACTIVATIONS["swish"])) == pytest.approx(1.0998, abs=1e-4)


@pytest.fixture(scope="module")
def lip_models():
    return [symnn.mlp([3, 5, 4, 2], activation=act, output=out, loss=loss).compile()
            for act, out, loss in [("sigmoid", None, "mse"), ("gelu", "softmax", "cross_entropy"),
                                   ("tanh", "tanh", "mse")]]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), which=st.integers(0, 2), scale=st.floats(0.1, 3.0))
def test_lipschitz_bound_is_never_below_the_jacobian_norm(lip_models, seed, which, scale):
    model = lip_models[which]
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=model.n_params) * scale
    X = rng.normal(size=(16, 3)) * 2
    rep = lipschitz_bound(model, theta, X)
    assert rep.empirical <= rep.bound * (1 + 1e-12)
    assert "Lipschitz upper bound" in str(rep)


def test_bad_input(clf):
    rng = np.random.default_rng(0)
    X, Y = _data(rng)
    theta = clf.init(seed=0)
    with pytest.raises(ShapeError, match=f"{clf.n_params} parameters"):
        hessian_spectrum(clf, theta[:-1], X, Y)
    with pytest.raises(SymnnError, match="k must be an integer") as err:
        hessian_spectrum(clf, theta, X, Y, k=clf.n_params + 5)
    assert isinstance(err.value, ValueError)
    x, a = sp.symbols("x a")
    m = symnn.Model(sp.exp(a * x), inputs=[x], params=[a], loss="mse").compile()
    with pytest.raises(DataError, match="non-finite"):
        with np.errstate(all="ignore"):
            hessian_spectrum(m, np.array([800.0]), np.ones((2, 1)), np.ones((2, 1)))
