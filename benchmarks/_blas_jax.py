"""JAX's side of ``bench_blas.py`` (run under an interpreter with JAX): the HLO of the
jitted 64-128-128-10 gradient at one batch (dots and fusions), and the CPU time of that
gradient and of each of its dot shapes alone, as JSON on the last line of stdout.

Run: ``/path/to/jax/python benchmarks/_blas_jax.py B``; ``... _blas_jax.py serve`` answers
one CPU-time sample of the gradient per batch size read from stdin (``bench_blas.py``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                           " intra_op_parallelism_threads=1").strip()
sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES = (64, 128, 128, 10)


def cpu_median(fn, reps: int = 9, min_time: float = 0.05) -> float:
    """Median process CPU seconds per call (calls grouped to ``min_time``)."""
    fn()
    n, t = 1, 0.0
    while True:
        t0 = time.process_time()
        for _ in range(n):
            fn()
        t = time.process_time() - t0
        if t >= min_time:
            break
        n *= 2
    out = []
    for _ in range(reps):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        out.append((time.process_time() - t0) / n)
    out.sort()
    return out[len(out) // 2]


def main(B: int) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from _peers_common import random_problem
    from _peers_jax import _make_jax_cached, to_jax

    jax.config.update("jax_enable_x64", True)
    fn = _make_jax_cached("loss_and_grad", SIZES, "ce")
    theta, X, Y = random_problem(list(SIZES), B, loss="ce", seed=B)
    args = to_jax(theta, X, Y)
    hlo = fn.lower(*args).compile().as_text()
    dots = re.findall(r"= f64\[([\d,]*)\]\{[\d,]*\} dot\(([^)]*)\), (lhs_contracting_dims=\{\d*\}), "
                      r"(rhs_contracting_dims=\{\d*\})", hlo)
    fusions = re.findall(r"^\s*(\S+) = [^ ]+ fusion\(.*kind=(k\w+)", hlo, re.M)
    res = {"jax": jax.__version__, "B": B,
           "grad_cpu_s": cpu_median(lambda: fn(*args)[1].block_until_ready()),
           "n_fusions": len(fusions), "fusion_kinds": sorted({k for _, k in fusions}),
           "dots_in_hlo": [list(d) for d in dots], "dot_cpu_s": {}}
    rng = np.random.default_rng(0)
    # the six products of the gradient (row-major shapes as symnn computes them)
    shapes = {"z1 = X W1ᵀ": (B, 64, 128, "nt"), "z2 = a1 W2ᵀ": (B, 128, 128, "nt"),
              "z3 = a2 W3ᵀ": (B, 128, 10, "nt"), "gW3 = δ3ᵀ a2": (10, B, 128, "tn"),
              "g_a2 = δ3 W3": (B, 10, 128, "nn"), "gW2 = δ2ᵀ a1": (128, B, 128, "tn"),
              "g_a1 = δ2 W2": (B, 128, 128, "nn"), "gW1 = δ1ᵀ X": (128, B, 64, "tn")}
    for name, (m, k, n, kind) in shapes.items():
        a = rng.standard_normal((k, m) if kind == "tn" else (m, k))
        b = rng.standard_normal((n, k) if kind == "nt" else (k, n))
        f = jax.jit({"nt": lambda a, b: a @ b.T, "tn": lambda a, b: a.T @ b,
                     "nn": lambda a, b: a @ b}[kind])
        a, b = jnp.asarray(a), jnp.asarray(b)
        res["dot_cpu_s"][name] = cpu_median(lambda: f(a, b).block_until_ready())
    Path(os.environ.get("BLAS_JAX_HLO", "/tmp/blas_jax_hlo.txt")).write_text(hlo)
    print(json.dumps(res))


def serve() -> None:
    """One line per request ``B``: one CPU-time sample (median of 1) of JAX's gradient,
    checked against the NumPy peer first; answers ``{"seconds": ...}`` or ``{"error": ...}``."""
    import jax
    import numpy as np
    from _peers_common import random_problem
    from _peers_jax import _make_jax_cached, to_jax
    from _peers_numpy import numpy_loss_and_grad

    jax.config.update("jax_enable_x64", True)
    fn = _make_jax_cached("loss_and_grad", SIZES, "ce")
    problems = {}
    print("ready", jax.__version__, flush=True)
    for line in sys.stdin:
        B = int(line)
        if B not in problems:
            theta, X, Y = random_problem(list(SIZES), B, loss="ce", seed=B)
            _, g_ref = numpy_loss_and_grad(theta, X, Y, list(SIZES), loss="ce")
            args = to_jax(theta, X, Y)
            g = np.asarray(fn(*args)[1])
            problems[B] = (args, float(np.max(np.abs(g - g_ref)) / np.max(np.abs(g_ref))))
        args, err = problems[B]
        if not err <= 1e-10:
            print(json.dumps({"error": f"WRONG (rel err {err:.1e})"}), flush=True)
            continue
        t = cpu_median(lambda: fn(*args)[1].block_until_ready(), reps=1)
        print(json.dumps({"seconds": t}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
