"""Sampled K-FAC against the exact KFLR factors (a statistical bound over many seeds), and
mini-batch factors in symnn.train.KFAC (``factor_batch``): unbiased for the full-batch
factors, the whole set when the batch covers it, and training converges with them."""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.analysis import kfac_factors
from symnn.errors import DeclarationError
from symnn.train import KFAC, fit

K = 300          # independent estimates
BOUND = 5.0      # standard errors


def _model(loss):
    kw = {"output": "softmax"} if loss == "cross_entropy" else {}
    return symnn.mlp([3, 4, 3], activation="tanh", loss=loss, **kw).compile()


def _data(loss, n=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (np.eye(3)[rng.integers(0, 3, size=n)] if loss == "cross_entropy"
         else rng.normal(size=(n, 3)))
    return X, y


def _within(samples: np.ndarray, exact: np.ndarray) -> float:
    """The largest |mean − exact| in standard errors of the mean, entrywise."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    scale = np.abs(exact).max()
    return float(np.max(np.abs(mean - exact) / np.maximum(se, 1e-12 * scale)))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_sampled_G_is_unbiased_for_the_exact_kflr_G(loss):
    m = _model(loss)
    X, y = _data(loss)
    theta = m.init(0) + 0.3 * np.random.default_rng(1).normal(size=m.n_params)
    exact = kfac_factors(m, theta, X, y, "kflr")
    draws = [kfac_factors(m, theta, X, y, "kfac", seed=k) for k in range(K)]
    for name, f in exact.items():
        G = np.stack([d[name].G for d in draws])
        assert _within(G, f.G) < BOUND, name
        assert _within(G, 1.5 * f.G) > BOUND, name        # a wrong scale is detected
        assert all(np.array_equal(d[name].A, f.A) for d in draws[:3])  # A is not sampled
    # more samples per draw, smaller error: M = 64 in one call
    many = kfac_factors(m, theta, X, y, "kfac", mc_samples=64, seed=7)
    one = draws[0]
    for name, f in exact.items():
        assert np.linalg.norm(many[name].G - f.G) < np.linalg.norm(one[name].G - f.G)


class _S:
    """What KFAC.factors reads of a training session."""

    def __init__(self, model, X, Y):
        self.model, self.X, self.Y = model, X, Y


def test_minibatch_factors_are_unbiased_for_the_full_batch_ones():
    m = _model("mse")
    X, y = _data("mse", n=20)
    theta = m.init(0)
    full = kfac_factors(m, theta, X, y)
    opt = KFAC(factor_batch=5)
    draws = [opt.factors(_S(m, X, y), theta, k) for k in range(K)]
    for name, f in full.items():
        for attr in ("A", "G"):
            samples = np.stack([getattr(d[name], attr) for d in draws])
            assert _within(samples, getattr(f, attr)) < BOUND, (name, attr)
        assert not np.allclose(draws[0][name].A, f.A)     # a mini-batch is not the set


def test_factor_batch_covering_the_set_is_the_full_batch_run():
    m = _model("cross_entropy")
    X, y = _data("cross_entropy", n=16)
    runs = [fit(m, X, y, KFAC(factor_batch=fb), epochs=6, check_every=0, progress=False,
                theta0=m.init(3)) for fb in (None, 16, 100)]
    for r in runs[1:]:
        assert np.array_equal(r.params, runs[0].params)


def test_training_with_minibatch_factors_converges():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = np.tanh(X @ np.array([1.0, -2.0, 0.5]))[:, None]
    m = symnn.mlp([3, 8, 1], activation="tanh", loss="mse").compile()
    opt = KFAC(factor_batch=16, momentum=0.9)
    res = fit(m, X, y, opt, epochs=60, check_every=0, progress=False)
    assert res.history.loss[-1] < 0.05 * res.history.loss[0]
    assert "factor_batch=16" in repr(opt) and "16 training rows" in str(opt.equations())


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_factor_batch_must_be_a_positive_integer(bad):
    with pytest.raises(DeclarationError, match="factor_batch"):
        KFAC(factor_batch=bad)
