"""gradcheck / hesscheck: they pass exact derivatives, fail wrong ones, and report kinks."""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.check import gnvcheck, gradcheck, hesscheck
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


# ------------------------------------------------------------------------------------------
# power: a rule wrong by 1e-4 in one component fails each checker, whatever P
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p508():
    """A 16-24-4 tanh/softmax classifier (P = 508) at a generic point, batch 16."""
    model = symnn.mlp([16, 24, 4], activation="tanh", output="softmax",
                      loss="cross_entropy").compile()
    rng = np.random.default_rng(3)
    theta = model.init(3) + 0.1 * rng.normal(size=model.n_params)
    X = rng.normal(size=(16, 16))
    y = rng.integers(0, 4, size=16)
    return model, theta, X, y


def _components(model, g, n=6, seed=0):
    """n coordinates spread over the parameter arrays, each with |gᵢ| ≥ 1e-4."""
    rng = np.random.default_rng(seed)
    out = []
    off = 0
    for _, shape in model.param_shapes:
        size = int(np.prod(shape))
        idx = [i for i in range(off, off + size) if abs(g[i]) >= 1e-4]
        out.extend(rng.choice(idx, size=min(len(idx), max(1, n // 4)), replace=False))
        off += size
    return [int(i) for i in out]


def test_gradcheck_catches_1e_4_in_any_single_component_at_p508(p508, monkeypatch):
    model, theta, X, y = p508
    assert model.n_params == 508
    from symnn.check import param_label

    assert gradcheck(model, theta, X, y)  # the genuine kernel passes
    genuine = model.loss_and_grad
    _, g = genuine(theta, X, y)
    for k in _components(model, g):
        def wrong(t, Xb, yb, k=k):
            L, gr = genuine(t, Xb, yb)
            gr = gr.copy()
            gr[k] *= 1 + 1e-4
            return L, gr

        monkeypatch.setattr(model, "loss_and_grad", wrong, raising=False)
        r = gradcheck(model, theta, X, y, seed=k)
        assert not r, f"a 1e-4 relative error in {param_label(model, k)} was missed"
        assert r.worst_parameter.label == param_label(model, k)
    monkeypatch.undo()


def test_gradcheck_blocks_cover_every_component_of_a_large_model(monkeypatch):
    """P = 2410 > max_blocks: blocked probes still catch one wrong component."""
    model = symnn.mlp([64, 32, 10], activation="tanh", output="softmax",
                      loss="cross_entropy").compile()
    rng = np.random.default_rng(0)
    theta = model.init(0) + 0.05 * rng.normal(size=model.n_params)
    X, y = rng.normal(size=(8, 64)), rng.integers(0, 10, size=8)
    genuine = model.loss_and_grad
    _, g = genuine(theta, X, y)
    k = int(np.argsort(np.abs(g))[model.n_params // 3])  # a small-ish component
    assert abs(g[k]) > 1e-6

    def wrong(t, Xb, yb):
        L, gr = genuine(t, Xb, yb)
        gr = gr.copy()
        gr[k] *= 1 + 1e-4
        return L, gr

    assert gradcheck(model, theta, X, y)
    monkeypatch.setattr(model, "loss_and_grad", wrong, raising=False)
    r = gradcheck(model, theta, X, y)
    assert not r and any(p.kind == "block" and not p.ok for p in r.probes)
    from symnn.check import param_label

    assert r.worst_parameter.label == param_label(model, k)


def test_hesscheck_catches_1e_4_in_one_component_at_p508(p508, monkeypatch):
    model, theta, X, y = p508
    genuine = model.hvp
    assert hesscheck(model, theta, X, y)
    for k in (3, 250, 407, 505):
        def wrong(t, v, Xb, yb, k=k):
            out = genuine(t, v, Xb, yb).copy()
            out[..., k] *= 1 + 1e-4
            return out

        monkeypatch.setattr(model, "hvp", wrong, raising=False)
        r = hesscheck(model, theta, X, y, seed=k)
        assert not r, k
    monkeypatch.undo()


def test_gnvcheck_passes_genuine_and_catches_1e_4_in_one_component(p508, monkeypatch):
    model, theta, X, y = p508
    assert symnn.gnvcheck is gnvcheck
    r = gnvcheck(model, theta, X, y)
    assert r, str(r)
    genuine = model.gnvp
    for k in (7, 480):
        def wrong(t, v, Xb, yb, k=k):
            out = genuine(t, v, Xb, yb).copy()
            out[..., k] *= 1 + 1e-4
            return out

        monkeypatch.setattr(model, "gnvp", wrong, raising=False)
        r = gnvcheck(model, theta, X, y, seed=k)
        assert not r, k
        from symnn.check import param_label

        assert param_label(model, k) in r.worst_parameter.label
    monkeypatch.undo()


def test_gnvcheck_mse_and_a_product_that_is_not_linear_in_v(monkeypatch):
    """G·0 = 0: a product that adds the penalty *gradient* (affine in v) fails."""
    model = symnn.mlp([3, 5, 2], activation="tanh", loss="mse").compile()
    rng = np.random.default_rng(1)
    theta = model.init(1)
    X, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    assert gnvcheck(model, theta, X, y)
    genuine = model.gnvp
    monkeypatch.setattr(model, "gnvp", lambda t, v, Xb, yb: genuine(t, v, Xb, yb) + 0.1 * t,
                        raising=False)
    r = gnvcheck(model, theta, X, y)
    assert not r and any(p.kind == "linearity" and not p.ok for p in r.probes)


def test_gnvcheck_with_an_l2_penalty_uses_its_curvature():
    """With L2(λ) the product is Jᵀ H_ℓ J v + 2λ v on the penalised weights: that passes;
    adding the penalty's gradient instead, or leaving its curvature out, fails."""
    lam = 0.1
    pen = symnn.mlp([2, 3, 1], activation="tanh", loss="mse",
                    penalties=[symnn.L2(lam)]).compile()
    plain = symnn.mlp([2, 3, 1], activation="tanh", loss="mse").compile()
    rng = np.random.default_rng(2)
    theta = pen.init(2)
    X, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 1))
    mask = np.concatenate([np.full(int(np.prod(s)), n.startswith("W"), float)
                           for n, s in pen.param_shapes])

    class WithProduct:
        n_params, param_shapes, dtype = pen.n_params, pen.param_shapes, pen.dtype
        reference = pen.reference
        loss, loss_and_grad = pen.loss, pen.loss_and_grad

        def __init__(self, product):
            self.gnvp = product

    def right(t, v, Xb, yb):
        return plain.gnvp(t, v, Xb, yb) + 2 * lam * mask * v

    def plus_gradient(t, v, Xb, yb):
        return plain.gnvp(t, v, Xb, yb) + 2 * lam * mask * t

    def no_curvature(t, v, Xb, yb):
        return plain.gnvp(t, v, Xb, yb)

    assert gnvcheck(WithProduct(right), theta, X, y)
    assert not gnvcheck(WithProduct(plus_gradient), theta, X, y)
    assert not gnvcheck(WithProduct(no_curvature), theta, X, y)


@pytest.mark.parametrize("distance", [1e-7, -1e-8, 7e-9, 1e-9])
def test_relu_network_near_a_kink_passes(distance):
    """A pre-activation within ~1e-8 of relu's kink: the checks shrink or one-side the
    step instead of failing a correct network."""
    model = symnn.mlp([3, 6, 1], activation="relu", loss="mse").compile()
    for seed in range(4):
        rng = np.random.default_rng(seed)
        X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
        p = model.unflatten(model.init(seed) + 0.1 * rng.normal(size=model.n_params))
        j = seed % 6
        p["b1"][j] += distance - (X[0] @ p["W1"][j] + p["b1"][j])
        theta = model.flatten(p)
        for s in range(2):
            r = hesscheck(model, theta, X, y, seed=s)
            assert r, str(r)
            assert gradcheck(model, theta, X, y, seed=s)


def test_relu_network_near_a_kink_still_catches_a_wrong_hvp(monkeypatch):
    model = symnn.mlp([3, 6, 1], activation="relu", loss="mse").compile()
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    p = model.unflatten(model.init(0) + 0.1 * rng.normal(size=model.n_params))
    p["b1"][0] += 1e-8 - (X[0] @ p["W1"][0] + p["b1"][0])
    theta = model.flatten(p)
    genuine = model.hvp
    monkeypatch.setattr(model, "hvp", lambda t, v, Xb, yb: genuine(t, v, Xb, yb) * (1 + 1e-3),
                        raising=False)
    assert not hesscheck(model, theta, X, y)


def test_bad_arguments_are_symnn_errors():
    from symnn.errors import ArgumentError

    net = symnn.mlp([2, 2, 1])
    with pytest.raises(ArgumentError, match="compile"):
        gradcheck(net, np.zeros(9), None, None)
    m = Quadratic()
    with pytest.raises(ArgumentError, match="eps"):
        gradcheck(m, np.zeros(6), None, None, eps=0)
    with pytest.raises(ArgumentError, match="rtol"):
        hesscheck(m, np.zeros(6), None, None, rtol=float("nan"))
    with pytest.raises(ArgumentError, match="seed"):
        gradcheck(m, np.zeros(6), None, None, seed="x")
    with pytest.raises(ArgumentError, match="coordinates"):
        gradcheck(m, np.zeros(6), None, None, coordinates="some")
    assert issubclass(ArgumentError, symnn.SymnnError)


def test_non_finite_loss_fails_without_warnings():
    class Inf(Quadratic):
        def loss(self, t, X, y):
            return np.inf

    r = gradcheck(Inf(), np.ones(6), None, None)
    assert not r
