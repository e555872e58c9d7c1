"""Blocks (issue 13): ``symnn.Residual`` — y = x + f(x) — with the guarantees of Dense.

Declaration and numbering, the printed equations (checked symbolically), the expanded
per-weight forms against the compiled kernels, the three witnesses (finite differences
through ``symnn.gradcheck`` / ``hesscheck`` / ``gnvcheck``; compiled = NumPy reference =
PyTorch autograd through ``tests/_exactness.py``), spec files, model files, Lipschitz
bounds and training.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from _exactness import HAVE_TORCH, check_case
from _numeric import lambdify
from strategies import NetCase, case_data

import symnn
from symnn.declare.layers import param_roles
from symnn.derive import derive
from symnn.derive.expanded import param_symbols


def _d(n_in, n_out, bias=True):
    return ("dense", n_in, n_out, bias)


def _net():
    """x → tanh(W1 x + b1) = a1 → a3 = a1 + W3 tanh(W2 a1 + b2) + b3 → W4 a3 + b4."""
    return symnn.Network([symnn.Dense(2, 2), "tanh",
                          symnn.Residual([symnn.Dense(2, 2), "tanh", symnn.Dense(2, 2)]),
                          symnn.Dense(2, 1)], loss="mse")


# -- declaration --------------------------------------------------------------------------

def test_inner_layers_are_numbered_in_the_flat_order_of_all_dense_layers():
    net = symnn.Network([symnn.Dense(3, 4), "relu",
                         symnn.Residual([symnn.Dense(4, 2), "tanh", symnn.Dense(2, 4)]),
                         "tanh", symnn.Residual([symnn.Dense(4, 4, bias=False)]),
                         symnn.Dense(4, 1)])
    assert [n for n, _ in net.param_shapes] == ["W1", "b1", "W2", "b2", "W3", "b3", "W4",
                                                "W5", "b5"]
    assert dict(net.param_shapes)["W3"] == (4, 2)
    assert param_roles(net)["W4"] == "weight" and param_roles(net)["b3"] == "bias"
    assert net.n_layers == 5 and (net.n_inputs, net.n_outputs) == (3, 1)
    assert repr(net) == ("Network([Dense(3, 4), 'relu', Residual([Dense(4, 2), 'tanh', "
                         "Dense(2, 4)]), 'tanh', Residual([Dense(4, 4)]), Dense(4, 1)], "
                         "loss='mse')")


def test_a_residual_network_may_start_with_the_block_and_nest_blocks():
    inner = symnn.Residual([symnn.Dense(2, 2), "tanh"])
    net = symnn.Network([symnn.Residual([symnn.Dense(2, 2), "elu", inner]),
                         symnn.Dense(2, 1)])
    assert [n for n, _ in net.param_shapes] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert symnn.Residual([symnn.Dense(2, 2), "elu", inner]).n_dense == 2


@pytest.mark.parametrize("layers,message", [
    ([symnn.Dense(3, 2)], "map 3 values to 2"),
    ([symnn.Dense(3, 2), "tanh", symnn.Dense(2, 4)], "make the last Dense layer's n_out = 3"),
    ([symnn.Dense(3, 2), symnn.Dense(3, 3)], "takes 3 inputs but the layer before it gives 2"),
    (["tanh", symnn.Dense(3, 3)], "comes before any Dense layer"),
    ([], "has no Dense layer"),
    ([symnn.Dense(1, 1), "softmax"], "normalises a single value"),
    ("tanh", "give the inner layers as a list"),
    (symnn.Dense(2, 2), "give the inner layers as a list"),
])
def test_an_inner_stack_that_does_not_map_n_to_n_is_refused_clearly(layers, message):
    with pytest.raises(symnn.DeclarationError, match="Residual") as err:
        symnn.Residual(layers)
    assert message in str(err.value)


def test_an_unknown_inner_activation_names_its_place():
    with pytest.raises(symnn.UnknownNameError, match=r"\(Residual layer 1\)"):
        symnn.Residual([symnn.Dense(2, 2), "no_such_activation"])


def test_a_block_whose_width_does_not_fit_the_network_is_refused():
    with pytest.raises(symnn.DeclarationError, match="takes 2 inputs but the layer before"):
        symnn.Network([symnn.Dense(3, 3), symnn.Residual([symnn.Dense(2, 2)])])


# -- printed equations ----------------------------------------------------------------------

a1, a3, z3, g_a3, g_a1 = sp.symbols("a1 a3 z3 g_a3 g_a1", real=True)


def test_printed_equations_show_the_skip_sum_and_the_two_backward_paths():
    eq = _net().equations()
    text = str(eq)
    for line in ["z⁽¹⁾ = W⁽¹⁾ x + b⁽¹⁾", "a⁽¹⁾ = tanh(z⁽¹⁾)", "z⁽²⁾ = W⁽²⁾ a⁽¹⁾ + b⁽²⁾",
                 "a⁽²⁾ = tanh(z⁽²⁾)", "z⁽³⁾ = W⁽³⁾ a⁽²⁾ + b⁽³⁾", "a⁽³⁾ = a⁽¹⁾ + z⁽³⁾",
                 "z⁽⁴⁾ = W⁽⁴⁾ a⁽³⁾ + b⁽⁴⁾",
                 "∇_a⁽³⁾ℓ = (W⁽⁴⁾)ᵀ δ⁽⁴⁾", "∇_a⁽²⁾ℓ = (W⁽³⁾)ᵀ ∇_a⁽³⁾ℓ",
                 "δ⁽²⁾ = ∇_a⁽²⁾ℓ ⊙ tanh'(z⁽²⁾)",
                 # the cotangent of a⁽¹⁾: the identity path plus the inner path
                 "∇_a⁽¹⁾ℓ = ∇_a⁽³⁾ℓ + (W⁽²⁾)ᵀ δ⁽²⁾",
                 "δ⁽¹⁾ = ∇_a⁽¹⁾ℓ ⊙ tanh'(z⁽¹⁾)",
                 "∂L/∂W⁽²⁾ = ⟨δ⁽²⁾ (a⁽¹⁾)ᵀ⟩", "∂L/∂W⁽³⁾ = ⟨∇_a⁽³⁾ℓ (a⁽²⁾)ᵀ⟩",
                 "∂L/∂W⁽⁴⁾ = ⟨δ⁽⁴⁾ (a⁽³⁾)ᵀ⟩"]:
        assert line in text, line
    # derived, not template: the forward sum and the backward sum as SymPy forms
    assert sp.simplify(eq.rhs("a3") - (a1 + z3)) == 0
    inner = eq.rhs("g_a1") - g_a3
    assert len(inner.free_symbols) == 1 and inner.is_Symbol  # exactly one more path
    tex = eq.latex()
    assert r"a^{(3)} &= a^{(1)} + z^{(3)}" in tex
    assert (r"\nabla_{a^{(1)}}\ell &= \nabla_{a^{(3)}}\ell + \left(W^{(2)}\right)^{\top} "
            r"\delta^{(2)}") in tex


def test_an_activation_after_the_block_and_a_block_ending_in_one_are_named_apart():
    net = symnn.Network([symnn.Dense(2, 2), "tanh",
                         symnn.Residual([symnn.Dense(2, 2), "tanh"]), "sigmoid",
                         symnn.Dense(2, 1)])
    text = str(net.equations())
    for line in ["a⁽²⁾ = tanh(z⁽²⁾)", "a⁽².2⁾ = a⁽¹⁾ + a⁽²⁾", "a⁽².3⁾ = σ(a⁽².2⁾)",
                 "z⁽³⁾ = W⁽³⁾ a⁽².3⁾ + b⁽³⁾"]:
        assert line in text, line
    names = [op.out.name for op in derive(net).forward_ops]
    assert len(names) == len(set(names))


# -- expanded forms against the compiled kernels ------------------------------------------

def _flat_symbols(net):
    d = derive(net)
    ps = param_symbols(net)
    return [s for p in d.params for s in np.ravel(ps[p.name])]


def test_expanded_gradient_hessian_and_jacobian_equal_the_compiled_kernels():
    net = symnn.Network([symnn.Dense(2, 2), "tanh",
                         symnn.Residual([symnn.Dense(2, 1), "sigmoid", symnn.Dense(1, 2)]),
                         symnn.Dense(2, 1)], loss="mse")
    m = net.compile()
    rng = np.random.default_rng(3)
    th_s = _flat_symbols(net)
    xs = sp.symbols("x1 x2", real=True)
    (ys,) = sp.symbols("y1", real=True),
    th = rng.normal(size=len(th_s))
    X, Y = rng.normal(size=(1, 2)), rng.normal(size=(1, 1))
    args = (*th, *X[0], *Y[0])
    grad = net.gradient()
    g = np.array(lambdify([*th_s, *xs, ys], [grad[s] for s in th_s])(*args), float)
    _, g_c = m.loss_and_grad(th, X, Y)
    assert np.max(np.abs(g - g_c)) <= 1e-9 * np.max(np.abs(g_c))
    H = np.array(lambdify([*th_s, *xs, ys], net.hessian())(*args), float)
    H_c = m.hessian(th, X, Y)
    assert np.max(np.abs(H - H_c)) <= 1e-9 * np.max(np.abs(H_c))
    J = np.array(lambdify([*th_s, *xs], net.jacobian())(*th, *X[0]), float)
    assert np.max(np.abs(J - m.jacobian(th, X)[0])) <= 1e-9 * np.max(np.abs(J))
    # the skip: with every inner weight 0, ∂ŷ/∂x is W4 diag(tanh') W1 (the identity path)
    th0 = th.copy()
    th0[6:6 + 2 + 1 + 2 + 2] = 0.0  # W2, b2, W3, b3
    W1, b1, W4 = th[:4].reshape(2, 2), th[4:6], th[13:15].reshape(1, 2)
    want = W4 @ np.diag(1 - np.tanh(W1 @ X[0] + b1) ** 2) @ W1
    assert np.allclose(m.jacobian(th0, X)[0], want, rtol=1e-12, atol=1e-14)


# -- the three witnesses ------------------------------------------------------------------

_CASES = [
    NetCase((_d(2, 3), "tanh", ("residual", (_d(3, 2), "tanh", _d(2, 3))), _d(3, 2),
             "softmax"), "cross_entropy", (("l2", 0.1),)),
    NetCase((_d(2, 3), "elu", ("residual", (_d(3, 3, False), "sigmoid")), "tanh", _d(3, 1)),
            "huber", (("l1", 0.05),)),
    NetCase((("residual", (_d(2, 2), ("lambda", "rational"), _d(2, 2))), _d(2, 2),
             "sigmoid"), "bce"),
    NetCase((_d(3, 3), "softplus", ("residual", (_d(3, 2), "softmax", _d(2, 3),
                                                 ("residual", (_d(3, 3), "gelu"))))),
            "mse"),
]


@pytest.mark.parametrize("k", range(len(_CASES)))
def test_compiled_reference_and_torch_agree_on_residual_networks(k):
    case = _CASES[k]
    res = check_case(case, 40 + k)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, [(f["kernel"], f["pair"], f["err"]) for f in res.failures]
    pairs = {pair for _, pair in res.errors}
    assert pairs == ({"compiled~reference", "compiled~torch"} if HAVE_TORCH
                     else {"compiled~reference"})
    assert {k for k, _ in res.errors} >= {"grad", "hvp", "gnvp", "hessian", "jacobian"}


@pytest.mark.parametrize("k", [0, 1])
def test_kernels_agree_with_finite_differences(k):
    net = _CASES[k].build()
    m = net.compile()
    X, Y, th, _, _ = case_data(net, 7, batch=5)
    for check in (symnn.gradcheck, symnn.hesscheck, symnn.gnvcheck):
        report = check(m, th, X, Y)
        assert report.passed, str(report)


def test_a_wrong_skip_is_caught_by_the_torch_witness():
    """The witness reads the case's own data: a network declared without the skip (the
    same parameters) disagrees with the torch model of the residual case."""
    pytest.importorskip("torch")
    from _torch_ref import TorchCase

    case = _CASES[0]
    plain = symnn.Network([symnn.Dense(2, 3), "tanh", symnn.Dense(3, 2), "tanh",
                           symnn.Dense(2, 3), symnn.Dense(3, 2), "softmax"],
                          loss="cross_entropy", penalties=[symnn.L2(0.1)])
    X, Y, th, v, V = case_data(plain, 1)
    torch_pred = TorchCase(case, case.build()).results(th, X, Y, v, V)["predict"]
    assert np.max(np.abs(plain.compile().predict(th, X) - torch_pred)) > 1e-6
    assert np.allclose(case.build().compile().predict(th, X), torch_pred, rtol=1e-12)


# -- spec files, model files, analysis, training ------------------------------------------

_SPEC = '''
[network]
layers = [{dense = [2, 3]}, {activation = "tanh"},
          {residual = [{dense = [3, 2]},
                       {activation = {expr = "t/(1 + t**2)", var = "t", name = "soft"}},
                       {dense = [2, 3], bias = false}]},
          {dense = [3, 1]}, {activation = "sigmoid"}]
loss = "bce"
'''


def test_spec_files_declare_a_residual_block_and_write_it_back():
    spec = symnn.loads_spec(_SPEC)
    net = spec.declared
    assert isinstance(net.layers[2], symnn.Residual)
    assert [n for n, _ in net.param_shapes] == ["W1", "b1", "W2", "b2", "W3", "W4", "b4"]
    again = symnn.loads_spec(spec.to_toml()).declared
    assert again.param_shapes == net.param_shapes and repr(again) == repr(net)


@pytest.mark.parametrize("layer,message", [
    ('{residual = [{dense = [3, 2]}]}', "map 3 values to 2"),
    ('{residual = []}', "expected a non-empty list"),
    ('{residual = [3]}', "expected a layer table"),
    ('{residual = [{dense = [3, 3]}], bias = true}', "bias belongs to a dense layer"),
    ('{residual = [{dense = [3, 3]}], activation = "tanh"}', "exactly one of"),
    ('{residual = [{dense = [3, 3], size = 2}]}', "unknown key 'size'"),
])
def test_a_malformed_residual_in_a_spec_file_is_a_spec_error(layer, message):
    text = f"[network]\nlayers = [{{dense = [2, 3]}}, {layer}]\n"
    with pytest.raises(symnn.SpecError) as err:
        symnn.loads_spec(text, name="bad.toml")
    assert message in str(err.value) and "layers[1]" in str(err.value)


def test_save_and_load_keep_a_residual_network(tmp_path):
    net = symnn.loads_spec(_SPEC).declared
    m = net.compile()
    X, Y, th, _, _ = case_data(net, 3, batch=4)
    symnn.save(tmp_path / "res.symnn", m, th)
    declared, params, _ = symnn.load(tmp_path / "res.symnn")
    assert repr(declared) == repr(net) and np.array_equal(params, th)
    assert np.array_equal(declared.compile().predict(params, X), m.predict(th, X))


def test_a_model_file_with_a_malformed_residual_is_refused():
    from symnn.train.modelspec import declared_from_spec

    base = {"kind": "network", "loss": "mse", "layers": [{"dense": [2, 2]}, None]}
    for bad, message in [({"residual": []}, "malformed residual"),
                         ({"residual": [{"dense": [2, 3]}]}, "map 2 values to 3"),
                         ({"residual": [{"activation": "nope"}]}, "unknown activation")]:
        base["layers"][1] = bad
        with pytest.raises(symnn.ModelFileError, match=message):
            declared_from_spec(base)
    deep: dict = {"dense": [2, 2]}
    for _ in range(20):
        deep = {"residual": [{"dense": [2, 2]}, deep]}
    base["layers"][1] = deep
    with pytest.raises(symnn.ModelFileError, match="nested deeper"):
        declared_from_spec(base)


def test_lipschitz_bound_of_a_block_is_one_plus_that_of_its_inner_stack():
    from symnn.analysis import lipschitz_bound

    net = symnn.Network([symnn.Dense(2, 2), symnn.Residual([symnn.Dense(2, 2), "tanh",
                                                            symnn.Dense(2, 2)])])
    m = net.compile()
    th = np.random.default_rng(0).normal(size=net.n_params)
    arrays = m.unflatten(th)
    s = [np.linalg.norm(arrays[w], 2) for w in ("W1", "W2", "W3")]
    rep = lipschitz_bound(m, th)
    assert rep.bound == pytest.approx(s[0] * (1 + s[1] * 1.0 * s[2]), rel=1e-12)
    X = np.random.default_rng(1).normal(size=(20, 2))
    assert lipschitz_bound(m, th, X).empirical <= rep.bound * (1 + 1e-12)


def test_fit_trains_a_residual_network_from_its_initial_values():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2))
    Y = np.sin(X[:, :1]) + 0.5 * X[:, 1:]
    net = symnn.Network([symnn.Dense(2, 4), "tanh",
                         symnn.Residual([symnn.Dense(4, 4), "tanh", symnn.Dense(4, 4)]),
                         symnn.Dense(4, 1)], loss="mse")
    res = symnn.fit(net, X, Y, optimizer=symnn.Adam(lr=0.02), epochs=40, batch_size=16,
                    seed=1, progress=False)
    losses = res.history.loss
    assert losses[-1] < 0.5 * losses[0]


def test_the_document_lists_the_dense_layers_inside_blocks_with_their_numbers():
    net = symnn.Network([symnn.Dense(2, 3), "tanh",
                         symnn.Residual([symnn.Dense(3, 2), "tanh", symnn.Dense(2, 3)]),
                         symnn.Dense(3, 1)])
    md = symnn.export_markdown(net)
    assert "network net (2-3-2-3-1)" in md
    assert r"| 3 | dense (in a residual block) | $W^{(3)} \in \mathbb{R}^{3 \times 2}$ | " \
           "identity, then + skip | 9 |" in md
    assert r"| 4 | dense | $W^{(4)} \in \mathbb{R}^{1 \times 3}$ | identity | 4 |" in md
