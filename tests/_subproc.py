"""Child processes in tests that cannot hang the suite or leak pipes (walk, round 7).

``subprocess.Popen(...).communicate(timeout=...)`` raises on expiry and leaves the child
running with its pipes open (a ResourceWarning later, which the suite turns into an error,
and a process still holding CPU under load); ``proc.stdout.readline()`` has no timeout at
all.  These helpers start the child in its own session, and on expiry kill its whole
process group, drain and close the pipes, and fail the test with the output so far.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading

import pytest

__all__ = ["start", "communicate", "readline", "run", "stop"]


def start(args, **kw) -> subprocess.Popen:
    """``Popen(args, **kw)`` in a new session (so :func:`stop` can kill its children)."""
    kw.setdefault("start_new_session", True)
    return subprocess.Popen(args, **kw)


def stop(proc: subprocess.Popen) -> tuple:
    """Kill ``proc`` (its process group when it leads one) if it still runs; drain and
    close its pipes; returns what ``communicate`` read."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (OSError, AttributeError):
            proc.kill()
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a grandchild holds the pipes
        for f in (proc.stdout, proc.stderr, proc.stdin):
            if f is not None:
                f.close()
        proc.wait()
        return None, None


def communicate(proc: subprocess.Popen, timeout: float, input=None) -> tuple:
    """``proc.communicate(input, timeout)``; on expiry the child is stopped and the test
    fails with the tail of its output."""
    try:
        return proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = stop(proc)
        pytest.fail(f"child {proc.args!r} ran past {timeout} s; stderr tail: "
                    f"{(err or '')[-2000:]!r}; stdout tail: {(out or '')[-500:]!r}")


def readline(proc: subprocess.Popen, timeout: float) -> str:
    """One line of ``proc.stdout``, waiting at most ``timeout`` seconds (a reader thread
    feeds a queue: a ``select`` on the stream would miss lines already buffered)."""
    lines = getattr(proc, "_walk_lines", None)
    if lines is None:
        lines = proc._walk_lines = queue.Queue()

        def pump():
            for line in iter(proc.stdout.readline, type(line0)()):
                lines.put(line)
            lines.put(None)

        line0 = "" if isinstance(getattr(proc.stdout, "encoding", None), str) else b""
        threading.Thread(target=pump, daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        line = None
        _, err = stop(proc)
        pytest.fail(f"child {proc.args!r} wrote no line within {timeout} s; stderr tail: "
                    f"{(err or '')[-2000:]!r}")
    return line or ""


def run(args, timeout: float, **kw) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, ...)`` whose timeout stops the child's
    whole process group (``subprocess.run`` kills the child only: a grandchild — a worker,
    pdflatex — keeps running and holds the pipes) and fails the test with its output."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    inp = kw.pop("input", None)
    proc = start(args, **kw)
    try:
        out, err = communicate(proc, timeout, inp)
    finally:
        stop(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
