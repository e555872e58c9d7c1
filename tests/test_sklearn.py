"""The scikit-learn estimators: scikit-learn's own estimator checks, and digits.

The estimator checks fit many small problems of different widths; each architecture is
compiled once per process (``symnn.sklearn.compiled_mlp``) and, through the kernel cache,
once per machine.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from symnn.sklearn import SymnnClassifier, SymnnRegressor  # noqa: E402

# ConvergenceWarning is part of the estimators' contract (as MLPClassifier's): the checks
# train for the default max_iter on problems where it may fire.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([SymnnClassifier(), SymnnRegressor()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    return scaler.transform(Xtr), scaler.transform(Xte), ytr, yte


def test_digits_accuracy_matches_mlpclassifier(digits):
    """64-128-128-10 tanh, softmax cross-entropy, Adam: same split, same settings.

    Fewer epochs than MLPClassifier's default 200 to keep the test short; both models get
    the same number and both are well past 95 % here.
    """
    Xtr, Xte, ytr, yte = digits
    kw = dict(hidden_layer_sizes=(128, 128), activation="tanh", solver="adam", alpha=1e-4,
              batch_size=32, learning_rate_init=1e-3, max_iter=25, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte)
        ours_est = SymnnClassifier(**kw).fit(Xtr, ytr)
    ours = ours_est.score(Xte, yte)
    assert ours >= ref - 0.01, (ours, ref)
    assert ours > 0.95
    assert ours_est.n_iter_ == 25 and len(ours_est.loss_curve_) == 25
    assert [c.shape for c in ours_est.coefs_] == [(64, 128), (128, 128), (128, 10)]
    proba = ours_est.predict_proba(Xte[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_regressor_second_order_solvers_and_pickle():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(80, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    for solver in ("lm", "lbfgs"):
        reg = SymnnRegressor((10,), activation="tanh", solver=solver, max_iter=60,
                             random_state=0).fit(X, y)
        assert reg.score(X, y) > 0.95, solver
    back = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))


def test_early_stopping_and_unknown_options():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = SymnnClassifier((8,), early_stopping=True, n_iter_no_change=3, max_iter=500,
                          learning_rate_init=0.05, random_state=0).fit(X, y)
    assert clf.n_iter_ < 500 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    with pytest.raises(ValueError, match="learning_rate"):
        SymnnClassifier(learning_rate="adaptive").fit(X, y)
    with pytest.raises(ValueError, match="solver"):
        SymnnClassifier(solver="rprop").fit(X, y)
