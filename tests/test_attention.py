"""SelfAttention (issue 13): the attention ops' rules against central differences, the
compiled kernels against the NumPy reference, PyTorch autograd
(``torch.nn.functional.scaled_dot_product_attention``) and finite differences, the printed
equations checked symbolically, the declaration's checks, spec and model files."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from _exactness import HAVE_TORCH, check_case, rel_err
from _oprules import check_forward_rule, check_reverse_rule, var
from strategies import NetCase

import symnn
from symnn import ops as P
from symnn.errors import DeclarationError, SpecError

# ----------------------------------------------------------------------------------------
# op level: every reverse and forward rule of the attention kit against central differences
# of the NumPy reference

R = P.RowDims(3, 3)
RC = P.RowDims(3, 3, causal=True)


_v = var


def _mm_cases():
    """AttnMatMul in every transpose combination, with a parameter or per-sample factor,
    scaled, and as a batch mean."""
    out = []
    for ta in (False, True):
        for tb in (False, True):
            d = P.MatDims(3, 2, 4, ta, tb, 2 if ta == tb else 1)
            a_s, b_s = _v("a", "input", 6), _v("b", "input", 8)
            a_p, b_p = _v("a", "param", d.a_shape), _v("b", "param", d.b_shape)
            tag = f"{'T' if ta else 'N'}{'T' if tb else 'N'}"
            out += [
                (f"mm_ss_{tag}", lambda o, d=d, a=a_s, b=b_s: P.AttnMatMul(o, a, b, d),
                 (a_s, b_s), 12),
                (f"mm_sp_{tag}", lambda o, d=d, a=a_s, b=b_p: P.AttnMatMul(o, a, b, d),
                 (a_s, b_p), 12),
                (f"mm_ps_{tag}", lambda o, d=d, a=a_p, b=b_s: P.AttnMatMul(o, a, b, d),
                 (a_p, b_s), 12),
            ]
            dm = P.MatDims(3, 2, 4, ta, tb, 3, True)
            out.append((f"mm_mean_{tag}",
                        lambda o, d=dm, a=a_s, b=b_s: P.AttnMatMul(o, a, b, d),
                        (a_s, b_s), (3, 4)))
    return out


def _op_cases():
    z, g, u, s = _v("z", "input", 9), _v("g", "input", 9), _v("u", "input", 9), \
        _v("s", "input", 3)
    cases = _mm_cases() + [
        ("softmax", lambda o: P.AttnSoftmax(o, z, R), (z,), 9),
        ("softmax_causal", lambda o: P.AttnSoftmax(o, z, RC), (z,), 9),
        ("softmaxT", lambda o: P.AttnSoftmaxT(o, z, g, R), (z, g), 9),
        ("rowdot", lambda o: P.AttnRowDot(o, u, g, R), (u, g), 3),
        ("rowdot_same", lambda o: P.AttnRowDot(o, u, u, R), (u,), 3),
        ("rowscale", lambda o: P.AttnRowScale(o, u, s, R), (u, s), 9),
    ]
    return [pytest.param(*c, id=c[0]) for c in cases]


@pytest.mark.parametrize("label,make,ins,out_shape", _op_cases())
def test_each_attention_op_reverse_rule_matches_central_differences(label, make, ins,
                                                                     out_shape):
    check_reverse_rule(label, make, ins, out_shape)


@pytest.mark.parametrize("label,make,ins,out_shape", _op_cases())
def test_each_attention_op_forward_rule_matches_central_differences(label, make, ins,
                                                                    out_shape):
    check_forward_rule(label, make, ins, out_shape)


# ----------------------------------------------------------------------------------------
# networks: compiled = reference = PyTorch autograd (every kernel, 1e-9 relative in float64;
# float32 compiled and run), and finite differences

_CASES = {
    "attn_flatten_dense": NetCase((("attn", 3, 2, False, 4), "tanh", ("flatten",),
                                   ("dense", 12, 2, True), "softmax"), "cross_entropy",
                                  (("l2", 0.1),)),
    "residual": NetCase((("residual", (("attn", 2, 1, False, 3),)), ("flatten",),
                         ("dense", 6, 2, True)), "mse", (("l1", 0.05),)),
    "residual_causal_stack": NetCase((("attn", 2, 2, True, 3),
                                      ("residual", (("attn", 2, 3, True, 3), "tanh")),
                                      ("flatten",), ("dense", 6, 1, True)), "mse"),
}


@pytest.mark.parametrize("name", sorted(_CASES))
def test_attention_network_kernels_agree_with_reference_and_torch(name):
    """predict, jacobian, loss, gradient, HVP, GN product, Hessian: compiled = NumPy
    reference = torch (scaled_dot_product_attention) to 1e-9; float32 within its bounds."""
    for seed in (3, 8):   # 8 draws a batch of 9: the BLAS paths of the projections
        res = check_case(_CASES[name], seed, float32=name == "attn_flatten_dense")
        assert not res.rejected and not res.crash, res.rejected or res.crash
        assert res.ok, res.failures[:3]
        assert ("hessian", "compiled~reference") in res.errors
        if HAVE_TORCH:
            assert ("hessian", "compiled~torch") in res.errors
            assert ("gnvp", "compiled~torch") in res.errors


def test_a_wrong_softmax_rule_is_caught_by_the_witnesses(monkeypatch):
    """The softmax Jacobian with its row sum dropped (a plausible slip) fails the torch and
    finite-difference witnesses; the reference alone would agree with it."""
    pytest.importorskip("torch")
    from _torch_ref import TorchCase

    case = NetCase((("attn", 2, 3, True, 3), ("flatten",), ("dense", 6, 1, True)), "mse")
    good = case.build().compile()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 6))
    Y = rng.normal(size=(3, 1))
    th = rng.normal(size=good.n_params)
    want = TorchCase(case, case.build()).results(th, X, Y, th, th[None])["grad"]
    assert rel_err(good.loss_and_grad(th, X, Y)[1], want) < 1e-9

    def wrong(b, o, g, active):
        if o.z not in active or not isinstance(g, P.Var):
            return []
        ps, gs = P.sym(o.out), P.sym(g)
        return [(o.z, b.emit(P.Map(b.temp(o.z.shape), (ps * gs,),
                                   (P.Arg(ps, o.out), P.Arg(gs, g)))))]

    monkeypatch.setitem(P.VJP, P.AttnSoftmax, wrong)
    bad = symnn.Network(case.build().layers, loss="mse", name="attn_wrong").compile()
    assert rel_err(bad.loss_and_grad(th, X, Y)[1], want) > 1e-3
    from symnn.check import gradcheck

    assert not gradcheck(bad, th, X, Y)


@pytest.fixture(scope="module")
def compiled():
    net = symnn.Network([symnn.SelfAttention(2, 2, causal=True), "tanh",
                         symnn.Residual([symnn.SelfAttention(2, 1)]), symnn.Flatten(),
                         symnn.Dense(6, 2), "softmax"], loss="cross_entropy", name="attnfd")
    return net, net.compile()


def test_gradient_hvp_gn_and_hessian_match_finite_differences(compiled):
    from symnn.check import gradcheck

    net, m = compiled
    assert net.input_shape == (3, 2)   # T inferred from the Dense layer
    rng = np.random.default_rng(0)
    theta = m.init(0) + 0.3 * rng.normal(size=m.n_params)
    X = rng.normal(size=(4, 3, 2))
    y = rng.integers(0, 2, size=4)
    assert gradcheck(m, theta, X, y)
    h = 1e-5

    def dgrad(v):
        return (m.loss_and_grad(theta + h * v, X, y)[1]
                - m.loss_and_grad(theta - h * v, X, y)[1]) / (2 * h)

    v = rng.normal(size=m.n_params)
    assert np.allclose(m.hvp(theta, v, X, y), dgrad(v), rtol=1e-5, atol=1e-7)
    H = m.hessian(theta, X, y)
    fdH = np.stack([dgrad(e) for e in np.eye(m.n_params)])
    assert np.allclose(H, fdH, rtol=1e-5, atol=1e-7)
    assert np.allclose(H, m.reference.hessian(theta, X, y), rtol=1e-10, atol=1e-13)
    # Gauss-Newton: against the reference here, against torch in the network cases above
    ref = m.reference
    assert np.allclose(m.gnvp(theta, v, X, y), ref.gnvp(theta, v, X, y), rtol=1e-10,
                       atol=1e-13)


def test_three_d_inputs_are_the_flattened_rows_and_wrong_shapes_are_refused(compiled):
    from symnn.errors import ShapeError

    net, m = compiled
    theta = m.init(1)
    X = np.random.default_rng(1).normal(size=(4, 3, 2))
    assert np.array_equal(m.predict(theta, X), m.predict(theta, X.reshape(4, 6)))
    with pytest.raises(ShapeError):
        m.predict(theta, X.reshape(4, 2, 3))


def test_initial_weights_are_glorot_uniform():
    vals = symnn.SelfAttention(6, 2).initial_values(3, np.random.default_rng(0))
    assert sorted(vals) == ["Wk3", "Wo3", "Wq3", "Wv3"]
    assert vals["Wo3"].shape == (6, 2) and vals["Wq3"].shape == (2, 6)
    a = np.sqrt(6 / 8)
    assert all(0.5 * a < np.abs(w).max() <= a for w in vals.values())


# ----------------------------------------------------------------------------------------
# declaration: bad arguments and shapes that do not chain, with errors that name the layer


@pytest.mark.parametrize("make,match", [
    (lambda: symnn.SelfAttention(0, 2), r"d_model must be an integer ≥ 1, got 0"),
    (lambda: symnn.SelfAttention(3, True), r"d_k must be an integer"),
    (lambda: symnn.SelfAttention(3, 2.0), r"d_k must be an integer"),
    (lambda: symnn.SelfAttention(3, 2, causal="yes"), r"causal must be True or False"),
    (lambda: symnn.SelfAttention(3, 2, length=0), r"length must be an integer ≥ 1"),
    (lambda: symnn.Network([symnn.SelfAttention(3, 2, length=4), symnn.Dense(12, 1)]),
     r"layer 1 \(Dense.*Flatten"),
    (lambda: symnn.Network([symnn.Dense(4, 4), symnn.SelfAttention(2, 1)]),
     r"layer 1 \(SelfAttention\(2, 1\)\) needs .* starts with a Conv1D or a sequence layer"),
    (lambda: symnn.Network([symnn.SelfAttention(3, 2, length=4), symnn.SelfAttention(2, 2),
                            symnn.Flatten(), symnn.Dense(8, 1)]),
     r"layer 1 \(SelfAttention\(2, 2\)\) takes 2 features per step but the layer before "
     r"it gives 3; make d_model = 3"),
    (lambda: symnn.Network([symnn.SelfAttention(3, 2, length=4),
                            symnn.SelfAttention(3, 2, length=5), symnn.Flatten(),
                            symnn.Dense(12, 1)]), r"declared for sequences of length 5"),
    (lambda: symnn.Network([symnn.SelfAttention(3, 2, length=4)]), r"end with symnn.Flatten"),
    (lambda: symnn.Network([symnn.SelfAttention(3, 2), symnn.Flatten()]),
     r"cannot be inferred.*length=L"),
    (lambda: symnn.Network([symnn.SelfAttention(3, 2), symnn.Flatten(), symnn.Dense(10, 1)]),
     r"no input length fits .*SelfAttention\(..., length=L\)"),
    (lambda: symnn.Network([symnn.SelfAttention(3, 2, length=2), symnn.Flatten(),
                            symnn.SelfAttention(3, 2), symnn.Dense(6, 1)]),
     r"layer 2 .*reads a \(T, d_model\) sequence value"),
    (lambda: symnn.Residual([symnn.SelfAttention(3, 2), symnn.Dense(3, 3)]),
     r"inner layer 1 .* does not take a sequence value"),
    (lambda: symnn.Residual([symnn.Dense(12, 12), symnn.SelfAttention(3, 2, length=4)]),
     r"inner layer 1 \(SelfAttention\(3, 2, length=4\)\) reads a \(T, d\) sequence value"),
    (lambda: symnn.Network([symnn.SelfAttention(3, 2, length=2),
                            symnn.Residual([symnn.SelfAttention(3, 2), symnn.Flatten()]),
                            symnn.Flatten(), symnn.Dense(6, 1)]),
     r"layer 1 .*the inner layers map \(2, 3\) to \(6,\)"),
])
def test_hostile_declarations_are_refused_clearly(make, match):
    with pytest.raises(DeclarationError, match=match):
        make()


def test_parameter_names_roles_and_numbering():
    net = symnn.Network([symnn.SelfAttention(2, 1, length=3), symnn.Flatten(),
                         symnn.Dense(6, 4), "tanh", symnn.Residual([symnn.Dense(4, 4)]),
                         symnn.Dense(4, 1)])
    names = [n for n, _ in net.param_shapes]
    assert names == ["Wq1", "Wk1", "Wv1", "Wo1", "W2", "b2", "W3", "b3", "W4", "b4"]
    from symnn.declare.layers import param_roles, role_of_name

    assert {param_roles(net)[n] for n in names[:4]} == {"weight"}
    assert role_of_name("Wo7") == ("weight", 7) and role_of_name("Wx1") is None


# ----------------------------------------------------------------------------------------
# printed equations: the textbook form, checked symbolically; LaTeX compiles


def test_attention_equations_read_like_a_textbook():
    net = symnn.Network([symnn.SelfAttention(2, 4, causal=True, length=3), symnn.Flatten(),
                         symnn.Dense(6, 1)], loss="mse")
    text = str(net.equations())
    for line in ["Q⁽¹⁾ = x (W_q⁽¹⁾)ᵀ", "S⁽¹⁾ = (1/√4) Q⁽¹⁾ (K⁽¹⁾)ᵀ",
                 "A⁽¹⁾ = softmax_row(S⁽¹⁾ + M)   (M[t,u] = −∞ for u > t: causal mask)",
                 "O⁽¹⁾ = A⁽¹⁾ V⁽¹⁾", "z⁽¹⁾ = O⁽¹⁾ (W_o⁽¹⁾)ᵀ",
                 # backward: ∂ℓ/∂O = Ḡ W_o, ∂ℓ/∂V = Aᵀ Ḡ_O, ∂ℓ/∂A = Ḡ_O Vᵀ, the softmax
                 "∇_O⁽¹⁾ℓ = δ⁽¹⁾ W_o⁽¹⁾", "∇_V⁽¹⁾ℓ = (A⁽¹⁾)ᵀ ∇_O⁽¹⁾ℓ",
                 "∇_A⁽¹⁾ℓ = ∇_O⁽¹⁾ℓ (V⁽¹⁾)ᵀ",
                 "∇_S⁽¹⁾ℓ = A⁽¹⁾ ⊙ (∇_A⁽¹⁾ℓ − rowsum(∇_A⁽¹⁾ℓ ⊙ A⁽¹⁾))",
                 "∇_Q⁽¹⁾ℓ = (1/√4) ∇_S⁽¹⁾ℓ K⁽¹⁾", "∇_K⁽¹⁾ℓ = (1/√4) (∇_S⁽¹⁾ℓ)ᵀ Q⁽¹⁾",
                 "∂L/∂W_q⁽¹⁾ = ⟨(∇_Q⁽¹⁾ℓ)ᵀ x⟩", "∂L/∂W_o⁽¹⁾ = ⟨(δ⁽¹⁾)ᵀ O⁽¹⁾⟩"]:
        assert line in text, line


@pytest.mark.parametrize("causal", [False, True])
def test_attention_gradient_is_the_textbook_formula_symbolically(causal):
    """T = 2, d_model = d_k = 1, then Dense(2, 1) and MSE: every derived gradient equals the
    derivative of the attention written out by hand, exactly (sympy.simplify)."""
    net = symnn.Network([symnn.SelfAttention(1, 1, causal=causal, length=2), symnn.Flatten(),
                         symnn.Dense(2, 1)], loss="mse")
    g = net.gradient()
    S = {str(s): s for e in g.values() for s in e.free_symbols}
    x = [S["x1"], S["x2"]]
    wq, wk, wv, wo = S["Wq1_11"], S["Wk1_11"], S["Wv1_11"], S["Wo1_11"]
    c, b, y = [S["W2_11"], S["W2_12"]], S["b2_1"], S["y1"]
    z = []
    for t in range(2):
        n = t + 1 if causal else 2
        e = [sp.exp(wq * x[t] * wk * x[u]) for u in range(n)]
        z.append(wo * sum(e[u] * wv * x[u] for u in range(n)) / sum(e))
    ell = (c[0] * z[0] + c[1] * z[1] + b - y) ** 2
    for name, s in [("Wq1_11", wq), ("Wk1_11", wk), ("Wv1_11", wv), ("Wo1_11", wo),
                    ("W2_11", c[0])]:
        assert sp.simplify(g[name] - sp.diff(ell, s)) == 0, name


def test_attention_latex_document(tmp_path):
    import shutil

    from symnn.printing.document import compile_pdf, export_latex

    net = symnn.Network([symnn.SelfAttention(2, 2, causal=True, length=3), "tanh",
                         symnn.Flatten(), symnn.Dense(6, 1)], loss="mse")
    tex = export_latex(net, tmp_path / "attn.tex")
    assert r"\operatorname{softmax}_{\mathrm{row}}\left(S^{(1)} + M\right)" in tex
    assert (r"\nabla_{S^{(1)}}\ell &= A^{(1)} \odot \left(\nabla_{A^{(1)}}\ell - "
            r"\operatorname{rowsum}\left(\nabla_{A^{(1)}}\ell \odot A^{(1)}\right)\right)") in tex
    assert "self-attention (causal)" in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not on PATH")
    assert compile_pdf(tmp_path / "attn.tex").is_file()


# ----------------------------------------------------------------------------------------
# spec files and model files


def test_spec_round_trip_and_refusals():
    from symnn.spec import dumps_toml, loads_spec

    net = symnn.Network([symnn.SelfAttention(3, 2, causal=True), "tanh",
                         symnn.Residual([symnn.SelfAttention(3, 1)]), symnn.Flatten(),
                         symnn.Dense(12, 1)], loss="mse")
    plain = {k: v for k, v in net.spec().items() if k not in ("kind", "penalties")}
    back = loads_spec(dumps_toml({"network": plain})).declared
    assert back.layers == net.layers and back.input_shape == (4, 3)
    for bad, match in [
        ("{self_attention = [3, 0], length = 4}", "d_model, d_k"),
        ("{self_attention = [3, 2], causal = 1, length = 4}", "causal: expected true or false"),
        ("{self_attention = [3, 2], length = -4}", "length: expected an integer"),
        ("{self_attention = [3, 2], stride = 2, length = 4}", "unexpected keys"),
        ("{dense = [3, 2], causal = true}", "causal belongs to a self_attention layer"),
    ]:
        with pytest.raises(SpecError, match=match):
            loads_spec(f"[network]\nlayers = [{bad}, {{flatten = true}}, "
                       "{dense = [12, 1]}]\n")


def test_model_file_round_trip(compiled, tmp_path):
    from symnn.train.io import load, save

    net, m = compiled
    theta = m.init(3)
    save(tmp_path / "m.json", m, theta)
    back = load(tmp_path / "m.json")
    assert back.declared.layers == net.layers
    X = np.random.default_rng(3).normal(size=(2, 3, 2))
    assert np.allclose(back.predict(X), m.predict(theta, X))


def test_property_strategies_draw_attention_fronts():
    from hypothesis import find
    from strategies import case_data, net_cases

    case = find(net_cases(), lambda c: any(
        isinstance(i, tuple) and (i[0] == "attn" or (i[0] == "residual" and any(
            isinstance(j, tuple) and j[0] == "attn" for j in i[1]))) for i in c.layers))
    X = case_data(case.build(), 0)[0]
    assert X.shape[1] == case.build().n_inputs


# ----------------------------------------------------------------------------------------
# analysis: per-sample gradients are the gradients of one-sample batches; K-FAC refuses


def test_per_sample_gradients_and_kfac_refusal(compiled):
    from symnn.analysis.kfac import kfac_factors
    from symnn.analysis.persample import per_sample_gradients
    from symnn.errors import AnalysisError

    net, m = compiled
    rng = np.random.default_rng(4)
    theta = m.init(4)
    X, y = rng.normal(size=(3, 6)), rng.integers(0, 2, size=3)
    G = per_sample_gradients(m, theta, X, y)
    one = np.stack([m.loss_and_grad(theta, X[i:i + 1], y[i:i + 1])[1] for i in range(3)])
    assert np.allclose(G, one, rtol=1e-12, atol=1e-14)
    with pytest.raises(AnalysisError, match="Wq1 is a weight of a SelfAttention layer"):
        kfac_factors(m, theta, X, y)
