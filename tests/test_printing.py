"""Printed equations: derived forms of textbook networks, in text and LaTeX."""

from __future__ import annotations

import sympy as sp

import symnn

a1, a2, y, g_a1, g_a2 = sp.symbols("a1 a2 y g_a1 g_a2", real=True)


def test_xor_sigmoid_mse_equations_read_like_a_textbook():
    eq = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse").equations()
    text = str(eq)
    for line in ["z⁽¹⁾ = W⁽¹⁾ x + b⁽¹⁾", "a⁽¹⁾ = σ(z⁽¹⁾)", "z⁽²⁾ = W⁽²⁾ a⁽¹⁾ + b⁽²⁾",
                 "∇_a⁽²⁾ℓ = 2·(a⁽²⁾ − y)", "δ⁽²⁾ = ∇_a⁽²⁾ℓ ⊙ σ'(z⁽²⁾)",
                 "∇_a⁽¹⁾ℓ = (W⁽²⁾)ᵀ δ⁽²⁾", "δ⁽¹⁾ = ∇_a⁽¹⁾ℓ ⊙ σ'(z⁽¹⁾)",
                 "∂L/∂W⁽¹⁾ = ⟨δ⁽¹⁾ (x)ᵀ⟩", "∂L/∂b⁽²⁾ = ⟨δ⁽²⁾⟩"]:
        assert line in text, line
    # derived, not template: the exact forms SymPy produced
    assert sp.simplify(eq.rhs("g_a2") - 2 * (a2 - y)) == 0
    assert sp.simplify(eq.rhs("delta2") - g_a2 * a2 * (1 - a2)) == 0
    assert sp.simplify(eq.rhs("dz1") - a1 * (1 - a1)) == 0  # σ' through the output


def test_tanh_derivative_through_output():
    eq = symnn.mlp([3, 4, 2], activation="tanh", loss="mse").equations()
    assert sp.simplify(eq.rhs("dz1") - (1 - a1**2)) == 0
    assert "tanh'(z⁽¹⁾) = 1 − tanh(z⁽¹⁾)² = 1 − (a⁽¹⁾)²" in str(eq)


def test_softmax_cross_entropy_gives_p_minus_y():
    eq = symnn.mlp([4, 5, 3], activation="relu", output="softmax",
                   loss="cross_entropy").equations()
    assert sp.simplify(eq.rhs("delta2") - (a2 - y)) == 0
    assert "δ⁽²⁾ = a⁽²⁾ − y" in str(eq)
    assert "ReLU'(z⁽¹⁾) = H(z⁽¹⁾)" in str(eq)


def test_latex_and_jupyter():
    eq = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid").equations()
    tex = eq.latex()
    assert tex.startswith(r"\begin{align*}") and tex.endswith(r"\end{align*}")
    assert r"\delta^{(2)} &= \nabla_{a^{(2)}}\ell \odot \sigma'\left(z^{(2)}\right)" in tex
    assert eq._repr_latex_().startswith("$$\\begin{aligned}")
    md = eq.markdown()
    assert md.count("$$") % 2 == 0 and "*Backward pass*" in md


def test_custom_model_equations_use_the_users_symbols():
    x, a, b = sp.symbols("x a b")
    eq = symnn.Model(a * sp.exp(-b * x), inputs=[x], params=[a, b]).equations()
    assert "f = a·exp(-b·x)" in str(eq)
