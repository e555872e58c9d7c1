"""Symmetric eigensolvers at the sizes of symnn's dense Hessian spectra, and BLAS threads.

For each size P (default 64, 193, 500) and each BLAS thread count (1, 2: set in-process
with threadpoolctl), times every candidate on the same symmetric matrix, interleaved
round by round, after checking each against ``numpy.linalg.eigvalsh`` (to 1e-10 relative
to the largest |λ|):

* ``numpy eigvalsh`` — LAPACK ``dsyevd`` through NumPy (the old path);
* ``scipy eigh ev/evd/evr/evx`` — ``scipy.linalg.eigh(eigvals_only=True, driver=…,
  check_finite=False, overwrite_a=True)``;
* ``lapack dsyevr`` / ``dsyevd`` — ``scipy.linalg.lapack`` directly;
* ``symnn`` — :func:`symnn.analysis.curvature.symmetric_eigvals` (the path
  ``hessian_spectrum`` uses: ``dsyevd`` on one BLAS thread up to 1024 rows).

Also times the dense Hessian of the 10-16-1 tanh network (193 parameters, B=64) with 1
and 2 BLAS threads around the kernel calls.

Run: ``python benchmarks/bench_eigsolvers.py [--sizes 64,193,500] [--rounds 7] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _candidates():
    import scipy.linalg as sl
    from scipy.linalg import lapack

    from symnn.analysis.curvature import symmetric_eigvals

    def sc(driver):
        return lambda M: sl.eigh(M, eigvals_only=True, driver=driver, check_finite=False,
                                 overwrite_a=True)

    return {
        "numpy eigvalsh": np.linalg.eigvalsh,
        "scipy eigh ev": sc("ev"), "scipy eigh evd": sc("evd"),
        "scipy eigh evr": sc("evr"), "scipy eigh evx": sc("evx"),
        "lapack dsyevr": lambda M: lapack.dsyevr(M, compute_v=0, lower=1, overwrite_a=1)[0],
        "lapack dsyevd": lambda M: lapack.dsyevd(M, compute_v=0, lower=1, overwrite_a=1)[0],
        "symnn": symmetric_eigvals,
    }


def _time(f, H, reps):
    mats = [np.asfortranarray(H) for _ in range(reps)]  # fresh copies: overwrite_a
    t = time.perf_counter()
    for m in mats:
        f(m)
    return (time.perf_counter() - t) / reps


def bench_size(P: int, rounds: int, threads: list[int], limit) -> dict:
    rng = np.random.default_rng(P)
    A = rng.standard_normal((P, P))
    H = A + A.T
    ref = np.linalg.eigvalsh(H)
    scale = np.max(np.abs(ref))
    cands = _candidates()
    for name, f in cands.items():
        err = np.max(np.abs(np.sort(f(np.asfortranarray(H))) - ref)) / scale
        if not err <= 1e-10:
            raise SystemExit(f"{name} at P={P} differs from numpy eigvalsh by {err:.2e}")
    reps = max(1, int(2e6 // P**2))
    times = {(n, t): [] for n in cands for t in threads}
    for _ in range(rounds):
        for t in threads:
            with limit(t):
                for n, f in cands.items():
                    times[(n, t)].append(_time(f, H, reps))
    return {f"{n} x{t}": statistics.median(v) for (n, t), v in times.items()}


def bench_hessian(rounds: int, threads: list[int], limit) -> dict:
    import symnn

    net = symnn.mlp([10, 16, 1], activation="tanh", loss="mse")
    model = net.compile()
    rng = np.random.default_rng(0)
    theta, X, y = model.init(seed=0), rng.standard_normal((64, 10)), rng.standard_normal(64)
    H = model.hessian(theta, X, y)
    ref = model.reference.hessian(theta, X, y)
    assert np.allclose(H, ref, rtol=1e-9, atol=1e-12)
    from symnn import _threads

    times = {t: [] for t in threads}
    for _ in range(rounds):
        for t in threads:
            saved = _threads.SMALL_PARAMS
            _threads.SMALL_PARAMS = -1  # the caller's thread count, not symnn's choice
            try:
                with limit(t):
                    s = time.perf_counter()
                    for _ in range(10):
                        model.hessian(theta, X, y)
                    times[t].append((time.perf_counter() - s) / 10)
            finally:
                _threads.SMALL_PARAMS = saved
        s = time.perf_counter()
        for _ in range(10):
            model.hessian(theta, X, y)
        times.setdefault("symnn's choice", []).append((time.perf_counter() - s) / 10)
    return {f"hessian 193p x{t}" if t != "symnn's choice" else "hessian 193p (symnn's choice)":
            statistics.median(v) for t, v in times.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,193,500")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from symnn._threads import blas_threads

    threads = [int(t) for t in args.threads.split(",")]
    out: dict = {}
    for P in (int(p) for p in args.sizes.split(",")):
        out[f"P={P}"] = bench_size(P, args.rounds, threads, blas_threads)
    out["hessian"] = bench_hessian(args.rounds, threads, blas_threads)
    if args.json:
        print(json.dumps(out, indent=1))
        return out
    for section, res in out.items():
        base = res.get("numpy eigvalsh x1") or next(iter(res.values()))
        print(section)
        for k, v in res.items():
            print(f"  {k:<34} {v * 1e3:9.3f} ms   {v / base:6.2f}×")
    return out


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
