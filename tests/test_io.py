"""Save / load: round trips bit-exact, damaged and tampered files refused, no pickle."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn.errors import ModelFileError
from symnn.train import Adam, History, fit, load, save
from symnn.train import io as sio


@pytest.fixture(scope="module")
def trained():
    # the architecture of test_fit's classifier: compiled once when both modules run
    net = symnn.mlp([4, 6, 3], activation="tanh", output="softmax", loss="cross_entropy")
    model = net.compile()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)
    res = fit(model, X, y, Adam(lr=0.05), epochs=5, batch_size=8, progress=False)
    return model, X, res


def test_round_trip_predicts_bit_exact(trained, tmp_path):
    model, X, res = trained
    path = tmp_path / "model.npz"
    save(path, model, res.params, history=res.history, metadata={"run": "a", "n": [1, 2]})
    declared, params, history = load(path)
    assert repr(declared) == repr(model.declared)
    assert declared.spec() == model.declared.spec()
    assert params.dtype == np.float64
    np.testing.assert_array_equal(params, res.params)
    np.testing.assert_array_equal(history.loss, res.history.loss)
    assert history.grad_norms.keys() == res.history.grad_norms.keys()
    loaded = load(path)
    assert loaded.metadata == {"run": "a", "n": [1, 2]}
    assert loaded.info["format"] == "symnn-model"
    again = loaded.compile()
    np.testing.assert_array_equal(again.predict(params, X), model.predict(res.params, X))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_float32_and_penalties_round_trip(tmp_path):
    net = symnn.mlp([2, 3, 1], activation="sigmoid", output="sigmoid", loss="bce",
                    penalties=[symnn.L2(1e-3, params=["W1"]), symnn.L1(0.5)], name="small")
    theta = np.random.default_rng(1).normal(size=net.n_params).astype(np.float32)
    save(tmp_path / "f32.npz", net, theta)
    loaded = load(tmp_path / "f32.npz")
    assert loaded.dtype == np.float32 and loaded.params.dtype == np.float32
    np.testing.assert_array_equal(loaded.params, theta)
    assert loaded.declared.spec() == net.spec()


def test_custom_model_and_custom_activation_round_trip(tmp_path):
    x, a, b = sp.symbols("x a b", real=True)
    model = symnn.Model(a * sp.exp(-b * x) + sp.Rational(1, 3) * sp.tanh(x) + sp.Float(0.25),
                        inputs=[x], params=[a, b], loss="huber", name="decay")
    save(tmp_path / "m.npz", model, np.array([1.5, 0.5]))
    declared, params, _ = load(tmp_path / "m.npz")
    assert declared.exprs == model.exprs
    assert declared.inputs == model.inputs and declared.params == model.params
    assert declared.loss.name == "huber"

    t = sp.Symbol("t")
    net = symnn.Network([symnn.Dense(2, 3), sp.Lambda(t, t / (1 + sp.Abs(t))),
                         symnn.Dense(3, 1)], name="softsign")
    save(tmp_path / "n.npz", net, np.zeros(net.n_params))
    got = load(tmp_path / "n.npz").declared
    u = sp.Symbol("u", real=True)
    assert sp.simplify(got.layers[1].activation.apply(u) - u / (1 + sp.Abs(u))) == 0


def test_expression_tree_is_whitelisted():
    x = sp.Symbol("x", positive=True)
    e = sp.Piecewise((sp.log(x), x > 1), (sp.sqrt(x) * sp.pi, True))
    assert sio.expr_from_data(sio.expr_to_data(e)) == e
    with pytest.raises(ModelFileError, match="not one a symnn model file may contain"):
        sio.expr_from_data({"f": "Function", "a": []})
    with pytest.raises(ModelFileError, match="malformed"):
        sio.expr_from_data({"f": "Symbol", "name": "x", "assumptions": {"__class__": True}})
    with pytest.raises(ModelFileError, match="cannot save"):
        sio.expr_to_data(sp.Function("f")(x))


def _rewrite(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _parts(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_truncated_file_is_refused(trained, tmp_path):
    model, _, res = trained
    path = tmp_path / "t.npz"
    save(path, model, res.params)
    raw = path.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 10, 20):
        path.write_bytes(raw[:cut])
        with pytest.raises(ModelFileError, match="truncated|damaged|not a symnn"):
            load(path)


def test_tampered_parameters_fail_the_checksum(trained, tmp_path):
    model, _, res = trained
    path = tmp_path / "t.npz"
    save(path, model, res.params)
    parts = _parts(path)
    parts["theta"] = parts["theta"].copy()
    parts["theta"][0] += 1e-9
    _rewrite(path, **parts)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(path)


def test_tampered_spec_fails_the_checksum(trained, tmp_path):
    model, _, res = trained
    path = tmp_path / "t.npz"
    save(path, model, res.params)
    parts = _parts(path)
    meta = json.loads(parts["meta"].tobytes())
    meta["spec"]["layers"][1]["activation"] = "relu"  # tanh → relu
    parts["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    _rewrite(path, **parts)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(path)


def test_missing_keys_and_wrong_shapes(trained, tmp_path):
    model, _, res = trained
    path = tmp_path / "t.npz"
    save(path, model, res.params)
    parts = _parts(path)
    _rewrite(path, theta=parts["theta"])
    with pytest.raises(ModelFileError, match=r"missing array\(s\) \['meta'\]"):
        load(path)
    # a consistent checksum but a parameter vector that does not fit the network
    meta = json.loads(parts["meta"].tobytes())
    theta = np.zeros(5)
    meta["n_params"] = 5
    meta["sha256"] = sio._digest(meta, theta)
    _rewrite(path, theta=theta, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ModelFileError, match="does not match the rebuilt network"):
        load(path)
    meta["dtype"] = "float32"
    _rewrite(path, theta=theta, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ModelFileError, match="dtype"):
        load(path)


def test_pickled_objects_are_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    _rewrite(path, theta=np.zeros(3), meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError):
        load(path)
    path.write_text("not a zip")
    with pytest.raises(ModelFileError):
        load(path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError, match="unexpected member 'readme.txt'"):
        load(path)
    with pytest.raises(ModelFileError, match="cannot read"):
        load(tmp_path / "absent.npz")


def test_save_is_atomic(trained, tmp_path, monkeypatch):
    model, _, res = trained
    path = tmp_path / "keep.npz"
    save(path, model, res.params)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(ModelFileError, match="keep.npz: cannot write the model file: disk full"):
        save(path, model, res.params * 2)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.npz"]


def test_unstorable_things_are_refused(trained, tmp_path):
    model, _, res = trained
    with pytest.raises(ModelFileError, match="JSON"):
        save(tmp_path / "x.npz", model, res.params, metadata={"f": object()})
    with pytest.raises(symnn.ShapeError):
        save(tmp_path / "x.npz", model, res.params[:-1])
    assert isinstance(History.from_dict(res.history.to_dict()), History)


# -- the saved model carries its preprocessing (issue 11, item 1) -----------------------------

def test_standardizer_round_trips_and_predict_applies_it(trained, tmp_path):
    from symnn.data import Standardizer

    model, X, res = trained
    scaler = Standardizer.fit(X * 10 + 3)
    path = tmp_path / "scaled.npz"
    save(path, model, res.params, scaler=scaler)
    loaded = load(path)
    assert loaded.scaler == scaler and loaded.info["format_version"] == 2
    raw = X * 10 + 3
    np.testing.assert_allclose(loaded.predict(raw),
                               model.predict(res.params, scaler.transform(raw)))
    # without a scaler the file stays version 1 and predict is the plain network
    save(tmp_path / "plain.npz", model, res.params)
    plain = load(tmp_path / "plain.npz")
    assert plain.scaler is None and plain.info["format_version"] == 1
    np.testing.assert_allclose(plain.predict(X), model.predict(res.params, X))


def test_tampered_standardizer_is_refused(trained, tmp_path):
    from symnn.data import Standardizer

    model, X, res = trained
    path = tmp_path / "scaled.npz"
    save(path, model, res.params, scaler=Standardizer.fit(X))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_scale"] = arrays["x_scale"] * 2  # the checksum covers the scaler too
    _rewrite(path, **arrays)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(path)
    with pytest.raises(ModelFileError, match="Standardizer"):
        save(path, model, res.params, scaler={"mean": [0, 0, 0, 0]})


def test_iris_standardised_then_saved_scores_on_raw_data(tmp_path):
    """The issue's case: trained with [data] standardize = true, loaded, raw inputs."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris

    from symnn.data import load_dataset

    net = symnn.mlp([4, 8, 3], output="softmax", loss="cross_entropy", name="iris")
    X, y, scaler = load_dataset("iris", net, {"standardize": True})
    model = net.compile()
    res = fit(model, X, y, Adam(lr=0.02), epochs=60, batch_size=16, progress=False, seed=0)
    save(tmp_path / "iris.npz", model, res.params, scaler=scaler)
    d = load_iris()
    pred = load(tmp_path / "iris.npz").predict(d.data)
    assert np.mean(np.argmax(pred, axis=1) == d.target) > 0.9


def test_load_refuses_non_files_and_non_paths(tmp_path):
    import os

    from symnn.errors import ArgumentError

    with pytest.raises(ArgumentError, match="expected the path of a model file"):
        load(None)
    os.mkfifo(tmp_path / "f.npz")
    with pytest.raises(ModelFileError, match=r"not a regular file \(a FIFO\)"):
        load(tmp_path / "f.npz")
    os.symlink("/dev/zero", tmp_path / "z.npz")
    with pytest.raises(ModelFileError, match=r"not a regular file \(a character device\)"):
        load(tmp_path / "z.npz")


def test_malformed_history_is_an_error_not_an_empty_history(trained, tmp_path):
    model, X, res = trained
    path = tmp_path / "h.npz"
    save(path, model, res.params, history=res.history)
    with np.load(path) as z:
        theta, meta = z["theta"], json.loads(z["meta"].tobytes())
    meta["history"] = {"rows": []}
    meta["sha256"] = sio._digest(meta, theta)
    _rewrite(path, theta=theta, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ModelFileError, match="history is malformed"):
        load(path)


def test_custom_activation_name_with_a_newline_is_refused_on_load(tmp_path):
    t = sp.Symbol("t", real=True)
    net = symnn.Network([symnn.Dense(2, 2), sp.Lambda(t, t / (1 + sp.Abs(t))),
                         symnn.Dense(2, 1)])
    path = tmp_path / "a.npz"
    theta = np.zeros(net.n_params)
    save(path, net, theta)
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes())
    meta["spec"]["layers"][1]["activation"] = "soft\nsign"
    meta["sha256"] = sio._digest(meta, theta)
    _rewrite(path, theta=theta, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ModelFileError, match="is not a name of letters and digits"):
        load(path)
