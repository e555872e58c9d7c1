"""The bias of a tangent product summed in place is added where the sum is read.

In a Hessian-vector product the tangent of a hidden pre-activation is ``ż = V a + v_b + W ȧ``
(:func:`symnn.codegen.numba.passes.sum_plan`: two products into one buffer).  When only
Maps read ``ż``, :func:`symnn.codegen.numba.passes.deferred_biases` moves ``v_b`` into the
Map's loop instead of a pass of its own before the first product.  Checked here: the code
has that shape (and keeps the bias in the product where a non-Map reads the sum), and the
products still equal the uncompiled reference for one and several directions, at batches
on both sides of the BLAS thresholds.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import symnn

RTOL = 1e-12


@pytest.fixture(scope="module")
def model():
    net = symnn.mlp([3, 5, 5, 3], activation="tanh", output="softmax", loss="cross_entropy",
                    name="sum_bias")
    return net.compile()


def _kernel(source: str, name: str) -> str:
    start = source.index(f"def {name}(")
    end = source.find("\n@njit", start)
    return source[start:end if end >= 0 else None]


@pytest.mark.parametrize("kind", ["hvp", "gnvp"])
def test_hidden_tangent_bias_is_read_in_the_map(model, kind):
    code = _kernel(model.source, f"sum_bias_{kind}")
    # the layer-2 tangent: its bias is not written by the first product (hasb = 0) …
    first = re.search(r"# \w+ = vW2 a1 \+ vb2\n\s*(_mm_nt\(.*\))", code)
    assert first is not None, code
    assert "o_vb2" not in first.group(1)
    # … but read by the Map of the activation's tangent, per direction
    assert re.search(r"work\[_u\(o_vb2 \+ k \* 5 \+ j\)\]", code)
    # the output layer's tangent is read by a row dot (not a Map): its bias stays in place
    out = re.search(r"# \w+ = vW3 a2 \+ vb3\n\s*(_mm_nt\(.*\))", code)
    assert out is not None and "o_vb3, 1" in out.group(1)


@pytest.mark.parametrize("B", [1, 9, 300])
def test_products_match_the_reference(model, B):
    rng = np.random.default_rng(B)
    theta = model.init(seed=2) + 0.1 * rng.standard_normal(model.n_params)
    X = rng.standard_normal((B, 3))
    y = rng.integers(0, 3, B)
    V = rng.standard_normal((3, model.n_params))
    ref = model.reference
    for kind in ("hvp", "gnvp"):
        for v in (V[0], V):
            got = getattr(model, kind)(theta, v, X, y)
            want = getattr(ref, kind)(theta, v, X, y)
            err = np.max(np.abs(got - want)) / np.max(np.abs(want))
            assert err <= RTOL, (kind, v.shape, err)
