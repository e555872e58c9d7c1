"""BPTT evaluates σ' once (issue 16): when the cotangent of an RNN's pre-activations is the
activation's own VJP ``x ⊙ σ'(Z)``, the backward recurrence takes ``x`` as its input,
``a_t = σ'(z_t) ⊙ (x_t + Wᵀ a_{t+1})`` (:func:`symnn.ops.scan._over_dsigma`), instead of
adding a second sequence-long ``x ⊙ sech²(Z)`` to ``σ'(z_t) ⊙ Wᵀ a_{t+1}``.  Checked: the
kernel's source holds one sech² map, the gradient agrees with PyTorch autograd / finite
differences through ``gradcheck``, the cases where the rewrite must not apply still agree,
and a deliberately wrong rewrite fails the check."""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.codegen.model import ReferenceModel
from symnn.ops import scan


def _net(name, *layers, loss="mse"):
    return symnn.Network(list(layers), loss=loss, name=name)


def _data(B, T, n_in, n_out, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, T, n_in)), rng.normal(size=(B, n_out))


def _grad_ok(m, X, Y) -> bool:
    return symnn.gradcheck(m, m.init(1), X, Y, seed=0).passed


def test_tanh_rnn_gradient_evaluates_sech2_once_and_is_exact():
    net = _net("bptt1", symnn.RNN(3, 4, length=5, unroll=False), symnn.Dense(4, 1))
    model = net.compile()
    src = model.kernel_source("loss_and_grad")
    assert src.count("fm_sech2(") == 1, src
    X, Y = _data(3, 5, 3, 1)
    X2 = X.reshape(3, -1)
    theta = model.init(2)
    ref = ReferenceModel(net)
    L, g = model.loss_and_grad(theta, X2, Y)
    L_ref, g_ref = ref.loss_and_grad(theta, X2, Y)
    assert abs(L - L_ref) <= 1e-12 * max(1.0, abs(L_ref))
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    assert symnn.gradcheck(model, theta, X2, Y, seed=0).passed


@pytest.mark.parametrize("layers,fd", [
    # σ' written through H (sigmoid: h(1 − h)); truncated BPTT (a stop-gradient: no FD check)
    (lambda: (symnn.RNN(2, 3, activation="sigmoid", length=4, unroll=False),
              symnn.Dense(3, 1)), True),
    (lambda: (symnn.RNN(2, 3, length=4, truncate=2, unroll=False), symnn.Dense(3, 1)), False),
    # a sequence into a second RNN: the rewrite at both layers
    (lambda: (symnn.RNN(2, 3, length=4, return_sequences=True, unroll=False),
              symnn.RNN(3, 2, unroll=False), symnn.Dense(2, 1)), True),
], ids=["sigmoid", "truncated", "stacked"])
def test_other_recurrences_stay_exact(layers, fd, monkeypatch):
    """The gradient equals the one derived without the rewrite (to rounding), and finite
    differences where the gradient is the true one."""
    X, Y = _data(2, 4, 2, 1, seed=3)
    X2 = X.reshape(2, -1)
    ref = ReferenceModel(_net("bptt2", *layers()))
    theta = ref.init(4)
    _, g = ref.loss_and_grad(theta, X2, Y)
    if fd:
        assert _grad_ok(ref, X2, Y)
    monkeypatch.setattr(scan, "_over_dsigma", lambda *a: None)
    _, g_old = ReferenceModel(_net("bptt3", *layers())).loss_and_grad(theta, X2, Y)
    np.testing.assert_allclose(g, g_old, rtol=1e-12, atol=1e-14)


def test_a_deliberately_wrong_rewrite_fails_the_gradient_check(monkeypatch):
    """The rewrite with σ'(Z) applied twice (``x ⊙ σ'`` taken as the input): gradcheck
    catches it; with the rule as it is, the same check passes."""
    X, Y = _data(2, 4, 2, 1, seed=5)
    X2 = X.reshape(2, -1)

    def report(name):
        net = _net(name, symnn.RNN(2, 3, length=4, unroll=False), symnn.Dense(3, 1))
        return _grad_ok(ReferenceModel(net), X2, Y)

    assert report("bptt_right")
    right = scan._over_dsigma

    def wrong(b, g, s, size):
        return g if right(b, g, s, size) is not None else None

    monkeypatch.setattr(scan, "_over_dsigma", wrong)
    assert not report("bptt_wrong")
