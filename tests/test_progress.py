"""Progress output of fit: tqdm on a terminal or in Jupyter, plain lines in logs, and the
reason training stopped."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import symnn
from symnn.train import Adam, LevenbergMarquardt, fit
from symnn.train import loop as loop_mod


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def reg():
    model = symnn.mlp([2, 6, 1], activation="tanh", loss="mse").compile()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2))
    y = X[:, 0] * X[:, 1]
    return model, X, y


def test_log_file_gets_plain_lines_and_the_stop_reason(reg, monkeypatch):
    model, X, y = reg
    log = io.StringIO()  # not a terminal: a log file, a pipe, CI
    monkeypatch.setattr(sys, "stderr", log)
    Xv, yv = X[:16], -y[:16]
    res = fit(model, X[16:], y[16:], Adam(lr=0.05), epochs=200, batch_size=16,
              validation=(Xv, yv), early_stopping=2, progress=True)
    out = log.getvalue()
    assert "\r" not in out
    lines = out.splitlines()
    assert lines[0].startswith("epoch 1/200  loss ")
    assert "val_loss" in lines[0]
    assert lines[-1] == res.stop_message
    assert f"early stopping fired at epoch {res.history[-1]['epoch']}" in out
    assert f"parameters of epoch {res.best_epoch} restored" in out


def test_plain_lines_are_few(reg, monkeypatch):
    model, X, y = reg
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    fit(model, X, y, Adam(), epochs=100, progress=True)
    lines = log.getvalue().splitlines()
    assert 10 <= len(lines) <= 13  # epoch 1, every tenth, and the closing line
    assert lines[-1] == "training completed: 100 epochs"


def test_terminal_gets_a_tqdm_bar_with_rate_and_eta(reg, monkeypatch):
    pytest.importorskip("tqdm")
    model, X, y = reg
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    fit(model, X, y, LevenbergMarquardt(), epochs=20, progress=True)
    out = term.getvalue()
    assert "epoch/s" in out or "s/epoch" in out  # the rate
    assert "<" in out  # elapsed<remaining
    assert "loss" in out
    assert "converged" in out or "training completed" in out


def test_terminal_without_tqdm_falls_back_to_one_line(reg, monkeypatch):
    model, X, y = reg
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.std", None)
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    fit(model, X, y, Adam(), epochs=3, progress=True)
    out = term.getvalue()
    assert "\repoch" not in out and "epoch 3/3" in out and "\r" in out
    assert out.endswith("training completed: 3 epochs\n")


def test_default_shows_nothing_in_a_log_and_something_in_a_notebook(reg, monkeypatch):
    model, X, y = reg
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    fit(model, X, y, Adam(), epochs=3)  # progress=None, not a terminal
    assert log.getvalue() == ""
    monkeypatch.setattr(loop_mod, "_in_notebook", lambda: True)
    monkeypatch.setattr(sys, "stderr", log)
    fit(model, X, y, Adam(), epochs=3)  # in Jupyter: a widget, or a text bar without one
    out = log.getvalue()
    if "ipywidgets" not in sys.modules:
        assert "3/3" in out and "epoch/s" in out
    assert out.endswith("training completed: 3 epochs\n")


def test_no_progress_means_no_output(reg, capsys):
    model, X, y = reg
    fit(model, X, y, Adam(), epochs=2, progress=False)
    assert capsys.readouterr().err == ""
