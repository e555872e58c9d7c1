"""symnn's generated kernels against the peers, in one process.

Workloads (float64, symnn's flat parameter layout — the layout ``peers.py`` uses):

1. loss + gradient of a 64-128-128-10 tanh / softmax-cross-entropy MLP, B = 1, 32, 256, 2048;
2. Hessian-vector product of the same network at B = 256, beside symnn's own gradient;
3. the full Hessian (193 × 193) of a 10-16-1 tanh / MSE network at B = 64;
4. compile time: a new process with an empty kernel cache (derive + generate + compile +
   first call of the gradient), then a second process with that cache (warm start); and
   once more with Numba's own cache emptied too (symnn's runtime blocks and
   ``symnn.codegen.fastmath`` recompiled: the very first run on a machine).

Columns: ``numba`` is the hand-written Numba reference kernel of ``peers.py`` (ratios are
relative to it, ``< 1`` is faster); ``symnn`` is the public method
(``model.loss_and_grad(theta, X, Y)``: argument checks, a fresh gradient array);
``symnn kernel`` the generated kernel called directly on flat arrays with its reusable work
buffer (what a training loop pays).  Every candidate is checked against the NumPy peer
before it is timed.  Timings are medians (``_timing.median_time``); on a shared 2-core
machine run it more than once and with ``--threads 1`` for steadier numbers.

Run: ``python benchmarks/bench_kernels.py [--quick] [--threads N] [--no-compile]
[--symnn-only] [--json] [--jax-python PATH]``.  ``--jax-python`` times JAX's gradient in
another interpreter (a venv with JAX) when this one has none, in samples alternating with
the ``symnn`` column's, the public call (which is then that paired median; each side runs
untimed for 0.2 s before each sample, ``_jax_remote.WARM``).  ``--symnn-only`` times symnn's own columns and no peer;
``--json`` prints, instead of the tables, one JSON line per case (``{"bench": "kernels",
"case": ..., "seconds": ...}``; a case whose check failed has ``"seconds": null`` and a
``"note"``), which ``benchmarks/compare_revisions.py`` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_peers_only as bp  # noqa: E402
import peers  # noqa: E402
from _timing import median_time, print_environment, print_table  # noqa: E402

import symnn  # noqa: E402

GRAD_SIZES = bp.GRAD_SIZES
GRAD_BATCHES = bp.GRAD_BATCHES
HVP_BATCH = bp.HVP_BATCH
HESS_SIZES = bp.HESS_SIZES
HESS_BATCH = bp.HESS_BATCH

#: Issue #3's targets (2-core reference machine, 2 BLAS threads).
TARGETS = {
    "grad": "at least as fast as the hand-written Numba kernel (13 µs / 90 µs / 482 µs / "
            "5.9 ms at B = 1 / 32 / 256 / 2048)",
    "hvp": "HVP ≤ 2 × symnn's own gradient",
    "hessian": "full 193-parameter Hessian at B = 64 ≤ 0.77 ms (JAX)",
    "cold": "cold ≤ 5 s",
    "warm": "warm ≤ 0.8 s",
}


def _mlp(sizes, loss, name):
    if loss == "ce":
        return symnn.mlp(sizes, activation="tanh", output="softmax", loss="cross_entropy",
                         name=name)
    return symnn.mlp(sizes, activation="tanh", loss="mse", name=name)


def _rel(a, b) -> float:
    return bp._rel_err(a, b)


def gradient_row(model, B, status, repeat, min_time, with_peers=True, jax_remote=None):
    theta, X, Y = peers.random_problem(GRAD_SIZES, B, loss="ce", seed=B)
    _, g_ref = peers.numpy_loss_and_grad(theta, X, Y, GRAD_SIZES, loss="ce")
    kern = model.kernels["loss_and_grad"]
    Xf, Yf = X.reshape(-1), Y.reshape(-1)
    work = np.empty(model.generated.work_size("loss_and_grad", B))
    P = model.n_params

    def raw():
        g = np.empty(P)
        kern(theta, Xf, Yf, g, work)
        return g

    cands = {
        "symnn": (lambda: model.loss_and_grad(theta, X, Y),
                  lambda: _rel(model.loss_and_grad(theta, X, Y)[1], g_ref)),
        "symnn kernel": (raw, lambda: _rel(raw(), g_ref)),
    }
    if with_peers:
        cands.update(bp.gradient_candidates(GRAD_SIZES, theta, X, Y, status, loss="ce"))
    row = bp.run_candidates(cands, tol=1e-10, repeat=repeat, min_time=min_time)
    if jax_remote is not None and with_peers:  # JAX in its own venv: paired samples
        # lead, round 8: the public call is paired (what a user calls; at B ≥ 2048 it runs
        # chunks of rows on the threads, symnn.codegen._rowsplit), not the bare kernel
        mine, theirs = jax_remote.paired(cands["symnn"][0], B, rounds=repeat,
                                         min_time=min_time)
        row["jax"] = theirs
        row["symnn"] = mine
    return row


def hvp_row(model, status, repeat, min_time, with_peers=True):
    theta, X, Y = peers.random_problem(GRAD_SIZES, HVP_BATCH, loss="ce", seed=1)
    v = np.random.default_rng(2).standard_normal(theta.size)
    hv_ref = peers.numpy_hvp(theta, X, Y, GRAD_SIZES, v, loss="ce")
    kern = model.kernels["hvp"]
    Xf, Yf = X.reshape(-1), Y.reshape(-1)
    work = np.empty(model.generated.work_size("hvp", HVP_BATCH, 1))
    P = model.n_params

    def raw():
        out = np.empty(P)
        kern(theta, v, Xf, Yf, out, work)
        return out

    cands = {
        "symnn": (lambda: model.hvp(theta, v, X, Y),
                  lambda: _rel(model.hvp(theta, v, X, Y), hv_ref)),
        "symnn kernel": (raw, lambda: _rel(raw(), hv_ref)),
    }
    if with_peers:
        cands.update(bp.hvp_candidates(GRAD_SIZES, theta, X, Y, v, status, loss="ce"))
    row = bp.run_candidates(cands, tol=1e-8, repeat=repeat, min_time=min_time)
    grad = median_time(lambda: model.loss_and_grad(theta, X, Y), repeat=repeat,
                       min_time=min_time)
    return row, grad


def hessian_row(model, status, repeat, min_time, with_peers=True):
    theta, X, Y = peers.random_problem(HESS_SIZES, HESS_BATCH, loss="mse", seed=3)
    H_ref = peers.numpy_hessian(theta, X, Y, HESS_SIZES, loss="mse")
    cands = {"symnn": (lambda: model.hessian(theta, X, Y),
                       lambda: _rel(model.hessian(theta, X, Y), H_ref))}
    if with_peers:
        cands.update(bp.hessian_candidates(HESS_SIZES, theta, X, Y, status, loss="mse"))
    return bp.run_candidates(cands, tol=1e-8, repeat=repeat, min_time=min_time)


# ------------------------------------------------------------------------------------------
# compile time, in fresh processes
# ------------------------------------------------------------------------------------------

COMPILE_SCRIPT = textwrap.dedent("""
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    import symnn
    t1 = time.perf_counter()
    net = symnn.mlp([64, 128, 128, 10], activation="tanh", output="softmax",
                    loss="cross_entropy", name="bench_mlp")
    model = net.compile()
    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 64)); y = rng.integers(0, 10, 32)
    L, g = model.loss_and_grad(model.init(0), X, y)
    t3 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "derive+generate+load": t2 - t1,
                      "first call": t3 - t2, "in-process": t3 - t1}))
""")


def _child(env) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, check=True,
                         capture_output=True, text=True, timeout=600)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process"] = time.perf_counter() - t0
    return res


def compile_times() -> dict[str, dict]:
    """Cold (empty symnn cache), warm (second process), and fully cold (Numba's cache
    emptied as well: symnn's runtime blocks and fastmath compile too)."""
    results = {}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as ncache:
        env = dict(os.environ, SYMNN_CACHE_DIR=cache)
        results["cold (new model)"] = _child(env)
        results["warm (second process)"] = _child(env)
        env_all = dict(os.environ, SYMNN_CACHE_DIR=os.path.join(cache, "fresh"),
                       NUMBA_CACHE_DIR=ncache)
        results["cold (first run on the machine)"] = _child(env_all)
    return results


def print_compile(results: dict[str, dict]) -> None:
    print("\nCompile time, 64-128-128-10 tanh/softmax-CE (new process each; seconds)")
    cols = ["import", "derive+generate+load", "first call", "in-process", "process"]
    head = f"{'':34s}" + "".join(f"{c:>22s}" for c in cols)
    print("-" * len(head))
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(f"{name:34s}" + "".join(f"{r[c]:22.2f}" for c in cols))
    print("-" * len(head))
    print("  in-process = derive + generate + load + first call (after imports); "
          "process = whole subprocess wall time, interpreter start included")


def emit_json(table: str, rows: dict) -> None:
    """One JSON line per cell of a table: ``{"bench", "case", "seconds"[, "note"]}``."""
    for label, cells in rows.items():
        for column, value in cells.items():
            rec = {"bench": "kernels", "case": f"{table} {label} {column}"}
            if isinstance(value, (int, float)):
                rec["seconds"] = float(value)
            else:
                rec["seconds"] = None
                rec["note"] = str(value)
            print(json.dumps(rec), flush=True)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 samples of >= 5 ms each")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS, torch and XLA to N threads (see bench_peers_only)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile timings")
    parser.add_argument("--symnn-only", action="store_true",
                        help="time symnn's columns only (no peer)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line per case instead of the tables")
    parser.add_argument("--jax-python", default=None,
                        help="an interpreter with JAX (when this one has none): the gradient "
                             "rows' jax column, timed there in samples alternating with "
                             "symnn's public call (benchmarks/_jax_remote.py)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _parse(argv)
    repeat, min_time = (3, 0.005) if args.quick else (args.repeat, args.min_time)
    t_start = time.perf_counter()
    if args.threads is not None:
        bp._limit_threads(args.threads)
    status = peers.peer_status()
    for name, reason in status.items():
        if reason is not None and not args.json:
            print(f"peer {name!r} skipped: {reason}")
    if args.json:
        print(json.dumps({"bench": "kernels", "symnn": symnn.__file__}), flush=True)
    peers_too = not args.symnn_only
    grad_model = _mlp(GRAD_SIZES, "ce", "bench_mlp").compile()
    hess_model = _mlp(HESS_SIZES, "mse", "bench_hess").compile()
    remote = None
    if args.jax_python and status.get("jax") is not None and peers_too:
        from _jax_remote import JaxRemote

        remote = JaxRemote(args.jax_python, GRAD_SIZES, args.threads)
    try:
        rows = {f"B={B}": gradient_row(grad_model, B, status, repeat, min_time, peers_too,
                                       remote) for B in GRAD_BATCHES}
    finally:
        if remote is not None:
            remote.close()
    row, grad = hvp_row(grad_model, status, repeat, min_time, peers_too)
    hrow = hessian_row(hess_model, status, repeat, min_time, peers_too)
    compiled = None if args.no_compile else compile_times()
    if args.json:
        emit_json("grad", rows)
        emit_json("hvp", {f"B={HVP_BATCH}": {**row, "symnn gradient": grad}})
        emit_json("hessian", {f"B={HESS_BATCH}": hrow})
        if compiled is not None:
            emit_json("compile", compiled)
        return
    _print_tables(rows, row, grad, hrow, hess_model.n_params, compiled)
    print()
    print_environment()
    print(f"\n(total benchmark wall time {time.perf_counter() - t_start:.0f} s)")


def _print_tables(rows, row, grad, hrow, P, compiled) -> None:
    columns = ["numba", "symnn", "symnn kernel", "numpy", "torch", "jax"]
    net = "-".join(map(str, GRAD_SIZES))
    print_table(f"Loss + gradient, {net} tanh/softmax-CE", rows, reference="numba",
                columns=columns)
    print(f"  target: {TARGETS['grad']}")
    for label, cells in rows.items():
        if isinstance(cells.get("jax"), float) and isinstance(cells.get("symnn"), float):
            print(f"  {label}: symnn / jax = {cells['symnn'] / cells['jax']:.2f}")
    hcols = ["numba", "symnn", "symnn kernel", "numpy", "torch fwd-rev", "torch rev-rev", "jax"]
    print_table(f"Hessian-vector product, {net} tanh/softmax-CE", {f"B={HVP_BATCH}": row},
                reference="numba", columns=hcols)
    if isinstance(row.get("symnn"), float):
        print(f"  symnn gradient at B={HVP_BATCH}: {grad * 1e3:.3f} ms; "
              f"HVP / own gradient = {row['symnn'] / grad:.2f}  (target: {TARGETS['hvp']})")
    hnet = "-".join(map(str, HESS_SIZES))
    print_table(f"Full Hessian ({P}x{P}), {hnet} tanh/MSE, B={HESS_BATCH}",
                {f"B={HESS_BATCH}": hrow}, reference="numba",
                columns=["numba", "symnn", "numpy", "torch", "jax"])
    print(f"  target: {TARGETS['hessian']}")
    if compiled is not None:
        print_compile(compiled)
        print(f"  targets: {TARGETS['cold']}, {TARGETS['warm']}")


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
