"""Smoke test of ``benchmarks/bench_layers.py`` in its tiny mode: the torch peers, fed the
weights copied from symnn's θ, agree with symnn's gradient (float64 to 1e-9, float32 to
1e-3), every column is timed, and the check bites on a wrong weight. No timing assertions.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

torch = pytest.importorskip("torch")

import bench_layers as bl  # noqa: E402


@pytest.fixture(scope="module")
def tiny_results():
    return bl.main(["--tiny", "--batches", "1,3", "--reuse-cache", "--json"])


@pytest.mark.parametrize("kind", ["conv", "rnn"])
def test_tiny_run_verifies_and_times_every_peer(tiny_results, kind):
    rows = tiny_results[kind]["rows"]
    assert set(rows) == {"B=1", "B=3"}
    for row in rows.values():
        errs = row["errors"]
        assert errs["torch f64"] <= bl.TOL64
        assert errs["torch f32"] <= bl.TOL32
        for col in ("symnn", "torch f64", "torch f32"):
            assert isinstance(row[col], float) and row[col] > 0, (col, row[col])
        assert ("jax" in row) == ("jax" in errs)


def test_json_lines(tiny_results, capsys):
    bl.emit_json("rnn", tiny_results["rnn"]["rows"], 1.0)
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"bench": "layers", "case": "rnn compile", "seconds": 1.0}
    cases = {rec["case"] for rec in lines}
    assert {"rnn B=1 symnn", "rnn B=3 torch f64", "rnn B=3 torch f32"} <= cases


@pytest.mark.parametrize("kind", ["conv", "rnn"])
def test_check_bites_on_a_wrong_weight(kind):
    s = bl.TINY
    net = bl.conv_net(s) if kind == "conv" else bl.rnn_net(s)
    model = net.compile()
    theta = model.init(0)
    X, Y = bl.problem(kind, s, 3)
    g = model.loss_and_grad(theta, X, Y)[1]
    params = bl.split_theta(net, theta)
    _, grad = bl.torch_candidate(kind, s, params, X, Y, torch.float64)
    assert bl.rel_err(grad(), g) <= bl.TOL64
    wrong = dict(params)
    name = net.param_shapes[0][0]  # the first layer's weight
    wrong[name] = params[name] * (1 + 1e-3)
    _, grad_wrong = bl.torch_candidate(kind, s, wrong, X, Y, torch.float64)
    assert bl.rel_err(grad_wrong(), g) > bl.TOL64


def test_split_theta_is_the_declared_layout():
    net = bl.rnn_net(bl.TINY)
    theta = np.arange(float(net.n_params))
    parts = bl.split_theta(net, theta)
    assert [k for k, _ in net.param_shapes] == list(parts)
    np.testing.assert_array_equal(np.concatenate([a.ravel() for a in parts.values()]), theta)
