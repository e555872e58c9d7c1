"""Small timing harness shared by the benchmark scripts.

* :func:`median_time` - median seconds per call, auto-calibrating the inner loop;
* :func:`print_table` - fixed-width table of medians with ratios to a reference column;
* :func:`print_environment` - versions, BLAS libraries and threads, relevant env vars.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "ENV_VARS",
    "blas_info",
    "format_seconds",
    "median_time",
    "print_environment",
    "print_table",
    "time_samples",
]

#: Environment variables that change BLAS/threading behaviour, reported when set.
ENV_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMBA_OPT",
    "XLA_FLAGS",
)


def time_samples(
    fn: Callable[[], object],
    *,
    repeat: int = 7,
    number: int | None = None,
    min_time: float = 0.02,
) -> tuple[list[float], int]:
    """Per-call times of ``repeat`` samples of ``number`` back-to-back calls of ``fn``.

    Parameters
    ----------
    fn : callable
        Zero-argument callable to time (wrap arguments in a closure/lambda). It must
        finish its work before returning (e.g. ``jax.block_until_ready``).
    repeat : int, optional
        Number of samples.
    number : int or None, optional
        Calls per sample; ``None`` calibrates it so that one sample lasts at least
        ``min_time`` seconds (the calibration calls double as warm-up).
    min_time : float, optional
        Target duration of one sample, in seconds.

    Returns
    -------
    samples : list of float
        Seconds per call, one entry per sample.
    number : int
        Calls per sample that were used.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    clock = time.perf_counter
    fn()  # warm-up (JIT compilation, caches, allocator)
    if number is None:
        number = 1
        while True:
            t0 = clock()
            for _ in range(number):
                fn()
            elapsed = clock() - t0
            if elapsed >= min_time:
                break
            # Aim at 1.2 * min_time, growing at least 2x and at most 100x per step.
            scale = 1.2 * min_time / elapsed if elapsed > 0 else 100.0
            number = max(2 * number, min(100 * number, int(number * scale) + 1))
    elif number < 1:
        raise ValueError("number must be >= 1")
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = clock()
            for _ in range(number):
                fn()
            samples.append((clock() - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples, number


def median_time(
    fn: Callable[[], object],
    *,
    repeat: int = 7,
    number: int | None = None,
    min_time: float = 0.02,
) -> float:
    """Median seconds per call of ``fn``.

    Parameters
    ----------
    fn : callable
        Zero-argument callable to time.
    repeat : int, optional
        Number of samples whose median is returned.
    number : int or None, optional
        Calls per sample; ``None`` picks it so that each sample lasts >= ``min_time``.
    min_time : float, optional
        Target duration of one sample, in seconds (default 20 ms).

    Returns
    -------
    float
        Median over the samples of the mean time per call, in seconds.
    """
    samples, _ = time_samples(fn, repeat=repeat, number=number, min_time=min_time)
    return statistics.median(samples)


def format_seconds(t: float) -> str:
    """``t`` seconds as a short string in ns, µs, ms or s (3-4 significant digits)."""
    unit, scale = "ns", 1e-9
    for u, s in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if t >= s:
            unit, scale = u, s
            break
    v = t / scale
    digits = 0 if v >= 100 else 1 if v >= 10 else 2
    return f"{v:.{digits}f} {unit}"


def print_table(
    title: str,
    rows: Mapping[str, Mapping[str, float | str | None]],
    reference: str | None = None,
    *,
    columns: Iterable[str] | None = None,
    file=None,
) -> None:
    """Print a fixed-width table of median times with ratios to a reference column.

    Parameters
    ----------
    title : str
        Printed above the table.
    rows : mapping
        ``{row_label: {column: value}}``. A value is seconds (float), ``None`` (not run)
        or a short string (shown as-is, e.g. ``"skipped"``).
    reference : str, optional
        Column the ratios are relative to: each cell shows ``time / time_reference``
        (``> 1`` means slower than the reference). Defaults to the first column.
    columns : iterable of str, optional
        Column order; defaults to first appearance across ``rows``.
    file : file-like, optional
        Defaults to ``sys.stdout``.
    """
    out = sys.stdout if file is None else file
    if columns is None:
        columns = []
        for cells in rows.values():
            columns.extend(c for c in cells if c not in columns)
    columns = list(columns)
    if reference is None and columns:
        reference = columns[0]

    def cell(row: Mapping[str, float | str | None], col: str) -> str:
        v = row.get(col)
        if v is None:
            return "-"
        if isinstance(v, str):
            return v
        ref = row.get(reference)
        if isinstance(ref, float) and ref > 0:
            return f"{format_seconds(v)} ({v / ref:.2f}x)"
        return format_seconds(v)

    body = [[label] + [cell(r, c) for c in columns] for label, r in rows.items()]
    header = [""] + [f"{c} (ref)" if c == reference else c for c in columns]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    rule = "-" * (sum(widths) + 3 * (len(widths) - 1))
    print(f"\n{title}", file=out)
    if reference is not None:
        print(f"(median time per call; (Nx) = time / time of '{reference}')", file=out)
    print(rule, file=out)
    print(" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)), file=out)
    print(rule, file=out)
    for line in body:
        print(" | ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)), file=out)
    print(rule, file=out)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[dict]:
    """Loaded BLAS/OpenMP libraries as reported by threadpoolctl (``[]`` if absent).

    Only libraries already loaded in the process are listed, so call this after the
    code being benchmarked has run. ``architecture`` is the OpenBLAS core type in use.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return threadpool_info()


def print_environment(file=None) -> None:
    """Print versions, CPU, load, BLAS libraries/threads and relevant environment vars."""
    out = sys.stdout if file is None else file
    print("Environment", file=out)
    print(f"  python      {sys.version.split()[0]} ({platform.platform()})", file=out)
    for dist in ("numpy", "scipy", "numba", "llvmlite", "torch", "jax", "jaxlib", "scikit-learn"):
        v = _version(dist)
        print(f"  {dist:<11} {v if v else 'not installed'}", file=out)
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"  cpu         {_cpu_model()}, {ncpu} usable cores", file=out)
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"  load avg    {load} (1, 5, 15 min; > cores means contended timings)", file=out)
    for name in ENV_VARS:
        print(f"  {name:<20} {os.environ.get(name, '(unset)')}", file=out)
    info = blas_info()
    if not info:
        print("  threadpoolctl not installed (or nothing loaded): BLAS threads unknown", file=out)
    for lib in info:
        arch = lib.get("architecture") or "-"
        print(
            f"  {lib.get('internal_api', '?'):<9} {lib.get('version') or '?':<14} "
            f"threads={lib.get('num_threads')} core={arch} "
            f"{os.path.basename(lib.get('filepath', ''))}",
            file=out,
        )
