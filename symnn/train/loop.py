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
* **by default** the compiled gradient is cross-checked before training:
  :func:`symnn.gradcheck` compares ``model.loss_and_grad`` with central differences of
  ``model.loss`` along 4 random directions and along blocked coordinate probes that cover
  every parameter (at most :data:`CHECK_BLOCKS` = 64 probes), on a fixed subset of at
  most :data:`CHECK_SAMPLES` = 32 training samples; second-order methods also check their
  products (:func:`symnn.hesscheck` of ``model.hvp`` for Newton and Newton-CG;
  :func:`symnn.gnvcheck` of ``model.gnvp`` for Levenberg–Marquardt).  float32 models are
  not checked by default: at float32's step (≈ 5e-3) and rounding (≈ 1e-4·|L|) central
  differences straddle ReLU kinks too often to tell a wrong rule from a kink (random
  float32 ReLU networks failed correct-gradient checks in about 1 case in 10); compile
  the model in float64 to check it, or ask with ``check_every=k`` (random directions
  after every k-th epoch, and before training).  On the digits fit of
  ``examples/digits.py`` (64-128-128-10 tanh/softmax, 26 122 parameters, Adam, 60 epochs
  of 1 347 samples at batch 32, warm kernels, one BLAS thread) the check took 0.015 s of a
  0.34 s fit: about 4.5 % (``python benchmarks/check_power.py --fit-cost``); less when the
  fit compiles its kernels.  ``check_every=k`` repeats a directional check after every
  k-th epoch; ``check_every=0`` turns every check off.  A
  failed check raises :class:`TrainingCheckError` (a :class:`~symnn.errors.TrainingError`
  and a :class:`~symnn.errors.CheckError`) that names the worst parameter, with
  ``err.params`` = the parameters of the last check that passed and ``err.report`` the
  failed report;
* **Ctrl-C** (``KeyboardInterrupt``) during training raises :class:`TrainingInterrupted`
  — a :class:`~symnn.errors.TrainingError` *and* a ``KeyboardInterrupt``, so an
  uncaught Ctrl-C still ends the program — carrying ``err.params`` (the parameters after
  the last completed epoch), ``err.history`` and ``err.result`` (a :class:`FitResult`
  with ``stop_reason="interrupted"``, ready to save).

Progress goes through ``tqdm.auto`` when tqdm is installed: a widget in Jupyter, a bar
with rate and ETA on a terminal, and plain lines (no carriage returns) when stderr is not
a terminal.  The reason training stopped is in ``result.stop_reason`` /
``result.stop_message`` and ``history.stop_reason`` / ``history.stop_message``, and is
printed at the end of the progress output.

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

from symnn.declare.layers import param_roles
from symnn.errors import ArgumentError, CheckError, DataError, ShapeError, TrainingError
from symnn.train.history import History

__all__ = ["fit", "FitResult", "EpochInfo", "TrainingCheckError", "TrainingInterrupted"]

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
# data
# ------------------------------------------------------------------------------------------


def _as_model(model):
    if hasattr(model, "loss_and_grad") and hasattr(model, "n_params"):
        return model
    if hasattr(model, "compile") and hasattr(model, "param_shapes"):
        return model.compile()
    raise ArgumentError(f"fit: expected a compiled model (net.compile()) or a network, got "
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
    roles = param_roles(model.declared)
    for a, name in enumerate(names):
        if getattr(opt, "decay", "all") == "all" or roles.get(name) != "bias":
            lam[bounds[a]:bounds[a + 1]] = wd
    return lam


def _array_norms(g: np.ndarray, names, bounds) -> dict[str, float]:
    return {n: float(np.linalg.norm(g[bounds[a]:bounds[a + 1]])) for a, n in enumerate(names)}


# ------------------------------------------------------------------------------------------
# progress
# ------------------------------------------------------------------------------------------


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where ``tqdm.auto`` shows a widget)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - a broken IPython install
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _Progress:
    """Progress of a fit on stderr.

    * in Jupyter, or on a terminal: ``tqdm.auto`` — a widget, or a bar with rate and ETA
      (a carriage-return line of our own when tqdm is not installed);
    * elsewhere (a log file, a pipe) with ``progress=True``: plain lines, one at the first
      epoch, every tenth of the run and the last, never a carriage return.

    With ``progress=None`` it shows only in Jupyter (at once) or on a terminal (once the
    run has lasted ``delay`` seconds).  :meth:`close` prints why training stopped.
    """

    def __init__(self, enabled: bool | None, total: int, stream=None, delay: float = 1.0):
        self.stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        notebook = _in_notebook()
        asked = enabled is True
        if enabled is None:
            enabled = tty or notebook
        self.enabled = bool(enabled)
        self.total = total
        self.start = time.perf_counter()
        self.delay = 0.0 if asked or notebook else delay
        self.last = 0.0
        self.shown = False
        self.every = max(1, total // 10)
        self.bar = None
        self.mode = "off"
        if not self.enabled:
            return
        if tty or notebook:
            widget = notebook
            try:
                if notebook:
                    import ipywidgets  # noqa: F401  (tqdm's widget needs it)
                from tqdm.auto import tqdm
            except ImportError:
                widget = False
                try:  # a text bar, in a terminal or a notebook without ipywidgets
                    from tqdm.std import tqdm
                except ImportError:
                    tqdm = None
            if tqdm is not None:
                kw = {} if widget else {"file": self.stream, "dynamic_ncols": True}
                self.bar = tqdm(total=total, unit="epoch", delay=self.delay, leave=True, **kw)
                self.mode = "tqdm"
            else:
                self.mode = "line" if tty else "lines"
        else:
            self.mode = "lines"

    @staticmethod
    def _values(rec: dict) -> str:
        val = "" if rec.get("val_loss") is None else f"  val_loss {rec['val_loss']:.5g}"
        return f"loss {rec['loss']:.5g}{val}"

    def update(self, epoch: int, rec: dict) -> None:
        if self.mode == "off":
            return
        now = time.perf_counter()
        if self.mode == "tqdm":
            self.bar.set_postfix_str(self._values(rec), refresh=False)
            self.bar.update(max(epoch - self.bar.n, 0))
            return
        if self.mode == "lines":
            if epoch == 1 or epoch % self.every == 0 or epoch >= self.total:
                self.stream.write(f"epoch {epoch}/{self.total}  {self._values(rec)}  "
                                  f"{now - self.start:.1f}s\n")
                self.stream.flush()
                self.shown = True
            return
        # a terminal without tqdm: one line rewritten in place
        if now - self.start < self.delay or (now - self.last < 0.1 and epoch < self.total):
            return
        self.last = now
        width = 24
        done = int(width * epoch / max(self.total, 1))
        bar = "█" * done + "·" * (width - done)
        self.stream.write(f"\r{bar} epoch {epoch}/{self.total}  {self._values(rec)}"
                          f"  {now - self.start:.1f}s ")
        self.stream.flush()
        self.shown = True

    def close(self, message: str = "") -> None:
        if self.mode == "off":
            return
        if self.bar is not None:
            shown = time.perf_counter() - self.start >= self.delay  # tqdm's own delay
            self.bar.close()
            self.bar = None
            self.shown = self.shown or shown
        elif self.mode == "line" and self.shown:
            self.stream.write("\n")
        if message and (self.shown or self.delay == 0.0):
            self.stream.write(message + "\n")
        self.stream.flush()
        self.mode = "off"


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
                 seed: int, theta: np.ndarray | None = None) -> None:
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
        self.stop_message = ""
        self.stop_epoch: int | None = None
        self.steps = 0
        self.good: np.ndarray | None = None  # parameters of the last passing check
        self.good_epoch = 0
        # the parameters after the last completed epoch (kept for Ctrl-C)
        self.last: np.ndarray | None = None if theta is None else np.array(theta, copy=True)
        self.last_epoch = 0
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
        from symnn.check import gnvcheck, gradcheck, hesscheck

        model = self.model
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
        raise ArgumentError("fit: engine='kernel' needs a compiled model whose loss_and_grad "
                            "is its Numba kernel; use engine='python' (or 'auto') for this "
                            "model")
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
            if getattr(model, "debug", False):
                work.fill(np.nan)  # poisoned, as the model's own kernels are in debug mode
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
        None (default): check the gradient (and, for second-order methods, the
        Hessian-vector or Gauss-Newton products) against finite differences before
        training — every parameter is probed (:func:`symnn.gradcheck`), on at most 32
        samples, at a cost of about 4.5 % of the warm digits fit (see the module docs);
        float64 models only.  k ≥ 1: a directional check before training and after every
        k-th epoch (float32 too); 0: no checks.
    callbacks : sequence of callables
        Each is called as ``cb(info: EpochInfo)`` after every epoch; returning True stops
        training (``stop_reason="callback"``).
    progress : bool or None
        Show progress on stderr (``tqdm.auto``: a Jupyter widget, or a bar with rate and
        ETA on a terminal; plain lines without carriage returns elsewhere) and the reason
        training stopped: None (default) in Jupyter or on a terminal once the run lasts
        more than a second; False never; True always.
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
        The loss diverged, or a check failed (:class:`TrainingCheckError`, also a
        :class:`~symnn.errors.CheckError`); ``err.params`` and ``err.history`` keep the
        last good parameters and the history.
    TrainingInterrupted
        Ctrl-C: a ``KeyboardInterrupt`` carrying ``err.params`` (after the last completed
        epoch), ``err.history`` and ``err.result``.
    ArgumentError
        An option of the wrong type or out of range (``batch_size=2.5``, ``epochs=-1``).
    """
    from symnn.train.optimizers import Optimizer, get_optimizer
    from symnn.train.second_order import SecondOrder

    model = _as_model(model)
    opt = get_optimizer(optimizer)
    epochs = _integer("epochs", epochs, 1)
    batch_size = _integer("batch_size", batch_size, 1, allow_none=True)
    check_every = _integer("check_every", check_every, 0, allow_none=True)
    early_stopping = _integer("early_stopping (patience)", early_stopping, 1, allow_none=True)
    seed = _integer("seed", seed, 0)
    if (isinstance(min_delta, bool) or not isinstance(min_delta, (int, float, np.floating,
                                                                   np.integer))
            or not math.isfinite(min_delta) or min_delta < 0):
        raise ArgumentError(f"fit: min_delta must be a finite number ≥ 0, got {min_delta!r}")
    for name, value in (("restore_best", restore_best), ("shuffle", shuffle)):
        if not isinstance(value, (bool, np.bool_)):
            raise ArgumentError(f"fit: {name} must be True or False, got {value!r}")
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise ArgumentError(f"fit: progress must be True, False or None, got {progress!r}")
    if engine not in ("auto", "kernel", "python"):
        raise ArgumentError(f"fit: engine must be 'auto', 'kernel' or 'python', got "
                            f"{engine!r}")
    if callable(callbacks):
        callbacks = [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError as err:
        raise ArgumentError(f"fit: callbacks must be a sequence of callables, got "
                            f"{callbacks!r}") from err
    for cb in callbacks:
        if not callable(cb):
            raise ArgumentError(f"fit: every callback must be callable, got {cb!r}")
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
                      min_delta=float(min_delta), restore_best=bool(restore_best), seed=seed,
                      theta=theta)
    try:
        if isinstance(opt, Optimizer):
            return _first_order(session, opt, theta, batch_size, bool(shuffle), rng, engine)
        if isinstance(opt, SecondOrder):
            return opt.run(session, theta)
        raise ArgumentError(f"fit: unsupported optimizer {opt!r}")  # pragma: no cover
    except KeyboardInterrupt as err:
        if isinstance(err, TrainingInterrupted):
            raise
        raise session.interrupted() from None
    finally:
        session.progress.close()


def _integer(name: str, value, minimum: int, allow_none: bool = False):
    """``value`` as an int ≥ ``minimum`` (None passes when allowed); else ArgumentError."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        extra = " or None" if allow_none else ""
        hint = (f" (did you mean {int(value)}?)" if isinstance(value, float)
                and math.isfinite(value) and value >= minimum else "")
        raise ArgumentError(f"fit: {name} must be an integer ≥ {minimum}{extra}, got "
                            f"{value!r}{hint}")
    if value < minimum:
        raise ArgumentError(f"fit: {name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)

