"""One function registry: a new elementwise activation takes one class, in one file.

The activation ``softsign`` below is defined here, in the test module, and nowhere else in
symnn.  Defining the class registers it (:mod:`symnn.functions`); from then on it is a
named activation, a function of the spec language, a node a model file may hold, and it
prints in equations, kernels and the NumPy reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn import functions as F
from symnn.check import gradcheck
from symnn.codegen.printer import FUNCTIONS, KernelPrinter
from symnn.codegen.reference import NUMPY_FUNCTIONS
from symnn.declare.activations import ACTIVATIONS, get_activation
from symnn.declare.text import TEXT_FUNCTIONS, expr_text
from symnn.errors import DeclarationError, ModelFileError, SpecError, UnknownNameError
from symnn.spec import ALLOWED, loads_spec, parse_expression
from symnn.train.io import NODES, load, save

Z = sp.Symbol("z", real=True)


def _define_softsign():
    class softsign(F.ActivationFunction):
        r"""Softsign, :math:`z / (1 + |z|)` — the whole of a new activation: its definition
        (the derivative, value at numbers, kernel and NumPy forms follow from it)."""

        nargs = 1
        spec_doc = "x/(1+abs(x))"

        @staticmethod
        def definition(z):
            return z / (1 + sp.Abs(z))

    return softsign


@pytest.fixture(scope="module")
def softsign():
    cls = _define_softsign()
    yield cls
    F.unregister("softsign")
    assert "softsign" not in ACTIVATIONS


def test_the_name_tables_are_views_of_the_registry():
    assert FUNCTIONS is F.KERNEL_CALLS
    assert NUMPY_FUNCTIONS is F.NUMPY_IMPLS
    assert TEXT_FUNCTIONS is F.TEXT_NAMES
    assert set(ALLOWED) == set(F.SPEC_FUNCTIONS)
    for name, info in F.REGISTRY.items():
        if info.saved and info.cls is not None:
            assert NODES[name] is info.cls
        if info.spec is not None and info.cls is not None:
            assert TEXT_FUNCTIONS[name] == info.spec
    # symnn's classes registered themselves, with their print hooks
    for name in ("sigmoid", "relu", "leaky_relu", "elu", "softplus", "gelu", "swish", "xlogy"):
        cls = F.REGISTRY[name].cls
        assert issubclass(cls, F.SymnnFunction)
        assert hasattr(cls, "_numbacode") and hasattr(cls, "_numpycode")
    assert F.REGISTRY["Abs"].spec == "abs" and F.REGISTRY["Heaviside"].numpy is not None


def test_a_new_activation_is_registered_everywhere(softsign):
    assert F.REGISTRY["softsign"].cls is softsign
    assert ACTIVATIONS["softsign"] is get_activation("softsign")
    assert "softsign" in ALLOWED and NODES["softsign"] is softsign
    assert TEXT_FUNCTIONS["softsign"] == "softsign"
    f = softsign(Z)
    # derivative from the definition; value at numbers from the definition
    assert sp.simplify(sp.diff(f, Z) - sp.diff(Z / (1 + sp.Abs(Z)), Z)) == 0
    assert float(softsign(sp.Integer(3))) == pytest.approx(0.75)
    assert f.is_real
    # printed forms: TeX, text, spec text, kernel, NumPy
    assert sp.latex(f) == r"\operatorname{softsign}\left(z\right)"
    assert str(f) == "softsign(z)"
    assert expr_text(2 * f) == "2*softsign(z)"
    assert KernelPrinter(fast=False).doprint(f) == "z/(1.0 + abs(z))"
    g = sp.lambdify((Z,), f, modules=[NUMPY_FUNCTIONS, "numpy", "scipy"])
    np.testing.assert_allclose(g(np.array([-3.0, 0.0, 1.0])), [-0.75, 0.0, 0.5])
    x = sp.Symbol("x", real=True)
    assert parse_expression("softsign(2*x)", {"x": x}) == softsign(2 * x)


def test_a_new_activation_end_to_end(softsign, tmp_path):
    net = symnn.mlp([2, 3, 1], activation="softsign", loss="mse")
    assert net.layers[1].activation is ACTIVATIONS["softsign"]
    text = str(net.equations())
    assert "softsign" in text
    model = net.compile()
    assert "abs(" in model.kernel_source()
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 2)), rng.normal(size=(16, 1))
    theta = model.init(seed=1)
    # gradient against central finite differences and against the NumPy reference
    L, g = model.loss_and_grad(theta, X, y)
    h = 1e-6
    fd = np.array([(model.loss(theta + h * e, X, y) - model.loss(theta - h * e, X, y)) / (2 * h)
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    L_ref, g_ref = model.reference.loss_and_grad(theta, X, y)
    assert L == pytest.approx(L_ref, rel=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    assert gradcheck(model, theta, X, y).passed
    # save and load: the layer is stored by its registered name and comes back as it
    path = tmp_path / "softsign.npz"
    save(path, model, theta)
    declared, params, _ = load(path)
    assert declared.layers[1].activation is ACTIVATIONS["softsign"]
    np.testing.assert_array_equal(load(path).predict(X), model.predict(theta, X))


def test_a_new_activation_in_a_custom_model_and_spec_files(softsign, tmp_path):
    spec = loads_spec('[network]\nlayers = [2, 4, 1]\nactivation = "softsign"\n',
                      name="net.toml")
    assert spec.declared.layers[1].name == "softsign"
    assert 'activation = "softsign"' in spec.to_toml()
    spec = loads_spec('[model]\nexpr = "a*softsign(b*x)"\ninputs = ["x"]\n'
                      'params = ["a", "b"]\n', name="model.toml")
    m = spec.declared
    a, b, x = m.params[0], m.params[1], m.inputs[0]
    assert m.exprs[0] == a * softsign(b * x)
    compiled = m.compile()
    theta = np.array([1.5, -0.5])
    X = np.linspace(-2, 2, 5).reshape(-1, 1)
    np.testing.assert_allclose(compiled.predict(theta, X)[:, 0],
                               1.5 * (-0.5 * X[:, 0]) / (1 + np.abs(0.5 * X[:, 0])))
    path = tmp_path / "model.npz"
    save(path, compiled, theta)
    loaded = load(path)
    assert loaded.declared.exprs[0] == m.exprs[0]   # the tree names the registered class


def test_lipschitz_bound_of_a_new_activation(softsign):
    from symnn.analysis.lipschitz import derivative_bound

    assert derivative_bound(ACTIVATIONS["softsign"]) == 1


def test_an_unregistered_activation_is_unknown_again(tmp_path):
    cls = type("softsign2", (F.ActivationFunction,), {
        "nargs": 1, "definition": staticmethod(lambda z: z / (1 + sp.Abs(z)))})
    assert ACTIVATIONS["softsign2"].apply is cls
    net = symnn.mlp([1, 2, 1], activation="softsign2")
    path = tmp_path / "net.npz"
    save(path, net, np.zeros(net.n_params))
    F.unregister("softsign2")
    assert "softsign2" not in ALLOWED and "softsign2" not in NODES
    with pytest.raises(UnknownNameError, match="softsign2"):
        get_activation("softsign2")
    with pytest.raises(SpecError, match="softsign2"):
        loads_spec('[network]\nlayers = [2, 1]\nactivation = "softsign2"\n')
    with pytest.raises(ModelFileError, match="unknown activation 'softsign2'"):
        load(path)  # the file names a function this symnn no longer knows


def test_a_name_taken_by_another_module_is_refused():
    with pytest.raises(DeclarationError, match="registered already"):
        type("sigmoid", (F.ActivationFunction,), {
            "nargs": 1, "__module__": "elsewhere",
            "definition": staticmethod(lambda z: z)})
    assert F.REGISTRY["sigmoid"].cls is F.sigmoid
