"""solver="kfac" in the scikit-learn estimators: symnn.train.KFAC with scikit-learn's alpha
as its weight decay on the weights (alpha / n_samples, as the other full-batch solvers)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from symnn.sklearn import SymnnClassifier, SymnnRegressor  # noqa: E402
from symnn.train import KFAC  # noqa: E402


def test_regressor_fits_with_kfac():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(80, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    reg = SymnnRegressor((10,), activation="tanh", solver="kfac", max_iter=60,
                         random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.95
    assert not hasattr(reg, "partial_fit")          # a full-batch solver


def test_classifier_fits_with_kfac_and_maps_alpha():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 3))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 1)
    clf = SymnnClassifier((8,), activation="tanh", solver="kfac", alpha=0.3, max_iter=40,
                          random_state=0)
    opt = clf._optimizer(90, 90.0)
    assert isinstance(opt, KFAC) and opt.weight_decay == pytest.approx(0.3 / 90)
    assert opt.decay == "weights"
    clf.fit(X, y)
    assert clf.score(X, y) > 0.9
