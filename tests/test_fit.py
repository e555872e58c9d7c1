"""The training loop: compiled epochs, history, checks, divergence, second order.

Two small compiled models are shared by the whole module (compiling dominates the cost).
"""

from __future__ import annotations

import io

import numpy as np
import pytest

import symnn
from symnn.errors import DataError, TrainingError
from symnn.train import (
    LBFGS,
    SGD,
    Adagrad,
    Adam,
    CosineDecay,
    History,
    LevenbergMarquardt,
    Momentum,
    Nesterov,
    Newton,
    NewtonCG,
    RMSProp,
    fit,
)


@pytest.fixture(scope="module")
def reg():
    """A 2-8-1 tanh network with MSE, and data y = x₀·x₁ + noise."""
    model = symnn.mlp([2, 8, 1], activation="tanh", loss="mse").compile()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 2))
    y = X[:, 0] * X[:, 1] + 0.05 * rng.normal(size=96)
    return model, X, y


@pytest.fixture(scope="module")
def clf():
    """A 4-6-3 tanh softmax classifier on three Gaussian blobs."""
    model = symnn.mlp([4, 6, 3], activation="tanh", output="softmax",
                      loss="cross_entropy").compile()
    rng = np.random.default_rng(1)
    y = np.arange(90) % 3
    X = rng.normal(size=(90, 4)) + 2.0 * np.eye(4)[y]
    return model, X, y


# walk (round 6): the shared models must leave every test as they came in.  A kernel
# overridden with ``monkeypatch.setattr(model, name, f, raising=False)`` came back as an
# *instance* attribute (the bound original method), so every later test of the module saw
# ``"loss_and_grad" in vars(model)`` and trained on the Python engine instead of the
# compiled epoch kernel.  ``_override`` patches the instance dict, which undo empties.
def _override(monkeypatch, model, name, fn):
    monkeypatch.setitem(vars(model), name, fn)


@pytest.fixture(autouse=True)
def _shared_models_stay_untouched(request):
    yield
    for fixture in ("reg", "clf"):
        if fixture in request.fixturenames:
            model = request.getfixturevalue(fixture)[0]
            left = set(vars(model)) & set(model.kernels)
            assert not left, f"a test left kernel overrides {left} on the shared {fixture}"


def test_adam_trains_and_records_history(reg):
    model, X, y = reg
    res = fit(model, X, y, Adam(lr=0.02), epochs=40, batch_size=16, seed=3, validation=0.25,
              progress=False)
    h = res.history
    assert isinstance(h, History) and len(h) == 40 and res.stop_reason == "completed"
    assert h.loss[-1] < 0.5 * h.loss[0]
    assert np.all(np.isfinite(h.val_loss)) and h.val_loss[-1] < h.val_loss[0]
    assert set(h.grad_norms) == {"W1", "b1", "W2", "b2"}
    assert all(np.all(v > 0) for v in h.grad_norms.values())
    assert np.all(h.time >= 0) and h[0]["steps"] == 5  # 72 training samples / 16
    assert res.params.shape == (model.n_params,) and res.steps == 200
    assert "W1" in h.table()


def test_compiled_epoch_equals_python_loop(reg):
    """The epoch kernel and a Python loop around model.loss_and_grad train identically."""
    model, X, y = reg
    kw = dict(epochs=3, batch_size=10, seed=5, progress=False)
    a = fit(model, X, y, Adam(lr=0.01, clip_norm=0.5), engine="kernel", **kw)
    b = fit(model, X, y, Adam(lr=0.01, clip_norm=0.5), engine="python", **kw)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.history.loss, b.history.loss, rtol=1e-12)
    for name in a.history.grad_norms:
        np.testing.assert_allclose(a.history.grad_norms[name], b.history.grad_norms[name],
                                   rtol=1e-10)


@pytest.mark.parametrize("opt", [SGD(lr=0.1), Momentum(lr=0.05), Nesterov(lr=0.05),
                                 Adagrad(lr=0.1), RMSProp(lr=0.01), Adam(lr=0.01)], ids=repr)
def test_every_first_order_optimizer_trains(clf, opt):
    model, X, y = clf
    res = fit(model, X, y, opt, epochs=15, batch_size=9, seed=0, progress=False)
    assert res.history.loss[-1] < 0.7 * res.history.loss[0]


def test_schedule_learning_rate_is_recorded(clf):
    model, X, y = clf
    res = fit(model, X, y, SGD(lr=0.1, schedule=CosineDecay(20)), epochs=4, batch_size=18,
              progress=False)
    lrs = [r["lr"] for r in res.history]
    expected = [0.1 * 0.5 * (1 + np.cos(np.pi * (5 * k - 1) / 20)) for k in range(1, 5)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


def test_check_every_catches_a_corrupted_gradient_and_keeps_last_good_params(reg, monkeypatch):
    model, X, y = reg
    genuine = model.loss_and_grad
    state = {"corrupt": False}

    def loss_and_grad(theta, Xb, yb):
        L, g = genuine(theta, Xb, yb)
        if state["corrupt"]:
            g = g.copy()
            g[3] += 0.05  # one wrong component
        return L, g

    _override(monkeypatch, model, "loss_and_grad", loss_and_grad)
    kept = {}

    def corrupt_after_epoch_2(info):
        if info.epoch == 2:
            kept["params"] = info.params.copy()
            state["corrupt"] = True

    with pytest.raises(TrainingError, match="gradient check failed after epoch 3") as exc:
        fit(model, X, y, Adam(lr=0.01), epochs=10, batch_size=16, check_every=1,
            callbacks=[corrupt_after_epoch_2], progress=False)
    err = exc.value
    np.testing.assert_array_equal(err.params, kept["params"])
    assert not err.report and "worst parameter is W1[1, 1]" in str(err)
    assert len(err.history) == 3


def test_check_before_training_keeps_the_initial_params(reg, monkeypatch):
    model, X, y = reg
    genuine = model.loss_and_grad

    def wrong(theta, Xb, yb):
        L, g = genuine(theta, Xb, yb)
        return L, 1.01 * g

    _override(monkeypatch, model, "loss_and_grad", wrong)
    theta0 = model.init(seed=9)
    with pytest.raises(TrainingError, match="before training") as exc:
        fit(model, X, y, SGD(lr=0.1), epochs=3, theta0=theta0, check_every=1, progress=False)
    np.testing.assert_array_equal(exc.value.params, theta0)


def test_check_every_passes_for_the_genuine_model(clf):
    model, X, y = clf
    res = fit(model, X, y, Adam(lr=0.01), epochs=4, batch_size=30, check_every=2,
              progress=False)
    assert len(res.history) == 4


@pytest.mark.parametrize("where", ["X", "y", "validation", "theta0"])
def test_nan_in_data_is_a_data_error_before_training(reg, where):
    model, X, y = reg
    X, y = X.copy(), y.copy()
    kw = {}
    if where == "X":
        X[5, 1] = np.nan
    elif where == "y":
        y[7] = np.inf
    elif where == "validation":
        Xv = X[:10].copy()
        Xv[2, 0] = np.nan
        kw["validation"] = (Xv, y[:10])
    else:
        t0 = model.init(0)
        t0[4] = np.nan
        kw["theta0"] = t0
    with pytest.raises(DataError):
        fit(model, X, y, Adam(), epochs=1, progress=False, **kw)


def test_diverging_learning_rate_keeps_last_finite_params(reg):
    model, X, y = reg
    y = 1e3 * y
    with pytest.raises(TrainingError, match="diverged") as exc:
        fit(model, X, y, SGD(lr=10.0), epochs=200, batch_size=16, progress=False)
    err = exc.value
    assert np.all(np.isfinite(err.params))
    # the kept parameters are those of the last finite mini-batch loss: every row's loss is
    # finite there (the whole set's *sum* may not be: a 16-row batch sum of 1e306-sized
    # terms fits in a float where 96 rows do not)
    assert all(np.isfinite(model.loss(err.params, X[i:i + 1], y[i:i + 1])) for i in range(96))
    assert isinstance(err.history, History)
    assert np.all(np.isfinite(err.history.loss))


def test_loss_not_finite_at_start(reg):
    model, X, y = reg
    theta0 = np.full(model.n_params, 1e200)
    with pytest.raises(TrainingError, match="initial parameters") as exc:
        fit(model, X, y, SGD(lr=0.1), epochs=2, theta0=theta0, progress=False)
    np.testing.assert_array_equal(exc.value.params, theta0)


def test_early_stopping_restores_the_best_epoch(reg):
    model, X, y = reg
    Xv, yv = X[:20], -y[:20]  # a validation set the training makes worse
    res = fit(model, X[20:], y[20:], Adam(lr=0.02), epochs=100, batch_size=16,
              validation=(Xv, yv), early_stopping=3, progress=False)
    assert res.stop_reason == "early_stopping"
    best = res.history.best("val_loss")
    assert res.best_epoch == res.history[best]["epoch"]
    assert model.loss(res.params, Xv, yv) == pytest.approx(res.history.val_loss[best],
                                                            rel=1e-12)
    assert len(res.history) == best + 4


def test_callback_can_stop(clf):
    model, X, y = clf
    res = fit(model, X, y, Adam(), epochs=50, callbacks=[lambda info: info.epoch == 3],
              progress=False)
    assert res.stop_reason == "callback" and len(res.history) == 3


@pytest.mark.parametrize("opt", [LevenbergMarquardt(), Newton(), LBFGS(), NewtonCG(),
                                 NewtonCG(method="Newton-CG")], ids=repr)
def test_second_order_methods_beat_adam_in_few_iterations(reg, opt):
    model, X, y = reg
    adam = fit(model, X, y, Adam(lr=0.01), epochs=15, batch_size=None, progress=False)
    res = fit(model, X, y, opt, epochs=15, check_every=5, progress=False)
    assert 1 <= len(res.history) <= 15
    assert res.history.loss[-1] < 0.5 * adam.history.loss[-1]
    assert set(res.history[0]["grad_norm"]) == {"W1", "b1", "W2", "b2"}


def test_hessian_check_catches_a_wrong_hvp(reg, monkeypatch):
    model, X, y = reg
    genuine = model.hvp
    _override(monkeypatch, model, "hvp", lambda th, v, Xb, yb: 1.1 * genuine(th, v, Xb, yb))
    with pytest.raises(TrainingError, match="hessian check failed before training"):
        fit(model, X, y, NewtonCG(), epochs=3, check_every=1, progress=False)


def test_weight_decay_shrinks_weights(reg):
    model, X, y = reg
    kw = dict(epochs=20, batch_size=16, seed=0, progress=False)
    a = fit(model, X, y, Adam(lr=0.01), **kw)
    b = fit(model, X, y, Adam(lr=0.01, weight_decay=0.5, decay="weights"), **kw)
    wa, wb = model.unflatten(a.params), model.unflatten(b.params)
    assert np.linalg.norm(wb["W1"]) < np.linalg.norm(wa["W1"])


def test_progress_only_when_asked(reg, monkeypatch, capsys):
    model, X, y = reg
    fit(model, X, y, Adam(), epochs=3, progress=False)
    assert capsys.readouterr().err == ""
    fit(model, X, y, Adam(), epochs=3, progress=None)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""
    fake = io.StringIO()
    monkeypatch.setattr("sys.stderr", fake)
    fit(model, X, y, Adam(), epochs=3, progress=True)
    out = fake.getvalue()
    assert "epoch 3/3" in out and out.endswith("\n")


def test_bad_arguments(reg):
    model, X, y = reg
    with pytest.raises(ValueError, match="epochs"):
        fit(model, X, y, epochs=0)
    with pytest.raises(ValueError, match="engine"):
        fit(model, X, y, engine="gpu")
    with pytest.raises(DataError, match="validation"):
        fit(model, X, y, validation=1.5)
    with pytest.raises(symnn.ShapeError):
        fit(model, X, y, theta0=np.zeros(3))


def test_compiled_model_fit_is_symnn_train_fit(reg):
    """``model.fit`` is the compiled model's own method (no install step) and trains exactly
    as ``symnn.train.fit`` does: the same parameters and history, the same model."""
    from symnn.codegen.model import CompiledModel

    model, X, y = reg
    assert "fit" in vars(CompiledModel)
    res = model.fit(X, y, Adam(lr=0.01), epochs=3, batch_size=16, seed=2, progress=False)
    ref = fit(model, X, y, Adam(lr=0.01), epochs=3, batch_size=16, seed=2, progress=False)
    assert len(res.history) == 3 and res.model is model
    np.testing.assert_array_equal(res.params, ref.params)
    np.testing.assert_array_equal(res.history.loss, ref.history.loss)
    assert not np.array_equal(res.params, model.init(seed=2))


# ------------------------------------------------------------------------------------------
# the cross-check before training is on by default
# ------------------------------------------------------------------------------------------


def _one_component_wrong(model, monkeypatch, k, factor=1 + 1e-4):
    genuine = model.loss_and_grad

    def wrong(theta, Xb, yb):
        L, g = genuine(theta, Xb, yb)
        g = g.copy()
        g[k] *= factor
        return L, g

    _override(monkeypatch, model, "loss_and_grad", wrong)


def test_fit_checks_the_gradient_by_default_and_names_the_parameter(reg, monkeypatch):
    from symnn.check import param_label
    from symnn.errors import CheckError
    from symnn.train import TrainingCheckError

    model, X, y = reg
    k = 5
    _one_component_wrong(model, monkeypatch, k)
    theta0 = model.init(seed=4)
    with pytest.raises(CheckError, match="before training") as exc:
        fit(model, X, y, Adam(lr=0.01), epochs=3, theta0=theta0, progress=False)
    err = exc.value
    assert isinstance(err, TrainingCheckError) and isinstance(err, TrainingError)
    assert f"worst parameter is {param_label(model, k)}" in str(err)
    np.testing.assert_array_equal(err.params, theta0)
    assert len(err.history) == 0


def test_check_every_zero_turns_the_checks_off(reg, monkeypatch):
    model, X, y = reg
    _one_component_wrong(model, monkeypatch, 5, factor=1.5)
    res = fit(model, X, y, Adam(lr=0.01), epochs=2, check_every=0, progress=False)
    assert len(res.history) == 2


@pytest.mark.parametrize("opt,kernel", [(NewtonCG(), "hvp"), (Newton(), "hvp"),
                                        (LevenbergMarquardt(), "gnvp")], ids=repr)
def test_second_order_fits_check_their_products_by_default(reg, monkeypatch, opt, kernel):
    from symnn.errors import CheckError

    model, X, y = reg
    genuine = getattr(model, kernel)

    def wrong(theta, v, Xb, yb):
        out = genuine(theta, v, Xb, yb).copy()
        out[..., 7] *= 1 + 1e-3
        return out

    _override(monkeypatch, model, kernel, wrong)
    kind = "hessian" if kernel == "hvp" else "gauss-newton"
    with pytest.raises(CheckError, match=f"the {kind} check failed before training") as exc:
        fit(model, X, y, opt, epochs=3, progress=False)
    assert "The worst parameter is W1[" in str(exc.value)  # θ[7] is in W1 (2×8)


# ------------------------------------------------------------------------------------------
# options: clear errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw,match", [
    (dict(batch_size=2.5), "batch_size must be an integer"),
    (dict(batch_size=0), "batch_size"),
    (dict(epochs=-1), "epochs"),
    (dict(epochs=2.0), "epochs"),
    (dict(seed="x"), "seed"),
    (dict(seed=-1), "seed"),
    (dict(check_every=-2), "check_every"),
    (dict(early_stopping=0.5), "early_stopping"),
    (dict(min_delta=float("nan")), "min_delta"),
    (dict(progress="yes"), "progress"),
    (dict(callbacks=[1]), "callable"),
    (dict(engine="gpu"), "engine"),
])
def test_bad_options_are_argument_errors(reg, kw, match):
    from symnn.errors import ArgumentError

    model, X, y = reg
    with pytest.raises(ArgumentError, match=match) as exc:
        fit(model, X, y, **kw)
    assert isinstance(exc.value, symnn.SymnnError) and isinstance(exc.value, ValueError)


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), -1.0, "fast"])
def test_bad_learning_rates_are_symnn_errors(lr):
    with pytest.raises(symnn.SymnnError, match="lr"):
        Adam(lr=lr)


def test_fit_of_something_else_is_an_argument_error():
    from symnn.errors import ArgumentError

    with pytest.raises(ArgumentError, match="compiled model"):
        fit(object(), np.zeros((2, 2)), np.zeros(2))


# ------------------------------------------------------------------------------------------
# why training stopped
# ------------------------------------------------------------------------------------------


def test_early_stopping_says_when_it_fired_and_which_epoch_was_restored(reg):
    model, X, y = reg
    Xv, yv = X[:20], -y[:20]
    res = fit(model, X[20:], y[20:], Adam(lr=0.02), epochs=100, batch_size=16,
              validation=(Xv, yv), early_stopping=3, progress=False)
    last = res.history[-1]["epoch"]
    assert res.stop_reason == "early_stopping"
    assert f"early stopping fired at epoch {last}" in res.stop_message
    assert f"parameters of epoch {res.best_epoch} restored" in res.stop_message
    assert res.history.stop_reason == "early_stopping"
    assert res.history.stop_message == res.stop_message


def test_history_keeps_the_stop_reason_through_save_and_load(reg, tmp_path):
    model, X, y = reg
    res = fit(model, X, y, Adam(lr=0.02), epochs=2, progress=False)
    assert res.stop_reason == "completed" and "2 epochs" in res.stop_message
    path = tmp_path / "m.npz"
    symnn.save(path, model, res.params, history=res.history)
    h = symnn.load(path).history
    assert h.stop_reason == "completed" and h.stop_message == res.stop_message
    assert History.from_dict({"records": []}).stop_reason is None


def test_levenberg_marquardt_stops_on_convergence_without_warnings(reg):
    """At convergence LM used to double μ until it overflowed (a RuntimeWarning, an error
    under this suite's warning filter); now it stops and says why."""
    x = np.linspace(-1, 1, 30)[:, None]
    y = 0.5 * x[:, 0] - 0.25
    model = symnn.mlp([1, 1], activation="identity", loss="mse").compile()
    res = fit(model, x, y, LevenbergMarquardt(), epochs=200, progress=False)
    assert res.stop_reason == "converged" and len(res.history) < 200
    assert res.stop_message.startswith("LevenbergMarquardt converged")
    assert "≤ tol" in res.stop_message
    # tol=0: only "no step decreases the loss any more" can stop it (μ used to overflow)
    res = fit(model, x, y, LevenbergMarquardt(tol=0.0), epochs=200, progress=False)
    assert res.stop_reason == "converged" and len(res.history) < 200
    assert "machine precision" in res.stop_message or "rounding" in res.stop_message
    assert res.history.loss[-1] < 1e-20


def test_a_damped_method_stuck_on_badly_scaled_data_says_stalled_not_converged(reg):
    """walk (round 6): with y around 1e150 no step decreases the loss at machine precision
    while the gradient is ~1e150; that used to read "converged after 0 iterations"."""
    from symnn.train.second_order import _no_step_stop

    model, X, y = reg
    res = fit(model, X, 1e150 * y, Newton(), epochs=5, check_every=0, progress=False)
    assert res.stop_reason == "stalled", res.stop_message
    assert "without converging" in res.stop_message and "badly scaled" in res.stop_message
    assert np.all(np.isfinite(res.params))
    # the numbers LevenbergMarquardt met on a ReLU net with y ~ 1e150, and a true optimum
    assert _no_step_stop("LevenbergMarquardt", 0, "", 3.89e299, 4.91e150)[0] == "stalled"
    reason, message = _no_step_stop("LevenbergMarquardt", 7, "", 1e-21, 3e-12)
    assert reason == "converged" and message.startswith("LevenbergMarquardt converged after 7")


def test_lbfgs_says_it_converged():
    x = np.linspace(-1, 1, 30)[:, None]
    model = symnn.mlp([1, 1], activation="identity", loss="mse").compile()
    res = fit(model, x, 0.5 * x[:, 0] - 0.25, LBFGS(), epochs=200, progress=False)
    assert res.stop_reason == "converged" and len(res.history) < 200
    assert res.stop_message.startswith("LBFGS converged after")
    assert res.history.stop_message == res.stop_message


def test_float32_models_are_checked_only_when_asked(monkeypatch):
    """float32 differences cannot check ReLU networks without false failures: no default
    check; check_every=k still runs directional checks."""
    from symnn.errors import CheckError

    model = symnn.mlp([6, 16, 3], activation="relu", loss="mse").compile(dtype="float32")
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 3))
    for seed in range(6):  # correct kernels: never a false failure
        fit(model, X, y, Adam(), epochs=1, seed=seed, progress=False)
    _one_component_wrong(model, monkeypatch, 3, factor=-3.0)
    fit(model, X, y, Adam(), epochs=1, progress=False)
    with pytest.raises(CheckError, match="before training"):
        fit(model, X, y, Adam(), epochs=1, check_every=1, progress=False)


def test_default_check_passes_a_relu_net_exactly_on_its_kinks():
    """Zero biases and an all-zero input row put every ReLU pre-activation exactly at 0:
    the loss is not differentiable there along most directions, and the check before
    training must say so (kinks) rather than stop a correct network."""
    net = symnn.mlp([2, 4, 1], activation="relu", output="sigmoid", loss="bce")
    model = net.compile()
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    theta = model.init(seed=0)
    report = symnn.gradcheck(model, theta, X, y)
    assert report, str(report)
    assert report.kinks, "the probes through the kinks should be reported"
    res = fit(model, X, y, "adam", epochs=3, batch_size=4, seed=0, progress=False)
    assert np.all(np.isfinite(res.params))


# ------------------------------------------------------------------------------------------
# issue 16: the fused epoch (update + gradient norms in one pass, λ per array) keeps the
# rollback: the parameters returned on divergence are those of the last finite loss
# ------------------------------------------------------------------------------------------


def test_divergence_mid_epoch_returns_the_parameters_of_the_last_finite_loss(reg):
    """Compiled epoch and Python loop diverge at the same update and hand back the same
    parameters; independently, replaying the updates in NumPy (plain SGD) from θ₀ with the
    same shuffle reaches those parameters and a non-finite loss one update later."""
    _, X, y = reg
    # a model of its own: other tests replace reg's loss_and_grad on the instance
    model = symnn.mlp([2, 8, 1], activation="tanh", loss="mse").compile()
    y = 1e3 * y
    kw = dict(epochs=50, batch_size=16, seed=4, progress=False, check_every=0)
    errs = {}
    for engine in ("kernel", "python"):
        with pytest.raises(TrainingError, match="diverged after") as exc:
            fit(model, X, y, SGD(lr=10.0, weight_decay=0.01, decay="weights"),
                engine=engine, **kw)
        errs[engine] = exc.value
    a, b = errs["kernel"], errs["python"]
    assert str(a).split(":")[0] == str(b).split(":")[0]  # the same update count
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(a.params))
    assert all(np.isfinite(model.loss(a.params, X[i:i + 1], y[i:i + 1])) for i in range(96))
    n_updates = int(str(a).split("after ")[1].split(" updates")[0])
    # replay: θ ← θ − η (g + λθ) with the fit's shuffles, stopping at the kept parameters
    from symnn.train.session import decay_vector

    lam = decay_vector(model, SGD(lr=10.0, weight_decay=0.01, decay="weights"))
    rng = np.random.default_rng(4)
    theta = model.init(seed=4)
    Y = y.reshape(-1, 1)
    done, kept_at = 0, None
    while kept_at is None:
        perm = rng.permutation(X.shape[0])
        for start in range(0, X.shape[0], 16):
            idx = perm[start:start + 16]
            L, g = model.loss_and_grad(theta, X[idx], Y[idx])
            if done == n_updates - 1:
                kept_at = theta.copy()  # the parameters before the last update made
            if done == n_updates:
                assert not np.isfinite(L)  # the loss that stopped training
                break
            theta = theta - 10.0 * (g + lam * theta)
            done += 1
        else:
            continue
        break
    np.testing.assert_allclose(a.params, kept_at, rtol=1e-9, atol=1e-9)
