"""Round 5 of the exactness campaign (helper "exact"): regressions for what it fixed.

* bce on a NON-fused softmax output at extreme logit gaps: the loss and the gradient are
  finite and exact, the second-order products overflowed (``y/p²``) to NaN with no error;
  they now raise a clear DataError that names the fused pairings (reference and kernels).
"""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.codegen.model import ReferenceModel
from symnn.errors import DataError

def _net():  # the declaration tests/test_softmax_bce.py compiles (one compile for both)
    return symnn.Network([symnn.Dense(2, 3), "tanh", symnn.Dense(3, 3), "softmax"], loss="bce")


_Y = np.array([[0.2, 0.3, 0.5]])


def _check_model(m):
    th = m.init(seed=1) * 0.5
    X = np.array([[0.3, -0.7]])
    assert np.all(np.isfinite(m.hvp(th, np.ones(m.n_params), X, _Y)))
    b2 = m.unflatten(th)
    b2["b2"] = np.array([400.0, 0.0, 0.0])  # p₂, p₃ ≈ e⁻⁴⁰⁰: y/p² overflows
    th = m.flatten(b2)
    v = np.random.default_rng(0).normal(size=m.n_params)
    assert np.isfinite(m.loss(th, X, _Y))
    assert np.all(np.isfinite(m.loss_and_grad(th, X, _Y)[1]))
    for call in (lambda: m.hvp(th, v, X, _Y), lambda: m.gnvp(th, v, X, _Y),
                 lambda: m.hvp(th, np.eye(m.n_params)[:2], X, _Y),
                 lambda: m.hessian(th, X, _Y)):
        with pytest.raises(DataError, match="softmax output.*cross_entropy.*sigmoid output"):
            call()


def test_softmax_bce_second_order_at_extreme_gaps_is_a_clear_error_reference():
    _check_model(ReferenceModel(_net()))


def test_softmax_bce_second_order_at_extreme_gaps_is_a_clear_error_kernels():
    _check_model(_net().compile())


def test_other_pairings_are_not_flagged():
    from symnn.codegen._guard import softmax_bce

    assert softmax_bce(_net())
    assert not softmax_bce(symnn.Network([symnn.Dense(1, 3), "softmax"], loss="cross_entropy"))
    assert not softmax_bce(symnn.Network([symnn.Dense(1, 3), "sigmoid"], loss="bce"))
    assert not softmax_bce(symnn.mlp([2, 3, 1]))
