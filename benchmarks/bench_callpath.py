"""What a user's call costs: symnn's public methods against the hand-written Numba kernel,
interleaved in one process (issue 16).

Cases (64-128-128-10 tanh / softmax-cross-entropy MLP, float64, one-hot targets):

* ``grad B=…`` — ``model.loss_and_grad(theta, X, Y)`` (the public method: argument checks,
  a fresh gradient array), the generated kernel called directly (``kernel``), and the
  hand-written Numba + BLAS kernel of ``peers.py`` (``hand``), at B = 1, 32, 256;
* ``hvp B=256`` — ``model.hvp(theta, v, X, Y)`` beside ``model.loss_and_grad`` (the target
  is HVP ≤ 2 × own gradient).

Each round times every candidate of a case once (``_timing.median_time`` with a short
``min_time``), candidates in turn, so load drifts hit them alike; the table reports the
median over rounds of each candidate's time and of its per-round ratio to the reference
(``hand`` for the gradient, the public gradient for the HVP).  Every candidate is checked
against the NumPy peer first.

Run: ``python benchmarks/bench_callpath.py [--rounds N] [--threads N]`` (``--threads 1``
for steadier numbers on a shared machine; it sets BLAS and Numba to N threads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--min-time", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def _grad_case(model, B):
    import numpy as np
    import peers

    sizes = [64, 128, 128, 10]
    theta, X, Y = peers.random_problem(sizes, B, loss="ce", seed=B)
    _, g_ref = peers.numpy_loss_and_grad(theta, X, Y, sizes, loss="ce")
    hand = peers.make_numba_loss_and_grad(sizes, loss="ce")
    kern = model.kernels["loss_and_grad"]
    Xf, Yf = X.reshape(-1), Y.reshape(-1)
    work = np.empty(model.generated.work_size("loss_and_grad", B))

    def raw():
        g = np.empty(model.n_params)
        kern(theta, Xf, Yf, g, work)
        return g

    cands = {"hand": lambda: hand(theta, X, Y)[1],
             "public": lambda: model.loss_and_grad(theta, X, Y)[1],
             "kernel": raw}
    for name, f in cands.items():
        err = np.max(np.abs(f() - g_ref)) / np.max(np.abs(g_ref))
        assert err < 1e-10, (name, err)
    return cands


def _hvp_case(model, B=256):
    import numpy as np
    import peers

    sizes = [64, 128, 128, 10]
    theta, X, Y = peers.random_problem(sizes, B, loss="ce", seed=1)
    v = np.random.default_rng(2).standard_normal(theta.size)
    hv_ref = peers.numpy_hvp(theta, X, Y, sizes, v, loss="ce")
    err = np.max(np.abs(model.hvp(theta, v, X, Y) - hv_ref)) / np.max(np.abs(hv_ref))
    assert err < 1e-8, err
    return {"gradient": lambda: model.loss_and_grad(theta, X, Y),
            "hvp": lambda: model.hvp(theta, v, X, Y)}


def run_case(cands, reference, rounds, min_time):
    """{name: (median seconds, median per-round ratio to ``reference``)}."""
    from _timing import median_time

    times = {k: [] for k in cands}
    for _ in range(rounds):
        for k, f in cands.items():
            times[k].append(median_time(f, repeat=1, min_time=min_time))
    out = {}
    for k, ts in times.items():
        ratios = [t / r for t, r in zip(ts, times[reference])]
        out[k] = (statistics.median(ts), statistics.median(ratios))
    return out


def main(argv=None) -> None:
    args = _parse(argv)
    if args.threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import _machine

    import symnn

    _machine.print_machine()
    print(f"symnn from {symnn.__file__}; {args.rounds} interleaved rounds")
    model = symnn.mlp([64, 128, 128, 10], activation="tanh", output="softmax",
                      loss="cross_entropy", name="bench_mlp").compile()
    rows = [(f"grad B={B}", run_case(_grad_case(model, B), "hand", args.rounds,
                                     args.min_time)) for B in (1, 32, 256)]
    rows.append(("hvp B=256", run_case(_hvp_case(model), "gradient", args.rounds,
                                       args.min_time)))
    for label, res in rows:
        cells = "  ".join(f"{k} {t * 1e6:9.1f} µs ({r:.2f}x)" for k, (t, r) in res.items())
        print(f"{label:10s}  {cells}")
    print("ratios: median over rounds of time / time of the case's first column")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
