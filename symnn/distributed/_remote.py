"""What travels to the workers, and how a worker rebuilds a model from it.

A compiled model is not shipped as such: its Numba dispatchers lose their machine code
when pickled, so every worker would compile every kernel again (seconds each).  Instead
the client sends a :class:`Recipe` — the model's declaration as plain data
(:func:`symnn.train.modelspec.spec_of`, parsed back without evaluating anything), its
dtype, its debug flag, the kernel cache directory and a checksum of the generated
source.  A worker rebuilds the model from the recipe once per process (memoised by the
recipe's key): the rebuilt module is the same file in the same cache directory, so
Numba's on-disk cache is hit and nothing is compiled.

Kernels reuse one work buffer per model, so every worker thread gets its own shallow copy
of the rebuilt model (shared kernels, private buffers); the runtime blocks are prepared
once per process under a lock, before any thread calls a kernel.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from symnn.errors import ModelFileError, SymnnError

__all__ = ["DistributedError", "Recipe", "recipe_of", "rebuild", "kernel_cache_stats"]


class DistributedError(SymnnError, RuntimeError):
    """A distributed computation could not run: no Dask client, a cluster that is gone, a
    model that cannot be rebuilt on the workers."""


@dataclass(frozen=True)
class Recipe:
    """Everything a worker needs to rebuild a compiled model from the kernel cache."""

    key: str  # memoisation key: the generated module's name and directory
    spec: dict  # the declaration as plain data (symnn.train.modelspec.spec_of)
    dtype: str
    debug: bool
    cache: bool  # False: the client compiled in memory; the worker does too
    cache_dir: str | None
    source_sha256: str  # checksum of the generated source the worker must reproduce
    name: str


def _client(client):
    """The Dask client to use, checked: running and connected."""
    try:
        from distributed import Client
    except ImportError as err:  # pragma: no cover - the extra is not installed
        raise ImportError("symnn.distributed needs Dask: pip install 'symnn[distributed]'"
                          ) from err
    if client is None:
        from distributed import default_client

        try:
            client = default_client()
        except ValueError as err:
            raise DistributedError(
                "no Dask client: create one first, e.g. client = "
                "distributed.Client(distributed.LocalCluster()) on one machine or "
                "Client('tcp://scheduler:8786') for a cluster, and pass it") from err
    if not isinstance(client, Client):
        raise DistributedError(f"expected a distributed.Client, got {type(client).__name__}")
    if client.status != "running":
        raise DistributedError(
            f"the Dask client is {client.status} (its cluster was closed or is unreachable): "
            "create a new Client and shard the data again")
    return client


_RECIPES: "weakref.WeakKeyDictionary[Any, Recipe]" = weakref.WeakKeyDictionary()


def recipe_of(model) -> Recipe:
    """The :class:`Recipe` of a compiled model (memoised per model object).

    Raises
    ------
    DistributedError
        When ``model`` is not a compiled model, or its declaration has no plain form
        (an activation or loss registered only in this process, …).
    """
    from symnn.codegen.model import CompiledModel
    from symnn.train.modelspec import spec_of

    if not isinstance(model, CompiledModel):
        raise DistributedError(f"expected a compiled model (net.compile()), got "
                               f"{type(model).__name__}")
    found = _RECIPES.get(model)
    if found is not None:
        return found
    try:
        spec = spec_of(model.declared)
    except ModelFileError as err:
        raise DistributedError(
            f"model {model.name!r} cannot be rebuilt on Dask workers: {err}. Workers rebuild "
            "a model from its plain-data declaration; use registered activations and losses, "
            "or a sympy.Lambda activation") from err
    path = getattr(model.module, "__file__", "") or ""
    cached = os.path.isfile(path)
    cache_dir = os.path.dirname(path) if cached else None
    sha = hashlib.sha256(model.source.encode("utf-8")).hexdigest()
    recipe = Recipe(key=f"{model.module.__name__}@{cache_dir}", spec=spec,
                    dtype=model.dtype.name, debug=bool(model.debug), cache=cached,
                    cache_dir=cache_dir, source_sha256=sha, name=model.name)
    _RECIPES[model] = recipe
    return recipe


#: this process's rebuilt models, by recipe key
_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()
_LOCAL = threading.local()


def _build(recipe: Recipe):
    from symnn.codegen.model import compile_model
    from symnn.train.modelspec import declared_from_spec

    try:
        declared = declared_from_spec(recipe.spec)
    except SymnnError as err:
        raise DistributedError(f"a Dask worker cannot rebuild model {recipe.name!r}: {err} "
                               "(is the same symnn, with the same registered activations, "
                               "installed on the workers?)") from err
    model = compile_model(declared, recipe.dtype, cache=recipe.cache,
                          cache_dir=recipe.cache_dir, debug=recipe.debug)
    sha = hashlib.sha256(model.source.encode("utf-8")).hexdigest()
    if sha != recipe.source_sha256:
        raise DistributedError(
            f"a Dask worker generated different kernels for model {recipe.name!r} than the "
            "client: install the same versions of symnn, Numba and NumPy on every worker")
    return model


def rebuild(recipe: Recipe):
    """This thread's copy of the model of ``recipe``, rebuilt once per process."""
    mine = getattr(_LOCAL, "models", None)
    if mine is None:
        mine = _LOCAL.models = {}
    model = mine.get(recipe.key)
    if model is not None:
        return model
    with _LOCK:
        base = _MODELS.get(recipe.key)
        if base is None:
            from symnn.codegen.numba import prepare_runtime

            base = _build(recipe)
            # compile (or load) the runtime blocks now, once per process, not inside the
            # first kernel call of some worker thread
            prepare_runtime(recipe.dtype)
            _MODELS[recipe.key] = base
    model = copy.copy(base)  # shared kernels and module, private work buffers
    model._buffers = {}
    mine[recipe.key] = model
    return model


def _stats_here() -> dict:
    """``{recipe key: {"hits": n, "misses": n}}`` of Numba's cache for the kernels of every
    model this process rebuilt (misses: kernels compiled here)."""
    out = {}
    with _LOCK:
        models = dict(_MODELS)
    for key, model in models.items():
        hits = misses = 0
        for disp in model.kernels.values():
            stats = getattr(disp, "stats", None)
            if stats is not None:
                hits += sum(stats.cache_hits.values())
                misses += sum(stats.cache_misses.values())
        out[key] = {"hits": int(hits), "misses": int(misses)}
    return out


def kernel_cache_stats(client) -> dict[str, dict]:
    """Numba's kernel-cache record on every worker: ``{worker address: {model key:
    {"hits": n, "misses": n}}}`` — ``misses`` counts the kernels a worker compiled itself
    instead of loading them from the cache (0 when the cache serves every worker)."""
    client = _client(client)
    return dict(client.run(_stats_here))


def _weighted(parts: list, sizes: list[int]):
    """``Σ n_s r_s / N`` of per-shard results ``r_s`` (means over each shard's samples)."""
    total = sum(sizes)
    if isinstance(parts[0], float):
        return float(sum(n * float(r) for n, r in zip(sizes, parts)) / total)
    acc = np.zeros_like(np.asarray(parts[0], np.float64))
    for n, r in zip(sizes, parts):
        acc += n * np.asarray(r, np.float64)
    return acc / total
