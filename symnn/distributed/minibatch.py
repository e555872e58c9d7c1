"""Synchronous data-parallel mini-batch gradients over shards.

The data stay where :func:`~symnn.distributed.shard` put them: shard ``s`` holds the
contiguous samples ``bounds[s] ≤ j < bounds[s + 1]``.  The client draws every epoch's
permutation exactly as :func:`symnn.train.fit` does in one process (the same seeded
generator, the same calls), so the global mini-batches are identical.  For each step it
sends every shard that holds some rows of the mini-batch the parameters θ and the local
indices of those rows (in the batch's order); the shard's worker returns the loss and
gradient of its ``m_s`` rows, and the client sums them weighted by ``m_s``:
``Σ_s m_s L_s / m = (1/m) Σ_{i∈batch} ℓᵢ + R(θ)`` — the single-process mini-batch loss
and gradient, up to rounding (the penalties are added once: the weights sum to 1).  Then
the client makes the one optimizer update, with the same compiled update as in one
process.

Per step: θ (``P`` numbers) and the batch's indices (``m`` integers in all) go out to at
most ``n_shards`` workers, ``1 + P`` numbers come back from each.
"""

from __future__ import annotations

import numpy as np

from symnn.distributed._remote import _weighted, rebuild, recipe_of
from symnn.distributed.sharded import Sharded, round_trip

__all__ = ["ShardRows", "take_rows"]


def _rows_task(recipe, theta, local, part):
    """On a worker: the loss and gradient of rows ``local`` of this shard."""
    X, y = part
    return rebuild(recipe).loss_and_grad(theta, X[local], y[local])


def _take_task(local, part):
    X, y = part
    return X[local].copy(), y[local].copy()


def _bounds(sharded: Sharded) -> np.ndarray:
    """Shard ``s`` holds global samples ``bounds[s] ≤ j < bounds[s + 1]``."""
    return np.concatenate([[0], np.cumsum(sharded.sizes)]).astype(np.int64)


def _split(bounds: np.ndarray, g: np.ndarray) -> list[tuple[int, np.ndarray]]:
    where = np.searchsorted(bounds, g, side="right") - 1
    return [(int(s), g[where == s] - bounds[s]) for s in np.unique(where)]


class ShardRows:
    """Mini-batch loss and gradient of a compiled model over sharded data: a
    :class:`symnn.train.loop.BatchGradient` for :func:`symnn.train.loop.run_training`.

    Parameters
    ----------
    model : CompiledModel
    sharded : Sharded
    train_rows : array of int, optional
        The global sample indices that make up the training set, in training order
        (default: every sample).  Training sample ``i`` is global sample
        ``train_rows[i]`` (a validation split keeps the others out).

    Attributes
    ----------
    n_samples : int
        Training samples.
    calls, tasks : int
        Mini-batches computed, and tasks sent (at most one per shard and batch).
    """

    def __init__(self, model, sharded: Sharded, train_rows=None) -> None:
        self.model = model
        self.recipe = recipe_of(model)
        self.sharded = sharded
        self.bounds = _bounds(sharded)
        self.train_rows = None if train_rows is None else np.asarray(train_rows, np.int64)
        self.n_samples = (sharded.n_samples if self.train_rows is None
                          else int(self.train_rows.shape[0]))
        self.calls = 0
        self.tasks = 0

    def split(self, rows) -> list[tuple[int, np.ndarray]]:
        """``[(shard, local indices)]`` of training samples ``rows``, in shard order, each
        shard's indices in the order of ``rows``; shards without rows are left out."""
        g = np.asarray(rows, np.int64)
        if self.train_rows is not None:
            g = self.train_rows[g]
        return _split(self.bounds, g)

    def __call__(self, theta: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.array(theta, copy=True)  # the caller updates its buffer afterwards
        parts = self.split(rows)
        calls = [(_rows_task, self.recipe, theta, local, self.sharded.futures[s])
                 for s, local in parts]
        out = round_trip(self.sharded.client, calls)
        sizes = [int(local.shape[0]) for _, local in parts]
        self.calls += 1
        self.tasks += len(calls)
        L = _weighted([float(r[0]) for r in out], sizes)
        g = _weighted([r[1] for r in out], sizes)
        return L, g.astype(self.model.dtype)


def take_rows(sharded: Sharded, rows) -> tuple[np.ndarray, np.ndarray]:
    """``(X[rows], y[rows])`` of the global sample indices ``rows``, fetched from the
    shards into this process (one task per shard that holds some)."""
    rows = np.asarray(rows, np.int64)
    bounds = _bounds(sharded)
    parts = _split(bounds, rows)
    got = round_trip(sharded.client, [(_take_task, local, sharded.futures[s])
                                      for s, local in parts])
    where = np.searchsorted(bounds, rows, side="right") - 1
    X = np.empty((rows.shape[0],) + got[0][0].shape[1:], got[0][0].dtype)
    y = np.empty((rows.shape[0],) + got[0][1].shape[1:], got[0][1].dtype)
    for (s, _), (Xs, ys) in zip(parts, got):
        X[where == s] = Xs
        y[where == s] = ys
    return X, y
