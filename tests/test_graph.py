"""Graphs (``symnn.Graph``): the Concat/Slice rules against central differences; networks
holding graphs compiled = NumPy reference = PyTorch autograd (loss, gradient, HVP, GN
product, Hessian, Jacobian) = finite differences; the expanded SymPy forms; the printed
equations (topological order, the summed cotangent of a node read twice); the
declaration's checks; spec and model files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp
from _exactness import HAVE_TORCH, check_case
from strategies import NetCase, case_data

import symnn
from symnn import ops as P
from symnn.check import gradcheck, hesscheck
from symnn.codegen.reference import evaluate
from symnn.declare.layers import initial_parameters, param_roles
from symnn.derive.reverse import reverse
from symnn.derive.tangent import jvp
from symnn.errors import DeclarationError, ModelFileError, SpecError, UnknownNameError

# ----------------------------------------------------------------------------------------
# op level


def _v(name, n, kind="input"):
    return P.Var(name, kind, (n,))


def _op_cases():
    u, w, g = _v("u", 3), _v("w", 2), _v("g", 6)
    return [
        pytest.param(lambda o: P.Concat(o, (u, w), (3, 2)), (u, w), 5, id="concat"),
        pytest.param(lambda o: P.Concat(o, (u, u), (3, 3)), (u,), 6, id="concat_twice"),
        pytest.param(lambda o: P.Concat(o, (None, w, None), (1, 2, 3)), (w,), 6,
                     id="concat_zeros"),
        pytest.param(lambda o: P.Slice(o, g, 2), (g,), 3, id="slice"),
    ]


def _program(make, ins, n):
    b = P.Builder()
    out = b.emit(make(_v("o", n, "sample")))
    r = _v("r", n)
    d = b.emit(P.Dot(_v("d", 1, "sample"), out, r))
    L = b.emit(P.BatchMean(P.Var("L", "total", ()), d))
    return b, out, r, L


@pytest.mark.parametrize("make,ins,n", _op_cases())
def test_concat_and_slice_reverse_rules_match_central_differences(make, ins, n):
    rng = np.random.default_rng(0)
    B = 3
    b, out, r, L = _program(make, ins, n)
    forward = list(b.prog.ops)
    ct = reverse(b, L, list(ins), forward)
    env = {v: rng.normal(size=(B, v.size)) for v in (*ins, r)}
    got = evaluate(list(b.prog.ops), dict(env))
    h = 1e-6
    for v in ins:
        fd = np.zeros_like(env[v])
        for i in range(fd.size):
            e = np.zeros_like(fd)
            e.flat[i] = h
            lp = float(evaluate(forward, {**env, v: env[v] + e})[L])
            lm = float(evaluate(forward, {**env, v: env[v] - e})[L])
            fd.flat[i] = (lp - lm) / (2 * h) * B   # a per-sample cotangent: B·∂L/∂v_s
        assert np.allclose(got[ct[v]], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("make,ins,n", _op_cases())
def test_concat_and_slice_forward_rules_match_central_differences(make, ins, n):
    rng = np.random.default_rng(1)
    B = 3
    b = P.Builder()
    out = b.emit(make(_v("o", n, "sample")))
    forward = list(b.prog.ops)
    dots = {v: P.Var(v.name + "_d", "sample", v.shape) for v in ins}
    d = jvp(b, forward, dots)
    env = {v: rng.normal(size=(B, v.size)) for v in ins}
    dirs = {v: rng.normal(size=(B, v.size)) for v in ins}
    got = evaluate(list(b.prog.ops), {**env, **{dots[v]: dirs[v] for v in ins}})[d[out]]
    h = 1e-6
    plus = evaluate(forward, {v: env[v] + h * dirs[v] for v in ins})[out]
    minus = evaluate(forward, {v: env[v] - h * dirs[v] for v in ins})[out]
    assert np.allclose(got, (plus - minus) / (2 * h), rtol=1e-6, atol=1e-8)


def test_a_wrong_concat_rule_fails_the_check(monkeypatch):
    """The reverse check above can fail: a VJP that swaps the two halves is caught."""
    from symnn.ops import concat as kit

    def swapped(b, o, g, active):
        return [(p, c) for (p, _), (_, c) in zip(kit.concat_vjp(b, o, g, active),
                                                 reversed(kit.concat_vjp(b, o, g, active)))]

    monkeypatch.setitem(P.VJP, P.Concat, swapped)
    u, w = _v("u", 2), _v("w", 2)
    with pytest.raises(AssertionError):
        test_concat_and_slice_reverse_rules_match_central_differences(
            lambda o: P.Concat(o, (u, w), (2, 2)), (u, w), 4)


# ----------------------------------------------------------------------------------------
# networks: compiled = reference = PyTorch autograd, and finite differences

_G1 = ("graph", (("h1", ("dense", 3, 4, True), "in"), ("a1", "tanh", "h1"),
                 ("h2", ("dense", 3, 4, True), "in"), ("s", ("op", "add"), "a1", "h2"),
                 ("m", ("op", "mul"), "s", "a1"), ("c", ("op", "concat"), "a1", "m")), "c")
_G2 = ("graph", (("h", ("dense", 2, 2, False), "in"),
                 ("r", ("residual", (("dense", 2, 3, True), "sigmoid",
                                     ("dense", 3, 2, True))), "h"),
                 ("q", ("lambda", "rational"), "r"), ("c", ("op", "concat"), "q", "in"),
                 ("t", ("op", "add"), "h", "h"), ("o", ("op", "concat"), "c", "t")), "o")
CASES = [
    NetCase((("dense", 2, 3, True), "sigmoid", _G1, ("dense", 8, 2, True), "softmax"),
            "cross_entropy", (("l2", 0.1),)),
    NetCase((("dense", 3, 2, True), _G2, "softplus", "tanh", ("dense", 6, 1, True)),
            "mse", (("l1", 0.05),)),
]


@pytest.mark.parametrize("case,seed", [(CASES[0], 5), (CASES[1], 3)])
def test_graph_network_kernels_agree_with_reference_and_torch(case, seed):
    """Every kernel (predict, Jacobian, loss, gradient, HVP, GN product, Hessian) to 1e-9
    relative, against the NumPy reference and (where installed) PyTorch autograd."""
    res = check_case(case, seed)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, res.failures[:3]
    for kernel in ("loss", "grad", "hvp", "gnvp", "hessian", "jacobian"):
        assert (kernel, "compiled~reference") in res.errors
        if HAVE_TORCH:
            assert (kernel, "compiled~torch") in res.errors


@pytest.fixture(scope="module")
def compiled():
    net = CASES[0].build()
    return net, net.compile()


def test_graph_gradient_and_hvp_match_finite_differences(compiled):
    net, m = compiled
    X, y, theta, v, _ = case_data(net, 7, batch=4)
    assert gradcheck(m, theta, X, y)
    assert hesscheck(m, theta, X, y)
    h = 1e-5
    fd = (m.loss_and_grad(theta + h * v, X, y)[1] - m.loss_and_grad(theta - h * v, X, y)[1])
    fd /= 2 * h
    assert np.allclose(m.hvp(theta, v, X, y), fd, rtol=1e-5, atol=1e-7)


def test_per_sample_and_diagonal_curvature_on_a_graph_network(compiled):
    """symnn.analysis on a graph: the per-sample gradients average to the gradient, the
    diagonal GGN and Hessian are the diagonals of the full matrices."""
    from symnn.analysis import diag_ggn, diag_hessian, per_sample_gradients

    net, m = compiled
    X, y, theta, _, _ = case_data(net, 8, batch=3)
    ps = per_sample_gradients(m, theta, X, y)
    assert np.allclose(ps.mean(axis=0), m.reference.loss_and_grad(theta, X, y)[1],
                       rtol=1e-10, atol=1e-13)
    assert np.allclose(ps[1], m.reference.loss_and_grad(theta, X[1:2], y[1:2])[1],
                       rtol=1e-10, atol=1e-13)
    G = np.stack([m.gnvp(theta, e, X, y) for e in np.eye(m.n_params)])
    assert np.allclose(diag_ggn(m, theta, X, y), np.diag(G), rtol=1e-10, atol=1e-13)
    assert np.allclose(diag_hessian(m, theta, X, y), np.diag(m.hessian(theta, X, y)),
                       rtol=1e-10, atol=1e-13)


def test_a_graph_skip_block_is_the_residual_block():
    """``y = add(in, tanh(Dense(in)))`` declared as a Graph is the Residual block: same
    parameters, initial values, and (reference) loss, gradient and Hessian."""
    from symnn.codegen.model import ReferenceModel

    def net(block):
        return symnn.Network([symnn.Dense(2, 3), "tanh", block, "tanh", symnn.Dense(3, 1)])

    g = net(symnn.Graph({"h": (symnn.Dense(3, 3), "in"), "a": ("tanh", "h"),
                         "y": ("add", "in", "a")}, output="y"))
    r = net(symnn.Residual([symnn.Dense(3, 3), "tanh"]))
    assert g.param_shapes == r.param_shapes
    ig, ir = (initial_parameters(n, np.random.default_rng(1)) for n in (g, r))
    assert all(np.array_equal(ig[k], ir[k]) for k in ir)
    X, y, theta, _, _ = case_data(r, 3, batch=4)
    mg, mr = ReferenceModel(g, "float64"), ReferenceModel(r, "float64")
    for a, b in zip(mg.loss_and_grad(theta, X, y), mr.loss_and_grad(theta, X, y)):
        assert np.allclose(a, b, rtol=1e-13, atol=1e-15)
    assert np.allclose(mg.hessian(theta, X, y), mr.hessian(theta, X, y), rtol=1e-12,
                       atol=1e-14)


def test_graph_expanded_forms_agree_with_the_reference():
    """The SymPy instantiation (every weight written out) of a small graph network: its
    gradient, exact Hessian and Jacobian equal the NumPy reference's at a point."""
    from symnn.codegen.model import ReferenceModel
    from symnn.derive import derive
    from symnn.derive.expanded import param_symbols

    g = symnn.Graph({"h": (symnn.Dense(1, 2), "in"), "a": ("tanh", "h"),
                     "m": ("mul", "a", "h"), "c": ("concat", "m", "in")}, output="c")
    net = symnn.Network([g, symnn.Dense(3, 1)], loss="mse")
    ref = ReferenceModel(net, "float64")
    ps = param_symbols(net)
    th_s = [s for p in derive(net).params for s in np.ravel(ps[p.name])]
    x1, y1 = sp.symbols("x1 y1", real=True)
    rng = np.random.default_rng(4)
    th, X, Y = rng.normal(size=len(th_s)), rng.normal(size=(1, 1)), rng.normal(size=(1, 1))
    args = (*th, X[0, 0], Y[0, 0])
    grad = net.gradient()
    g_e = np.array(sp.lambdify([*th_s, x1, y1], [grad[s] for s in th_s])(*args), float)
    assert np.allclose(g_e, ref.loss_and_grad(th, X, Y)[1], rtol=1e-10, atol=1e-12)
    H = np.array(sp.lambdify([*th_s, x1, y1], net.hessian())(*args), float)
    assert np.allclose(H, ref.hessian(th, X, Y), rtol=1e-10, atol=1e-12)
    J = np.array(sp.lambdify([*th_s, x1], net.jacobian())(*th, X[0, 0]), float)
    assert np.allclose(J, ref.jacobian(th, X)[0], rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------
# declaration, parameters, printing


def _example(**kw):
    return symnn.Graph({"h1": (symnn.Dense(4, 8), "in"), "a1": ("tanh", "h1"),
                        "h2": (symnn.Dense(4, 8), "in"), "s": ("add", "a1", "h2"),
                        "c": ("concat", "a1", "s")}, output="c", **kw)


def test_parameters_keep_the_layer_protocol():
    net = symnn.Network([symnn.Dense(3, 4), "relu", _example(), symnn.Dense(16, 1)])
    assert [n for n, _ in net.param_shapes] == ["W1", "b1", "W2", "b2", "W3", "b3",
                                                "W4", "b4"]
    assert param_roles(net)["W3"] == "weight" and param_roles(net)["b4"] == "bias"
    init = initial_parameters(net, np.random.default_rng(0))
    assert init["W2"].shape == (8, 4) and not init["b3"].any()
    # a Dense node whose only reader is a relu node starts He-uniform: |W| ≤ √(6/fan_in)
    g = symnn.Graph({"h": (symnn.Dense(50, 50), "in"), "a": ("relu", "h")}, output="a")
    w = g.initial_values(1, np.random.default_rng(0))["W1"]
    assert np.abs(w).max() > np.sqrt(6 / 100)


def test_equations_print_in_topological_order_and_sum_cotangents():
    net = symnn.Network([_example(), symnn.Dense(16, 1)], loss="mse")
    text = str(net.equations())
    fwd = text.split("Loss:")[0]
    order = ["z⁽¹⁾ = W⁽¹⁾ x + b⁽¹⁾", "a1 = tanh(z⁽¹⁾)", "z⁽²⁾ = W⁽²⁾ x + b⁽²⁾",
             "s = a1 + z⁽²⁾", "c = [a1; s]", "z⁽³⁾ = W⁽³⁾ c + b⁽³⁾"]
    assert [fwd.index(line) for line in order] == sorted(fwd.index(line) for line in order)
    # a1 is read by s and by c: its cotangent is the sum of both
    assert "∇_a1ℓ = ∇_sℓ + (∇_cℓ)[1:8]" in text
    assert "∇_sℓ = (∇_cℓ)[9:16]" in text
    assert r"\begin{bmatrix} \mathrm{a1} \\ s \end{bmatrix}" in net.equations().latex()


def test_nodes_declared_out_of_order_are_sorted():
    g = symnn.Graph({"c": ("add", "a", "b"), "a": ("tanh", "h"), "b": ("sigmoid", "h"),
                     "h": (symnn.Dense(2, 3), "in")}, output="c")
    assert [n.name for n in g._order] == ["h", "a", "b", "c"]
    assert (g.n_in, g.n_out, g.stacked_after) == (2, 3, 0)


def test_graph_names_do_not_clash_with_network_values():
    """Nodes named like the network's own values (a1, z1) and two graphs with the same node
    names: every value of the program has its own name."""
    def g(n):
        return symnn.Graph({"a1": (symnn.Dense(n, n), "in"), "z1": ("tanh", "a1"),
                            "s": ("add", "z1", "in")}, output="s")
    net = symnn.Network([symnn.Dense(2, 2), "tanh", g(2), "tanh", g(2), symnn.Dense(2, 1)])
    names = [op.out.name for op in net.program().program.ops]
    assert len(names) == len(set(names))
    assert {"a1", "g_z1", "g_z1_2", "g_s", "g_s_2"} <= set(names)


@pytest.mark.parametrize("make,needle", [
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 3), "in"), "a": ("tanh", "hh")},
                         output="a"), "node 'a' reads 'hh'"),
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 2), "in"), "a": ("add", "h", "b"),
                          "b": ("tanh", "a")}, output="b"), "'a' → 'b' → 'a'"),
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 3), "in"), "s": ("add", "h", "in")},
                         output="s"), "node 's': add of 'h' (3 values) and 'in' (2 values)"),
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 3), "in"), "k": (symnn.Dense(2, 1), "h")},
                         output="k"), "node 'k': Dense(2, 1) takes 2 inputs but 'h' gives 3"),
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 3), "in"), "u": ("tanh", "h"),
                          "v": ("relu", "h")}, output="v"), "node 'u' is computed but never"),
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 3), "in")}), "name the output node"),
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 3), "in")}, output="z"),
     "the output 'z' is not a node"),
    (lambda: symnn.Graph({"a": ("tanh", "in")}, output="a"), "no Dense node reads"),
    (lambda: symnn.Graph({"a": ("tanh", "in")}, output="a", n_in=2), "no Dense node"),
    (lambda: symnn.Graph({"h-1": (symnn.Dense(2, 3), "in")}, output="h-1"), "identifiers"),
    (lambda: symnn.Graph({"in": (symnn.Dense(2, 3), "in")}, output="in"),
     "'in' names the graph's input"),
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 3), "in"), "s": ("add", "h")}, output="s"),
     "node 's': add combines two values"),
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 3), "in", "in")}, output="h"),
     "node 'h': a layer reads one value"),
    (lambda: symnn.Graph({"h": (symnn.Dense(2, 3), "in"), "a": ("tanhh", "h")},
                         output="a"), "tanhh"),
    (lambda: symnn.Graph({"h": (symnn.Conv1D(1, 1, 1), "in")}, output="h"),
     "node 'h': Conv1D(1, 1, 1) cannot be a graph node"),
    (lambda: symnn.Graph({"h": symnn.Dense(2, 3)}, output="h"), "node 'h': give (layer"),
    (lambda: symnn.Graph([("h", symnn.Dense(2, 3))], output="h"), "non-empty dict"),
    (lambda: symnn.Network([symnn.Dense(2, 3), _example()]), "takes 4 inputs"),
])
def test_bad_graphs_are_refused_naming_the_node(make, needle):
    with pytest.raises((DeclarationError, UnknownNameError)) as err:
        make()
    assert needle in str(err.value)


def test_lipschitz_bound_through_the_graph():
    g = symnn.Graph({"h": (symnn.Dense(1, 1, bias=False), "in"), "a": ("tanh", "h"),
                     "s": ("add", "a", "in"), "c": ("concat", "s", "in")}, output="c")
    [f] = g.lipschitz({"W1": np.array([[3.0]])}, 1, lambda act: 1)
    assert f.value == pytest.approx(np.hypot(3.0 + 1.0, 1.0))


# ----------------------------------------------------------------------------------------
# spec files and model files

_TOML = '''
[network]
loss = "mse"
layers = [
  {dense = [2, 3]}, {activation = "tanh"},
  {graph = {output = "c", nodes = [
     {name = "h", layer = {dense = [3, 4]}, inputs = ["in"]},
     {name = "a", layer = {activation = {expr = "t/(1+t^2)", var = "t"}}, inputs = ["h"]},
  {name = "r", inputs = ["a"], layer = {residual = [{dense = [4, 4]}, {activation = "relu"}]}},
     {name = "s", op = "mul", inputs = ["r", "h"]},
     {name = "c", op = "concat", inputs = ["s", "in"]}]}},
  {dense = [7, 1]},
]
'''


def test_spec_files_read_and_write_graphs():
    spec = symnn.loads_spec(_TOML)
    g = spec.declared.layers[2]
    assert isinstance(g, symnn.Graph) and (g.n_in, g.n_out) == (3, 7)
    again = symnn.loads_spec(spec.to_toml()).declared
    assert repr(again) == repr(spec.declared)
    assert [n for n, _ in again.param_shapes] == [n for n, _ in spec.declared.param_shapes]


@pytest.mark.parametrize("old,new,needle", [
    ('inputs = ["r", "h"]', 'inputs = ["r", "q"]', "node 's' reads 'q'"),
    ('op = "mul"', 'op = "pow"', "graph.nodes[3].op: expected add, mul or concat"),
    ('output = "c"', 'output = "s"', "node 'c' is computed but never used"),
    ('{dense = [3, 4]}, inputs', '{dense = [3, 4]}, op = "add", inputs',
     "exactly one of layer or op"),
    ('{activation = "tanh"},\n  {graph', '{activation = "tanh"},\n  {dense = [3, 3], graph',
     "graph"),
])
def test_bad_graph_specs_are_refused(old, new, needle):
    assert old in _TOML
    with pytest.raises(SpecError) as err:
        symnn.loads_spec(_TOML.replace(old, new))
    assert needle in str(err.value)


def test_model_files_store_graphs(tmp_path):
    from symnn.train.modelspec import declared_from_spec, spec_of

    net = symnn.loads_spec(_TOML).declared
    data = json.loads(json.dumps(spec_of(net)))
    back = declared_from_spec(data)
    assert [n for n, _ in back.param_shapes] == [n for n, _ in net.param_shapes]
    assert str(back.equations()) == str(net.equations())
    data["layers"][2]["graph"]["nodes"][0]["inputs"] = ["nowhere"]
    with pytest.raises(ModelFileError, match="reads 'nowhere'"):
        declared_from_spec(data)
