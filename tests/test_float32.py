"""float32 wherever it is asked for (issue 16c): every public path of a float32 model —
loss, gradient, HVP, Gauss-Newton product, Hessian, Jacobian, predict, the fused training
epoch, model files read by ``symnn.load_compiled``, the scikit-learn estimators — computes
in float32 (float32 results) and agrees with the same path in float64 to float32's
precision."""

from __future__ import annotations

import numpy as np
import pytest

import symnn

RNG = np.random.default_rng(16)
X = RNG.standard_normal((12, 3))
LABELS = np.arange(12) % 3
V = RNG.standard_normal(3 * 4 + 4 + 4 * 3 + 3)
TOL = {"rtol": 2e-4, "atol": 2e-5}  # float32: ~1e-7 per operation, a few dozen operations


def _net():
    # the network SymnnClassifier(hidden_layer_sizes=(4,), activation="tanh") declares for
    # 3 features and 3 classes, name included: its kernels are compiled once for both
    return symnn.mlp([3, 4, 3], activation="tanh", output="softmax", loss="cross_entropy",
                     name="sklearn_mlp")


@pytest.fixture(scope="module")
def models():
    net = _net()
    m64, m32 = net.compile(), net.compile(dtype="float32")
    theta = m64.init(seed=3)
    return m64, m32, theta


def _close(a32, a64, what):
    assert np.asarray(a32).dtype == np.float32, f"{what}: {np.asarray(a32).dtype}"
    scale = max(1.0, float(np.max(np.abs(a64))))
    np.testing.assert_allclose(np.asarray(a32, np.float64), a64, rtol=TOL["rtol"],
                               atol=TOL["atol"] * scale, err_msg=what)


def test_every_product_is_float32_and_agrees_with_float64(models):
    m64, m32, theta = models
    L64, g64 = m64.loss_and_grad(theta, X, LABELS)
    L32, g32 = m32.loss_and_grad(theta, X, LABELS)
    assert abs(L32 - L64) <= TOL["rtol"] * abs(L64)
    _close(g32, g64, "gradient")
    _close(m32.hvp(theta, V, X, LABELS), m64.hvp(theta, V, X, LABELS), "hvp")
    _close(m32.gnvp(theta, V, X, LABELS), m64.gnvp(theta, V, X, LABELS), "gnvp")
    _close(m32.hessian(theta, X, LABELS), m64.hessian(theta, X, LABELS), "hessian")
    _close(m32.jacobian(theta, X), m64.jacobian(theta, X), "jacobian")
    _close(m32.predict(theta, X), m64.predict(theta, X), "predict")
    # the float32 gradient is not the float64 one rounded after the fact: it differs
    assert not np.array_equal(g32, g64.astype(np.float32))


def test_a_wrong_float32_value_fails_the_comparison(models):
    m64, m32, theta = models
    g64 = m64.loss_and_grad(theta, X, LABELS)[1]
    wrong = m32.loss_and_grad(theta, X, LABELS)[1]
    wrong[5] *= 1.01
    with pytest.raises(AssertionError):
        _close(wrong, g64, "gradient")


def test_fused_epoch_trains_in_float32(models):
    m64, m32, theta = models
    opts = dict(epochs=3, batch_size=4, shuffle=False, check_every=0, theta0=theta,
                engine="kernel", progress=False)
    r64 = symnn.fit(m64, X, LABELS, symnn.SGD(lr=0.1), **opts)
    r32 = symnn.fit(m32, X, LABELS, symnn.SGD(lr=0.1), **opts)
    _close(r32.params, r64.params, "parameters after 3 fused epochs")
    assert not np.allclose(r64.params, theta)  # it did train


def test_load_compiled_keeps_float32(models, tmp_path):
    m64, m32, theta = models
    path = tmp_path / "f32.npz"
    symnn.save(path, m32, theta)
    for _ in range(2):  # the second read finds the kernels under the file's spec
        model, params, _ = symnn.load_compiled(path)
    assert model.dtype == np.float32 and params.dtype == np.float32
    _close(model.loss_and_grad(params, X, LABELS)[1],
           m64.loss_and_grad(theta, X, LABELS)[1], "gradient after load_compiled")
    assert symnn.load(path).compile().dtype == np.float32


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")  # 3 iterations only
def test_sklearn_estimator_trains_in_float32():
    sk = pytest.importorskip("symnn.sklearn")
    fitted = {}
    for dt in ("float64", "float32"):
        est = sk.SymnnClassifier(hidden_layer_sizes=(4,), activation="tanh", solver="sgd",
                                 learning_rate_init=0.1, batch_size=4, max_iter=3,
                                 shuffle=False, random_state=0, dtype=dt, tol=0.0,
                                 n_iter_no_change=100)
        fitted[dt] = est.fit(X, LABELS)
    c32, c64 = fitted["float32"], fitted["float64"]
    assert c32.model_.dtype == np.float32 and c32.params_.dtype == np.float32
    _close(c32.params_, c64.params_, "classifier parameters")
    np.testing.assert_allclose(c32.predict_proba(X), c64.predict_proba(X), rtol=1e-3,
                               atol=1e-5)
    # walk: predictions come in the dtype the estimator computes in (as MLPClassifier's)
    assert c32.predict_proba(X).dtype == np.float32
    assert c64.predict_proba(X.astype(np.float32)).dtype == np.float64
