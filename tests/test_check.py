"""gradcheck / hesscheck: they pass exact derivatives, fail wrong ones, and report kinks."""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.check import gradcheck, hesscheck
from symnn.errors import ShapeError


class Quadratic:
    """L(θ) = ½ θᵀAθ + bᵀθ + Σ relu-ish kink terms, with a switchable wrong gradient."""

    param_shapes = [("W1", (2, 2)), ("b1", (2,))]
    n_params = 6
    dtype = np.float64

    def __init__(self, wrong=False, kink=False, wrong_hvp=False):
        rng = np.random.default_rng(0)
        M = rng.normal(size=(6, 6))
        self.A = M @ M.T
        self.b = rng.normal(size=6)
        self.wrong = wrong
        self.kink = kink
        self.wrong_hvp = wrong_hvp

    def loss(self, t, X, y):
        val = 0.5 * t @ self.A @ t + self.b @ t
        if self.kink:
            val += 3.0 * max(t[0], 0.0)
        return val

    def loss_and_grad(self, t, X, y):
        g = self.A @ t + self.b
        if self.kink:
            g = g.copy()
            g[0] += 3.0 * (t[0] > 0)
        if self.wrong:
            g = g.copy()
            g[3] *= 1.01
        return self.loss(t, X, y), g

    def hvp(self, t, v, X, y):
        hv = self.A @ v
        if self.wrong_hvp:
            hv = hv.copy()
            hv[2] += 1e-3 * v[2]
        return hv


def test_exact_gradient_passes():
    m = Quadratic()
    r = gradcheck(m, np.linspace(-1, 1, 6), None, None)
    assert r and r.passed and len(r.probes) == 8 + 6
    assert "PASSED" in str(r)


def test_wrong_gradient_fails_and_names_the_parameter():
    m = Quadratic(wrong=True)
    r = gradcheck(m, np.linspace(-1, 1, 6), None, None)
    assert not r
    assert r.worst_parameter.label == "W1[1, 1]"
    assert "FAILED" in str(r) and "W1[1, 1]" in str(r)


def test_kink_is_reported_not_failed():
    m = Quadratic(kink=True)
    theta = np.linspace(-1, 1, 6)
    theta[0] = 1e-7  # within the finite-difference step of relu's kink at 0
    r = gradcheck(m, theta, None, None)
    assert r, str(r)
    assert r.kinks and all("W1[0, 0]" in p.label or "direction" in p.label for p in r.kinks)


def test_exact_hvp_passes_wrong_fails():
    theta = np.linspace(-1, 1, 6)
    assert hesscheck(Quadratic(), theta, None, None, coordinates="all")
    r = hesscheck(Quadratic(wrong_hvp=True), theta, None, None, coordinates="all")
    assert not r and r.worst_parameter.label == "column W1[1, 0] → W1[1, 0]"


def test_wrong_theta_shape_is_a_shape_error():
    with pytest.raises(ShapeError, match="6 parameters"):
        gradcheck(Quadratic(), np.zeros(5), None, None)
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, symnn.SymnnError)
