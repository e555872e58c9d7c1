"""Benchmark :mod:`symnn.codegen.fastmath` against NumPy ufuncs and libm inside Numba.

Run as ``python benchmarks/bench_fastmath.py [--sizes 1000 1000000] [--repeats 15]
[--dtype float64|float32] [--functions exp tanh ...]``.

For each function and array size three variants are timed:

* ``numpy``: the NumPy (or SciPy) ufunc writing into a preallocated output;
* ``njit math``: a ``numba.njit`` loop calling the ``math`` module (scalar libm);
* ``njit fm``: the same loop calling the ``fm_*`` function.

Both loops are compiled like symnn's generated kernels
(``error_model="numpy", fastmath=False``).  Each timing is the median over
``--repeats`` samples; a sample times a batch of calls (enough for about 20 ms)
from Python, so small sizes include the per-call overhead (about 0.1-0.3 us for
a Numba dispatcher, about 1 us for a ufunc).  Nothing here asserts anything
about the timings.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
from scipy import special

# Allow running from a source checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
fm = importlib.import_module("symnn.codegen.fastmath")

_LOOP_OPTIONS = {"error_model": "numpy", "fastmath": False}


@numba.njit(**_LOOP_OPTIONS)
def _math_sigmoid(x):
    """Stable sigmoid with libm ``exp``."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    t = math.exp(x)
    return t / (1.0 + t)


@numba.njit(**_LOOP_OPTIONS)
def _math_softplus(x):
    """Stable softplus with libm ``log1p``/``exp``."""
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def _math_fn(name):
    """Return a Numba-callable scalar function using the ``math`` module."""
    if name == "sigmoid":
        return _math_sigmoid
    if name == "softplus":
        return _math_softplus
    return getattr(math, name)


def _numpy_fn(name):
    """Return ``(label, f(x, out))`` for the NumPy/SciPy reference ufunc."""
    if name == "sigmoid":
        return "scipy.special.expit", lambda x, out: special.expit(x, out=out)
    if name == "softplus":
        return "np.logaddexp(0, x)", lambda x, out: np.logaddexp(0.0, x, out=out)
    if name == "erf":
        return "scipy.special.erf", lambda x, out: special.erf(x, out=out)
    ufunc = getattr(np, name)
    return f"np.{name}", lambda x, out: ufunc(x, out=out)


def _make_loop(f):
    """Compile ``out[i] = f(x[i])`` the way symnn's generated kernels are compiled."""

    @numba.njit(**_LOOP_OPTIONS)
    def loop(x, out):
        for i in range(x.size):
            out[i] = f(x[i])

    return loop


def _inputs(name, n, rng, dtype):
    """Arguments in a range typical for neural-network activations."""
    if name == "log":
        x = 10.0 ** rng.uniform(-3.0, 3.0, n)
    elif name == "log1p":
        x = rng.uniform(-0.9, 10.0, n)
    else:
        x = rng.uniform(-10.0, 10.0, n)
    return x.astype(dtype)


def _time_ns_per_element(call, n, repeats):
    """Median wall time per element (ns) of ``call()`` over ``repeats`` batched samples."""
    call()
    t0 = time.perf_counter()
    call()
    once = max(time.perf_counter() - t0, 1e-7)
    batch = max(1, int(0.02 / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter() - t0) / batch)
    return statistics.median(samples) / n * 1e9


def run(sizes, repeats, names, dtype=np.float64):
    """Time all variants and print a table; return the rows."""
    rng = np.random.default_rng(0)
    print(
        f"numpy {np.__version__}, numba {numba.__version__}, {platform.machine()}, "
        f"dtype {np.dtype(dtype).name}"
    )
    print(f"median of {repeats} samples; ns per element (lower is better)\n")
    header = (
        f"{'function':<9} {'n':>8} {'reference ufunc':<20} {'numpy':>8} {'njit math':>10} "
        f"{'njit fm':>8} {'math/fm':>8} {'numpy/fm':>9}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for name in names:
        label, np_call = _numpy_fn(name)
        math_loop = _make_loop(_math_fn(name))
        fm_loop = _make_loop(fm.FASTMATH_FUNCTIONS[name])
        for n in sizes:
            x = _inputs(name, n, rng, dtype)
            out = np.empty_like(x)
            with np.errstate(all="ignore"):
                t_np = _time_ns_per_element(functools.partial(np_call, x, out), n, repeats)
            t_math = _time_ns_per_element(functools.partial(math_loop, x, out), n, repeats)
            t_fm = _time_ns_per_element(functools.partial(fm_loop, x, out), n, repeats)
            rows.append((name, n, label, t_np, t_math, t_fm))
            print(
                f"{name:<9} {n:>8} {label:<20} {t_np:>8.2f} {t_math:>10.2f} {t_fm:>8.2f} "
                f"{t_math / t_fm:>7.1f}x {t_np / t_fm:>8.1f}x",
                flush=True,
            )
    return rows


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument(
        "--functions", nargs="+", default=list(fm.FASTMATH_FUNCTIONS), metavar="NAME"
    )
    args = parser.parse_args(argv)
    run(args.sizes, args.repeats, args.functions, np.dtype(args.dtype))


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
