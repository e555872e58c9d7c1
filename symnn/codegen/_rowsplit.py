"""Large batches in chunks of rows, the chunks on several threads (issue 16).

Every symnn model's loss is the mean over the batch of one loss per sample, plus
penalties on θ: no layer couples the samples of a batch.  So for a batch cut into chunks
of ``B_i`` rows, with ``w_i = B_i / B``,

    L = Σ_i w_i L_i      and      ∇L = Σ_i w_i ∇L_i,

where ``L_i`` and ``∇L_i`` are the kernel's results on chunk ``i`` alone (the penalties,
in every ``L_i``, add up to themselves once: ``Σ w_i = 1``).  A batch of at least
``2 · CHUNK`` rows is cut into ``B // CHUNK`` chunks of as equal size as can be (which
chunks depends only on B), and the kernels run them on up to :func:`threads` threads at
once: they release the GIL, and each thread has its own work buffer
(:class:`~symnn.codegen.model._ThreadBuffers`).  The sums are taken in chunk order
afterwards, so the bits depend on B alone, never on the number of threads or on which
thread finished first.  Unlike splitting each matrix product (``set_gemm_threads``), every
pass of the kernel — the elementwise ones too — runs in parallel, and a waiting thread
sleeps on a lock instead of spinning, so a machine busy with other work loses little.

Examples
--------
>>> chunks(2048)
[(0, 512), (512, 1024), (1024, 1536), (1536, 2048)]
>>> chunks(1500)                      # two chunks of 750 rows
[(0, 750), (750, 1500)]
>>> chunks(1023)                      # fewer than 2 · CHUNK rows: one chunk
[(0, 1023)]
>>> import numpy as np, symnn
>>> model = symnn.mlp([3, 4, 2], activation="tanh").compile()
>>> theta = model.init(0); X = np.ones((2048, 3)); y = np.zeros((2048, 2))
>>> L, g = model.loss_and_grad(theta, X, y)          # four chunks of 512 rows
>>> L1, g1 = model.loss_and_grad(theta, X[:512], y[:512])
>>> bool(np.isclose(L, L1, rtol=1e-14) and np.allclose(g, g1, rtol=1e-14, atol=1e-16))
True
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["CHUNK", "chunks", "threads", "run"]

#: Rows per chunk: a batch of at least 2 · CHUNK rows is cut into B // CHUNK chunks, and
#: thread j of n takes chunks j, j + n, …  (lead, round 8: the B = 2048 gradient of the
#: 64-128-128-10 MLP at 2 threads took 2.10 / 2.02 / 1.97 / 2.03 ms with chunks of 128 /
#: 256 / 512 / 1024 rows against 4.0 ms in one kernel call; 3.70 ms against 3.86 on one
#: thread with 512 rows, whose work buffers stay nearer the L2 cache)
CHUNK = 512

_POOL: list = []  # [ThreadPoolExecutor, its number of workers], made on first use
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    """In a forked child: the pool's threads were not copied (its idle count was), so a
    task given to it would wait for ever; the child makes a pool of its own."""
    global _POOL_LOCK
    _POOL.clear()
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def chunks(B: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` rows of each chunk of a batch of ``B`` rows (one chunk below
    ``2 · CHUNK`` rows; else ``B // CHUNK`` chunks whose sizes differ by at most one)."""
    n = B // CHUNK if B >= 2 * CHUNK else 1
    q, r = divmod(B, n)
    bounds = [0]
    for i in range(n):
        bounds.append(bounds[-1] + q + (1 if i < r else 0))
    return list(zip(bounds[:-1], bounds[1:]))


def threads() -> int:
    """How many threads run chunks at once: Numba's thread count (``NUMBA_NUM_THREADS``,
    by default the usable cores); 1 while the matrix products split themselves over the
    threads (:func:`~symnn.codegen.numba.gemm.set_gemm_threads`) or go to BLAS
    (:func:`~symnn.codegen.numba.gemm.set_gemm`: no AVX-512, or ``"blas"``), whose own
    threads then contend with the chunks' (lead, round 8: the B = 2048 gradient at 2
    threads, BLAS path, 4.14 ms in one call, 4.49 ms in chunks on 2 threads; tiles 3.91 →
    1.97 ms)."""
    import numba

    from symnn.codegen.numba import gemm

    if gemm._SPLIT["float64"].value or gemm._SPLIT["float32"].value or not gemm._FLAG.value:
        return 1
    n = int(numba.config.NUMBA_NUM_THREADS)
    try:
        n = min(n, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        pass
    return max(1, n)


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL or _POOL[1] < workers:
            if _POOL:
                _POOL[0].shutdown(wait=False)
                _POOL.clear()
            _POOL.extend([ThreadPoolExecutor(workers, thread_name_prefix="symnn-rows"),
                          workers])
        return _POOL[0]


def _chunk(model, kind: str, args: tuple, B: int, start: int, stop: int, with_grad: bool):
    """The kernel ``kind`` on rows ``start:stop``: ``(L_i, grad_i or None)``."""
    rows = [a[start * (a.size // B):stop * (a.size // B)] for a in args[1:]]
    grad = np.empty(model.n_params, model.dtype) if with_grad else None
    out = (grad,) if with_grad else ()
    L = model._call(kind, args[0], *rows, *out, model._work(kind, stop - start))
    return float(L), grad


def _chunks(model, kind: str, args: tuple, B: int, parts, with_grad: bool) -> list:
    return [_chunk(model, kind, args, B, a, b, with_grad) for a, b in parts]


def run(model, kind: str, args: tuple, B: int, with_grad: bool):
    """``(L, grad or None)`` of kernel ``kind`` (``"loss"`` or ``"loss_and_grad"``) on a
    batch of ``B`` rows given as ``args`` (θ, then flat per-row arrays: X, y and a Dropout
    mask where there is one), chunk by chunk (see the module's docstring)."""
    parts = chunks(B)
    n = min(threads(), len(parts))
    if n > 1 and kind in model._ready:  # thread j takes chunks j, j + n, j + 2n, …
        pool = _pool(n - 1)
        futures = [pool.submit(_chunks, model, kind, args, B, parts[j::n], with_grad)
                   for j in range(1, n)]
        mine = _chunks(model, kind, args, B, parts[0::n], with_grad)
        groups = [mine] + [f.result() for f in futures]
        results = [groups[i % n][i // n] for i in range(len(parts))]
    else:  # one thread, or the kernel's first call (it is loaded once, here)
        results = _chunks(model, kind, args, B, parts, with_grad)
    weights = [(b - a) / B for a, b in parts]
    L = 0.0
    for w, (Li, _) in zip(weights, results):
        L += w * Li
    if not with_grad:
        return L, None
    grad = results[0][1]
    grad *= weights[0]
    for w, (_, gi) in zip(weights[1:], results[1:]):
        gi *= w
        grad += gi
    return L, grad
