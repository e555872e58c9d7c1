"""The on-disk kernel cache: generated modules as real files, compiled once per machine.

Numba can only cache (``njit(cache=True)``) a function that lives in a real source file,
and it finds the cached machine code again only when the *same file* is imported under the
*same module name*.  So every generated module is written to

    <cache dir>/symnn_<sha256 prefix>.py

where the SHA-256 covers the derived program's fingerprint, the generated source, the dtype
and the versions of symnn, Numba, llvmlite, NumPy and Python.  Importing that file by that
name in a second process finds Numba's cache files beside it (``__pycache__``) and skips
compilation.

The cache directory is ``cache_dir=`` if given, else ``$SYMNN_CACHE_DIR``, else
``$XDG_CACHE_HOME/symnn``, else ``~/.cache/symnn``.

Safety
------
* Writes are atomic: the module is written to a temporary file in the same directory and
  moved into place with :func:`os.replace`, so a concurrent reader sees either no file or a
  complete one (two processes compiling the same model write identical content).
* The first line of every file is ``# symnn-sha256: <hex>``, the checksum of the rest; an
  entry whose checksum or content does not match is rebuilt, never imported.  Rewriting it
  changes its modification time, which also invalidates Numba's own cache entries for it.
* An unusable cache directory (not creatable, not writable) gives a :class:`SymnnWarning`
  and the kernels are compiled in memory instead (no caching across processes).
* Nothing is imported through Python's import system: the file is read once, its checksum
  and content are compared with the source symnn just generated, and *that verified text*
  is compiled into a module object with the deterministic module name and the file's path
  (so Numba's ``cache=True`` still finds its cache files).  No bytecode (``.pyc``) is read
  or written for a generated module, so a ``.pyc`` planted in ``__pycache__`` is never run.
* Numba keeps its own index of compiled code beside the module
  (``__pycache__/symnn_*.nbi``), and that index is a *pickle*: whoever can write the cache
  directory can make Numba run code.  So the directory (and its ``__pycache__``) must be
  owned by the current user and not writable by group or others — the rule ssh applies to
  ``~/.ssh`` and pip to its cache.  A directory that breaks it gives a
  :class:`SymnnWarning` and the kernels are compiled in memory (``chmod go-w DIR`` or a
  private ``SYMNN_CACHE_DIR`` fixes it).  See ``docs/security.md``.

Examples
--------
>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> key = module_key("fingerprint", "x = 1\\n", "float64")
>>> mod = load_module("x = 1\\n", key, cache_dir=d)
>>> mod.x
1
"""

from __future__ import annotations

import hashlib
import linecache
import os
import platform
import stat
import sys
import types
import warnings
from pathlib import Path

from symnn._atomic import atomic_write_text
from symnn.errors import SymnnWarning  # defined in errors; re-exported here

__all__ = [
    "SymnnWarning",
    "default_cache_dir",
    "module_key",
    "module_name",
    "load_module",
    "clear_cache",
    "unsafe_directory",
]

_CHECK_PREFIX = "# symnn-sha256: "


def default_cache_dir() -> Path:
    """``$SYMNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/symnn``, else ``~/.cache/symnn``."""
    env = os.environ.get("SYMNN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "symnn"
    return Path.home() / ".cache" / "symnn"


def _versions() -> str:
    import llvmlite
    import numba
    import numpy

    try:
        from importlib.metadata import version

        symnn_version = version("symnn")
    except Exception:  # not installed as a distribution
        symnn_version = "0"
    return (f"symnn={symnn_version};numba={numba.__version__};llvmlite={llvmlite.__version__};"
            f"numpy={numpy.__version__};python={sys.version};machine={platform.machine()}")


def module_key(fingerprint: str, source: str, dtype: str) -> str:
    """The SHA-256 (hex) naming a generated module."""
    h = hashlib.sha256()
    for part in (fingerprint, source, dtype, _versions()):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def module_name(key: str) -> str:
    """The deterministic module name of a cache key."""
    return "symnn_" + key[:40]


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_text(source: str) -> str:
    return f"{_CHECK_PREFIX}{_checksum(source)}\n{source}"


#: Largest generated module read back from the cache (bytes); bigger files are rebuilt.
MAX_MODULE_BYTES = 64 << 20


def _read_regular(path: Path) -> str | None:
    """The UTF-8 text of ``path`` when it is a regular file of sane size, else None."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MODULE_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(MAX_MODULE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _verified(path: Path, source: str) -> bool:
    """True when ``path`` holds exactly this source with a valid checksum line."""
    text = _read_regular(path)
    if text is None:
        return False
    head, sep, body = text.partition("\n")
    if not sep or not head.startswith(_CHECK_PREFIX):
        return False
    return head[len(_CHECK_PREFIX):].strip() == _checksum(body) and body == source


def _atomic_write(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def unsafe_directory(directory: Path) -> str | None:
    """Why ``directory`` may not hold kernels (None when it may).

    It must be a directory (a symlink's target is what is checked), owned by the current
    user, and not writable by group or others — anyone who can write it can plant a pickle
    that Numba unpickles.  Its ``__pycache__`` (where Numba writes) is held to the same
    rule.  Always None where the platform has no user ids (Windows).

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> unsafe_directory(Path(d)) is None
    True
    >>> os.chmod(d, 0o777)
    >>> print(unsafe_directory(Path(d)).split(" (mode")[0])  # doctest: +ELLIPSIS
    '...' is writable by others
    """
    if not hasattr(os, "geteuid"):  # pragma: no cover - Windows
        return None
    uid = os.geteuid()
    for d in (directory, directory / "__pycache__"):
        try:
            st = os.stat(d)
        except FileNotFoundError:
            continue
        except OSError as err:
            return f"cannot inspect {str(d)!r}: {err.strerror or err}"
        if not stat.S_ISDIR(st.st_mode):
            return f"{str(d)!r} is not a directory"
        if st.st_uid != uid:
            return (f"{str(d)!r} is owned by user id {st.st_uid}, not by you ({uid}); "
                    "another user could plant files Numba would load")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            who = "others" if st.st_mode & stat.S_IWOTH else "its group"
            return (f"{str(d)!r} is writable by {who} (mode {stat.S_IMODE(st.st_mode):o}); "
                    f"run 'chmod go-w {d}'")
    return None


def _load_verified(name: str, path: Path, text: str) -> types.ModuleType:
    """Compile ``text`` (the verified content of ``path``) as module ``name`` from ``path``.

    The code object's file name is the real path, so Numba's ``cache=True`` locates (and
    writes) its cache files beside it; the module object is built here, so no bytecode
    cache is consulted or written.
    """
    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__loader__ = None
    sys.modules[name] = module
    try:
        code = compile(text, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    # inspect.getsource reads the file; keep the verified text for it instead
    linecache.cache[str(path)] = (len(text), None, text.splitlines(True), str(path))
    return module


def _in_memory(name: str, source: str) -> types.ModuleType:
    """Execute the source without a file (Numba's cache needs one, so it is switched off)."""
    text = source.replace("cache=True", "cache=False")
    filename = f"<symnn-kernels {name}>"
    # keep the source visible to inspect.getsource, as sympy.lambdify does
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    exec(compile(text, filename, "exec"), module.__dict__)
    return module


def _outside_symnn() -> int:
    """The ``stacklevel`` of the first caller outside the symnn package (walk, round 6: the
    cache warning pointed at ``symnn/_api.py``, not at the user's ``compile()`` line)."""
    root = str(Path(__file__).resolve().parent.parent) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(root):
        frame, level = frame.f_back, level + 1
    return level


def load_module(source: str, key: str, cache_dir: "str | os.PathLike | None" = None,
                use_cache: bool = True) -> types.ModuleType:
    """Import the module for ``source`` from the cache, writing (or repairing) it first.

    Parameters
    ----------
    source : str
        Module text.
    key : str
        From :func:`module_key`.
    cache_dir : path, optional
        Overrides :func:`default_cache_dir`.
    use_cache : bool
        False: compile in memory, touch no file.

    Returns
    -------
    module
    """
    name = module_name(key)
    if not use_cache:
        module = _in_memory(name + "_mem", source)
        module.__symnn_source__ = source
        return module
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = directory / f"{name}.py"
    module = sys.modules.get(name)
    if (module is not None and getattr(module, "__symnn_source__", None) == source
            and getattr(module, "__file__", None) == str(path)):
        return module  # already imported by this process, from this directory
    problem = None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        problem = unsafe_directory(directory)
        if problem is None:
            # Numba would create it with the umask's mode (group-writable under umask 002)
            (directory / "__pycache__").mkdir(mode=0o700, exist_ok=True)
            if not _verified(path, source):
                _atomic_write(path, _file_text(source))
    except OSError as err:
        problem = f"{err.strerror or err}"
        if directory.exists() and not directory.is_dir():  # walk 6: was "(File exists)"
            problem = "it is a file, not a directory"
    if problem is not None:
        warnings.warn(
            f"symnn kernel cache directory {str(directory)!r} is not usable ({problem}); "
            "compiling the kernels in memory, so they will not be cached across processes. "
            "Set SYMNN_CACHE_DIR or pass cache_dir= to a private, writable directory.",
            SymnnWarning,
            stacklevel=_outside_symnn(),
        )
        module = _in_memory(name + "_mem", source)
        module.__symnn_source__ = source
        return module
    module = _load_verified(name, path, _file_text(source))
    module.__symnn_source__ = source
    return module


def clear_cache(cache_dir: "str | os.PathLike | None" = None) -> int:
    """Delete every symnn module (and Numba's cache files for it); returns the count removed."""
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    count = 0
    if not directory.is_dir():
        return 0
    for p in list(directory.glob("symnn_*.py")) + list(directory.glob("__pycache__/symnn_*")):
        try:
            p.unlink()
            count += 1
        except OSError:
            pass
    return count
