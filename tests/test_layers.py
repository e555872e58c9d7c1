"""The layer protocol: parameters with roles, forward ops, initialisation, saved form,
Lipschitz contribution — asked of the layer, never read off a parameter's name."""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.analysis.flow import gradient_flow
from symnn.codegen import _validate as V
from symnn.declare.activations import get_activation
from symnn.declare.layers import (
    Act,
    Dense,
    ParamSpec,
    Softmax,
    initial_parameters,
    param_roles,
    param_specs,
    role_of_name,
)
from symnn.derive import derive
from symnn.train.history import History


def _net():
    return symnn.Network([Dense(3, 4), "tanh", "relu", Dense(4, 2, bias=False), "softmax"],
                         loss="cross_entropy")


def test_parameters_state_names_shapes_and_roles():
    net = _net()
    specs = param_specs(net)
    assert [(p.name, p.shape, p.role, p.layer) for p in specs] == [
        ("W1", (4, 3), "weight", 1), ("b1", (4,), "bias", 1), ("W2", (2, 4), "weight", 2)]
    assert [(p.name, p.shape) for p in specs] == [(n, s) for n, s in net.param_shapes]
    assert param_roles(net) == {"W1": "weight", "b1": "bias", "W2": "weight"}
    assert specs[0].tex == "W^{(1)}" and specs[0].text == "W⁽¹⁾"


def test_a_custom_models_parameter_vector_has_the_role_param():
    import sympy as sp

    a, x = sp.symbols("a x", real=True)
    m = symnn.Model(a * x, inputs=[x], params=[a])
    assert param_specs(m) == [ParamSpec("theta", (1,), "param", r"\theta", "θ")]


def test_forward_program_is_built_by_the_layers():
    d = derive(_net())
    kinds = [type(op).__name__ for op in d.forward_ops]
    assert kinds[:4] == ["Affine", "Map", "Map", "Affine"]
    assert "Softmax" in kinds or d.meta.get("fused") == ("softmax", "cross_entropy")
    assert {p.name for p in d.params} == {"W1", "b1", "W2"}


def test_initial_values_are_what_the_compiled_model_draws():
    net = _net()
    model = net.compile()
    arrays = initial_parameters(net, np.random.default_rng(V.as_seed(5)))
    theta = np.concatenate([arrays[p.name].ravel() for p in param_specs(net)])
    np.testing.assert_array_equal(model.init(seed=5), theta)
    assert not arrays["b1"].any()
    # He-uniform before the ReLU family, Glorot-uniform otherwise
    assert np.abs(arrays["W1"]).max() <= np.sqrt(6 / (3 + 4))
    relu_net = symnn.Network([Dense(3, 4), "relu", Dense(4, 1)])
    w = initial_parameters(relu_net, np.random.default_rng(0))["W1"]
    assert np.sqrt(6 / 7) < np.abs(w).max() <= np.sqrt(6 / 3)


def test_saved_form_is_the_layers_own():
    assert Dense(2, 3, bias=False).to_data() == {"dense": [2, 3], "bias": False}
    assert Softmax().to_data() == {"activation": "softmax"}
    net = _net()
    assert [la.to_data() for la in net.layers] == net.spec()["layers"]


def test_roles_decide_what_is_penalised_decayed_and_bounded():
    net = symnn.Network([Dense(2, 3), "sigmoid", Dense(3, 1)], penalties=[symnn.L2(0.1)])
    d = derive(net)
    assert [p.name for _, p, _ in d.meta["penalties"]] == ["W1", "W2"]
    model = net.compile()
    from symnn.train.optimizers import Adam
    from symnn.train.session import decay_vector

    lam = decay_vector(model, Adam(weight_decay=0.5, decay="weights"))
    roles = [p.role for p in param_specs(net) for _ in range(int(np.prod(p.shape)))]
    assert [v != 0 for v in lam] == [r == "weight" for r in roles]
    from symnn.analysis.lipschitz import lipschitz_bound

    rep = lipschitz_bound(model, model.init(0))
    assert [f.name for f in rep.factors] == ["W1", "sigmoid", "W2"]
    assert rep.latex().startswith(r"L \le \lVert W^{(1)} \rVert_2 \cdot 1/4 \cdot "
                                  r"\lVert W^{(2)} \rVert_2")


def test_gradient_flow_asks_for_weights():
    assert role_of_name("W12") == ("weight", 12)
    assert role_of_name("b3") == ("bias", 3)
    assert role_of_name("Wx") is None and role_of_name("theta") is None
    h = History()
    h.append(epoch=1, loss=1.0, val_loss=None,
             grad_norm={"W10": 1.0, "b1": 5.0, "W2": 2.0, "W1": 1e-6}, time=0)
    flow = gradient_flow(h)
    assert flow.names == ["W1", "W2", "W10"]
    model = _net().compile()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 3))
    y = np.eye(2)[rng.integers(0, 2, 8)]
    assert gradient_flow(model, model.init(0), X, y).names == ["W1", "W2"]


@pytest.mark.parametrize("layer", [Dense(2, 2), Act(get_activation("tanh")), Softmax()])
def test_every_layer_class_implements_the_protocol(layer):
    for method in ("parameters", "forward", "initial_values", "to_data", "lipschitz"):
        assert callable(getattr(layer, method))
