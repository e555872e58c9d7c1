"""Large batches in chunks of rows (symnn.codegen._rowsplit, issue 16), as properties.

The chunked ``loss`` / ``loss_and_grad`` must equal the one-kernel call up to rounding and
the NumPy reference to 1e-10, on random declarations of the strategies (networks with
every layer kind the strategies draw, custom models, penalties) and on a Dropout network;
give the same bits whatever the number of threads; and give ``loss`` the same bits as
``loss_and_grad``'s L.  ``CHUNK`` is set to 3 here so that a batch of 11 rows is three
chunks (4, 4, 3 rows: unequal weights); the default (512) is exercised at 2048 rows
(four chunks).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from strategies import case_data, cases

import symnn
from symnn.codegen import _rowsplit
from symnn.errors import DeclarationError


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(_rowsplit, "CHUNK", 3)


@given(st.integers(1, 100_000))
def test_chunks_cover_the_batch_in_near_equal_parts(B):
    parts = _rowsplit.chunks(B)
    assert parts[0][0] == 0 and parts[-1][1] == B
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    sizes = [b - a for a, b in parts]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert len(parts) == (B // _rowsplit.CHUNK if B >= 2 * _rowsplit.CHUNK else 1)


def _whole(model, kind, theta, X, y, mask=None):
    """The one-kernel result (no chunks)."""
    B = X.shape[0]
    args = model._checked_args(theta, X, y, mask)[1]
    grad = (np.empty(model.n_params, model.dtype),) if kind == "loss_and_grad" else ()
    L = model._call(kind, *args, *grad, model._work(kind, B))
    return float(L), (grad[0] if grad else None)


def _agree(model, theta, X, y, mask, monkeypatch):
    L, g = model.loss_and_grad(theta, X, y, mask)
    L_one, g_one = _whole(model, "loss_and_grad", theta, X, y, mask)
    scale = max(1.0, np.abs(g_one).max())
    assert abs(L - L_one) <= 1e-12 * max(1.0, abs(L_one))
    assert np.abs(g - g_one).max() <= 1e-12 * scale
    ref = model.reference
    L_ref, g_ref = ref.loss_and_grad(theta, X, y, mask)
    assert abs(L - L_ref) <= 1e-10 * max(1.0, abs(L_ref))
    assert np.abs(g - g_ref).max() <= 1e-10 * max(1.0, np.abs(g_ref).max())
    assert model.loss(theta, X, y, mask) == L  # the same chunks, the same bits
    for n in (1, 2, 3):  # the bits do not depend on the threads
        monkeypatch.setattr(_rowsplit, "threads", lambda n=n: n)
        L_n, g_n = model.loss_and_grad(theta, X, y, mask)
        assert L_n == L and np.array_equal(g_n, g)


@settings(max_examples=4, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(cases(), st.integers(0, 2**31 - 1))
def test_chunks_agree_with_one_kernel_and_the_reference(small_chunks, monkeypatch, case,
                                                        seed):
    note(case.declaration())
    try:
        declared = case.build()
        model = declared.compile()
    except DeclarationError:
        return
    X, y, theta, _, _ = case_data(declared, seed, batch=11)
    if not np.isfinite(model.reference.loss(theta, X, y)):
        return
    _agree(model, theta, X, y, None, monkeypatch)


def test_a_dropout_mask_is_cut_with_its_rows(small_chunks, monkeypatch):
    net = symnn.Network([symnn.Dense(3, 5), "tanh", symnn.Dropout(0.3), symnn.Dense(5, 2)],
                        loss="mse", penalties=[symnn.L2(0.1)])
    model = net.compile()
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((11, 3)), rng.standard_normal((11, 2))
    mask = (rng.random((11, model.mask_width)) > 0.3).astype(float)
    _agree(model, model.init(2), X, y, mask, monkeypatch)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_default_chunks_at_2048_rows(dtype, monkeypatch):
    model = symnn.mlp([5, 8, 3], activation="tanh", output="softmax",
                      loss="cross_entropy").compile(dtype=dtype)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2048, 5)).astype(dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 2048)]
    theta = model.init(4)
    assert len(_rowsplit.chunks(2048)) == 4
    if dtype == "float64":
        _agree(model, theta, X, y, None, monkeypatch)
        return
    L, g = model.loss_and_grad(theta, X, y)
    L_one, g_one = _whole(model, "loss_and_grad", theta, X, y)
    assert abs(L - L_one) <= 1e-5 * abs(L_one) and np.allclose(g, g_one, rtol=1e-4,
                                                               atol=1e-6)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork here")
def test_a_forked_child_runs_chunks_on_threads_of_its_own(monkeypatch):
    """The parent's pool has run chunks (its workers idle); a forked child (as
    multiprocessing's fork start method makes) still gets its chunks computed, by a pool
    of its own, instead of waiting for ever on threads that were not copied."""
    import os

    monkeypatch.setattr(_rowsplit, "threads", lambda: 2)
    model = symnn.mlp([3, 4, 1], activation="tanh").compile()
    theta = model.init(0)
    X, y = np.ones((2048, 3)), np.zeros((2048, 1))
    model.loss_and_grad(theta, X, y)  # (the first call loads the kernel on this thread)
    L, _ = model.loss_and_grad(theta, X, y)
    assert _rowsplit._POOL  # the parent's pool exists, its worker idle
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the loss, or die trying
        try:
            signal_alarm = __import__("signal")
            signal_alarm.alarm(60)
            Lc, _ = model.loss_and_grad(theta, X, y)
            os.write(w, Lc.hex().encode())
        finally:
            os._exit(0)
    os.close(w)
    got = b""
    while chunk := os.read(r, 100):
        got += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert got.decode() == L.hex(), status


def test_chunks_run_one_after_another_when_the_products_go_to_blas():
    """BLAS's own threads would contend with the chunks' (set_gemm("blas"), or no
    AVX-512): one thread then; the tiles allow Numba's thread count."""
    import numba

    from symnn.codegen.numba import gemm

    old = gemm.set_gemm("blas")
    try:
        assert _rowsplit.threads() == 1
        gemm.set_gemm("tiles")
        assert _rowsplit.threads() == min(numba.config.NUMBA_NUM_THREADS,
                                          len(__import__("os").sched_getaffinity(0)))
    finally:
        gemm.set_gemm(old)
