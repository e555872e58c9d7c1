"""Round-6 hostile cases (walk): run by tests/test_hostile_layers.py in the same subprocess
as tests/_hostile_layers_cases.py (tests/_hostile_walk_cases.py appends :data:`CASES`):
a forged model file with a NaN parameter, a JSON file given as a spec, and a fit whose
loss overflows before any update.  Each entry is ``(id, expected, fragment, run)``."""

from __future__ import annotations

import json
import os

import numpy as np

import symnn

CASES: list[tuple[str, str, str, object]] = []
_NET = symnn.mlp([2, 3, 1], activation="tanh", name="walk6")
_TH = np.linspace(-1, 1, _NET.n_params)


def _nan_model_file(d):
    """A model file with a NaN parameter (checksum recomputed) loaded, then every predict
    failed with advice about the data; load now refuses it."""
    from symnn.train import io as sio

    path = os.path.join(d, "walk6-nan.npz")
    sio.save(path, _NET, _TH)
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes())
        theta = z["theta"].copy()
    theta[4] = np.nan
    meta["sha256"] = sio._digest(meta, theta, {})
    with open(path, "wb") as fh:
        np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), theta=theta)
    sio.load(path)


CASES.append(("walk6-load-nan-theta", "ModelFileError",
              "theta holds nan at index 4; symnn.save writes only finite parameters",
              _nan_model_file))


def _json_spec(d):
    path = os.path.join(d, "walk6-spec.json")
    with open(path, "w") as fh:
        json.dump({"network": {"layers": [2, 3, 1]}}, fh)
    symnn.spec.load_spec(path)


CASES.append(("walk6-spec-json", "SpecError", "this is JSON: spec files are TOML", _json_spec))


def _overflow_at_init(d):
    """y ~ 1e200: the loss overflows at the initial parameters; that is the data's scale,
    which the message used to blame on the learning rate."""
    import _hostile_layers_cases as H

    m, th, X, y = H._model("res")
    m.fit(X, 1e200 * y, epochs=1, theta0=th, check_every=0, progress=False, engine="python")


CASES.append(("walk6-fit-overflow-before-any-update", "TrainingError",
              "no update was made yet, so no learning rate causes this", _overflow_at_init))


def _save_estimator(d):
    """symnn.save(path, estimator, θ) said only "model must be a compiled model"."""
    from symnn.sklearn import SymnnRegressor

    est = SymnnRegressor(hidden_layer_sizes=(2,), max_iter=1)
    est.params_ = _TH
    symnn.save(os.path.join(d, "walk6-est.npz"), est, None)


CASES.append(("walk6-save-sklearn-estimator", "ArgumentError",
              "save(path, est.model_, est.params_)", _save_estimator))


def _huge_work_buffer(d):
    """A batch too large for a wide layer needed a work buffer of terabytes: NumPy's raw
    MemoryError before; now a SizeLimitError before anything is allocated.  (A model of the
    corpus is told it needs 10¹³ values: compiling a truly wide one costs seconds.)"""
    import _hostile_layers_cases as H

    m, th, X, y = H._model("res")
    m.generated.work_size = lambda kind, B, K=1: 10**13
    try:
        m.predict(th, X)
    finally:
        del m.generated.work_size


CASES.append(("walk6-huge-work-buffer", "SizeLimitError",
              "the predict kernel needs a work buffer of 10,000,000,000,000 values",
              _huge_work_buffer))


def _cli_csv(name: str, text: str):
    """``symnn predict MODEL --data <a CSV of text>`` (helpers of _hostile_walk_cases)."""
    def run(d):
        import _hostile_walk_cases as W

        model = W._model_file(d)
        return W._cli(lambda d: ["predict", model, "--data", W._csv(d, name, text)])(d)
    return run


# a one-line CSV whose last field is empty was "a header but no data rows", nothing more
CASES.append(("walk6-cli-csv-trailing-comma-only-line", "exit 1",
              "taken as a header because its field 3 is empty",
              _cli_csv("walk6-trail1.csv", "1,2,\n")))
CASES.append(("walk6-cli-csv-trailing-commas", "exit 1",
              "an empty field (a trailing delimiter, or a missing value?)",
              _cli_csv("walk6-trail2.csv", "1,2,\n3,4,\n")))
