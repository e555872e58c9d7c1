"""A Ctrl-C that lands while Numba compiles or loads machine code is delivered after it.

Numba and llvmlite run Python code from places that discard an exception: ctypes callbacks
(LLVM's object cache, ``ExecutionEngine._raw_object_cache_notify``) and ``__del__``
methods (llvmlite's ``ObjectRef.__del__``, while a kernel is read from Numba's cache).  A
SIGINT whose ``KeyboardInterrupt`` is raised there is printed as "Exception ignored" and
lost, or leaves the compiler half done (a later ``AssertionError``): a training loop then
ran on to its last epoch (round 8, ``scripts/ctrl_c_repro.py``: a SIGINT in the first
half second of ``symnn train``, while the kernels load, was lost in about 1 run in 20).

So while the main thread holds Numba's global compiler lock (every compile, every load from
Numba's cache, symnn's :func:`~symnn.codegen.numba.cacheload.load_cached`), SIGINT only
records itself; the ``KeyboardInterrupt`` (the handler that was installed before) comes
when the outermost lock is released.  A second Ctrl-C meanwhile is delivered at once (a
long compile stays interruptible, at Numba's risk).  Installed once, on import, as a
listener of Numba's ``numba:compiler_lock`` event.

Examples
--------
>>> import signal
>>> got = []
>>> try:
...     with deferred():
...         signal.raise_signal(signal.SIGINT)    # recorded, not raised here
...         got.append("ran on")
... except KeyboardInterrupt:
...     got.append("then KeyboardInterrupt")
>>> got
['ran on', 'then KeyboardInterrupt']
"""

from __future__ import annotations

import contextlib
import signal
import threading

from numba.core import event

__all__ = ["deferred", "install"]


class _Deferral:
    """SIGINT recorded between :meth:`start` and the matching :meth:`end` (nested)."""

    def __init__(self) -> None:
        self.depth = 0
        self.old = None  # the handler to restore; None: not deferring
        self.got = 0

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self.depth += 1
        if self.depth > 1:
            return
        try:
            old = signal.getsignal(signal.SIGINT)
            if callable(old):  # (SIG_DFL ends the process, SIG_IGN drops it: nothing to do)
                signal.signal(signal.SIGINT, self._record)
                self.old, self.got = old, 0
        except (ValueError, OSError):  # pragma: no cover - not the main interpreter
            self.old = None

    def end(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self.depth = max(self.depth - 1, 0)
        if self.depth == 0:
            self._deliver()

    def _record(self, signum, frame) -> None:
        self.got += 1
        if self.got > 1:  # a second Ctrl-C: now
            self.depth = 0
            self._deliver()

    def _deliver(self) -> None:
        old, got = self.old, self.got
        if old is None:
            return
        self.old, self.got = None, 0
        signal.signal(signal.SIGINT, old)
        if got:
            old(signal.SIGINT, None)  # (Python's default handler raises KeyboardInterrupt)


_DEFERRAL = _Deferral()


class _Listener(event.Listener):
    def on_start(self, ev) -> None:
        _DEFERRAL.start()

    def on_end(self, ev) -> None:
        _DEFERRAL.end()


_INSTALLED: list = []


def install() -> None:
    """Listen to Numba's compiler lock (once per process)."""
    if not _INSTALLED:
        listener = _Listener()
        event.register("numba:compiler_lock", listener)
        _INSTALLED.append(listener)


@contextlib.contextmanager
def deferred():
    """SIGINT in the ``with`` block (main thread) raised when it ends, as under Numba's
    compiler lock."""
    _DEFERRAL.start()
    try:
        yield
    finally:
        _DEFERRAL.end()


install()
