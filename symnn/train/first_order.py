"""First-order training: whole epochs in one compiled call, or a Python loop.

The seeded shuffle is drawn in Python; then the mini-batch loop — gather, forward,
backward, update — runs inside one compiled call (:mod:`symnn.train.epoch_kernel`) calling
the model's own loss-and-gradient kernel.  When the model's ``loss_and_grad`` is not its
compiled kernel (a :class:`~symnn.codegen.model.ReferenceModel`, a wrapper, a method
replaced on the instance) the same loop runs in Python around ``model.loss_and_grad`` and
the same compiled update, so what is trained is always what ``model.loss_and_grad`` says.

Examples
--------
>>> from symnn.train import SGD, StepDecay
>>> lr_at = lr_function(SGD(lr=0.1, schedule=StepDecay(step_size=2, gamma=0.5)))
>>> [lr_at(t) for t in (1, 2, 3, 4)]
[0.1, 0.1, 0.05, 0.05]
"""

from __future__ import annotations

import math
import time

import numpy as np
import sympy as sp

from symnn.errors import ArgumentError
from symnn.train import dropout
from symnn.train import epoch_kernel as ek_mod
from symnn.train.schedules import ETA0, T
from symnn.train.session import FitResult, Session, decay_vector

__all__ = ["run", "lr_function"]


def _has_kernel(model) -> bool:
    kernels = getattr(model, "kernels", None)
    return (isinstance(kernels, dict) and "loss_and_grad" in kernels
            and "loss_and_grad" not in vars(model))


def lr_function(opt):
    """``t ↦ η_t`` as a plain Python function (from the schedule's SymPy expression)."""
    sched = opt.schedule
    if sched.constant:
        return lambda t: opt.lr
    hs = sched.hypers()
    f = sp.lambdify([T, ETA0] + [h.symbol for h in hs],
                    sp.sympify(sched.expr()).doit(), modules="math")
    vals = [h.value for h in hs]
    return lambda t: float(f(max(t, 1), opt.lr, *vals))


def _python_epoch(batch_grad, upd, bufs, cur, perm, bs, lam, S, scal, bounds, gnorm):
    """The epoch kernel's loop in Python, around ``batch_grad(θ, rows) -> (L, ∇L)``."""
    n = perm.shape[0]
    total, steps = 0.0, 0
    for start in range(0, n, bs):
        idx = perm[start:start + bs]
        L, g = batch_grad(bufs[cur], idx)
        if not math.isfinite(L):
            return total, steps, 1, 1 - cur
        g = np.ascontiguousarray(g, dtype=bufs.dtype)
        with np.errstate(over="ignore"):  # a norm past the float range is inf, no warning
            for a in range(len(bounds) - 1):
                gnorm[a] += float(np.linalg.norm(g[bounds[a]:bounds[a + 1]]))
        upd.fn(bufs[cur], g, lam, S, scal, upd.hp, bufs[1 - cur])
        cur = 1 - cur
        total += float(L) * len(idx)
        steps += 1
    return total, steps, 0, cur


def run(s: Session, opt, theta: np.ndarray, batch_size: int | None, shuffle: bool,
        rng: np.random.Generator, engine: str, rows=None) -> FitResult:
    """Train with the first-order optimizer ``opt`` from ``theta``, reporting to ``s``.

    ``engine``: ``"kernel"`` (the compiled epoch, which needs the model's own kernel),
    ``"python"`` (a loop around ``model.loss_and_grad``) or ``"auto"`` (the kernel when
    the model has one).  ``rows``: a :class:`~symnn.train.loop.BatchGradient` computing
    each mini-batch's loss and gradient elsewhere (``s.X`` is then only the check sample);
    the Python loop runs around it.
    """
    model = s.model
    dt = np.dtype(model.dtype)
    P = model.n_params
    n = s.X.shape[0] if rows is None else int(rows.n_samples)
    if rows is not None:
        engine = "python"
    bs = n if batch_size is None else max(1, min(int(batch_size), n))
    lam = decay_vector(model, opt)
    upd = ek_mod.compile_update(opt, dt)
    S, scal = upd.init_state(P)
    bufs = np.empty((2, P), dt)
    bufs[0] = theta
    bufs[1] = theta
    cur = 0
    if engine == "kernel" and not _has_kernel(model):
        raise ArgumentError("fit: engine='kernel' needs a compiled model whose loss_and_grad "
                            "is its Numba kernel; use engine='python' (or 'auto') for this "
                            "model")
    masked = dropout.has_dropout(model)
    if engine == "kernel" and masked:
        raise ArgumentError("fit: engine='kernel' runs the fused epoch kernel, which draws no "
                            "Dropout masks; a network with Dropout trains in the Python loop "
                            "around model.loss_and_grad (engine='auto' or 'python')")
    use_kernel = not masked and (engine == "kernel" or (engine == "auto"
                                                        and _has_kernel(model)))
    kernel = ek_mod.compile_epoch(model, opt) if use_kernel else None
    work = np.empty(max(ek_mod.work_size(model, bs), 1) if use_kernel else 1, dt)
    lam_arrays = ek_mod.decay_per_array(lam, s.bounds) if use_kernel else lam
    lr_at = lr_function(opt)
    if rows is not None:
        batch_grad = rows
    elif masked:  # a fresh Dropout mask per mini-batch, drawn after the epoch's shuffle
        def batch_grad(theta, idx):
            return model.loss_and_grad(theta, s.X[idx], s.Y[idx],
                                       mask=dropout.draw_masks(model, len(idx), rng))
    else:
        def batch_grad(theta, idx):
            return model.loss_and_grad(theta, s.X[idx], s.Y[idx])
    s.start(bufs[cur])
    for epoch in range(1, s.epochs + 1):
        t0 = time.perf_counter()
        perm = rng.permutation(n) if shuffle else np.arange(n)
        gn = np.zeros(len(s.names), np.float64)
        if kernel is not None:
            if getattr(model, "debug", False):
                work.fill(np.nan)  # poisoned, as the model's own kernels are in debug mode
            total, steps, status, cur = kernel.run(bufs, cur, s.X, s.Y, perm, bs,
                                                   lam_arrays, S, scal, upd.hp, s.bounds,
                                                   gn, work)
        else:
            total, steps, status, cur = _python_epoch(batch_grad, upd, bufs, cur, perm, bs,
                                                      lam, S, scal, s.bounds, gn)
        if status != ek_mod.STATUS_OK:
            raise s.diverged(epoch, s.steps + steps, bufs[cur], "mini-batch loss",
                             "not finite (NaN or ±inf)")
        norms = {name: float(gn[a] / max(steps, 1)) for a, name in enumerate(s.names)}
        stop = s.end_epoch(epoch, bufs[cur], total / n, norms, steps, t0,
                           fallback=bufs[1 - cur], lr=lr_at(int(scal[0])))
        if stop:
            break
    return s.result(bufs[cur])

