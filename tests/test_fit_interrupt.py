"""Ctrl-C during fit keeps what was trained: a real SIGINT to a training subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import _subproc
import pytest

import symnn
from symnn.errors import TrainingError
from symnn.train import TrainingInterrupted

CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import symnn
    from symnn.train import Adam, TrainingInterrupted, fit

    marker, out = sys.argv[1], sys.argv[2]
    model = symnn.mlp([2, 4, 1], activation="tanh", loss="mse").compile()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2)); y = X[:, 0] * X[:, 1]
    seen = {}

    def slow(info):
        seen[info.epoch] = info.params.copy()
        if info.epoch == 3:
            open(marker, "w").close()   # the parent sends SIGINT now
            time.sleep(60)

    try:
        fit(model, X, y, Adam(lr=0.01), epochs=1000, batch_size=16, callbacks=[slow],
            progress=False)
    except TrainingInterrupted as err:
        res = err.result
        json.dump({"keyboard": isinstance(err, KeyboardInterrupt),
                   "epochs": len(err.history), "reason": res.stop_reason,
                   "message": str(err),
                   "same": bool(np.array_equal(err.params, seen[3])),
                   "result_same": bool(np.array_equal(res.params, err.params)),
                   "loss_drop": float(err.history.loss[-1] < err.history.loss[0])},
                  open(out, "w"))
""")


def test_sigint_during_fit_returns_the_trained_parameters(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    marker, out = tmp_path / "ready", tmp_path / "out.json"
    env = dict(os.environ)
    proc = _subproc.start([sys.executable, str(script), str(marker), str(out)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((_subproc.stop(proc)[1] or b"").decode()[-2000:])
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = _subproc.communicate(proc, 120)
    finally:  # walk 7: stopped and its pipes closed, also on a timeout
        _subproc.stop(proc)
    assert proc.returncode == 0, err.decode()[-2000:]
    got = json.loads(out.read_text())
    assert got["keyboard"] and got["reason"] == "interrupted"
    assert got["epochs"] == 3 and got["same"] and got["result_same"]
    assert "interrupted (Ctrl-C)" in got["message"]


def test_training_interrupted_is_both_errors():
    assert issubclass(TrainingInterrupted, KeyboardInterrupt)
    assert issubclass(TrainingInterrupted, TrainingError)
    assert issubclass(TrainingInterrupted, symnn.SymnnError)


def test_interrupt_before_the_first_epoch_keeps_the_initial_parameters():
    import numpy as np

    from symnn.train import Adam, fit

    model = symnn.mlp([2, 3, 1], activation="tanh", loss="mse").compile()
    X = np.ones((8, 2))
    y = np.zeros(8)

    def stop_now(info):
        raise KeyboardInterrupt

    theta0 = model.init(1)
    with pytest.raises(TrainingInterrupted) as exc:
        fit(model, X, y, Adam(), epochs=5, theta0=theta0, callbacks=[stop_now],
            progress=False)
    # the KeyboardInterrupt came during epoch 1's callback: epoch 1 is complete
    assert len(exc.value.history) == 1
    assert exc.value.result.stop_reason == "interrupted"
    assert not np.array_equal(exc.value.params, theta0)
