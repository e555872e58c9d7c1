"""Fisher and K-FAC operators (symnn.analysis.fisher_operator, kfac_operator and its damped
inverse): against dense matrices built independently (batch-1 gradient kernels, the
Gauss-Newton kernel on unit vectors, np.kron and np.linalg.inv) to 1e-9 relative, and
against curvlinops' EFLinearOperator, FisherMCLinearOperator, KFACLinearOperator and
KFACInverseLinearOperator on the same networks (the conventions are in
symnn/analysis/fisher.py and kfac_operator.py; curvlinops' EF is m× symnn's for MSE)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symnn
from symnn.analysis import fisher_operator, kfac_factors, kfac_operator
from symnn.errors import AnalysisError

RTOL = 1e-9
B = 6
SIZES = (3, 4, 3)


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


_MODELS: dict = {}


def _case(loss, penalty=0.0, seed=0):
    key = (loss, penalty)
    if key not in _MODELS:
        kw = {"output": "softmax"} if loss == "cross_entropy" else {}
        pen = [symnn.L2(penalty)] if penalty else []
        net = symnn.mlp(list(SIZES), activation="tanh", loss=loss, **kw)
        if pen:
            net = symnn.Network(net.layers, loss=net.loss, penalties=pen)
        _MODELS[key] = net.compile()
    m = _MODELS[key]
    rng = np.random.default_rng(seed)
    theta = m.init(seed) + 0.3 * rng.normal(size=m.n_params)
    X = rng.normal(size=(B, SIZES[0]))
    y = (np.eye(3)[rng.integers(0, 3, size=B)] if loss == "cross_entropy"
         else rng.normal(size=(B, 3)))
    return m, theta, X, y


LOSSES = ["mse", "cross_entropy"]


@pytest.mark.parametrize("loss", LOSSES)
def test_empirical_fisher_operator_is_the_batch1_gradients_outer_products(loss):
    m, theta, X, y = _case(loss, penalty=0.1)
    P = m.n_params
    pen = 0.2 * np.ones(P)  # ∇R = 2λθ on the weights: subtract it from batch-1 gradients
    params = m.unflatten(np.ones(P))
    mask = np.concatenate([np.ravel(v) * (k.startswith("W")) for k, v in params.items()])
    F = np.zeros((P, P))
    for s in range(B):
        g = m.loss_and_grad(theta, X[s:s + 1], y[s:s + 1])[1] - pen * mask * theta
        F += np.outer(g, g) / B
    op = fisher_operator(m, theta, X, y)
    assert _rel(op @ np.eye(P), F) < RTOL and _rel(op.dense(), F) < RTOL
    v = np.random.default_rng(1).normal(size=P)
    assert _rel(op @ v, F @ v) < RTOL and _rel(op.T @ v, F @ v) < RTOL


@pytest.mark.parametrize("loss", LOSSES)
def test_exact_fisher_operator_is_the_ggn_data_term(loss):
    m, theta, X, y = _case(loss, penalty=0.1)
    P = m.n_params
    GGN = m.gnvp(theta, np.eye(P), X, y)
    params = m.unflatten(np.ones(P))
    mask = np.concatenate([np.ravel(v) * (k.startswith("W")) for k, v in params.items()])
    op = fisher_operator(m, theta, X, y, "exact")
    assert op.U.shape[0] == B * 3
    assert _rel(op.dense(), GGN - np.diag(0.2 * mask)) < RTOL


@pytest.mark.parametrize("loss", LOSSES)
def test_monte_carlo_fisher_converges_to_the_exact_one(loss):
    m, theta, X, y = _case(loss)
    exact = fisher_operator(m, theta, X, y, "exact").dense()
    err = [np.linalg.norm(fisher_operator(m, theta, X, y, "mc", mc_samples=M, seed=M).dense()
                          - exact) / np.linalg.norm(exact) for M in (25, 1600)]
    # error ~ 1/√M: 8× fewer at 64× the samples (a loose factor 3 for the randomness)
    assert err[1] < 0.1 and err[0] / err[1] > 3, err


def test_fisher_operator_refuses_bad_options():
    m, theta, X, y = _case("mse")
    with pytest.raises(AnalysisError, match="kind = 'type-3'"):
        fisher_operator(m, theta, X, y, "type-3")
    with pytest.raises(AnalysisError, match="mc_samples is for kind='mc'"):
        fisher_operator(m, theta, X, y, "exact", mc_samples=3)
    with pytest.raises(AnalysisError, match="mc_samples"):
        fisher_operator(m, theta, X, y, "mc", mc_samples=0)


# -- K-FAC --------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", LOSSES)
def test_kfac_operator_is_the_block_diagonal_of_kronecker_products(loss):
    m, theta, X, y = _case(loss)
    K = kfac_operator(m, theta, X, y)
    D = np.zeros((m.n_params, m.n_params))
    for f in kfac_factors(m, theta, X, y).values():
        D[np.ix_(f.index, f.index)] = np.kron(f.G, f.A)
    assert _rel(K @ np.eye(m.n_params), D) < 1e-12 and _rel(K.dense(), D) < 1e-12
    v = np.random.default_rng(2).normal(size=m.n_params)
    assert _rel(K @ v, D @ v) < 1e-12


def _dense_inverse(m, theta, X, y, delta, mode):
    """The damped inverse by np.linalg.inv of each layer's dense damped block."""
    out = np.zeros((m.n_params, m.n_params))
    for f in kfac_factors(m, theta, X, y).values():
        IA, IG = np.eye(len(f.A)), np.eye(len(f.G))
        if mode == "exact":
            M = np.kron(f.G, f.A) + delta * np.eye(len(IA) * len(IG))
        else:
            dA, dG = delta, delta
            if mode == "heuristic":  # Martens & Grosse §6.3: A takes π√δ
                pi = math.sqrt((np.trace(f.A) / len(f.A)) / (np.trace(f.G) / len(f.G)))
                dA, dG = pi * math.sqrt(delta), math.sqrt(delta) / pi
            M = np.kron(f.G + dG * IG, f.A + dA * IA)
        out[np.ix_(f.index, f.index)] = np.linalg.inv(M)
    return out


@pytest.mark.parametrize("mode", ["tikhonov", "heuristic", "exact"])
@pytest.mark.parametrize("loss", LOSSES)
def test_kfac_inverse_equals_the_dense_damped_inverse(loss, mode):
    m, theta, X, y = _case(loss)
    inv = kfac_operator(m, theta, X, y).inverse(0.05, mode)
    assert _rel(inv @ np.eye(m.n_params), _dense_inverse(m, theta, X, y, 0.05, mode)) < RTOL


def test_the_pi_split_is_not_symmetric():
    """A deliberately swapped π split (A taking √δ/π) gives another inverse: the check above
    can fail."""
    m, theta, X, y = _case("mse")
    K = kfac_operator(m, theta, X, y)
    inv = K.inverse(0.05, "heuristic")
    f = K.factors["W1"]
    dA, dG = inv.layer_dampings["W1"]
    assert dA * dG == pytest.approx(0.05) and abs(dA / dG - 1) > 0.1
    swapped = K.inverse((dG, dA))
    blk = np.ix_(f.index, f.index)
    assert _rel((swapped @ np.eye(m.n_params))[blk], (inv @ np.eye(m.n_params))[blk]) > 1e-3


def test_kfac_inverse_refuses_bad_damping():
    m, theta, X, y = _case("mse")
    K = kfac_operator(m, theta, X, y)
    with pytest.raises(AnalysisError, match="mode = 'cholesky'"):
        K.inverse(0.1, "cholesky")
    with pytest.raises(AnalysisError, match="pair of dampings"):
        K.inverse((0.1, 0.2), "exact")
    with pytest.raises(AnalysisError, match="finite numbers ≥ 0"):
        K.inverse(-1.0)
    X1 = X[:1]                      # one sample: A = ā āᵀ has rank 1, singular undamped
    with pytest.raises(AnalysisError, match="singular"):
        kfac_operator(m, theta, X1, y[:1]).inverse(0.0)


# -- curvlinops ---------------------------------------------------------------------------

def _torch_case(m, theta, X, y, loss):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    p = m.unflatten(theta)
    lins = []
    for i in range(len(SIZES) - 1):
        lin = nn.Linear(SIZES[i], SIZES[i + 1], dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(p[f"W{i + 1}"]))
            lin.bias.copy_(torch.tensor(p[f"b{i + 1}"]))
        lins.append(lin)
    net = nn.Sequential(lins[0], nn.Tanh(), lins[1])
    yt = torch.tensor(y.argmax(axis=1)) if loss == "cross_entropy" else torch.tensor(y)
    fn = nn.CrossEntropyLoss() if loss == "cross_entropy" else nn.MSELoss()
    return net, fn, [(torch.tensor(X), yt)]


def _cl_dense(op, P):
    import torch

    return (op @ torch.eye(P, dtype=torch.float64)).detach().numpy()


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_fisher_operators_against_curvlinops(loss):
    cl = pytest.importorskip("curvlinops", exc_type=ImportError)
    m, theta, X, y = _case(loss)
    P = m.n_params
    net, fn, data = _torch_case(m, theta, X, y, loss)
    params = list(net.parameters())
    EF = _cl_dense(cl.EFLinearOperator(net, fn, params, data, check_deterministic=False), P)
    scale = 1.0 if loss == "cross_entropy" else SIZES[-1]  # curvlinops: Σ over outputs
    assert _rel(EF, scale * fisher_operator(m, theta, X, y).dense()) < RTOL
    # the MC Fisher: both estimate the exact Fisher (GGN), with no factor between them
    exact = fisher_operator(m, theta, X, y, "exact").dense()
    GGN = _cl_dense(cl.GGNLinearOperator(net, fn, params, data, check_deterministic=False), P)
    assert _rel(GGN, exact) < RTOL
    MC = _cl_dense(cl.FisherMCLinearOperator(net, fn, params, data, mc_samples=1600, seed=3,
                                              check_deterministic=False), P)
    assert np.linalg.norm(MC - exact) / np.linalg.norm(exact) < 0.1
    assert np.linalg.norm(MC / 3 - exact) / np.linalg.norm(exact) > 0.5  # a wrong scale fails


@pytest.mark.parametrize("mode", ["tikhonov", "heuristic", "exact"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_kfac_operator_and_inverse_equal_curvlinops(loss, mode):
    cl = pytest.importorskip("curvlinops", exc_type=ImportError)
    m, theta, X, y = _case(loss)
    P = m.n_params
    net, fn, data = _torch_case(m, theta, X, y, loss)
    K = cl.KFACLinearOperator(net, fn, list(net.parameters()), data, fisher_type="type-2",
                              separate_weight_and_bias=False, check_deterministic=False)
    ours = kfac_operator(m, theta, X, y)
    assert _rel(_cl_dense(K, P), ours.dense()) < RTOL
    kw = {"use_heuristic_damping": mode == "heuristic", "use_exact_damping": mode == "exact",
          "min_damping": 0.0}
    inv = cl.KFACInverseLinearOperator(K, damping=0.05, **kw)
    assert _rel(_cl_dense(inv, P), ours.inverse(0.05, mode) @ np.eye(P)) < RTOL


@pytest.mark.parametrize("loss", LOSSES)
def test_kfac_operator_on_a_convolution(loss):
    """Conv1D layers (KFC) have blocks too: the operator covers every parameter."""
    net = symnn.Network([symnn.Conv1D(1, 2, 3, length=6), "tanh", symnn.Flatten(),
                         symnn.Dense(8, 3), *(["softmax"] if loss == "cross_entropy" else [])],
                        loss=loss)
    m = net.compile()
    rng = np.random.default_rng(0)
    theta, X = m.init(0), rng.normal(size=(4, 6))
    y = np.eye(3)[[0, 1, 2, 0]]
    K = kfac_operator(m, theta, X, y, conv="reduce")
    D = np.zeros((m.n_params, m.n_params))
    for f in kfac_factors(m, theta, X, y, conv="reduce").values():
        D[np.ix_(f.index, f.index)] = f.kron()
    assert _rel(K @ np.eye(m.n_params), D) < 1e-12
    assert sorted(np.concatenate([f.index for f in K.factors.values()])) == list(
        range(m.n_params))


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_diag_ggn_is_the_same_in_any_chunking(monkeypatch, chunk):
    """diag_ggn runs its column pass in chunks of CHUNK_ROWS sample-columns (one sample per
    chunk at 1, two at 7 with 3 columns, all at 10 000): each equals the GGN's diagonal."""
    import symnn.analysis.ggn as ggn_module
    from symnn.analysis import diag_ggn

    monkeypatch.setattr(ggn_module, "CHUNK_ROWS", chunk)
    for loss in LOSSES:
        m, theta, X, y = _case(loss, penalty=0.1)
        GGN = m.gnvp(theta, np.eye(m.n_params), X, y)
        assert _rel(diag_ggn(m, theta, X, y), np.diag(GGN)) < RTOL
        mc = diag_ggn(m, theta, X, y, mc_samples=4, seed=1)
        monkeypatch.setattr(ggn_module, "CHUNK_ROWS", 10_000)
        assert _rel(mc, diag_ggn(m, theta, X, y, mc_samples=4, seed=1)) < 1e-12
        monkeypatch.setattr(ggn_module, "CHUNK_ROWS", chunk)
