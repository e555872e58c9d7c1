"""Threads calling one compiled model at once (issue 15): generated kernels release the
GIL (``nogil=True``), so every thread has its own work buffers, and concurrent calls on
different batches give exactly the single-thread results.

With ``SYMNN_POISON=1`` (set by the root conftest) each call first fills its work buffer
with NaN, so two calls sharing one buffer show up as NaN or wrong values here.  No
timings are asserted.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import symnn

ROUNDS = 60


@pytest.fixture(scope="module")
def model():
    net = symnn.Network([symnn.Dense(3, 12), "tanh", symnn.Dense(12, 8), "sigmoid",
                         symnn.Dense(8, 2)], loss="mse")
    return net.compile()


def _batches(model, n: int):
    """``n`` different batches (sizes differ too, so the buffers are grown in flight)."""
    rng = np.random.default_rng(15)
    theta = rng.standard_normal(model.n_params)
    out = []
    for i in range(n):
        B = 16 + 8 * i
        out.append((rng.standard_normal((B, 3)), rng.standard_normal((B, 2)),
                    rng.standard_normal(model.n_params)))
    return theta, out


def _run(fn, jobs, threads: int):
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, jobs))


@pytest.mark.parametrize("threads", [2, 4])
def test_concurrent_loss_and_grad_and_hvp_match_one_thread(model, threads):
    assert model.debug  # poisoned buffers: a shared buffer would show as NaN
    theta, batches = _batches(model, 2 * threads)
    expected = [(model.loss_and_grad(theta, X, y), model.hvp(theta, v, X, y))
                for X, y, v in batches]

    def work(i):
        X, y, v = batches[i % len(batches)]
        return [(model.loss_and_grad(theta, X, y), model.hvp(theta, v, X, y))
                for _ in range(ROUNDS)]

    results = _run(work, range(len(batches)), threads)
    for i, rounds in enumerate(results):
        (L0, g0), h0 = expected[i]
        for (L, g), h in rounds:
            assert L == L0
            np.testing.assert_array_equal(g, g0)
            np.testing.assert_array_equal(h, h0)


def test_each_thread_has_its_own_work_buffers(model):
    theta, [(X, y, _)] = _batches(model, 1)
    model.loss_and_grad(theta, X, y)
    mine = model._work("loss_and_grad", X.shape[0])
    seen = []

    def other():
        model.loss_and_grad(theta, X, y)
        seen.append(model._work("loss_and_grad", X.shape[0]))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen and seen[0] is not mine
    assert not np.shares_memory(seen[0], mine)
    assert model._work("loss_and_grad", X.shape[0]) is mine  # reused within a thread


def test_a_copy_whose_buffers_were_reset_still_works(model):
    # symnn.distributed copies a model and resets ``_buffers = {}``
    import copy

    theta, [(X, y, _)] = _batches(model, 1)
    twin = copy.copy(model)
    twin._buffers = {}
    L, g = twin.loss_and_grad(theta, X, y)
    L0, g0 = model.loss_and_grad(theta, X, y)
    assert L == L0
    np.testing.assert_array_equal(g, g0)


def test_generated_kernels_release_the_gil(model):
    for kind in ("predict", "loss", "loss_and_grad", "hvp", "gnvp", "jacobian"):
        assert "nogil=True" in model.kernel_source(kind).splitlines()[0]
        assert model.kernels[kind].targetoptions.get("nogil") is True
