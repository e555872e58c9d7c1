"""Ahead-of-time modules built by default: in the background, once (issue 16, warm start).

:func:`symnn.load_compiled` with its default ``aot=None`` uses a model's ahead-of-time
module (:mod:`symnn.codegen.aot`) when the cache has one.  When it has none, :func:`start`
builds it *in the background*: a detached child process at the lowest CPU priority
(``nice 19``) runs the same build as ``aot=True`` (:func:`symnn.codegen._aotbuild.build`)
while this process goes on through Numba, unchanged and unslowed; the next process that
loads the model starts fast.  So a plain user gets the fast start without asking for it.

Only one build per entry runs at a time (a lock file beside the entry, taken with
``O_EXCL``; one older than :data:`STALE_SECONDS` is taken over), and an entry whose
automatic build failed (no working C compiler, a Numba without ``numba.pycc``…) is marked
and not tried again automatically (``aot=True`` still tries; the marker is per key, so a
new symnn, Numba or Python tries afresh).  No build starts without a C compiler on
``PATH`` (``$CC``, ``cc`` or ``gcc``).

Opting out: ``SYMNN_AOT_BUILD=0`` stops automatic builds (modules already built are still
used), ``SYMNN_AOT=0`` or ``aot=False`` stops ahead-of-time modules altogether.  The test
session sets ``SYMNN_AOT_BUILD=0`` (conftest.py), so that tests never leave builds running.

Examples
--------
>>> lock, failed = marker_paths("0" * 64, "/tmp/symnn-example-cache")
>>> lock.name
'symnn_aot_00000000000000000000000000000000.building'
>>> failed.name
'symnn_aot_00000000000000000000000000000000.failed'
>>> str(lock.parent)
'/tmp/symnn-example-cache/symnn-aot'
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["start", "enabled", "STALE_SECONDS"]

#: A build lock older than this (seconds) belongs to a build that died: taken over.
STALE_SECONDS = 1800
_RUNNING: list = []  # the children started by this process (kept: no ResourceWarning)


def enabled() -> bool:
    """Whether automatic builds are on: ``SYMNN_AOT`` and ``SYMNN_AOT_BUILD`` not ``0``, and
    a C compiler on ``PATH``."""
    if os.environ.get("SYMNN_AOT", "1") == "0" or os.environ.get("SYMNN_AOT_BUILD", "1") == "0":
        return False
    return any(shutil.which(c) for c in (os.environ.get("CC", ""), "cc", "gcc") if c)


def marker_paths(key: str, cache_dir=None) -> tuple[Path, Path]:
    """``(lock, failure marker)`` of the entry ``key``."""
    from symnn.codegen._aotbuild import entry_paths

    name, so, _ = entry_paths(key, cache_dir)
    return so.parent / (name + ".building"), so.parent / (name + ".failed")


def _take(lock: Path) -> bool:
    """Take the build lock (a stale one is taken over); False when a build holds it."""
    for _ in range(2):
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return True
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime < STALE_SECONDS:
                    return False
                lock.unlink()
            except OSError:
                return False
        except OSError:
            return False
    return False


def start(model: Any, key: str, cache_dir=None) -> bool:
    """Start building the ahead-of-time module of ``model`` (entry ``key``) in a detached,
    low-priority child; True when one was started.  Never raises, never waits."""
    try:
        lock, failed = marker_paths(key, cache_dir)
        if failed.exists():
            return False
        lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _take(lock):
            return False
    except OSError:
        return False
    from symnn.codegen import _aotbuild

    payload = dict(_aotbuild.payload(model, key, cache_dir), background=True)
    try:
        code = _CHILD.format(root=_aotbuild._ROOT)
        proc = subprocess.Popen([sys.executable, "-c", code],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
        proc.stdin.write(json.dumps(payload).encode("utf-8"))
        proc.stdin.close()
    except (OSError, ValueError, subprocess.SubprocessError):
        _unlink(lock)
        return False
    _RUNNING.append(proc)
    return True


def main() -> None:
    """The background child: the payload of :func:`start` on stdin."""
    from symnn.codegen._aotbuild import _build_here

    sys.exit(0 if child_run(json.loads(sys.stdin.read()), _build_here) else 1)


#: The child's ``python -c`` code (the same symnn as this process's)
_CHILD = ("import sys; sys.path.insert(0, {root!r}); "
          "from symnn.codegen._aotauto import main; main()")


def child_run(payload: dict, build) -> bool:
    """The background child's part: lowest priority, ``build(payload)``, then mark a
    failure and release the lock."""
    lock, failed = marker_paths(payload["key"], payload["cache_dir"])
    try:
        os.nice(19)
    except (OSError, AttributeError):
        pass
    ok = False
    try:
        ok = bool(build(payload))
    except Exception:  # any failure: marked below, never retried automatically
        ok = False
    finally:
        if not ok:
            try:
                failed.write_text("automatic ahead-of-time build failed\n", encoding="utf-8")
            except OSError:
                pass
        _unlink(lock)
    return ok


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
