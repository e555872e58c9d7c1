"""Files given where a spec file is read that are plainly something else: a saved model
(a ``.npz`` zip archive) gets a message that says so and names what reads it, instead of
"not UTF-8 text" or "more than … bytes" (walk, round 5)."""

from __future__ import annotations

from pathlib import Path

from symnn.errors import SpecError

__all__ = ["refuse_model_file"]

_ZIP = b"PK\x03\x04"


def refuse_model_file(p: Path, head: bytes | None = None) -> None:
    """Raise a SpecError if ``p`` (whose first bytes are ``head``, read here if ``None``)
    is a zip archive such as a saved model file.

    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "m.npz"
    >>> np.savez(path, theta=np.zeros(2))
    >>> refuse_model_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symnn.errors.SpecError: ...m.npz: this is a zip archive (a saved .npz model file?), ...
    """
    if head is None:  # read_regular_file refused it: a FIFO must not block the open
        try:
            if not Path(p).is_file():
                return
            with open(p, "rb") as fh:
                head = fh.read(4)
        except OSError:
            return
    if head == _ZIP:
        raise SpecError(f"{p}: this is a zip archive (a saved .npz model file?), not a TOML "
                        "spec; symnn derive, latex, check and train read spec files "
                        "(docs/spec-format.md); a model file is read by 'symnn predict "
                        "MODEL.npz --data FILE.csv' or symnn.load(path)")
