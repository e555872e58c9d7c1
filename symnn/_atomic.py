"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A crash or a concurrent reader never sees half a file under the final name.  Used by the
kernel cache, saved models, LaTeX documents and plots.

Examples
--------
>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "out.txt")
>>> with atomic_path(p) as tmp:
...     with open(tmp, "w") as fh:
...         _ = fh.write("done")
>>> open(p).read()
'done'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

__all__ = ["atomic_path", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to
    ``path`` (with the permissions a plain ``open`` would give), on failure removed."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    name = os.path.basename(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
