"""symnn.distributed on Dask LocalClusters: sharded exact derivatives, the kernel cache on
workers, sweeps, and the errors.

Two clusters, one per group of tests (each started once: a start costs seconds): threads
in this process (``processes=False``) and two worker processes (``processes=True``,
one thread each).  Every sharded value is compared with the single-process value of the
same compiled model (itself witnessed against finite differences, the NumPy reference
and PyTorch elsewhere in the suite), to 1e-12 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn.errors import ArgumentError, ShapeError

distributed = pytest.importorskip("distributed")
sd = pytest.importorskip("symnn.distributed")

RTOL = 1e-12


def _close(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and float(np.max(np.abs(a - b))) <= RTOL * max(
        float(np.max(np.abs(b))), 1e-300)


def _cluster(processes: bool):
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                       processes=processes, dashboard_address=":0")
    client = distributed.Client(cluster)
    return cluster, client


@pytest.fixture(scope="module")
def threads():
    cluster, client = _cluster(False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def procs():
    cluster, client = _cluster(True)
    yield client
    client.close()
    cluster.close()


t = sp.Symbol("t", real=True)

MODELS = {
    # L1 and L2 penalties (added once over all shards, not once per shard) and a custom
    # sympy.Lambda activation (rebuilt on the workers from its stored expression)
    "penalised": lambda: symnn.Network([symnn.Dense(3, 4), sp.Lambda(t, t / (1 + t * t)),
                                        symnn.Dense(4, 2)], loss="mse",
                                       penalties=[symnn.L2(0.03), symnn.L1(0.02)]),
    # integer class labels, softmax output with cross-entropy (fused)
    "labels": lambda: symnn.mlp([3, 4, 3], activation="sigmoid", output="softmax",
                                loss="cross_entropy"),
}

_COMPILED: dict = {}


def _problem(name, N=61):
    """(model, X, y, θ, V) with the single-process results of every kernel computed first
    (which also fills the on-disk kernel cache the workers read)."""
    if name not in _COMPILED:
        model = MODELS[name]().compile()
        rng = np.random.default_rng(7)
        X = rng.standard_normal((N, 3))
        y = (rng.integers(0, 3, N) if name == "labels" else rng.standard_normal((N, 2)))
        theta = model.init(3) + 0.1 * rng.standard_normal(model.n_params)
        V = rng.standard_normal((3, model.n_params))
        ref = {"loss_and_grad": model.loss_and_grad(theta, X, y),
               "loss": model.loss(theta, X, y),
               "hvp": model.hvp(theta, V, X, y), "hvp1": model.hvp(theta, V[0], X, y),
               "gnvp": model.gnvp(theta, V, X, y), "hessian": model.hessian(theta, X, y)}
        _COMPILED[name] = (model, X, y, theta, V, ref)
    return _COMPILED[name]


def _check_all(client, name, n_shards):
    model, X, y, theta, V, ref = _problem(name)
    s = sd.shard(X, y, client, n_shards=n_shards)
    assert sum(s.sizes) == X.shape[0] and s.n_shards == n_shards
    L, g = sd.loss_and_grad(model, theta, s)
    assert _close(L, ref["loss_and_grad"][0]) and _close(g, ref["loss_and_grad"][1])
    assert _close(sd.loss(model, theta, s), ref["loss"])
    assert _close(sd.hvp(model, theta, V, s), ref["hvp"])
    assert _close(sd.hvp(model, theta, V[0], s), ref["hvp1"])
    assert _close(sd.gnvp(model, theta, V, s), ref["gnvp"])
    assert _close(sd.hessian(model, theta, s), ref["hessian"])
    return model, s


# -- threads in this process -------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_sharded_equals_single_process_threads(threads, name):
    # 61 samples in 4 shards: uneven (15/15/16/15)
    _, s = _check_all(threads, name, 4)
    assert len(set(s.sizes)) > 1


def test_one_shard_and_many(threads):
    _check_all(threads, "penalised", 1)
    _check_all(threads, "penalised", 61)  # one sample per shard


def test_penalty_is_not_added_per_shard(threads):
    # the penalty's share is visible: with 5 shards, adding it once per shard would give
    # 5× the penalty (a test that could fail)
    model, X, y, theta, _, ref = _problem("penalised")
    s = sd.shard(X, y, threads, n_shards=5)
    L, _ = sd.loss_and_grad(model, theta, s)
    W = [w for n, w in model.unflatten(theta).items() if n.startswith("W")]
    pen = sum(0.03 * np.sum(w * w) + 0.02 * np.sum(np.abs(w)) for w in W)
    assert len(W) == 2 and pen > 1e-2
    assert _close(L, ref["loss"])


def test_sweep_with_a_failing_configuration(threads):
    model, X, y, *_ = _problem("penalised")
    grid = [{"optimizer": o, "lr": lr, "seed": seed}
            for o in ("adam", "sgd") for lr in (0.05, 0.01) for seed in (0, 1)]
    grid.insert(3, {"optimizer": "no_such_optimizer", "lr": 0.1, "seed": 0})
    table = sd.sweep(model, grid, threads, X, y, epochs=2, batch_size=16,
                     engine="python")
    assert len(table) == 9 and len(table.ok()) == 8
    bad = table[3]
    assert bad["optimizer"] == "no_such_optimizer" and "no_such_optimizer" in bad["error"]
    assert bad["params"] is None
    for row in table.ok():
        assert np.isfinite(row["loss"]) and row["epochs"] == 2
    # a configuration reached the same parameters as the same fit in this process
    local = model.fit(X, y, {"name": "sgd", "lr": 0.01}, epochs=2, batch_size=16, seed=1,
                      engine="python", progress=False)
    row = next(r for r in table if r["optimizer"] == "sgd" and r["lr"] == 0.01
               and r["seed"] == 1)
    np.testing.assert_array_equal(row["params"], local.params)
    text = str(table)
    assert "UnknownNameError" in text and text.count("\n") == 9
    assert table.best()["loss"] == min(r["loss"] for r in table.ok())


def test_sweep_grid_product(threads):
    model, X, y, *_ = _problem("penalised")
    table = sd.sweep(model, {"lr": [0.1, 0.01], "seed": [0, 1]}, threads, X, y, epochs=1,
                     engine="python")
    assert [(r["lr"], r["seed"]) for r in table] == [(0.1, 0), (0.1, 1), (0.01, 0), (0.01, 1)]
    with pytest.raises(ArgumentError, match="grid"):
        sd.sweep(model, {"lr": []}, threads, X, y)


# -- errors ------------------------------------------------------------------------------

def test_shape_errors(threads):
    model, X, y, theta, V, _ = _problem("penalised")
    with pytest.raises(ShapeError, match="target row per sample"):
        sd.shard(X, y[:-1], threads)
    with pytest.raises(ShapeError, match=r"X has shape"):
        sd.shard(X[:, 0], y, threads)
    s = sd.shard(X, y, threads, n_shards=2)
    with pytest.raises(ShapeError, match="inputs"):
        sd.loss_and_grad(model, theta, sd.shard(X[:, :2], y, threads))
    with pytest.raises(ShapeError):
        sd.loss_and_grad(model, theta[:-1], s)
    with pytest.raises(ShapeError):
        sd.hvp(model, theta, V[:, :-1], s)
    with pytest.raises(ArgumentError, match="n_shards"):
        sd.shard(X, y, threads, n_shards=0)
    with pytest.raises(ArgumentError, match="shard"):
        sd.loss_and_grad(model, theta, (X, y))


def test_no_client(monkeypatch):
    _, X, y, *_ = _problem("penalised")

    def none():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "default_client", none)
    with pytest.raises(sd.DistributedError, match="no Dask client"):
        sd.shard(X, y)
    with pytest.raises(sd.DistributedError, match="distributed.Client"):
        sd.shard(X, y, client="tcp://127.0.0.1:8786")


def test_closed_client(threads):
    model, X, y, theta, *_ = _problem("penalised")
    client = distributed.Client(threads.cluster)
    s = sd.shard(X, y, client, n_shards=2)
    client.close()
    with pytest.raises(sd.DistributedError, match="closed"):
        sd.loss_and_grad(model, theta, s)
    with pytest.raises(sd.DistributedError, match="closed"):
        sd.shard(X, y, client)


def test_not_a_compiled_model(threads):
    _, X, y, theta, *_ = _problem("penalised")
    s = sd.shard(X, y, threads, n_shards=2)
    with pytest.raises(sd.DistributedError, match="compiled model"):
        sd.loss_and_grad(MODELS["penalised"](), theta, s)


# -- worker processes --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_sharded_equals_single_process_processes(procs, name):
    _check_all(procs, name, 3)


def test_workers_load_kernels_from_the_cache(procs):
    # run after the products above: every worker rebuilt the models from their recipes
    # and Numba loaded every kernel from the on-disk cache, compiling none
    model, X, y, theta, *_ = _problem("penalised")
    sd.loss_and_grad(model, theta, sd.shard(X, y, procs, n_shards=2))
    stats = sd.kernel_cache_stats(procs)
    key = sd.recipe_of(model).key
    assert len(stats) == 2
    for worker, models in stats.items():
        assert key in models, worker
        for k, st in models.items():
            assert st["misses"] == 0, (worker, k, st)
            assert st["hits"] >= 1, (worker, k, st)


def test_unregistered_activation_cannot_be_rebuilt(procs):
    from symnn.functions import ActivationFunction, unregister

    class softsign_dist(ActivationFunction):  # registered in this process only
        nargs = 1

        @staticmethod
        def definition(z):
            return z / (1 + sp.Abs(z))

    try:
        model = symnn.mlp([3, 2, 1], activation="softsign_dist", loss="mse").compile()
        rng = np.random.default_rng(0)
        s = sd.shard(rng.standard_normal((8, 3)), rng.standard_normal(8), procs, n_shards=2)
        with pytest.raises(sd.DistributedError, match="cannot rebuild"):
            sd.loss_and_grad(model, model.init(0), s)
    finally:
        unregister("softsign_dist")


def test_model_never_called_in_this_process_float32(threads):
    # the workers (two threads of this process) make the first kernel calls of a float32
    # model: the runtime is prepared once, under a lock, not by both threads at once
    model = symnn.mlp([3, 2, 1], activation="tanh", loss="mse").compile(dtype="float32")
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal(40)
    theta = model.init(0)
    L, g = sd.loss_and_grad(model, theta, sd.shard(X, y, threads, n_shards=4))
    L1, g1 = model.loss_and_grad(theta, X, y)
    assert g.dtype == np.float32
    # float32 kernels: the shards' sum rounds differently, to float32 precision
    assert abs(L - L1) <= 1e-5 * abs(L1) and np.max(np.abs(g - g1)) <= 1e-5 * np.max(np.abs(g1))


# -- second-order training over shards ---------------------------------------------------

@pytest.mark.parametrize("method, where", [("newton_cg", "threads"), ("lbfgs", "threads"),
                                           ("newton_cg", "procs")])
def test_second_order_fit_over_shards_matches_one_process(request, method, where):
    from symnn.train.optimizers import get_optimizer

    model, X, y, *_ = _problem("labels")
    s = sd.shard(X, y, request.getfixturevalue(where), n_shards=3)
    here = model.fit(X, y, get_optimizer(method), epochs=6, seed=2, progress=False)
    there = sd.fit(model, s, get_optimizer(method), epochs=6, seed=2)
    assert len(there.history) == len(here.history) >= 2
    assert there.stop_reason == here.stop_reason
    np.testing.assert_allclose(there.history.loss, here.history.loss, rtol=1e-10)
    np.testing.assert_allclose(there.params, here.params, rtol=1e-8, atol=1e-10)
    assert there.history.loss[-1] < there.history.loss[0]


def test_fit_over_shards_first_order_is_mini_batch(threads):
    """First-order optimizers train mini-batch over the shards (more in
    tests/test_distributed_minibatch.py)."""
    model, X, y, *_ = _problem("labels")
    s = sd.shard(X, y, threads, n_shards=2)
    here = model.fit(X, y, "adam", epochs=2, batch_size=8, seed=1, progress=False)
    there = sd.fit(model, s, "adam", epochs=2, batch_size=8, seed=1)
    assert _close(there.params, here.params) and there.steps == here.steps == 16


def test_cluster_gone():
    model, X, y, theta, *_ = _problem("penalised")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                       dashboard_address=":0")
    client = distributed.Client(cluster)
    s = sd.shard(X, y, client, n_shards=2)
    cluster.close()
    try:
        with pytest.raises(sd.DistributedError, match="shard the data again"):
            sd.loss_and_grad(model, theta, s)
    finally:
        client.close()


def test_sweep_of_a_spec(threads):
    from symnn.spec import loads_spec

    spec = loads_spec('[network]\nlayers = [3, 4, 2]\nactivation = "tanh"\nloss = "mse"\n'
                      '[optimizer]\nname = "sgd"\nlr = 0.05\n'
                      '[training]\nepochs = 2\nbatch_size = 8\n')
    _, X, y, *_ = _problem("penalised")
    table = sd.sweep(spec, {"seed": [0, 1]}, threads, X, y, engine="python")
    assert [r["error"] for r in table] == [None, None]
    assert [r["epochs"] for r in table] == [2, 2]  # the spec's [training] epochs
    local = spec.declared.compile().fit(X, y, {"name": "sgd", "lr": 0.05}, epochs=2,
                                        batch_size=8, seed=1, engine="python",
                                        progress=False)
    np.testing.assert_array_equal(table[1]["params"], local.params)


# -- mini-batch training over worker processes (the rest: tests/test_distributed_minibatch.py)

def test_minibatch_fit_over_two_worker_processes(procs):
    """Synchronous data-parallel Adam over two worker processes: the parameters and the
    loss history of the single-process fit, to 1e-12; the workers compiled nothing."""
    from symnn.train import Adam

    model, X, y, *_ = _problem("labels")
    here = model.fit(X, y, Adam(lr=0.05), epochs=2, batch_size=16, seed=4, progress=False)
    there = model.fit(X, y, Adam(lr=0.05), epochs=2, batch_size=16, seed=4, progress=False,
                      client=procs)
    assert _close(there.params, here.params)
    assert _close(there.history.loss, here.history.loss)
    assert not _close(there.params, model.init(4))  # it trained
    stats = sd.kernel_cache_stats(procs)
    assert all(v["misses"] == 0 for w in stats.values() for v in w.values())

