"""Hessian-vector product against the model's own gradient (issue 16: HVP ≤ 2 × gradient).

Workload: the 64-128-128-10 tanh / softmax-cross-entropy MLP of ``bench_callpath.py``,
float64, one direction, B = 256 by default.  Candidates, interleaved round by round in one
process (each timed by back-to-back calls for ``--min-time``):

* ``sym grad`` / ``sym hvp`` — the public ``model.loss_and_grad`` and ``model.hvp``;
* ``hand grad`` / ``hand hvp`` — the hand-written Numba + BLAS kernels of ``peers.py``
  (a forward-over-reverse R-operator for the HVP): what the ratio is for hand code;
* with ``--jax-python PATH``: JAX's ``value_and_grad`` and ``jvp`` of ``grad`` (the peers'
  jitted functions), timed the same way in a JAX interpreter started afterwards (JAX is not
  installed beside symnn), for JAX's own HVP / gradient ratio on this machine.

Reported: the median over rounds of each time and of the per-round ratios ``sym hvp /
sym grad`` and ``hand hvp / hand grad``.  Also printed: the GEMM multiply-adds per sample
of both (the flop ratio a GEMM-bound HVP cannot beat unless its products run more
efficiently than the gradient's).  Every candidate is checked against the NumPy peer first.

Run: ``python benchmarks/bench_hvp.py [--batch 256] [--rounds 11] [--threads 1]
[--cpu-time] [--floor] [--jax-python /tmp/jaxenv-speed/bin/python]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SIZES = [64, 128, 128, 10]


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--min-time", type=float, default=0.02)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cpu-time", action="store_true",
                   help="time on the process's CPU clock (steadier on a loaded machine)")
    p.add_argument("--jax-python", default=None, help="a Python with JAX: time JAX's ratio")
    p.add_argument("--floor", action="store_true",
                   help="also time variants of the generated kernels: products only, and the "
                        "layer-2 tangent products fused into one GEMM each (_hvp_variants.py)")
    p.add_argument("--jax-serve", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _seconds(f, min_time, clock):
    f()
    n, t0 = 0, clock()
    while True:
        f()
        n += 1
        t = clock() - t0
        if t >= min_time:
            return t / n


def _rounds(cands, rounds, min_time, clock):
    times = {k: [] for k in cands}
    for _ in range(rounds):
        for k, f in cands.items():
            times[k].append(_seconds(f, min_time, clock))
    return times


def _ratio(times, num, den):
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def _problem(B):
    import numpy as np
    from _peers_common import random_problem
    from _peers_numpy import numpy_hvp, numpy_loss_and_grad

    theta, X, Y = random_problem(SIZES, B, loss="ce", seed=1)
    v = np.random.default_rng(2).standard_normal(theta.size)
    _, g_ref = numpy_loss_and_grad(theta, X, Y, SIZES, loss="ce")
    hv_ref = numpy_hvp(theta, X, Y, SIZES, v, loss="ce")
    return theta, X, Y, v, g_ref, hv_ref


def _check(got, ref, what, tol):
    import numpy as np

    err = float(np.max(np.abs(np.asarray(got) - ref)) / np.max(np.abs(ref)))
    if not err < tol:
        raise SystemExit(f"{what}: relative error {err:.1e} against the NumPy peer")


def _flops():
    """GEMM multiply-adds per sample: (gradient, forward-over-reverse HVP)."""
    pairs = list(zip(SIZES[:-1], SIZES[1:]))
    fwd = sum(a * b for a, b in pairs)
    back = sum(a * b for a, b in pairs[1:])  # δ propagation (not into the input)
    first = pairs[0][0] * pairs[0][1]  # the input's tangent is 0: W₁ ẋ and δ̇₁ ẋᵀ vanish
    grad = fwd + back + fwd
    hvp = (fwd + back) + (2 * fwd - first) + 2 * back + (2 * fwd - first)
    return grad, hvp


def _floor(model, theta, X, Y, v, args, clock) -> None:
    """The raw kernels beside their products-only and fused variants (``_hvp_variants``)."""
    import numpy as np
    from _hvp_variants import build

    mod = build(model.generated.source, "bench_mlp")
    out, work = np.empty(theta.size), np.random.default_rng(3).random(4_000_000)
    ga = (theta, X.reshape(-1), Y.reshape(-1), out, work)
    ha = (theta, v, X.reshape(-1), Y.reshape(-1), out, work)
    cands = {"full grad": lambda: mod.full_grad(*ga), "gemm grad": lambda: mod.gemm_grad(*ga),
             "full hvp": lambda: mod.full_hvp(*ha), "gemm hvp": lambda: mod.gemm_hvp(*ha),
             "fused hvp": lambda: mod.fused_hvp(*ha)}
    times = _rounds(cands, args.rounds, args.min_time, clock)
    print("raw kernels (products only = every non-product statement removed):")
    for k, ts in times.items():
        print(f"  {k:10s} {statistics.median(ts) * 1e6:9.1f} µs  "
              f"({_ratio(times, k, 'full grad'):.2f}x full grad)")
    print(f"  products-only HVP / products-only grad {_ratio(times, 'gemm hvp', 'gemm grad'):.2f}x;"
          f" fused / full HVP {_ratio(times, 'fused hvp', 'full hvp'):.3f}x")


def _blas_arch() -> str:
    try:
        import scipy.linalg  # noqa: F401  (loads the OpenBLAS Numba calls)
        from threadpoolctl import threadpool_info
    except ImportError:
        return "?"
    return ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
                     for i in threadpool_info() if i.get("user_api") == "blas")


def _jax_serve(args) -> None:  # runs in the JAX interpreter
    from _peers_jax import _make_jax_cached, to_jax

    theta, X, Y, v, g_ref, hv_ref = _problem(args.batch)
    grad = _make_jax_cached("loss_and_grad", tuple(SIZES), "ce")
    hvp = _make_jax_cached("hvp", tuple(SIZES), "ce")
    a = to_jax(theta, X, Y)
    va = to_jax(v)[0]
    _check(grad(*a)[1], g_ref, "jax grad", 1e-10)
    _check(hvp(*a, va), hv_ref, "jax hvp", 1e-8)
    clock = time.process_time if args.cpu_time else time.perf_counter
    cands = {"jax grad": lambda: grad(*a)[1].block_until_ready(),
             "jax hvp": lambda: hvp(*a, va).block_until_ready()}
    times = _rounds(cands, args.rounds, args.min_time, clock)
    import jax

    print(json.dumps({"version": jax.__version__,
                      "grad": statistics.median(times["jax grad"]),
                      "hvp": statistics.median(times["jax hvp"]),
                      "ratio": _ratio(times, "jax hvp", "jax grad")}))


def _jax_ratio(args):
    env = dict(os.environ)
    if args.threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                            " intra_op_parallelism_threads=1").strip()
    cmd = [args.jax_python, str(Path(__file__).resolve()), "--jax-serve", "--batch",
           str(args.batch), "--rounds", str(args.rounds), "--min-time", str(args.min_time)]
    if args.cpu_time:
        cmd.append("--cpu-time")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(HERE))
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    args = _parse(argv)
    if args.threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.jax_serve:
        _jax_serve(args)
        return
    import peers

    import symnn

    theta, X, Y, v, g_ref, hv_ref = _problem(args.batch)
    model = symnn.mlp(SIZES, activation="tanh", output="softmax", loss="cross_entropy",
                      name="bench_mlp").compile()
    hand_g = peers.make_numba_loss_and_grad(SIZES, loss="ce")
    hand_h = peers.make_numba_hvp(SIZES, loss="ce")
    cands = {"sym grad": lambda: model.loss_and_grad(theta, X, Y)[1],
             "sym hvp": lambda: model.hvp(theta, v, X, Y),
             "hand grad": lambda: hand_g(theta, X, Y)[1],
             "hand hvp": lambda: hand_h(theta, X, Y, v)}
    for k, f in cands.items():
        _check(f(), hv_ref if "hvp" in k else g_ref, k, 1e-8 if "hvp" in k else 1e-10)
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(f"symnn from {symnn.__file__}; B={args.batch}; {args.rounds} interleaved rounds; "
          f"clock {clock.__name__}; load before {os.getloadavg()}")
    print(f"BLAS: {_blas_arch()} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')})")
    times = _rounds(cands, args.rounds, args.min_time, clock)
    for k, ts in times.items():
        print(f"  {k:10s} {statistics.median(ts) * 1e6:9.1f} µs")
    fg, fh = _flops()
    print(f"GEMM multiply-adds per sample: gradient {fg}, HVP {fh} (ratio {fh / fg:.2f})")
    print(f"symnn HVP / gradient: {_ratio(times, 'sym hvp', 'sym grad'):.2f}x")
    print(f"hand  HVP / gradient: {_ratio(times, 'hand hvp', 'hand grad'):.2f}x")
    print(f"symnn gradient / hand: {_ratio(times, 'sym grad', 'hand grad'):.2f}x; "
          f"symnn HVP / hand: {_ratio(times, 'sym hvp', 'hand hvp'):.2f}x")
    if args.floor:
        _floor(model, theta, X, Y, v, args, clock)
    if args.jax_python:
        j = _jax_ratio(args)
        if "error" in j:
            print(f"JAX: {j['error']}")
        else:
            print(f"JAX {j['version']}: grad {j['grad'] * 1e6:.1f} µs, hvp {j['hvp'] * 1e6:.1f}"
                  f" µs, HVP / gradient {j['ratio']:.2f}x")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
