"""What every optimizer's loop reports to: the training session, and what fit returns.

:class:`Session` is shared by the first-order loop (:mod:`symnn.train.first_order`) and the
second-order methods (:mod:`symnn.train.second_order`): after each epoch or iteration they
call :meth:`Session.end_epoch`, which records the history, computes the validation loss,
runs the due finite-difference checks, tracks early stopping, calls the callbacks and shows
progress.  :func:`symnn.train.fit` (:mod:`symnn.train.loop`) builds the session and returns
its :class:`FitResult`.

Examples
--------
>>> import numpy as np, symnn
>>> model = symnn.mlp([2, 1]).compile()
>>> names, bounds = param_bounds(model)
>>> names, bounds.tolist()
(['W1', 'b1'], [0, 2, 3])
>>> from symnn.train import SGD
>>> decay_vector(model, SGD(weight_decay=0.1, decay="weights")).tolist()
[0.1, 0.1, 0.0]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from symnn.check import gnvcheck, gradcheck, hesscheck
from symnn.declare.layers import param_roles
from symnn.errors import ArgumentError, CheckError, TrainingError
from symnn.train import dropout
from symnn.train.history import History

__all__ = ["Session", "FitResult", "EpochInfo", "TrainingCheckError",
           "TrainingInterrupted", "param_bounds", "decay_vector", "array_norms",
           "CHECK_SAMPLES", "CHECK_BLOCKS"]


#: Most samples used by the finite-difference checks.
CHECK_SAMPLES = 32

#: Most coordinate probes of the check before training (see :func:`symnn.gradcheck`).
CHECK_BLOCKS = 64


class TrainingCheckError(TrainingError, CheckError):
    """A finite-difference check during :func:`fit` failed.

    ``err.params`` holds the parameters of the last check that passed, ``err.history``
    the epochs completed and ``err.report`` the failed :class:`~symnn.check.CheckReport`.
    """


class TrainingInterrupted(TrainingError, KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); nothing trained is lost.

    Both a :class:`~symnn.errors.TrainingError` and a ``KeyboardInterrupt``: uncaught, it
    ends the program as Ctrl-C always does; caught, it carries

    * ``err.params`` — the parameters after the last completed epoch (iteration), or the
      initial parameters when none completed;
    * ``err.history`` — the history of the completed epochs;
    * ``err.result`` — a :class:`FitResult` with ``stop_reason="interrupted"`` (save it
      with ``symnn.save(path, model, err.result.params, history=err.result.history)``).

    Compiled (Numba) code cannot be interrupted: Ctrl-C during a compiled epoch takes
    effect when that epoch's call returns, and the parameters returned are those after
    the last *completed* epoch (the interrupted one is not recorded).

    Examples
    --------
    >>> issubclass(TrainingInterrupted, KeyboardInterrupt)
    True
    """

    def __init__(self, message: str, params=None, history=None, result=None) -> None:
        super().__init__(message, params=params, history=history)
        self.result = result


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
        ``"completed"``, ``"early_stopping"``, ``"converged"``, ``"stalled"`` (a SciPy
        method stopped without converging), ``"callback"`` or ``"interrupted"``.
    best_epoch : int or None
        The epoch whose parameters were returned under early stopping.
    steps : int
        Parameter updates made.
    stop_message : str
        Why training stopped, in words ("early stopping fired at epoch 23: …; parameters
        of epoch 20 restored", "L-BFGS converged: …").
    """

    params: np.ndarray
    history: History
    model: Any
    optimizer: Any
    stop_reason: str = "completed"
    best_epoch: int | None = None
    steps: int = 0
    stop_message: str = ""

    def predict(self, X) -> np.ndarray:
        """``model.predict(params, X)``."""
        return self.model.predict(self.params, X)

    def __repr__(self) -> str:
        return (f"FitResult({len(self.history)} epochs, {self.stop_reason}, "
                f"loss {self.history.loss[-1]:.6g})" if len(self.history)
                else f"FitResult(0 epochs, {self.stop_reason})")


# ------------------------------------------------------------------------------------------
# the parameter layout
# ------------------------------------------------------------------------------------------


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
    roles = param_roles(model.declared)
    for a, name in enumerate(names):
        if getattr(opt, "decay", "all") == "all" or roles.get(name) not in ("bias", "scale"):
            lam[bounds[a]:bounds[a + 1]] = wd
    return lam


def array_norms(g: np.ndarray, names, bounds) -> dict[str, float]:
    """The Euclidean norm of each parameter array's part of ``g``, by array name."""
    return {n: float(np.linalg.norm(g[bounds[a]:bounds[a + 1]])) for a, n in enumerate(names)}


# ------------------------------------------------------------------------------------------
# the session: history, validation, checks, early stopping, callbacks
# ------------------------------------------------------------------------------------------


class Session:
    """What every optimizer's loop reports to after each epoch or iteration.

    Optimizers call :meth:`end_epoch`; it records the history, computes the validation
    loss, runs the due checks, tracks early stopping, calls callbacks and shows progress.
    It returns True when training should stop.  ``progress`` is the display that
    :func:`~symnn.train.fit` chose: ``progress.update(epoch, record)`` after each epoch,
    ``progress.close(message)`` with the reason training stopped.
    """

    def __init__(self, model, opt, X, Y, Xv, Yv, *, epochs: int, check_every: int | None,
                 callbacks: Sequence[Callable], progress: Any,
                 early_stopping: int | None, min_delta: float, restore_best: bool,
                 seed: int, theta: np.ndarray | None = None) -> None:
        self.model = model
        self.opt = opt
        self.X, self.Y, self.Xv, self.Yv = X, Y, Xv, Yv
        self.epochs = epochs
        if check_every != 0 and _truncated(model):
            if check_every is not None:
                raise ArgumentError(
                    f"fit: check_every={check_every} compares the gradient with finite "
                    "differences of the loss, but a truncated-BPTT layer (truncate=k) trains "
                    "with a gradient that is not the loss's; pass check_every=0 (or None)")
            check_every = 0  # the truncated gradient is not the loss's: nothing to compare
        self.check_every = check_every
        self.callbacks = list(callbacks)
        self.progress = progress  # shows each epoch; closed with the reason training stopped
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
        self.stop_message = ""
        self.stop_epoch: int | None = None
        self.steps = 0
        self.good: np.ndarray | None = None  # parameters of the last passing check
        self.good_epoch = 0
        # the parameters after the last completed epoch (kept for Ctrl-C)
        self.last: np.ndarray | None = None if theta is None else np.array(theta, copy=True)
        self.last_epoch = 0
        self.seed = seed
        rng = np.random.default_rng(seed + 7919)
        n = X.shape[0]
        idx = np.sort(rng.choice(n, size=min(n, CHECK_SAMPLES), replace=False))
        self.Xc, self.Yc = X[idx], Y[idx]

    # -- checks ------------------------------------------------------------------------------
    def check(self, theta: np.ndarray, epoch: int, second_order: bool = False,
              thorough: bool = False) -> None:
        """Finite-difference checks at ``theta``; raise TrainingCheckError when one fails.

        ``thorough`` (before training): random directions and blocked coordinate probes
        covering every parameter; otherwise (every ``check_every`` epochs) random
        directions only, resolved to a parameter when they fail."""
        # with Dropout: one mask held fixed for every evaluation of this check
        model = dropout.check_model(self.model, self.seed, epoch, self.Xc.shape[0])
        # float32 differences (step ≈ 5e-3, rounding ≈ 1e-4·|L|) resolve neither single
        # components nor the kinks of ReLU networks reliably: directions only there
        exact = np.dtype(getattr(model, "dtype", np.float64)) == np.float64
        if thorough and exact:
            rep = gradcheck(model, theta, self.Xc, self.Yc, n_directions=4,
                            coordinates="auto", max_blocks=CHECK_BLOCKS, seed=epoch)
        else:
            rep = gradcheck(model, theta, self.Xc, self.Yc, n_directions=4, coordinates=0,
                            seed=epoch)
        products = (getattr(self.opt, "products", ("hvp",)) if second_order and exact
                    else ())
        if rep and "hvp" in products and hasattr(model, "hvp"):
            rep = hesscheck(model, theta, self.Xc, self.Yc, n_directions=2, seed=epoch)
        if (rep and "gnvp" in products and hasattr(model, "gnvp")
                and getattr(model, "reference", None) is not None):
            rep = gnvcheck(model, theta, self.Xc, self.Yc, n_directions=1,
                           max_blocks=32 if thorough else 1, seed=epoch)
        if not rep:
            when = "before training" if epoch == 0 else f"after epoch {epoch}"
            kept = ("the initial parameters" if self.good_epoch == 0 else
                    f"the parameters after epoch {self.good_epoch}")
            where = ""
            w = rep.worst_parameter
            if rep.kind == "gradient" and (w is None or w.kind not in ("coordinate",)):
                # directions only: check the coordinates too, to name the parameter
                loc = gradcheck(model, theta, self.Xc, self.Yc, n_directions=0,
                                coordinates="auto", max_blocks=CHECK_BLOCKS, seed=epoch)
                if not loc:
                    w = loc.worst_parameter
            if w is not None and w.kind in ("coordinate", "column", "direction"):
                name = w.label.split(" → ")[-1].split(": ")[-1]  # "v0: W1[0, 1]" → W1[0, 1]
                where = (f" The worst parameter is {name}: analytic {w.analytic:.10g}, "
                         f"finite difference {w.numeric:.10g}.")
            err = TrainingCheckError(
                f"the {rep.kind} check failed {when}: the model's derivatives disagree with "
                f"finite differences of its loss, so training stopped.{where} err.params "
                f"holds {kept}, the last to pass a check. (check_every=0 turns the checks "
                f"off.)\n{rep}",
                params=(self.good if self.good is not None else theta).copy(),
                history=self.history)
            err.report = rep
            raise err
        self.good = np.array(theta, copy=True)
        self.good_epoch = epoch

    def start(self, theta: np.ndarray, second_order: bool = False) -> None:
        """Before the first epoch: the thorough check (unless ``check_every=0``)."""
        if self.last is None:
            self.last = np.array(theta, copy=True)
        exact = np.dtype(getattr(self.model, "dtype", np.float64)) == np.float64
        if self.check_every != 0 and (exact or self.check_every is not None):
            try:
                finite = math.isfinite(float(self.model.loss(theta, self.Xc, self.Yc)))
            except (ArithmeticError, ValueError):  # pragma: no cover - a broken model
                finite = False
            if finite:  # else the loop reports the non-finite loss at the start
                self.check(theta, 0, second_order, thorough=True)

    def stop(self, reason: str, message: str) -> None:
        """Record why training stops (an optimizer converged, …)."""
        self.stop_reason = reason
        self.stop_message = message

    # -- divergence ----------------------------------------------------------------------------
    def diverged(self, epoch: int, updates: int, params: np.ndarray, what: str,
                 value: Any) -> TrainingError:
        """The error for a non-finite loss or parameter vector after ``updates`` updates."""
        lr = getattr(self.opt, "lr", None)
        hint = (f"lower the learning rate (lr={lr:g}) or clip the gradient (clip_norm=1.0)"
                if lr is not None else "add damping, or check the scale of the data")
        where = (f"after {updates} updates (epoch {epoch})" if updates
                 else "at the initial parameters")
        if not updates and "loss" in what:  # walk, round 6: no step was taken yet
            hint = self._scale_hint()
        kept = ("the initial parameters" if not updates else
                "the parameters of the last finite loss")
        return TrainingError(
            f"training diverged {where}: the {what} is {value}; {hint}. err.params holds "
            f"{kept} and err.history the epochs completed.",
            params=np.array(params, copy=True), history=self.history)

    def _scale_hint(self) -> str:
        """Advice for a loss that is not finite before any update (walk, round 6): the
        learning rate cannot have caused it, the data's scale can."""
        big = [f"|{n}| up to {m:.3g}" for n, a in (("X", self.X), ("y", self.Y))
               if a is not None and np.size(a) and (m := float(np.max(np.abs(a)))) > 1e6]
        return ("no update was made yet, so no learning rate causes this: the loss overflows "
                f"at the data's scale{' (' + ', '.join(big) + ')' if big else ''}; "
                "standardize X and y (or check the initial parameters)")

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
        self.last = np.array(theta, copy=True)  # what Ctrl-C returns from here on
        self.last_epoch = epoch
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
                what = "val_loss" if val is not None else "training loss"
                restored = (f"parameters of epoch {self.best_epoch} restored"
                            if self.restore_best and self.best_params is not None else
                            f"parameters of epoch {epoch} kept (restore_best=False)")
                self.stop("early_stopping",
                          f"early stopping fired at epoch {epoch}: no improvement of the "
                          f"{what} greater than {self.min_delta:g} for {self.patience} "
                          f"epochs (best {self.best_value:.6g} at epoch {self.best_epoch}); "
                          f"{restored}")
                stop = True
        if self.check_every and epoch % self.check_every == 0:
            self.check(theta, epoch, second_order)
        for cb in self.callbacks:
            if cb(EpochInfo(epoch, rec, np.array(theta, copy=True), self.model,
                            self.history)):
                self.stop("callback", f"a callback asked to stop at epoch {epoch}")
                stop = True
        rec["time"] = time.perf_counter() - t0
        self.progress.update(epoch, rec)
        return stop

    def _message(self) -> str:
        n = len(self.history)
        if self.stop_message:
            return self.stop_message
        if self.stop_reason == "completed":
            return f"training completed: {n} epoch{'s' if n != 1 else ''}"
        return f"training stopped ({self.stop_reason}) after {n} epochs"

    def result(self, theta: np.ndarray) -> FitResult:
        params = np.array(theta, copy=True)
        best = None
        if self.stop_reason == "early_stopping" and self.best_params is not None:
            params = self.best_params
            best = self.best_epoch
        message = self._message()
        self.history.stop_reason = self.stop_reason
        self.history.stop_message = message
        self.progress.close(message)
        return FitResult(params, self.history, self.model, self.opt, self.stop_reason, best,
                         self.steps, message)

    def interrupted(self) -> "TrainingInterrupted":
        """The error for Ctrl-C: the parameters after the last completed epoch."""
        epoch = self.last_epoch
        message = (f"training interrupted (Ctrl-C) during epoch {epoch + 1}; "
                   + (f"err.params holds the parameters after epoch {epoch}" if epoch
                      else "no epoch completed: err.params holds the initial parameters")
                   + ", err.history the completed epochs and err.result a FitResult to save")
        self.stop("interrupted", message)
        self.history.stop_reason = "interrupted"
        self.history.stop_message = message
        self.progress.close(message)
        params = np.array(self.last, copy=True) if self.last is not None else None
        result = FitResult(params, self.history, self.model, self.opt, "interrupted", None,
                           self.steps, message)
        return TrainingInterrupted(message, params=params, history=self.history,
                                   result=result)


def _truncated(model) -> bool:
    """Whether a layer of the model's network trains by truncated BPTT (``truncate=k``):
    its gradient is then not the loss's gradient, so finite differences cannot check it."""
    from symnn.declare.blocks import flat_layers

    declared = getattr(model, "declared", None)
    if declared is None or not hasattr(declared, "layers"):
        return False
    return any(getattr(layer, "truncate", None) for layer, _l, _d in flat_layers(declared))
