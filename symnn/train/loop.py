"""The training loop: :func:`fit`.

``fit(model, X, y, optimizer=…)`` trains a compiled model and returns a :class:`FitResult`
with the parameters and the :class:`~symnn.train.history.History`.

First-order optimizers (:mod:`symnn.train.optimizers`) run whole epochs inside one
compiled call (:mod:`symnn.train.first_order`, :mod:`symnn.train.epoch_kernel`): the
seeded shuffle is drawn in Python, then the mini-batch loop — gather, forward, backward,
update — is Numba code calling the model's own loss-and-gradient kernel.  When the model's
``loss_and_grad`` is not its compiled kernel (a
:class:`~symnn.codegen.model.ReferenceModel`, a wrapper, a method replaced on the
instance) the same loop runs in Python around ``model.loss_and_grad`` and the same
compiled update, so what is trained is always what ``model.loss_and_grad`` says.
Second-order optimizers (:mod:`symnn.train.second_order`) take full-batch iterations; the
history then has one record per iteration.  Both report to one
:class:`~symnn.train.session.Session` after each epoch or iteration.

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
  every parameter (at most :data:`~symnn.train.session.CHECK_BLOCKS` = 64 probes), on a
  fixed subset of at most :data:`~symnn.train.session.CHECK_SAMPLES` = 32 training
  samples; second-order methods also check their products (:func:`symnn.hesscheck` of
  ``model.hvp`` for Newton and Newton-CG; :func:`symnn.gnvcheck` of ``model.gnvp`` for
  Levenberg–Marquardt).  float32 models are not checked by default: at float32's step
  (≈ 5e-3) and rounding (≈ 1e-4·|L|) central differences straddle ReLU kinks too often to
  tell a wrong rule from a kink (random float32 ReLU networks failed correct-gradient
  checks in about 1 case in 10); compile the model in float64 to check it, or ask with
  ``check_every=k`` (random directions after every k-th epoch, and before training).  On
  the digits fit of ``examples/digits.py`` (64-128-128-10 tanh/softmax, 26 122 parameters,
  Adam, 60 epochs of 1 347 samples at batch 32, warm kernels, one BLAS thread) the check
  took 0.015 s of a 0.34 s fit: about 4.5 % (``python benchmarks/check_power.py
  --fit-cost``); less when the fit compiles its kernels.  ``check_every=k`` repeats a
  directional check after every k-th epoch; ``check_every=0`` turns every check off.  A
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

import difflib
import math
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from symnn.errors import ArgumentError, DataError, ShapeError
from symnn.train import dropout, first_order
from symnn.train.optimizers import Optimizer, get_optimizer
from symnn.train.second_order import SecondOrder
from symnn.train.session import (
    EpochInfo,
    FitResult,
    Session,
    TrainingCheckError,
    TrainingInterrupted,
)

__all__ = ["fit", "FitResult", "EpochInfo", "TrainingCheckError", "TrainingInterrupted",
           "FitOptions", "BatchGradient", "initial_params", "validation_split",
           "validation_data", "run_training", "prepare_data"]


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
    from symnn.codegen import _validate as V  # imports Numba: not on `import symnn.train`

    dt = np.dtype(model.dtype)
    xn, yn = (f"{what}X", f"{what}y") if what else ("X", "y")
    shape = getattr(model, "input_shape", None)  # (channels, length) before a Conv1D
    if shape is None or int(np.prod(shape)) != model.n_inputs:  # (a wrapper's own width)
        shape = model.n_inputs
    Xa = V.as_inputs(X, shape, dt, xn)
    loss = model.declared.loss
    Ya = V.as_targets(y, Xa.shape[0], model.n_outputs, dt, bool(loss.probabilities),
                      loss.name, yn)
    # writeable, C-ordered copies where needed (kernels are compiled for writeable arrays)
    return (np.require(Xa, requirements=["C", "W"]), np.require(Ya, requirements=["C", "W"]))


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
# fit
# ------------------------------------------------------------------------------------------


def fit(model, X, y, optimizer: Any = "adam", *, epochs: int = 100,
        batch_size: int | None = 32, seed: int = 0, theta0=None,
        validation: "tuple | float | None" = None, early_stopping: int | None = None,
        min_delta: float = 0.0, restore_best: bool = True, check_every: int | None = None,
        callbacks: Sequence[Callable[[EpochInfo], Any]] = (), progress: bool | None = None,
        shuffle: bool = True, engine: str = "auto", client: Any = None) -> FitResult:
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
    client : distributed.Client, optional
        Train over the workers of a Dask cluster, the same steps up to rounding
        (:func:`symnn.distributed.fit`, ``docs/distributed.md``).

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
    model, opt = _as_model(model), get_optimizer(optimizer)
    settings = FitOptions(epochs, batch_size, seed, early_stopping, min_delta, restore_best,
                          check_every, callbacks, progress, shuffle, engine).checked()
    return _train(model, opt, X, y, validation, theta0, settings, client)


@dataclass(frozen=True)
class FitOptions:
    """:func:`fit`'s options (same names, same defaults); :meth:`checked` returns them
    validated and normalised.  Used by :func:`run_training` (and so by
    :mod:`symnn.distributed`) to train with exactly :func:`fit`'s rules.

    Examples
    --------
    >>> FitOptions(epochs=3, batch_size=None).checked().epochs
    3
    >>> FitOptions(epochs=2.0).checked()
    Traceback (most recent call last):
    ...
    symnn.errors.ArgumentError: fit: epochs must be an integer ≥ 1, got 2.0 (did you mean 2?)
    """

    epochs: Any = 100
    batch_size: Any = 32
    seed: Any = 0
    early_stopping: Any = None
    min_delta: Any = 0.0
    restore_best: Any = True
    check_every: Any = None
    callbacks: Any = ()
    progress: Any = None
    shuffle: Any = True
    engine: Any = "auto"

    def checked(self) -> "FitOptions":
        """The options as ints, bools and a list of callbacks; ArgumentError names the
        first that is wrong."""
        epochs = _integer("epochs", self.epochs, 1)
        if epochs > MAX_EPOCHS:  # walk 7: epochs=10**30 filled 21 GB with history records
            raise ArgumentError(
                f"fit: epochs={epochs} exceeds symnn's limit of {MAX_EPOCHS:,} "
                "(symnn.train.loop.MAX_EPOCHS): the history keeps a record of every epoch; "
                "to train until the loss stops improving, give early_stopping=PATIENCE")
        batch_size = _integer("batch_size", self.batch_size, 1, allow_none=True)
        check_every = _integer("check_every", self.check_every, 0, allow_none=True)
        early_stopping = _integer("early_stopping (patience)", self.early_stopping, 1,
                                  allow_none=True)
        seed = _integer("seed", self.seed, 0)
        min_delta = self.min_delta
        if (isinstance(min_delta, bool) or not isinstance(min_delta, (int, float, np.floating,
                                                                       np.integer))
                or not math.isfinite(min_delta) or min_delta < 0):
            raise ArgumentError(f"fit: min_delta must be a finite number ≥ 0, got "
                                f"{min_delta!r}")
        for name, value in (("restore_best", self.restore_best), ("shuffle", self.shuffle)):
            if not isinstance(value, (bool, np.bool_)):
                raise ArgumentError(f"fit: {name} must be True or False, got {value!r}")
        if self.progress is not None and not isinstance(self.progress, (bool, np.bool_)):
            raise ArgumentError(f"fit: progress must be True, False or None, got "
                                f"{self.progress!r}")
        if self.engine not in ("auto", "kernel", "python"):
            raise ArgumentError(f"fit: engine must be 'auto', 'kernel' or 'python', got "
                                f"{self.engine!r}")
        return replace(self, epochs=int(epochs), batch_size=batch_size,
                       check_every=check_every, early_stopping=early_stopping, seed=seed,
                       min_delta=float(min_delta), restore_best=bool(self.restore_best),
                       shuffle=bool(self.shuffle), callbacks=_callbacks(self.callbacks))


def _callbacks(callbacks) -> list[Callable]:
    """``callbacks`` as a list of callables (one callable alone is accepted)."""
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
    return callbacks


_Settings = FitOptions  # the former private name


class BatchGradient(Protocol):
    """Mini-batch gradients computed elsewhere (e.g. summed over Dask workers by
    :mod:`symnn.distributed`), for :func:`run_training`.

    ``n_samples`` is the number of training samples; ``grad(theta, rows)`` returns
    ``(L, ∇L)`` of the mini-batch made of training samples ``rows`` (int64 indices in
    ``range(n_samples)``, in the order of the epoch's shuffle) — what
    ``model.loss_and_grad(theta, X[rows], Y[rows])`` returns in one process.
    """

    n_samples: int

    def __call__(self, theta: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]:
        ...  # pragma: no cover - a protocol


def run_training(model, opt, X, Y, Xv, Yv, theta: np.ndarray, options: FitOptions,
                 rng: np.random.Generator, rows: BatchGradient | None = None) -> FitResult:
    """:func:`fit` after its data are prepared: the session, the optimizer, Ctrl-C.

    ``X, Y`` (from :func:`prepare_data`) are the training data — or, with ``rows``, a
    sample of them that the finite-difference checks use, while ``rows`` computes every
    mini-batch's loss and gradient.  ``Xv, Yv``: validation data or None.  ``theta``
    from :func:`initial_params`; ``options`` checked (:meth:`FitOptions.checked`);
    ``rng`` the generator of the shuffles (seeded with ``options.seed``, after the
    validation split drew from it — :func:`fit`'s order).  A second-order ``opt`` runs
    full batch on ``model`` (pass a model whose methods compute over the whole data).

    Examples
    --------
    >>> import numpy as np, symnn
    >>> from symnn.train import SGD
    >>> model = symnn.mlp([2, 1]).compile()
    >>> X = np.arange(8.0).reshape(4, 2); Y = X[:, :1] - X[:, 1:]
    >>> opts = FitOptions(epochs=2, batch_size=2, progress=False, check_every=0).checked()
    >>> theta = initial_params(model, None, 0)
    >>> a = run_training(model, SGD(lr=0.01), X, Y, None, None, theta, opts,
    ...                  np.random.default_rng(0))
    >>> b = fit(model, X, Y, SGD(lr=0.01), epochs=2, batch_size=2, progress=False,
    ...         check_every=0)
    >>> bool(np.array_equal(a.params, b.params))
    True
    """
    dropout.check_optimizer(model, opt, isinstance(opt, SecondOrder))  # (Dropout networks)
    if rows is not None and dropout.has_dropout(model):
        raise ArgumentError("fit over workers: a network with Dropout trains in one process "
                            "(a mask per mini-batch is not drawn across the shards yet); "
                            "remove client= or the Dropout layers")
    session = Session(model, opt, X, Y, Xv, Yv, epochs=options.epochs,
                      check_every=options.check_every, callbacks=options.callbacks,
                      progress=_Progress(options.progress, options.epochs),
                      early_stopping=options.early_stopping, min_delta=options.min_delta,
                      restore_best=options.restore_best, seed=options.seed, theta=theta)
    try:
        if isinstance(opt, Optimizer):
            return first_order.run(session, opt, theta, options.batch_size, options.shuffle,
                                   rng, options.engine, rows=rows)
        if isinstance(opt, SecondOrder):
            return opt.run(session, theta)
        raise ArgumentError(f"fit: unsupported optimizer {opt!r}")  # pragma: no cover
    except KeyboardInterrupt as err:
        if isinstance(err, TrainingInterrupted):
            raise
        raise session.interrupted() from None
    finally:
        session.progress.close()


def _train(model, opt, X, y, validation, theta0, settings: FitOptions,
           client=None) -> FitResult:
    """:func:`fit` after its options are checked: the data, the session, the optimizer."""
    if client is not None:  # symnn.distributed (a later stage) trains over the shards
        from symnn._later import later

        return later("fit_over_workers")(model, X, y, opt, client=client,
                                         validation=validation, theta0=theta0,
                                         options=settings)
    Xa, Ya = prepare_data(model, X, y)
    rng = np.random.default_rng(settings.seed)  # the validation split, then the shuffles
    Xa, Ya, Xv, Yv = validation_data(model, Xa, Ya, validation, rng)
    theta = initial_params(model, theta0, settings.seed)
    return run_training(model, opt, Xa, Ya, Xv, Yv, theta, settings, rng)


def validation_split(n: int, fraction: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held)``: the sample indices :func:`fit` trains on (sorted) and holds out
    for ``validation=fraction`` (one permutation drawn from ``rng``).

    Examples
    --------
    >>> kept, held = validation_split(5, 0.4, np.random.default_rng(0))
    >>> kept.tolist(), held.tolist()
    ([0, 1, 3], [2, 4])
    """
    frac = float(fraction)
    nv = int(round(frac * n))
    if not 0.0 < frac < 1.0 or nv < 1 or n - nv < 1:
        raise DataError(f"fit: validation={fraction!r} must be a fraction in (0, 1) that "
                        f"leaves at least one sample on each side of {n}")
    idx = rng.permutation(n)
    return np.sort(idx[nv:]), idx[:nv]


def validation_data(model, Xa, Ya, validation, rng: np.random.Generator):
    """``(X, Y, X_val, Y_val)`` as :func:`fit` trains and validates on: ``validation`` is
    ``(X_val, y_val)``, a fraction of the samples held out (:func:`validation_split`,
    drawing from ``rng``), or None (``X_val = Y_val = None``).  ``Xa, Ya`` from
    :func:`prepare_data`."""
    if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
        kept, held = validation_split(Xa.shape[0], validation, rng)
        return Xa[kept], Ya[kept], Xa[held], Ya[held]
    if validation is None:
        return Xa, Ya, None, None
    try:
        Xv_in, yv_in = validation
    except (TypeError, ValueError) as err:
        raise DataError("fit: validation must be (X_val, y_val) or a fraction") from err
    Xv, Yv = prepare_data(model, Xv_in, yv_in, what="validation ")
    return Xa, Ya, Xv, Yv


def initial_params(model, theta0, seed: int) -> np.ndarray:
    """``theta0`` checked and converted to the model's dtype, or ``model.init(seed)``
    (what :func:`fit` starts from).

    Examples
    --------
    >>> import symnn
    >>> initial_params(symnn.mlp([2, 1]).compile(), [1, 2, 3], 0).tolist()
    [1.0, 2.0, 3.0]
    """
    if theta0 is None:
        return np.asarray(model.init(seed), dtype=model.dtype)
    theta = np.asarray(theta0)
    if theta.ndim != 1 or theta.shape[0] != model.n_params:
        raise ShapeError(f"fit: theta0 has shape {theta.shape}; expected "
                         f"({model.n_params},)")
    if theta.dtype.kind not in "fiu" or not np.all(np.isfinite(theta)):
        raise DataError("fit: theta0 contains NaN or ±inf (or is not numeric)")
    return np.array(theta, dtype=model.dtype)


_initial_params = initial_params  # the former private name


#: Most epochs :func:`fit` runs (walk 7): each leaves a record in the history (about
#: 0.6 KB), so 10⁷ epochs hold ~6 GB; the command line has the same limit.
MAX_EPOCHS = 10_000_000

#: :func:`fit`'s keyword options (walk 7: ``model.fit(X, y, "adam", lr=0.1)`` said only
#: "unexpected keyword argument").
FIT_OPTIONS = ("epochs", "batch_size", "seed", "theta0", "validation", "early_stopping",
               "min_delta", "restore_best", "check_every", "callbacks", "progress",
               "shuffle", "engine", "client")


def check_option_names(options) -> None:
    """Refuse an option :func:`fit` does not take, with what to write instead.

    Examples
    --------
    >>> check_option_names({"lr": 0.1})
    Traceback (most recent call last):
    ...
    symnn.errors.ArgumentError: fit: unknown option 'lr'; the learning rate belongs to ...
    """
    for name in options:
        if name in FIT_OPTIONS:
            continue
        if name in ("lr", "learning_rate"):
            hint = (f"the learning rate belongs to the optimizer: fit(X, y, "
                    f"symnn.Adam(lr={options[name]!r})) (every optimizer class takes lr=)")
        else:
            close = difflib.get_close_matches(str(name), FIT_OPTIONS, 1)
            hint = f"did you mean {close[0]!r}?" if close else ""
        raise ArgumentError(f"fit: unknown option {name!r}; {hint + '; ' if hint else ''}"
                            f"fit's options: {', '.join(FIT_OPTIONS)}")


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

