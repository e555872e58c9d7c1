"""The training loop: :func:`fit`.

``fit(model, X, y, optimizer=…)`` trains a compiled model and returns a :class:`FitResult`
with the parameters and the :class:`~symnn.train.history.History`.

First-order optimizers (:mod:`symnn.train.optimizers`) run whole epochs inside one
compiled call (:mod:`symnn.train.epoch_kernel`): the seeded shuffle is drawn in Python,
then the mini-batch loop — gather, forward, backward, update — is Numba code calling the
model's own loss-and-gradient kernel.  When the model's ``loss_and_grad`` is not its
compiled kernel (a :class:`~symnn.codegen.model.ReferenceModel`, a wrapper, a method
replaced on the instance) the same loop runs in Python around ``model.loss_and_grad`` and
the same compiled update, so what is trained is always what ``model.loss_and_grad`` says.
Second-order optimizers (:mod:`symnn.train.second_order`) take full-batch iterations; the
history then has one record per iteration.

Nothing is lost when something goes wrong:

* NaN or ±inf in ``X``, ``y``, the validation data or ``theta0`` raises
  :class:`~symnn.errors.DataError` before any training;
* a mini-batch loss that is NaN or ±inf stops training with
  :class:`~symnn.errors.TrainingError`; ``err.params`` holds the parameters of the last
  finite loss (the update that broke them is not applied) and ``err.history`` the epochs
  completed;
* ``check_every=k`` compares ``model.loss_and_grad`` with central differences of
  ``model.loss`` along random directions (:func:`symnn.gradcheck`; for second-order methods
  also :func:`symnn.hesscheck` of ``model.hvp``) before training and after every k-th
  epoch, on a fixed subset of at most 64 training samples; a failed check raises
  :class:`~symnn.errors.TrainingError` with ``err.params`` = the parameters of the last
  check that passed and ``err.report`` the failed report.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.train import fit, Adam
>>> model = symnn.mlp([2, 8, 1], activation="tanh").compile()
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(64, 2)); y = X[:, 0] * X[:, 1]
>>> res = fit(model, X, y, Adam(lr=0.01), epochs=50, batch_size=16, seed=0, progress=False)
>>> bool(res.history.loss[-1] < res.history.loss[0])
True
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from symnn.errors import DataError, ShapeError, TrainingError
from symnn.train.history import History

__all__ = ["fit", "FitResult", "EpochInfo"]

#: Most samples used by the finite-difference checks of ``check_every``.
CHECK_SAMPLES = 64


@dataclass
class EpochInfo:
    """What a callback receives after each epoch (or second-order iteration).

    Attributes
    ----------
    epoch : int
    record : dict
        The history record just added.
    params : ndarray
        A copy of the current parameters.
    model : CompiledModel
    history : History
    """

    epoch: int
    record: dict
    params: np.ndarray
    model: Any
    history: History


@dataclass
class FitResult:
    """The outcome of :func:`fit`.

    Attributes
    ----------
    params : ndarray, shape (P,)
        The trained parameters (the best epoch's, when early stopping restored them).
    history : History
    model : CompiledModel
    optimizer : Optimizer or SecondOrder
    stop_reason : str
        ``"completed"``, ``"early_stopping"``, ``"converged"`` or ``"callback"``.
    best_epoch : int or None
        The epoch whose parameters were returned under early stopping.
    steps : int
        Parameter updates made.
    """

    params: np.ndarray
    history: History
    model: Any
    optimizer: Any
    stop_reason: str = "completed"
    best_epoch: int | None = None
    steps: int = 0

    def predict(self, X) -> np.ndarray:
        """``model.predict(params, X)``."""
        return self.model.predict(self.params, X)

    def __repr__(self) -> str:
        return (f"FitResult({len(self.history)} epochs, {self.stop_reason}, "
                f"loss {self.history.loss[-1]:.6g})" if len(self.history)
                else f"FitResult(0 epochs, {self.stop_reason})")


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------


def _as_model(model):
    if hasattr(model, "loss_and_grad") and hasattr(model, "n_params"):
        return model
    if hasattr(model, "compile") and hasattr(model, "param_shapes"):
        return model.compile()
    raise TypeError(f"fit: expected a compiled model (net.compile()) or a network, got "
                    f"{type(model).__name__}")


def prepare_data(model, X, y, what: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``X`` and targets as C-contiguous arrays of the model's dtype, checked.

    Raises
    ------
    DataError
        NaN or ±inf anywhere, non-numeric data, invalid class labels or probability rows.
    ShapeError
        Shapes that do not match the model or each other.
    """
    from symnn.codegen import _validate as V

    dt = np.dtype(model.dtype)
    xn, yn = (f"{what}X", f"{what}y") if what else ("X", "y")
    Xa = V.as_inputs(X, model.n_inputs, dt, xn)
    loss = model.declared.loss
    Ya = V.as_targets(y, Xa.shape[0], model.n_outputs, dt, bool(loss.probabilities),
                      loss.name, yn)
    # writeable, C-ordered copies where needed (kernels are compiled for writeable arrays)
    return (np.require(Xa, requirements=["C", "W"]), np.require(Ya, requirements=["C", "W"]))


def param_bounds(model) -> tuple[list[str], np.ndarray]:
    """Names of the parameter arrays and their bounds in θ: ``θ[bounds[a]:bounds[a+1]]``."""
    names, sizes = [], []
    for name, shape in model.param_shapes:
        names.append(name)
        sizes.append(int(np.prod(shape, dtype=np.int64)) if shape else 1)
    return names, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def decay_vector(model, opt) -> np.ndarray:
    """λ per coordinate of θ: ``opt.weight_decay`` on the arrays ``opt.decay`` selects."""
    lam = np.zeros(model.n_params, np.dtype(model.dtype))
    wd = getattr(opt, "weight_decay", 0.0)
    if not wd:
        return lam
    names, bounds = param_bounds(model)
    for a, name in enumerate(names):
        if getattr(opt, "decay", "all") == "all" or not name.startswith("b"):
            lam[bounds[a]:bounds[a + 1]] = wd
    return lam


def _array_norms(g: np.ndarray, names, bounds) -> dict[str, float]:
    return {n: float(np.linalg.norm(g[bounds[a]:bounds[a + 1]])) for a, n in enumerate(names)}


# ------------------------------------------------------------------------------------------
# progress
# ------------------------------------------------------------------------------------------


class _Progress:
    """One status line on stderr, rewritten in place; shown only after ``delay`` seconds."""

    def __init__(self, enabled: bool | None, total: int, stream=None, delay: float = 1.0):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.total = total
        self.start = time.perf_counter()
        self.delay = delay if enabled is not True else 0.0
        self.last = 0.0
        self.shown = False

    def update(self, epoch: int, rec: dict) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.start < self.delay or (now - self.last < 0.1 and epoch < self.total):
            return
        self.last = now
        val = "" if rec.get("val_loss") is None else f"  val_loss {rec['val_loss']:.5g}"
        width = 24
        done = int(width * epoch / max(self.total, 1))
        bar = "█" * done + "·" * (width - done)
        self.stream.write(f"\r{bar} epoch {epoch}/{self.total}  loss {rec['loss']:.5g}{val}"
                          f"  {now - self.start:.1f}s ")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


# ------------------------------------------------------------------------------------------
# the session: history, validation, checks, early stopping, callbacks
# ------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised inside optimizers' loops to end training (not an error)."""


class Session:
    """What every optimizer's loop reports to after each epoch or iteration.

    Optimizers call :meth:`end_epoch`; it records the history, computes the validation
    loss, runs the due checks, tracks early stopping, calls callbacks and shows progress.
    It returns True when training should stop.
    """

    def __init__(self, model, opt, X, Y, Xv, Yv, *, epochs: int, check_every: int | None,
                 callbacks: Sequence[Callable], progress: bool | None,
                 early_stopping: int | None, min_delta: float, restore_best: bool,
                 seed: int) -> None:
        self.model = model
        self.opt = opt
        self.X, self.Y, self.Xv, self.Yv = X, Y, Xv, Yv
        self.epochs = epochs
        self.check_every = check_every
        self.callbacks = list(callbacks)
        self.progress = _Progress(progress, epochs)
        self.patience = early_stopping
        self.min_delta = float(min_delta)
        self.restore_best = restore_best
        self.history = History()
        self.names, self.bounds = param_bounds(model)
        self.best_value = math.inf
        self.best_params: np.ndarray | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stop_reason = "completed"
        self.steps = 0
        self.good: np.ndarray | None = None  # parameters of the last passing check
        self.good_epoch = 0
        rng = np.random.default_rng(seed + 7919)
        n = X.shape[0]
        idx = np.sort(rng.choice(n, size=min(n, CHECK_SAMPLES), replace=False))
        self.Xc, self.Yc = X[idx], Y[idx]

    # -- checks ------------------------------------------------------------------------------
    def check(self, theta: np.ndarray, epoch: int, second_order: bool = False) -> None:
        """Finite-difference checks at ``theta``; raise TrainingError when one fails."""
        from symnn.check import gradcheck, hesscheck

        rep = gradcheck(self.model, theta, self.Xc, self.Yc, n_directions=4, coordinates=0,
                        seed=epoch)
        if rep and second_order and hasattr(self.model, "hvp"):
            rep = hesscheck(self.model, theta, self.Xc, self.Yc, n_directions=2, seed=epoch)
        if not rep:
            when = "before training" if epoch == 0 else f"after epoch {epoch}"
            kept = ("the initial parameters" if self.good_epoch == 0 else
                    f"the parameters after epoch {self.good_epoch}")
            where = ""
            if rep.kind == "gradient":  # name the parameter: check coordinates too
                loc = gradcheck(self.model, theta, self.Xc, self.Yc, n_directions=0,
                                coordinates="auto", seed=epoch)
                w = loc.worst_parameter
                if not loc and w is not None:
                    where = (f" The worst parameter is {w.label}: analytic {w.analytic:.10g}, "
                             f"finite difference {w.numeric:.10g}.")
            err = TrainingError(
                f"the {rep.kind} check failed {when}: the model's derivatives disagree with "
                f"finite differences of its loss, so training stopped.{where} err.params "
                f"holds {kept}, the last to pass a check.\n{rep}",
                params=(self.good if self.good is not None else theta).copy(),
                history=self.history)
            err.report = rep
            raise err
        self.good = np.array(theta, copy=True)
        self.good_epoch = epoch

    def start(self, theta: np.ndarray, second_order: bool = False) -> None:
        if self.check_every:
            self.check(theta, 0, second_order)

    # -- divergence ----------------------------------------------------------------------------
    def diverged(self, epoch: int, updates: int, params: np.ndarray, what: str,
                 value: Any) -> TrainingError:
        """The error for a non-finite loss or parameter vector after ``updates`` updates."""
        lr = getattr(self.opt, "lr", None)
        hint = (f"lower the learning rate (lr={lr:g}) or clip the gradient (clip_norm=1.0)"
                if lr is not None else "add damping, or check the scale of the data")
        where = (f"after {updates} updates (epoch {epoch})" if updates
                 else "at the initial parameters")
        kept = ("the initial parameters" if not updates else
                "the parameters of the last finite loss")
        return TrainingError(
            f"training diverged {where}: the {what} is {value}; {hint}. err.params holds "
            f"{kept} and err.history the epochs completed.",
            params=np.array(params, copy=True), history=self.history)

    # -- end of an epoch ---------------------------------------------------------------------
    def end_epoch(self, epoch: int, theta: np.ndarray, loss: float,
                  grad_norm: dict[str, float], steps: int, t0: float,
                  fallback: np.ndarray | None = None, lr: float | None = None,
                  second_order: bool = False, **extra: Any) -> bool:
        """Record epoch ``epoch`` (parameters ``theta`` after it); True means stop.

        ``fallback`` holds parameters with a finite loss, returned in the TrainingError if
        ``theta`` or its validation loss is not finite.
        """
        self.steps += steps
        safe = fallback if fallback is not None else theta
        if not np.all(np.isfinite(theta)):
            raise self.diverged(epoch, self.steps, safe, "parameter vector",
                                "not finite after the last update")
        if not math.isfinite(loss):
            raise self.diverged(epoch, self.steps, safe, "training loss", loss)
        val = None
        if self.Xv is not None:
            val = float(self.model.loss(theta, self.Xv, self.Yv))
            if not math.isfinite(val):
                raise self.diverged(epoch, self.steps, safe, "validation loss", val)
        rec = self.history.append(epoch=epoch, loss=loss, val_loss=val, grad_norm=grad_norm,
                                  time=0.0, steps=steps, lr=lr, **extra)
        stop = False
        # early stopping on the validation loss (else the training loss)
        monitored = val if val is not None else loss
        if monitored < self.best_value - self.min_delta:
            self.best_value = monitored
            self.best_epoch = epoch
            self.bad_epochs = 0
            if self.patience is not None and self.restore_best:
                self.best_params = np.array(theta, copy=True)
        else:
            self.bad_epochs += 1
            if self.patience is not None and self.bad_epochs >= self.patience:
                self.stop_reason = "early_stopping"
                stop = True
        if self.check_every and epoch % self.check_every == 0:
            self.check(theta, epoch, second_order)
        for cb in self.callbacks:
            if cb(EpochInfo(epoch, rec, np.array(theta, copy=True), self.model,
                            self.history)):
                self.stop_reason = "callback"
                stop = True
        rec["time"] = time.perf_counter() - t0
        self.progress.update(epoch, rec)
        return stop

    def result(self, theta: np.ndarray) -> FitResult:
        self.progress.close()
        params = np.array(theta, copy=True)
        best = None
        if self.stop_reason == "early_stopping" and self.best_params is not None:
            params = self.best_params
            best = self.best_epoch
        return FitResult(params, self.history, self.model, self.opt, self.stop_reason, best,
                         self.steps)


# ------------------------------------------------------------------------------------------
# first-order training
# ------------------------------------------------------------------------------------------


def _has_kernel(model) -> bool:
    kernels = getattr(model, "kernels", None)
    return (isinstance(kernels, dict) and "loss_and_grad" in kernels
            and "loss_and_grad" not in vars(model))


def _lr_function(opt):
    """``t ↦ η_t`` as a plain Python function (from the schedule's SymPy expression)."""
    sched = opt.schedule
    if sched.constant:
        return lambda t: opt.lr
    import sympy as sp

    from symnn.train.schedules import ETA0, T

    hs = sched.hypers()
    f = sp.lambdify([T, ETA0] + [h.symbol for h in hs],
                    sp.sympify(sched.expr()).doit(), modules="math")
    vals = [h.value for h in hs]
    return lambda t: float(f(max(t, 1), opt.lr, *vals))


def _python_epoch(model, upd, bufs, cur, X, Y, perm, bs, lam, S, scal, bounds, gnorm):
    """The epoch kernel's loop in Python, around ``model.loss_and_grad``."""
    n = perm.shape[0]
    total, steps = 0.0, 0
    for start in range(0, n, bs):
        idx = perm[start:start + bs]
        L, g = model.loss_and_grad(bufs[cur], X[idx], Y[idx])
        if not math.isfinite(L):
            return total, steps, 1, 1 - cur
        g = np.ascontiguousarray(g, dtype=bufs.dtype)
        for a in range(len(bounds) - 1):
            gnorm[a] += float(np.linalg.norm(g[bounds[a]:bounds[a + 1]]))
        upd.fn(bufs[cur], g, lam, S, scal, upd.hp, bufs[1 - cur])
        cur = 1 - cur
        total += float(L) * len(idx)
        steps += 1
    return total, steps, 0, cur


def _first_order(s: Session, opt, theta: np.ndarray, batch_size: int | None, shuffle: bool,
                 rng: np.random.Generator, engine: str) -> FitResult:
    from symnn.train import epoch_kernel as ek_mod

    model = s.model
    dt = np.dtype(model.dtype)
    P = model.n_params
    n = s.X.shape[0]
    bs = n if batch_size is None else max(1, min(int(batch_size), n))
    lam = decay_vector(model, opt)
    upd = ek_mod.compile_update(opt, dt)
    S, scal = upd.init_state(P)
    bufs = np.empty((2, P), dt)
    bufs[0] = theta
    bufs[1] = theta
    cur = 0
    if engine == "kernel" and not _has_kernel(model):
        raise ValueError("fit: engine='kernel' needs a compiled model whose loss_and_grad is "
                         "its Numba kernel; use engine='python' (or 'auto') for this model")
    use_kernel = engine == "kernel" or (engine == "auto" and _has_kernel(model))
    kernel = ek_mod.compile_epoch(model, opt) if use_kernel else None
    work = np.empty(max(ek_mod.work_size(model, bs), 1) if use_kernel else 1, dt)
    lr_at = _lr_function(opt)
    s.start(bufs[cur])
    for epoch in range(1, s.epochs + 1):
        t0 = time.perf_counter()
        perm = rng.permutation(n) if shuffle else np.arange(n)
        gn = np.zeros(len(s.names), np.float64)
        if kernel is not None:
            total, steps, status, cur = kernel.run(bufs, cur, s.X, s.Y, perm, bs, lam, S,
                                                   scal, upd.hp, s.bounds, gn, work)
        else:
            total, steps, status, cur = _python_epoch(model, upd, bufs, cur, s.X, s.Y, perm,
                                                      bs, lam, S, scal, s.bounds, gn)
        if status != ek_mod.STATUS_OK:
            raise s.diverged(epoch, s.steps + steps, bufs[cur], "mini-batch loss",
                             "not finite (NaN or ±inf)")
        norms = {name: float(gn[a] / max(steps, 1)) for a, name in enumerate(s.names)}
        stop = s.end_epoch(epoch, bufs[cur], total / n, norms, steps, t0,
                           fallback=bufs[1 - cur], lr=lr_at(int(scal[0])))
        if stop:
            break
    return s.result(bufs[cur])


# ------------------------------------------------------------------------------------------
# fit
# ------------------------------------------------------------------------------------------


def fit(model, X, y, optimizer: Any = "adam", *, epochs: int = 100,
        batch_size: int | None = 32, seed: int = 0, theta0=None,
        validation: "tuple | float | None" = None, early_stopping: int | None = None,
        min_delta: float = 0.0, restore_best: bool = True, check_every: int | None = None,
        callbacks: Sequence[Callable[[EpochInfo], Any]] = (), progress: bool | None = None,
        shuffle: bool = True, engine: str = "auto") -> FitResult:
    """Train ``model`` on ``(X, y)``.

    Parameters
    ----------
    model : CompiledModel or Network/Model
        A declared network is compiled first (float64).
    X : array, shape (n, n_inputs)
    y : array, shape (n, n_outputs), or (n,) (one output, or integer class labels for
        cross-entropy losses)
    optimizer : Optimizer, SecondOrder or str
        ``Adam(lr=1e-3)``, ``LBFGS()``, …, or a name for :func:`get_optimizer`.
    epochs : int
        Epochs (first-order) or iterations (second-order) at most.
    batch_size : int or None
        Mini-batch size of first-order methods (None: the whole training set).
        Second-order methods always use the whole training set.
    seed : int
        Seeds the shuffles, the validation split, the checks and ``model.init`` when
        ``theta0`` is None.
    theta0 : array, shape (P,), optional
        Starting parameters (default ``model.init(seed)``).
    validation : (X_val, y_val) or float, optional
        Validation data, or the fraction of ``(X, y)`` held out (seeded random split).
    early_stopping : int, optional
        Patience: stop after this many epochs without an improvement greater than
        ``min_delta`` of the validation loss (the training loss without validation data);
        with ``restore_best`` the best epoch's parameters are returned.
    check_every : int, optional
        Check the gradient (and, for second-order methods, Hessian-vector products)
        against finite differences before training and after every k-th epoch.
    callbacks : sequence of callables
        Each is called as ``cb(info: EpochInfo)`` after every epoch; returning True stops
        training (``stop_reason="callback"``).
    progress : bool or None
        Show a progress line on stderr: None (default) only when stderr is a terminal and
        the run lasts more than a second; False never; True always.
    shuffle : bool
        Reshuffle the samples every epoch (first-order).
    engine : {"auto", "kernel", "python"}
        First-order: the compiled epoch kernel (``auto`` when the model has one) or a
        Python loop around ``model.loss_and_grad``.

    Returns
    -------
    FitResult

    Raises
    ------
    DataError
        NaN/inf or invalid values in the data or ``theta0``, before training.
    TrainingError
        The loss diverged, or a check failed; ``err.params`` and ``err.history`` keep the
        last good parameters and the history.
    """
    from symnn.train.optimizers import Optimizer, get_optimizer
    from symnn.train.second_order import SecondOrder

    model = _as_model(model)
    opt = get_optimizer(optimizer)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"fit: epochs must be an integer ≥ 1, got {epochs!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"fit: batch_size must be an integer ≥ 1 or None, got {batch_size!r}")
    if check_every is not None and (isinstance(check_every, bool) or check_every < 1):
        raise ValueError(f"fit: check_every must be an integer ≥ 1 or None, got "
                         f"{check_every!r}")
    if early_stopping is not None and (isinstance(early_stopping, bool) or early_stopping < 1):
        raise ValueError(f"fit: early_stopping (patience) must be an integer ≥ 1 or None, got "
                         f"{early_stopping!r}")
    if engine not in ("auto", "kernel", "python"):
        raise ValueError(f"fit: engine must be 'auto', 'kernel' or 'python', got {engine!r}")
    Xa, Ya = prepare_data(model, X, y)
    rng = np.random.default_rng(seed)
    Xv = Yv = None
    if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
        frac = float(validation)
        n = Xa.shape[0]
        nv = int(round(frac * n))
        if not 0.0 < frac < 1.0 or nv < 1 or n - nv < 1:
            raise DataError(f"fit: validation={validation!r} must be a fraction in (0, 1) that "
                            f"leaves at least one sample on each side of {n}")
        idx = rng.permutation(n)
        Xv, Yv = Xa[idx[:nv]], Ya[idx[:nv]]
        Xa, Ya = Xa[np.sort(idx[nv:])], Ya[np.sort(idx[nv:])]
    elif validation is not None:
        try:
            Xv_in, yv_in = validation
        except (TypeError, ValueError) as err:
            raise DataError("fit: validation must be (X_val, y_val) or a fraction") from err
        Xv, Yv = prepare_data(model, Xv_in, yv_in, what="validation ")
    if theta0 is None:
        theta = np.asarray(model.init(seed), dtype=model.dtype)
    else:
        theta = np.asarray(theta0)
        if theta.ndim != 1 or theta.shape[0] != model.n_params:
            raise ShapeError(f"fit: theta0 has shape {theta.shape}; expected "
                             f"({model.n_params},)")
        if theta.dtype.kind not in "fiu" or not np.all(np.isfinite(theta)):
            raise DataError("fit: theta0 contains NaN or ±inf (or is not numeric)")
        theta = np.array(theta, dtype=model.dtype)
    session = Session(model, opt, Xa, Ya, Xv, Yv, epochs=int(epochs), check_every=check_every,
                      callbacks=callbacks, progress=progress, early_stopping=early_stopping,
                      min_delta=min_delta, restore_best=restore_best, seed=seed)
    try:
        if isinstance(opt, Optimizer):
            return _first_order(session, opt, theta, batch_size, shuffle, rng, engine)
        if isinstance(opt, SecondOrder):
            return opt.run(session, theta)
        raise TypeError(f"fit: unsupported optimizer {opt!r}")  # pragma: no cover
    finally:
        session.progress.close()

