"""Full-batch gradients over Dask workers: scaling and per-call overhead.

    python benchmarks/bench_distributed.py [--n 2000000] [--repeat 7]

1. Wall time of ``symnn.distributed.loss_and_grad`` over an ``n``-sample synthetic set
   (10 inputs, an MLP 10-32-32-1, tanh, MSE) with 1 and 2 worker processes (one thread
   each, one shard per worker), against the plain kernel in this process; scaling
   efficiency = t(1 worker) / t(2 workers).
2. Per-call overhead at small sizes: the sharded call minus the plain kernel, for
   n = 100, 1 000, 10 000 on 2 workers.

Prints medians and ratios.  Not run by the tests.  Wall times depend on the machine and
its load (a shared 2-core machine gives no stable figures).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _median(fn, repeat: int) -> float:
    fn()  # warm: rebuild on the workers, first kernel calls
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    import symnn
    import symnn.distributed as sd

    model = symnn.mlp([10, 32, 32, 1], activation="tanh", loss="mse").compile()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, 10))
    y = np.sin(X.sum(axis=1))
    theta = model.init(0)
    t_plain = _median(lambda: model.loss_and_grad(theta, X, y), args.repeat)
    print(f"n = {args.n}, P = {model.n_params}")
    print(f"plain kernel, this process:  {t_plain * 1e3:9.2f} ms  (BLAS threads: default)")
    try:  # the workers run one thread each: the like-for-like single-process figure
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=1):
            t_one = _median(lambda: model.loss_and_grad(theta, X, y), args.repeat)
        print(f"plain kernel, 1 BLAS thread: {t_one * 1e3:9.2f} ms")
    timings = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            data = sd.shard(X, y, client, n_shards=workers)
            timings[workers] = _median(lambda d=data: sd.loss_and_grad(model, theta, d),
                                       args.repeat)
            print(f"{workers} worker(s):                {timings[workers] * 1e3:9.2f} ms")
            if workers == 2:
                print("per-call overhead on 2 workers (sharded − plain):")
                for n in (100, 1_000, 10_000):
                    small = sd.shard(X[:n], y[:n], client, n_shards=2)
                    ts = _median(lambda d=small: sd.loss_and_grad(model, theta, d), args.repeat)
                    tp = _median(lambda n=n: model.loss_and_grad(theta, X[:n], y[:n]), args.repeat)
                    print(f"  n = {n:6d}: sharded {ts * 1e3:8.2f} ms, plain {tp * 1e3:8.3f} ms,"
                          f" overhead {(ts - tp) * 1e3:8.2f} ms")
    print(f"scaling efficiency t(1)/t(2) = {timings[1] / timings[2]:.2f}× "
          f"(ideal 2×); 1 worker / plain = {timings[1] / t_plain:.2f}")


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
