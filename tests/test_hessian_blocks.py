"""The dense Hessian's first-layer rows from per-sample products (issue 16, speed).

:mod:`symnn.codegen.hessian_blocks` computes the rows of ``W1`` and ``b1`` as ``[X, 1]ᵀ R``
from each sample's products with the directions of ``b1``, and splits the work over
threads.  Its three witnesses: the unit-vector path (the same compiled ``hvp`` kernel, every
row from a unit vector), the uncompiled NumPy reference and central differences of the
compiled gradient; on one thread and on two.  The plan is refused where the identity it
rests on fails (penalties, Dropout, a first layer without bias, a custom model).  The
property tests (``tests/test_properties.py``) compare ``model.hessian`` with the reference
on random networks, most of which take this path.
"""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.codegen import hessian_blocks as hb

NETS = {
    "tanh_mse": ([symnn.Dense(3, 4), "tanh", symnn.Dense(4, 2)], "mse"),
    "deep_softmax_ce": ([symnn.Dense(3, 4), "gelu", symnn.Dense(4, 3), "sigmoid",
                         symnn.Dense(3, 3), "softmax"], "cross_entropy"),
    "sigmoid_bce": ([symnn.Dense(4, 3), "softplus", symnn.Dense(3, 1), "sigmoid"], "bce"),
}


def _problem(key, B=7, seed=0):
    layers, loss = NETS[key]
    model = symnn.Network(layers, loss=loss, name=f"hb_{key}").compile()
    rng = np.random.default_rng(seed)
    theta = 0.7 * rng.standard_normal(model.n_params)
    X = rng.standard_normal((B, model.n_inputs))
    if loss == "cross_entropy":
        y = rng.integers(0, model.n_outputs, B)
    elif loss == "bce":
        y = rng.random((B, model.n_outputs))
    else:
        y = rng.standard_normal((B, model.n_outputs))
    return model, theta, X, y


def _rows(model, theta, X, y, threads, plan=True, memory=1 << 28):
    """The symmetrised Hessian from ``hessian_rows`` (plan=False: unit vectors only)."""
    saved = model.__dict__.get("_first_layer_plan", False)
    if not plan:
        model._first_layer_plan = None
    try:
        Xc, Yc = model._X(X), model._Y(y, len(X))
        H = hb.hessian_rows(model, model._theta(theta), Xc, Yc, (), memory, threads)
    finally:
        if not plan:
            model._first_layer_plan = saved
    return 0.5 * (H + H.T)


@pytest.mark.parametrize("key", sorted(NETS))
def test_first_layer_rows_equal_unit_vectors_reference_and_differences(key):
    model, theta, X, y = _problem(key)
    assert hb.first_layer_plan(model) is not None
    H = model.hessian(theta, X, y)
    scale = np.abs(H).max()
    for threads in (1, 2):
        for plan in (True, False):
            np.testing.assert_allclose(_rows(model, theta, X, y, threads, plan), H,
                                       rtol=0, atol=1e-13 * scale)
    h = 1e-5  # a few columns: the NumPy reference, central differences of the gradient
    for k in (0, model.n_params // 2, model.n_params - 1):
        e = np.zeros(model.n_params)
        e[k] = 1.0
        np.testing.assert_allclose(H[:, k], model.reference.hvp(theta, e, X, y), rtol=0,
                                   atol=1e-12 * scale)
        e[k] = h
        col = (model.loss_and_grad(theta + e, X, y)[1]
               - model.loss_and_grad(theta - e, X, y)[1]) / (2 * h)
        np.testing.assert_allclose(H[:, k], col, rtol=0, atol=1e-7 * max(scale, 1.0))


def test_a_wrong_first_layer_identity_is_caught():
    """Rows built from the wrong inputs (X + 1) differ from the unit-vector Hessian: the
    comparison above can fail."""
    model, theta, X, y = _problem("tanh_mse")
    plan = hb.first_layer_plan(model)
    Xc, Yc = model._X(X), model._Y(y, len(X))
    G = hb.first_layer_part(model, model._theta(theta), Xc + 1.0, Yc, plan, range(len(X)),
                             1 << 20)
    H = model.hessian(theta, X, y)
    wrong = H.copy()
    hb.first_layer_rows(wrong, G, plan)
    assert np.abs(wrong - H).max() > 1e-3 * np.abs(H).max()


def test_threads_split_batches_and_rows_alike():
    model, theta, X, y = _problem("tanh_mse", B=1)
    H = model.hessian(theta, X, y)
    np.testing.assert_allclose(_rows(model, theta, X, y, 3), H, rtol=0,
                               atol=1e-13 * np.abs(H).max())
    assert hb.run_tasks([lambda: 1, lambda: 2, lambda: 3], 2) == [1, 2, 3]


@pytest.mark.parametrize("memory", [20_000, 10_000])
def test_little_memory_splits_the_batch_or_falls_back_to_unit_vectors(memory):
    """20 kB: the 25 samples' products in parts of 12; 10 kB: the first layer's rows would
    not fit (G alone is 9 kB, half the memory at most), so every row is a unit vector."""
    model, theta, X, y = _problem("tanh_mse", B=25)
    H = model.hessian(theta, X, y)
    for threads in (1, 2):
        np.testing.assert_allclose(_rows(model, theta, X, y, threads, memory=memory), H,
                                   rtol=0, atol=1e-13 * np.abs(H).max())
    assert hb.hessian_threads(2, 3) == 1
    saved = hb.THREAD_MADDS
    try:
        hb.THREAD_MADDS = 100
        assert hb.hessian_threads(2, 3) == 1 and hb.hessian_threads(64, 10) >= 1
        H2 = model.hessian(theta, X, y)  # the default path, split where Numba has threads
    finally:
        hb.THREAD_MADDS = saved
    np.testing.assert_allclose(H2, H, rtol=0, atol=1e-13 * np.abs(H).max())


def test_the_plan_is_refused_where_its_identity_fails():
    def plan(layers, loss="mse", **kw):
        return hb.first_layer_plan(symnn.Network(layers, loss=loss, **kw).compile())

    assert hb.first_layer_plan(_problem("tanh_mse")[0]) == (0, 4, 3, 12)
    dense = [symnn.Dense(3, 4), "tanh", symnn.Dense(4, 2)]
    assert plan(dense, penalties=[symnn.L2(0.1)], name="hb_pen") is None
    assert plan([symnn.Dense(3, 4, bias=False), "tanh", symnn.Dense(4, 2)],
                name="hb_nobias") is None


def test_a_forked_child_gets_its_own_pool():
    """A child forked after the pool started has the pool object but none of its threads:
    it must start a pool of its own rather than wait on the parent's forever."""
    import os
    import sys

    if not hasattr(os, "fork") or sys.platform == "darwin":
        pytest.skip("needs fork")
    import signal
    import warnings

    assert hb.run_tasks([lambda: 1, lambda: 2], 2) == [1, 2]  # the parent's pool
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: exit 0 if the tasks ran; killed by the alarm if it hangs
        signal.alarm(20)
        ok = hb.run_tasks([lambda: 3, lambda: 4], 2) == [3, 4]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
