"""Round 5 of the exactness campaign (helper "exact"): regressions for what it fixed.

* bce on a NON-fused softmax output at extreme logit gaps: the loss and the gradient are
  finite and exact, the second-order products overflowed (``y/p²``) to NaN with no error;
  they now raise a clear DataError that names the fused pairings (reference and kernels).
* the Jacobian in X of an RNN of length 1 (its W_hh gets a zero gradient, a Map holding a
  plain int 0) before a looped RNN crashed with a raw AttributeError (symnn/ops/_rules.py).
* a Residual around an RNN / GRU is refused with a message that says so (it said "start
  the inner stack with Dense").
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


def test_jacobian_in_x_through_a_length_one_rnn_before_a_looped_rnn():
    net = symnn.Network([symnn.RNN(1, 1, return_sequences=True, length=1),
                         symnn.RNN(1, 2, unroll=False), symnn.Dense(2, 1)], loss="mse")
    m = ReferenceModel(net)
    th = m.init(seed=2)
    X = np.array([[0.7]])
    J = m.jacobian(th, X)
    h = 1e-6
    fd = (m.predict(th, X + h) - m.predict(th, X - h)) / (2 * h)
    assert np.allclose(J.reshape(fd.shape), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("layer", [lambda: symnn.RNN(2, 2, return_sequences=True, length=3),
                                   lambda: symnn.GRU(2, 2, return_sequences=True, unroll=False)])
def test_a_residual_around_a_recurrent_layer_is_refused_clearly(layer):
    with pytest.raises(symnn.DeclarationError, match="recurrent layer.*RNN or GRU is not supported"):
        symnn.Residual([layer()])


@pytest.mark.parametrize("loss", ["bce", "kl"])
def test_sigmoid_head_curvature_keeps_relative_accuracy_at_large_logits(loss):
    """One weight w, z = w·x = 40: the loss's second derivative in z is (y·)σ(z)σ(−z) =
    4.25e-18 (·y), which p(1 − p) rounded to 0 — in the HVP / Hessian (the derived σ') and
    in diag_ggn (its own table).  Both are now exact to rounding."""
    from symnn.analysis import diag_ggn

    net = symnn.Network([symnn.Dense(1, 1, bias=False), "sigmoid"], loss=loss)
    m = ReferenceModel(net)
    th, X = np.array([20.0]), np.array([[2.0]])
    y = np.array([[0.4 if loss == "bce" else 1.0]])  # (kl: probability rows)
    s = np.exp(-40.0) / (1 + np.exp(-40.0)) ** 2          # σ(40)σ(−40), no cancellation
    exact = X[0, 0] ** 2 * s * (1.0 if loss == "bce" else y[0, 0])
    assert exact > 0
    assert np.isclose(m.hessian(th, X, y)[0, 0], exact, rtol=1e-12, atol=0)
    assert np.isclose(m.gnvp(th, np.ones(1), X, y)[0], exact, rtol=1e-12, atol=0)
    assert np.isclose(diag_ggn(m, th, X, y)[0], exact, rtol=1e-12, atol=0)
