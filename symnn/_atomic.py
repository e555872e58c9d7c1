"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A crash or a concurrent reader never sees half a file under the final name.  Used by the
kernel cache, saved models, LaTeX documents and plots.

A writer holds an exclusive ``flock`` on its temporary file until it is renamed, so a
process killed mid-write leaves a temporary nobody holds.  The next write of the *same
target* removes such stale temporaries (``.<name>.*.tmp``) — a killed ``save`` of a
200 MB model does not leave 200 MB behind for ever — while the temporaries of a writer
still alive (locked) are left alone.  Where ``flock`` is unavailable only temporaries
older than :data:`STALE_AFTER` seconds are removed.

Errors name the target, never the temporary file: writing into a folder that does not
exist raises ``FileNotFoundError`` whose ``filename`` is the target.

Examples
--------
>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "out.txt")
>>> with atomic_path(p) as tmp:
...     with open(tmp, "w") as fh:
...         _ = fh.write("done")
>>> from pathlib import Path
>>> Path(p).read_text()
'done'
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import stat
import tempfile
import time
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_path", "atomic_write_text", "STALE_AFTER"]

#: Without ``flock``: age (seconds) after which a leftover temporary counts as stale.
STALE_AFTER = 3600.0


def _clean_stale(directory: str, name: str, suffix: str) -> None:
    """Remove leftover temporaries of ``name`` that no live writer holds."""
    pattern = os.path.join(glob.escape(directory), glob.escape(f".{name}.") + "*"
                           + glob.escape(suffix))
    for tmp in glob.glob(pattern):
        with contextlib.suppress(OSError):
            st = os.lstat(tmp)
            if not (st.st_mode & 0o170000) == 0o100000:  # only regular files
                continue
            if fcntl is None:
                if time.time() - st.st_mtime > STALE_AFTER:
                    os.unlink(tmp)
                continue
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            finally:
                os.close(fd)
            os.unlink(tmp)


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"))


def _follow(link: str) -> str:
    """Where the symlink ``link`` leads; refuses a link into ``/proc`` (``/dev/stdout``
    is a process's open stream, not a file to replace)."""
    path = link
    for _ in range(40):
        if not os.path.islink(path):
            break
        path = os.path.join(os.path.dirname(path), os.readlink(path))
        if os.path.abspath(path).startswith("/proc/"):
            raise OSError(errno.EINVAL, "it is a link to a stream of a process (like "
                          "/dev/stdout), not a file; symnn writes whole files (atomically): "
                          "give a file path", link)
    return os.path.realpath(link)


def _check_target(target: str) -> str:
    """The path to write: ``target``, or the file a symlink there points to (the link is
    kept; walk 7: the rename replaced the link itself — ``-o /dev/stdout`` replaced that
    link).  Refuses a path with a NUL, and one that exists and is not a regular file
    (walk 7: ``save("/dev/full", …)`` run as root replaced the device node)."""
    if "\0" in target:
        raise OSError(errno.EINVAL, "the path holds a NUL character",
                      target.replace("\0", "\\0"))
    if os.path.islink(target):
        target = _follow(target)
    try:
        mode = os.stat(target).st_mode
    except (OSError, ValueError):
        return target  # a new file
    kind = next((k for test, k in _KINDS if test(mode)), None)
    if kind is not None:
        raise OSError(errno.EEXIST, f"it exists and is {kind}, not a regular file; symnn "
                      "writes a new file or replaces a regular one: give another path", target)
    return target


def _target_error(err: OSError, target: str) -> OSError:
    if err.errno == errno.ENOENT:
        return FileNotFoundError(errno.ENOENT, "the folder to write into does not exist",
                                 target)
    if err.errno is None:
        return OSError(str(err) or type(err).__name__)
    return OSError(err.errno, err.strerror or str(err), target)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp", *,
                user: bool = False) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to
    ``path`` (with the permissions a plain ``open`` would give), on failure removed.

    ``user=True`` (a path the user named: a model file, a document, predictions; walk 7)
    writes through a symlink to the file it points to and refuses a NUL in the path, a link
    into ``/proc`` (``/dev/stdout``) and an existing path that is not a regular file.
    Without it (the kernel cache) whatever is at ``path`` is replaced, never followed.

    Raises
    ------
    OSError
        With ``filename`` the target (not the temporary) when the folder is missing or
        not writable.
    """
    target = _check_target(os.fspath(path)) if user else os.fspath(path)  # walk 7
    directory = os.path.dirname(os.path.abspath(target))
    name = os.path.basename(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "the folder to write into does not exist",
                                target)
    with contextlib.suppress(OSError):
        _clean_stale(directory, name, suffix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=directory)
    except OSError as err:
        raise _target_error(err, target) from err
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and tmp in (err.filename, err.filename2):
            raise _target_error(err, target) from err  # name the target, not the temporary
        raise
    finally:
        os.close(fd)  # releases the lock


def atomic_write_text(path: str | os.PathLike[str], text: str, *, user: bool = False
                      ) -> None:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` atomically (``user`` as for
    :func:`atomic_path`)."""
    with atomic_path(path, user=user) as tmp, \
            open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
