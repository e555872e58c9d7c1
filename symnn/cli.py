"""The ``symnn`` command line: derive, print, export, check and train from spec files.

Subcommands::

    symnn demo                               the 2-2-1 sigmoid XOR network, end to end
    symnn derive SPEC [--latex|--markdown] [--expanded]
    symnn latex SPEC [-o out.tex] [--pdf] [--expanded] [--hessian]
    symnn train SPEC [--data FILE.csv|xor|digits|iris|diabetes] [-o model.npz]
                     [--epochs N] [--plot out.png] [--allow-outside-data]
    symnn predict MODEL.npz|SPEC --data FILE.csv [-o predictions.csv]
    symnn check SPEC [--data ...]            finite-difference check of the gradient

A spec file is not trusted: a data path in it is read relative to the spec file and may
not leave its folder unless ``--allow-outside-data`` is given; sizes on the command line
are bounded (``--batch``, ``--epochs``, ``--batch-size``).  See ``docs/security.md``.

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
import io
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from symnn.data import BUILTIN_DATA, load_data, load_dataset, load_features
from symnn.errors import DataError, SizeLimitError, SpecError, SymnnError, TrainingError

__all__ = ["build_parser", "load_data", "main", "MAX_BATCH", "MAX_EPOCHS"]

PROG = "symnn"

#: Most samples ``symnn check --batch`` takes (random data of that size is generated).
MAX_BATCH = 100_000
#: Most epochs and the largest mini-batch ``symnn train`` accepts.
MAX_EPOCHS = 10_000_000
MAX_BATCH_SIZE = 10_000_000
#: Largest expanded-form limit ``--limit`` accepts.
MAX_LIMIT = 100_000


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
    p.add_argument("--epochs", type=_bounded_int(MAX_EPOCHS), default=5000,
                   help="full-batch gradient-descent steps (default 5000)")
    p.add_argument("--lr", type=_positive_float, default=2.0,
                   help="learning rate (default 2.0)")
    p.add_argument("--seed", type=_seed, default=1, help="initialisation seed (default 1)")
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
    p.add_argument("--limit", type=_bounded_int(MAX_LIMIT), metavar="N",
                   help="largest number of parameters --expanded writes out (default: "
                        "symnn's limit)")
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
    p.add_argument("--limit", type=_bounded_int(MAX_LIMIT), metavar="N",
                   help="largest number of parameters --expanded/--hessian write out "
                        "(default: symnn's limit)")
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
    p.add_argument("--epochs", type=_bounded_int(MAX_EPOCHS), help="override [training] epochs")
    p.add_argument("--batch-size", type=_bounded_int(MAX_BATCH_SIZE),
                   help="override [training] batch_size")
    p.add_argument("--seed", type=_seed, help="override [training] seed")
    p.add_argument("--allow-outside-data", action="store_true",
                   help="let the spec's [data] source name a file outside the spec file's "
                        "folder")
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
    p.add_argument("--batch", type=_bounded_int(MAX_BATCH), default=16,
                   help=f"samples in the check batch (default 16, at most {MAX_BATCH})")
    p.add_argument("--seed", type=_seed, default=0, help="seed of θ and random data")
    p.add_argument("--hessian", action="store_true",
                   help="also check Hessian-vector products")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("predict", parents=[common],
                       help="predict with a saved model (or a spec, trained first)",
                       description="Apply a model saved by 'symnn train -o MODEL.npz' — with "
                                   "its stored preprocessing (standardisation) — to the rows "
                                   "of a CSV file.  Given a spec instead, train it first as "
                                   "'symnn train' would.")
    p.add_argument("model", metavar="MODEL_OR_SPEC", help="a saved model (.npz) or a spec")
    p.add_argument("--data", metavar="SOURCE", required=True,
                   help="a CSV file of inputs (target columns, if present, are dropped) or a "
                        "built-in data set")
    p.add_argument("-o", "--output", metavar="PREDICTIONS.csv",
                   help="write the predictions here (default: print them)")
    p.add_argument("--allow-outside-data", action="store_true",
                   help="(spec only) allow the spec's [data] source outside its folder")
    p.set_defaults(func=cmd_predict)
    return parser


def _bounded_int(hi: int):
    def parse(text: str) -> int:
        v = _positive_int(text)
        if v > hi:
            raise argparse.ArgumentTypeError(f"{text} is too large (at most {hi})")
        return v

    parse.__name__ = "positive integer"
    return parse


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= v < 2**63:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to 2**63 - 1, got "
                                         f"{text!r}")
    return v


def _positive_int(text: str) -> int:
    if len(text) > 30:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text[:30]!r}...")
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
    wrong = int(np.sum((pred > 0.5) != (y.ravel() > 0.5)))
    if wrong:
        import textwrap

        note = (f"Note: this run did not learn XOR ({wrong} of 4 predictions on the wrong "
                "side of 0.5). Gradient descent from this "
                "initialisation ended in XOR's well-known local minimum: the two hidden "
                "units cannot separate the classes and the output settles at 0.5 for two "
                "inputs. It is a property of the loss surface, not a bug: rerun with another "
                "--seed (the default, 1, succeeds).")
        print()
        print(textwrap.fill(note, width=88))
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

        with _limit_hint():
            sys.stdout.write(export_markdown(declared, optimizer=spec.optimizer,
                                             expanded=args.expanded, title=spec.title,
                                             **_limit_kw(export_markdown, args.limit)))
        return 0
    eqs = declared.equations()
    if args.latex:
        print(eqs.latex())
        if args.expanded:
            from symnn.printing.document import expanded_gradient_latex

            with _limit_hint():
                print(expanded_gradient_latex(declared, limit=args.limit))
        return 0
    print(eqs)
    if args.expanded:
        _check_expanded_size(declared, args.limit)
        grad = declared.gradient()
        print()
        print("Expanded gradient, for one sample:")
        for line in _expanded_text(grad, label=lambda s: f"∂L/∂{s}"):
            print("  " + line)
    return 0


def _check_expanded_size(declared, limit: int | None = None) -> None:
    from symnn.printing.document import EXPANDED_LIMIT

    lim = EXPANDED_LIMIT if limit is None else limit
    if declared.n_params > lim:
        raise SizeLimitError(
            f"--expanded prints every ∂L/∂θ; this network has {declared.n_params} parameters "
            f"(limit {lim}; --limit N raises it); drop --expanded for the matrix form")


def _limit_kw(fn, limit: int | None) -> dict:
    """``{"limit": limit}`` when given and ``fn`` takes it."""
    return {} if limit is None else _accepted(fn, {"limit": limit})


class _limit_hint:
    """Turn the library's "limit= raises it" into the command line's "--limit N"."""

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if isinstance(err, SizeLimitError) and "limit=" in str(err):
            raise SizeLimitError(str(err).replace("limit= raises it", "--limit N raises it")
                                 ) from err
        return False


def cmd_latex(args) -> int:
    """``symnn latex SPEC``: write a standalone LaTeX document."""
    from symnn.printing.document import compile_pdf, export_latex

    if args.pdf and not args.output:
        raise SpecError("--pdf needs -o OUT.tex (the PDF is written next to it)")
    spec = _spec(args.spec)
    optimizer: Any = spec.optimizer
    if optimizer is not None:
        optimizer = _optimizer_object(optimizer) or optimizer
    with _limit_hint():
        text = export_latex(spec.declared, args.output, optimizer=optimizer,
                            expanded=args.expanded, hessian=args.hessian,
                            title=args.title or spec.title,
                            **_limit_kw(export_latex, args.limit))
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
    _check_output(args.output)
    _check_output(args.plot)
    if args.plot:
        _need_matplotlib()
    model, theta, history, scaler = _train_spec(spec, args, args.spec, save_to=args.output)
    if args.output:
        _save(args.output, model, theta, spec, history, scaler)
        print(f"saved {args.output}")
    if args.plot:
        _plot(args.plot, history, spec.declared.name)
        print(f"saved {args.plot}")
    return 0


def _check_output(path: str | None) -> None:
    """Refuse, before any work, an output whose folder does not exist (not after an hour
    of training)."""
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise FileNotFoundError(2, "the folder to write into does not exist", path)


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


def _train_spec(spec, args, spec_arg: str, out=None, save_to: str | None = None):
    """Train a spec as ``symnn train`` does; returns (compiled model, θ, history, scaler).

    When training stops early — Ctrl-C, or a failed check — the last good parameters the
    trainer hands back are saved to ``save_to`` before the error goes on."""
    out = out or sys.stdout
    declared = spec.declared
    t = dict(spec.training)
    given = getattr(args, "data", None) if getattr(args, "func", None) is cmd_train else None
    source = _data_source(spec, args, spec_arg, given)
    X, y, scaler = load_dataset(source, declared, spec.data)
    model = _compile(declared, t.get("dtype", "float64"))
    optimizer = spec.optimizer or {"name": "adam", "lr": 1e-3}
    epochs = getattr(args, "epochs", None) or t.get("epochs", 100)
    batch_size = getattr(args, "batch_size", None) or t.get("batch_size", 32)
    seed = args.seed if getattr(args, "seed", None) is not None else t.get("seed", 0)
    options: dict[str, Any] = {"engine": getattr(args, "engine", "auto")}
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
    scaled = ", inputs standardised" if scaler is not None else ""
    print(f"training {declared.name} ({declared.n_params} parameters) on {source}: "
          f"{X.shape[0]} samples{held}{scaled}, {epochs} epochs, batch {batch_size}, "
          f"optimizer {optimizer.get('name')}", file=out)
    fit = _fit_function(model)
    history = None
    if fit is not None:
        target = getattr(model, "fit", None) or fit
        try:
            result = fit(X, y, optimizer, **_accepted(target, {
                "epochs": epochs, "batch_size": batch_size, "seed": seed, **options}))
        except (TrainingError, KeyboardInterrupt) as err:
            params = getattr(err, "params", None)
            if save_to and params is not None:
                _save(save_to, model, np.asarray(params), spec, getattr(err, "history", None),
                      scaler)
                print(f"{PROG}: training stopped; saved the last good parameters to "
                      f"{save_to}", file=sys.stderr)
            raise
        theta = np.asarray(result.params)
        history = getattr(result, "history", None)
    else:
        theta, _ = _train(model, X, y, optimizer, epochs=epochs, batch_size=batch_size,
                          seed=seed)
    _report(model, theta, X, y, "training", out)
    if X_test is not None:
        _report(model, theta, X_test, y_test, "test", out)
    return model, theta, history, scaler


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
    print(f"final {what} loss: {_loss(model, theta, X, y):.6g}", file=out)
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


# -- predict ------------------------------------------------------------------------------

def _is_model_file(path: str) -> bool:
    """True when ``path`` is a regular file starting like a zip archive (an ``.npz``)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        import stat

        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, 4) == b"PK\x03\x04"
    except OSError:
        return False
    finally:
        os.close(fd)


def cmd_predict(args) -> int:
    """``symnn predict MODEL.npz|SPEC --data FILE.csv``: predictions as CSV."""
    _check_output(args.output)
    if _is_model_file(args.model):
        from symnn.train.io import load

        saved = load(args.model)
        declared = saved.declared
        X = load_features(args.data, declared.n_inputs, declared.n_outputs,
                          _csv_options(saved.metadata))
        pred = saved.predict(X)
    else:
        spec = _spec(args.model)
        declared = spec.declared
        # training chatter goes to stderr: stdout carries the predictions
        model, theta, _, scaler = _train_spec(spec, args, args.model, out=sys.stderr)
        X = load_features(args.data, declared.n_inputs, declared.n_outputs, spec.data)
        Xs = X if scaler is None else scaler.transform(X)
        pred = np.asarray(model.predict(theta, Xs)).reshape(X.shape[0], -1)
    text = _predictions_csv(pred, declared)
    if args.output:
        from symnn._atomic import atomic_write_text

        atomic_write_text(args.output, text)
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
