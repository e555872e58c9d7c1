"""Recurrent layers (RNN, GRU): compiled kernels against the NumPy reference, PyTorch
autograd (``torch.nn.RNN`` / ``torch.nn.GRU`` with the weights copied in) and finite
differences; the row ops' rules; truncated BPTT against ``.detach()``; the printed
equations and BPTT recursion; shape checks; spec and model files."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from _exactness import HAVE_TORCH, check_case, rel_err
from strategies import NetCase, case_data

import symnn
from symnn import ops as P
from symnn.codegen.model import ReferenceModel
from symnn.codegen.reference import evaluate
from symnn.derive.reverse import reverse
from symnn.derive.tangent import jvp
from symnn.errors import DeclarationError

# ----------------------------------------------------------------------------------------
# op level: the row ops' reverse and forward rules against central differences


def _v(name, kind, n):
    return P.Var(name, kind, (n,))


def _op_cases():
    x, g = _v("x", "input", 6), _v("g", "input", 2)
    h1, h2 = _v("h1", "input", 3), _v("h2", "input", 3)
    return [pytest.param(*c, id=c[0]) for c in [
        ("row", lambda o: P.RecRow(o, x, 1), (x,), 2),
        ("rowT", lambda o: P.RecRowT(o, g, 2), (g,), 6),
        ("stack", lambda o: P.RecStack(o, (h1, h2)), (h1, h2), 6),
    ]]


@pytest.mark.parametrize("label,make,ins,n", _op_cases())
def test_each_row_op_reverse_and_forward_rule_matches_central_differences(label, make, ins,
                                                                         n):
    rng = np.random.default_rng(len(label))
    B = 2
    b = P.Builder()
    out = b.emit(make(_v("o", "sample", n)))
    r = _v("r", "input", n)
    d = b.emit(P.Dot(_v("d", "sample", 1), out, r))
    L = b.emit(P.BatchMean(P.Var("L", "total", ()), d))
    forward = list(b.prog.ops)
    ct = reverse(b, L, list(ins), forward)
    dots = {v: _v(v.name + "_d", "sample", v.size) for v in ins}
    tan = jvp(b, forward, dots)
    env = {v: rng.normal(size=(B, v.size)) for v in (*ins, r)}
    dirs = {v: rng.normal(size=(B, v.size)) for v in ins}
    got = evaluate(list(b.prog.ops), {**env, **{dots[v]: dirs[v] for v in ins}})
    h = 1e-6
    for v in ins:
        fd = np.zeros_like(env[v])
        for i in range(env[v].size):
            e = np.zeros_like(env[v])
            e.flat[i] = h
            fd.flat[i] = (float(evaluate(forward, {**env, v: env[v] + e})[L])
                          - float(evaluate(forward, {**env, v: env[v] - e})[L])) / (2 * h)
        assert np.allclose(got[ct[v]], fd * B, atol=1e-7), (label, v)
    plus = evaluate(forward, {**env, **{v: env[v] + h * dirs[v] for v in ins}})[out]
    minus = evaluate(forward, {**env, **{v: env[v] - h * dirs[v] for v in ins}})[out]
    assert np.allclose(got[tan[out]], (plus - minus) / (2 * h), atol=1e-7), label


def test_a_deliberately_wrong_row_rule_fails_the_gradient_check():
    """The cotangent of a row put into the next row: a 2-layer stack carries the input
    cotangent of layer 2 into layer 1's gradient, and gradcheck catches it."""
    saved = P.VJP[P.RecRow]

    def wrong(b, o, g, active):
        if o.x not in active:
            return []
        rows = o.x.size // o.out.size
        return [(o.x, b.emit(P.RecRowT(b.temp(o.x.shape), g, (o.t + 1) % rows)))]

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(3, 3, 2)), rng.normal(size=(3, 1))

    def report(name):
        net = symnn.Network([symnn.RNN(2, 2, length=3, return_sequences=True),
                             symnn.RNN(2, 1)], loss="mse", name=name)
        m = ReferenceModel(net)  # the rule is the derivation's: no kernel to compile
        return symnn.gradcheck(m, m.init(0), X, Y, seed=0)

    assert report("rightrow").passed
    P.VJP[P.RecRow] = wrong
    try:
        assert not report("wrongrow").passed
    finally:
        P.VJP[P.RecRow] = saved


# ----------------------------------------------------------------------------------------
# networks: compiled = reference = PyTorch (nn.RNN / nn.GRU) for every kernel, and FD

_CASES = [
    NetCase((("rnn", 2, 2, "tanh", True, 2, None), ("gru", 2, 1, False, None, None),
             ("dense", 1, 2, True), "softmax"), "cross_entropy", (("l2", 0.1),)),
    NetCase((("rnn", 1, 2, "softplus", True, 2, None), ("rnn", 2, 2, "relu", False, None,
                                                         None), "tanh",
             ("dense", 2, 1, True)), "mse", (("l1", 0.05),)),
]


@pytest.mark.parametrize("case", _CASES, ids=["rnn-gru", "rnn-rnn"])
def test_recurrent_kernels_agree_with_reference_and_torch(case):
    """predict, jacobian, loss, gradient, HVP, GN product, Hessian to 1e-9 relative."""
    res = check_case(case, 3)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, res.failures[:3]
    assert ("hessian", "compiled~reference") in res.errors
    if HAVE_TORCH:
        assert ("hessian", "compiled~torch") in res.errors
        assert ("gnvp", "compiled~torch") in res.errors


def test_float32_kernels_compile_and_run():
    case = NetCase((("rnn", 1, 2, "tanh", True, 2, None), ("flatten",), ("dense", 4, 1, True)),
                   "mse")
    res = check_case(case, 1, torch_check=False, float32=True)
    assert not res.crash and res.ok, res.crash or res.failures[:3]


@pytest.fixture(scope="module")
def compiled():
    net = symnn.Network([symnn.GRU(2, 2, length=2, return_sequences=True),
                         symnn.RNN(2, 2), symnn.Dense(2, 1)], loss="mse", name="recfd")
    return net, net.compile()


def test_gradient_and_hvp_match_finite_differences(compiled):
    net, m = compiled
    rng = np.random.default_rng(0)
    th = m.init(0) + 0.1 * rng.normal(size=m.n_params)
    X, Y = rng.normal(size=(4, 2, 2)), rng.normal(size=(4, 1))
    _, g = m.loss_and_grad(th, X, Y)
    v = rng.normal(size=th.size)
    h = 1e-6
    fd = np.array([(m.loss(th + h * e, X, Y) - m.loss(th - h * e, X, Y)) / (2 * h)
                   for e in np.eye(th.size)])
    assert rel_err(g, fd) < 1e-7
    fdv = (m.loss_and_grad(th + h * v, X, Y)[1] - m.loss_and_grad(th - h * v, X, Y)[1]) / (2 * h)
    assert rel_err(m.hvp(th, v, X, Y), fdv) < 1e-6


def test_inputs_take_the_sequence_shape(compiled):
    net, m = compiled
    assert net.input_shape == (2, 2) and net.n_inputs == 4
    X = np.random.default_rng(1).normal(size=(2, 2, 2))
    th = m.init(0)
    assert np.array_equal(m.predict(th, X), m.predict(th, X.reshape(2, 4)))


# ----------------------------------------------------------------------------------------
# truncated BPTT against torch with .detach() at the same points

@pytest.mark.parametrize("item", [("rnn", 2, 2, "tanh", True, 4, 2),
                                  ("gru", 1, 2, False, 3, 2),
                                  ("rnn", 1, 2, "sigmoid", False, 3, 1)])
def test_truncated_bptt_matches_torch_detach(item):
    pytest.importorskip("torch")
    from _torch_ref import TorchCase

    tail = (("flatten",), ("dense", item[-2] * item[2], 1, True)) if item[-3] else (
        ("dense", item[2], 1, True),)
    case = NetCase((item,) + tail, "mse")
    net = case.build()
    m = net.compile()
    X, Y, th, v, V = case_data(net, 4, batch=3)
    _, g = m.loss_and_grad(th, X, Y)
    import torch
    from torch.func import grad

    tc = TorchCase(case, net)
    gt = grad(lambda t: tc.loss(t, torch.tensor(X), torch.tensor(Y)))(torch.tensor(th))
    assert rel_err(g, gt.numpy()) < 1e-9
    full = ReferenceModel(NetCase((item[:-1] + (None,),) + tail, "mse").build())
    assert rel_err(full.loss_and_grad(th, X, Y)[1], g) > 1e-6  # the truncation is real
    # the HVP is the exact derivative of the truncated gradient
    h = 1e-6
    fdv = (m.loss_and_grad(th + h * v, X, Y)[1] - m.loss_and_grad(th - h * v, X, Y)[1]) / (2 * h)
    assert rel_err(m.hvp(th, v, X, Y), fdv) < 1e-6


def test_truncation_points_are_counted_from_the_end():
    assert symnn.RNN(1, 1, length=7, truncate=3).cuts() == {4, 1}
    assert symnn.GRU(1, 1, length=3, truncate=3).cuts() == set()  # truncate = T: no cut
    with pytest.raises(symnn.DeclarationError, match="longer than the sequences"):
        symnn.GRU(1, 1, length=3, truncate=5)  # walk: refused, not a silent no-op


def test_clip_norm_works_in_a_fit_of_an_rnn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 4, 1))
    Y = X.sum(axis=1)
    net = symnn.Network([symnn.RNN(1, 3, length=4), symnn.Dense(3, 1)], loss="mse",
                        name="clipfit")
    res = symnn.fit(net, X, Y, optimizer=symnn.SGD(lr=0.1, clip_norm=0.5), epochs=20,
                    batch_size=16, seed=0)
    losses = res.history.loss
    assert losses[-1] < losses[0]


# ----------------------------------------------------------------------------------------
# printing: the unrolled equations and the BPTT recursion (derived, checked symbolically)

def _two_layer_rnn():
    return symnn.Network([symnn.RNN(2, 3, length=3, return_sequences=True),
                          symnn.RNN(3, 2, activation="sigmoid"), symnn.Dense(2, 1)],
                         loss="mse", name="rnn2")


def test_unrolled_equations_print_each_step():
    eq = _two_layer_rnn().equations()
    assert eq.line("z1_2") == "z⁽¹⁾₂ = u⁽¹⁾₂ + v⁽¹⁾₂"
    assert eq.line("v1_2") == "v⁽¹⁾₂ = W_hh⁽¹⁾ h⁽¹⁾₁"
    assert eq.line("u2_3") == "u⁽²⁾₃ = W_xh⁽²⁾ x⁽²⁾₃ + b⁽²⁾"
    assert eq.line("x2_3") == "x⁽²⁾₃ = H⁽¹⁾[3]"
    assert eq.line("delta1_1") == "δ⁽¹⁾₁ = ∇_h⁽¹⁾₁ℓ ⊙ tanh'(z⁽¹⁾₁)"
    assert "⟨δ⁽¹⁾₂ (h⁽¹⁾₁)ᵀ⟩" in eq.line("gW_hh1")


def test_bptt_recursion_of_a_two_layer_rnn_is_derived():
    eq = _two_layer_rnn().equations()
    W_hh1, W_xh2 = sp.MatrixSymbol("W_hh1", 3, 3), sp.MatrixSymbol("W_xh2", 2, 3)
    d1n, d2 = sp.MatrixSymbol("deltanext1", 3, 1), sp.MatrixSymbol("delta2", 2, 1)
    # layer 1 reads its gradient from layer 2's input weights (it feeds layer 2 its states)
    rhs = eq.rhs("bptt_delta1")
    assert rhs == sp.HadamardProduct(W_hh1.T * d1n + W_xh2.T * d2,
                                     sp.MatrixSymbol("dsigma1", 3, 1))
    z = sp.Symbol("z", real=True)
    assert sp.simplify(eq.rhs("bptt_dsigma1") - (1 - sp.tanh(z) ** 2)) == 0
    s = 1 / (1 + sp.exp(-z))
    for at in (-1.3, 0.2, 2.0):  # σ(z)(1 − σ(z)), as derived, is the derivative of σ
        got = float(eq.rhs("bptt_dsigma2").subs(z, at).evalf())
        assert abs(got - float(sp.diff(s, z).subs(z, at))) < 1e-14
    W_hh2 = sp.MatrixSymbol("W_hh2", 2, 2)
    g2, d2n = sp.MatrixSymbol("g2", 2, 1), sp.MatrixSymbol("deltanext2", 2, 1)
    assert eq.rhs("bptt_delta2") == sp.HadamardProduct(W_hh2.T * d2n + g2,
                                                        sp.MatrixSymbol("dsigma2", 2, 1))
    assert eq.rhs("bptt_gW_hh1") == sp.MatrixSymbol("delta1", 3, 1) * sp.MatrixSymbol(
        "hprev1", 3, 1).T
    assert eq.rhs("bptt_gW_xh2") == d2 * sp.MatrixSymbol("x2", 3, 1).T
    assert eq.rhs("bptt_gb1") == sp.MatrixSymbol("delta1", 3, 1)
    assert eq.line("bptt_gW_hh1") == "∂L/∂W_hh⁽¹⁾ = ⟨Σₜ δ⁽¹⁾ₜ h⁽¹⁾ₜ₋₁ᵀ⟩"
    assert "tanh'(z⁽¹⁾ₜ)" in eq.line("bptt_delta1")


def test_latex_document_with_an_rnn(tmp_path):
    import shutil

    from symnn.printing.document import compile_pdf, export_latex

    net = symnn.Network([symnn.RNN(1, 2, length=2, return_sequences=True, truncate=1),
                         symnn.GRU(2, 2), symnn.Dense(2, 1)], loss="mse")
    tex = export_latex(net, tmp_path / "rnn.tex")
    assert r"\delta^{(1)}_{t} &= \left({W_{hh}^{(1)}}^{\top} \delta^{(1)}_{t+1}" in tex
    assert "rnn (T = 2, sequence out)" in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not on PATH")
    assert compile_pdf(tmp_path / "rnn.tex").is_file()


# ----------------------------------------------------------------------------------------
# declarations: shapes, hostile values, spec and model files

@pytest.mark.parametrize("make,match", [
    (lambda: symnn.RNN(2, 0), "n_hidden must be an integer ≥ 1"),
    (lambda: symnn.GRU(2, 3, length=0), "length"),
    (lambda: symnn.RNN(2, 3, truncate=0), "truncate"),
    (lambda: symnn.RNN(2.5, 3), "n_in"),
    (lambda: symnn.RNN(2, 3, return_sequences="yes"), "return_sequences"),
    (lambda: symnn.RNN(2, 3, length=10 ** 6, unroll=True), "MAX_UNROLLED_STEPS"),  # scan
    (lambda: symnn.GRU(2, 3, length=10 ** 6, unroll=True), "MAX_UNROLLED_STEPS"),
    (lambda: symnn.GRU(2, 3, length=2 ** 21), "MAX_LOOPED_STEPS"),
    (lambda: symnn.Network([symnn.RNN(2, 3), symnn.Dense(3, 1)]), "length"),
    (lambda: symnn.Network([symnn.RNN(2, 3, length=4), symnn.Dense(4, 1)]), "n_in = 3"),
    (lambda: symnn.Network([symnn.RNN(2, 3, length=4), symnn.RNN(3, 2)]),
     "reads a \\(time, features\\) sequence"),
    (lambda: symnn.Network([symnn.RNN(2, 3, length=4, return_sequences=True),
                            symnn.GRU(2, 2), symnn.Dense(2, 1)]), "make n_in = 3"),
    (lambda: symnn.Network([symnn.RNN(2, 3, length=4, return_sequences=True),
                            symnn.Dense(3, 1)]), "Flatten"),
    (lambda: symnn.Network([symnn.Dense(2, 3), symnn.RNN(3, 2)]), "starts with"),
])
def test_hostile_declarations_are_refused_clearly(make, match):
    with pytest.raises(DeclarationError, match=match):
        make()


def test_length_is_inferred_from_the_dense_layer_after_a_flatten():
    net = symnn.Network([symnn.GRU(2, 3, return_sequences=True), symnn.Flatten(),
                         symnn.Dense(12, 1)])
    assert net.input_shape == (4, 2)


def test_wrong_input_shape_is_a_clear_error(compiled):
    net, m = compiled
    with pytest.raises(symnn.SymnnError, match="shape|inputs"):
        m.predict(m.init(0), np.zeros((2, 4, 2)))


def test_spec_and_model_file_round_trip(compiled, tmp_path):
    from symnn.spec import dumps_toml, loads_spec
    from symnn.train.io import load, save

    net, m = compiled
    plain = {k: v for k, v in net.spec().items() if k not in ("kind", "penalties")}
    back = loads_spec(dumps_toml({"network": plain})).declared
    assert back.layers == net.layers and back.input_shape == (2, 2)
    th = m.init(3)
    save(tmp_path / "m.json", m, th)
    loaded = load(tmp_path / "m.json")
    assert loaded.declared.layers == net.layers
    X = np.random.default_rng(3).normal(size=(2, 2, 2))
    assert np.allclose(loaded.predict(X), m.predict(th, X))
    rnn = symnn.Network([symnn.RNN(1, 2, activation="relu", length=3, truncate=2),
                         symnn.Dense(2, 1)])
    again = loads_spec(dumps_toml({"network": {"layers": rnn.spec()["layers"]}})).declared
    assert again.layers == rnn.layers


@pytest.mark.parametrize("layer,match", [
    ('{rnn = [2, 0], length = 3}', "n_in, n_hidden"),
    ('{gru = [2, 3], length = 0}', "length"),
    ('{gru = [2, 3], length = 3, nonlinearity = "relu"}', "unexpected keys"),
    ('{rnn = [2, 3], length = 3, nonlinearity = "nope"}', "nope"),
    ('{rnn = [2, 3], length = 3, return_sequences = 1}', "return_sequences"),
])
def test_spec_refusals(layer, match):
    from symnn.errors import SpecError
    from symnn.spec import loads_spec

    with pytest.raises(SpecError, match=match):
        loads_spec(f'[network]\nloss = "mse"\nlayers = [{layer}, {{dense = [3, 1]}}]\n')


def test_property_strategies_draw_recurrent_fronts():
    from hypothesis import find
    from strategies import net_cases

    case = find(net_cases(), lambda c: any(isinstance(i, tuple) and i[0] in ("rnn", "gru")
                                           for i in c.layers))
    net = case.build()
    assert case_data(net, 0)[0].shape[1] == net.n_inputs


# ----------------------------------------------------------------------------------------
# analysis: gradient flow through time, recurrent Jacobians, fixed points

@pytest.fixture(scope="module")
def long_rnn():
    net = symnn.Network([symnn.RNN(1, 3, length=10), symnn.Dense(3, 1)], loss="mse",
                        name="longrnn")
    return net, net.compile().reference


def test_time_gradient_flow_is_the_product_of_recurrent_jacobians(long_rnn):
    """∂ℓ/∂hₜ = J_{t+1}ᵀ ∂ℓ/∂h_{t+1} (one sample): the cotangents of the derived program
    against the Jacobians built from σ' and W_hh; and a small W_hh makes it vanish."""
    from symnn.analysis import recurrent_jacobians, time_gradient_flow
    from symnn.analysis.persample import evaluate_program

    net, ref = long_rnn
    rng = np.random.default_rng(0)
    th = ref.init(0) * 0.5
    X, y = rng.normal(size=(1, 10, 1)), np.ones((1, 1))
    flow = time_gradient_flow(ref, th, X, y)
    J, rho = recurrent_jacobians(ref, th, X[0])
    ev = evaluate_program(ref, th, X, y)
    g = np.asarray(ev.env[ev.derived.cotangent[
        next(op.out for op in ev.derived.forward_ops if op.out.name == "h1_10")]])[0]
    norms = [np.linalg.norm(g)]
    for t in range(9, 0, -1):
        g = J[t].T @ g
        norms.append(np.linalg.norm(g))
    assert np.allclose(flow.norms, norms[::-1], rtol=1e-10)
    assert flow.ratio < 1e-2 and np.all(rho < 1)
    assert "first/last" in str(flow)


def test_fixed_points_of_a_bistable_rnn():
    from symnn.analysis import fixed_points

    net = symnn.Network([symnn.RNN(1, 1, length=2), symnn.Dense(1, 1)], loss="mse")
    fps = fixed_points(net, {"W_hh1": np.array([[2.0]]), "b1": np.array([0.0])}, starts=12)
    assert len(fps) == 3
    zero, a, c = fps
    assert abs(zero.h[0]) < 1e-12 and not zero.stable and np.isclose(zero.eigenvalues[0], 2)
    for p in (a, c):
        assert abs(np.tanh(2 * p.h[0]) - p.h[0]) < 1e-12 and p.stable
        assert np.isclose(p.eigenvalues[0], 2 * (1 - np.tanh(2 * p.h[0]) ** 2))
    with pytest.raises(symnn.AnalysisError, match="RNN"):
        fixed_points(symnn.mlp([1, 1]), {})


def test_fit_with_truncated_bptt_skips_the_loss_checks_and_refuses_explicit_ones():
    """The truncated gradient is not the loss's gradient: the default fit trains without
    finite-difference checks, and an explicit check_every is refused with the reason."""
    net = symnn.Network([symnn.RNN(2, 3, length=4, truncate=2), symnn.Dense(3, 1)],
                        loss="mse")
    model = net.compile()
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 4, 2)), rng.normal(size=(16, 1))
    res = symnn.fit(model, X, y, "adam", epochs=3, batch_size=8, progress=False)
    assert np.all(np.isfinite(res.params))
    with pytest.raises(symnn.ArgumentError, match="truncate"):
        symnn.fit(model, X, y, "adam", epochs=1, progress=False, check_every=1)
