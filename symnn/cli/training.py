"""The ``symnn`` subcommands that train and predict: ``train`` and ``predict``."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import stat
import sys
from typing import Any

import numpy as np

from symnn.cli._common import PROG, check_output, load_spec, loss
from symnn.data import BUILTIN_DATA, load_dataset, load_features
from symnn.errors import ArgumentError, DataError, SpecError, SymnnError, TrainingError

__all__ = ["cmd_predict", "cmd_train", "train_spec"]


# -- train --------------------------------------------------------------------------------

def cmd_train(args) -> int:
    """``symnn train SPEC``: load data, compile, train, report, save."""
    spec = load_spec(args.spec)
    check_output(args.output, args.spec, args.data)
    check_output(args.plot, args.spec, args.data, args.output)
    if args.plot:
        _need_matplotlib()
    model, theta, history, scaler = train_spec(spec, args, args.spec, data=args.data,
                                               save_to=args.output)
    if args.output:
        _save(args.output, model, theta, spec, history, scaler)
        print(f"saved {args.output}")
    if args.plot:
        from symnn.plots import plot_history

        plot_history(history, args.plot, title=spec.declared.name)
        print(f"saved {args.plot}")
    return 0


def _data_source(spec, args, spec_arg: str, given: str | None) -> str:
    """The data source: ``--data`` as given (the user's own path), else the spec's
    ``[data] source`` resolved relative to the spec file and kept inside its folder."""
    if given:
        return given
    if not spec.data.get("source"):
        raise SpecError(f"{spec_arg}: no training data: pass --data FILE.csv or one of "
                        f"{', '.join(BUILTIN_DATA)}, or set [data] source in the spec")
    path = spec.data_path(allow_outside=getattr(args, "allow_outside_data", False))
    return spec.data["source"] if path is None else str(path)


#: ``[training]`` keys passed on to :func:`symnn.train.fit` (under its name) when present,
#: and those passed on only when set to something other than 0 / false.
_FIT_OPTIONS = {"shuffle": "shuffle", "patience": "early_stopping", "verbose": "progress"}
_FIT_OPTIONS_IF_SET = {"check_every": "check_every", "validation_split": "validation"}


def _fit_settings(spec, args) -> dict[str, Any]:
    """The keyword arguments of :func:`symnn.train.fit`: the spec's ``[training]`` table,
    overridden by the command line."""
    t = dict(spec.training)
    seed = getattr(args, "seed", None)
    kw: dict[str, Any] = {
        "epochs": getattr(args, "epochs", None) or t.get("epochs", 100),
        "batch_size": getattr(args, "batch_size", None) or t.get("batch_size", 32),
        "seed": t.get("seed", 0) if seed is None else seed,
        "engine": getattr(args, "engine", "auto"),
    }
    kw.update({name: t[key] for key, name in _FIT_OPTIONS.items() if key in t})
    kw.update({name: t[key] for key, name in _FIT_OPTIONS_IF_SET.items() if t.get(key)})
    if "validation" in kw:
        kw["validation"] = float(kw["validation"])
    return kw


def train_spec(spec, args, spec_arg: str, *, data: str | None = None, out=None,
               save_to: str | None = None):
    """Train a spec as ``symnn train`` does; returns (compiled model, θ, history, scaler).

    ``data`` is the ``--data`` source (default: the spec's own).  When training stops
    early — Ctrl-C, or a failed check — the last good parameters the trainer hands back are
    saved to ``save_to`` before the error goes on."""
    out = out or sys.stdout
    declared = spec.declared
    optimizer = spec.optimizer or {"name": "adam", "lr": 1e-3}
    kw = _fit_settings(spec, args)
    _check_distributed(args, spec_arg, optimizer, kw)
    source = _data_source(spec, args, spec_arg, data)
    X, y, scaler = load_dataset(source, declared, spec.data)
    X_test = y_test = None
    if spec.data.get("test_size"):
        X, y, X_test, y_test = _split(X, y, float(spec.data["test_size"]), kw["seed"], source)
    held = f" ({X_test.shape[0]} held out for testing)" if X_test is not None else ""
    scaled = ", inputs standardised" if scaler is not None else ""
    print(f"training {declared.name} ({declared.n_params} parameters) on {source}: "
          f"{X.shape[0]} samples{held}{scaled}, {kw['epochs']} epochs, "
          f"{_batch(kw, args, optimizer)}, "
          f"optimizer {optimizer.get('name')}", file=out, flush=True)
    # walk: compiled after the line above; round 6: and it says so, as `symnn demo` does
    model = _compile_saying_so(declared, spec.training.get("dtype", "float64"), out)
    theta, history = _fit(model, X, y, optimizer, kw, save_to, spec, scaler, args)
    _report(model, theta, X, y, "training", out)
    if X_test is not None:
        _report(model, theta, X_test, y_test, "test", out)
    return model, theta, history, scaler


def _compile_saying_so(declared, dtype: str, out):
    """Compile, with a line that says so (walk, round 6): Numba compiles the kernels on
    their first call, in the first epoch, and a cold first run was a silent pause of
    seconds there."""
    from symnn.codegen.cache import default_cache_dir

    print(f"compiling the derived program into Numba kernels (the first run takes some "
          f"seconds; the kernels are cached in {default_cache_dir()})…", file=out, flush=True)
    return declared.compile(dtype=dtype)


def _batch(kw: dict, args, optimizer=None) -> str:
    from symnn.train.optimizers import get_optimizer
    from symnn.train.second_order import SecondOrder

    full = optimizer is not None and isinstance(get_optimizer(optimizer), SecondOrder)
    what = "full batch" if full else f"batch {kw['batch_size']}"
    if getattr(args, "scheduler", None) is not None:
        return f"{what} over the workers of {args.scheduler}"
    if getattr(args, "workers", None) is not None:
        return f"{what} over {args.workers} local worker processes"
    return what


def _fit(model, X, y, optimizer, kw: dict, save_to: str | None, spec, scaler, args=None):
    """``symnn.train.fit`` (or ``symnn.distributed.fit`` with ``--scheduler`` /
    ``--workers``); on an early stop, save the last good parameters first."""
    from symnn.train.loop import fit

    try:
        if _distributed_flag(args) is None:
            result = fit(model, X, y, optimizer, **kw)
        else:
            result = _fit_distributed(model, X, y, optimizer, kw, args)
    except (TrainingError, KeyboardInterrupt) as err:
        params = getattr(err, "params", None)
        if save_to and params is not None:
            _save(save_to, model, np.asarray(params), spec, getattr(err, "history", None),
                  scaler)
            print(f"{PROG}: training stopped; saved the last good parameters to {save_to}",
                  file=sys.stderr)
        raise
    return np.asarray(result.params), result.history


# -- distributed: --scheduler ADDRESS / --workers N ----------------------------------------

#: seconds ``--scheduler`` waits for the scheduler to answer
CONNECT_TIMEOUT = 5

def _distributed_flag(args) -> str | None:
    """``"--scheduler"`` or ``"--workers"`` when given (the first when both are), else None."""
    if getattr(args, "scheduler", None) is not None:
        return "--scheduler"
    return "--workers" if getattr(args, "workers", None) is not None else None


def _check_distributed(args, spec_arg: str, optimizer, kw: dict) -> None:
    """Refuse what ``--scheduler`` / ``--workers`` cannot run, before any work is done."""
    flag = _distributed_flag(args)
    if flag is None:
        return
    workers = getattr(args, "workers", None)
    if flag == "--scheduler" and workers is not None:
        raise ArgumentError(f"{spec_arg}: --scheduler and --workers were both given; pass "
                            "one: --scheduler ADDRESS to use a running Dask cluster, or "
                            "--workers N to start a local one")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ArgumentError(f"--workers {workers!r}: expected a positive number of worker "
                            "processes, e.g. --workers 4")
    if kw.get("engine") == "kernel":
        raise ArgumentError(f"{spec_arg}: --engine kernel (one compiled call per epoch) runs "
                            f"in one process; with {flag} every mini-batch gradient is summed "
                            "over the workers: drop --engine kernel, or drop " + flag)
    try:
        import distributed  # noqa: F401
    except ImportError as err:
        raise SymnnError(f"{flag} needs Dask, which is not installed: pip install "
                         f"'symnn[distributed]', or drop {flag} to train in this "
                         "process") from err


def _fit_distributed(model, X, y, optimizer, kw: dict, args):
    """``symnn.train.fit(..., client=…)`` over the workers of ``--scheduler`` /
    ``--workers``: the data scattered once, one shard per worker thread; mini-batch
    first-order or full-batch second-order training with the same settings."""
    from symnn.train.loop import fit

    with _dask_client(args) as client:
        return fit(model, X, y, optimizer, client=client, **kw)


@contextlib.contextmanager
def _dask_client(args):
    """A client of the scheduler at ``--scheduler``, or of a local cluster of ``--workers``
    processes (one thread each) that is closed on leaving."""
    from distributed import Client, LocalCluster

    from symnn.distributed import DistributedError

    if getattr(args, "scheduler", None) is None:
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(args.scheduler, timeout=CONNECT_TIMEOUT)
    except (ValueError, TypeError) as err:
        raise DistributedError(f"--scheduler {args.scheduler!r}: not a scheduler address "
                               f"({_short(err)}); expected e.g. tcp://host:8786") from None
    except (OSError, TimeoutError) as err:
        reason = _short(err)
        raise DistributedError(f"--scheduler {args.scheduler}: no Dask scheduler answered "
                               f"within {CONNECT_TIMEOUT} s ({reason}); start one "
                               "(dask-scheduler) and check the address, or use --workers N "
                               "for a local cluster") from None
    with client:
        yield client


def _short(err: BaseException) -> str:
    return (" ".join(str(err).split()) or type(err).__name__)[:200]


def _split(X, y, fraction: float, seed: int, source: str):
    n = X.shape[0]
    n_test = round(fraction * n)
    if not 1 <= n_test < n:
        raise DataError(f"{source}: [data] test_size = {fraction:g} of {n} samples leaves no "
                        "sample on one side; choose a fraction in (0, 1)")
    idx = np.random.default_rng(seed).permutation(n)
    test, train = np.sort(idx[:n_test]), np.sort(idx[n_test:])
    return X[train], y[train], X[test], y[test]


def _report(model, theta, X, y, what: str, out=None) -> None:
    """Print the loss and accuracy (labels) or RMSE (regression) on ``(X, y)``."""
    out = out or sys.stdout
    print(f"final {what} loss: {loss(model, theta, X, y):.6g}", file=out)
    pred = np.asarray(model.predict(theta, X)).reshape(y.shape)
    declared = model.declared
    if declared.n_outputs > 1 and declared.loss.probabilities:
        acc = float(np.mean(np.argmax(pred, axis=1) == np.argmax(y, axis=1)))
        print(f"{what} accuracy: {100 * acc:.2f}%", file=out)
    elif declared.n_outputs == 1 and np.all((y == 0) | (y == 1)):
        acc = float(np.mean((pred > 0.5) == (y > 0.5)))
        print(f"{what} accuracy: {100 * acc:.2f}% (threshold 0.5)", file=out)
    else:
        rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
        print(f"{what} RMSE: {rmse:.6g}", file=out)


def _save(path: str, model, theta: np.ndarray, spec, history, scaler=None) -> None:
    from symnn.train.io import save

    save(path, model, theta, history=history, metadata={"spec": spec.to_toml()},
         scaler=scaler)


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise SymnnError("--plot needs matplotlib (pip install matplotlib)") from err


# -- predict ------------------------------------------------------------------------------

def _is_model_file(path: str) -> bool:
    """True when ``path`` is a regular file starting like a zip archive (an ``.npz``)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, 4) == b"PK\x03\x04"
    except OSError:
        return False
    finally:
        os.close(fd)


def cmd_predict(args) -> int:
    """``symnn predict MODEL.npz|SPEC --data FILE.csv``: predictions as CSV."""
    check_output(args.output, args.model, args.data)
    if not os.path.exists(args.model):  # walk 7: "cannot read the spec file" for a .npz
        raise SpecError(f"{args.model}: no such file (give a model saved by 'symnn train "
                        "-o MODEL.npz', or a spec file)")
    if _is_model_file(args.model):
        from symnn.train.io import load

        saved = load(args.model)
        declared = saved.declared
        X = load_features(args.data, declared.n_inputs, declared.n_outputs,
                          _csv_options(saved.metadata))
        pred = saved.predict(X)
    else:
        spec = load_spec(args.model)
        declared = spec.declared
        # walk 7: the rows are read before training (a bad --data failed after it)
        X = load_features(args.data, declared.n_inputs, declared.n_outputs, spec.data)
        # training chatter goes to stderr: stdout carries the predictions
        model, theta, _, scaler = train_spec(spec, args, args.model, out=sys.stderr)
        Xs = X if scaler is None else scaler.transform(X)
        pred = np.asarray(model.predict(theta, Xs)).reshape(X.shape[0], -1)
    text = _predictions_csv(pred, declared)
    if args.output:
        from symnn._atomic import atomic_write_text

        atomic_write_text(args.output, text, user=True)
        print(f"wrote {pred.shape[0]} predictions to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _csv_options(metadata) -> dict:
    """The CSV options (delimiter, header, target) of the spec a model was trained from,
    when ``symnn train`` stored it in the model's metadata."""
    text = metadata.get("spec") if isinstance(metadata, dict) else None
    if not isinstance(text, str):
        return {}
    from symnn.spec import loads_spec

    try:
        data = loads_spec(text, name="<the model's stored spec>").data
    except SymnnError:
        return {}
    return {k: data[k] for k in ("delimiter", "header", "target") if k in data}


def _predictions_csv(pred: np.ndarray, declared) -> str:
    """One row per sample: the outputs (and the predicted class for classifiers)."""
    k = pred.shape[1]
    names = [f"output{j + 1}" for j in range(k)] if k > 1 else ["prediction"]
    classes = k > 1 and getattr(declared.loss, "probabilities", False)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names + (["class"] if classes else []))
    for row in pred:
        cells = [repr(float(v)) for v in row]
        w.writerow(cells + ([int(np.argmax(row))] if classes else []))
    return buf.getvalue()
