"""The header every benchmark prints first: the machine, the threads, the load.

Timings mean nothing without them: the same kernel is 2× slower with the other core busy,
and OpenBLAS on two threads can be 10× slower than on one when the machine is loaded.

``print_machine()`` writes one block to stdout (to stderr when ``--json`` is among the
arguments, so JSON output stays parseable)::

    machine  Intel(R) Xeon(R) ... (2 usable of 2 cores), Linux-6.1-x86_64
    threads  OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 ...; BLAS: openblas 0.3.30 x1 ...
    load     9.68 4.86 2.44 (1, 5, 15 min) — above 2 cores: timings are contended
"""

from __future__ import annotations

import os
import platform
import sys

__all__ = ["cpu_model", "describe", "print_machine"]

#: Environment variables that set thread counts.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS", "XLA_FLAGS", "OPENBLAS_CORETYPE")


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``; else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _blas() -> str:
    try:
        import numpy  # noqa: F401  (loads NumPy's BLAS so that it is listed)
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS threads unknown (threadpoolctl not installed)"
    libs = [f"{i.get('internal_api')} {i.get('version')} x{i.get('num_threads')} "
            f"({i.get('architecture') or '-'})" for i in threadpool_info()
            if i.get("user_api") == "blas"]
    return "BLAS: " + ("; ".join(libs) if libs else "none loaded yet")


def describe() -> dict:
    """``{"cpu", "cores", "usable_cores", "platform", "threads", "blas", "load"}``."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
        "platform": platform.platform(),
        "threads": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "blas": _blas(), "load": load,
    }


def print_machine(file=None) -> dict:
    """Print the header (see the module docstring); returns :func:`describe`'s dict."""
    if file is None:
        file = sys.stderr if "--json" in sys.argv else sys.stdout
    d = describe()
    cores = d["usable_cores"] or d["cores"] or 1
    print(f"machine  {d['cpu']} ({d['usable_cores']} usable of {d['cores']} cores), "
          f"{d['platform']}", file=file)
    env = " ".join(f"{k}={v}" for k, v in d["threads"].items()) or "no thread variables set"
    print(f"threads  {env}; {d['blas']}", file=file)
    if d["load"] is not None:
        a, b, c = d["load"]
        note = (f" — above {cores} cores: timings are contended" if a > cores else "")
        print(f"load     {a:.2f} {b:.2f} {c:.2f} (1, 5, 15 min){note}", file=file)
    file.flush()
    return d


if __name__ == "__main__":
    print_machine()
