"""The top-level API: names a user reaches as ``symnn.X``, loaded lazily; notebook reprs."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import symnn

OPTIMIZERS = ["SGD", "Momentum", "Nesterov", "Adagrad", "RMSProp", "Adam",
              "Newton", "LevenbergMarquardt", "LBFGS", "NewtonCG"]


@pytest.mark.parametrize("name", sorted(symnn._LAZY))
def test_lazy_names_are_the_objects_of_their_modules(name):
    module = importlib.import_module(symnn._LAZY[name])
    assert getattr(symnn, name) is getattr(module, name)
    assert name in dir(symnn) and name in symnn.__all__


def test_every_optimizer_and_the_io_and_export_functions_are_top_level():
    from symnn import train

    for name in OPTIMIZERS:
        assert getattr(symnn, name) is getattr(train, name)
    for name in ("export_latex", "export_markdown", "load", "save", "fit", "gradcheck"):
        assert callable(getattr(symnn, name))
    from symnn import LBFGS, Adam, export_latex  # noqa: F401  (from-imports work too)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Adma'"):
        symnn.Adma  # noqa: B018
    assert not hasattr(symnn, "Adma")


def test_import_symnn_loads_no_later_stage():
    """``import symnn`` loads the declaration layer only: no Numba, no trainer, no NumPy
    work beyond SymPy's own; the lazy names load their stage on first use."""
    code = ("import sys, json, symnn; before = sorted(m for m in sys.modules if m in "
            "('numba', 'symnn.train', 'symnn.check', 'symnn.codegen.model', 'sklearn', "
            "'symnn.printing.document'));"
            "symnn.Adam; after = 'symnn.train' in sys.modules; print(json.dumps([before, after]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    before, after = json.loads(out.strip().splitlines()[-1])
    assert before == []
    assert after is True


def test_all_names_resolve():
    for name in symnn.__all__:
        assert getattr(symnn, name) is not None


def test_train_through_top_level_names(tmp_path):
    net = symnn.mlp([2, 3, 1], activation=sp.tanh)
    model = net.compile()
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (32, 2))
    y = X[:, 0] * X[:, 1]
    res = symnn.fit(model, X, y, symnn.Adam(lr=0.05), epochs=5, progress=False)
    symnn.save(tmp_path / "m.npz", model, res.params)
    loaded = symnn.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(np.asarray(loaded.params), res.params)
    tex = symnn.export_latex(net, tmp_path / "m.tex")
    assert (tmp_path / "m.tex").exists() or isinstance(tex, str)


# -- notebook representations ---------------------------------------------------------------

def test_gradient_dict_takes_names_and_renders_latex():
    g = symnn.mlp([2, 2, 1]).gradient()
    assert g["W1_11"] is g[sp.Symbol("W1_11", real=True)]
    assert "W1_12" in g and "nope" not in g
    assert len(g) == 9
    latex = g._repr_latex_()
    assert latex.startswith("$") and latex.count(r"\frac{\partial L}") == 9


def test_network_history_and_check_report_render_html():
    net = symnn.mlp([2, 3, 1], "tanh")
    html = net._repr_html_()
    assert "<table" in html and "W1" in html and "(3, 2)" in html and "13 parameters" in html
    model = net.compile()
    X = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, -0.6]])
    y = np.array([0.1, 0.2, 0.3])
    hist = symnn.fit(model, X, y, "sgd", epochs=25, progress=False).history
    html = hist._repr_html_()
    assert "<table" in html and "25 epochs" in html and "…" in html  # first and last rows
    rep = symnn.gradcheck(model, model.init(0), X, y)
    html = rep._repr_html_()
    assert html.startswith("<pre><b>") and "PASSED" in html
    assert net.equations()._repr_latex_()


def test_html_is_escaped():
    from symnn.printing.html import table

    out = table(["<a>"], [["<script>"]], caption="x & y")
    assert "<script>" not in out and "&lt;script&gt;" in out and "x &amp; y" in out
