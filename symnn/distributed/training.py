"""Full-batch second-order training over shards: Newton-CG, L-BFGS, Newton,
Levenberg–Marquardt with every loss, gradient and product summed over the workers.

The optimizers of :mod:`symnn.train.second_order` run unchanged, inside the same
:class:`~symnn.train.session.Session` as :func:`symnn.train.fit` (history, checks, stop
rules, callbacks, early stopping).  They see a stand-in model whose ``loss``,
``loss_and_grad``, ``hvp``, ``gnvp`` and ``hessian`` compute over the shards when called
on the training data, and in this process otherwise — the finite-difference checks run
on a sample of at most 32 rows fetched from the first shard, with the plain kernels.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

from symnn.distributed import sharded as SH
from symnn.distributed._remote import _client, recipe_of
from symnn.errors import ArgumentError

__all__ = ["fit"]

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


def fit(model, sharded, optimizer: Any = "newton_cg", *, epochs: int = 100, seed: int = 0,
        theta0=None, check_every: int | None = None,
        callbacks: Sequence[Callable] = (), early_stopping: int | None = None,
        min_delta: float = 0.0, restore_best: bool = True, progress: bool | None = False):
    """Train ``model`` on sharded data with a full-batch second-order method.

    Parameters
    ----------
    model : CompiledModel
    sharded : Sharded
        From :func:`symnn.distributed.shard`.
    optimizer : SecondOrder or str
        ``NewtonCG()``, ``LBFGS()``, ``Newton()``, ``LevenbergMarquardt()`` or a name.
    epochs, seed, theta0, check_every, callbacks, early_stopping, min_delta, restore_best,
    progress
        As :func:`symnn.train.fit` (``epochs``: iterations at most).

    Returns
    -------
    FitResult
        As :func:`symnn.train.fit`; ``history.loss`` holds the full-batch losses.

    Raises
    ------
    ArgumentError
        For a first-order optimizer (mini-batch training over shards is not available).
    """
    from symnn.train.loop import _initial_params, _Progress, prepare_data
    from symnn.train.optimizers import get_optimizer
    from symnn.train.second_order import SecondOrder
    from symnn.train.session import Session

    recipe_of(model)
    opt = optimizer if isinstance(optimizer, SecondOrder) else get_optimizer(optimizer)
    if not isinstance(opt, SecondOrder):
        raise ArgumentError(f"symnn.distributed.fit: {opt!r} is a first-order (mini-batch) "
                            "optimizer; over shards only the full-batch second-order methods "
                            "run (NewtonCG, LBFGS, Newton, LevenbergMarquardt)")
    from symnn.train.dropout import check_optimizer  # (issue 13: Dropout)

    check_optimizer(model, opt, True)  # full-batch methods refuse Dropout networks
    if not isinstance(sharded, SH.Sharded):
        raise ArgumentError(f"symnn.distributed.fit: expected sharded data from "
                            f"symnn.distributed.shard(...), got {type(sharded).__name__}")
    client = _client(sharded.client)
    Xs, ys = client.submit(_head, sharded.futures[0], CHECK_ROWS, pure=False).result()
    Xs, Ys = prepare_data(model, Xs, ys)
    proxy = _stand_in(model, sharded, Xs)
    theta = _initial_params(model, theta0, seed)
    session = Session(proxy, opt, Xs, Ys, None, None, epochs=int(epochs),
                      check_every=check_every, callbacks=callbacks,
                      progress=_Progress(progress, int(epochs)),
                      early_stopping=early_stopping, min_delta=min_delta,
                      restore_best=restore_best, seed=seed, theta=theta)
    try:
        result = opt.run(session, theta)
    finally:
        session.progress.close()
    result.model = model
    return result
