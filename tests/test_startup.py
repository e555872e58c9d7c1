"""Warm start (issue 16): a kernel that Numba loads from its cache is called after
loading only the runtime blocks it calls (symnn.codegen.numba.cacheload), with the cold
process's numbers to the last bit; a kernel that must be compiled still gets the whole
runtime prepared first."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

import symnn
from symnn.codegen.numba import runtime as R
from symnn.codegen.numba.cacheload import load_cached

X = np.array([[0.1, -0.4], [0.7, 0.2], [-0.3, 0.5]])
Y = np.array([0.5, -0.2, 0.1])


def _net():
    return symnn.mlp([2, 3, 1], activation="tanh", loss="mse", name="startup_net")


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A model compiled into a cache of its own, its gradient kernel compiled (so in
    Numba's cache), and saved with its index entry: ``(model, theta, cache, path)``."""
    tmp = tmp_path_factory.mktemp("startup")
    model = _net().compile(cache_dir=tmp / "k")
    theta = model.init(seed=1)
    model.loss_and_grad(theta, X, Y)
    path = tmp / "net.npz"
    symnn.save(path, model, theta)
    symnn.load_compiled(path, cache_dir=tmp / "k")  # the spec's index entry
    return model, theta, tmp / "k", path


def test_load_cached_answers_false_for_a_miss_and_true_once_loaded(warm):
    model, theta, _, _ = warm
    fn = model.kernels["loss"]
    work = model._work("loss", X.shape[0])
    args = (theta, X.reshape(-1), Y.reshape(-1), work)
    assert not load_cached(fn, args)  # never compiled: nothing in Numba's cache
    assert not fn.overloads
    L = model.loss(theta, X, Y)  # compiles (runtime prepared), writes Numba's cache
    assert R._PREPARED and fn.overloads
    assert load_cached(fn, args)  # already loaded in this process
    ref = model.reference.loss(theta, X, Y)
    assert abs(L - ref) <= 1e-12


def test_uncacheable_function_is_never_a_hit():
    f = njit(lambda a: a.sum() * 2.0)
    assert load_cached(f, (np.ones(2),)) is False
    assert f(np.ones(2)) == 4.0


def test_warm_process_loads_its_kernel_and_only_the_blocks_it_calls(warm):
    """A new process computes the gradient from cached kernels after loading only the
    runtime blocks that kernel calls (from Numba's cache: nothing compiled), and gets the
    cold process's numbers to the last bit; its first call of an uncached kernel (predict)
    then prepares the whole runtime."""
    model, theta, cache, path = warm
    ref = model.reference
    L_cold, g_cold = model.loss_and_grad(theta, X, Y)  # this process compiled it
    L0, g0 = ref.loss_and_grad(theta, X, Y)
    p0 = ref.predict(theta, X)
    code = (
        "import sys, numpy as np, symnn\n"
        "from symnn.codegen.numba import runtime as R\n"
        "from symnn.codegen.numba.cacheload import blocks_called\n"
        f"X = np.array({X.tolist()}); Y = np.array({Y.tolist()})\n"
        f"model, params, _ = symnn.load_compiled({str(path)!r})\n"
        "L, g = model.loss_and_grad(params, X, Y)\n"
        "hits = sum(sum(d.stats.cache_hits.values()) for d in R._RUNTIME.values())\n"
        "loaded = sorted(n for n, d in R._RUNTIME.items() if d.overloads)\n"
        "called = blocks_called(model.kernels['loss_and_grad'])\n"
        "before = (loaded == called, hits == len(called), 0 < len(called) < len(R._RUNTIME),\n"
        "          sorted(R._PREPARED))\n"
        "p = model.predict(params, X)\n"
        "print(repr(L), ' '.join(map(repr, g.tolist())), ' '.join(map(repr, p.ravel().tolist())))\n"
        "print(before, sorted(R._PREPARED))\n"
    )
    env = dict(os.environ, SYMNN_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    numbers, state = out.stdout.strip().splitlines()
    values = np.array([float(v) for v in numbers.split()])
    L, g, p = values[0], values[1:1 + theta.size], values[1 + theta.size:]
    assert L == L_cold and np.array_equal(g, g_cold)  # bit for bit
    assert abs(L - L0) <= 1e-12 and np.allclose(g, g0, rtol=1e-11, atol=1e-13)
    assert np.allclose(p, p0.ravel(), rtol=1e-12, atol=1e-14)
    assert state == "(True, True, True, []) ['float64']", state


# -- a kernel's copies of the runtime blocks (lead, round 8) ------------------------------
# A kernel's cached machine code carries a copy of every runtime block it calls.  A process
# runs those copies instead of the blocks whenever the blocks it loaded are not the ones the
# kernel was linked against (Numba's symbol names carry a per-process id, and two processes
# that compile the runtime at once leave whichever wrote its cache last).  So the copies must
# give the blocks' bits: CI once saw a warm process 1 ulp off the cold one here, when
# ``_nt_small`` let LLVM reorder its sums (``reassoc``) and the copy summed in another order.

_COPIES = [  # (layers, options, dtype, batches): dot products of 6, 16 and 12 terms (a
    #          scalar tail, two vectors, one vector + tail), 5 outputs (four rows + one);
    #          loops and BLAS
    ([6, 16, 12, 5], dict(activation="tanh", output="softmax", loss="cross_entropy",
                          name="copies_a"), "float64", (1, 3, 40, 300)),
    ([2, 3, 1], dict(activation="tanh", loss="mse", name="copies_b"), "float64", (3,)),
    ([9, 20, 3], dict(activation="sigmoid", loss="mse", name="copies_c"), "float32", (2, 33)),
]

_COPIES_RUN = """
import sys, numpy as np, symnn
from symnn.codegen import model as M
from symnn.codegen.numba import runtime as R
if sys.argv[1] == "copies":  # the kernels alone: no runtime block is ever loaded
    M.prepare_blocks = lambda dtype, names: None
    M.prepare_runtime = lambda dtype: (_ for _ in ()).throw(AssertionError("a miss"))
rows = []
for layers, options, dt, batches in NETS:
    model = symnn.mlp(layers, **options).compile(dtype=dt)
    theta = model.init(seed=3)
    rng = np.random.default_rng(5)
    for B in batches:
        X = rng.standard_normal((B, model.n_inputs)).astype(dt)
        if model.n_outputs > 1:
            y = np.eye(model.n_outputs, dtype=dt)[rng.integers(0, model.n_outputs, B)]
        else:
            y = rng.standard_normal(B).astype(dt)
        v = rng.standard_normal(theta.size).astype(dt)
        L, g = model.loss_and_grad(theta, X, y)
        hv = model.hvp(theta, v, X, y)
        p = model.predict(theta, X)
        rows.append(np.concatenate([[L], g, hv, p.ravel()]).astype(np.float64))
print(" ".join(v.hex() for v in np.concatenate(rows)))
print(sorted(n for n, d in R._RUNTIME.items() if d.overloads))
"""


def test_a_kernels_copies_of_the_blocks_give_the_blocks_bits(tmp_path):
    """The same gradients, HVPs and predictions, to the last bit, from a process that runs
    its kernels' own copies of the runtime blocks (no block loaded) as from one that loads
    the blocks first (the cold path): float64 and float32, B = 1 … 300."""
    code = f"NETS = {_COPIES!r}\n" + _COPIES_RUN
    env = dict(os.environ, SYMNN_CACHE_DIR=str(tmp_path / "k"))
    outs = {}
    for how in ("blocks", "copies"):  # the first compiles and fills the cache
        out = subprocess.run([sys.executable, "-c", code, how], env=env, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        outs[how] = out.stdout.strip().splitlines()
    assert outs["copies"][1] == "[]"  # no block loaded: every call ran the kernels' copies
    assert outs["blocks"][1] != "[]"
    a, b = outs["blocks"][0].split(), outs["copies"][0].split()
    assert len(a) == len(b) > 1000
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    assert not diff, (len(diff), [(a[i], b[i]) for i in diff[:5]])
