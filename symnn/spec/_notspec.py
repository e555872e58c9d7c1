"""Files given where a spec file is read that are plainly something else: a saved model
(a ``.npz`` zip archive) gets a message that says so and names what reads it, instead of
"not UTF-8 text" or "more than … bytes" (walk, round 5)."""

from __future__ import annotations

from pathlib import Path

from symnn.errors import SpecError

__all__ = ["refuse_model_file", "not_toml_hint"]

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


def not_toml_hint(text: str) -> str:
    """A hint for TOML that does not parse because it is JSON (walk, round 6: a ``.json``
    spec was only "malformed TOML: Invalid statement (at line 1, column 1)").

    >>> not_toml_hint('{"network": {"layers": [2, 1]}}')[:40]
    '; this is JSON: spec files are TOML (wri'
    >>> not_toml_hint("[network]\\nlayers = [2, 1")
    ''
    """
    import json

    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return ""
    try:
        json.loads(stripped)
    except (ValueError, RecursionError):
        if not stripped.startswith("{"):
            return ""
    return ("; this is JSON: spec files are TOML (write [network] on one line, then "
            "layers = [2, 3, 1] on the next; see docs/spec-format.md)")
