"""Training over shards, inside the same session as :func:`symnn.train.fit` (history,
checks, stop rules, callbacks, early stopping, divergence handling), through
:func:`symnn.train.loop.run_training`.

* **First-order optimizers** (SGD, Adam, …): synchronous data-parallel mini-batch
  training.  The client draws the shuffles as one process does; each mini-batch's loss
  and gradient is summed over the shards that hold its rows
  (:class:`~symnn.distributed.minibatch.ShardRows`); the client makes the update.
* **Second-order methods** (Newton-CG, L-BFGS, Newton, Levenberg–Marquardt) run
  unchanged on a stand-in model whose ``loss``, ``loss_and_grad``, ``hvp``, ``gnvp`` and
  ``hessian`` compute over the shards when called on the training data, and in this
  process otherwise.

Either way the finite-difference checks run in this process on a sample of at most 32
rows fetched from the first shard, with the plain kernels, and validation losses are
computed here too (validation rows held out of sharded data are fetched once).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import numpy as np

from symnn.distributed import sharded as SH
from symnn.distributed._remote import _client, recipe_of
from symnn.distributed.minibatch import ShardRows, take_rows
from symnn.errors import ArgumentError

__all__ = ["fit", "fit_over_workers"]

#: rows of the first shard fetched for the finite-difference checks
CHECK_ROWS = 32


def _head(part, n: int):
    X, y = part
    return X[:n].copy(), y[:n].copy()


def _stand_in(model, sharded, X_train):
    """A shallow copy of ``model`` whose derivative methods run over ``sharded`` when
    given ``X_train`` (the very array object), and in this process otherwise."""
    proxy = copy.copy(model)
    proxy._buffers = {}
    over_shards = {"loss": SH.loss, "loss_and_grad": SH.loss_and_grad, "hvp": SH.hvp,
                   "gnvp": SH.gnvp, "hessian": SH.hessian}

    def method(name: str):
        local, remote = getattr(proxy, name), over_shards[name]

        def call(theta, *args):
            if len(args) >= 2 and args[-2] is X_train:
                return remote(model, theta, *args[:-2], sharded)
            return local(theta, *args)

        call.__name__ = name
        return call

    for name in over_shards:
        setattr(proxy, name, method(name))
    return proxy


def fit(model, sharded, optimizer: Any = "newton_cg", *, epochs: int = 100,
        batch_size: int | None = 32, seed: int = 0, theta0=None,
        validation: "tuple | float | None" = None, check_every: int | None = None,
        callbacks: Sequence[Callable] = (), early_stopping: int | None = None,
        min_delta: float = 0.0, restore_best: bool = True, progress: bool | None = False,
        shuffle: bool = True):
    """Train ``model`` on sharded data: mini-batch first-order, or full-batch second-order.

    Given the same data, seed and settings, the result is that of ``symnn.train.fit``
    on the unsharded data in one process, up to rounding (the tests hold the parameters
    to 1e-12 relative for mini-batch training): the same shuffles, the same mini-batches,
    the same updates, history, checks and stop rules.

    Parameters
    ----------
    model : CompiledModel
    sharded : Sharded
        From :func:`symnn.distributed.shard`.
    optimizer : Optimizer, SecondOrder or str
        ``Adam()``, ``SGD(lr=…)``, … (synchronous data-parallel mini-batch training), or
        ``NewtonCG()``, ``LBFGS()``, ``Newton()``, ``LevenbergMarquardt()`` (full batch),
        or a name.
    epochs, batch_size, seed, theta0, check_every, callbacks, early_stopping, min_delta,
    restore_best, progress, shuffle
        As :func:`symnn.train.fit` (``epochs``: iterations at most for second-order
        methods; ``batch_size`` and ``shuffle`` apply to first-order ones).
    validation : (X_val, y_val) or float, optional
        Validation data (in this process), or the fraction of the sharded samples held
        out — the same seeded split as :func:`symnn.train.fit` (first-order only; the
        held-out rows are fetched to this process once).

    Returns
    -------
    FitResult
        As :func:`symnn.train.fit`.

    Raises
    ------
    ArgumentError
        Not sharded data, an option out of range, a validation fraction with a
        second-order method.
    TrainingError
        As :func:`symnn.train.fit`: divergence (``err.params`` the last good
        parameters), a failed check.
    """
    from symnn.train.loop import FitOptions, initial_params
    from symnn.train.optimizers import get_optimizer

    recipe_of(model)
    opt = get_optimizer(optimizer)
    from symnn.train.dropout import has_dropout  # (issue 13: Dropout)

    if has_dropout(model):
        raise ArgumentError("symnn.distributed.fit: a network with Dropout trains in one "
                            "process (masks per mini-batch are not drawn across shards, and "
                            "the full-batch methods need one fixed loss); use symnn.train.fit")
    if not isinstance(sharded, SH.Sharded):
        raise ArgumentError(f"symnn.distributed.fit: expected sharded data from "
                            f"symnn.distributed.shard(...), got {type(sharded).__name__}")
    options = FitOptions(epochs=epochs, batch_size=batch_size, seed=seed,
                         early_stopping=early_stopping, min_delta=min_delta,
                         restore_best=restore_best, check_every=check_every,
                         callbacks=callbacks, progress=progress, shuffle=shuffle).checked()
    rng = np.random.default_rng(options.seed)  # the validation split, then the shuffles
    train_rows, Xv, Yv = _held_out(model, sharded, opt, validation, rng)
    theta = initial_params(model, theta0, options.seed)
    return _fit_sharded(model, sharded, opt, options, Xv, Yv, theta, rng, train_rows)


def _held_out(model, sharded, opt, validation, rng):
    """``(training rows or None, X_val, Y_val)`` of sharded data (see :func:`fit`)."""
    from symnn.train.loop import prepare_data, validation_split
    from symnn.train.second_order import SecondOrder

    if validation is None:
        return None, None, None
    if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
        if isinstance(opt, SecondOrder):
            raise ArgumentError("symnn.distributed.fit: a validation fraction of sharded data "
                                "works with first-order optimizers only; pass validation="
                                "(X_val, y_val), or shard only the training samples")
        kept, held = validation_split(sharded.n_samples, validation, rng)
        Xv, yv = take_rows(sharded, held)
        return kept, *prepare_data(model, Xv, yv, what="validation ")
    try:
        Xv, yv = validation
    except (TypeError, ValueError) as err:
        raise ArgumentError("symnn.distributed.fit: validation must be (X_val, y_val) or a "
                            "fraction") from err
    return None, *prepare_data(model, Xv, yv, what="validation ")


def fit_over_workers(model, X, y, opt, *, client, validation, theta0, options):
    """``symnn.train.fit(model, X, y, opt, client=client, …)``: the data prepared and
    split exactly as in one process, the training samples scattered once in shards (one
    per worker thread), then :func:`fit`'s training over them."""
    from symnn.train.loop import initial_params, prepare_data, validation_data

    recipe_of(model)
    Xa, Ya = prepare_data(model, X, y)
    rng = np.random.default_rng(options.seed)
    Xa, Ya, Xv, Yv = validation_data(model, Xa, Ya, validation, rng)
    theta = initial_params(model, theta0, options.seed)
    sharded = SH.shard(Xa, Ya, client, n_shards=min(_threads(client), Xa.shape[0]))
    return _fit_sharded(model, sharded, opt, options, Xv, Yv, theta, rng, None)


def _threads(client) -> int:
    return max(1, sum(_client(client).nthreads().values()))


def _fit_sharded(model, sharded, opt, options, Xv, Yv, theta, rng, train_rows):
    """:func:`symnn.train.loop.run_training` with every mini-batch gradient (first-order)
    or every full-batch value (second-order) computed over ``sharded``."""
    from symnn.train.loop import prepare_data, run_training
    from symnn.train.second_order import SecondOrder

    if options.engine == "kernel":
        raise ArgumentError("fit over Dask workers: engine='kernel' (one compiled call per "
                            "epoch) runs in one process; over workers every mini-batch "
                            "gradient is summed over the shards (leave engine='auto')")
    client = _client(sharded.client)
    Xs, ys = client.submit(_head, sharded.futures[0], CHECK_ROWS, pure=False).result()
    Xs, Ys = prepare_data(model, Xs, ys)
    if isinstance(opt, SecondOrder):
        proxy = _stand_in(model, sharded, Xs)
        result = run_training(proxy, opt, Xs, Ys, Xv, Yv, theta, options, rng)
    else:
        rows = ShardRows(model, sharded, train_rows)
        result = run_training(model, opt, Xs, Ys, Xv, Yv, theta, options, rng, rows=rows)
    result.model = model
    return result
