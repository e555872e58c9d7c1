"""A function call several Maps of a tangent kernel evaluate is computed once
(:mod:`symnn.codegen.numba.share_calls`, issue 16): ``sech²(z)`` of a tanh layer, read by
the backward pass, the forward tangent and the backward tangent of an HVP.  Checked: the
kernels' code has that shape (the gradient's is left alone), the pass's choices on small
programs (only direction-free values of the reader's size, only calls two Maps make, not
a Map's whole body), and the products against the uncompiled reference and finite
differences of the gradient, for one and several directions."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn.codegen.numba.share_calls import share_calls
from symnn.ops import Arg, Map, Var
from symnn.ops._tanh import sech2


@pytest.fixture(scope="module")
def model():
    net = symnn.mlp([3, 5, 4, 3], activation="tanh", output="softmax", loss="cross_entropy",
                    name="share")
    return net.compile()


def _kernel(source: str, name: str) -> str:
    start = source.index(f"def {name}(")
    end = source.find("\n@njit", start)
    return source[start:end if end >= 0 else None]


@pytest.mark.parametrize("kind", ["hvp", "gnvp"])
def test_each_layers_sech2_is_computed_once(model, kind):
    code = _kernel(model.source, f"share_{kind}")
    assert code.count("fm_sech2(") == 2, code  # one Map per layer, not one per reader
    for z in ("z1", "z2"):
        assert f"# sech2_{z} = sech²({z})" in code
        assert code.count(f"o_sech2_{z} + ri") >= 2  # read by two Maps or more
    grad = _kernel(model.source, "share_loss_grad")
    assert grad.count("fm_sech2(") == 2 and "sech2_z" not in grad


def _maps(kset_names=("d",), n=4):
    z, g, d, w = (Var(s, "sample", (n,)) for s in ("z", "g", "d", "w"))
    small = Var("s", "sample", (2,))
    u, v, x = sp.symbols("u v x", real=True)
    return z, g, d, w, small, u, v, x


def test_the_pass_shares_only_direction_free_calls_of_two_readers():
    z, g, d, w, small, u, v, x = _maps()
    m1 = Map(Var("delta", "sample", (4,)), (u * sech2(x),), (Arg(u, g), Arg(x, z)))
    m2 = Map(Var("a_dot", "sample", (4,)), (v * sech2(x),), (Arg(v, d), Arg(x, z)))
    ops = share_calls([m1, m2], {d})
    assert [op.out.name for op in ops] == ["sech2_z", "delta", "a_dot"]
    assert ops[2].exprs[0] == sp.Symbol("d", real=True) * sp.Symbol("sech2_z", real=True)
    assert {a.var.name for a in ops[2].args} == {"d", "sech2_z"}
    # a call of a value that moves with the direction is not shared
    m3 = Map(Var("b_dot", "sample", (4,)), (sech2(v),), (Arg(v, d),))
    m4 = Map(Var("c_dot", "sample", (4,)), (u * sech2(v),), (Arg(u, g), Arg(v, d)))
    assert share_calls([m3, m4], {d}) == [m3, m4]
    # nor a call only one Map makes, nor one that is already a Map's whole body
    assert share_calls([m1], {d}) == [m1]
    m5 = Map(Var("s2", "sample", (4,)), (sech2(x),), (Arg(x, z),))
    assert share_calls([m5, m1, m2], {d}) == [m5, m1, m2]
    # nor a call of a value read at a fixed component, or of another size
    m6 = Map(Var("e", "sample", (2,)), (v * sech2(x),), (Arg(v, small), Arg(x, z, 0)))
    m7 = Map(Var("f", "sample", (2,)), (sech2(x) + v,), (Arg(v, small), Arg(x, z, 0)))
    assert share_calls([m6, m7], {d}) == [m6, m7]


def test_a_constant_body_is_left_alone():
    """A Map whose body is a plain 0 (a zero tangent: the property tests' RNN + Graph('add')
    case) passed through the pass; it crashed on ``int.xreplace`` before (lead, round 7)."""
    z, g, d, w, small, u, v, x = _maps()
    zero = Map(Var("t0", "sample", (4,)), (0,), ())
    m1 = Map(Var("delta", "sample", (4,)), (u * sech2(x),), (Arg(u, g), Arg(x, z)))
    m2 = Map(Var("a_dot", "sample", (4,)), (v * sech2(x),), (Arg(v, d), Arg(x, z)))
    ops = share_calls([zero, m1, m2], {d})
    assert ops[0] is zero and [op.out.name for op in ops[1:]] == ["sech2_z", "delta", "a_dot"]


@pytest.mark.parametrize("B", [1, 9, 300])
def test_products_match_the_reference(model, B):
    rng = np.random.default_rng(B)
    theta = model.init(seed=2) + 0.1 * rng.standard_normal(model.n_params)
    X = rng.standard_normal((B, 3))
    y = rng.integers(0, 3, B)
    V = rng.standard_normal((3, model.n_params))
    for kind in ("hvp", "gnvp"):
        for v in (V[0], V):
            got = getattr(model, kind)(theta, v, X, y)
            want = getattr(model.reference, kind)(theta, v, X, y)
            err = np.max(np.abs(got - want)) / np.max(np.abs(want))
            assert err <= 1e-12, (kind, v.shape, err)


def test_hvp_matches_finite_differences_of_the_gradient(model):
    rng = np.random.default_rng(7)
    theta = model.init(seed=3)
    X = rng.standard_normal((6, 3))
    y = rng.integers(0, 3, 6)
    v = rng.standard_normal(model.n_params)
    h = 1e-5
    fd = (model.loss_and_grad(theta + h * v, X, y)[1]
          - model.loss_and_grad(theta - h * v, X, y)[1]) / (2 * h)
    got = model.hvp(theta, v, X, y)
    assert np.max(np.abs(got - fd)) <= 1e-7 * max(1.0, np.max(np.abs(fd)))
