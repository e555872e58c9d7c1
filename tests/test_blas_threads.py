"""BLAS threads chosen by size (symnn._threads) and the dense spectrum's eigensolver path."""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn import _threads
from symnn.analysis import hessian_spectrum
from symnn.analysis.curvature import symmetric_eigvals


def test_symmetric_eigvals_matches_the_old_path():
    rng = np.random.default_rng(0)
    for P in (1, 7, 193):
        A = rng.standard_normal((P, P))
        old = np.linalg.eigvalsh(0.5 * (A + A.T))
        new = symmetric_eigvals(A)
        assert np.max(np.abs(new - old)) <= 1e-10 * max(1.0, np.max(np.abs(old)))
        assert np.all(np.diff(new) >= 0)


def test_hessian_spectrum_matches_eigvalsh_of_the_hessian():
    model = symnn.mlp([3, 4, 1], activation="tanh").compile()
    rng = np.random.default_rng(1)
    theta, X, y = model.init(seed=1), rng.standard_normal((8, 3)), rng.standard_normal(8)
    H = model.hessian(theta, X, y)
    ev = hessian_spectrum(model, theta, X, y)
    ref = np.linalg.eigvalsh(0.5 * (H + H.T))
    assert np.max(np.abs(ev - ref)) <= 1e-10 * max(1.0, np.max(np.abs(ref)))


def test_blas_threads_limits_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg  # noqa: F401  (load SciPy's BLAS too)

    def counts():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]

    before = counts()
    with _threads.blas_threads(1):
        assert counts() and all(n == 1 for n in counts())
    assert counts() == before


def test_small_problem_threshold():
    assert _threads.small_problem(193) and _threads.small_problem(_threads.SMALL_PARAMS)
    assert not _threads.small_problem(_threads.SMALL_PARAMS + 1)
