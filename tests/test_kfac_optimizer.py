"""symnn.train.KFAC: the step against dense natural-gradient algebra, the damping rules, the
comparison with Adam, printing, options and spec files (issue 14, part 3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn.analysis import kfac_factors
from symnn.errors import DeclarationError, SymnnError
from symnn.train import KFAC, Adam, fit, get_optimizer
from symnn.train.kfac import adapt_damping, pi_damping


def _one_step(model, opt, X, y, theta):
    res = fit(model, X, y, opt, epochs=1, theta0=theta, check_every=0, progress=False)
    return np.asarray(res.params, float) - theta


@pytest.fixture(scope="module")
def tiny():
    net = symnn.mlp([3, 4, 2], activation="tanh", loss="mse")
    model = net.compile()
    rng = np.random.default_rng(3)
    return model, rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), model.init(seed=1)


def test_one_sample_kflr_step_is_the_exact_natural_gradient(tiny):
    """One sample, exact factors: G ⊗ A is the GGN block, and as the damping → 0 the step
    tends to the exact natural-gradient step −GGN_block⁺ g per layer (the pseudo-inverse:
    one sample's A = ā āᵀ has rank 1), the error shrinking like γ = √λ."""
    model, X, y, theta = tiny
    X1, y1 = X[:1], y[:1]
    GGN = model.gnvp(theta, np.eye(model.n_params), X1, y1)
    g = model.loss_and_grad(theta, X1, y1)[1]
    exact = np.zeros(model.n_params)
    factors = kfac_factors(model, theta, X1, y1)
    for f in factors.values():
        block = GGN[np.ix_(f.index, f.index)]
        assert np.allclose(f.kron(), block, rtol=1e-12, atol=1e-14)
        exact[f.index] = -np.linalg.pinv(block, rcond=1e-10) @ g[f.index]
    assert sorted(np.concatenate([f.index for f in factors.values()])) == list(
        range(model.n_params))
    errors = []
    for lam in (1e-10, 1e-12, 1e-14):
        step = _one_step(model, KFAC(damping=lam, adaptive=False, adapt_every=None,
                                     min_damping=0.0), X1, y1, theta)
        errors.append(np.linalg.norm(step - exact) / np.linalg.norm(exact))
        out = factors["W2"].index  # the output layer: G = I, well conditioned
        assert np.allclose(step[out], exact[out], rtol=100 * math.sqrt(lam))
    # (with M&G's split — A, the larger factor, takes πγ — the error is ~1e-3 at λ = 1e-10
    # and nears the rounding floor of the pseudo-inverse by λ = 1e-14)
    assert errors[2] < 1e-3 and errors[0] / errors[1] > 3 and errors[1] / errors[2] > 3, errors
    # the natural-gradient step is not a multiple of the gradient: the test can fail
    cos = exact @ -g / np.linalg.norm(exact) / np.linalg.norm(g)
    assert cos < 0.99


@pytest.mark.parametrize("lam, eta", [(1e-3, 0.0), (0.05, 0.02)])
def test_one_sample_step_with_unsplit_damping_is_the_damped_natural_gradient(tiny, lam, eta):
    """split_damping=False: (G ⊗ A + (λ + η)I)⁻¹ — for one sample exactly the damped
    natural gradient −(GGN_block + (λ + η)I)⁻¹ ∇f per layer, formed densely."""
    model, X, y, theta = tiny
    X1, y1 = X[:1], y[:1]
    step = _one_step(model, KFAC(damping=lam, weight_decay=eta, split_damping=False,
                                 adaptive=False, adapt_every=None), X1, y1, theta)
    GGN = model.gnvp(theta, np.eye(model.n_params), X1, y1)
    g = model.loss_and_grad(theta, X1, y1)[1] + eta * theta
    for f in kfac_factors(model, theta, X1, y1).values():
        block = GGN[np.ix_(f.index, f.index)] + (lam + eta) * np.eye(f.index.size)
        assert np.allclose(step[f.index], -np.linalg.solve(block, g[f.index]), rtol=1e-9,
                           atol=0)


def test_damped_step_is_the_inverse_of_the_pi_damped_kronecker_product(tiny):
    """Batch of 8, finite damping and weight decay: the step is
    −[(G + γ/π I) ⊗ (A + πγI)]⁻¹ ∇f per layer (Martens & Grosse §6.3), γ = √(λ + η), formed densely."""
    model, X, y, theta = tiny
    lam, eta, lr = 0.03, 0.01, 0.7
    step = _one_step(model, KFAC(lr=lr, damping=lam, weight_decay=eta, adaptive=False,
                                 adapt_every=None), X, y, theta)
    g = model.loss_and_grad(theta, X, y)[1] + eta * theta
    gamma = math.sqrt(lam + eta)
    for f in kfac_factors(model, theta, X, y).values():
        pi = math.sqrt((np.trace(f.A) / len(f.A)) / (np.trace(f.G) / len(f.G)))
        M = np.kron(f.G + gamma / pi * np.eye(len(f.G)), f.A + pi * gamma * np.eye(len(f.A)))
        assert np.allclose(step[f.index], -lr * np.linalg.solve(M, g[f.index]), rtol=1e-10)


def test_pi_adjusted_damping_by_hand():
    A = np.array([[2.0, 1.0], [1.0, 4.0]])          # tr A / dim A = 3
    G = np.diag([1.0, 2.0, 3.0, 6.0])               # tr G / dim G = 3
    assert pi_damping(A, G, 0.2) == pytest.approx((1.0, 0.2, 0.2))
    G = np.diag([0.5, 1.0, 1.5, 3.0])               # tr G / dim G = 1.5 → π = √2
    pi, ga, gg = pi_damping(A, G, 0.2)
    assert pi == pytest.approx(math.sqrt(2.0), rel=1e-15)
    # A, whose mean eigenvalue is the larger, gets the larger share (M&G 2015, §6.3)
    assert ga == pytest.approx(0.2 * math.sqrt(2.0), rel=1e-15)
    assert gg == pytest.approx(0.2 / math.sqrt(2.0), rel=1e-15)
    assert ga * gg == pytest.approx(0.04, rel=1e-14)  # the product is γ² = λ
    assert pi_damping(A, np.zeros((2, 2)), 0.5) == (1.0, 0.5, 0.5)  # a dead layer: no split


@pytest.mark.parametrize("rho, moved", [(0.1, "up"), (-3.0, "up"), (float("nan"), "up"),
                                        (-math.inf, "up"), (0.25, "same"), (0.5, "same"),
                                        (0.75, "same"), (0.9, "down"), (1.3, "down")])
def test_levenberg_marquardt_rule_moves_lambda_the_right_way(rho, moved):
    new = adapt_damping(0.1, rho, 1.5)
    expected = {"up": 0.15, "same": 0.1, "down": 0.1 / 1.5}[moved]
    assert new == pytest.approx(expected, rel=1e-15)
    assert adapt_damping(0.1, 0.1, 1.5, hi=0.12) == 0.12
    assert adapt_damping(0.1, 0.9, 1.5, lo=0.09) == 0.09


def test_damping_adapts_in_training_from_the_exact_gauss_newton_product():
    """Linear least squares: K-FAC's curvature is exact, so a full step has ρ ≈ 1 (λ falls)
    and a step three times too long predicts an increase (λ rises)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=30)
    model = symnn.mlp([3, 1], loss="mse").compile()
    for lr, direction in ((1.0, -1), (3.0, +1)):
        opt = KFAC(lr=lr, damping=1e-2, adaptive=False, adapt_every=1, omega=2.0)
        res = fit(model, X, y, opt, epochs=3, check_every=0, progress=False)
        damping = [r["damping"] for r in res.history.records]
        assert damping == pytest.approx([1e-2 * 2.0 ** (direction * k) for k in (1, 2, 3)])


def _iterations_to(history, target):
    return next((i + 1 for i, L in enumerate(history.loss) if L <= target), math.inf)


def _adam_best(model, X, y, target, epochs):
    best = math.inf
    for lr in (0.003, 0.01, 0.03, 0.1, 0.3):
        res = fit(model, X, y, Adam(lr=lr), epochs=epochs, batch_size=len(X), check_every=0,
                  progress=False)
        best = min(best, _iterations_to(res.history, target))
    return best


@pytest.mark.parametrize("problem", ["regression", "classification"])
def test_kfac_needs_fewer_iterations_than_tuned_adam(problem):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 3))
    if problem == "regression":
        y = np.tanh(X @ np.array([1.0, -2.0, 0.5]))[:, None] + 0.3 * np.sin(2 * X[:, :1])
        net = symnn.mlp([3, 8, 1], activation="tanh", loss="mse")
        target = 5e-3
    else:
        y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
        net = symnn.mlp([3, 8, 3], activation="tanh", output="softmax", loss="cross_entropy")
        target = 0.2
    model = net.compile()
    kfac = fit(model, X, y, KFAC(momentum=0.9), epochs=150, check_every=0, progress=False)
    k = _iterations_to(kfac.history, target)
    adam = _adam_best(model, X, y, target, epochs=1000)
    assert k < math.inf and k < adam, (k, adam)


def test_kfac_trains_with_sampled_factors_and_reports_history():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > X[:, 1]).astype(int)
    model = symnn.mlp([2, 5, 2], activation="tanh", output="softmax",
                      loss="cross_entropy").compile()
    res = fit(model, X, y, KFAC(kind="kfac", mc_samples=2, seed=5), epochs=15,
              validation=0.25, progress=False)
    assert len(res.history) == 15 and res.history.loss[-1] < res.history.loss[0]
    assert all(r["val_loss"] is not None and r["damping"] > 0 for r in res.history.records)
    again = fit(model, X, y, KFAC(kind="kfac", mc_samples=2, seed=5), epochs=15,
                validation=0.25, progress=False)
    assert np.array_equal(res.params, again.params)  # seeded samples: reproducible


def test_model_fit_and_stop_rules():
    X = np.linspace(-2, 2, 40).reshape(-1, 1)
    y = np.sin(X[:, 0])
    model = symnn.mlp([1, 6, 1], activation="tanh").compile()
    res = model.fit(X, y, optimizer=KFAC(), epochs=30, progress=False)
    assert res.history.loss[-1] < 1e-2
    res = fit(model, X, y, KFAC(tol=1e3), epochs=30, progress=False)
    assert res.stop_reason == "converged" and len(res.history) == 0
    res = fit(model, X, y, KFAC(max_iter=4), epochs=30, progress=False)
    assert len(res.history) == 4
    stop = fit(model, X, y, KFAC(), epochs=30, progress=False,
               callbacks=[lambda info: info.epoch == 3])
    assert len(stop.history) == 3 and stop.stop_reason == "callback"


def test_printed_rule_shows_the_kronecker_factors_and_the_damping():
    eqs = KFAC(momentum=0.9).equations()
    text = str(eqs)
    for piece in ("Āₗ = ε·Āₗ + (1 − ε)·⟨ā āᵀ⟩", "Ḡₗ = ε·Ḡₗ + (1 − ε)·⟨Σ_c g_c g_cᵀ⟩",
                  "(Ḡₗ + γ/πₗ I)⁻¹ ∇W̄ₗ (Āₗ + πₗγ I)⁻¹", "γ = √(λ + η)",
                  "πₗ = √((tr Āₗ / dim Āₗ)/(tr Ḡₗ / dim Ḡₗ))", "ρ < ¼"):
        assert piece in text, piece
    tex = eqs.latex()
    assert r"\bar A_l + \pi_l \gamma I" in tex and r"\bar A_l" in tex
    assert "Damping" not in str(KFAC(adapt_every=None).equations())
    unsplit = str(KFAC(split_damping=False).equations())
    assert "vec Δₖ = −(Ḡₗ ⊗ Āₗ + γ² I)⁻¹ vec ∇W̄ₗ" in unsplit and "πₗ" not in unsplit


@pytest.mark.parametrize("options", [
    {"kind": "kfra"}, {"damping": 0.0}, {"damping": -1.0}, {"lr": 0.0}, {"ema": 1.0},
    {"inverse_every": 0}, {"inverse_every": 1.5}, {"omega": 1.0}, {"momentum": 1.0},
    {"mc_samples": 3}, {"kind": "kfac", "mc_samples": 0}, {"adapt_every": 0},
    {"damping": 1e-20}, {"adaptive": "yes"}, {"split_damping": 1}, {"seed": "a"},
    {"decay": "biases"},
])
def test_bad_options_raise_symnn_errors(options):
    with pytest.raises(DeclarationError, match="KFAC"):
        KFAC(**options)


def test_a_custom_model_is_refused_at_fit_start_naming_the_alternative():
    x, a, b = sp.symbols("x a b")
    model = symnn.Model(a * sp.tanh(b * x), inputs=[x], params=[a, b]).compile()
    X = np.linspace(-1, 1, 10).reshape(-1, 1)
    with pytest.raises(DeclarationError, match="NewtonCG") as info:
        fit(model, X, np.tanh(X[:, 0]), KFAC(), epochs=3, progress=False)
    assert isinstance(info.value, SymnnError) and "KFAC" in str(info.value)


def test_spec_files_and_get_optimizer_name_it():
    from symnn.spec.loader import loads_spec
    from symnn.spec.schema import optimizer_options

    opt = get_optimizer({"name": "kfac", "lr": 0.5, "damping": 0.01, "momentum": 0.9})
    assert isinstance(opt, KFAC) and (opt.lr, opt.damping, opt.momentum) == (0.5, 0.01, 0.9)
    assert optimizer_options()["kfac"] == ("damping", "lr", "max_iter", "momentum", "tol",
                                           "weight_decay")
    spec = loads_spec("[network]\nlayers = [2, 2, 1]\n[optimizer]\nname = \"kfac\"\n"
                      "damping = 0.1\nmax_iter = 5\n")
    opt = get_optimizer(spec.optimizer)
    assert isinstance(opt, KFAC) and opt.damping == 0.1 and opt.max_iter == 5
    with pytest.raises(SymnnError, match="memory"):
        loads_spec("[network]\nlayers = [2, 2, 1]\n[optimizer]\nname = \"kfac\"\nmemory = 3\n")
