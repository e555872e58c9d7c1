"""symnn.analysis.loss_hessian_sqrt_symbolic and curvature_equations: the symbolic square
root S of the loss Hessian equals diag(√p)(I − √p√pᵀ) for softmax × cross-entropy, S Sᵀ
is the Hessian, and S evaluated at a batch is the S the numeric diag-GGN / K-FAC code
backpropagates (symnn.analysis.ggn.loss_hessian_sqrt) for every kind of loss; the printed
formulas name the network's values."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn.analysis import curvature_equations, loss_hessian_sqrt_symbolic
from symnn.analysis.ggn import loss_hessian_sqrt
from symnn.analysis.persample import evaluate_program
from symnn.codegen.model import ReferenceModel
from symnn.errors import AnalysisError


def test_softmax_cross_entropy_S_is_diag_sqrt_p_times_the_projection():
    net = symnn.mlp([2, 4], output="softmax", loss="cross_entropy")
    S, H, (p,) = loss_hessian_sqrt_symbolic(net)
    # S Sᵀ = diag(p) − 2ppᵀ + (Σp) ppᵀ: the Hessian on the simplex Σp = 1, not off it
    on_simplex = {p[3]: 1 - p[0] - p[1] - p[2]}
    assert sp.simplify((S * S.T - H).subs(on_simplex)) == sp.zeros(4, 4)
    assert sp.simplify(S * S.T - H) != sp.zeros(4, 4)
    assert H == sp.diag(*p) - sp.Matrix(p) * sp.Matrix(p).T
    rng = np.random.default_rng(0)
    for _ in range(3):
        pv = rng.dirichlet(np.ones(4))
        Sn = np.array(S.subs(dict(zip(p, pv))), float)
        r = np.sqrt(pv)
        assert np.allclose(Sn, np.diag(r) @ (np.eye(4) - np.outer(r, r)), rtol=0, atol=1e-14)
        assert np.allclose(Sn @ Sn.T, np.diag(pv) - np.outer(pv, pv), rtol=0, atol=1e-14)
        # a deliberately wrong root (the transpose) is not one
        assert not np.allclose(Sn.T @ Sn, np.diag(pv) - np.outer(pv, pv), atol=1e-6)


NETS = {
    "softmax-ce": lambda: symnn.mlp([2, 3, 3], activation="tanh", output="softmax",
                                    loss="cross_entropy"),
    "softmax-kl": lambda: symnn.mlp([2, 3, 3], activation="tanh", output="softmax",
                                    loss="kl"),
    "sigmoid-bce": lambda: symnn.mlp([2, 3, 3], activation="tanh", output="sigmoid",
                                     loss="bce"),
    "sigmoid-ce": lambda: symnn.mlp([2, 3, 3], activation="tanh", output="sigmoid",
                                    loss="cross_entropy"),
    "mse": lambda: symnn.mlp([2, 3, 3], activation="tanh", loss="mse"),
    "huber": lambda: symnn.mlp([2, 3, 3], activation="tanh", loss="huber"),
}


@pytest.mark.parametrize("name", list(NETS))
def test_symbolic_S_is_the_numeric_S_on_a_batch(name):
    model = ReferenceModel(NETS[name]())
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4, 2))
    if "ce" in name or "kl" in name or "bce" in name:
        y = (rng.uniform(size=(4, 3)) if name == "sigmoid-bce"
             else rng.dirichlet(np.ones(3), size=4))
    else:
        y = 2 * rng.normal(size=(4, 3))
    ev = evaluate_program(model, model.init(0), X, y)
    S_num, w = loss_hessian_sqrt(ev)
    S, H, syms = loss_hessian_sqrt_symbolic(model)
    pred = np.asarray(ev.env[ev.derived.meta["prediction"]])
    for s in range(4):
        values = dict(zip(syms[0], pred[s]))
        if len(syms) > 1:
            values.update(zip(syms[1], y[s]))
        Ss = np.array(S.subs(values).evalf(), float)
        assert np.allclose(Ss, S_num[s], rtol=1e-12, atol=1e-14), name
        assert np.allclose(Ss @ Ss.T, np.array(H.subs(values).evalf(), float), atol=1e-14)
    assert np.all(w == 1)


def test_printed_formulas_name_the_networks_values():
    net = symnn.mlp([2, 3, 2], activation="tanh", output="softmax", loss="cross_entropy")
    eqs = curvature_equations(net)
    text = str(eqs)
    for piece in ("S = diag(√p) − p √pᵀ", "H = ∂²ℓ/∂z⁽²⁾² = diag(p) − p pᵀ",
                  "diag G[W2] = (1/B) Σ_s Σ_c (δ⁽²⁾_sc)² ((a⁽¹⁾_s)²)ᵀ",
                  "A⁽¹⁾ = (1/B) Σ_s x̄_s x̄_sᵀ,  x̄ = [x; 1]",
                  "G⁽²⁾ = (1/B) Σ_s Σ_c δ⁽²⁾_sc δ⁽²⁾_scᵀ"):
        assert piece in text, piece
    tex = eqs.latex()
    assert r"{\delta^{(2)}_{sc}}^\top" in tex
    assert not re.search(r"_\{[a-z,]+\}\^\\top", tex)   # no double superscripts
    assert "(kflr)" in eqs.title and "sampled" in str(curvature_equations(net, "kfac"))


def test_convolution_factors_print_with_their_positions():
    net = symnn.Network([symnn.Conv1D(2, 3, 3, stride=2, padding=1, length=9), "tanh",
                         symnn.Flatten(), symnn.Dense(15, 3)], loss="mse")
    expand = str(curvature_equations(net))
    reduce = str(curvature_equations(net, conv="reduce"))
    assert "A⁽¹⁾ = (1/(B T)) Σ_s Σ_t p̄_st p̄_stᵀ,  p̄_t = [patch_t(x); 1], T = 5" in expand
    assert "G⁽¹⁾ = (1/B) Σ_s Σ_c (Σ_t δ⁽¹⁾_sc,t)(Σ_t δ⁽¹⁾_sc,t)ᵀ" in reduce
    assert "h_k = 2/3" in expand        # mse over 3 outputs: ∂²ℓ/∂ŷ_k² = 2/m


def test_bad_arguments_are_refused():
    net = symnn.mlp([2, 2])
    with pytest.raises(AnalysisError, match="kind = 'kfra'"):
        curvature_equations(net, "kfra")
    with pytest.raises(AnalysisError, match="neither a compiled model nor a declared"):
        curvature_equations(object())
