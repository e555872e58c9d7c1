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
    # σ' is derived as σ(z)σ(−z) (relative accuracy at large z, round 5): σ(−zᵢ) = 1 − aᵢ
    from symnn.functions import sigmoid

    z1, z2 = sp.symbols("z1 z2", real=True)
    back = {sigmoid(-z1): 1 - a1, sigmoid(-z2): 1 - a2}
    assert sp.simplify(eq.rhs("delta2").xreplace(back) - g_a2 * a2 * (1 - a2)) == 0
    assert sp.simplify(eq.rhs("dz1").xreplace(back) - a1 * (1 - a1)) == 0  # σ' via a
    assert eq.rhs("dz1") == a1 * sigmoid(-z1)


def test_tanh_derivative_through_output():
    eq = symnn.mlp([3, 4, 2], activation="tanh", loss="mse").equations()
    # tanh' is derived as sech²(z) (relative accuracy at large |z|, round 6): = 1 − (a⁽¹⁾)²
    from symnn.ops._tanh import sech2

    z1 = sp.Symbol("z1", real=True)
    assert eq.rhs("dz1") == sech2(z1)
    assert sp.simplify((1 - sp.tanh(z1) ** 2).xreplace({sp.tanh(z1): a1}) - (1 - a1**2)) == 0
    assert "tanh'(z⁽¹⁾) = 1 − tanh(z⁽¹⁾)² = sech²(z⁽¹⁾)" in str(eq)


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


def test_penalty_gradient_prints_one_coefficient():
    """Issue 11, item 5: 2·(1/1000)·W⁽¹⁾ reads as (1/500)·W⁽¹⁾."""
    net = symnn.mlp([2, 3, 1], activation="tanh", penalties=[symnn.L2(1e-3)])
    text = str(net.equations())
    assert "∂L/∂W⁽¹⁾ = ⟨δ⁽¹⁾ (x)ᵀ⟩ + (1/500)·W⁽¹⁾" in text
    assert "2·(1/1000)" not in text
    tex = net.equations().latex()
    assert r"+ \frac{1}{500} \, W^{(1)}" in tex and r"2 \cdot" not in tex
    odd = str(symnn.mlp([2, 1], penalties=[symnn.L2(0.0015)]).equations())
    assert "(3/1000)·W⁽¹⁾" in odd


def test_gradients_are_ordered_by_layer_weights_first():
    net = symnn.mlp([2, 3, 3, 2], "tanh", "softmax", "cross_entropy",
                    penalties=[symnn.L2(1e-3)])
    (grads,) = [eqs for title, eqs in net.equations().sections if title == "Gradients"]
    assert [e.name for e in grads] == ["gW1", "gb1", "gW2", "gb2", "gW3", "gb3"]


def test_custom_model_gradient_one_parameter_per_line():
    x, a, b, w = sp.symbols("x a b w", real=True)
    model = symnn.Model(a * sp.exp(-b * x) * sp.cos(w * x), inputs=[x], params=[a, b, w])
    eq = model.equations()
    lines = str(eq).splitlines()
    for p in "abw":
        (line,) = [ln for ln in lines if ln.strip().startswith(f"∂ℓ/∂{p} = ")]
        assert len(line) < 80, line
    assert "  ∂ℓ/∂θ = (∂ℓ/∂a, ∂ℓ/∂b, ∂ℓ/∂w)" in lines
    assert max(len(ln) for ln in lines) < 100
    g, x0, t1, t2 = sp.symbols("g_f_0 x_0 theta_1 theta_2", real=True)
    assert sp.simplify(eq.rhs("g_a") - g * sp.exp(-t1 * x0) * sp.cos(t2 * x0)) == 0
    assert "Model model: 1 input, 3 parameters" in str(eq)


def test_document_counts_and_penalty_header():
    from symnn.printing.document import export_markdown

    md = export_markdown(symnn.mlp([2, 3, 1], penalties=[symnn.L2(1e-3)]))
    assert "2 inputs, 1 output." in md and "1 outputs" not in md
    assert (r"L2 penalty $\frac{1}{1000}\,\left(\lVert W^{(1)}\rVert_2^2 + "
            r"\lVert W^{(2)}\rVert_2^2\right)$ on $W^{(1)}, W^{(2)}$ (the weight matrices; "
            "biases are not penalised)") in md
    assert r"\lVert\theta\rVert" not in md
    x, a, b = sp.symbols("x a b", real=True)
    model = symnn.Model(a * sp.exp(-b * x), inputs=[x], params=[a, b],
                        penalties=[symnn.L1(0.01, ["b"])])
    assert r"$\frac{1}{100}\,\left(\lvert b\rvert\right)$ on the parameters b" in \
        export_markdown(model)


def test_program_prints_readably():
    from symnn.derive import derive

    prog = derive(symnn.mlp([2, 3, 1], "tanh", "sigmoid", "bce",
                            penalties=[symnn.L2(1e-3)])).program
    text = str(prog)
    assert "Symbol(" not in text and "Map[" not in text
    lines = text.splitlines()
    assert lines[0] == "inputs:  x[2], y[1], W1[3, 2], b1[3], W2[1, 3], b2[1]"
    for line in ["z1[3] = W1·x + b1", "a1[3] = tanh(z1)   (elementwise)",
                 "g_a1[3] = W2ᵀ·delta2", "pen0 = (1/1000)·‖W1‖²"]:
        assert line in lines, line
    assert lines[-1].startswith("outputs: prediction = a2, loss = L, grad:W1 = gW1")
    # the cache key keeps its exact, machine-oriented form
    assert "Map[" in prog.fingerprint() and "Symbol(" in prog.fingerprint()


def test_scalar_factors_print_as_one_quotient():
    eq = symnn.mlp([2, 3, 1], activation="gelu").equations()
    assert "(sqrt(2)/sqrt(pi))·z⁽¹⁾ ⊙ exp(" in eq.line("dz1")
    assert "·1/sqrt(pi)" not in str(eq)
    # (GELU' = Φ(z) + z φ(z) since round 5: the ½ joins the quotient)
    assert r"\frac{\sqrt{2}}{2 \sqrt{\pi}} z^{(1)} \odot e^{" in eq.latex()


def test_fused_sigmoid_notes_name_the_loss_and_the_value_the_sigmoid_reads():
    stacked = symnn.Network([symnn.Dense(1, 1), "tanh", "sigmoid"], loss="bce").equations()
    assert "Sigmoid and binary cross-entropy are fused" in str(stacked)
    assert "u = a⁽¹⁾" in str(stacked)  # the tanh's output, not a logit z
    ce = symnn.mlp([2, 2], output="sigmoid", loss="cross_entropy").equations()
    assert "Sigmoid and cross-entropy are fused: ℓ = Σₖ yₖ softplus(−uₖ) with u = z⁽¹⁾" in str(ce)
    assert "KL divergence" in str(symnn.mlp([2, 2], output="sigmoid", loss="kl").equations())
