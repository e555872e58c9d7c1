"""Binary cross-entropy on a softmax output stays finite and exact at large logit gaps.

``1 − pₖ`` rounds to 0 in float64 once one logit leads the others by about 37, so the
declared ``log(1 − pₖ)`` would be −∞ (NaN after a multiplication by 0).  symnn reads
``1 − pₖ`` as ``Σ_{j≠k} pⱼ`` (symnn/derive/build.py ``_softmax_bce``).  Witnesses: a
50-digit mpmath evaluation of the declared loss, PyTorch autograd of the same loss written
in log space, the NumPy reference, central differences, and the dense Gauss-Newton matrix
for the diagonal GGN (whose loss Hessian in ``p`` is now dense).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from _numeric import central_gradient

import symnn
from symnn.analysis import diag_ggn

mpmath.mp.dps = 50


def _net():
    return symnn.Network([symnn.Dense(2, 3), "tanh", symnn.Dense(3, 3), "softmax"], loss="bce")


@pytest.fixture(scope="module")
def model():
    return _net().compile()


def _data(scale: float):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 2)) * scale
    y = rng.random((5, 3))
    y[0] = [1.0, 0.0, 0.0]
    y[1] = [0.0, 1.0, 0.0]
    return X, y


def _theta(model, scale):
    th = model.init(seed=1)
    return th * scale


def _mp_loss(model, th, X, y) -> float:
    """The declared loss −(1/n) Σ yₖ log pₖ + (1 − yₖ) log(1 − pₖ), in 50 digits."""
    a = model.predict(th, X)  # only for the shapes; recomputed below in mpmath
    P = model.unflatten(th)
    total = mpmath.mpf(0)
    for s in range(X.shape[0]):
        h = [mpmath.tanh(sum(mpmath.mpf(P["W1"][i, j]) * mpmath.mpf(X[s, j]) for j in range(2))
                         + mpmath.mpf(P["b1"][i])) for i in range(3)]
        z = [sum(mpmath.mpf(P["W2"][i, j]) * h[j] for j in range(3)) + mpmath.mpf(P["b2"][i])
             for i in range(3)]
        ez = [mpmath.exp(v) for v in z]
        S = sum(ez)
        p = [v / S for v in ez]
        n = a.shape[1]
        for k in range(n):
            yk = mpmath.mpf(y[s, k])
            t = (yk * mpmath.log(p[k]) if yk else 0) + (
                (1 - yk) * mpmath.log(1 - p[k]) if yk != 1 else 0)
            total -= t / n
    return float(total / X.shape[0])


@pytest.mark.parametrize("scale", [1.0, 10.0, 40.0, 150.0])
def test_loss_matches_50_digits_and_gradient_is_finite(model, scale):
    X, y = _data(1.0)
    th = _theta(model, scale)
    L, g = model.loss_and_grad(th, X, y)
    want = _mp_loss(model, th, X, y)
    assert np.isfinite(L) and np.all(np.isfinite(g))
    assert abs(L - want) <= 1e-12 * max(1.0, abs(want))
    L_ref, g_ref = model.reference.loss_and_grad(th, X, y)
    assert abs(L - L_ref) <= 1e-12 * max(1.0, abs(L))
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(g).max()))


def test_old_form_was_nan_at_this_gap(model):
    """The declared form in float64 is NaN at the gap used above: the test can fail."""
    X, y = _data(1.0)
    th = _theta(model, 40.0)
    p = model.predict(th, X)
    with np.errstate(all="ignore"):
        naive = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1).mean()
    assert not np.isfinite(naive)


def test_torch_autograd_agrees_at_large_gaps(model):
    torch = pytest.importorskip("torch")
    X, y = _data(1.0)
    th = _theta(model, 40.0)
    P = model.unflatten(th)
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in P.items()}
    z = torch.tanh(torch.tensor(X) @ t["W1"].T + t["b1"]) @ t["W2"].T + t["b2"]
    logp = torch.log_softmax(z, dim=1)
    n = z.shape[1]
    rest = torch.stack([torch.logsumexp(torch.cat([logp[:, :k], logp[:, k + 1:]], 1), 1)
                        for k in range(n)], 1)
    Y = torch.tensor(y)
    L = -(Y * logp + (1 - Y) * rest).mean(1).mean()
    L.backward()
    g_t = np.concatenate([t[k].grad.numpy().ravel() for k in model.unflatten(th)])
    Lc, gc = model.loss_and_grad(th, X, y)
    assert abs(Lc - L.item()) <= 1e-12 * max(1.0, abs(Lc))
    np.testing.assert_allclose(gc, g_t, rtol=1e-9, atol=1e-12 * np.abs(g_t).max())


def test_second_derivatives_against_reference_and_differences(model):
    X, y = _data(1.0)
    th = _theta(model, 3.0)
    rng = np.random.default_rng(0)
    v = rng.normal(size=th.size)
    f = lambda t: model.loss_and_grad(t, X, y)[1] @ v  # noqa: E731
    fd = central_gradient(f, th, h=1e-5)
    hv = model.hvp(th, v, X, y)
    np.testing.assert_allclose(hv, model.reference.hvp(th, v, X, y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-7)
    H = model.hessian(th, X, y)
    np.testing.assert_allclose(H @ v, hv, rtol=1e-9, atol=1e-11)
    gv = model.gnvp(th, v, X, y)
    np.testing.assert_allclose(gv, model.reference.gnvp(th, v, X, y), rtol=1e-9, atol=1e-12)


def test_gauss_newton_is_the_declared_losss(model):
    """The GN matrix uses the loss's Hessian in p; on the simplex the declared form and the
    stable one give the same Jᵀ H J (checked against J from differences and H of the
    declared form in p)."""
    X, y = _data(1.0)
    th = _theta(model, 2.0)
    P_ = th.size
    G = np.stack([model.gnvp(th, e, X, y) for e in np.eye(P_)])
    want = np.zeros((P_, P_))
    for s in range(X.shape[0]):
        J = np.stack([central_gradient(lambda t, s=s, k=k: model.predict(t, X[s:s + 1])[0, k],
                                       th) for k in range(3)])
        p = model.predict(th, X[s:s + 1])[0]
        h = (y[s] / p**2 + (1 - y[s]) / (1 - p) ** 2) / 3  # declared bce, diagonal in p
        want += J.T @ (h[:, None] * J)
    want /= X.shape[0]
    np.testing.assert_allclose(G, want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(diag_ggn(model, th, X, y), np.diag(G), rtol=1e-9, atol=1e-12)


def test_monte_carlo_diag_ggn_is_unbiased_for_the_dense_loss_hessian(model):
    X, y = _data(1.0)
    th = _theta(model, 2.0)
    exact = diag_ggn(model, th, X, y)
    runs = np.stack([diag_ggn(model, th, X, y, mc_samples=200, seed=s) for s in range(20)])
    mean, se = runs.mean(0), runs.std(0, ddof=1) / np.sqrt(len(runs))
    assert np.all(np.abs(mean - exact) <= 5 * se + 1e-12)
    assert not np.allclose(runs[0], exact, rtol=1e-6)  # sampled, not the exact columns
