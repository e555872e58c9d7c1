"""Ahead-of-time modules built by default, in the background (symnn.codegen._aotauto,
issue 16): which loads start a build, and what a build leaves behind.  No real build runs
here (the child is replaced by a recorder; tests/test_aot.py builds for real)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import symnn
from symnn.codegen import _aotauto, aot


class _FakeChild:
    """Stands in for ``subprocess.Popen``: records the command and the payload."""

    started: list = []

    def __init__(self, cmd, stdin=None, **kwargs):
        self.cmd, self.kwargs, self.chunks = cmd, kwargs, []
        self.stdin = self
        _FakeChild.started.append(self)

    def write(self, data):
        self.chunks.append(data)

    def close(self):
        pass


@pytest.fixture()
def auto(monkeypatch, tmp_path):
    """Automatic builds on (the session turns them off), the child faked, a fresh cache."""
    monkeypatch.delenv("SYMNN_AOT_BUILD", raising=False)
    monkeypatch.delenv("SYMNN_AOT", raising=False)
    monkeypatch.setattr(_aotauto.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(_aotauto.subprocess, "Popen", _FakeChild)
    monkeypatch.setattr(aot, "_LOADED", {})
    _FakeChild.started = []
    net = symnn.mlp([2, 3, 1], activation="tanh", name="aotauto_mlp")
    path = tmp_path / "net.npz"
    symnn.save(path, net, np.zeros(13))
    return path, tmp_path / "cache"


def test_a_default_load_starts_one_background_build(auto, monkeypatch):
    path, cache = auto
    model, _, _ = symnn.load_compiled(path, cache_dir=cache)
    assert not model._aot and len(_FakeChild.started) == 1  # this process: Numba, unslowed
    child = _FakeChild.started[0]
    assert child.kwargs["start_new_session"] and "_aotauto import main" in child.cmd[-1]
    payload = json.loads(b"".join(child.chunks))
    assert payload["background"] and payload["key"] and "loss_and_grad" in payload["kernels"]
    lock, failed = _aotauto.marker_paths(payload["key"], cache)
    assert lock.exists() and not failed.exists()
    symnn.load_compiled(path, cache_dir=cache)  # a build is running: none more
    symnn.load_compiled(path, cache_dir=cache, aot=False)
    assert len(_FakeChild.started) == 1
    old = time.time() - _aotauto.STALE_SECONDS - 60
    os.utime(lock, (old, old))  # a build that died long ago: taken over
    symnn.load_compiled(path, cache_dir=cache)
    assert len(_FakeChild.started) == 2
    lock.unlink()
    failed.write_text("x")  # an automatic build failed: not tried again automatically
    symnn.load_compiled(path, cache_dir=cache)
    failed.unlink()
    monkeypatch.setenv("SYMNN_AOT_BUILD", "0")  # opted out
    symnn.load_compiled(path, cache_dir=cache)
    monkeypatch.delenv("SYMNN_AOT_BUILD")
    monkeypatch.setattr(_aotauto.shutil, "which", lambda name: None)  # no C compiler
    symnn.load_compiled(path, cache_dir=cache)
    assert len(_FakeChild.started) == 2 and not lock.exists()


def test_the_child_marks_a_failure_and_releases_the_lock(tmp_path):
    payload = {"key": "e" * 64, "cache_dir": str(tmp_path)}
    lock, failed = _aotauto.marker_paths(payload["key"], tmp_path)
    lock.parent.mkdir(parents=True)
    for build, ok in ((lambda p: True, True), (lambda p: 1 / 0, False),
                      (lambda p: False, False)):
        lock.write_text("")
        assert _aotauto.child_run(payload, build) is ok
        assert not lock.exists() and failed.exists() is (not ok)
