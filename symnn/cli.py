"""The ``symnn`` command line: derive, print, export, check and train from spec files.

Subcommands::

    symnn demo                               the 2-2-1 sigmoid XOR network, end to end
    symnn derive SPEC [--latex|--markdown] [--expanded]
    symnn latex SPEC [-o out.tex] [--pdf] [--expanded] [--hessian]
    symnn train SPEC [--data FILE.csv|xor|digits|iris|diabetes] [-o model.npz]
                     [--epochs N] [--plot out.png]
    symnn check SPEC [--data ...]            finite-difference check of the gradient

Every failure prints one line, ``symnn: error: <what and where>``, on stderr and exits
with status 1 (2 for command-line usage errors); ``--traceback`` shows the Python
traceback instead.

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
symnn ...
0
"""

from __future__ import annotations

import argparse
import csv
import inspect
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from symnn.errors import DataError, SpecError, SymnnError

__all__ = ["build_parser", "load_data", "main"]

PROG = "symnn"

#: Built-in data sets for ``train --data`` / ``check --data``.
BUILTIN_DATA = ("xor", "digits", "iris", "diabetes")


# -- entry point ------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``symnn`` command line; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 on an error (one line on stderr), 2 on a usage error, 130 when
        interrupted.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):  # pragma: no cover - exotic streams
            pass
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors end here
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        # the reader went away (symnn derive ... | head): not an error of ours
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover
            pass
        return 0
    except (SymnnError, OSError, ValueError) as err:
        if args.traceback:
            raise
        _error(_one_line(err))
        return 1
    except Exception as err:  # the last line of defence of a command line
        if args.traceback:
            raise
        _error(f"unexpected {type(err).__name__}: {_one_line(err)} (this is a bug in symnn; "
               "rerun with --traceback and report it)")
        return 1


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _one_line(err: BaseException) -> str:
    """The error as one line; an expression error marks the column with ``>>``."""
    summary = getattr(err, "summary", None)
    text = getattr(err, "text", None)
    col = getattr(err, "column", None)
    if isinstance(summary, str) and isinstance(text, str) and isinstance(col, int):
        flat = " ".join(text.split("\n"))
        i = max(0, min(col - 1, len(flat)))
        left, right = flat[max(0, i - 30):i], flat[i:i + 30]
        return f"{summary}: {left}>>{right}"
    if isinstance(err, OSError) and err.strerror:
        where = f" {err.filename!s}" if err.filename else ""
        return f"{err.strerror}{':' if where else ''}{where}"
    msg = str(err).strip() or type(err).__name__
    return " ".join(line.strip() for line in msg.splitlines() if line.strip())


# -- the parser -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser of the ``symnn`` command (one subparser per subcommand)."""
    from symnn import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show the Python traceback of an error")
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Exact symbolic derivatives of neural networks: backprop equations, "
                    "LaTeX, compiled kernels and training, from TOML spec files.",
        epilog="Spec format: docs/spec-format.md.  Run 'symnn demo' for a tour.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--traceback", action="store_true", default=False,
                        help="show the Python traceback of an error")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("demo", parents=[common], help="derive, print and train the 2-2-1 "
                       "sigmoid XOR network",
                       description="Declare the 2-2-1 sigmoid XOR network with MSE loss, "
                                   "print its backprop equations and the expanded gradient of "
                                   "one weight, then compile and train it.")
    p.add_argument("--epochs", type=_positive_int, default=5000,
                   help="full-batch gradient-descent steps (default 5000)")
    p.add_argument("--lr", type=_positive_float, default=2.0,
                   help="learning rate (default 2.0)")
    p.add_argument("--seed", type=int, default=1, help="initialisation seed (default 1)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("derive", parents=[common], help="print the backprop equations of a spec",
                       description="Print the forward and backprop equations of the network "
                                   "or model a spec file declares.")
    p.add_argument("spec", metavar="SPEC", help="a TOML spec file")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="print LaTeX (align* blocks)")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown document")
    p.add_argument("--expanded", action="store_true",
                   help="also print every ∂L/∂θ written out (small networks)")
    p.set_defaults(func=cmd_derive)

    p = sub.add_parser("latex", parents=[common], help="write a standalone LaTeX document",
                       description="Write the derivation of a spec as a standalone LaTeX "
                                   "article (pdflatex-ready).")
    p.add_argument("spec", metavar="SPEC", help="a TOML spec file")
    p.add_argument("-o", "--output", metavar="OUT.tex",
                   help="file to write (default: print to stdout)")
    p.add_argument("--pdf", action="store_true", help="also run pdflatex on the output")
    p.add_argument("--expanded", action="store_true",
                   help="include the expanded per-parameter gradient")
    p.add_argument("--hessian", action="store_true", help="include the Hessian entries")
    p.add_argument("--title", help="document title")
    p.set_defaults(func=cmd_latex)

    p = sub.add_parser("train", parents=[common], help="compile and train a spec on data",
                       description="Compile the spec's network and train it with its "
                                   "[optimizer] and [training] settings.")
    p.add_argument("spec", metavar="SPEC", help="a TOML spec file")
    p.add_argument("--data", metavar="SOURCE",
                   help="a CSV file or a built-in data set: " + ", ".join(BUILTIN_DATA)
                        + " (default: the spec's [data] source)")
    p.add_argument("-o", "--output", metavar="MODEL.npz", help="save the trained model")
    p.add_argument("--epochs", type=_positive_int, help="override [training] epochs")
    p.add_argument("--batch-size", type=_positive_int, help="override [training] batch_size")
    p.add_argument("--seed", type=int, help="override [training] seed")
    p.add_argument("--plot", metavar="OUT.png", help="save the training curve (matplotlib)")
    p.add_argument("--engine", choices=("auto", "kernel", "python"), default="auto",
                   help="first-order training loop: one compiled call per epoch (kernel), "
                        "a Python loop over the compiled gradient (python), or the kernel "
                        "where the model has one (auto, default)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("check", parents=[common],
                       help="check the compiled gradient against finite differences",
                       description="Compile the spec and compare its gradient with central "
                                   "finite differences at the initial parameters.")
    p.add_argument("spec", metavar="SPEC", help="a TOML spec file")
    p.add_argument("--data", metavar="SOURCE",
                   help="check on (up to --batch rows of) this data instead of random data")
    p.add_argument("--batch", type=_positive_int, default=16,
                   help="samples in the check batch (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of θ and random data")
    p.add_argument("--hessian", action="store_true",
                   help="also check Hessian-vector products")
    p.set_defaults(func=cmd_check)
    return parser


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


# -- demo -------------------------------------------------------------------------------

def cmd_demo(args) -> int:
    """The README's main job: declare, derive, print, compile and train XOR."""
    import symnn

    net = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse", name="xor")
    print("symnn demo: the 2-2-1 sigmoid XOR network with mean squared error")
    print()
    print(net.equations())
    print()
    w = sp.Symbol("W1_11", real=True)
    grad = net.gradient()
    print("Expanded gradient of one weight, for one sample (inputs x1, x2, target y1):")
    for line in _expanded_text({w: grad[w]}, label=lambda s: f"∂L/∂{s}"):
        print("  " + line)
    print()
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    try:
        model = net.compile()
    except (ImportError, AttributeError, NotImplementedError) as err:
        print(f"Training needs the compiled stage (net.compile()), which is not available "
              f"here: {err}")
        return 0
    optimizer = {"name": "sgd", "lr": args.lr}
    print(f"Training: full-batch gradient descent, η = {args.lr:g}, {args.epochs} steps, "
          f"seed {args.seed}")
    rule = _update_rule_text(optimizer)
    if rule:
        print("\n".join("  " + ln if ln else "" for ln in rule.splitlines()))
    # four samples: a Python loop over the compiled gradient beats compiling an epoch kernel
    theta, how = _train(model, X, y, optimizer, epochs=args.epochs, batch_size=None,
                        seed=args.seed,
                        options={"shuffle": False, "progress": False, "engine": "python"})
    loss = _loss(model, theta, X, y)
    print(f"Final loss: {loss:.6g}  ({how})")
    pred = np.asarray(model.predict(theta, X)).reshape(-1)
    print("Predictions:")
    for xi, yi, pi in zip(X, y.ravel(), pred):
        print(f"  x = ({xi[0]:g}, {xi[1]:g})  target {yi:g}  prediction {pi:.4f}")
    return 0


def _expanded_text(grad: dict, label) -> list[str]:
    """Text lines of expanded derivatives with shared subexpressions named ``u1, u2, …``."""
    exprs = list(grad.values())
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(cls=sp.Dummy), order="none")
    taken = {s.name for e in [v for _, v in repl] + list(reduced) for s in e.free_symbols
             if not isinstance(s, sp.Dummy)}
    prefix = next(p for p in ("u", "v", "q", "c", "tmp") if not any(
        n == p or (n.startswith(p) and n[len(p):].isdigit()) for n in taken))
    gen = sp.numbered_symbols(prefix, start=1)
    rename = {d: next(gen) for d, _ in repl}
    lines = [f"{rename[d]} = {sp.sstr(v.xreplace(rename))}" for d, v in repl]
    for s, e in zip(grad, reduced):
        lines.append(f"{label(s)} = {sp.sstr(e.xreplace(rename))}")
    return lines


def _update_rule_text(optimizer) -> str | None:
    opt = _optimizer_object(optimizer)
    if opt is None or not callable(getattr(opt, "equations", None)):
        return None
    try:
        return str(opt.equations()).strip()
    except (SymnnError, ValueError, TypeError, AttributeError, NotImplementedError):
        return None  # printing the rule is a courtesy, never fatal


def _optimizer_object(data):
    """The trainer's optimizer object for spec data, or None where the trainer is absent."""
    try:
        from symnn.train.optimizers import get_optimizer
    except ImportError:
        return None
    return get_optimizer(dict(data))


# -- training helpers (degrade gracefully while stages are missing) ---------------------

def _fit_function(model):
    fit = getattr(model, "fit", None)
    if callable(fit):
        return lambda X, y, optimizer, **kw: fit(X, y, optimizer=optimizer, **kw)
    try:
        from symnn.train import fit as train_fit
    except ImportError:
        return None
    return lambda X, y, optimizer, **kw: train_fit(model, X, y, optimizer, **kw)


def _accepted(fn, options: dict) -> dict:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return options
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return options
    return {k: v for k, v in options.items() if k in params}


def _train(model, X, y, optimizer: dict, *, epochs: int, batch_size, seed: int,
           options: dict | None = None) -> tuple[np.ndarray, str]:
    """Train; returns (θ, how).  Uses ``fit`` where it exists, else plain gradient descent."""
    fit = _fit_function(model)
    kw = {"epochs": epochs, "batch_size": batch_size, "seed": seed, **(options or {})}
    if fit is not None:
        target = getattr(model, "fit", None) or fit
        result = fit(X, y, optimizer, **_accepted(target, kw))
        theta = getattr(result, "params", result)
        return np.asarray(theta), "symnn.train.fit"
    name = str(optimizer.get("name", "sgd")).lower()
    if name != "sgd" or any(k not in ("name", "lr") for k in optimizer):
        raise SymnnError(f"optimizer {name!r} needs symnn.train, which is not available "
                         "here; use [optimizer] name = \"sgd\" with lr only")
    lr = float(optimizer.get("lr", 0.1))
    theta = np.asarray(model.init(seed), dtype=float)
    n = X.shape[0]
    bs = n if batch_size is None else min(batch_size, n)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(n) if bs < n else np.arange(n)
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            _, g = model.loss_and_grad(theta, X[idx], y[idx])
            theta = theta - lr * np.asarray(g)
    if not np.all(np.isfinite(theta)):
        raise SymnnError("training diverged (non-finite parameters); lower the learning rate")
    return theta, "plain gradient descent over loss_and_grad"


def _loss(model, theta, X, y) -> float:
    if callable(getattr(model, "loss", None)):
        return float(model.loss(theta, X, y))
    return float(model.loss_and_grad(theta, X, y)[0])


# -- spec-based commands ----------------------------------------------------------------

def _spec(path: str):
    from symnn.spec import load_spec

    return load_spec(path)


def cmd_derive(args) -> int:
    """``symnn derive SPEC``: print the equations (text, LaTeX or Markdown)."""
    spec = _spec(args.spec)
    declared = spec.declared
    if args.markdown:
        from symnn.printing.document import export_markdown

        sys.stdout.write(export_markdown(declared, optimizer=spec.optimizer,
                                         expanded=args.expanded, title=spec.title))
        return 0
    eqs = declared.equations()
    if args.latex:
        print(eqs.latex())
        if args.expanded:
            from symnn.printing.document import expanded_gradient_latex

            print(expanded_gradient_latex(declared))
        return 0
    print(eqs)
    if args.expanded:
        _check_expanded_size(declared)
        grad = declared.gradient()
        print()
        print("Expanded gradient, for one sample:")
        for line in _expanded_text(grad, label=lambda s: f"∂L/∂{s}"):
            print("  " + line)
    return 0


def _check_expanded_size(declared) -> None:
    from symnn.printing.document import EXPANDED_LIMIT

    if declared.n_params > EXPANDED_LIMIT:
        from symnn.errors import SizeLimitError

        raise SizeLimitError(
            f"--expanded prints every ∂L/∂θ; this network has {declared.n_params} parameters "
            f"(limit {EXPANDED_LIMIT}); drop --expanded for the matrix form")


def cmd_latex(args) -> int:
    """``symnn latex SPEC``: write a standalone LaTeX document."""
    from symnn.printing.document import compile_pdf, export_latex

    if args.pdf and not args.output:
        raise SpecError("--pdf needs -o OUT.tex (the PDF is written next to it)")
    spec = _spec(args.spec)
    optimizer: Any = spec.optimizer
    if optimizer is not None:
        optimizer = _optimizer_object(optimizer) or optimizer
    text = export_latex(spec.declared, args.output, optimizer=optimizer,
                        expanded=args.expanded, hessian=args.hessian,
                        title=args.title or spec.title)
    if not args.output:
        sys.stdout.write(text)
        return 0
    print(f"wrote {args.output}")
    if args.pdf:
        pdf = compile_pdf(args.output)
        print(f"wrote {pdf}")
    return 0


def _compile(declared, dtype: str = "float64"):
    try:
        return declared.compile(dtype=dtype)
    except (ImportError, AttributeError) as err:
        raise SymnnError(f"this command needs the compiled stage (net.compile()), which is "
                         f"not available here: {err}") from err


def cmd_train(args) -> int:
    """``symnn train SPEC``: load data, compile, train, report, save."""
    spec = _spec(args.spec)
    declared = spec.declared
    t = dict(spec.training)
    source = args.data or spec.data.get("source")
    if not source:
        raise SpecError(f"{args.spec}: no training data: pass --data FILE.csv or one of "
                        f"{', '.join(BUILTIN_DATA)}, or set [data] source in the spec")
    if args.data is None and spec.data_path() is not None:
        source = str(spec.data_path())
    if args.plot:
        _need_matplotlib()
    X, y = load_data(source, declared, spec.data)
    model = _compile(declared, t.get("dtype", "float64"))
    optimizer = spec.optimizer or {"name": "adam", "lr": 1e-3}
    epochs = args.epochs or t.get("epochs", 100)
    batch_size = args.batch_size or t.get("batch_size", 32)
    seed = args.seed if args.seed is not None else t.get("seed", 0)
    options: dict[str, Any] = {"engine": args.engine}
    if "shuffle" in t:
        options["shuffle"] = t["shuffle"]
    if t.get("check_every"):
        options["check_every"] = t["check_every"]
    if t.get("validation_split"):
        options["validation"] = float(t["validation_split"])
    if "patience" in t:
        options["early_stopping"] = t["patience"]
    if "verbose" in t:
        options["progress"] = t["verbose"]
    X_test = y_test = None
    if spec.data.get("test_size"):
        X, y, X_test, y_test = _split(X, y, float(spec.data["test_size"]), seed, source)
    held = f" ({X_test.shape[0]} held out for testing)" if X_test is not None else ""
    print(f"training {declared.name} ({declared.n_params} parameters) on {source}: "
          f"{X.shape[0]} samples{held}, {epochs} epochs, batch {batch_size}, optimizer "
          f"{optimizer.get('name')}")
    fit = _fit_function(model)
    history = None
    if fit is not None:
        target = getattr(model, "fit", None) or fit
        result = fit(X, y, optimizer, **_accepted(target, {
            "epochs": epochs, "batch_size": batch_size, "seed": seed, **options}))
        theta = np.asarray(result.params)
        history = getattr(result, "history", None)
    else:
        theta, _ = _train(model, X, y, optimizer, epochs=epochs, batch_size=batch_size,
                          seed=seed)
    _report(model, theta, X, y, "training")
    if X_test is not None:
        _report(model, theta, X_test, y_test, "test")
    if args.output:
        _save(args.output, model, theta, spec, history)
        print(f"saved {args.output}")
    if args.plot:
        _plot(args.plot, history, declared.name)
        print(f"saved {args.plot}")
    return 0


def _split(X, y, fraction: float, seed: int, source: str):
    n = X.shape[0]
    n_test = round(fraction * n)
    if not 1 <= n_test < n:
        raise DataError(f"{source}: [data] test_size = {fraction:g} of {n} samples leaves no "
                        "sample on one side; choose a fraction in (0, 1)")
    idx = np.random.default_rng(seed).permutation(n)
    test, train = np.sort(idx[:n_test]), np.sort(idx[n_test:])
    return X[train], y[train], X[test], y[test]


def _report(model, theta, X, y, what: str) -> None:
    """Print the loss and accuracy (labels) or RMSE (regression) on ``(X, y)``."""
    print(f"final {what} loss: {_loss(model, theta, X, y):.6g}")
    pred = np.asarray(model.predict(theta, X)).reshape(y.shape)
    declared = model.declared
    if declared.n_outputs > 1 and declared.loss.probabilities:
        acc = float(np.mean(np.argmax(pred, axis=1) == np.argmax(y, axis=1)))
        print(f"{what} accuracy: {100 * acc:.2f}%")
    elif declared.n_outputs == 1 and np.all((y == 0) | (y == 1)):
        acc = float(np.mean((pred > 0.5) == (y > 0.5)))
        print(f"{what} accuracy: {100 * acc:.2f}% (threshold 0.5)")
    else:
        rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
        print(f"{what} RMSE: {rmse:.6g}")


def _save(path: str, model, theta: np.ndarray, spec, history) -> None:
    try:
        from symnn.train import save
    except ImportError:
        save = None
    if save is not None:
        kw = _accepted(save, {"history": history, "metadata": {"spec": spec.to_toml()}})
        save(path, model, theta, **kw)
        return
    # fallback: a plain .npz (no pickle), written atomically
    target = Path(path)
    names = [n for n, _ in model.param_shapes]
    shapes = [list(s) for _, s in model.param_shapes]
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".npz",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, theta=np.asarray(theta, dtype=np.float64),
                     param_names=np.array(names, dtype=str),
                     param_shapes=np.array(repr(shapes), dtype=str),
                     spec=np.array(spec.to_toml(), dtype=str))
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise SymnnError("--plot needs matplotlib (pip install matplotlib)") from err


def _plot(path: str, history, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = getattr(history, "loss", None)
    if losses is None or len(losses) == 0:
        raise SymnnError("--plot: the trainer recorded no loss history to plot")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, len(losses) + 1), losses, label="training loss")
    val = getattr(history, "val_loss", None)
    if val is not None and np.any(np.isfinite(val)):
        ax.plot(np.arange(1, len(val) + 1), val, label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def cmd_check(args) -> int:
    """``symnn check SPEC``: gradient (and Hessian) against finite differences."""
    spec = _spec(args.spec)
    declared = spec.declared
    model = _compile(declared, spec.training.get("dtype", "float64"))
    rng = np.random.default_rng(args.seed)
    if args.data:
        X, y = load_data(args.data, declared, spec.data)
        idx = rng.permutation(X.shape[0])[: args.batch]
        X, y = X[idx], y[idx]
    else:
        X, y = random_batch(declared, args.batch, rng)
    theta = np.asarray(model.init(args.seed))
    try:
        from symnn.check import gradcheck, hesscheck
    except ImportError as err:  # pragma: no cover - check.py ships with symnn
        raise SymnnError(f"symnn.check is not available: {err}") from err
    report = gradcheck(model, theta, X, y, seed=args.seed)
    print(f"{declared.name}: {declared.n_params} parameters, batch of {X.shape[0]}")
    print(report)
    ok = bool(report)
    if args.hessian:
        h = hesscheck(model, theta, X, y, seed=args.seed)
        print(h)
        ok = ok and bool(h)
    if not ok:
        _error("the derivative check failed (see the report above)")
        return 1
    return 0


def random_batch(declared, batch: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs and targets valid for the declared loss (probability rows, [0, 1]…)."""
    X = rng.normal(size=(batch, declared.n_inputs))
    n = declared.n_outputs
    name = declared.loss.name
    if declared.loss.probabilities:
        Y = rng.random((batch, n)) + 0.05
        Y /= Y.sum(axis=1, keepdims=True)
    elif name == "bce":
        Y = rng.random((batch, n))
    else:
        Y = rng.normal(size=(batch, n))
    return X, Y


# -- data -------------------------------------------------------------------------------

def load_data(source: str, declared, options: dict | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets for ``declared`` from a built-in data set or a CSV file.

    Built-in: ``xor`` (4 samples), ``digits`` (1797 × 64, pixels scaled to [0, 1]),
    ``iris`` (150 × 4, standardised), ``diabetes`` (442 × 10, target standardised) — the
    last three from scikit-learn.  Class labels become one-hot rows when the model has one
    output per class.

    A CSV file has one row per sample, an optional header row, and the targets in the
    column(s) named by ``[data] target`` (default: the last column(s)).

    Raises
    ------
    DataError
        When the data do not fit the model (feature or target counts), hold non-numbers,
        or a built-in data set needs scikit-learn and it is missing.

    Examples
    --------
    >>> import symnn
    >>> X, y = load_data("xor", symnn.mlp([2, 2, 1]))
    >>> X.shape, y.shape
    ((4, 2), (4, 1))
    """
    opts = dict(options or {})
    key = source.strip().lower()
    if key in BUILTIN_DATA:
        X, y, classes = _builtin(key)
    else:
        X, y, classes = _csv(source, declared, opts)
    if opts.get("standardize"):
        sd = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    if X.shape[1] != declared.n_inputs:
        raise DataError(f"{source}: {X.shape[1]} input features, but {declared.name} takes "
                        f"{declared.n_inputs} inputs")
    n_out = declared.n_outputs
    if y.ndim == 1:
        if classes or opts.get("one_hot"):
            labels = y.astype(np.int64)
            if not np.array_equal(labels, y) or labels.min() < 0:
                raise DataError(f"{source}: class labels must be integers ≥ 0")
            k = int(labels.max()) + 1
            if n_out == 1 and k <= 2:
                y = labels.astype(float).reshape(-1, 1)
            elif k > n_out:
                raise DataError(f"{source}: {k} classes, but {declared.name} has {n_out} "
                                "outputs; give it one output per class")
            else:
                y = np.eye(n_out)[labels]
        else:
            y = y.reshape(-1, 1)
    if y.shape[1] != n_out:
        raise DataError(f"{source}: {y.shape[1]} target column(s), but {declared.name} has "
                        f"{n_out} outputs")
    return np.ascontiguousarray(X, dtype=float), np.ascontiguousarray(y, dtype=float)


def _builtin(key: str) -> tuple[np.ndarray, np.ndarray, bool]:
    if key == "xor":
        X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        return X, np.array([0.0, 1.0, 1.0, 0.0]), True
    try:
        from sklearn import datasets
    except ImportError as err:
        raise DataError(f"the built-in data set {key!r} comes from scikit-learn, which is "
                        "not installed (pip install scikit-learn), or pass a CSV file") from err
    if key == "digits":
        d = datasets.load_digits()
        return d.data / 16.0, d.target.astype(float), True
    if key == "iris":
        d = datasets.load_iris()
        X = (d.data - d.data.mean(axis=0)) / d.data.std(axis=0)
        return X, d.target.astype(float), True
    d = datasets.load_diabetes()
    y = (d.target - d.target.mean()) / d.target.std()
    return d.data, y, False


def _csv(path: str, declared, opts: dict) -> tuple[np.ndarray, np.ndarray, bool]:
    delim = opts.get("delimiter", ",")
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh, delimiter=delim) if any(c.strip() for c in r)]
    except OSError as err:
        raise DataError(f"{path}: cannot read the data file: {err.strerror or err}") from err
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV file: {err}") from err
    if not rows:
        raise DataError(f"{path}: no data rows")
    header = None
    has_header = opts.get("header")
    if has_header is None:
        has_header = not all(_is_number(c) for c in rows[0])
    if has_header:
        header = [c.strip() for c in rows[0]]
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path}: a header but no data rows")
    width = len(rows[0])
    data = np.empty((len(rows), width))
    for i, r in enumerate(rows):
        line = i + 1 + (1 if header else 0)
        if len(r) != width:
            raise DataError(f"{path}, line {line}: {len(r)} columns, expected {width}")
        for j, c in enumerate(r):
            try:
                data[i, j] = float(c)
            except ValueError:
                raise DataError(f"{path}, line {line}, column {j + 1}: {c.strip()!r} is not a "
                                "number") from None
    if not np.all(np.isfinite(data)):
        i, j = np.argwhere(~np.isfinite(data))[0]
        raise DataError(f"{path}: row {i + 1}, column {j + 1} is not finite")
    target = opts.get("target")
    n_in, n_out = declared.n_inputs, declared.n_outputs
    if target is not None:
        cols = [_column(t, header, width, path) for t in (
            target if isinstance(target, list) else [target])]
    elif width == n_in + n_out:
        cols = list(range(n_in, width))
    elif width == n_in + 1:
        cols = [width - 1]
    else:
        raise DataError(f"{path}: {width} columns; expected {n_in} inputs followed by "
                        f"{n_out} target column(s) (or one class-label column), or name the "
                        "target with [data] target")
    feats = [j for j in range(width) if j not in cols]
    X = data[:, feats]
    y = data[:, cols]
    classes = False
    if len(cols) == 1:
        y = y[:, 0]
        classes = n_out > 1 and declared.loss.probabilities
    return X, y, classes


def _column(t, header, width, path) -> int:
    if isinstance(t, int):
        j = t if t >= 0 else width + t
        if not 0 <= j < width:
            raise DataError(f"{path}: target column {t} is out of range (0..{width - 1})")
        return j
    if header is None or t not in header:
        raise DataError(f"{path}: no column named {t!r}"
                        + (f"; columns: {', '.join(header)}" if header else " (no header row)"))
    return header.index(t)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
