"""The compiled entry of ``loss_and_grad`` at small batches (:mod:`symnn.codegen._fusedentry`,
issue 16): bitwise the kernel's results, the same errors as the full checks for a NaN or ±inf
in every kind of segment of θ and in X and y, the old path for every argument the entry's
one signature does not take, and checks that fail when the entry is deliberately broken.
(Each entry built costs about a second of compiling: four are built here.)"""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.codegen import _fusedcheck, _fusedentry
from symnn.codegen.model import CompiledModel
from symnn.errors import ArgumentError, DataError

SIZES = [5, 6, 7, 3]  # θ: W1 0:30, b1 30:36, W2 36:78, b2 78:85, W3 85:106, b3 106:109
POSITIONS = {"W1[0]": 0, "b1": 33, "W2": 50, "b2": 84, "W3[-1]": 105, "b3": 107}


def _declared():
    return symnn.mlp(SIZES, activation="tanh", output="softmax", loss="cross_entropy",
                     name="fusedchk")


@pytest.fixture(scope="module")
def pair():
    """(a model with its entry built, the same model without one)."""
    model, plain = _declared().compile(), _declared().compile()
    assert not _fusedentry.build(model)  # not before the kernel's first call
    model.loss_and_grad(model.init(0), *_data(1))
    assert _fusedentry.build(model)
    assert plain._entry_lg.__func__ is CompiledModel._entry_lg
    return model, plain


def _data(B, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, SIZES[0]))
    y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], B)]
    return X, y


def _outcome(model, theta, X, y):
    """("ok", L, grad) or ("error", type, message) of the public call."""
    try:
        L, g = model.loss_and_grad(theta, X, y)
    except Exception as err:  # noqa: BLE001 - compared between the two models
        return ("error", type(err), str(err))
    return ("ok", L, g)


def _same(a, b) -> bool:
    if a[0] != b[0] or a[1] != b[1] and not (a[1] != a[1] and b[1] != b[1]):
        return False
    if a[0] == "error":
        return a[2] == b[2]
    return a[2].dtype == b[2].dtype and np.array_equal(a[2], b[2], equal_nan=True)


def _bad_inputs(model):
    """(name, θ, X, y) of every non-finite case of the issue: each segment of θ, X, y."""
    X, y = _data(1)
    for where, i in POSITIONS.items():
        for bad in (np.nan, np.inf, -np.inf):
            theta = model.init(0)
            theta[i] = bad
            yield f"theta {where} {bad}", theta, X, y
    for bad in (np.nan, np.inf):
        X2, y2 = X.copy(), y.copy()
        X2[0, 2] = bad
        yield f"X {bad}", model.init(0), X2, y
        y2[0, 1] = bad
        yield f"y {bad}", model.init(0), X, y2
    yield "y not a probability row", model.init(0), X, np.array([[0.5, 0.6, -0.1]])
    yield "X one column too wide", model.init(0), np.ones((1, SIZES[0] + 1)), y
    yield "y one column short", model.init(0), X, y[:, :-1]
    yield "theta one too short", model.init(0)[:-1], X, y


def _violations(model, plain) -> list:
    """Every bad input whose outcome differs from the full checks' error."""
    wrong = []
    for name, theta, X, y in _bad_inputs(model):
        got, want = _outcome(model, theta, X, y), _outcome(plain, theta, X, y)
        if want[0] != "error" or not _same(got, want):
            wrong.append(name)
    return wrong


@pytest.mark.parametrize("B", [1, 2, 4, 5])
def test_results_are_bitwise_the_kernels_and_the_entry_serves_small_batches(
        pair, B, monkeypatch):
    model, plain = pair
    X, y = _data(B, seed=B)
    theta = model.init(1)
    want = _outcome(plain, theta, X, y)
    if B <= _fusedcheck.ROWS:  # the entry alone: no Python check path runs
        monkeypatch.setattr(_fusedcheck, "loss_and_grad", None)
        monkeypatch.setattr(_fusedentry, "fallback_lg", None)
    got = _outcome(model, theta, X, y)
    assert got[0] == "ok" and _same(got, want)
    L, g, ok = model._entry_lg(theta, X, y)
    assert ok == (B <= _fusedcheck.ROWS)
    if ok:
        grad = np.empty(model.n_params)
        work = np.empty(model.generated.work_size("loss_and_grad", B))
        kern = model.kernels["loss_and_grad"](theta, X.reshape(-1), y.reshape(-1), grad, work)
        assert L == kern and np.array_equal(g, grad)


def test_every_non_finite_value_raises_the_full_checks_error(pair):
    model, plain = pair
    assert _violations(model, plain) == []
    theta = model.init(0)
    X, y = _data(2)
    model.loss_and_grad(theta, X, y)
    theta[31] = np.inf  # in place, after a good call
    with pytest.raises(DataError):
        model.loss_and_grad(theta, X, y)


def test_arguments_the_signature_does_not_take_go_the_old_way(pair):
    model, plain = pair
    X, y = _data(2)
    theta = model.init(0)
    ro = theta.copy()
    ro.flags.writeable = False
    cases = {"list X": (theta, X.tolist(), y), "float32 X": (theta, X.astype(np.float32), y),
             "Fortran X": (theta, np.asfortranarray(X), y), "read-only θ": (ro, X, y),
             "strided θ": (np.repeat(theta, 2)[::2], X, y), "1-D y": (theta, X, y[:, 0]),
             "no rows": (theta, X[:0], y[:0]), "1-D X": (theta, X[0], y[:1]),
             "labels y": (theta, X, np.array([0, 2]))}
    for name, args in cases.items():
        assert _same(_outcome(model, *args), _outcome(plain, *args)), name
    mask = np.ones((2, 1))  # (a mask for a network without Dropout: the full checks' error)
    with pytest.raises(ArgumentError):
        model.loss_and_grad(theta, X, y, mask)


def test_float32_model_with_vector_targets():
    decl = symnn.mlp([3, 4, 1], activation="tanh", loss="mse", name="entry32")
    model, plain = decl.compile(dtype="float32"), decl.compile(dtype="float32")
    theta = model.init(0)
    X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    y = np.array([0.5, -0.25], np.float32)
    model.loss_and_grad(theta, X, y)
    assert _fusedentry.build(model, y_ndim=1)
    got, want = _outcome(model, theta, X, y), _outcome(plain, theta, X, y)
    assert got[0] == "ok" and _same(got, want) and got[2].dtype == np.float32
    assert model._entry_lg(theta, X, y)[2]
    theta[13] = np.inf  # b1
    assert _same(_outcome(model, theta, X, y), _outcome(plain, theta, X, y))
    assert _outcome(model, theta, X, y)[0] == "error"


def test_built_on_the_nth_fast_call_and_only_where_it_applies(monkeypatch):
    monkeypatch.setattr(_fusedentry, "BUILD_AFTER", 3)
    model = _declared().compile()
    X, y = _data(1)
    theta = model.init(0)
    for _ in range(2):
        model.loss_and_grad(theta, X, y)
        model.loss_and_grad(theta, np.ones((6, SIZES[0])), np.eye(3)[[0] * 6])  # B > ROWS
    assert model._entry_lg.__func__ is _fusedentry.stub_lg
    model.loss_and_grad(theta, X, y)
    assert hasattr(model._entry_lg.dispatcher, "py_func")  # the compiled entry (Numba)
    src = _fusedentry.entry_source(model)
    assert ("work[:] = np.nan" in src) == model.debug  # poisoned like the ordinary call
    assert _fusedentry.entry_source(model, y_ndim=1) is None  # n_out = 3: no vector y


@pytest.mark.parametrize("mutant", ["no theta segments", "no width check"])
def test_a_broken_entry_fails_these_checks(pair, mutant):
    model, plain = pair
    src = _fusedentry.entry_source(model)
    if mutant == "no theta segments":  # b1 / b2 unchecked: tanh(inf) is finite
        broken = src.replace("_TSEGS = np.array([30, 36, 78, 85]", "_TSEGS = np.array([]")
    else:
        broken = src.replace(f"X.shape[1] != {SIZES[0]} or ", "")
    assert broken != src
    bad = _declared().compile()
    bad.loss_and_grad(bad.init(0), *_data(1))
    assert _fusedentry.build(bad, source=broken.replace("# symnn", f"# {mutant}: symnn"))
    assert _violations(bad, plain) != []


def test_ctrl_c_during_the_build_is_delivered_after_it(pair, monkeypatch):
    """A Ctrl-C that lands while the entry compiles is raised once the build is done —
    Numba's compiler swallowed the KeyboardInterrupt, and the 1000th call of a training
    loop then ran on to the last epoch (test_cli's Ctrl-C test, once in CI; lead)."""
    import os
    import signal
    import time

    model, _ = pair

    def swallowing_compiler(*args, **kwargs):  # as the compiler did: the signal is eaten
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        raise RuntimeError("no module")  # (the build then fails quietly, as designed)

    monkeypatch.setattr(_fusedentry, "load_module", swallowing_compiler)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        _fusedentry.build(model, source="entry = None\n")
    assert signal.getsignal(signal.SIGINT) is before


def test_a_signal_during_the_call_always_reaches_the_caller(pair):
    """Every exception a signal handler raises during ``loss_and_grad`` reaches its caller.
    The entry once returned its gradient array; Numba boxes a returned array by calling
    Python (``_numba_unpickle``) from the compiled code, so a Ctrl-C that landed there came
    out as a SystemError, which the call's ``except Exception`` (for dispatch's TypeError)
    took for "not this signature": a training loop lost the Ctrl-C (test_cli, in CI).  A
    timer raises here, as SIGINT does, an exception that is not an ``Exception``."""
    import signal
    import threading
    import time

    if (not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()):
        pytest.skip("needs signal.setitimer, in the main thread")
    model, _ = pair
    theta, (X, y) = model.init(0), _data(1)

    class Tick(BaseException):  # (as KeyboardInterrupt: not an Exception)
        pass

    state = {"armed": False, "raised": 0, "caught": 0}

    def tick(signum, frame):
        if state["armed"]:
            state["armed"] = False
            state["raised"] += 1
            raise Tick

    old = signal.signal(signal.SIGALRM, tick)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1e-4, 1e-4)
        stop = time.monotonic() + 3.0
        while state["raised"] < 300 and time.monotonic() < stop:
            try:
                state["armed"] = True
                for _ in range(100):
                    model.loss_and_grad(theta, X, y)
                state["armed"] = False
            except Tick:
                state["caught"] += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        state["armed"] = False
        signal.signal(signal.SIGALRM, old)
    assert state["raised"] >= 10  # (the timer did interrupt the calls)
    assert state["caught"] == state["raised"], state
