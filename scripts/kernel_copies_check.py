"""Do kernels' own copies of the runtime blocks give the blocks' bits? (not part of the suite)

A cached kernel carries a copy of every runtime block it calls; a process runs those copies
whenever the blocks it loaded are not the ones the kernel was linked against (see
``docs/kernels.md``).  This script computes, for networks of every block family (Conv1D and
pooling, looped and unrolled RNN, looped GRU, LayerNorm, softmax) at B = 1, 3 and 37, the
loss, gradient, HVP, Gauss-Newton product and prediction twice, each in a new process
sharing one kernel cache: once loading the blocks first (the usual path), once with the
blocks never loaded (only the kernels' copies run), and counts the values whose bits differ.
``tests/test_startup.py`` checks the same for MLPs in float64 and float32.

    python scripts/kernel_copies_check.py            # prints "N values, 0 differ"

Round 8: 3989 values, 0 differ (before, ``_nt_small``'s ``reassoc`` loop made MLP
gradients differ in 1573 of them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

CHILD = r'''
import sys, numpy as np, symnn
from symnn.codegen import model as M
from symnn.codegen.numba import runtime as R
if sys.argv[1] == "copies":  # the kernels alone: no runtime block is ever loaded
    M.prepare_blocks = lambda dtype, names: None
    M.prepare_runtime = lambda dtype: (_ for _ in ()).throw(AssertionError("a cache miss"))

def nets():
    yield symnn.Network([symnn.Conv1D(2, 3, 3, length=12), "tanh", symnn.MaxPool1D(2),
                         symnn.Flatten(), symnn.Dense(15, 2)], loss="mse", name="cp_conv")
    yield symnn.Network([symnn.RNN(3, 5, length=40), symnn.Dense(5, 2)], loss="mse",
                        name="cp_rnn_looped")
    yield symnn.Network([symnn.GRU(3, 4, length=30), symnn.Dense(4, 1)], loss="mse",
                        name="cp_gru_looped")
    yield symnn.Network([symnn.RNN(3, 6, length=4), symnn.Dense(6, 3), "softmax"],
                        loss="cross_entropy", name="cp_rnn_softmax")
    yield symnn.Network([symnn.Dense(5, 9), symnn.LayerNorm(9), "tanh", symnn.Dense(9, 2)],
                        loss="huber", name="cp_layernorm")

rows = []
for net in nets():
    model = net.compile()
    theta = model.init(seed=3)
    rng = np.random.default_rng(5)
    for B in (1, 3, 37):
        X = rng.standard_normal((B, model.n_inputs))
        if net.loss.probabilities:
            y = np.eye(model.n_outputs)[rng.integers(0, model.n_outputs, B)]
        else:
            y = rng.standard_normal((B, model.n_outputs))
        v = rng.standard_normal(theta.size)
        L, g = model.loss_and_grad(theta, X, y)
        parts = [[L], g, model.hvp(theta, v, X, y), model.gnvp(theta, v, X, y),
                 model.predict(theta, X).ravel()]
        rows.append(np.concatenate(parts))
print(" ".join(v.hex() for v in np.concatenate(rows)))
print(sorted(n for n, d in R._RUNTIME.items() if d.overloads))
'''


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="symnn-copies-") as cache:
        env = dict(os.environ, SYMNN_CACHE_DIR=cache)
        out = {}
        for how in ("blocks", "copies"):  # the first compiles and fills the cache
            run = subprocess.run([sys.executable, "-c", CHILD, how], env=env,
                                 capture_output=True, text=True, timeout=3600)
            if run.returncode != 0:
                print(run.stderr[-3000:], file=sys.stderr)
                return 2
            out[how] = run.stdout.strip().splitlines()
    a, b = out["blocks"][0].split(), out["copies"][0].split()
    if out["copies"][1] != "[]":
        print(f"a block was loaded in the copies process: {out['copies'][1]}")
        return 2
    diff = sum(x != y for x, y in zip(a, b))
    print(f"{len(a)} values, {diff} differ")
    return 1 if diff or len(a) != len(b) else 0


if __name__ == "__main__":
    sys.exit(main())
