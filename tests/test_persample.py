"""Per-sample gradients, gradient variance, empirical Fisher, diagonal GGN / Hessian and K-FAC
factors (symnn.analysis) against dense computations: the batch-1 gradient kernel, PyTorch
``vmap(grad)``, the Gauss-Newton product and Hessian kernels on unit vectors, and a hand
NumPy recomputation of the Kronecker factors."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn.analysis import (
    diag_ggn,
    diag_hessian,
    empirical_fisher,
    gradient_variance,
    kfac_error,
    kfac_factors,
    per_sample_gradients,
)
from symnn.analysis.ggn import loss_hessian_sqrt, output_hessian
from symnn.analysis.persample import evaluate_program
from symnn.errors import AnalysisError, ShapeError, SymnnError

RTOL = 1e-9

# (output, loss): every loss Hessian square root of symnn.analysis.ggn
CASES = [
    (None, "mse"), ("softmax", "cross_entropy"), ("sigmoid", "bce"), ("softmax", "kl"),
    ("sigmoid", "cross_entropy"), (None, "huber"), ("softmax", "bce"), ("tanh", "mse"),
]


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _targets(rng, loss, B, m):
    if loss in ("cross_entropy", "kl"):
        return rng.dirichlet(np.ones(m), size=B)
    if loss == "bce":
        return rng.random((B, m))
    return 2.0 * rng.normal(size=(B, m))


_MODELS: dict = {}


def _model(output, loss, penalties=("l2", "l1"), sizes=(3, 4, 3)):
    key = (output, loss, penalties, sizes)
    if key not in _MODELS:
        pens = [symnn.L2(0.07) if p == "l2" else symnn.L1(0.05) for p in penalties]
        kw = {} if output is None else {"output": output}
        net = symnn.mlp(list(sizes), activation="tanh", loss=loss, penalties=pens, **kw)
        _MODELS[key] = net.compile()
    return _MODELS[key]


def _batch(model, loss, B=5, seed=0):
    rng = np.random.default_rng(seed)
    theta = model.init(seed) + 0.3 * rng.normal(size=model.n_params)
    X = rng.normal(size=(B, model.n_inputs))
    return theta, X, _targets(rng, loss, B, model.n_outputs)


# -- per-sample gradients -----------------------------------------------------------------

@pytest.mark.parametrize("output,loss", CASES[:4])
def test_per_sample_gradients_equal_the_batch_one_kernel(output, loss):
    model = _model(output, loss)
    theta, X, y = _batch(model, loss)
    G = per_sample_gradients(model, theta, X, y)
    assert G.shape == (len(X), model.n_params)
    for s in range(len(X)):
        g1 = model.loss_and_grad(theta, X[s:s + 1], y[s:s + 1])[1]
        assert _rel(G[s], g1) < RTOL
    assert _rel(G.mean(axis=0), model.loss_and_grad(theta, X, y)[1]) < RTOL
    # the penalty's gradient is one row's constant: penalties=False takes exactly it away
    G0 = per_sample_gradients(model, theta, X, y, penalties=False)
    pen = model.loss_and_grad(theta, X, y)[1] - G0.mean(axis=0)
    W1 = model.unflatten(theta)["W1"]
    assert np.allclose(pen[:W1.size], (2 * 0.07 * W1 + 0.05 * np.sign(W1)).ravel(),
                       rtol=1e-12, atol=0)
    assert np.allclose(G - G0, pen[None, :], rtol=0, atol=1e-15)


def test_per_sample_gradients_of_a_custom_model_and_l1():
    x, a, b = sp.symbols("x a b")
    model = symnn.Model(a * sp.exp(-b * x) + a * b, inputs=[x], params=[a, b], loss="huber",
                        penalties=[symnn.L1(0.1, params=["a"])]).compile()
    rng = np.random.default_rng(1)
    theta, X, y = np.array([0.7, -0.4]), rng.normal(size=(6, 1)), rng.normal(size=(6, 1))
    G = per_sample_gradients(model, theta, X, y)
    for s in range(6):
        assert _rel(G[s], model.loss_and_grad(theta, X[s:s + 1], y[s:s + 1])[1]) < RTOL
    assert _rel(G.mean(axis=0), model.loss_and_grad(theta, X, y)[1]) < RTOL


def test_per_sample_gradients_against_torch_vmap_grad():
    torch = pytest.importorskip("torch")
    from torch.func import grad, jacrev, vmap

    model = _model("softmax", "cross_entropy")
    theta, X, y = _batch(model, "cross_entropy", B=7)
    shapes = model.param_shapes

    def logits(t, x):
        off, ps = 0, {}
        for name, shape in shapes:
            n = int(np.prod(shape))
            ps[name] = t[off:off + n].reshape(shape)
            off += n
        return ps["W2"] @ torch.tanh(ps["W1"] @ x + ps["b1"]) + ps["b2"]

    def ell(t, x, yy):  # the per-sample loss, from docs/losses.md
        z = logits(t, x)
        return torch.logsumexp(z, 0) - yy @ z

    T = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    Gt = vmap(grad(ell), in_dims=(None, 0, 0))(T(theta), T(X), T(y)).numpy()
    assert _rel(per_sample_gradients(model, theta, X, y, penalties=False), Gt) < RTOL
    # the Gauss-Newton diagonal: mean_s diag(J_sᵀ (diag p − p pᵀ) J_s) + 2λ on the weights
    J = vmap(jacrev(logits), in_dims=(None, 0))(T(theta), T(X)).numpy()   # (B, m, P)
    p = torch.softmax(vmap(logits, in_dims=(None, 0))(T(theta), T(X)), -1).numpy()
    H = np.stack([np.diag(r) - np.outer(r, r) for r in p])
    pen = np.zeros(model.n_params)
    pen[:12], pen[16:28] = 2 * 0.07, 2 * 0.07
    want = np.einsum("bip,bij,bjp->p", J, H, J) / len(X) + pen
    assert _rel(diag_ggn(model, theta, X, y), want) < RTOL


def test_variance_and_empirical_fisher_from_batch_one_gradients():
    model = _model(None, "mse")
    theta, X, y = _batch(model, "mse", B=6)
    R = model.reference  # a second model object: the uncompiled interpreter
    rows = np.array([R.loss_and_grad(theta, X[s:s + 1], y[s:s + 1])[1] for s in range(6)])
    rows -= rows.mean(axis=0) - per_sample_gradients(model, theta, X, y,
                                                     penalties=False).mean(axis=0)
    assert _rel(gradient_variance(model, theta, X, y), rows.var(axis=0)) < RTOL
    assert _rel(gradient_variance(model, theta, X, y, ddof=1), rows.var(axis=0, ddof=1)) < RTOL
    F = empirical_fisher(model, theta, X, y)
    assert _rel(F, rows.T @ rows / 6) < RTOL
    v = np.random.default_rng(3).normal(size=(2, model.n_params))
    assert _rel(empirical_fisher(model, theta, X, y, v), v @ F) < RTOL
    assert _rel(empirical_fisher(model, theta, X, y, v[0]), F @ v[0]) < RTOL


# -- diagonal GGN and Hessian --------------------------------------------------------------

@pytest.mark.parametrize("output,loss", CASES)
def test_diag_ggn_is_the_diagonal_of_the_dense_gauss_newton(output, loss):
    model = _model(output, loss)
    theta, X, y = _batch(model, loss, B=6)
    dense = np.diag(model.gnvp(theta, np.eye(model.n_params), X, y))
    assert _rel(diag_ggn(model, theta, X, y), dense) < RTOL
    assert _rel(diag_ggn(model.reference, theta, X, y), dense) < RTOL


@pytest.mark.parametrize("output,loss", CASES)
def test_the_square_root_squares_to_the_programs_loss_hessian(output, loss):
    model = _model(output, loss)
    theta, X, y = _batch(model, loss, B=4)
    ev = evaluate_program(model, theta, X, y)
    S, w = loss_hessian_sqrt(ev)
    H = output_hessian(ev)   # m JVPs of ∂ℓ/∂u through the derived program
    assert np.all(w == 1.0)  # every loss symnn has is convex in the value it reads
    err = np.abs(np.einsum("bic,bc,bjc->bij", S, w, S) - H).max()
    assert err < 1e-14 * max(1.0, np.abs(H).max())  # rounding, relative to the entries


@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("sigmoid", "bce"),
                                         (None, "mse")])
def test_monte_carlo_diag_ggn_is_unbiased(output, loss):
    model = _model(output, loss)
    theta, X, y = _batch(model, loss, B=4)
    exact = diag_ggn(model, theta, X, y)
    mc = diag_ggn(model, theta, X, y, mc_samples=20000, seed=5)
    assert _rel(mc, exact) < 0.03          # 20000 draws: about 1 % statistical error
    assert not np.allclose(mc, exact, rtol=1e-6)  # and it is an estimate, not the exact value


def test_diag_hessian_is_the_diagonal_of_the_dense_hessian():
    model = _model("sigmoid", "bce")
    theta, X, y = _batch(model, "bce", B=5)
    H = model.hessian(theta, X, y)
    for block in (1, 7, 64):
        assert _rel(diag_hessian(model, theta, X, y, block=block), np.diag(H)) < RTOL
    # the σ″ terms: the Hessian's diagonal is not the Gauss-Newton's here
    assert _rel(diag_hessian(model, theta, X, y), diag_ggn(model, theta, X, y)) > 1e-3


def test_a_custom_model_and_a_network_without_a_bias():
    x, a, b, c = sp.symbols("x a b c")
    custom = symnn.Model([a * sp.exp(-b * x) + c, sp.tanh(a * x) * b], inputs=[x],
                         params=[a, b, c], loss="huber",
                         penalties=[symnn.L1(0.1, params=["a"]), symnn.L2(0.2, params=["c"])])
    net = symnn.Network([symnn.Dense(3, 4, bias=False), "elu", symnn.Dense(4, 3), "softmax"],
                        loss="cross_entropy", penalties=[symnn.L2(0.05)])
    rng = np.random.default_rng(4)
    for declared, theta, X, y in [
        (custom, np.array([0.8, 0.3, -0.5]), rng.normal(size=(5, 1)), 3 * rng.normal(size=(5, 2))),
        (net, 0.7 * rng.normal(size=27), rng.normal(size=(5, 3)), rng.integers(0, 3, size=5)),
    ]:
        model = declared.compile()
        G = per_sample_gradients(model, theta, X, y)
        for s in range(len(X)):
            assert _rel(G[s], model.loss_and_grad(theta, X[s:s + 1], y[s:s + 1])[1]) < RTOL
        dense = np.diag(model.gnvp(theta, np.eye(model.n_params), X, y))
        assert _rel(diag_ggn(model, theta, X, y), dense) < RTOL
        assert _rel(diag_hessian(model, theta, X, y, block=2),
                    np.diag(model.hessian(theta, X, y))) < RTOL
    f = kfac_factors(model, theta, X, y)
    assert f["W1"].bias is None and f["W1"].A.shape == (3, 3) and f["W2"].A.shape == (5, 5)
    assert f["W1"].index.tolist() == list(range(12))
    assert max(kfac_error(model, theta, X[:1], y[:1]).values()) < RTOL


# -- K-FAC ---------------------------------------------------------------------------------

def _hand_factors(model, theta, X, y, loss):
    """A, G of both layers of a tanh MLP, written out in NumPy from docs/losses.md."""
    p = model.unflatten(theta)
    B, m = y.shape
    z1 = X @ p["W1"].T + p["b1"]
    a1 = np.tanh(z1)
    z2 = a1 @ p["W2"].T + p["b2"]
    if loss == "mse":
        S = np.broadcast_to(np.sqrt(2.0 / m) * np.eye(m), (B, m, m))
    else:  # softmax × cross_entropy, read at the logits
        q = np.exp(z2 - z2.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        S = np.stack([np.diag(np.sqrt(r)) - np.outer(r, np.sqrt(r)) for r in q])
    A1 = np.c_[X, np.ones(B)]
    A2 = np.c_[a1, np.ones(B)]
    G1 = np.zeros((z1.shape[1],) * 2)
    G2 = np.zeros((m, m))
    for s in range(B):
        for c in range(m):
            d2 = S[s][:, c]
            d1 = (p["W2"].T @ d2) * (1 - a1[s] ** 2)
            G2 += np.outer(d2, d2) / B
            G1 += np.outer(d1, d1) / B
    return {"W1": (A1.T @ A1 / B, G1), "W2": (A2.T @ A2 / B, G2)}


@pytest.mark.parametrize("output,loss", [(None, "mse"), ("softmax", "cross_entropy")])
def test_kflr_factors_equal_a_hand_recomputation(output, loss):
    model = _model(output, loss)
    theta, X, y = _batch(model, loss, B=6)
    got = kfac_factors(model, theta, X, y, "kflr")
    for name, (A, G) in _hand_factors(model, theta, X, y, loss).items():
        assert _rel(got[name].A, A) < RTOL and _rel(got[name].G, G) < RTOL
        assert got[name].bias == "b" + name[1:]


@pytest.mark.parametrize("output,loss", [(None, "mse"), ("softmax", "cross_entropy"),
                                         ("sigmoid", "bce")])
def test_kronecker_product_is_the_exact_block_for_one_sample(output, loss):
    """The scaling convention: no stray factor of 2 or B (curvlinops #82)."""
    model = _model(output, loss)
    theta, X, y = _batch(model, loss, B=6)
    err1 = kfac_error(model, theta, X[:1], y[:1])
    assert max(err1.values()) < RTOL
    err = kfac_error(model, theta, X, y)
    assert err["W1"] > 1e-3  # with more samples the hidden layer's block is not a product
    f = kfac_factors(model, theta, X[:1], y[:1])["W2"]
    block = model.gnvp(theta, np.eye(model.n_params)[f.index], X[:1], y[:1])[:, f.index]
    m, n = model.unflatten(theta)["W2"].shape
    pen = np.ravel(np.c_[np.full((m, n), 2 * 0.07), np.zeros(m)])  # ∇²R: 2λ on W, 0 on b
    assert _rel(block - np.diag(pen), f.kron()) < RTOL


def test_sampled_kfac_factor_estimates_the_kflr_factor():
    model = _model("softmax", "cross_entropy")
    theta, X, y = _batch(model, "cross_entropy", B=4)
    exact = kfac_factors(model, theta, X, y, "kflr")
    mc = kfac_factors(model, theta, X, y, "kfac", mc_samples=20000, seed=2)
    for name in exact:
        assert np.array_equal(mc[name].A, exact[name].A)
        assert _rel(mc[name].G, exact[name].G) < 0.03


# -- errors --------------------------------------------------------------------------------

def test_bad_arguments_are_symnn_errors():
    model = _model(None, "mse")
    theta, X, y = _batch(model, "mse")
    with pytest.raises(ShapeError, match="flat vector"):
        per_sample_gradients(model, theta[:-1], X, y)
    with pytest.raises(AnalysisError, match="not a model"):
        diag_ggn(object(), theta, X, y)
    with pytest.raises(AnalysisError, match="kind"):
        kfac_factors(model, theta, X, y, kind="kfra")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(AnalysisError, match="mc_samples"):
            diag_ggn(model, theta, X, y, mc_samples=bad)
    with pytest.raises(AnalysisError, match="mc_samples is for kind='kfac'"):
        kfac_factors(model, theta, X, y, kind="kflr", mc_samples=3)
    with pytest.raises(AnalysisError, match="mc_samples"):
        kfac_factors(model, theta, X, y, kind="kfac", mc_samples=0)
    with pytest.raises(AnalysisError, match="block"):
        diag_hessian(model, theta, X, y, block=0)
    with pytest.raises(ShapeError, match="v has shape"):
        empirical_fisher(model, theta, X, y, np.ones(3))
    with pytest.raises(AnalysisError, match="ddof"):
        gradient_variance(model, theta, X, y, ddof=2)
    with pytest.raises(SymnnError):
        per_sample_gradients(model, theta, X, y[:2])
    x, a = sp.symbols("x a")
    custom = symnn.Model(a * x, inputs=[x], params=[a]).compile()
    with pytest.raises(AnalysisError, match="no Dense"):
        kfac_factors(custom, np.ones(1), X[:, :1], y[:, :1])
