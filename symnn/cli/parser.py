"""The ``argparse`` parser of the ``symnn`` command: one subparser per subcommand."""

from __future__ import annotations

import argparse

from symnn.cli import commands, training
from symnn.cli._common import MAX_BATCH, MAX_BATCH_SIZE, MAX_EPOCHS, MAX_LIMIT, PROG
from symnn.data import BUILTIN_DATA

__all__ = ["build_parser"]

#: largest ``--workers`` (worker processes of a local cluster)
MAX_WORKERS = 256


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
    for add in (_add_demo, _add_derive, _add_latex, _add_train, _add_check, _add_predict):
        add(sub, common)
    return parser


def _add_demo(sub, common) -> None:
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
    p.set_defaults(func=commands.cmd_demo)


def _add_derive(sub, common) -> None:
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
    p.set_defaults(func=commands.cmd_derive)


def _add_latex(sub, common) -> None:
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
    p.set_defaults(func=commands.cmd_latex)


def _add_train(sub, common) -> None:
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
    where = p.add_argument_group(
        "distributed training (Dask; pip install 'symnn[distributed]')",
        "Train over data shards: a first-order optimizer trains mini-batch (each batch's "
        "gradient summed over the workers), a second-order one (newton_cg, lbfgs, newton, "
        "lm) full batch (every loss, gradient and product summed over the workers); the "
        "same steps as in one process.  Without these flags training runs in this process.")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="connect to a running Dask scheduler, e.g. tcp://host:8786")
    where.add_argument("--workers", type=_bounded_int(MAX_WORKERS), metavar="N",
                       help="start a local Dask cluster of N worker processes (one thread "
                            "each) for this run")
    p.set_defaults(func=training.cmd_train)


def _add_check(sub, common) -> None:
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
    p.set_defaults(func=commands.cmd_check)


def _add_predict(sub, common) -> None:
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
    p.set_defaults(func=training.cmd_predict)


# -- argument types -----------------------------------------------------------------------

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
