"""Optimizers: symbolic rules, their printing, and the generated compiled update.

The compiled update is generated from the SymPy rules; its independent witness is the same
rules evaluated by NumPy through ``sympy.lambdify`` (:func:`evaluate_rules`).  The two run
the same arithmetic in possibly different association orders, so they agree to rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symnn.errors import DeclarationError, UnknownNameError
from symnn.train import (
    LBFGS,
    SGD,
    Adagrad,
    Adam,
    CosineDecay,
    ExponentialDecay,
    InverseScaling,
    LevenbergMarquardt,
    Momentum,
    Nesterov,
    Newton,
    NewtonCG,
    RMSProp,
    StepDecay,
    get_optimizer,
)
from symnn.train.epoch_kernel import compile_update, update_source
from symnn.train.optimizers import evaluate_rules

OPTIMIZERS = [
    SGD(lr=0.1),
    Momentum(lr=0.05, momentum=0.8),
    Nesterov(lr=0.05, momentum=0.9),
    Adagrad(lr=0.1),
    RMSProp(lr=0.01, rho=0.95),
    Adam(lr=0.01),
    Adam(lr=0.01, weight_decay=0.01, clip_norm=1.5, schedule=CosineDecay(5, eta_min=1e-3)),
    SGD(lr=0.1, clip_norm=0.5, schedule=StepDecay(2, 0.5)),
    Momentum(lr=0.1, weight_decay=0.1, schedule=ExponentialDecay(0.9, 3)),
    RMSProp(lr=0.01, schedule=InverseScaling(0.5)),
    # issue 16: a common subexpression reading an earlier rule's target (g̃ = g + λθ)
    Nesterov(lr=0.05, momentum=0.9, weight_decay=0.01),
]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_compiled_update_equals_symbolic_rule(opt):
    rng = np.random.default_rng(0)
    P = 257
    upd = compile_update(opt)
    theta = rng.normal(size=P)
    S = np.abs(rng.normal(size=(len(opt.state), P)))
    lam = 0.1 * np.abs(rng.normal(size=P))
    ref_theta, ref_S, t = theta.copy(), S.copy(), 0
    scal = np.zeros(1)
    for _ in range(6):  # several steps: the step count and the schedule take part
        g = 3 * rng.normal(size=P)
        out = np.empty(P)
        upd.fn(theta, g, lam, S, scal, upd.hp, out)
        theta = out
        ref_theta, ref_S, t = evaluate_rules(opt, ref_theta, g, lam, ref_S, t)
        np.testing.assert_allclose(theta, ref_theta, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(S, ref_S, rtol=1e-13, atol=1e-14)
        assert scal[0] == t


def test_update_in_place_and_float32():
    opt = Adam(lr=0.01)
    rng = np.random.default_rng(1)
    th = rng.normal(size=50)
    g = rng.normal(size=50)
    ref, _, _ = evaluate_rules(opt, th, g)
    upd = compile_update(opt, "float32")
    th32 = th.astype(np.float32)
    upd.step(th32, g.astype(np.float32))
    assert th32.dtype == np.float32
    np.testing.assert_allclose(th32, ref, rtol=1e-5, atol=1e-6)


def test_wrong_rule_fails_the_witness():
    """A deliberately wrong update (β₁ and β₂ swapped) must disagree with the rule."""
    good, bad = Adam(lr=0.01, beta1=0.9, beta2=0.999), Adam(lr=0.01, beta1=0.999, beta2=0.9)
    rng = np.random.default_rng(2)
    th, g = rng.normal(size=20), rng.normal(size=20)
    upd = compile_update(bad)
    out = th.copy()
    upd.step(out, g)
    ref, _, _ = evaluate_rules(good, th, g, state=np.full((2, 20), 0.5))
    assert not np.allclose(out, ref)


def test_adam_equations_print_as_text_and_latex():
    eq = Adam(lr=1e-3).equations()
    text = str(eq)
    for line in ["mₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ", "vₜ = β₂·vₜ₋₁ + (1 − β₂)·gₜ²",
                 "m̂ₜ = mₜ/(1 − β₁ᵗ)", "v̂ₜ = vₜ/(1 − β₂ᵗ)", "θₜ = θₜ₋₁ − η·m̂ₜ/(√v̂ₜ + ε)"]:
        assert line in text
    tex = eq.latex()
    assert tex.startswith(r"\begin{align*}") and tex.endswith(r"\end{align*}")
    assert r"\hat{m}_{t} &= \frac{m_{t}}{1 - \beta_{1}^{t}}" in tex
    assert eq._repr_latex_().startswith("$$")


def test_schedule_clip_and_decay_print():
    opt = SGD(lr=0.1, weight_decay=1e-4, clip_norm=1.0, schedule=StepDecay(10, 0.5))
    text = str(opt.equations())
    assert "ηₜ = η₀·γ^⌊(t − 1)/s⌋" in text
    assert "g̃ₜ = gₜ·min(1, c/‖gₜ‖) + λ·θₜ₋₁" in text
    assert "θₜ = θₜ₋₁ − ηₜ·g̃ₜ" in text
    assert r"\left\lfloor" in opt.equations().latex()


def test_rules_are_sympy_equations():
    opt = RMSProp(lr=0.01, rho=0.9)
    rules = {r.target.name: r for r in opt.rules()}
    v = sp.Symbol("v", real=True)
    g = sp.Symbol("g", real=True)
    rho = sp.Symbol("rho", positive=True)
    assert sp.simplify(rules["v_new"].evaluated() - (rho * v + (1 - rho) * g**2)) == 0


@pytest.mark.parametrize("sched,eta0,expected", [
    (StepDecay(2, 0.5), 1.0, [1.0, 1.0, 0.5, 0.5, 0.25]),
    (ExponentialDecay(0.5, 1), 1.0, [1.0, 0.5, 0.25, 0.125, 0.0625]),
    (CosineDecay(4, eta_min=0.0), 2.0, [2.0, 1 + np.cos(np.pi / 4), 1.0, 1 - np.cos(np.pi / 4),
                                       0.0]),
    (InverseScaling(1.0), 1.0, [1.0, 0.5, 1 / 3, 0.25, 0.2]),
])
def test_schedules(sched, eta0, expected):
    got = [sched.value(eta0, t) for t in range(1, 6)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_hoisting_keeps_scalar_work_out_of_the_loop():
    src = update_source(Adam())
    loop = src.split("for i in range(n):")[1]
    assert "**" not in loop and "beta1" in src.split("for i in range(n):")[0]


def test_get_optimizer_names_and_spec_tables():
    assert isinstance(get_optimizer("adam"), Adam)
    assert isinstance(get_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9}), Momentum)
    assert isinstance(get_optimizer("sgd", momentum=0.9, nesterov=True), Nesterov)
    assert isinstance(get_optimizer({"name": "sgd", "lr": 0.1}), SGD)
    assert get_optimizer({"name": "adam", "clip": 2.0}).clip_norm == 2.0
    assert isinstance(get_optimizer("lbfgs"), LBFGS)
    assert isinstance(get_optimizer("newton-cg"), NewtonCG)
    assert isinstance(get_optimizer("lm", damping=0.1), LevenbergMarquardt)
    assert isinstance(get_optimizer("newton"), Newton)
    with pytest.raises(UnknownNameError, match="known"):
        get_optimizer("adamw")
    with pytest.raises(UnknownNameError, match="unknown option"):
        get_optimizer("adam", betas=0.9)


@pytest.mark.parametrize("make", [
    lambda: Adam(lr=0), lambda: Adam(beta1=1.0), lambda: SGD(lr=float("nan")),
    lambda: SGD(weight_decay=-1), lambda: SGD(clip_norm=0), lambda: SGD(schedule="cosine"),
    lambda: StepDecay(0), lambda: CosineDecay(10, eta_min=-1), lambda: SGD(decay="biases"),
])
def test_bad_hyperparameters_are_declaration_errors(make):
    with pytest.raises(DeclarationError):
        make()


def test_second_order_equations_print():
    assert "(H + μI)⁻¹" in str(Newton().equations())
    assert "(G + μI)⁻¹" in str(LevenbergMarquardt().equations())
    assert r"\left(G + \mu I\right)^{-1}" in LevenbergMarquardt().equations().latex()


# -- issue 16: the update fused with the history's per-array gradient norms ----------------


# no state, two state vectors, decay + clipping + schedule, a CSE reading a rule's target
@pytest.mark.parametrize("opt,dtype", [(OPTIMIZERS[0], "float64"), (OPTIMIZERS[5], "float64"),
                                       (OPTIMIZERS[6], "float64"), (OPTIMIZERS[-1], "float64"),
                                       (OPTIMIZERS[6], "float32")],
                         ids=lambda v: v if isinstance(v, str) else repr(v))
def test_fused_update_is_the_update_plus_the_array_norms(opt, dtype):
    """``update_norms`` makes bitwise the update of ``update`` and adds each array's
    gradient norm (witness: numpy.linalg.norm of the array's part of g)."""
    rng = np.random.default_rng(3)
    bounds = np.array([0, 7, 8, 150, 151, 257], np.int64)  # odd sizes: vector tails too
    P = int(bounds[-1])
    upd = compile_update(opt, dtype)
    theta = rng.normal(size=P).astype(dtype)
    S = np.abs(rng.normal(size=(len(opt.state), P))).astype(dtype)
    lam_a = np.array([0.1, 0.0, 0.05, 0.0, 0.2], dtype)  # one λ per array
    lam = np.repeat(lam_a, np.diff(bounds))
    S2, scal, scal2 = S.copy(), np.zeros(1, dtype), np.zeros(1, dtype)
    gnorm = np.zeros(len(bounds) - 1)
    expected = np.zeros(len(bounds) - 1)
    for _ in range(3):
        g = (3 * rng.normal(size=P)).astype(dtype)
        out, out2 = np.empty(P, dtype), np.empty(P, dtype)
        upd.fn(theta, g, lam, S, scal, upd.hp, out)
        upd.fused(theta, g, lam_a, S2, scal2, upd.hp, out2, bounds, gnorm)
        np.testing.assert_array_equal(out2, out)
        np.testing.assert_array_equal(S2, S)
        assert scal2[0] == scal[0]
        expected += [np.linalg.norm(g[a:b].astype(np.float64))
                     for a, b in zip(bounds[:-1], bounds[1:])]
        theta = out
    np.testing.assert_allclose(gnorm, expected, rtol=1e-12)


def test_fused_norms_witness_catches_a_wrong_boundary():
    """The norms are per array: shifting one boundary by a coordinate changes them."""
    rng = np.random.default_rng(4)
    upd = compile_update(SGD(lr=0.1))
    g = rng.normal(size=40)
    bounds = np.array([0, 10, 40], np.int64)
    gn = np.zeros(2)
    upd.fused(np.zeros(40), g, np.zeros(2), np.zeros((0, 40)), np.zeros(1), upd.hp,
              np.empty(40), np.array([0, 11, 40], np.int64), gn)
    expected = [np.linalg.norm(g[:10]), np.linalg.norm(g[10:])]
    assert not np.allclose(gn, expected, rtol=1e-12)
    assert bounds[-1] == g.size


# -- issue 16: the rule structure is memoised on what determines the rules -----------------


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_memoised_structure_is_the_derived_one(opt):
    from symnn.train import _structure

    assert _structure.memo_key(opt) is not None
    assert opt.structure() == opt.structure() == _structure.derive(opt)


def test_structure_memo_follows_attribute_changes_and_skips_user_classes():
    from symnn.train import _structure

    opt = Adam(lr=0.01)
    plain = opt.structure()
    opt.clip_norm = 2.0  # changes the rules: a norm rule and the clipped gradient
    assert opt.structure() == _structure.derive(opt) != plain
    opt.clip_norm = None
    opt.schedule = StepDecay(3, 0.5)
    assert opt.structure() == _structure.derive(opt) != plain

    class Doubled(SGD):  # a user's subclass: its rules may read anything, never memoised
        scale = 2

        def core_rules(self, g, eta):
            rules = super().core_rules(g, eta)
            r = rules[-1]
            return rules[:-1] + [type(r)(r.target, r.expr * self.scale, r.kind)]

    d = Doubled(lr=0.1)
    assert _structure.memo_key(d) is None
    first = d.structure()
    Doubled.scale = 3
    assert d.structure() != first


def test_decay_per_array_refuses_a_decay_that_varies_inside_an_array():
    from symnn.errors import ArgumentError
    from symnn.train.epoch_kernel import decay_per_array

    bounds = np.array([0, 2, 2, 5], np.int64)  # an empty array in the middle
    np.testing.assert_array_equal(
        decay_per_array(np.array([0.1, 0.1, 0.3, 0.3, 0.3]), bounds), [0.1, 0.0, 0.3])
    with pytest.raises(ArgumentError, match="one weight decay per parameter array"):
        decay_per_array(np.array([0.1, 0.2, 0.3, 0.3, 0.3]), bounds)
    with pytest.raises(ArgumentError, match="parameter layout"):
        decay_per_array(np.zeros(4), bounds)
