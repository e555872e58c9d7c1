"""Every example runs (in its fast mode) and shows what it claims.

The runs are marked ``slow`` (``python -m pytest -q -m "not slow"`` leaves them out); the
default run includes them.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_example_is_tested():
    tested = {"xor", "custom_model", "sin_approximation", "digits", "saddle_point",
              "gradient_flow", "regression_lm_vs_adam", "kfac_vs_adam", "conv1d_signals",
              "residual_vs_plain", "rnn_sequences"}
    present = {p.stem for p in EXAMPLES.glob("*.py")}
    assert present == tested, f"untested examples: {present - tested}"


@pytest.mark.slow
def test_xor(capsys):
    out = _load("xor").main(["--fast"])
    assert out["loss"] < 1e-2 and out["check"]
    assert np.all((out["pred"].ravel() > 0.5) == np.array([False, True, True, False]))
    assert "δ⁽¹⁾ = ∇_a⁽¹⁾ℓ ⊙ σ'(z⁽¹⁾)" in capsys.readouterr().out


@pytest.mark.slow
def test_custom_model_recovers_the_oscillator():
    out = _load("custom_model").main(["--fast"])
    assert np.allclose(out["params"], out["truth"], atol=0.05)


@pytest.mark.slow
def test_sin_approximation_improves_with_width():
    errs = _load("sin_approximation").main(["--fast"])
    assert errs[4] < errs[1] / 10 and errs[4] < 0.05


@pytest.mark.slow
def test_digits_trains():
    pytest.importorskip("sklearn")
    out = _load("digits").main(["--fast"])
    assert out["symnn"] > 0.9 and out["symnn"] >= out["sklearn"] - 0.03


@pytest.mark.slow
def test_saddle_point_example(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "spectrum.png"
    out = _load("saddle_point").main(["--fast", "--plot", str(png)])
    assert out["saddle"].kind == "saddle" and out["minimum"].kind == "minimum"
    assert np.allclose(out["lanczos"], out["minimum"].eigenvalues[[0, -1]], rtol=1e-8)
    assert png.stat().st_size > 1000


@pytest.mark.slow
def test_gradient_flow_example(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "flow.png"
    flows = _load("gradient_flow").main(["--fast", "--plot", str(png)])
    assert flows["sigmoid"].verdict == "vanishing"
    assert flows["tanh"].ratio > 100 * flows["sigmoid"].ratio
    assert png.stat().st_size > 1000


@pytest.mark.slow
def test_regression_lm_vs_adam():
    """--fast: second order passes Adam in a few iterations."""
    results = _load("regression_lm_vs_adam").main(["--fast"])
    adam = results["Adam (b=32)"]
    for name in ("Levenberg–Marquardt", "Newton-CG (trust)"):
        r = results[name]
        assert r["train"] < adam["train"]
        assert r["first_below_adam"] is not None and r["first_below_adam"] < adam["iterations"] / 4


@pytest.mark.slow
def test_kfac_vs_adam(capsys):
    """--fast: K-FAC and Newton-CG reach the target loss in a tenth of Adam's iterations."""
    results = _load("kfac_vs_adam").main(["--fast"])
    adam = next(r for name, r in results.items() if name.startswith("Adam"))
    assert adam["iterations"] is not None
    for name in ("K-FAC", "Newton-CG"):
        r = results[name]
        assert r["iterations"] is not None and r["iterations"] < adam["iterations"] / 10
    out = capsys.readouterr().out
    assert "iterations" in out and "time to target" in out and "K-FAC" in out


@pytest.mark.slow
def test_conv1d_signals_classifies(capsys):
    out = _load("conv1d_signals").main(["--fast"])
    assert out["accuracy"] >= 0.95
    text = capsys.readouterr().out
    assert "z⁽¹⁾[c,t] = Σ_{c′,k} W⁽¹⁾[c,c′,k] x[c′, t + k − 2] + b⁽¹⁾[c]" in text
    assert "(a strided correlation with the flipped kernel)" in text


@pytest.mark.slow
def test_residual_vs_plain(tmp_path, capsys):
    """--fast: through six sigmoid layers the plain net's first-layer gradient vanishes and
    the residual net's does not; the residual net (same size) ends with a lower loss."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "flow.png"
    out = _load("residual_vs_plain").main(["--fast", "--plot", str(png)])
    plain, res = out["plain"], out["residual"]
    assert plain["n_params"] == res["n_params"]
    assert plain["ratio"] < 1e-2 and res["ratio"] > 0.1
    assert res["loss"] < plain["loss"]
    assert png.stat().st_size > 1000
    assert "final loss" in capsys.readouterr().out


def test_rnn_sequences_shows_vanishing_gradients_clipping_and_a_gru():
    """The adding problem, T = 6 (--fast): the gradient vanishes through time at
    initialisation in both cells; clipping keeps a large SGD step finite; the GRU solves
    the task (test MSE under a tenth of predicting the mean, a tenth of the RNN's) where
    the RNN does not; training lifts the gradient at the first step in both."""
    out = _load("rnn_sequences").main(["--fast"])
    base = out["baseline"]
    for kind in ("RNN", "GRU"):
        init, fit = out[f"init_{kind}"], out[f"fit_{kind}"]
        assert init["flow"].ratio < 0.2 and np.all(init["rho"] < 1)  # vanishing
        assert fit["loss"][-1] < fit["loss"][0]
        assert fit["flow"].ratio > 2 * init["flow"].ratio
    assert out["init_RNN"]["flow"].ratio < 0.05
    assert np.all(np.isfinite(out["sgd_clip_1.0"])) and out["sgd_clip_1.0"][-1] < 10
    assert not np.all(out["sgd_clip_None"] < 10)             # unclipped: it blows up
    gru, rnn = out["fit_GRU"]["test_mse"], out["fit_RNN"]["test_mse"]
    assert gru < 0.1 * base and rnn > 0.2 * base and rnn > 10 * gru
