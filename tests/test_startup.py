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
