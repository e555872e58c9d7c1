"""θ's finiteness checked through the kernel's reads at small batches
(:mod:`symnn.codegen._fusedcheck`, issue 16): the same errors as the full scan for a NaN or
±inf in every kind of segment, the same results otherwise, and checks that fail when the
fused check is deliberately broken."""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.codegen import _fusedcheck as F
from symnn.errors import DataError

SIZES = [5, 6, 7, 3]  # θ: W1 0:30, b1 30:36, W2 36:78, b2 78:85, W3 85:106, b3 106:109
POSITIONS = {"W1[0]": 0, "b1": 33, "W2": 50, "b2": 84, "W3[-1]": 105, "b3": 107}


@pytest.fixture(scope="module")
def model():
    return symnn.mlp(SIZES, activation="tanh", output="softmax", loss="cross_entropy",
                     name="fusedchk").compile()


def _data(B, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, SIZES[0]))
    y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], B)]
    return X, y


def _full_message(model, theta):
    with pytest.raises(DataError) as err:
        model._theta(theta)  # the full checks' own error
    return str(err.value)


def test_plan_covers_every_weight_and_the_products_bias(model):
    for kind in ("loss", "loss_and_grad"):
        p = F.plan(model, kind)
        assert p.theta_segments.reshape(-1, 2).tolist() == [[30, 36], [78, 85]]
        assert [n for _, _, n in p.products] == [6, 7, 3]
    assert F.build_plan("def f():\n    return 0\n", 10) is None


@pytest.mark.parametrize("B", [1, 3, 6])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_theta_in_every_segment_raises_the_full_checks_error(model, B, bad):
    X, y = _data(B)
    for where, i in POSITIONS.items():
        theta = model.init(0)
        theta[i] = bad
        want = _full_message(model, theta)
        for method in (model.loss_and_grad, model.loss):
            with pytest.raises(DataError) as err:
                method(theta, X, y)
            assert str(err.value) == want, (where, method.__name__)


def test_results_equal_the_ordinary_path_and_the_fused_path_is_taken(model, monkeypatch):
    theta = model.init(1)
    for B in (1, 2, 4, 5):
        X, y = _data(B, seed=B)
        fused = F.loss_and_grad(model, theta, X, y, None)
        assert (fused is not None) == (B <= F.ROWS)
        L, g = model.loss_and_grad(theta, X, y)
        Lf = model.loss(theta, X, y)
        with monkeypatch.context() as m:
            m.setattr(F, "ROWS", 0)  # every call the ordinary way
            L0, g0 = model.loss_and_grad(theta, X, y)
            assert model.loss(theta, X, y) == Lf
        assert L == L0 == Lf and np.array_equal(g, g0)
        if fused is not None:
            assert fused[0] == L and np.array_equal(fused[1], g)


def test_theta_made_non_finite_in_place_after_a_good_call_raises(model):
    X, y = _data(1)
    theta = model.init(2)
    model.loss_and_grad(theta, X, y)
    theta[33] = np.inf  # a bias: tanh(inf) = 1, nothing downstream shows it
    with pytest.raises(DataError, match="theta contains inf"):
        model.loss_and_grad(theta, X, y)


def test_overflowing_finite_theta_takes_the_ordinary_path_with_the_same_result(model,
                                                                                monkeypatch):
    X, y = _data(2)
    theta = model.init(3)
    theta[0:30] = 1e300  # finite, but z1 overflows to inf: the fused check cannot tell
    assert F.loss_and_grad(model, theta, X * 1e10, y, None) is None
    L, g = model.loss_and_grad(theta, X * 1e10, y)
    with monkeypatch.context() as m:
        m.setattr(F, "ROWS", 0)
        L0, g0 = model.loss_and_grad(theta, X * 1e10, y)
    assert np.array_equal(np.asarray(L), np.asarray(L0), equal_nan=True)
    assert np.array_equal(g, g0, equal_nan=True)


def test_bad_x_and_y_still_raise(model):
    X, y = _data(1)
    theta = model.init(0)
    X[0, 2] = np.nan
    with pytest.raises(DataError, match="X contains nan"):
        model.loss_and_grad(theta, X, y)
    X, y = _data(1)
    y[0] = 0.5
    with pytest.raises(DataError, match="sums to"):
        model.loss(theta, X, y)


def test_a_deliberately_broken_fused_check_misses_what_the_real_one_catches(model,
                                                                           monkeypatch):
    """inf in b1 (tanh(inf) = 1) or in W1 (z1 = inf, a1 = 1) leaves the loss and gradient
    finite: only the segment scan, resp. the check of z1, finds them."""
    X, y = _data(1)
    theta = model.init(4)
    theta[33] = np.inf
    with pytest.raises(DataError):
        model.loss_and_grad(theta, X, y)
    p = F.plan(model, "loss_and_grad")
    with monkeypatch.context() as m:  # a plan that claims b1 covered
        m.setattr(p, "theta_segments", np.array([78, 85], np.int64))
        L, g = model.loss_and_grad(theta, X, y)
        assert np.isfinite(L) and np.isfinite(g).all()
    theta = model.init(4)
    theta[0] = np.inf
    with pytest.raises(DataError):
        model.loss_and_grad(theta, X, y)
    with monkeypatch.context() as m:  # a plan that checks no product's z
        m.setattr(p, "by_rows", {1: (np.zeros(0, np.int64), p.work_segments(1)[1])})
        L, g = model.loss_and_grad(theta, X, y)
        assert np.isfinite(L) and np.isfinite(g).all()


def test_float32_model_refuses_non_finite_theta_at_small_batches():
    m32 = symnn.mlp(SIZES, activation="tanh", output="softmax", loss="cross_entropy",
                    name="fusedchk32").compile(dtype="float32")
    X, y = _data(2)
    X, y = X.astype(np.float32), y.astype(np.float32)
    theta = m32.init(0)
    L, _ = m32.loss_and_grad(theta, X, y)
    assert np.isfinite(L)
    theta[60] = np.inf
    with pytest.raises(DataError, match="theta contains inf"):
        m32.loss_and_grad(theta, X, y)


def test_declines_what_it_does_not_handle(model, monkeypatch):
    """A mask, AOT kernels, a Fortran-order X, float32 data for a float64 model: None (the
    ordinary path converts, checks or raises)."""
    X, y = _data(2)
    theta = model.init(0)
    assert F.loss_and_grad(model, theta, X, y, None) is not None
    assert F.loss_and_grad(model, theta, X, y, np.ones((2, 1))) is None
    assert F.loss_and_grad(model, theta, np.asfortranarray(X), y, None) is None
    assert F.loss(model, theta, X.astype(np.float32), y, None) is None
    with monkeypatch.context() as m:
        m.setattr(model, "_aot", {"loss_and_grad": None})
        assert F.loss_and_grad(model, theta, X, y, None) is None
