"""Convolutional layers (Conv1D, AvgPool1D, MaxPool1D, Flatten): the ops' rules against
central differences, the compiled kernels against the NumPy reference, PyTorch autograd
(``torch.nn.functional.conv1d`` / ``avg_pool1d`` / ``max_pool1d``) and finite differences,
the printed equations, the declaration's shape checks, spec and model files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import sympy as sp
from _exactness import HAVE_TORCH, check_case
from _oprules import check_forward_rule, check_reverse_rule, var
from strategies import NetCase, case_data

import symnn
from symnn import ops as P
from symnn.check import gradcheck
from symnn.errors import DeclarationError, DerivationError, ShapeError, SpecError

# ----------------------------------------------------------------------------------------
# op level: every reverse and forward rule of the conv and pool kits against central
# differences of the NumPy reference

G = P.Geom(2, 7, 3, 3, 2, 1)            # L_out = 4
G1 = P.Geom(2, 5, 2, 2, 1, 0)           # stride 1, no padding: L_out = 4
PL = P.Pool(2, 7, 3)                    # L_out = 2, a tail of 1 dropped


_v = var


def _op_cases():
    """(label, op builder, input Vars): each op on inputs of the kinds the derivation uses."""
    x, W = _v("x", "input", 14), _v("W", "param", (3, 2, 3))
    bb, h = _v("bb", "param", 3), _v("h", "input", 12)
    W1, x1, h1 = _v("W", "param", (2, 2, 2)), _v("x", "input", 10), _v("h", "input", 8)
    px, pv, ph = _v("x", "input", 14), _v("v", "input", 14), _v("h", "input", 4)
    cm, cb = _v("u", "input", 12), _v("c", "param", 3)
    return [pytest.param(*c, id=c[0]) for c in [
        ("conv", lambda o: P.Conv1D(o, W, x, bb, G), (W, x, bb), 12),
        ("conv_s1", lambda o: P.Conv1D(o, W1, x1, None, G1), (W1, x1), 8),
        ("convT", lambda o: P.ConvT1D(o, W, h, G), (W, h), 14),
        ("convT_s1", lambda o: P.ConvT1D(o, W1, h1, G1), (W1, h1), 10),
        ("convW", lambda o: P.ConvWMean(o, h, x, G), (h, x), (3, 2, 3)),
        ("chmean", lambda o: P.ChannelMean(o, cm, 3, 4), (cm,), (3,)),
        ("chbcast", lambda o: P.ChannelBcast(o, cb, 3, 4), (cb,), 12),
        ("avg", lambda o: P.AvgPool(o, px, PL), (px,), 4),
        ("avgT", lambda o: P.AvgPoolT(o, ph, PL), (ph,), 14),
        ("max", lambda o: P.MaxGather(o, px, px, PL), (px,), 4),
        ("gather", lambda o: P.MaxGather(o, px, pv, PL), (px, pv), 4),
        ("scatter", lambda o: P.MaxScatter(o, px, ph, PL), (px, ph), 14),
    ]]


@pytest.mark.parametrize("label,make,ins,out_shape", _op_cases())
def test_each_conv_op_reverse_rule_matches_central_differences(label, make, ins, out_shape):
    check_reverse_rule(label, make, ins, out_shape)


@pytest.mark.parametrize("label,make,ins,out_shape", _op_cases())
def test_each_conv_op_forward_rule_matches_central_differences(label, make, ins, out_shape):
    check_forward_rule(label, make, ins, out_shape)


def test_maxpool_routes_a_tie_to_the_first_maximum():
    x = np.array([[1.0, 3.0, 3.0, 2.0, 2.0, 0.0]])
    p = P.Pool(1, 6, 3)
    from symnn.ops.pool import maxgather_numpy, maxscatter_numpy

    assert maxgather_numpy(x, x, p).tolist() == [[3.0, 2.0]]
    assert maxscatter_numpy(x, np.array([[5.0, 7.0]]), p).tolist() == \
        [[0.0, 5.0, 0.0, 7.0, 0.0, 0.0]]


# ----------------------------------------------------------------------------------------
# networks: compiled = reference = PyTorch autograd (every kernel), and finite differences

_CASES = [
    NetCase((("conv", 2, 3, 3, 2, 1, 11), "tanh", ("maxpool", 2), ("conv", 3, 2, 2, 1, 0, None),
             ("avgpool", 2), ("flatten",), ("dense", 2, 3, True), "softmax"),
            "cross_entropy", (("l2", 0.1),)),
    NetCase((("conv", 1, 2, 3, 1, 1, 6), "sigmoid", ("avgpool", 3), ("flatten",),
             ("dense", 4, 2, True), "elu", ("dense", 2, 1, True)), "mse", (("l1", 0.05),)),
]


@pytest.mark.parametrize("case,seed", [(_CASES[0], 5), (_CASES[1], 3)])
def test_conv_network_kernels_agree_with_reference_and_torch(case, seed):
    """Every kernel (predict, jacobian, loss, gradient, HVP, GN product, Hessian) to 1e-9
    relative, against the NumPy reference and (where installed) PyTorch autograd."""
    res = check_case(case, seed)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, res.failures[:3]
    assert ("hessian", "compiled~reference") in res.errors
    if HAVE_TORCH:
        assert ("hessian", "compiled~torch") in res.errors
        assert ("gnvp", "compiled~torch") in res.errors


def test_conv_network_with_a_residual_block():
    """A Residual block after the Flatten: Dense layers inside it are numbered after the
    convolutions (W1 conv, W2 Dense, W3 inside the block, W4 output), and every kernel
    agrees with the reference and PyTorch."""
    case = NetCase((("conv", 1, 2, 3, 1, 0, 8), "tanh", ("flatten",), ("dense", 12, 4, True),
                    ("residual", (("dense", 4, 4, True), "tanh")), ("dense", 4, 1, True)),
                   "mse", (("l2", 0.1),))
    net = case.build()
    assert [n for n, _ in net.param_shapes] == ["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"]
    res = check_case(case, 2)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, res.failures[:3]
    assert ("hessian", "compiled~reference") in res.errors


def _net(**kw):
    return symnn.Network([symnn.Conv1D(2, 3, 3, stride=2, padding=1, length=9), "tanh",
                          symnn.MaxPool1D(2), symnn.Conv1D(3, 2, 2), "softplus",
                          symnn.Flatten(), symnn.Dense(2, 2), "softmax"],
                         loss="cross_entropy", **kw)


@pytest.fixture(scope="module")
def compiled():
    net = _net(name="convfd")
    return net, net.compile()


def test_conv_gradient_and_hvp_match_finite_differences(compiled):
    net, m = compiled
    rng = np.random.default_rng(0)
    theta = m.init(0) + 0.1 * rng.normal(size=m.n_params)
    X = rng.normal(size=(5, 2, 9))
    y = rng.integers(0, 2, size=5)
    assert gradcheck(m, theta, X, y)
    v = rng.normal(size=m.n_params)
    h = 1e-5
    fd = (m.loss_and_grad(theta + h * v, X, y)[1] - m.loss_and_grad(theta - h * v, X, y)[1])
    fd /= 2 * h
    assert np.allclose(m.hvp(theta, v, X, y), fd, rtol=1e-5, atol=1e-7)
    assert np.allclose(m.hvp(theta, v, X, y), m.reference.hvp(theta, v, X, y), rtol=1e-10,
                       atol=1e-13)


def test_three_d_inputs_are_the_flattened_rows_and_wrong_shapes_are_refused(compiled):
    net, m = compiled
    assert net.input_shape == (2, 9) and net.n_inputs == 18
    rng = np.random.default_rng(1)
    theta = m.init(1)
    X = rng.normal(size=(4, 2, 9))
    assert np.array_equal(m.predict(theta, X), m.predict(theta, X.reshape(4, 18)))
    with pytest.raises(ShapeError, match=r"\(channels, length\) = \(2, 9\)"):
        m.predict(theta, X.reshape(4, 9, 2))
    with pytest.raises(ShapeError, match="features"):
        m.predict(theta, rng.normal(size=(4, 17)))


def test_initialisation_uses_fan_in_of_channels_times_kernel(compiled):
    net = symnn.Network([symnn.Conv1D(3, 4, 5, length=20), "relu", symnn.Flatten(),
                         symnn.Dense(64, 1)])
    vals = net.layers[0].initial_values(1, np.random.default_rng(0), "relu")
    W = vals["W1"]
    assert W.shape == (4, 3, 5) and np.all(vals["b1"] == 0)
    a = np.sqrt(6 / 15)  # He-uniform, fan_in = 3·5
    assert np.abs(W).max() <= a and np.abs(W).max() > 0.8 * a


def test_lipschitz_bound_holds(compiled):
    from symnn.analysis.lipschitz import lipschitz_bound

    net, m = compiled
    rng = np.random.default_rng(2)
    theta = m.init(2) + 0.3 * rng.normal(size=m.n_params)
    rep = lipschitz_bound(m, theta, rng.normal(size=(20, 18)))
    assert rep.empirical <= rep.bound
    names = [f.name for f in rep.factors]
    assert "W1" in names and "MaxPool1D(2)" in names


# ----------------------------------------------------------------------------------------
# declaration: the shapes must chain, with errors that name the layer


@pytest.mark.parametrize("layers,match", [
    (lambda: [symnn.Conv1D(1, 2, 3, length=8), symnn.Dense(12, 1)],
     r"layer 1 \(Dense.*Flatten"),
    (lambda: [symnn.Conv1D(1, 2, 3, length=4), symnn.Conv1D(2, 1, 3), symnn.Flatten(),
              symnn.Dense(1, 1)], r"layer 1 .*kernel \(3\) is longer than the padded input"),
    (lambda: [symnn.Conv1D(1, 2, 3, length=8), symnn.Conv1D(3, 1, 2), symnn.Flatten(),
              symnn.Dense(5, 1)], r"layer 1 \(Conv1D\(3, 1, 2\)\) takes 3 channels"),
    (lambda: [symnn.Conv1D(1, 2, 3, length=4), symnn.MaxPool1D(3), symnn.Flatten(),
              symnn.Dense(2, 1)], r"layer 1 \(MaxPool1D\(3\)\): the window"),
    (lambda: [symnn.Dense(4, 4), symnn.Conv1D(1, 2, 2)], r"starts with a Conv1D"),
    (lambda: [symnn.Conv1D(1, 2, 2, padding=1), symnn.AvgPool1D(2), symnn.Flatten(),
              symnn.Dense(4, 1)], r"input lengths \[\d+, \d+\].*length="),
    (lambda: [symnn.Conv1D(1, 2, 2, length=5), symnn.Conv1D(2, 2, 2, length=7),
              symnn.Flatten(), symnn.Dense(6, 1)], r"declared for inputs of length 7"),
    (lambda: [symnn.Conv1D(1, 2, 3, length=8)], r"end with symnn.Flatten"),
])
def test_shapes_that_do_not_chain_are_refused(layers, match):
    with pytest.raises(DeclarationError, match=match):
        symnn.Network(layers(), loss="mse")


def test_the_input_length_is_inferred_when_one_fits():
    net = symnn.Network([symnn.Conv1D(1, 2, 3), "relu", symnn.Flatten(), symnn.Dense(10, 1)])
    assert net.input_shape == (1, 7) and net.layers[0].length == 7


def test_bad_layer_arguments_are_refused():
    with pytest.raises(DeclarationError, match="kernel_size"):
        symnn.Conv1D(1, 2, 0)
    with pytest.raises(DeclarationError, match="padding"):
        symnn.Conv1D(1, 2, 2, padding=-1)
    with pytest.raises(DeclarationError, match="size"):
        symnn.MaxPool1D(0)
    with pytest.raises(DeclarationError, match=r"kernel \(5\) is longer"):
        symnn.Conv1D(1, 2, 5, length=3)


# ----------------------------------------------------------------------------------------
# printed equations: the textbook form, checked symbolically; LaTeX compiles


def test_conv_equations_read_like_a_textbook():
    net = symnn.Network([symnn.Conv1D(1, 2, 3, padding=1, length=6), "tanh",
                         symnn.AvgPool1D(2), symnn.Conv1D(2, 2, 2), symnn.Flatten(),
                         symnn.Dense(4, 1)], loss="mse")
    text = str(net.equations())
    assert "z⁽¹⁾[c,t] = Σ_{c′,k} W⁽¹⁾[c,c′,k] x[c′, t + k − 1] + b⁽¹⁾[c]" in text
    assert "p⁽¹.²⁾[c,t] = (1/2) Σ_{j<2} a⁽¹⁾[c, 2t + j]" in text
    # the input gradient of the second convolution: a correlation with the flipped kernel
    assert "[c′,u] = Σ_{c,j} W⁽²⁾[c,c′,1−j] δ⁽²⁾[c, u + j − 1]" in text
    assert "∂L/∂W⁽¹⁾[c,c′,k] = ⟨Σ_t δ⁽¹⁾[c,t] x[c′, t + k − 1]⟩" in text
    assert "∂L/∂b⁽²⁾[c] = ⟨Σ_t δ⁽²⁾[c,t]⟩" in text


def test_conv_gradient_is_the_textbook_formula_symbolically():
    """Conv1D(1, 1, 2) on length 3, then Dense(2, 1), MSE: z[t] = W₀x[t] + W₁x[t+1] + b,
    ŷ = V z + c, and ∂ℓ/∂W_k = 2(ŷ − y) Σ_t V_t x[t + k]; ∂ℓ/∂x from the flipped kernel."""
    net = symnn.Network([symnn.Conv1D(1, 1, 2, length=3), symnn.Flatten(), symnn.Dense(2, 1)],
                        loss="mse")
    g = net.gradient()
    x = sp.symbols("x1:4", real=True)
    W0, W1, b = sp.symbols("W1_111 W1_112 b1_1", real=True)
    V0, V1, c = sp.symbols("W2_11 W2_12 b2_1", real=True)
    y = sp.Symbol("y1", real=True)
    z = [W0 * x[t] + W1 * x[t + 1] + b for t in range(2)]
    err = 2 * (V0 * z[0] + V1 * z[1] + c - y)
    want = {W0: err * (V0 * x[0] + V1 * x[1]), W1: err * (V0 * x[1] + V1 * x[2]),
            b: err * (V0 + V1)}
    for s, e in want.items():
        got = g[str(s)]
        names = {str(f): f for f in got.free_symbols}
        e = e.xreplace({f: names.get(str(f), f) for f in e.free_symbols})
        assert sp.expand(got - e) == 0, s
    J = net.jacobian()
    # ∂ŷ/∂x[u] = Σ_t V_t W[u − t]: the flipped kernel
    jw = [V0 * W0, V0 * W1 + V1 * W0, V1 * W1]
    for u in range(3):
        names = {str(f): f for f in J[0, u].free_symbols}
        e = jw[u].xreplace({f: names.get(str(f), f) for f in jw[u].free_symbols})
        assert sp.expand(J[0, u] - e) == 0


def test_maxpool_expanded_forms_need_numbers():
    net = symnn.Network([symnn.Conv1D(1, 1, 2, length=3), symnn.MaxPool1D(2), symnn.Flatten(),
                         symnn.Dense(1, 1)], loss="mse")
    with pytest.raises(DerivationError, match="argmax"):
        net.gradient()


def test_conv_latex_document(tmp_path):
    from symnn.printing.document import compile_pdf, export_latex

    net = symnn.Network([symnn.Conv1D(1, 2, 3, padding=1, length=6), "relu",
                         symnn.MaxPool1D(2), symnn.Conv1D(2, 2, 2, stride=2), symnn.Flatten(),
                         symnn.Dense(2, 1)], loss="mse")
    tex = export_latex(net, tmp_path / "conv.tex")
    assert r"{z^{(1)}}_{c,t} &= \sum_{c',k} W^{(1)}_{c,c',k}\, x_{c',\,t + k - 1}" in tex
    assert r"conv1d (stride 2, padding 0)" in tex
    assert r"\max_{0 \le j < 2}" in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not on PATH")
    assert compile_pdf(tmp_path / "conv.tex").is_file()


# ----------------------------------------------------------------------------------------
# spec files and model files


def test_spec_round_trip_and_refusals():
    from symnn.spec import dumps_toml, loads_spec

    net = _net()
    plain = {k: v for k, v in net.spec().items() if k not in ("kind", "penalties")}
    back = loads_spec(dumps_toml({"network": plain})).declared
    assert back.layers == net.layers and back.input_shape == (2, 9)
    bad = ('[network]\nloss = "mse"\nlayers = [{conv1d = [1, 2, 3], stride = 0, length = 8}, '
           '{flatten = true}, {dense = [12, 1]}]\n')
    with pytest.raises(SpecError, match="stride"):
        loads_spec(bad)
    with pytest.raises(SpecError, match="stride belongs to a conv1d"):
        loads_spec('[network]\nlayers = [{dense = [2, 1], stride = 2}]\n')
    with pytest.raises(SpecError, match="max_pool1d"):
        loads_spec('[network]\nlayers = [{conv1d = [1, 2, 3], length = 8}, '
                   '{max_pool1d = "2"}, {flatten = true}, {dense = [6, 1]}]\n')


def test_model_file_round_trip(compiled, tmp_path):
    from symnn.train.io import load, save

    net, m = compiled
    theta = m.init(3)
    save(tmp_path / "m.json", m, theta)
    back = load(tmp_path / "m.json")
    assert back.declared.layers == net.layers
    X = np.random.default_rng(3).normal(size=(2, 2, 9))
    assert np.allclose(back.predict(X), m.predict(theta, X))


def test_property_strategies_draw_conv_fronts():
    from hypothesis import find
    from strategies import net_cases

    case = find(net_cases(), lambda c: any(isinstance(i, tuple) and i[0] == "conv"
                                           for i in c.layers))
    X = case_data(case.build(), 0)[0]
    assert X.shape[1] == case.build().n_inputs
