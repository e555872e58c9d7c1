"""A Ctrl-C while Numba holds its compiler lock is delivered when the lock is released
(:mod:`symnn.codegen._sigint`): Numba and llvmlite run Python code where an exception is
discarded (``__del__``, ctypes callbacks), and a training loop lost such a Ctrl-C."""

from __future__ import annotations

import signal
import threading

import pytest

from symnn.codegen import _sigint  # noqa: F401  (installs the listener)

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="signal handlers run in the main thread")


class _Dying:
    """Raises SIGINT from ``__del__``, as llvmlite's ``ObjectRef.__del__`` got it while a
    kernel loaded: Python prints an exception raised there and drops it."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)


def test_ctrl_c_in_a_finalizer_under_the_compiler_lock_is_raised_after_it():
    from numba.core.compiler_lock import global_compiler_lock

    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with global_compiler_lock:
            with global_compiler_lock:  # (nested, as Numba takes it)
                _Dying()  # (freed at once)
                done.append("inner")
            done.append("outer")
    assert done == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_ctrl_c_is_raised_at_once():
    from numba.core.compiler_lock import global_compiler_lock

    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with global_compiler_lock:
            signal.raise_signal(signal.SIGINT)
            done.append("after the first")
            signal.raise_signal(signal.SIGINT)
            done.append("after the second")
    assert done == ["after the first"]
    assert signal.getsignal(signal.SIGINT) is before
    with global_compiler_lock:  # and the next lock defers again
        pass
    with pytest.raises(KeyboardInterrupt):
        with global_compiler_lock:
            signal.raise_signal(signal.SIGINT)
            done.append("deferred again")
    assert done[-1] == "deferred again" and signal.getsignal(signal.SIGINT) is before


def test_nothing_is_raised_without_a_signal_and_other_handlers_are_kept():
    from numba.core.compiler_lock import global_compiler_lock

    seen = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with global_compiler_lock:
            pass
        with global_compiler_lock:
            signal.raise_signal(signal.SIGINT)
            assert seen == []  # recorded, not yet delivered
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, old)
