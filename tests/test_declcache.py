"""The declaration index (symnn.codegen.declcache): a warm compile derives nothing, and an
entry is never reused for another declaration nor trusted when damaged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn.codegen import declcache as D

X = np.array([[0.1, -0.4], [0.7, 0.2], [-0.3, 0.5]])
Y = np.array([0.5, -0.2, 0.1])


def _net(act="tanh", **kw):
    return symnn.mlp([2, 3, 1], activation=act, loss="mse", **kw)


def _check(model):
    """The compiled kernels agree with the uncompiled reference of *this* declaration."""
    theta = model.init(seed=1)
    L, g = model.loss_and_grad(theta, X, Y)
    ref = symnn.compile_model(model.declared, dtype=model.dtype, cache=False).reference
    L0, g0 = ref.loss_and_grad(theta, X, Y)
    tol = 1e-12 if model.dtype == np.float64 else 1e-5
    assert abs(L - L0) <= tol * max(1.0, abs(L0))
    np.testing.assert_allclose(g, g0, rtol=tol * 10, atol=tol)


def test_keys_differ_by_activation_option_dtype():
    base = D.declaration_key(_net(), "float64")
    assert base == D.declaration_key(_net(), "float64")  # deterministic
    others = [
        D.declaration_key(_net("sigmoid"), "float64"),
        D.declaration_key(_net(), "float32"),
        D.declaration_key(_net(penalties=[symnn.L2(1e-3)]), "float64"),
        D.declaration_key(_net(penalties=[symnn.L2(2e-3)]), "float64"),
        D.declaration_key(symnn.mlp([2, 3, 1], activation="tanh", loss="mae"), "float64"),
        D.declaration_key(symnn.mlp([2, 4, 1], activation="tanh", loss="mse"), "float64"),
    ]
    assert None not in others
    assert len({base, *others}) == 1 + len(others)


def test_custom_lambdas_of_one_name_get_different_keys():
    t = sp.Symbol("t")
    a = symnn.Activation.from_lambda(sp.Lambda(t, t**3), name="f")
    b = symnn.Activation.from_lambda(sp.Lambda(t, t**3 + t), name="f")
    ka = D.declaration_key(symnn.Network([symnn.Dense(2, 3), a, symnn.Dense(3, 1)]), "float64")
    kb = D.declaration_key(symnn.Network([symnn.Dense(2, 3), b, symnn.Dense(3, 1)]), "float64")
    assert ka is not None and kb is not None and ka != kb


def test_custom_model_is_not_indexed():
    x, w = sp.symbols("x w", real=True)
    model = symnn.Model(w * x, inputs=[x], params=[w], loss="mse")
    assert D.declaration_key(model, "float64") is None


def test_warm_compile_derives_nothing_and_is_exact(tmp_path):
    cold = _net().compile(cache_dir=tmp_path)
    assert cold._derived is not None  # a miss derives …
    entries = list((tmp_path / D.INDEX_DIR).glob("*.json"))
    assert len(entries) == 1  # … and records the declaration
    warm = _net().compile(cache_dir=tmp_path)
    assert warm._derived is None  # a hit derives nothing
    assert warm.source == cold.source
    assert warm.param_shapes == cold.param_shapes
    assert (warm.n_inputs, warm.n_outputs) == (cold.n_inputs, cold.n_outputs)
    assert warm.generated == cold.generated
    _check(warm)
    assert warm.derived.program.fingerprint() == cold.derived.program.fingerprint()


@pytest.mark.parametrize("variant", [
    lambda: _net("sigmoid"),
    lambda: _net(penalties=[symnn.L2(0.5)]),
])
def test_near_identical_declarations_get_their_own_kernels(tmp_path, variant):
    first = _net().compile(cache_dir=tmp_path)
    other = variant().compile(cache_dir=tmp_path)
    assert other._derived is not None  # not found under the first one's entry
    assert other.source != first.source
    _check(other)
    again = variant().compile(cache_dir=tmp_path)
    assert again._derived is None and again.source == other.source
    _check(again)


def test_dtype_gets_its_own_kernels(tmp_path):
    _net().compile(cache_dir=tmp_path)
    m32 = _net().compile(dtype="float32", cache_dir=tmp_path)
    assert m32._derived is not None and m32.dtype == np.float32
    _check(symnn.compile_model(_net(), dtype="float32", cache_dir=tmp_path))


def _entry(tmp_path):
    (path,) = (tmp_path / D.INDEX_DIR).glob("*.json")
    return path


def _rewrite(path, body: str, checksum: str | None = None):
    from symnn.codegen.cache import _CHECK_PREFIX, _checksum

    path.write_text(f"{_CHECK_PREFIX}{checksum or _checksum(body)}\n{body}")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bad_checksum", "wrong_module",
                                    "wrong_source_hash", "missing_field", "module_deleted"])
def test_damaged_entry_falls_back_to_deriving(tmp_path, damage):
    other = _net("sigmoid").compile(cache_dir=tmp_path)  # a second module in the cache
    for p in (tmp_path / D.INDEX_DIR).glob("*.json"):
        p.unlink()
    model = _net().compile(cache_dir=tmp_path)
    path = _entry(tmp_path)
    text = path.read_text()
    head, body = text.split("\n", 1)
    entry = json.loads(body)
    if damage == "garbage":
        path.write_text("not json at all")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "bad_checksum":
        entry["generated"]["n_params"] += 1
        _rewrite(path, json.dumps(entry), checksum="0" * 64)
    elif damage == "wrong_module":  # points at another declaration's (intact) module
        entry["module_key"] = other.module.__name__[len("symnn_"):] + "0" * 24
        _rewrite(path, json.dumps(entry))
    elif damage == "wrong_source_hash":
        entry["source_sha256"] = "f" * 64
        _rewrite(path, json.dumps(entry))
    elif damage == "missing_field":
        del entry["layout"]
        _rewrite(path, json.dumps(entry))
    else:
        import sys
        from pathlib import Path

        Path(model.module.__file__).unlink()
        sys.modules.pop(model.module.__name__)  # as in a new process
    again = _net().compile(cache_dir=tmp_path)
    assert again._derived is not None  # derived, not trusted
    assert again.source == model.source
    _check(again)
    # the entry is rewritten, so the next process finds it again
    assert _net().compile(cache_dir=tmp_path)._derived is None


def test_uncached_compile_writes_no_index(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMNN_CACHE_DIR", str(tmp_path))
    m = _net().compile(cache=False)
    assert m._derived is not None
    assert not (tmp_path / D.INDEX_DIR).exists()


# -- model files: symnn.load_compiled ---------------------------------------------------------


def _saved(tmp_path, net, name="net.npz", dtype="float64"):
    model = net.compile(dtype=dtype, cache_dir=tmp_path / "k")
    theta = model.init(seed=2)
    path = tmp_path / name
    symnn.save(path, model, theta)
    return path, theta


def test_load_compiled_warm_needs_no_declaration(tmp_path):
    path, theta = _saved(tmp_path, _net())
    first, params, scaler = symnn.load_compiled(path, cache_dir=tmp_path / "k")
    assert scaler is None and np.array_equal(params, theta)
    warm, params, _ = symnn.load_compiled(path, cache_dir=tmp_path / "k")
    assert warm._declared is None and warm._derived is None  # nothing rebuilt, derived
    assert warm.source == first.source and warm.param_shapes == first.param_shapes
    assert (warm.name, warm.loss_name, warm.input_shape) == (first.name, "mse", (2,))
    _check(warm)  # rebuilds the declaration on demand, and agrees with its reference
    assert repr(warm.declared) == repr(_net())


def test_load_compiled_files_differing_in_activation_or_dtype(tmp_path):
    a, _ = _saved(tmp_path, _net(), "a.npz")
    b, _ = _saved(tmp_path, _net("sigmoid"), "b.npz")
    c, _ = _saved(tmp_path, _net(), "c.npz", dtype="float32")
    models = []
    for _ in range(2):  # cold, then warm
        models = [symnn.load_compiled(p, cache_dir=tmp_path / "k")[0] for p in (a, b, c)]
    assert [m._declared is None for m in models] == [True, True, True]
    assert len({m.source for m in models}) == 3
    assert [m.dtype for m in models] == [np.float64, np.float64, np.float32]
    for m in models:
        _check(m)


def test_load_compiled_custom_lambda(tmp_path):
    t = sp.Symbol("t")
    nets = [symnn.Network([symnn.Dense(2, 3), symnn.Activation.from_lambda(
        sp.Lambda(t, body), name="f"), symnn.Dense(3, 1)]) for body in (t**3, t**3 + t)]
    paths = [_saved(tmp_path, n, f"{i}.npz")[0] for i, n in enumerate(nets)]
    for _ in range(2):
        models = [symnn.load_compiled(p, cache_dir=tmp_path / "k")[0] for p in paths]
    assert models[0].source != models[1].source
    for m in models:
        _check(m)


def test_load_compiled_new_process_imports_no_sympy(tmp_path):
    import os
    import subprocess
    import sys

    path, theta = _saved(tmp_path, _net())
    ref = _net().compile(cache=False).reference.loss_and_grad(theta, X, Y)
    code = (
        "import sys, numpy as np, symnn\n"
        f"model, params, _ = symnn.load_compiled({str(path)!r})\n"
        f"L, g = model.loss_and_grad(params, np.array({X.tolist()}), np.array({Y.tolist()}))\n"
        "print(repr(L), ' '.join(map(repr, g.tolist())), 'sympy' in sys.modules,\n"
        "      'symnn.derive' in sys.modules, 'symnn.declare' in sys.modules)\n"
    )
    env = dict(os.environ, SYMNN_CACHE_DIR=str(tmp_path / "k"))
    outs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=600) for _ in range(2)]
    for out in outs:
        assert out.returncode == 0, out.stderr[-2000:]
    *numbers, sympy_loaded, derive_loaded, declare_loaded = outs[1].stdout.split()
    assert (sympy_loaded, derive_loaded, declare_loaded) == ("False", "False", "False")
    L, g = float(numbers[0]), np.array([float(x) for x in numbers[1:]])
    assert abs(L - ref[0]) <= 1e-12 and np.allclose(g, ref[1], rtol=1e-11, atol=1e-13)


def test_unindexable_declaration_still_compiles(tmp_path, monkeypatch):
    def broken(self):
        raise symnn.ModelFileError("no plain form")

    monkeypatch.setattr(symnn.Network, "spec", broken)
    assert D.declaration_key(_net(), "float64") is None
    model = _net().compile(cache_dir=tmp_path)
    assert model._derived is not None
    assert not (tmp_path / D.INDEX_DIR).exists()
    _check(model)
