"""Sharded data and exact full-batch derivatives summed over Dask workers.

Every compiled loss is the mean over the samples plus the penalties,
``L = (1/N) Σᵢ ℓᵢ + R(θ)``.  A shard of ``n_s`` samples gives ``L_s = (1/n_s) Σ_{i∈s} ℓᵢ +
R(θ)``, and ``Σ_s n_s L_s / N = (1/N) Σᵢ ℓᵢ + R(θ) · Σ_s n_s / N = L``: weighting each
shard's result by its size adds the penalties exactly once (the weights sum to 1 in exact
arithmetic; ``N`` is an integer).  The same holds for the gradient, the Hessian-vector and
Gauss-Newton products and the Hessian, which are linear in the per-sample terms.  The
sum is taken in float64 in shard order, so a call is deterministic; it equals the
single-process value up to rounding (≈1e-15 relative).

Each call is one round trip: one task per shard (θ and the directions travel with it),
then one gather of the per-shard results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from symnn.codegen import _validate as V
from symnn.distributed._remote import DistributedError, _client, _weighted, rebuild, recipe_of
from symnn.errors import ArgumentError, ShapeError

__all__ = ["Sharded", "shard", "loss_and_grad", "loss", "hvp", "gnvp", "hessian"]


@dataclass(frozen=True)
class Sharded:
    """Data scattered once to the workers of a Dask cluster (see :func:`shard`).

    Attributes
    ----------
    futures : list of distributed.Future
        One per shard, each holding ``(X_s, y_s)`` in worker memory.
    sizes : tuple of int
        Samples per shard.
    n_samples, n_inputs : int
    target_shape : tuple
        Trailing shape of ``y`` (``()`` for 1-D targets or labels).
    client : distributed.Client
    """

    futures: tuple
    sizes: tuple
    n_samples: int
    n_inputs: int
    target_shape: tuple
    client: Any

    @property
    def n_shards(self) -> int:
        return len(self.sizes)

    def __repr__(self) -> str:
        return (f"Sharded({self.n_samples} samples × {self.n_inputs} inputs in "
                f"{self.n_shards} shards {list(self.sizes)})")


def shard(X, y, client=None, n_shards: int | None = None) -> Sharded:
    """Split ``(X, y)`` into contiguous shards and scatter them to the workers, once.

    Parameters
    ----------
    X : array, shape (N, n_inputs)
    y : array, shape (N, ...) — as the model's methods take it
    client : distributed.Client, optional
        Default: the current client (``distributed.default_client()``).
    n_shards : int, optional
        Default: the cluster's worker threads (one shard each).  Shards may be uneven.

    Returns
    -------
    Sharded
        Pass it to :func:`loss_and_grad`, :func:`hvp`, … as often as needed; the data
        never moves again.
    """
    client = _client(client)
    X = V._numeric(X, "X")
    y = np.asarray(y)
    if X.ndim != 2:
        raise ShapeError(f"shard: X has shape {X.shape}; expected (N, n_inputs)")
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        raise ShapeError(f"shard: y has shape {y.shape} but X has {X.shape[0]} rows; "
                         "expected one target row per sample")
    N = X.shape[0]
    if n_shards is None:
        n_shards = max(1, sum(client.nthreads().values()))
    if isinstance(n_shards, bool) or not isinstance(n_shards, (int, np.integer)):
        raise ArgumentError(f"shard: n_shards must be an integer, got {n_shards!r}")
    if not 1 <= n_shards <= N:
        raise ArgumentError(f"shard: n_shards = {n_shards}; expected 1 to {N} (the samples)")
    bounds = np.linspace(0, N, int(n_shards) + 1).round().astype(int)
    parts = [(np.ascontiguousarray(X[a:b]), np.ascontiguousarray(y[a:b]))
             for a, b in zip(bounds[:-1], bounds[1:])]
    try:
        # hash=False: a key of its own per call.  With content-hashed keys, sharding the
        # same data again right after an earlier Sharded was released races the release
        # ("lost dependencies"; dask/distributed#4612)
        futures = client.scatter(parts, hash=False)
    except (OSError, TimeoutError) as err:
        raise DistributedError(f"shard: cannot reach the Dask cluster: {err}") from err
    return Sharded(tuple(futures), tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:])),
                   int(N), int(X.shape[1]), tuple(y.shape[1:]), client)


# -- tasks (run on the workers) ----------------------------------------------------------

def _task(recipe, kind: str, theta, V_, part):
    X, y = part
    model = rebuild(recipe)
    if kind == "loss_and_grad":
        return model.loss_and_grad(theta, X, y)
    if kind == "loss":
        return model.loss(theta, X, y)
    if kind == "hessian":
        return model.hessian(theta, X, y)
    return getattr(model, kind)(theta, V_, X, y)


def _run(model, kind: str, theta, sharded: Sharded, V_=None) -> list:
    """One task per shard, one gather: the per-shard results in shard order."""
    if not isinstance(sharded, Sharded):
        raise ArgumentError(f"expected sharded data from symnn.distributed.shard(...), got "
                            f"{type(sharded).__name__}")
    recipe = recipe_of(model)
    if sharded.n_inputs != model.n_inputs:
        raise ShapeError(f"the sharded X has {sharded.n_inputs} inputs; model {model.name!r} "
                         f"takes {model.n_inputs}")
    return round_trip(sharded.client, [(_task, recipe, kind, theta, V_, f)
                                       for f in sharded.futures])


def round_trip(client, calls: list) -> list:
    """Submit ``fn(*args)`` for each ``(fn, *args)`` of ``calls`` (a shard's future among
    the args sends the task to that shard's worker), gather the results in order; a lost
    cluster or shard becomes a :class:`DistributedError`."""
    client = _client(client)
    try:
        futs = [client.submit(fn, *args, pure=False) for fn, *args in calls]
        return client.gather(futs)
    except (OSError, TimeoutError) as err:
        raise DistributedError(f"the Dask cluster is unreachable or lost the shards ({err}); "
                               "create a new Client and shard the data again") from err
    except Exception as err:
        if type(err).__name__ in ("CancelledError", "FutureCancelledError", "KilledWorker"):
            raise DistributedError(f"the Dask computation was lost ({type(err).__name__}: "
                                   f"{err}); shard the data again on a running cluster"
                                   ) from err
        raise


def _theta(model, theta) -> np.ndarray:
    recipe_of(model)  # a compiled model with a plain form, else a DistributedError
    return model._theta(theta)


def loss(model, theta, sharded: Sharded) -> float:
    """The full-batch loss over all shards (mean over the samples, plus penalties)."""
    theta = _theta(model, theta)
    return _weighted(_run(model, "loss", theta, sharded), list(sharded.sizes))


def loss_and_grad(model, theta, sharded: Sharded) -> tuple[float, np.ndarray]:
    """``(L, ∂L/∂θ)`` over the whole sharded data set, exactly as
    ``model.loss_and_grad(theta, X, y)`` on the unsharded data (up to rounding)."""
    theta = _theta(model, theta)
    parts = _run(model, "loss_and_grad", theta, sharded)
    sizes = list(sharded.sizes)
    L = _weighted([float(p[0]) for p in parts], sizes)
    g = _weighted([p[1] for p in parts], sizes)
    return L, g.astype(model.dtype)


def _products(kind: str, model, theta, v, sharded: Sharded) -> np.ndarray:
    theta = _theta(model, theta)
    Vm, single = V.as_directions(v, model.n_params, model.dtype)
    out = _weighted(_run(model, kind, theta, sharded, Vm), list(sharded.sizes))
    out = out.astype(model.dtype)
    return out[0] if single else out


def hvp(model, theta, v, sharded: Sharded) -> np.ndarray:
    """The exact full-batch Hessian-vector product(s) ``H v``: ``v`` of shape ``(P,)``
    gives ``(P,)``, ``(K, P)`` gives ``(K, P)`` (all K in the same round trip)."""
    return _products("hvp", model, theta, v, sharded)


def gnvp(model, theta, v, sharded: Sharded) -> np.ndarray:
    """The full-batch Gauss-Newton product(s) ``Jᵀ H_ℓ J v + ∇²R v`` (shapes as :func:`hvp`)."""
    return _products("gnvp", model, theta, v, sharded)


def hessian(model, theta, sharded: Sharded) -> np.ndarray:
    """The exact full-batch Hessian ``(P, P)``: each worker computes its shards' Hessians
    (``model.hessian``), the client sums them weighted by shard size."""
    theta = _theta(model, theta)
    from symnn.declare.limits import check_dense

    check_dense(model.n_params, model.n_params, model.dtype.itemsize, "the Hessian",
                "Use symnn.distributed.hvp for Hessian-vector products.")
    H = _weighted(_run(model, "hessian", theta, sharded), list(sharded.sizes))
    return H.astype(model.dtype)
