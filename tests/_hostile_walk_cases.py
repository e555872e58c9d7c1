"""Round-5 hostile cases ("a new user's walk"), run by tests/test_hostile_layers.py in the
same subprocess as tests/_hostile_layers_cases.py (which appends :data:`CASES` to its own):
wrong calls of the layer classes, truncate longer than the sequence, curvature operators
given wrong vectors, model files saved with non-finite parameters, oversized metadata or a
history too long for :func:`symnn.load`, a spec with a byte-order mark, the command line
given a model file where a spec goes or an output that is one of its inputs, and the
scikit-learn estimators' ``hidden_layer_sizes``.

Each entry is ``(id, expected, fragment, run)`` as in tests/_hostile_layers_cases.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import warnings

import numpy as np

import symnn
from symnn import GRU, RNN, Conv1D, Dense, Flatten, Network

CASES: list[tuple[str, str, str, object]] = []
_D = "DeclarationError"


def _decl(cid: str, expected: str, fragment: str, build) -> None:
    """``build()`` raises, or (an "ok" case) returns True."""
    def run(d):
        assert build() is True
        return {}
    CASES.append((f"walk-{cid}", expected, fragment, run))


# -- wrong calls of the layer classes (they were Python's TypeError) ---------------------
_decl("flatten-arg", _D, "Flatten takes no arguments", lambda: Flatten(2))
_decl("flatten-kw", _D, "Flatten(start_dim=1): Flatten takes no", lambda: Flatten(start_dim=1))
_decl("dense-missing", _D, "missing a required argument: 'n_out'; call it as Dense(n_in, "
      "n_out, bias=True)", lambda: Dense(2))
_decl("dense-unknown-kw", _D, "unexpected keyword argument 'activation'",
      lambda: Dense(2, 3, activation="tanh"))
_decl("dense-bias-int", _D, "bias must be True or False", lambda: Dense(2, 3, 4))
_decl("conv-missing", _D, "missing a required argument: 'kernel_size'", lambda: Conv1D(1, 2))
_decl("gru-too-many", _D, "too many positional arguments",
      lambda: GRU(1, 2, False, 3, None, None, None, 9))
_decl("replace-ok", "ok", "", lambda: dataclasses.replace(Dense(2, 3), n_out=4).n_out == 4)
# truncate longer than the sequence: refused, not a silent no-op; truncate = T is full BPTT
_decl("rnn-truncate-long", _D, "truncate=10 is longer than the sequences (length 3)",
      lambda: RNN(2, 3, length=3, truncate=10))
_decl("gru-truncate-long-inferred", _D, "truncate=5 is longer than the sequences (length 4)",
      lambda: Network([RNN(2, 3, return_sequences=True, length=4), GRU(3, 3, truncate=5),
                       Dense(3, 1)]))
_decl("rnn-truncate-T-ok", "ok", "", lambda: RNN(2, 3, length=3, truncate=3).cuts() == set())
_decl("rnn-after-dense", _D, "needs a (time, features) sequence input",
      lambda: Network([Dense(2, 3), RNN(3, 4), Dense(4, 1)]))


# -- the curvature operators --------------------------------------------------------------

def _op(d):
    import _hostile_layers_cases as H

    from symnn.analysis import hessian_operator

    m, th, X, y = H._model("res")
    return hessian_operator(m, th, X, y), m.n_params


def _op_case(cid: str, expected: str, fragment: str, call) -> None:
    """``call(op, P)`` raises, or (an "ok" case) returns True."""
    def run(d):
        assert call(*_op(d)) is True
        return {}
    CASES.append((f"walk-op-{cid}", expected, fragment, run))


_op_case("short", "ShapeError", "multiplies a vector of shape", lambda op, P: op @ np.ones(3))
_op_case("rmatvec-short", "ShapeError", "multiplies a vector of shape",
         lambda op, P: op.rmatvec(np.ones(P + 1)))
_op_case("matmat-rows", "ShapeError", "multiplies a matrix of shape",
         lambda op, P: op @ np.ones((P - 1, 2)))
_op_case("huge-broadcast-X", "SizeLimitError", "X of shape (1000000000, 3) needs 22.4 GiB",
         lambda op, P: op.model.predict(op.theta, np.broadcast_to(0.5, (10**9, 3))))
_op_case("nan", "DataError", "contains nan at index 2",
         lambda op, P: op.matvec(np.where(np.arange(P) == 2, np.nan, 1.0)))


def _gru_flow(d):
    """A GRU looped over time (T = 17 > UNROLL_UP_TO) is analysed through its unrolled
    twin (examples/rnn_sequences.py failed at its default T = 20)."""
    from symnn.analysis import time_gradient_flow
    from symnn.codegen.model import ReferenceModel

    net = Network([GRU(1, 2, length=17), Dense(2, 1)], loss="mse")
    assert net.layers[0].looped
    th = np.linspace(-0.5, 0.5, net.n_params)
    flow = time_gradient_flow(ReferenceModel(net), th, np.ones((2, 17)), np.ones((2, 1)))
    assert flow.norms.shape == (17,) and np.all(np.isfinite(flow.norms))
    return {}


CASES.append(("walk-gru-looped-time-flow", "ok", "", _gru_flow))


# -- model files --------------------------------------------------------------------------
_NET = symnn.mlp([2, 3, 1], activation="tanh", name="walk")


def _save_case(cid: str, expected: str, fragment: str, call) -> None:
    def run(d):
        from symnn.train import io as sio

        path = os.path.join(d, f"walk-{cid}.npz")
        call(sio, path)
        assert expected != "ok" or os.path.exists(path)
        return {}
    CASES.append((f"walk-save-{cid}", expected, fragment, run))


_TH = np.linspace(-1, 1, _NET.n_params)
_save_case("path-none", "ArgumentError", "expected the path of the model file",
           lambda sio, p: sio.save(None, _NET, _TH))
_save_case("not-a-model", "ArgumentError", "model must be a compiled model",
           lambda sio, p: sio.save(p, "net", _TH))
_save_case("nan-theta", "ModelFileError", "a model file stores finite parameters",
           lambda sio, p: sio.save(p, _NET, np.where(np.arange(_NET.n_params) == 1, np.nan,
                                                     _TH)))


@contextlib.contextmanager
def _small_meta(sio, limit: int):
    old = sio.MAX_META_BYTES
    sio.MAX_META_BYTES = limit
    try:
        yield
    finally:
        sio.MAX_META_BYTES = old


def _history(n: int):
    from symnn.train.history import History

    return History.from_dict({"records": [
        {"epoch": i + 1, "loss": 1.0 / (i + 1), "grad_norm": {"W1": 0.5}, "lr": 0.1,
         "steps": 1, "time": 0.0, "val_loss": None} for i in range(n)]})


def _long_history(sio, p):
    """A history longer than load reads keeps one epoch in k (and the last), with a
    warning; the file loads (a long fit's file was refused by load)."""
    with _small_meta(sio, 20_000), warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        sio.save(p, _NET, _TH, history=_history(400))
        back = sio.load(p)
    assert any("keeps one epoch in" in str(w.message) for w in got), got
    epochs = [r["epoch"] for r in back.history.records]
    assert 1 < len(epochs) < 400 and epochs[0] == 1 and epochs[-1] == 400, epochs
    np.testing.assert_array_equal(back.params, _TH)


def _big_metadata(sio, p):
    with _small_meta(sio, 20_000):
        sio.save(p, _NET, _TH, metadata={"notes": "x" * 30_000})


_save_case("long-history-thinned", "ok", "", _long_history)
_save_case("metadata-too-big", "ModelFileError", "more than the 20000 load reads",
           _big_metadata)


def _stored_spec_extra_key(sio, p):
    """A stored spec with a top-level key nothing reads (checksum recomputed) is refused."""
    import json

    sio.save(p, _NET, _TH)
    with np.load(p) as z:
        meta = json.loads(z["meta"].tobytes())
        arrays = {n: z[n] for n in z.files if n != "meta"}
    meta["spec"]["activation"] = "lambda x: x"
    meta["sha256"] = sio._digest(meta, arrays["theta"], {})
    with open(p, "wb") as fh:
        np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    sio.load(p)


_save_case("stored-spec-extra-key", "ModelFileError", "unexpected keys ['activation']",
           _stored_spec_extra_key)


# -- spec files and the command line ------------------------------------------------------
_XOR = ('[network]\nname = "xor"\nlayers = [2, 2, 1]\nactivation = "sigmoid"\n'
        'loss = "mse"\n')


def _bom_spec(d):
    path = os.path.join(d, "walk-bom.toml")
    with open(path, "wb") as fh:
        fh.write(b"\xef\xbb\xbf" + _XOR.replace("\n", "\r\n").encode())
    assert symnn.spec.load_spec(path).declared.n_params == 9
    return {}


CASES.append(("walk-spec-bom-crlf", "ok", "", _bom_spec))


def _model_file(d) -> str:
    from symnn.train import io as sio

    path = os.path.join(d, "walk-model.npz")
    if not os.path.exists(path):
        sio.save(path, _NET, _TH)
    return path


def _cli(args_of):
    def run(d):
        from symnn.cli import main

        args = args_of(d)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
        return {"code": code, "err": err.getvalue()}
    return run


def _csv(d, name: str, text: str) -> str:
    path = os.path.join(d, name)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def _same_output(d):
    m = _model_file(d)
    before = open(m, "rb").read()
    r = _cli(lambda d: ["predict", m, "--data", _csv(d, "walk-in.csv", "1,2\n"), "-o", m])(d)
    assert open(m, "rb").read() == before  # the model is intact
    return r


CLI = [
    ("derive-model-file", "zip archive (a saved .npz model file?), not a TOML spec",
     _cli(lambda d: ["derive", _model_file(d)])),
    ("predict-output-is-model", "also the command's input file", _same_output),
    ("predict-semicolons", "is the delimiter ';'", _cli(lambda d: [
        "predict", _model_file(d), "--data", _csv(d, "walk-semi.csv", "a;b\n1;2\n")])),
]
for _cid, _frag, _run in CLI:
    CASES.append((f"walk-cli-{_cid}", "exit 1", _frag, _run))


# -- the scikit-learn estimators ----------------------------------------------------------

def _sk_hidden(h):
    def run(d):
        from symnn.sklearn import SymnnRegressor

        SymnnRegressor(hidden_layer_sizes=h, max_iter=1).fit(np.ones((4, 2)), np.ones(4))
    return run


for _label, _h in (("float", (2.5,)), ("str", "4"), ("bool", (True,))):
    CASES.append((f"walk-sklearn-hidden-{_label}", _D, "sequence of positive integers",
                  _sk_hidden(_h)))


# -- round 6 (walk): tests/_hostile_walk6_cases.py, run in this same subprocess -----------
import _hostile_walk6_cases  # noqa: E402 - the tests folder is on sys.path (driver, runner)

CASES += _hostile_walk6_cases.CASES
