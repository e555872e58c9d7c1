"""Hyper-parameter sweeps: one fit per configuration, as Dask tasks.

The data is scattered once; each configuration is one task that rebuilds the model from
its recipe (from the kernel cache, see :mod:`symnn.distributed._remote`) and calls
:func:`symnn.train.fit`.  A configuration that fails becomes a row holding its error; the
others run on.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from symnn.distributed._remote import DistributedError, _client, rebuild, recipe_of
from symnn.errors import ArgumentError

__all__ = ["SweepTable", "sweep"]

#: keyword arguments of :func:`symnn.train.fit` a configuration may set; every other key
#: is an option of the optimizer (``lr``, ``momentum``, …)
FIT_KEYS = frozenset({"epochs", "batch_size", "seed", "validation", "early_stopping",
                      "min_delta", "restore_best", "check_every", "shuffle", "engine"})


class SweepTable(list):
    """The rows of a sweep (one dict per configuration, in grid order).

    Each row holds the configuration's keys and ``loss`` (final training loss),
    ``epochs`` (epochs or iterations run), ``stop`` (the stop reason), ``seconds`` (wall
    time of the fit on its worker), ``error`` (None, or ``"Type: message"``) and
    ``params`` (the trained θ, or None).
    """

    def __init__(self, rows, keys) -> None:
        super().__init__(rows)
        self.keys = list(keys)

    def ok(self) -> list[dict]:
        """The rows whose fit succeeded."""
        return [r for r in self if r["error"] is None]

    def best(self, key: str = "loss") -> dict | None:
        """The successful row with the lowest ``key`` (None when every fit failed)."""
        rows = [r for r in self.ok() if r.get(key) is not None and np.isfinite(r[key])]
        return min(rows, key=lambda r: r[key]) if rows else None

    def __str__(self) -> str:
        cols = self.keys + ["loss", "epochs", "stop", "seconds", "error"]
        cells = [[_cell(r.get(c)) for c in cols] for r in self]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
        lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in cells]
        return "\n".join(lines)


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    text = v if isinstance(v, str) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _configurations(grid) -> tuple[list[dict], list[str]]:
    """A grid ``{name: [values]}`` (every combination) or a list of dicts, as configs."""
    if isinstance(grid, dict):
        for k, vals in grid.items():
            if not isinstance(vals, (list, tuple)) or not vals:
                raise ArgumentError(f"sweep: grid[{k!r}] must be a non-empty list of values")
        keys = list(grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*grid.values())], keys
    if isinstance(grid, (list, tuple)) and grid and all(isinstance(g, dict) for g in grid):
        keys = list(dict.fromkeys(k for g in grid for k in g))
        return [dict(g) for g in grid], keys
    raise ArgumentError("sweep: grid must be a dict {name: [values]} or a non-empty list of "
                        "dicts (one per configuration)")


def _fit_one(recipe, base_optimizer, base_fit, config, part) -> dict:
    """Run on a worker: one fit; the error is returned, not raised."""
    from symnn.train.loop import fit

    t0 = time.perf_counter()
    row = {"loss": None, "epochs": None, "stop": None, "params": None, "error": None}
    try:
        model = rebuild(recipe)
        opt = dict(base_optimizer)
        opt.update({k: v for k, v in config.items() if k not in FIT_KEYS and k != "optimizer"})
        if "optimizer" in config:
            opt["name"] = config["optimizer"]
        kw = dict(base_fit)
        kw.update({k: v for k, v in config.items() if k in FIT_KEYS})
        kw.setdefault("progress", False)
        X, y = part
        res = fit(model, X, y, opt, **kw)
        hist = res.history
        row.update(loss=float(hist.loss[-1]) if len(hist) else None, epochs=len(hist),
                   stop=res.stop_reason, params=np.asarray(res.params))
    except Exception as err:  # noqa: BLE001 - a failing configuration is a row
        row["error"] = f"{type(err).__name__}: {err}"
    row["seconds"] = time.perf_counter() - t0
    return row


def _declared_and_defaults(spec_or_model, X, y):
    """(compiled model, optimizer dict, fit options, X, y) from a model or a spec."""
    from symnn.codegen.model import CompiledModel

    opt: dict = {"name": "adam", "lr": 1e-3}
    fit_kw: dict = {}
    if isinstance(spec_or_model, CompiledModel):
        model = spec_or_model
    elif hasattr(spec_or_model, "declared") and hasattr(spec_or_model, "training"):
        spec = spec_or_model  # a symnn.spec.Spec
        model = spec.declared.compile(dtype=spec.training.get("dtype", "float64"))
        opt = dict(spec.optimizer or opt)
        t = spec.training
        fit_kw = {k: t[k] for k in ("epochs", "batch_size", "seed", "shuffle") if k in t}
        if X is None and y is None:
            from symnn.data import load_dataset

            source = spec.data.get("source")
            if not source:
                raise ArgumentError("sweep: the spec has no [data] source; pass X and y")
            path = spec.data_path()
            X, y, _ = load_dataset(source if path is None else str(path), spec.declared,
                                   spec.data)
    elif hasattr(spec_or_model, "compile"):
        model = spec_or_model.compile()
    else:
        raise ArgumentError(f"sweep: expected a compiled model, a Network/Model or a "
                            f"symnn.spec.Spec, got {type(spec_or_model).__name__}")
    if X is None or y is None:
        raise ArgumentError("sweep: pass the training data X and y")
    return model, opt, fit_kw, X, y


def sweep(spec_or_model, grid, client=None, X=None, y=None, **fit_options) -> SweepTable:
    """Fit one model per configuration of ``grid``, each as a Dask task.

    Parameters
    ----------
    spec_or_model : CompiledModel, Network/Model or symnn.spec.Spec
        A spec brings its optimizer, ``[training]`` settings and (when X, y are not given)
        its ``[data]``.
    grid : dict of lists, or list of dicts
        ``{"optimizer": ["adam", "sgd"], "lr": [1e-2, 1e-3]}`` runs every combination.
        Keys that are arguments of :func:`symnn.train.fit` (``epochs``, ``batch_size``,
        ``seed``, …) go to it; ``optimizer`` names the optimizer; any other key is an
        optimizer option.
    client : distributed.Client, optional
    X, y : arrays
        Training data, scattered to the workers once.
    **fit_options
        Defaults for every fit (a configuration overrides them).

    Returns
    -------
    SweepTable
        One row per configuration, failures included (``row["error"]``).
    """
    client = _client(client)
    configs, keys = _configurations(grid)
    model, opt, fit_kw, X, y = _declared_and_defaults(spec_or_model, X, y)
    fit_kw.update(fit_options)
    recipe = recipe_of(model)
    try:
        [part] = client.scatter([(np.asarray(X), np.asarray(y))], broadcast=True,
                                hash=False)  # a key of its own (see sharded.shard)
        futs = [client.submit(_fit_one, recipe, opt, fit_kw, c, part, pure=False)
                for c in configs]
        results = client.gather(futs, errors="skip")
    except (OSError, TimeoutError) as err:
        raise DistributedError(f"sweep: the Dask cluster is unreachable: {err}") from err
    rows = []
    for c, fut, res in zip(configs, futs, _align(futs, results)):
        if res is None:  # the task itself was lost (a worker died)
            res = {"loss": None, "epochs": None, "stop": None, "params": None,
                   "seconds": None, "error": f"task failed: {fut.exception()!r}"}
        rows.append({**c, **res})
    return SweepTable(rows, keys)


def _align(futs, results) -> list:
    """Results of ``gather(errors="skip")`` put back in place (None for the skipped)."""
    it = iter(results)
    return [next(it) if f.status == "finished" else None for f in futs]
