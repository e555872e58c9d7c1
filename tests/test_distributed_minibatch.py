"""Synchronous data-parallel mini-batch training over Dask shards, and threads training at
once through the nogil epoch kernel.

The witness for every distributed fit is the single-process fit of the same compiled model
with the same seed and settings (itself witnessed against finite differences, the NumPy
reference and PyTorch elsewhere in the suite): the same shuffles give the same global
mini-batches, each one's gradient summed over the shards equals the single-process
mini-batch gradient up to rounding, so the parameters agree to 1e-12 relative.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import symnn
from symnn.errors import ArgumentError, TrainingError
from symnn.train import SGD, Adam, Momentum

RTOL = 1e-12


def _close(a, b, rtol=RTOL) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and float(np.max(np.abs(a - b))) <= rtol * max(
        float(np.max(np.abs(b))), 1e-300)


_CACHE: dict = {}


def _problem(N=61):
    """A softmax classifier with an L2 penalty (added once per mini-batch, not once per
    shard) on integer labels."""
    if "model" not in _CACHE:
        _CACHE["model"] = symnn.mlp([3, 5, 3], activation="tanh", output="softmax",
                                    loss="cross_entropy",
                                    penalties=[symnn.L2(0.02)]).compile()
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N, 3))
    y = rng.integers(0, 3, N)
    return _CACHE["model"], X, y


# -- threads fitting at once: the epoch kernel releases the GIL --------------------------

def test_two_threads_fit_at_once_as_sequentially():
    model, X, y = _problem()
    runs = [dict(optimizer=Adam(lr=0.05), seed=1), dict(optimizer=Momentum(lr=0.1, momentum=0.9),
                                                        seed=2)]

    def one(kw):
        return model.fit(X, y, kw["optimizer"], epochs=5, batch_size=4, seed=kw["seed"],
                         engine="kernel", progress=False)

    results: list = [[], []]
    barrier = threading.Barrier(2)

    def worker(i):
        barrier.wait()  # both start cold: the epoch modules are generated under a lock
        for _ in range(3):  # several fits each, so the threads overlap
            results[i].append(one(runs[i]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [len(r) for r in results] == [3, 3]  # no thread died
    sequential = [one(kw) for kw in runs]
    results = [r[-1] for r in results]
    for seq, par in zip(sequential, results):
        np.testing.assert_array_equal(par.params, seq.params)
        np.testing.assert_array_equal(par.history.loss, seq.history.loss)
    assert not np.array_equal(results[0].params, results[1].params)


def test_epoch_kernel_is_nogil():
    from symnn.train.epoch_kernel import compile_epoch, compile_update

    model, X, y = _problem()
    ek = compile_epoch(model, Adam())
    assert ek.fn.targetoptions.get("nogil") is True
    assert compile_update(Adam()).fn.targetoptions.get("nogil") is True


# -- Dask ---------------------------------------------------------------------------------

distributed = pytest.importorskip("distributed")
sd = pytest.importorskip("symnn.distributed")


@pytest.fixture(scope="module")
def threads():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=":0")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _both(model, X, y, client, opt_factory, **kw):
    here = model.fit(X, y, opt_factory(), progress=False, **kw)
    there = model.fit(X, y, opt_factory(), progress=False, client=client, **kw)
    return here, there


@pytest.mark.parametrize("opt_factory, batch", [
    (lambda: Adam(lr=0.05), 8),  # 61 samples: the last mini-batch has 5
    (lambda: Momentum(lr=0.2, momentum=0.9, weight_decay=1e-3), 16),
    (lambda: Adam(lr=0.05), None),  # full batch
])
def test_minibatch_fit_over_threads_matches_one_process(threads, opt_factory, batch):
    model, X, y = _problem()
    here, there = _both(model, X, y, threads, opt_factory, epochs=4, batch_size=batch,
                        seed=3)
    assert _close(there.params, here.params)
    assert _close(there.history.loss, here.history.loss)
    assert there.steps == here.steps == 4 * (-(-61 // (batch or 61)))
    assert there.stop_reason == here.stop_reason == "completed"
    assert there.history.loss[-1] < there.history.loss[0]
    assert there.model is model


def test_batches_are_split_across_uneven_shards_and_weighted(threads):
    """A mini-batch whose rows sit unevenly in the shards: the size-weighted sum is the
    single-process value; the plain mean of the shards' results (a wrong rule) is not."""
    from symnn.distributed.minibatch import ShardRows

    model, X, y = _problem()
    s = sd.shard(X, y, threads, n_shards=3)  # 20, 21, 20 samples
    rows = np.array([60, 2, 3, 25, 5, 7, 11, 13, 17, 19])  # 8 in shard 0, 1 each in 1, 2
    theta = model.init(1)
    grad = ShardRows(model, s)
    assert [(k, loc.tolist()) for k, loc in grad.split(rows)] == [
        (0, [2, 3, 5, 7, 11, 13, 17, 19]), (1, [5]), (2, [19])]
    L, g = grad(theta, rows)
    L1, g1 = model.loss_and_grad(theta, X[rows], y[rows])
    assert abs(L - L1) <= RTOL * abs(L1) and _close(g, g1)
    parts = [model.loss_and_grad(theta, X[r], y[r])
             for r in (rows[rows < 20], rows[(rows >= 20) & (rows < 41)], rows[rows >= 41])]
    unweighted = np.mean([p[1] for p in parts], axis=0)
    assert not _close(unweighted, g1, 1e-6)
    assert grad.calls == 1 and grad.tasks == 3


def test_validation_fraction_and_early_stopping_over_shards(threads):
    model, X, y = _problem()
    kw = dict(epochs=6, batch_size=8, seed=5, validation=0.25, early_stopping=2,
              check_every=2)
    here = model.fit(X, y, Adam(lr=0.3), progress=False, **kw)
    there = sd.fit(model, sd.shard(X, y, threads, n_shards=3), Adam(lr=0.3), **kw)
    also = model.fit(X, y, Adam(lr=0.3), progress=False, client=threads, **kw)
    for r in (there, also):
        assert len(r.history) == len(here.history)
        assert r.stop_reason == here.stop_reason and r.best_epoch == here.best_epoch
        assert _close(r.history.val_loss, here.history.val_loss)
        assert _close(r.params, here.params)


def test_callback_stop_and_divergence_keep_the_last_good_parameters(threads):
    model, X, y = _problem()
    here, there = _both(model, X, y, threads, lambda: Adam(lr=0.05), epochs=9,
                        batch_size=8, seed=0, callbacks=[lambda info: info.epoch == 2])
    assert len(there.history) == len(here.history) == 2
    assert there.stop_reason == here.stop_reason == "callback"
    errors = []
    for client in (None, threads):
        with pytest.raises(TrainingError, match="diverged") as info:
            model.fit(X * 1e3, y, SGD(lr=1e12), epochs=3, batch_size=8, seed=0,
                      check_every=0, progress=False, client=client)
        errors.append(info.value)
    assert len(errors[1].history) == len(errors[0].history)
    assert np.all(np.isfinite(errors[1].params))
    assert _close(errors[1].params, errors[0].params)


def test_second_order_through_fit_client(threads):
    model, X, y = _problem()
    here, there = _both(model, X, y, threads, lambda: "lbfgs", epochs=5, seed=1)
    assert len(there.history) == len(here.history)
    np.testing.assert_allclose(there.params, here.params, rtol=1e-8, atol=1e-10)


def test_errors(threads):
    model, X, y = _problem()
    with pytest.raises(ArgumentError, match="engine='kernel'"):
        model.fit(X, y, "adam", epochs=1, engine="kernel", client=threads, progress=False)
    s = sd.shard(X, y, threads, n_shards=2)
    with pytest.raises(ArgumentError, match="validation fraction"):
        sd.fit(model, s, "lbfgs", epochs=1, validation=0.2)
    with pytest.raises(ArgumentError, match="batch_size"):
        sd.fit(model, s, "adam", batch_size=0)
    with pytest.raises(ArgumentError, match="sharded data"):
        sd.fit(model, (X, y), "adam")


# The same over two worker processes: tests/test_distributed.py (its process cluster).
