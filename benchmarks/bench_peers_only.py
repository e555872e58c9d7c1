"""Benchmark the reference peers (no symnn kernels) on the standard MLP workloads.

Workloads (float64, symnn's flat parameter layout, see ``peers.py``):

1. loss + gradient, 64-128-128-10 tanh / softmax-CE, B = 1, 32, 256, 2048;
2. Hessian-vector product, same net, B = 256;
3. full Hessian, 10-16-1 tanh / MSE (193 parameters), B = 64;
4. extreme Hessian eigenvalues of that net (dense ``eigvalsh`` of the full Hessian).

Ratios are relative to the hand-written Numba kernels. Every candidate is checked
against the NumPy peer before it is timed. To add a column (e.g. symnn's kernels), add
an entry to the dict returned by the ``*_candidates`` functions: a zero-argument
callable that does the whole computation and returns when the result is ready.

Run: ``python benchmarks/bench_peers_only.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers
from _timing import blas_info, median_time, print_environment, print_table

GRAD_SIZES = (64, 128, 128, 10)
GRAD_BATCHES = (1, 32, 256, 2048)
HVP_BATCH = 256
HESS_SIZES = (10, 16, 1)
HESS_BATCH = 64
REFERENCE = "numba"

Thunk = Callable[[], object]


def _rel_err(a, b) -> float:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _available(name: str, status: dict[str, str | None]) -> bool:
    return status.get(name) is None


# --------------------------------------------------------------------------------------
# Candidates: each returns {column: (thunk, check)} where check() -> rel. error vs NumPy
# --------------------------------------------------------------------------------------


def gradient_candidates(
    sizes, theta, X, Y, status, *, loss="ce"
) -> dict[str, tuple[Thunk, Callable[[], float]]]:
    """Loss-and-gradient candidates on one problem."""
    _, g_ref = peers.numpy_loss_and_grad(theta, X, Y, sizes, loss=loss)
    c: dict[str, tuple[Thunk, Callable[[], float]]] = {}

    f_nb = peers.make_numba_loss_and_grad(sizes, loss=loss)
    c["numba"] = (lambda: f_nb(theta, X, Y), lambda: _rel_err(f_nb(theta, X, Y)[1], g_ref))
    c["numpy"] = (lambda: peers.numpy_loss_and_grad(theta, X, Y, sizes, loss=loss), lambda: 0.0)
    if _available("torch", status):
        f_t = peers.make_torch_loss_and_grad(sizes, loss=loss)
        args_t = peers.to_torch(theta, X, Y)
        c["torch"] = (lambda: f_t(*args_t), lambda: _rel_err(f_t(*args_t)[1].numpy(), g_ref))
    if _available("jax", status):
        import jax

        f_j = peers.make_jax_loss_and_grad(sizes, loss=loss)
        args_j = peers.to_jax(theta, X, Y)
        c["jax"] = (
            lambda: jax.block_until_ready(f_j(*args_j)),
            lambda: _rel_err(f_j(*args_j)[1], g_ref),
        )
    return c


def hvp_candidates(
    sizes, theta, X, Y, v, status, *, loss="ce"
) -> dict[str, tuple[Thunk, Callable[[], float]]]:
    """Hessian-vector-product candidates on one problem."""
    hv_ref = peers.numpy_hvp(theta, X, Y, sizes, v, loss=loss)
    c: dict[str, tuple[Thunk, Callable[[], float]]] = {}
    f_nb = peers.make_numba_hvp(sizes, loss=loss)
    c["numba"] = (lambda: f_nb(theta, X, Y, v), lambda: _rel_err(f_nb(theta, X, Y, v), hv_ref))
    c["numpy"] = (lambda: peers.numpy_hvp(theta, X, Y, sizes, v, loss=loss), lambda: 0.0)
    if _available("torch", status):
        args_t = peers.to_torch(theta, X, Y, v)
        for label, method in (
            ("torch fwd-rev", "forward-over-reverse"),
            ("torch rev-rev", "reverse-over-reverse"),
        ):
            f_t = peers.make_torch_hvp(sizes, loss=loss, method=method)
            c[label] = (
                lambda f_t=f_t: f_t(*args_t),
                lambda f_t=f_t: _rel_err(f_t(*args_t).detach().numpy(), hv_ref),
            )
    if _available("jax", status):
        import jax

        f_j = peers.make_jax_hvp(sizes, loss=loss)
        args_j = peers.to_jax(theta, X, Y, v)
        c["jax"] = (
            lambda: jax.block_until_ready(f_j(*args_j)),
            lambda: _rel_err(f_j(*args_j), hv_ref),
        )
    return c


def hessian_candidates(
    sizes, theta, X, Y, status, *, loss="mse"
) -> dict[str, tuple[Thunk, Callable[[], float]]]:
    """Full-Hessian candidates on one problem."""
    H_ref = peers.numpy_hessian(theta, X, Y, sizes, loss=loss)
    c: dict[str, tuple[Thunk, Callable[[], float]]] = {}
    f_nb = peers.make_numba_hessian(sizes, loss=loss)
    c["numba"] = (lambda: f_nb(theta, X, Y), lambda: _rel_err(f_nb(theta, X, Y), H_ref))
    c["numpy"] = (lambda: peers.numpy_hessian(theta, X, Y, sizes, loss=loss), lambda: 0.0)
    if _available("torch", status):
        f_t = peers.make_torch_hessian(sizes, loss=loss)
        args_t = peers.to_torch(theta, X, Y)
        c["torch"] = (lambda: f_t(*args_t), lambda: _rel_err(f_t(*args_t).numpy(), H_ref))
    if _available("jax", status):
        import jax

        f_j = peers.make_jax_hessian(sizes, loss=loss)
        args_j = peers.to_jax(theta, X, Y)
        c["jax"] = (
            lambda: jax.block_until_ready(f_j(*args_j)),
            lambda: _rel_err(f_j(*args_j), H_ref),
        )
    return c


def eig_candidates(
    sizes, theta, X, Y, status, *, loss="mse"
) -> dict[str, tuple[Thunk, Callable[[], float]]]:
    """Extreme-Hessian-eigenvalue candidates (dense ``eigvalsh``) on one problem."""
    ref = np.array(peers.numpy_hessian_extreme_eigenvalues(theta, X, Y, sizes, loss=loss))
    c: dict[str, tuple[Thunk, Callable[[], float]]] = {}
    f_nb = peers.make_numba_hessian(sizes, loss=loss)

    def numba_eig():
        ev = np.linalg.eigvalsh(f_nb(theta, X, Y))
        return ev[0], ev[-1]

    c["numba"] = (numba_eig, lambda: _rel_err(numba_eig(), ref))
    c["numpy"] = (
        lambda: peers.numpy_hessian_extreme_eigenvalues(theta, X, Y, sizes, loss=loss),
        lambda: 0.0,
    )
    if _available("torch", status):
        c["torch"] = (
            lambda: peers.torch_hessian_extreme_eigenvalues(theta, X, Y, sizes, loss=loss),
            lambda: _rel_err(
                peers.torch_hessian_extreme_eigenvalues(theta, X, Y, sizes, loss=loss), ref
            ),
        )
    if _available("jax", status):
        import jax

        f_j = peers.make_jax_hessian_extreme_eigenvalues(sizes, loss=loss)
        args_j = peers.to_jax(theta, X, Y)
        c["jax"] = (
            lambda: jax.block_until_ready(f_j(*args_j)),
            lambda: _rel_err(np.array([float(x) for x in f_j(*args_j)]), ref),
        )
    return c


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def run_candidates(
    candidates: dict[str, tuple[Thunk, Callable[[], float]]],
    *,
    tol: float,
    repeat: int,
    min_time: float,
) -> dict[str, float | str]:
    """Check then time every candidate; a failing check is reported instead of a time."""
    row: dict[str, float | str] = {}
    for name, (thunk, check) in candidates.items():
        err = check()
        if not err <= tol:
            row[name] = f"WRONG (rel err {err:.1e})"
            continue
        row[name] = median_time(thunk, repeat=repeat, min_time=min_time)
    return row


def matmul_throughput(n: int = 1024, *, repeat: int = 5) -> dict[str, float]:
    """GFLOP/s of an ``n x n`` float64 matmul: NumPy ``@`` and ``np.dot`` inside Numba."""

    @njit
    def nb_dot(A, B, C):
        np.dot(A, B, C)

    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n))
    B = rng.standard_normal((n, n))
    C = np.empty((n, n))
    flops = 2.0 * n**3
    res = {}
    res["numpy A @ B"] = flops / median_time(lambda: np.matmul(A, B, out=C), repeat=repeat) / 1e9
    res["numba np.dot"] = flops / median_time(lambda: nb_dot(A, B, C), repeat=repeat) / 1e9
    return res


def _limit_threads(n: int) -> None:
    """Limit every thread pool to ``n`` threads; must run before torch/jax are imported."""
    if n == 1:  # XLA reads this once, when its CPU client starts
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    peers.set_torch_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl not installed: BLAS thread count left unchanged")
        return
    import scipy.linalg  # noqa: F401  (load the OpenBLAS that numba's BLAS calls use)

    # Kept alive for the whole run (the limiter is a context manager).
    _limit_threads.limiter = threadpool_limits(limits=n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 samples of >= 5 ms each")
    parser.add_argument("--repeat", type=int, default=7, help="samples per median")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per sample")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS/OpenMP pools (threadpoolctl), torch and XLA to N threads "
        "(default: leave BLAS as configured, torch at peers.TORCH_THREADS)",
    )
    args = parser.parse_args(argv)
    repeat, min_time = (3, 0.005) if args.quick else (args.repeat, args.min_time)

    t_start = time.perf_counter()
    if args.threads is not None:
        _limit_threads(args.threads)
    status = peers.peer_status()
    for name, reason in status.items():
        if reason is not None:
            print(f"peer {name!r} skipped: {reason}")

    mm = matmul_throughput()
    print("\nMatmul throughput, 1024x1024 float64 (median of 5):")
    for name, gflops in mm.items():
        print(f"  {name:<14} {gflops:7.1f} GFLOP/s")
    for lib in blas_info():
        if lib.get("internal_api") == "openblas":
            print(
                f"  OpenBLAS {lib.get('version')}: core type {lib.get('architecture')}, "
                f"{lib.get('num_threads')} threads ({Path(lib.get('filepath', '')).name})"
            )

    rows = {}
    for B in GRAD_BATCHES:
        theta, X, Y = peers.random_problem(GRAD_SIZES, B, loss="ce", seed=B)
        cands = gradient_candidates(GRAD_SIZES, theta, X, Y, status, loss="ce")
        rows[f"B={B}"] = run_candidates(cands, tol=1e-10, repeat=repeat, min_time=min_time)
    net = "-".join(map(str, GRAD_SIZES))
    print_table(f"Loss + gradient, {net} tanh/softmax-CE", rows, reference=REFERENCE)

    theta, X, Y = peers.random_problem(GRAD_SIZES, HVP_BATCH, loss="ce", seed=1)
    v = np.random.default_rng(2).standard_normal(theta.size)
    cands = hvp_candidates(GRAD_SIZES, theta, X, Y, v, status, loss="ce")
    rows = {f"B={HVP_BATCH}": run_candidates(cands, tol=1e-8, repeat=repeat, min_time=min_time)}
    print_table(f"Hessian-vector product, {net} tanh/softmax-CE", rows, reference=REFERENCE)

    theta, X, Y = peers.random_problem(HESS_SIZES, HESS_BATCH, loss="mse", seed=3)
    hnet = "-".join(map(str, HESS_SIZES))
    P = theta.size
    cands = hessian_candidates(HESS_SIZES, theta, X, Y, status, loss="mse")
    rows = {f"B={HESS_BATCH}": run_candidates(cands, tol=1e-8, repeat=repeat, min_time=min_time)}
    print_table(f"Full Hessian ({P}x{P}), {hnet} tanh/MSE", rows, reference=REFERENCE)

    cands = eig_candidates(HESS_SIZES, theta, X, Y, status, loss="mse")
    rows = {f"B={HESS_BATCH}": run_candidates(cands, tol=1e-8, repeat=repeat, min_time=min_time)}
    print_table(
        f"Hessian extreme eigenvalues (dense eigvalsh), {hnet} tanh/MSE", rows, reference=REFERENCE
    )

    print()
    print_environment()
    print(f"\n(total benchmark wall time {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
