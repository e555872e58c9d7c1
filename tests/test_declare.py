"""Declarations: names, shapes, parameter layout, and clear errors on bad input."""

from __future__ import annotations

import pytest
import sympy as sp

import symnn
from symnn.errors import DeclarationError, SizeLimitError, SymnnError, UnknownNameError


def test_parameter_layout_and_names():
    net = symnn.mlp([3, 5, 2], activation="relu", output="softmax", loss="cross_entropy")
    assert net.param_shapes == [("W1", (5, 3)), ("b1", (5,)), ("W2", (2, 5)), ("b2", (2,))]
    assert net.n_params == 15 + 5 + 10 + 2


@pytest.mark.parametrize("bad", ["tanhh", "soft_max", "ReLu6"])
def test_unknown_activation(bad):
    with pytest.raises(UnknownNameError, match=repr(bad)) as err:
        symnn.mlp([2, 3, 1], activation=bad)
    assert isinstance(err.value, ValueError) and isinstance(err.value, SymnnError)
    assert "known activations" in str(err.value) and "layer 1" in str(err.value)


def test_unknown_loss():
    with pytest.raises(UnknownNameError, match="known losses"):
        symnn.mlp([2, 1], loss="hinge_squared")


def test_mismatched_layer_sizes_name_the_layer():
    with pytest.raises(DeclarationError, match=r"layer 2 \(Dense\(4, 1\)\).*gives 3"):
        symnn.Network([symnn.Dense(2, 3), "tanh", symnn.Dense(4, 1)])


def test_bad_dense_sizes():
    with pytest.raises(DeclarationError, match="n_out must be a positive integer"):
        symnn.Dense(3, 0)


def test_custom_model_parameter_missing_from_expression():
    x, a, b, c = sp.symbols("x a b c")
    with pytest.raises(DeclarationError, match=r"\['c'\] do not appear"):
        symnn.Model(a * sp.exp(-b * x), inputs=[x], params=[a, b, c])


def test_custom_model_undeclared_symbol():
    x, a, k = sp.symbols("x a k")
    with pytest.raises(DeclarationError, match=r"undeclared symbols \['k'\]"):
        symnn.Model(a * sp.exp(-k * x), inputs=[x], params=[a])


def test_non_scalar_lambda_activation():
    t, u = sp.symbols("t u")
    with pytest.raises(DeclarationError, match="exactly one"):
        symnn.mlp([2, 2, 1], activation=sp.Lambda((t, u), t * u))
    with pytest.raises(DeclarationError, match="scalar expression"):
        symnn.mlp([2, 2, 1], activation=sp.Lambda(t, sp.Matrix([t, t])))


def test_custom_lambda_activation_is_differentiated():
    t = sp.Symbol("t")
    net = symnn.mlp([2, 2, 1], activation=sp.Lambda(t, t / (1 + sp.Abs(t))))
    eq = net.equations()
    assert "f'(z⁽¹⁾)" in str(eq)


def test_expanded_form_size_limit_names_the_alternative():
    net = symnn.mlp([64, 128, 128, 10], activation="tanh", output="softmax",
                    loss="cross_entropy")
    with pytest.raises(SizeLimitError, match="26122 parameters.*net.compile"):
        net.gradient()
    with pytest.raises(SizeLimitError, match="Hessian"):
        symnn.mlp([10, 40, 1]).hessian()


def test_penalty_naming_unknown_parameter():
    with pytest.raises(DeclarationError, match="'W3'"):
        symnn.mlp([2, 2, 1], penalties=[symnn.L2(0.1, params=["W3"])])


def test_a_softmax_of_one_unit_is_refused():
    """softmax of a single value is the constant 1: nothing before it could be learned, and
    bce of it is +inf (found by the property tests, findings B4)."""
    with pytest.raises(DeclarationError, match="softmax of one unit"):
        symnn.Network([symnn.Dense(2, 1), "softmax"], loss="bce")
    symnn.Network([symnn.Dense(2, 2), "softmax"], loss="bce")  # two units: fine
