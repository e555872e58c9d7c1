"""The Conv1D workload of ``bench_layers.py`` like for like in float32: symnn compiled in
float32 (and float64) beside PyTorch eager float32 and float64, one process, interleaved.

``bench_layers.py`` times symnn in float64 against every peer; its B = 256 target ("within
1.5× of the fastest peer") is set by torch float32 (oneDNN), so this script shows what a
float32 symnn model does against it.  Every gradient is checked against symnn's float64
gradient before timing (float32: 1e-3 relative to its largest entry).

Run: ``OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_layers_f32.py
[--batches 32,256] [--repeat 9]``
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _machine  # noqa: E402
import bench_layers as bl  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="32,256")
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--min-time", type=float, default=0.05)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    _machine.print_machine()
    s = bl.Sizes()
    net = bl.conv_net(s)
    m32, m64 = net.compile(dtype="float32"), net.compile()
    out = {}
    for B in (int(b) for b in args.batches.split(",")):
        X, Y = bl.problem("conv", s, B)
        th = m64.init(0)
        params = bl.split_theta(net, th)
        t32, g32 = bl.torch_candidate("conv", s, params, X, Y, torch.float32)
        t64, g64 = bl.torch_candidate("conv", s, params, X, Y, torch.float64)
        th32, X32, Y32 = th.astype(np.float32), X.astype(np.float32), Y.astype(np.float32)
        ref = np.asarray(m64.loss_and_grad(th, X, Y)[1], float)
        scale = np.abs(ref).max()
        checks = {"symnn f32": np.asarray(m32.loss_and_grad(th32, X32, Y32)[1], float),
                  "torch f32": g32(), "torch f64": g64()}
        for name, g in checks.items():
            err = np.abs(g - ref).max() / scale
            tol = bl.TOL64 if name.endswith("64") else bl.TOL32
            if not err < tol:
                raise SystemExit(f"{name} gradient differs from symnn float64 by {err:.1e}")
        a32, a64 = (th32, X32, Y32), (th, X, Y)
        med = bl.interleaved({"symnn f32": lambda a=a32: m32.loss_and_grad(*a),
                              "symnn f64": lambda a=a64: m64.loss_and_grad(*a),
                              "torch f32": t32, "torch f64": t64},
                             args.repeat, args.min_time)
        out[B] = med
        print(f"B={B}: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in med.items()))
        print(f"       symnn f32 / torch f32 = {med['symnn f32'] / med['torch f32']:.2f}x, "
              f"symnn f64 / torch f32 = {med['symnn f64'] / med['torch f32']:.2f}x, "
              f"symnn f64 / torch f64 = {med['symnn f64'] / med['torch f64']:.2f}x")
    return out


if __name__ == "__main__":
    main()
