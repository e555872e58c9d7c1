"""Data-parallel exact derivatives and sweeps on Dask (``pip install 'symnn[distributed]'``).

``shard(X, y, client)`` scatters the data once; :func:`loss_and_grad`, :func:`hvp`,
:func:`gnvp` and :func:`hessian` then compute the exact full-batch values over all shards,
one round trip per call.  Workers rebuild the model from its plain-data declaration and
load its kernels from the on-disk cache (no compiling); :func:`kernel_cache_stats` shows
it.  :func:`fit` trains over the shards in the same session as :func:`symnn.train.fit`:
first-order optimizers mini-batch (synchronous data parallelism: the single-process
mini-batches, each one's gradient summed over the shards), second-order methods
(Newton-CG, L-BFGS, …) full batch; ``model.fit(X, y, …, client=client)`` shards and
calls it.  :func:`sweep` runs one fit
per configuration as Dask tasks.  See ``docs/distributed.md``.

Importing this package does not import Dask; the functions do, when called.
"""

from symnn.distributed._remote import DistributedError, Recipe, kernel_cache_stats, recipe_of
from symnn.distributed.sharded import Sharded, gnvp, hessian, hvp, loss, loss_and_grad, shard
from symnn.distributed.sweep import SweepTable, sweep
from symnn.distributed.training import fit

__all__ = [
    "DistributedError",
    "fit",
    "Recipe",
    "Sharded",
    "SweepTable",
    "gnvp",
    "hessian",
    "hvp",
    "kernel_cache_stats",
    "loss",
    "loss_and_grad",
    "recipe_of",
    "shard",
    "sweep",
]
