"""Per-sample gradients, gradient variance, diagonal GGN and Hessian (symnn.analysis) on
networks with Residual blocks and with convolutional layers (Conv1D, AvgPool1D, MaxPool1D,
Flatten): against the batch-1 gradient kernel, the batch gradient, the Gauss-Newton product
kernel on unit vectors and the Hessian kernel; K-FAC factors cover the convolutions."""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.analysis import (
    diag_ggn,
    diag_hessian,
    gradient_variance,
    kfac_error,
    kfac_factors,
    per_sample_gradients,
)

RTOL = 1e-9


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _residual(loss):
    out = ["softmax"] if loss == "cross_entropy" else []
    return symnn.Network([symnn.Dense(3, 4), "tanh",
                          symnn.Residual([symnn.Dense(4, 4), "softplus", symnn.Dense(4, 4)]),
                          symnn.Dense(4, 3), *out], loss=loss, penalties=[symnn.L2(0.05)])


def _conv(loss):
    out = ["softmax"] if loss == "cross_entropy" else []
    return symnn.Network([symnn.Conv1D(2, 3, 3, stride=2, padding=1, length=9), "tanh",
                          symnn.MaxPool1D(2), symnn.Conv1D(3, 2, 2), "softplus",
                          symnn.AvgPool1D(1), symnn.Flatten(), symnn.Dense(2, 3), *out],
                         loss=loss, penalties=[symnn.L2(0.05)])


NETS = {"residual": _residual, "conv": _conv}
_MODELS: dict = {}


def _model(kind, loss):
    if (kind, loss) not in _MODELS:
        _MODELS[kind, loss] = NETS[kind](loss).compile()
    return _MODELS[kind, loss]


def _batch(m, loss, B=5, seed=0):
    rng = np.random.default_rng(seed)
    theta = m.init(seed) + 0.3 * rng.normal(size=m.n_params)
    X = rng.normal(size=(B, m.n_inputs))
    y = (rng.dirichlet(np.ones(3), size=B) if loss == "cross_entropy"
         else rng.normal(size=(B, 3)))
    return theta, X, y


CASES = [(k, loss) for k in NETS for loss in ("mse", "cross_entropy")]


@pytest.mark.parametrize("kind,loss", CASES)
def test_per_sample_gradients_are_the_batch1_gradients(kind, loss):
    m = _model(kind, loss)
    theta, X, y = _batch(m, loss)
    G = per_sample_gradients(m, theta, X, y)
    assert G.shape == (X.shape[0], m.n_params)
    for s in range(X.shape[0]):
        g1 = m.loss_and_grad(theta, X[s:s + 1], y[s:s + 1])[1]
        assert np.abs(G[s] - g1).max() <= 1e-10 * max(1.0, np.abs(g1).max())
    g = m.loss_and_grad(theta, X, y)[1]
    assert _rel(G.mean(axis=0), g) <= 1e-10
    # the samples differ, so the variance is not 0; without the penalty it is the same
    var = gradient_variance(m, theta, X, y)
    assert _rel(var, per_sample_gradients(m, theta, X, y, penalties=False).var(axis=0)) < 1e-12
    assert var.max() > 0


@pytest.mark.parametrize("kind,loss", CASES)
def test_diag_ggn_and_diag_hessian_are_the_dense_diagonals(kind, loss):
    m = _model(kind, loss)
    theta, X, y = _batch(m, loss, seed=1)
    E = np.eye(m.n_params)
    ggn = np.asarray(m.gnvp(theta, E, X, y)).reshape(m.n_params, m.n_params)
    assert _rel(diag_ggn(m, theta, X, y), np.diag(ggn)) <= RTOL
    H = m.hessian(theta, X, y)
    assert _rel(diag_hessian(m, theta, X, y, block=7), np.diag(H)) <= RTOL
    # on the reference model too (the NumPy witness)
    ref = m.reference
    assert _rel(diag_ggn(ref, theta, X, y), np.diag(ggn)) <= RTOL


def test_conv_weight_per_sample_is_the_conv_weight_mean_per_sample():
    """The per-sample form of ConvWMean against the op's own NumPy rule on batches of 1."""
    from symnn.analysis.persample import conv_weight_per_sample
    from symnn.ops.conv import Geom, convw_numpy
    rng = np.random.default_rng(3)
    g = Geom(c_in=2, l_in=7, c_out=3, k=3, s=2, p=1)
    u = rng.normal(size=(4, g.c_out * g.l_out))
    v = rng.normal(size=(4, g.c_in * g.l_in))
    per = conv_weight_per_sample(u, v, g)
    for s in range(4):
        assert np.allclose(per[s], convw_numpy(u[s:s + 1], v[s:s + 1], g), rtol=0, atol=1e-14)
    assert np.allclose(per.mean(axis=0), convw_numpy(u, v, g), rtol=0, atol=1e-14)


def test_kfac_factors_cover_a_convolution_through_pools():
    """K-FAC for convolutions (KFC) is in tests/test_kfac_conv.py; here: the factors of this
    pooled network cover every parameter, convolutions included."""
    m = _model("conv", "mse")
    theta, X, y = _batch(m, "mse")
    f = kfac_factors(m, theta, X, y)
    assert [v.conv for v in f.values()] == ["expand", "expand", None]
    assert sorted(np.concatenate([v.index for v in f.values()])) == list(range(m.n_params))


def test_kfac_factors_cover_a_residual_network():
    """Residual blocks hold Dense layers: one pair of factors per weight, and for one sample
    ``G ⊗ A`` is the Gauss-Newton block (kfac_error ≈ 0)."""
    m = _model("residual", "mse")
    theta, X, y = _batch(m, "mse")
    f = kfac_factors(m, theta, X, y)
    assert sorted(f) == ["W1", "W2", "W3", "W4"]
    assert f["W2"].A.shape == (5, 5) and f["W2"].G.shape == (4, 4)
    assert max(kfac_error(m, theta, X[:1], y[:1]).values()) < RTOL


def test_conv_per_sample_gradients_match_torch_vmap_grad():
    """The PyTorch witness: ``vmap(grad)`` of the same float64 conv network (torch's Conv1d
    weight is ``(c_out, c_in, k)`` and its flatten channel-major, as symnn's)."""
    torch = pytest.importorskip("torch")
    from torch.func import functional_call, grad, vmap
    m = _model("conv", "mse")
    theta, X, y = _batch(m, "mse", seed=4)
    tnet = torch.nn.Sequential(
        torch.nn.Conv1d(2, 3, 3, stride=2, padding=1), torch.nn.Tanh(), torch.nn.MaxPool1d(2),
        torch.nn.Conv1d(3, 2, 2), torch.nn.Softplus(), torch.nn.AvgPool1d(1),
        torch.nn.Flatten(), torch.nn.Linear(2, 3)).double()
    names = [n for n, _ in tnet.named_parameters()]
    params = {n: torch.tensor(v) for n, v in zip(names, m.unflatten(theta).values())}

    def loss(p, x, t):
        out = functional_call(tnet, p, (x.reshape(1, 2, 9),))[0]
        return ((out - t) ** 2).mean()

    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, torch.tensor(X), torch.tensor(y))
    ref = np.concatenate([g[n].reshape(X.shape[0], -1).numpy() for n in names], axis=1)
    assert _rel(per_sample_gradients(m, theta, X, y, penalties=False), ref) <= 1e-12
