"""The dense Hessian of a network whose first layer is ``Dense`` (issue 16, speed).

:meth:`CompiledModel.hessian <symnn.codegen.model.CompiledModel.hessian>` takes P
Hessian-vector products with the unit vectors.  The first layer's weights hold most of the
parameters of a small network (160 of the 193 of a 10-16-1 MLP), and their columns need not
be computed one direction at a time: ``W1`` and ``b1`` enter only ``z1 = W1 x + b1``, so
per sample ``∂ℓᵢ/∂W1[j, l] = xᵢₗ · ∂ℓᵢ/∂b1[j]``, and since ``x`` does not depend on θ,

    ``H[W1[j, l], ·] = (1/B) Σᵢ xᵢₗ · Hᵢ[b1[j], ·]``   and   ``H[b1[j], ·] = (1/B) Σᵢ Hᵢ[b1[j], ·]``

— exactly, where ``Hᵢ[b1[j], ·]`` is the Hessian-vector product of sample i alone with the
unit vector of ``b1[j]``.  So the rows of ``W1`` and ``b1`` are one matrix product
``[X, 1]ᵀ R`` of the per-sample products ``R`` (B × n₁ × P: the compiled ``hvp`` kernel on
one sample and the n₁ directions of ``b1``, a batch of one per call), and the other rows
are the usual batched products with their unit vectors.  The first layer's n₀·n₁
directions over the batch become n₁ directions per sample plus one product on whole tiles
of :mod:`symnn.codegen.numba.gemm`: on the 10-16-1 network at B = 64, 0.70× the CPU time of
all-unit-vector rows.  The result is the same Hessian up to rounding
(``tests/test_hessian_blocks.py`` checks it against the unit-vector path, the NumPy
reference and finite differences).

The parts — the unit-vector rows, and the batch in parts — can run on several threads
(:func:`hessian_threads`; off by default, see :data:`THREAD_MADDS`), and they fit in the
memory the caller allows (:data:`symnn.codegen.model.HESSIAN_MEMORY`): the samples'
products in parts, and the unit-vector path alone where one part's sum would not fit.

It applies (:func:`first_layer_plan`) when samples do not interact and the first layer's
parameters appear nowhere else: a :class:`~symnn.declare.network.Network` of ``Dense``,
activation and softmax layers only, whose first layer is ``Dense`` with a bias, without
penalties or Dropout, in float64.  Every other model keeps the unit-vector path.

>>> import numpy as np, symnn
>>> model = symnn.mlp([3, 4, 1], activation="tanh", loss="mse", name="hb_doc").compile()
>>> first_layer_plan(model)
(0, 4, 3, 12)
>>> theta = model.init(0); X = np.linspace(-1, 1, 15).reshape(5, 3); y = np.arange(5.0)
>>> H = model.hessian(theta, X, y)
>>> E = np.eye(model.n_params)
>>> bool(np.allclose(H, model.hvp(theta, E, X, y), rtol=0, atol=1e-12))
True
"""

from __future__ import annotations

import os
import threading

import numpy as np

from symnn.codegen.numba.gemm import MR, _gemm

__all__ = ["THREAD_MADDS", "first_layer_part", "first_layer_plan", "first_layer_rows",
           "hessian_rows", "hessian_threads", "rest_directions", "run_tasks", "unit_rows"]


def first_layer_plan(model) -> tuple[int, int, int, int] | None:
    """``(offset of W1, n₁, n₀, offset of b1)`` when the first-layer rows of this module
    apply to ``model`` (see the module), else None.  Computed once, kept on the model."""
    plan = model.__dict__.get("_first_layer_plan", False)
    if plan is False:
        plan = _plan(model)
        model._first_layer_plan = plan
    return plan


def _plan(model):
    from symnn.declare.layers import Act, Dense, Softmax
    from symnn.declare.network import Network

    net = model.declared
    if (type(net) is not Network or net.penalties or model.mask_width
            or model.dtype != np.float64 or "hvp" not in model.kernels):
        return None
    if not all(type(la) in (Dense, Act, Softmax) for la in net.layers):
        return None
    first = net.layers[0]
    if type(first) is not Dense or not first.bias or len(model.param_shapes) < 2:
        return None
    (wname, wshape), (bname, bshape) = model.param_shapes[:2]
    n1, n0 = first.n_out, first.n_in
    if (wname, tuple(wshape), bname, tuple(bshape)) != ("W1", (n1, n0), "b1", (n1,)):
        return None
    if tuple(model.input_shape) != (n0,):
        return None
    (ow, _), (ob, _) = model._offsets[:2]
    return ow, n1, n0, ob


def rest_directions(P: int, plan) -> np.ndarray:
    """The parameters whose rows the unit-vector products give: all but ``W1`` and ``b1``."""
    ow, n1, n0, ob = plan
    keep = np.ones(P, bool)
    keep[ow:ow + n1 * n0] = False
    keep[ob:ob + n1] = False
    return np.flatnonzero(keep)


def first_layer_part(model, theta, X, Y, plan, samples: range, memory: int) -> np.ndarray:
    """``[X, 1]ᵀ R / B`` over ``samples`` (see the module): shape (≥ n₀ + 1, n₁, P), where
    ``R`` holds each sample's products with the directions of ``b1``, made for as many
    samples at once as fit in ``memory`` bytes."""
    ow, n1, n0, ob = plan
    B, P = X.shape[0], model.n_params
    E = np.zeros((n1, P), model.dtype)
    E[np.arange(n1), ob + np.arange(n1)] = 1.0
    E = E.reshape(-1)
    m = -(-(n0 + 1) // MR) * MR  # [X, 1] padded with zero columns to whole tiles of rows
    G = np.empty((m, n1, P), model.dtype)
    step = max(1, min(len(samples), memory // (n1 * P * model.dtype.itemsize)))
    R = np.empty((step, n1, P), model.dtype)
    Xe = np.zeros((step, m), model.dtype)
    for first in range(samples.start, samples.stop, step):
        part = range(first, min(first + step, samples.stop))
        _sample_products(model, theta, X, Y, E, part, R)
        Xe[:len(part), :n0] = X[part.start:part.stop]
        Xe[:len(part), n0] = 1.0
        _gemm(1, 0, m, n1 * P, len(part), 1.0 / B, Xe.reshape(-1), 0, m, R.reshape(-1), 0,
              n1 * P, 0.0 if first == samples.start else 1.0, G.reshape(-1), 0, n1 * P)
    return G


def _sample_products(model, theta, X, Y, E, samples: range, R) -> None:
    """``R[r]`` ← the products of sample ``samples[r]`` alone with the directions ``E``."""
    n = len(samples)
    xs = list(X[samples.start:samples.stop])
    ys = list(Y.reshape(X.shape[0], -1)[samples.start:samples.stop])
    rs = list(R.reshape(R.shape[0], -1)[:n])
    work = model._work("hvp", 1, R.shape[1])
    model._call("hvp", theta, E, xs[0], ys[0], rs[0], work)  # loads it, checks, poisons
    fn = model.kernels["hvp"]
    if model.debug or "hvp" in model._aot:
        fn = lambda *args: model._call("hvp", *args)  # noqa: E731
    for r in range(1, n):
        fn(theta, E, xs[r], ys[r], rs[r], work)


def first_layer_rows(H, G, plan) -> None:
    """``H``'s rows of ``W1`` and ``b1`` from the sum ``G`` of :func:`first_layer_part`."""
    ow, n1, n0, ob = plan
    H[ow:ow + n1 * n0].reshape(n1, n0, -1)[...] = G[:n0].transpose(1, 0, 2)
    H[ob:ob + n1] = G[n0]


def unit_rows(model, theta, X, Y, M, H, rows, memory: int) -> None:
    """``H[rows] ← H θ-rows`` by Hessian-vector products with the unit vectors of ``rows``,
    as many at once as fit in ``memory`` bytes of kernel work."""
    P = model.n_params
    _, per_sample, per_dir, _ = model.generated.work["hvp"]
    per = (X.shape[0] * per_sample + per_dir + 2 * P) * model.dtype.itemsize
    chunk = max(1, min(len(rows), memory // max(per, 1)))
    Xf, Yf = X.reshape(-1), Y.reshape(-1)
    contiguous = len(rows) > 0 and rows[-1] - rows[0] == len(rows) - 1
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        K = len(part)
        E = np.zeros((K, P), model.dtype)
        E[np.arange(K), part] = 1
        out = H[part[0]:part[0] + K] if contiguous else np.empty((K, P), model.dtype)
        model._call("hvp", theta, E.reshape(-1), Xf, *M, Yf, out.reshape(-1),
                    model._work("hvp", X.shape[0], K))
        if not contiguous:
            H[part] = out


def hessian_rows(model, theta, X, Y, M, memory: int, threads: int | None = None) -> np.ndarray:
    """The unsymmetrised Hessian (P, P): the first layer's rows from per-sample products
    where :func:`first_layer_plan` allows, every other row from unit vectors.  The parts
    run on ``threads`` threads (None: :func:`hessian_threads`)."""
    P, B = model.n_params, X.shape[0]
    H = np.empty((P, P), model.dtype)
    plan = first_layer_plan(model) if not M else None
    if plan is not None and (plan[2] + MR) * plan[1] * P * model.dtype.itemsize > memory // 2:
        plan = None  # the first layer's rows would not fit in the memory allowed
    n = hessian_threads(B, P) if threads is None else max(1, int(threads))
    if "hvp" not in model._ready and "hvp" not in model._aot:
        n = 1  # the first call loads the kernel: once, on this thread
    rows = np.arange(P) if plan is None else rest_directions(P, plan)

    def unit(part):
        return lambda: unit_rows(model, theta, X, Y, M, H, part, memory)

    tasks = [unit(part) for part in np.array_split(rows, n if plan is None else 1)
             if len(part)]
    n_unit = len(tasks)
    if plan is not None:  # parts of the batch, each with its own G (as many as fit)
        g_bytes = (plan[2] + MR) * plan[1] * P * model.dtype.itemsize
        parts = max(1, min(2 * n if n > 1 else 1, memory // (2 * g_bytes)))
        tasks += [(lambda s: lambda: first_layer_part(model, theta, X, Y, plan, s,
                                                      memory // (2 * parts)))(s)
                  for s in _sample_chunks(B, parts)]
    results = run_tasks(tasks, n)
    if plan is not None:
        G = results[n_unit]
        for part in results[n_unit + 1:]:
            G += part
        first_layer_rows(H, G, plan)
    return H


def _sample_chunks(B: int, n: int) -> list[range]:
    edges = np.linspace(0, B, min(n, B) + 1).round().astype(int)
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


#: B·P² from which the Hessian splits its parts over Numba's threads; None: never (the
#: default).  Measured on a 2-core machine, splitting never paid: at 10-16-1, B = 64, two
#: threads took 1.2× the wall time of one (21 % more CPU time in all); at 32-32-1, 1.6×
#: (likely: the tile product of each part holds the GIL).  Set it (``1 << 24``) to try.
THREAD_MADDS: int | None = None


def hessian_threads(B: int, P: int) -> int:
    """Threads for a dense Hessian: Numba's thread count (``NUMBA_NUM_THREADS``, or
    ``numba.set_num_threads`` once Numba's thread pool runs) when the work is at least
    :data:`THREAD_MADDS`, else 1."""
    if THREAD_MADDS is None or B * P * P < THREAD_MADDS:
        return 1
    import numba
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", False):  # else asking would start the pool
        return max(1, numba.get_num_threads())
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


_POOLS: dict = {}  # {(workers, process id): ThreadPoolExecutor}, made on first use
_PREFIX = "symnn-hessian"


def run_tasks(tasks, n: int) -> list:
    """Run the callables ``tasks`` on ``n`` threads (this one and n − 1 pool threads, each
    taking the next task until none is left); their results in order.  The kernels release
    the GIL, so the threads' products overlap."""
    if n <= 1 or len(tasks) <= 1 or threading.current_thread().name.startswith(_PREFIX):
        return [t() for t in tasks]  # (in a pool thread: no waiting on the pool itself)
    from concurrent.futures import ThreadPoolExecutor

    n = min(n, len(tasks))
    key = (n - 1, os.getpid())  # a forked child has the pool but not its threads
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(n - 1, thread_name_prefix=_PREFIX)
    results: list = [None] * len(tasks)
    order = iter(range(len(tasks)))

    def drain():
        for k in order:  # next() on a range iterator is atomic under the GIL
            results[k] = tasks[k]()

    futures = [pool.submit(drain) for _ in range(n - 1)]
    drain()
    for f in futures:
        f.result()
    return results
