"""The convolutions' two code paths, before and after, in one process: plain loops vs the
default (direct loops at stride 1, im2col + BLAS for the weight gradient).

The Conv1D workload of ``bench_layers.py`` (input ``(1, 128)``, two ``Conv1D`` of 16
channels, k = 5, relu, ``Dense(4)``, softmax / cross-entropy) compiled twice into fresh
kernel caches:

* ``loops``: :data:`symnn.codegen.numba.emit_conv.BLAS_MADDS` set above every layer, so
  every convolution is the plain loops (the generated code of symnn before the BLAS path);
* ``default``: the default threshold: the layers of 16 channels take the direct loops of
  :mod:`symnn.codegen.numba.emit_conv` (Conv1D and its adjoint, stride 1) and call
  :mod:`symnn.codegen.numba.runtime_conv` (the weight gradient, im2col + BLAS);

beside PyTorch eager float64 / float32, all timed in interleaved rounds (median, wall or
``--clock cpu``), every gradient checked against the ``default`` one first (float64 1e-9,
float32 1e-3).  ``--kernel hvp`` times ``model.hvp`` (one direction) instead, symnn only.

Run: ``python benchmarks/bench_conv_paths.py [--batches 1,32,256] [--repeat 7]
[--clock wall|cpu] [--threads 1] [--kernel grad|hvp]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_layers as bl  # noqa: E402
from _timing import format_seconds, print_environment  # noqa: E402

from symnn.codegen.numba import emit_conv  # noqa: E402


def compiled(net, madds: int):
    """``net`` compiled into a fresh kernel cache with the threshold at ``madds``."""
    saved = emit_conv.BLAS_MADDS
    emit_conv.BLAS_MADDS = madds
    try:
        with tempfile.TemporaryDirectory() as d:
            return net.compile(cache_dir=d)
    finally:
        emit_conv.BLAS_MADDS = saved


def row(models, net, s, B, args) -> dict:
    """Median seconds of every candidate at batch B (after the gradient checks)."""
    X, Y = bl.problem("conv", s, B)
    theta = models["default"].init(0)
    v = np.random.default_rng(B).standard_normal(theta.size)
    if args.kernel == "hvp":
        ref = models["default"].hvp(theta, v, X, Y)
        thunks = {k: (lambda m=m: m.hvp(theta, v, X, Y)) for k, m in models.items()}
        for k, m in models.items():
            assert bl.rel_err(m.hvp(theta, v, X, Y), ref) <= bl.TOL64, k
        return bl.interleaved(thunks, args.repeat, args.min_time, args.clock)
    ref = models["default"].loss_and_grad(theta, X, Y)[1]
    thunks = {k: (lambda m=m: m.loss_and_grad(theta, X, Y)) for k, m in models.items()}
    for k, m in models.items():
        assert bl.rel_err(m.loss_and_grad(theta, X, Y)[1], ref) <= bl.TOL64, k
    import torch

    params = bl.split_theta(net, theta)
    for col, dt, tol in (("torch f64", torch.float64, bl.TOL64),
                         ("torch f32", torch.float32, bl.TOL32)):
        thunk, grad = bl.torch_candidate("conv", s, params, X, Y, dt)
        assert bl.rel_err(grad(), ref) <= tol, col
        thunks[col] = thunk
    return bl.interleaved(thunks, args.repeat, args.min_time, args.clock)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="1,32,256")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.02)
    p.add_argument("--clock", choices=tuple(bl.CLOCKS), default="wall")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kernel", choices=("grad", "hvp"), default="grad")
    args = p.parse_args(argv)
    bl._limit_threads(args.threads, print)
    s = bl.Sizes()
    net = bl.conv_net(s)
    models = {"loops": compiled(net, 10**18), "default": compiled(net, emit_conv.BLAS_MADDS)}
    assert "_conv_wmean(" in models["default"].source and "_a00 = " in models["default"].source
    assert "_conv_wmean(" not in models["loops"].source
    rows = {B: row(models, net, s, B, args) for B in (int(b) for b in args.batches.split(","))}
    cols = list(next(iter(rows.values())))
    print(f"\nconv {args.kernel}, median {args.clock} time per call, {args.repeat} interleaved "
          f"rounds, {args.threads} thread(s)")
    print("  B  " + "".join(f"{c:>12}" for c in cols) + "  default/loops"
          + ("  loops/t64  dflt/t64  dflt/t32" if "torch f64" in cols else ""))
    for B, r in rows.items():
        line = f"{B:>4} " + "".join(f"{format_seconds(r[c]):>12}" for c in cols)
        line += f"{r['default'] / r['loops']:>12.3f}"
        if "torch f64" in r:
            line += (f"{r['loops'] / r['torch f64']:>11.3f}{r['default'] / r['torch f64']:>10.3f}"
                     f"{r['default'] / r['torch f32']:>10.3f}")
        print(line)
    print()
    print_environment()
    return rows


if __name__ == "__main__":
    main()
