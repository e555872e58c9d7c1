"""Synchronous data-parallel mini-batch training over Dask workers: per-step overhead.

    python benchmarks/bench_distributed_minibatch.py [--n 20000] [--batch 256]
        [--epochs 2] [--workers 2] [--processes]

Trains an MLP 10-32-32-1 (tanh, MSE, Adam) on an ``n``-sample synthetic set three ways
and prints the time per optimizer step:

* ``kernel`` — one process, the fused epoch kernel (one compiled call per epoch);
* ``python`` — one process, a Python loop around the compiled mini-batch gradient;
* ``dask``   — ``model.fit(..., client=client)``: each step sends θ and the batch's row
  indices to the workers holding its rows and gathers ``1 + P`` numbers from each.

The ``dask`` minus ``python`` difference is the cost of one round trip per step (task
submission, scheduling, transfer, gather).  It checks that the three fits reach the same
parameters (to 1e-12).  Not run by the tests; wall times depend on the machine and its
load.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--processes", action="store_true",
                    help="worker processes (default: worker threads in this process)")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    import symnn
    from symnn.train import Adam

    model = symnn.mlp([10, 32, 32, 1], activation="tanh", loss="mse").compile()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, 10))
    y = np.sin(X.sum(axis=1))
    kw = dict(epochs=args.epochs, batch_size=args.batch, seed=0, progress=False,
              check_every=0)
    steps = args.epochs * -(-args.n // args.batch)
    results = {}
    with LocalCluster(n_workers=args.workers, threads_per_worker=1,
                      processes=args.processes, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        for name, extra in (("kernel", {"engine": "kernel"}), ("python", {"engine": "python"}),
                            ("dask", {"client": client})):
            model.fit(X[:64], y[:64], Adam(lr=1e-3), **{**kw, "epochs": 1}, **extra)  # warm
            t0 = time.perf_counter()
            res = model.fit(X, y, Adam(lr=1e-3), **kw, **extra)
            results[name] = (time.perf_counter() - t0, res.params)
    print(f"n={args.n} batch={args.batch} epochs={args.epochs} steps={steps} "
          f"P={model.n_params} workers={args.workers} "
          f"({'processes' if args.processes else 'threads'})")
    for name, (t, _) in results.items():
        print(f"  {name:7s} {t:8.3f} s   {1e3 * t / steps:8.3f} ms/step")
    ref = results["kernel"][1]
    for name, (_, p) in results.items():
        err = float(np.max(np.abs(p - ref)) / np.max(np.abs(ref)))
        print(f"  {name:7s} max relative parameter difference to kernel: {err:.2e}")
        assert err <= 1e-12, name
    over = (results["dask"][0] - results["python"][0]) / steps
    print(f"  round-trip overhead per step (dask - python): {1e3 * over:.3f} ms")


if __name__ == "__main__":
    main()
