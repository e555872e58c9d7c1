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
import importlib.util
import linecache
import os
import platform
import sys
import types
import warnings
from pathlib import Path

from symnn._atomic import atomic_write_text

__all__ = [
    "SymnnWarning",
    "default_cache_dir",
    "module_key",
    "module_name",
    "load_module",
    "clear_cache",
]

_CHECK_PREFIX = "# symnn-sha256: "


class SymnnWarning(UserWarning):
    """A warning from symnn (e.g. the kernel cache is unusable and kernels compile in memory)."""


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


def _verified(path: Path, source: str) -> bool:
    """True when ``path`` holds exactly this source with a valid checksum line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    head, sep, body = text.partition("\n")
    if not sep or not head.startswith(_CHECK_PREFIX):
        return False
    return head[len(_CHECK_PREFIX):].strip() == _checksum(body) and body == source


def _atomic_write(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _import_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has one
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
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
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not _verified(path, source):
            _atomic_write(path, _file_text(source))
    except OSError as err:
        warnings.warn(
            f"symnn kernel cache directory {str(directory)!r} is not usable ({err}); compiling "
            "the kernels in memory, so they will not be cached across processes. Set "
            "SYMNN_CACHE_DIR or pass cache_dir= to a writable directory.",
            SymnnWarning,
            stacklevel=3,
        )
        module = _in_memory(name + "_mem", source)
        module.__symnn_source__ = source
        return module
    module = _import_file(name, path)
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
