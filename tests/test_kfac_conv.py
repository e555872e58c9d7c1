"""K-FAC for Conv1D layers (KFC, Grosse & Martens 2016; symnn.analysis.kfac_factors with
``conv="expand"`` / ``"reduce"``): the factors recomputed by hand in NumPy from explicit
patch loops, the exact Gauss-Newton blocks (a one-position convolution is exact for one
sample; ``G_reduce`` is the bias's exact block), BackPACK's KFLR for ``nn.Conv1d`` and
curvlinops' type-2 KFAC for the same network written with ``nn.Conv2d`` of height 1.

Conventions mapped (see symnn/analysis/kfac.py): BackPACK returns ``[G, T·A]`` for a
convolution's weight with ``A`` symnn's expand factor without its bias row and ``G``
symnn's *reduce* factor; curvlinops' ``kfac_approx="expand"`` / ``"reduce"`` with
``separate_weight_and_bias=False`` are symnn's, unscaled.
"""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.analysis import kfac_error, kfac_factors
from symnn.analysis.kfac import patches
from symnn.errors import AnalysisError

RTOL = 1e-9
B = 5


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _net(loss):
    out = ["softmax"] if loss == "cross_entropy" else []
    return symnn.Network([symnn.Conv1D(2, 3, 3, stride=2, padding=1, length=9), "tanh",
                          symnn.Conv1D(3, 2, 5), "tanh", symnn.Flatten(),
                          symnn.Dense(2, 3), *out], loss=loss)


_MODELS: dict = {}


def _case(loss, B=B, seed=0):
    if loss not in _MODELS:
        _MODELS[loss] = _net(loss).compile()
    m = _MODELS[loss]
    rng = np.random.default_rng(seed)
    theta = m.init(seed) + 0.3 * rng.normal(size=m.n_params)
    X = rng.normal(size=(B, m.n_inputs))
    if loss == "cross_entropy":
        y = np.eye(3)[rng.integers(0, 3, size=B)]
    else:
        y = rng.normal(size=(B, 3))
    return m, theta, X, y


def _hand_patches(X, c_in, L, k, s, p):
    """``(B, T, c_in·k)`` by explicit loops (an independent witness of ``patches``)."""
    T = (L + 2 * p - k) // s + 1
    x = X.reshape(len(X), c_in, L)
    out = np.zeros((len(X), T, c_in, k))
    for b in range(len(X)):
        for t in range(T):
            for c in range(c_in):
                for j in range(k):
                    u = t * s + j - p
                    if 0 <= u < L:
                        out[b, t, c, j] = x[b, c, u]
    return out.reshape(len(X), T, c_in * k)


def test_patches_are_the_hand_loops():
    from symnn.ops.conv import Geom

    X = np.random.default_rng(1).normal(size=(3, 2 * 9))
    assert np.array_equal(patches(X, Geom(2, 9, 3, 3, 2, 1)), _hand_patches(X, 2, 9, 3, 2, 1))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_first_layer_input_factor_by_hand(loss):
    """W1 reads X: A_expand = (1/(BT)) Σ p̄ p̄ᵀ and A_reduce = (1/B) Σ p̄̂ p̄̂ᵀ by hand."""
    m, theta, X, y = _case(loss)
    P = _hand_patches(X, 2, 9, 3, 2, 1)
    T = P.shape[1]
    Pb = np.concatenate([P, np.ones((B, T, 1))], axis=2)
    A_exp = sum(np.outer(Pb[b, t], Pb[b, t]) for b in range(B) for t in range(T)) / (B * T)
    Pm = Pb.mean(axis=1)
    A_red = sum(np.outer(Pm[b], Pm[b]) for b in range(B)) / B
    fe = kfac_factors(m, theta, X, y)["W1"]
    fr = kfac_factors(m, theta, X, y, conv="reduce")["W1"]
    assert fe.positions == fr.positions == T == 5 and fe.conv == "expand"
    assert _rel(fe.A, A_exp) < RTOL and _rel(fr.A, A_red) < RTOL
    # W̄ = [W.reshape(C_out, C_in·k) b] in the flat layout
    W1 = m.unflatten(np.arange(m.n_params, dtype=float))
    idx = np.concatenate([W1["W1"].reshape(3, 6), W1["b1"][:, None]], axis=1).ravel()
    assert np.array_equal(fe.index, idx.astype(int))


def _ggn(m, theta, X, y):
    return m.gnvp(theta, np.eye(m.n_params), X, y)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_reduce_G_is_the_exact_bias_block_and_one_position_is_exact(loss):
    m, theta, X, y = _case(loss)
    GGN = _ggn(m, theta, X, y)
    for conv in ("expand", "reduce"):
        f = kfac_factors(m, theta, X, y, conv=conv)
        for name in ("W1", "W2"):   # the bias block is G·A[-1,-1]
            bias = f[name].index.reshape(len(f[name].G), -1)[:, -1]
            exact = GGN[np.ix_(bias, bias)]
            if conv == "reduce":
                assert _rel(f[name].G * f[name].A[-1, -1], exact) < RTOL
            elif name == "W1":      # T = 5: expand's bias block is not the exact one
                assert _rel(f[name].G * f[name].A[-1, -1], exact) > 1e-3
    # one sample: a one-position convolution (W2, T = 1) and the Dense layer are exact
    m1 = _case(loss, B=1)
    err = kfac_error(*m1)
    assert err["W2"] < 1e-12 and err["W3"] < 1e-12 and err["W1"] > 1e-2
    assert kfac_factors(*m1)["W2"].positions == 1


def test_a_deliberately_wrong_scaling_fails():
    """The 1/T on A matters: without it the expand factors are T times too large, and the
    hand check above would catch it (T = 5)."""
    m, theta, X, y = _case("mse")
    f = kfac_factors(m, theta, X, y)["W1"]
    P = _hand_patches(X, 2, 9, 3, 2, 1)
    Pb = np.concatenate([P, np.ones((B, 5, 1))], axis=2).reshape(-1, 7)
    assert _rel(f.A, Pb.T @ Pb / B) > 0.5


def test_unknown_conv_option_is_refused():
    m, theta, X, y = _case("mse")
    with pytest.raises(AnalysisError, match="conv = 'mean'"):
        kfac_factors(m, theta, X, y, conv="mean")


# -- peers --------------------------------------------------------------------------------

def _torch_net(m, theta, dim):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    p = m.unflatten(theta)
    if dim == 1:
        c1, c2 = nn.Conv1d(2, 3, 3, stride=2, padding=1), nn.Conv1d(3, 2, 5)
    else:
        c1 = nn.Conv2d(2, 3, (1, 3), stride=(1, 2), padding=(0, 1))
        c2 = nn.Conv2d(3, 2, (1, 5))
    lin = nn.Linear(2, 3)
    mods = [c1, c2, lin]
    for i, mod in enumerate(mods, 1):
        mod.double()
        with torch.no_grad():
            mod.weight.copy_(torch.tensor(p[f"W{i}"]).reshape(mod.weight.shape))
            mod.bias.copy_(torch.tensor(p[f"b{i}"]))
    return nn.Sequential(c1, nn.Tanh(), c2, nn.Tanh(), nn.Flatten(), lin), mods


def _torch_data(X, y, loss, dim):
    import torch

    shape = (len(X), 2, 9) if dim == 1 else (len(X), 2, 1, 9)
    Xt = torch.tensor(X).reshape(shape)
    yt = torch.tensor(y.argmax(axis=1)) if loss == "cross_entropy" else torch.tensor(y)
    fn = torch.nn.CrossEntropyLoss() if loss == "cross_entropy" else torch.nn.MSELoss()
    return Xt, yt, fn


@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_conv_factors_against_backpacks_kflr(loss):
    bp = pytest.importorskip("backpack", exc_type=ImportError)
    from backpack.extensions import KFLR

    m, theta, X, y = _case(loss)
    net, mods = _torch_net(m, theta, 1)
    Xt, yt, fn = _torch_data(X, y, loss, 1)
    net = bp.extend(net)
    with bp.backpack(KFLR()):
        bp.extend(fn)(net(Xt), yt).backward()
    exp = kfac_factors(m, theta, X, y)
    red = kfac_factors(m, theta, X, y, conv="reduce")
    for name, mod in zip(("W1", "W2"), mods):
        G, A = (t.detach().numpy() for t in mod.weight.kflr)
        (Gb,) = (t.detach().numpy() for t in mod.bias.kflr)
        n, T = A.shape[0], exp[name].positions
        assert _rel(A, T * exp[name].A[:n, :n]) < RTOL
        assert _rel(G, red[name].G) < RTOL and _rel(Gb, red[name].G) < RTOL
        assert T == 1 or _rel(G, exp[name].G) > 1e-3  # the two conventions differ
    # the Dense layer as in tests/test_curvature_peers.py
    G, A = (t.detach().numpy() for t in mods[2].weight.kflr)
    assert _rel(A, exp["W3"].A[:2, :2]) < RTOL and _rel(G, exp["W3"].G) < RTOL


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("approx", ["expand", "reduce"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_conv_factors_equal_curvlinops_type2(loss, approx):
    cl = pytest.importorskip("curvlinops", exc_type=ImportError)
    m, theta, X, y = _case(loss)
    net, mods = _torch_net(m, theta, 2)
    Xt, yt, fn = _torch_data(X, y, loss, 2)
    op = cl.KFACLinearOperator(net, fn, list(net.parameters()), [(Xt, yt)],
                               fisher_type="type-2", kfac_approx=approx,
                               separate_weight_and_bias=False, check_deterministic=False)
    op.compute_kronecker_factors()
    state = op.state_dict()
    ours = kfac_factors(m, theta, X, y, conv=approx)
    for name, key in zip(("W1", "W2", "W3"), ("0", "2", "5")):
        assert _rel(state["input_covariances"][key].numpy(), ours[name].A) < RTOL
        assert _rel(state["gradient_covariances"][key].numpy(), ours[name].G) < RTOL


@pytest.mark.parametrize("conv", ["expand", "reduce"])
def test_factors_do_not_depend_on_the_chunking(monkeypatch, conv):
    """kfac_factors runs its column pass in chunks of samples (CHUNK_ROWS sample-columns):
    one sample per chunk gives the same factors as one chunk for all."""
    import symnn.analysis.kfac as kfac_module

    m, theta, X, y = _case("cross_entropy")
    whole = kfac_factors(m, theta, X, y, conv=conv)
    monkeypatch.setattr(kfac_module, "CHUNK_ROWS", 1)
    for name, f in kfac_factors(m, theta, X, y, conv=conv).items():
        assert _rel(f.G, whole[name].G) < 1e-12 and np.array_equal(f.A, whole[name].A)


def test_the_kfac_optimizer_trains_a_convolutional_network():
    """symnn.train.KFAC no longer refuses Conv1D: its layers are preconditioned by KFC
    factors, and a few iterations reduce the loss."""
    from symnn.train import KFAC, fit

    m, theta, X, y = _case("mse", B=24, seed=3)
    res = fit(m, X, y, KFAC(), epochs=8, theta0=theta, check_every=0, progress=False)
    assert res.history.loss[-1] < 0.7 * res.history.loss[0]


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_fisher_operators_on_the_convolutional_network(loss):
    """The exact Fisher operator is the Gauss-Newton matrix (no penalty here) and the
    empirical one the per-sample gradients' outer products, through Conv1D layers."""
    from symnn.analysis import fisher_operator, per_sample_gradients

    m, theta, X, y = _case(loss)
    P = m.n_params
    GGN = m.gnvp(theta, np.eye(P), X, y)
    assert _rel(fisher_operator(m, theta, X, y, "exact") @ np.eye(P), GGN) < RTOL
    G = per_sample_gradients(m, theta, X, y)
    assert _rel(fisher_operator(m, theta, X, y).dense(), G.T @ G / B) < RTOL
