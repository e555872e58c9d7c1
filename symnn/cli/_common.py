"""What every ``symnn`` subcommand shares: the program name, the error line, spec loading,
output checks and the loss figure."""

from __future__ import annotations

import os
import sys

from symnn.errors import SizeLimitError, SpecError

PROG = "symnn"

#: Most samples ``symnn check --batch`` takes (random data of that size is generated).
MAX_BATCH = 100_000
#: Most epochs and the largest mini-batch ``symnn train`` accepts.
MAX_EPOCHS = 10_000_000
MAX_BATCH_SIZE = 10_000_000
#: Largest expanded-form limit ``--limit`` accepts.
MAX_LIMIT = 100_000


def error(message: str) -> None:
    """Print ``symnn: error: <message>`` on stderr."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def load_spec(path: str):
    """The spec file at ``path`` (:func:`symnn.spec.load_spec`)."""
    from symnn.spec import load_spec as load

    return load(path)


def check_output(path: str | None, *inputs: str | None) -> None:
    """Refuse, before any work, an output whose folder does not exist (not after an hour
    of training), or that is one of the command's input files (walk: ``symnn predict
    model.npz -o model.npz`` replaced the model with its predictions)."""
    if path is not None and not str(path).strip():  # walk 7: -o "" trained, saved nothing
        raise SpecError("the output path is empty; give a file name")
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise FileNotFoundError(2, "the folder to write into does not exist", path)
    if path:  # walk 7: a device, a directory or /dev/stdout, before any work
        from symnn._atomic import _check_target

        try:
            _check_target(path)
        except OSError as err:
            raise SpecError(f"{path}: cannot write the output there: {err.strerror}") from None
    for src in inputs:
        try:
            same = bool(path and src) and os.path.samefile(path, src)
        except OSError:  # one of them does not exist (yet): not the same file
            same = False
        if same:
            raise SpecError(f"{path}: this is also the command's input file; writing the "
                            "output there would destroy it — give another -o/--output "
                            "(or --plot) path")


def loss(model, theta, X, y) -> float:
    """The model's loss at ``theta`` on ``(X, y)``, as a float."""
    return float(model.loss(theta, X, y))


class limit_hint:
    """Turn the library's "limit= raises it" into the command line's "--limit N"."""

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if isinstance(err, SizeLimitError) and "limit=" in str(err):
            raise SizeLimitError(str(err).replace("limit= raises it", "--limit N raises it")
                                 ) from err
        return False
