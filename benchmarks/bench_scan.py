"""An RNN or GRU looped over time against the same layer unrolled, and PyTorch's ``nn.RNN`` /
``nn.GRU`` (``--cell rnn|gru``).

For each ``T`` and form: compile + first gradient in a fresh process with an empty kernel
cache (what a user waits for the first time), then the steady ``loss_and_grad`` time
(median of ``--reps`` calls), with ``torch.nn.RNN`` / ``nn.GRU`` forward + backward timed
interleaved in the same process as the peer (a timing peer: its weights are its own).
Network: ``RNN(n_in, H, length=T) → Dense(H, 1)`` (or ``GRU``), mse.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. \\
        python benchmarks/bench_scan.py --T 50 200 1000 --unrolled-up-to 50
    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. \\
        python benchmarks/bench_scan.py --cell gru --T 16 50 200 --unrolled-up-to 16

``--one FORM T`` (used by the driver, with ``--cell``) runs one configuration and prints one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

H, B, N_IN = 64, 32, 8


def _one(cell: str, form: str, T: int, reps: int) -> dict:
    import symnn

    t0 = time.perf_counter()
    layer = {"rnn": symnn.RNN, "gru": symnn.GRU}[cell]
    net = symnn.Network([layer(N_IN, H, length=T, unroll=(form == "unrolled")),
                         symnn.Dense(H, 1)], loss="mse", name=f"bench_{cell}_{form}_{T}")
    m = net.compile()
    rng = np.random.default_rng(0)
    th = m.init(0)
    X, Y = rng.normal(size=(B, T, N_IN)), rng.normal(size=(B, 1))
    m.loss_and_grad(th, X, Y)
    first = time.perf_counter() - t0
    times, peer = [], []
    tr = _torch(cell)
    for _ in range(reps):
        t1 = time.perf_counter()
        m.loss_and_grad(th, X, Y)
        times.append(time.perf_counter() - t1)
        if tr is not None:
            peer.append(tr(X, Y))
    src = m.generated.source if hasattr(m, "generated") else ""
    return {"form": form, "T": T, "compile_first_s": first, "grad_ms": 1e3 * np.median(times),
            "torch_ms": 1e3 * np.median(peer) if peer else None,
            "source_lines": src.count("\n")}


def _torch(cell: str):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    rnn = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU}[cell](N_IN, H, batch_first=True,
                                                           dtype=torch.float64)
    lin = torch.nn.Linear(H, 1, dtype=torch.float64)

    def run(X, Y):
        x, y = torch.tensor(X), torch.tensor(Y)
        t = time.perf_counter()
        out, _ = rnn(x)
        loss = ((lin(out[:, -1]) - y) ** 2).mean()
        loss.backward()
        return time.perf_counter() - t

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument("--cell", choices=("rnn", "gru"), default="rnn")
    ap.add_argument("--unrolled-up-to", type=int, default=50)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--one", nargs=2)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(_one(a.cell, a.one[0], int(a.one[1]), a.reps)))
        return
    sys.path.insert(0, os.path.dirname(__file__))
    from _machine import print_machine

    print_machine()
    print(f"{a.cell.upper()}({N_IN}, {H}) → Dense({H}, 1), B = {B}, float64; fresh kernel "
          "cache per run")
    print(f"{'form':>9} {'T':>5} {'compile+first s':>16} {'grad ms':>9} {'torch ms':>9} "
          f"{'ratio':>6} {'lines':>7}")
    for T in a.T:
        for form in ("looped", "unrolled"):
            if form == "unrolled" and T > a.unrolled_up_to:
                continue
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, SYMNN_CACHE_DIR=cache)
                out = subprocess.run([sys.executable, __file__, "--one", form, str(T),
                                      "--reps", str(a.reps), "--cell", a.cell], env=env,
                                     capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            ratio = f"{r['grad_ms'] / r['torch_ms']:.2f}" if r["torch_ms"] else "-"
            tms = f"{r['torch_ms']:.1f}" if r["torch_ms"] else "-"
            print(f"{form:>9} {T:>5} {r['compile_first_s']:>16.1f} {r['grad_ms']:>9.1f} "
                  f"{tms:>9} {ratio:>6} {r['source_lines']:>7}", flush=True)


if __name__ == "__main__":
    main()
