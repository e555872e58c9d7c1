"""The fast path of a compiled model's call (symnn.codegen._fastpath): it takes only
arguments that pass every check unchanged, and every bad argument still gets the full
checks' error — also after an in-place change to an array the fast path has seen."""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.codegen import _fastpath
from symnn.errors import DataError, ShapeError


@pytest.fixture(scope="module", params=["float64", "float32"])
def ce_model(request):
    net = symnn.mlp([3, 4, 2], activation="tanh", output="softmax", loss="cross_entropy",
                    name="fastpath_ce")
    return net.compile(dtype=request.param)


@pytest.fixture(scope="module")
def mse_model():
    return symnn.mlp([3, 4, 1], activation="tanh", loss="mse", name="fastpath_mse").compile()


def _problem(model, B=5):
    rng = np.random.default_rng(0)
    dt = model.dtype
    theta = model.init(1).astype(dt)
    X = rng.standard_normal((B, 3)).astype(dt)
    if model.n_outputs == 1:
        Y = rng.standard_normal(B).astype(dt)
    else:
        Y = np.eye(model.n_outputs, dtype=dt)[rng.integers(0, model.n_outputs, B)]
    return theta, X, Y


def test_fast_equals_full_checks(ce_model):
    theta, X, Y = _problem(ce_model)
    assert _fastpath.ready_args(ce_model, theta, X, Y, None) is not None
    L, g = ce_model.loss_and_grad(theta, X, Y)
    # lists take the full checks (converted), and must give the very same numbers
    L2, g2 = ce_model.loss_and_grad(theta.tolist(), X.tolist(), Y.tolist())
    assert L == L2 and np.array_equal(g, g2)
    assert ce_model.loss(theta, X, Y) == ce_model.loss(theta, X.tolist(), Y)


@pytest.mark.parametrize("where", ["theta", "X", "Y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_after_a_fast_call_still_raises(mse_model, where, bad):
    theta, X, Y = _problem(mse_model)
    mse_model.loss_and_grad(theta, X, Y)  # a fast call first: nothing may be remembered
    arr = {"theta": theta, "X": X, "Y": Y}[where]
    arr.reshape(-1)[-1] = bad  # in place: same object, same shape
    assert _fastpath.ready_args(mse_model, theta, X, Y, None) is None
    with pytest.raises(DataError, match={"theta": "^theta", "X": "^X", "Y": "^y"}[where]):
        mse_model.loss_and_grad(theta, X, Y)
    with pytest.raises(DataError):
        mse_model.hvp(theta, np.ones(mse_model.n_params), X, Y)


def test_probability_rows_still_checked(ce_model):
    theta, X, Y = _problem(ce_model)
    Y[2] = [0.7, 0.7]
    with pytest.raises(DataError, match="row 2 of y sums to"):
        ce_model.loss_and_grad(theta, X, Y)
    Y[2] = [1.5, -0.5]
    with pytest.raises(DataError, match="negative"):
        ce_model.loss(theta, X, Y)


def test_shapes_still_checked(ce_model):
    theta, X, Y = _problem(ce_model)
    with pytest.raises(ShapeError, match="features"):
        ce_model.loss_and_grad(theta, X[:, :2].copy(), Y)
    with pytest.raises(ShapeError, match="flat vector"):
        ce_model.loss_and_grad(theta[:-1].copy(), X, Y)
    with pytest.raises(ShapeError, match="expected"):
        ce_model.loss_and_grad(theta, X, Y[:-1].copy())
    with pytest.raises(ShapeError, match="empty batch"):
        ce_model.loss_and_grad(theta, X[:0], Y[:0])


def test_declines_what_needs_converting(mse_model):
    theta, X, Y = _problem(mse_model)
    ref = mse_model.loss_and_grad(theta, X, Y)
    ro = theta.copy()
    ro.flags.writeable = False
    variants = {"Fortran X": (theta, np.asfortranarray(X), Y),
                "read-only theta": (ro, X, Y),
                "float32 X": (theta, X.astype(np.float32), Y),
                "big-endian theta": (theta.astype(">f8"), X, Y),
                "strided X": (theta, np.repeat(X, 2, axis=0)[::2], Y),
                "column Y": (theta, X, Y.reshape(-1, 1))}
    for name, (t, x, y) in variants.items():
        if name != "column Y":
            assert _fastpath.ready_args(mse_model, t, x, y, None) is None, name
        L, g = mse_model.loss_and_grad(t, x, y)
        if name == "float32 X":
            assert np.allclose(g, ref[1], rtol=1e-5, atol=1e-7), name
        else:
            assert L == ref[0] and np.array_equal(g, ref[1]), name


def test_no_mask_plumbing_without_dropout(mse_model):
    theta, X, Y = _problem(mse_model)
    B, args = _fastpath.ready_args(mse_model, theta, X, Y, None)
    assert B == 5 and len(args) == 3 and args[0] is theta
    with pytest.raises(symnn.errors.ArgumentError, match="no Dropout"):
        mse_model.loss(theta, X, Y, mask=np.ones((5, 4)))


def test_fast_path_flags_and_dtype_identity(mse_model):
    """Issue 16 (callpath): the fast path tests dtype by identity with NumPy's own dtype
    object and flags with one ``carray`` test; what that declines (a misaligned θ, an
    equal dtype with metadata, X whose shape was changed in place) still gives the full
    checks' result or error."""
    theta, X, Y = _problem(mse_model)
    ref = mse_model.loss_and_grad(theta, X, Y)
    raw = np.zeros(theta.size * 8 + 1, np.uint8)[1:].view(theta.dtype)  # misaligned
    raw[:] = theta
    meta = theta.astype(np.dtype("f8", metadata={"unit": "m"}))
    for t in (raw, meta):
        assert _fastpath.ready_args(mse_model, t, X, Y, None) is None
        L, g = mse_model.loss_and_grad(t, X, Y)
        assert L == ref[0] and np.array_equal(g, ref[1])
    X2 = X.copy()
    X2.shape = (X.shape[0] * 3, 1)  # in place, same object: the width check must see it
    assert _fastpath.ready_args(mse_model, theta, X2, Y, None) is None
    with pytest.raises(ShapeError, match="features"):
        mse_model.loss_and_grad(theta, X2, Y)
    be = symnn.mlp([3, 4, 1], activation="tanh", loss="mse",
                   name="fastpath_mse").compile(dtype=">f8")  # same kernels (cache)
    assert _fastpath.ready_args(be, theta, X, Y, None) is not None  # native arrays: fast
