"""The scikit-learn estimators under dask-ml's ``Incremental``: ``partial_fit`` block by
block, with the estimator copied or pickled between blocks (as Dask moves it between
tasks and workers).

dask-ml is not a test dependency (it pulls pandas, pyarrow, dask-glm and sparse): the
``Incremental`` test runs where it is installed and skips otherwise; the semantics it
relies on — ``partial_fit`` with ``classes=`` on every call, an estimator that continues
exactly after a pickle round trip or a deep copy, ``clone`` — are tested here directly.
(dask-ml's ``HyperbandSearchCV`` and the other incremental searches fail with
``RuntimeError: Attempting to use an asynchronous Client in a synchronous context`` on
Dask ≥ 2025.3 for every estimator: dask/dask-ml#1016, open.)
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402

from symnn.sklearn import SymnnClassifier, SymnnRegressor  # noqa: E402

BLOCKS = 4


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def _est(kind="clf"):
    cls = SymnnClassifier if kind == "clf" else SymnnRegressor
    return cls(hidden_layer_sizes=(6,), random_state=0, batch_size=10,
               learning_rate_init=0.05, check_every=0)


def _blocks(X, y):
    n = X.shape[0] // BLOCKS
    return [(X[i * n:(i + 1) * n], y[i * n:(i + 1) * n]) for i in range(BLOCKS)]


def _sequential(kind, X, y, move=lambda est: est):
    est = _est(kind)
    kw = {"classes": [0, 1]} if kind == "clf" else {}
    for Xb, yb in _blocks(X, y):
        est = move(est)
        est.partial_fit(Xb, yb, **kw)  # classes= again on every call, as Incremental does
    return est


@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("move", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_partial_fit_continues_exactly_after_a_move(kind, move):
    X, y = _data()
    y = y if kind == "clf" else X[:, 0] * X[:, 1]
    plain = _sequential(kind, X, y)
    moved = _sequential(kind, X, y, move)
    np.testing.assert_array_equal(moved.params_, plain.params_)
    assert moved.n_iter_ == plain.n_iter_ == BLOCKS
    assert len(moved.loss_curve_) == BLOCKS
    # each block trained: the parameters differ from those after the first block alone
    first = _est(kind)
    first.partial_fit(*_blocks(X, y)[0], **({"classes": [0, 1]} if kind == "clf" else {}))
    assert not np.array_equal(first.params_, plain.params_)


def test_clone_gives_an_unfitted_estimator_with_the_same_parameters():
    X, y = _data()
    fitted = _sequential("clf", X, y)
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params()
    assert not hasattr(twin, "params_")


def test_dask_ml_incremental_is_sequential_partial_fit():
    distributed = pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _data()
    n = X.shape[0] // BLOCKS
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster):
        inc = wrappers.Incremental(_est(), scoring="accuracy", shuffle_blocks=False)
        inc.fit(da.from_array(X, chunks=n), da.from_array(y, chunks=n), classes=[0, 1])
        score = inc.score(da.from_array(X, chunks=n), da.from_array(y, chunks=n))
    plain = _sequential("clf", X, y)
    np.testing.assert_array_equal(inc.estimator_.params_, plain.params_)
    assert inc.estimator_.n_iter_ == BLOCKS
    assert score == pytest.approx(plain.score(X, y))
