"""Regressions found by the random-declaration exactness sweep (``scripts/exactness_sweep.py``).

Each test is a minimised declaration that once gave a wrong derivative, checked on the
uncompiled NumPy reference (the derived program itself: fast) and, where the kernels could
differ from it, on the compiled kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
from _exactness import rel_err
from strategies import NetCase, case_data

import symnn
from symnn.analysis import diag_ggn
from symnn.codegen.model import ReferenceModel


def _matrix(product, P):
    E = np.eye(P)
    return np.array([product(E[i]) for i in range(P)]).T


# -- 1. truncated BPTT: the Gauss-Newton product used the full Jacobian on one side ---------
# gnvp computed J_trᵀ H_ℓ J v (J v through the truncation cut, Jᵀ truncated): asymmetric and
# indefinite, and not the matrix diag_ggn / K-FAC / torch's .detach() describe.

_TRUNC = NetCase((("rnn", 2, 2, "tanh", False, 3, 1), ("dense", 2, 2, True)), "mse")


def test_truncated_bptt_gauss_newton_is_symmetric_psd_and_matches_diag_ggn():
    net = _TRUNC.build()
    m = ReferenceModel(net)
    X, Y, th, v, V = case_data(net, 3, batch=2)
    G = _matrix(lambda e: m.gnvp(th, e, X, Y), th.size)
    assert np.abs(G - G.T).max() <= 1e-12 * np.abs(G).max()
    assert np.linalg.eigvalsh((G + G.T) / 2).min() >= -1e-12
    assert rel_err(np.diag(G), diag_ggn(m, th, X, Y)) <= 1e-12
    # the Hessian-vector product still passes the tangent through the cut (it is the
    # exact derivative of the truncated gradient: central differences of the gradient)
    h = 1e-6
    fd = (m.loss_and_grad(th + h * v, X, Y)[1] - m.loss_and_grad(th - h * v, X, Y)[1]) / (2 * h)
    assert rel_err(m.hvp(th, v, X, Y), fd) <= 1e-6


def test_truncated_bptt_gauss_newton_matches_torch_detach():
    pytest.importorskip("torch")
    from _torch_ref import TorchCase

    net = _TRUNC.build()
    m = ReferenceModel(net)
    X, Y, th, v, V = case_data(net, 5, batch=3)
    want = TorchCase(_TRUNC, net).results(th, X, Y, v, V)["gnvp"]
    assert rel_err(m.gnvp(th, v, X, Y), want) <= 1e-9


# -- 2. diag_ggn of binary cross-entropy on a softmax output at saturated probabilities ------
# Its loss Hessian in p holds y/p² terms (1e100 at inputs ×10); eigh of it unscaled was only
# accurate relative to the largest entry: diag_ggn came out at -1.6e94 (a GGN diagonal is
# ≥ 0).  Now H = D M D is scaled to unit diagonal first.

def test_diag_ggn_of_softmax_bce_survives_saturated_probabilities():
    case = NetCase((("dense", 3, 4, True), "softmax"), "bce")
    net = case.build()
    m = ReferenceModel(net)
    X, Y, th, v, V = case_data(net, 5, batch=2)
    X = 100 * X
    p = m.predict(th, X)
    assert p.min() < 1e-50   # saturated: the case that failed
    G = np.diag(_matrix(lambda e: m.gnvp(th, e, X, Y), th.size))
    d = diag_ggn(m, th, X, Y)
    assert rel_err(d, G) <= 1e-10
    assert d.min() >= 0


def test_diag_ggn_with_an_infinite_loss_hessian_is_a_clear_error():
    case = NetCase((("dense", 3, 4, True), "softmax"), "bce")
    net = case.build()
    m = ReferenceModel(net)
    X, Y, th, v, V = case_data(net, 796312814, batch=2)
    with np.errstate(all="ignore"), pytest.raises(symnn.AnalysisError, match="not finite"):
        diag_ggn(m, th, 100 * X, Y)


# -- 3. the pooling ops' rules, on the derived program (a corrupted AvgPool reverse rule or
# MaxGather tangent rule passed tests/test_ops_tables.py and the default property run) -------

_POOLS = NetCase((("conv", 1, 2, 3, 1, 0, 9), "tanh", ("maxpool", 2), ("conv", 2, 2, 1, 1, 0, None),
                  "softplus", ("avgpool", 2), ("flatten",), ("dense", 2, 2, True)), "mse")


def test_pooling_rules_against_torch_and_finite_differences():
    pytest.importorskip("torch")
    from _torch_ref import TorchCase

    net = _POOLS.build()
    m = ReferenceModel(net)
    X, Y, th, v, V = case_data(net, 11, batch=2)
    want = TorchCase(_POOLS, net).results(th, X, Y, v, V)
    for k in ("grad", "hvp", "gnvp"):
        got = m.loss_and_grad(th, X, Y)[1] if k == "grad" else getattr(m, k)(th, v, X, Y)
        assert rel_err(got, want[k]) <= 1e-9, k
    h = 1e-6
    fd = (m.loss_and_grad(th + h * v, X, Y)[1] - m.loss_and_grad(th - h * v, X, Y)[1]) / (2 * h)
    assert rel_err(m.hvp(th, v, X, Y), fd) <= 1e-6
