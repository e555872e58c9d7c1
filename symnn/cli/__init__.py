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

The parser is :mod:`symnn.cli.parser`; the subcommands live in :mod:`symnn.cli.commands`
(``demo``, ``derive``, ``latex``, ``check``) and :mod:`symnn.cli.training` (``train``,
``predict``).

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
symnn ...
0
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from symnn.cli._common import MAX_BATCH, MAX_EPOCHS, PROG, error
from symnn.cli.parser import build_parser
from symnn.data import load_data
from symnn.errors import SymnnError

__all__ = ["build_parser", "load_data", "main", "MAX_BATCH", "MAX_EPOCHS"]


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
    return _run(args)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line, ``symnn: warning: <message>`` (walk: not a source excerpt)."""
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def _run(args) -> int:
    """Run the subcommand; every failure becomes one line on stderr (or, with
    ``--traceback``, the Python traceback)."""
    import warnings

    try:
        with warnings.catch_warnings():
            if not args.traceback:
                warnings.showwarning = _warning_line
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        error("interrupted")
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
        error(_one_line(err))
        return 1
    except Exception as err:  # the last line of defence of a command line
        if args.traceback:
            raise
        error(f"unexpected {type(err).__name__}: {_one_line(err)} (this is a bug in symnn; "
              "rerun with --traceback and report it)")
        return 1


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
