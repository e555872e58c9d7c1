"""The on-disk kernel cache: warm second processes, damaged entries, unusable directories.

Every test uses its own temporary cache directory; the subprocesses run the same tiny
model so that their compile cost stays small.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import warnings

import _subproc
import numpy as np
import pytest

import symnn  # noqa: E402
from symnn.codegen import cache as C  # noqa: E402
from symnn.codegen.model import compile_model  # noqa: E402

SCRIPT = textwrap.dedent("""
    import json, sys, numpy as np, symnn
    net = symnn.mlp([2, 3, 1], activation="tanh", loss="mse", name="tiny")
    m = net.compile(cache_dir=sys.argv[1])
    rng = np.random.default_rng(0)
    th = m.init(seed=0) + 0.1 * rng.standard_normal(m.n_params)
    X = rng.standard_normal((5, 2)); y = rng.standard_normal(5)
    L, g = m.loss_and_grad(th, X, y)
    st = m.kernels["loss_and_grad"].stats
    print(json.dumps({"L": L, "g": g.tolist(), "hits": sum(st.cache_hits.values()),
                      "misses": sum(st.cache_misses.values()), "file": m.module.__file__}))
""")


def _tiny():
    return symnn.mlp([2, 3, 1], activation="tanh", loss="mse", name="tiny")


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((5, 2)), rng.standard_normal(5)


def _run(cache_dir, *extra):
    env = dict(os.environ)
    env.pop("SYMNN_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(cache_dir), *extra], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _start(cache_dir):
    env = dict(os.environ)
    env.pop("SYMNN_CACHE_DIR", None)
    return _subproc.start([sys.executable, "-c", SCRIPT, str(cache_dir)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_cold_processes_then_a_warm_one(tmp_path):
    """Two processes compile the same model at once into one empty cache directory (atomic
    writes: neither sees a half-written file); a third process then starts warm."""
    procs = [_start(tmp_path), _start(tmp_path)]
    cold = []
    try:  # walk 7: on a timeout both children are stopped and their pipes closed
        for p in procs:
            out, err = _subproc.communicate(p, 300)
            assert p.returncode == 0, err
            cold.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            _subproc.stop(p)
    assert cold[0]["L"] == cold[1]["L"] and cold[0]["g"] == cold[1]["g"]
    assert all(c["misses"] + c["hits"] >= 1 for c in cold)
    path = cold[0]["file"]
    assert os.path.dirname(path) == str(tmp_path)
    source = C.Path(path).read_text(encoding="utf-8").partition("\n")[2]
    assert C._verified(C.Path(path), source)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    warm = _run(tmp_path)
    assert warm["hits"] >= 1 and warm["misses"] == 0
    assert warm["L"] == cold[0]["L"] and warm["g"] == cold[0]["g"]
    name = os.path.basename(path)
    assert name.startswith("symnn_") and name == os.path.basename(warm["file"])
    assert any(f.startswith(name[:-3]) for f in os.listdir(tmp_path / "__pycache__"))


def _fresh(tmp_path):
    """Compile the tiny model from its cache file (not from this process's module table)."""
    for name in [n for n in sys.modules if n.startswith("symnn_")]:
        mod = sys.modules[name]
        if str(getattr(mod, "__file__", "")).startswith(str(tmp_path)):
            del sys.modules[name]
    return compile_model(_tiny(), cache_dir=tmp_path)


def test_damaged_entry_is_rebuilt_never_trusted(tmp_path):
    X, y = _data()
    m = compile_model(_tiny(), cache_dir=tmp_path)
    th = m.init(seed=1)
    expected = m.loss_and_grad(th, X, y)
    path = m.module.__file__
    text = C.Path(path).read_text(encoding="utf-8")
    assert text.startswith(C._CHECK_PREFIX)
    # truncate it: a half-written file must not be imported
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text[: len(text) // 2])
    m2 = _fresh(tmp_path)
    assert C.Path(path).read_text(encoding="utf-8") == text
    L, g = m2.loss_and_grad(th, X, y)
    assert L == expected[0] and np.array_equal(g, expected[1])
    # tamper with the body but keep the file well-formed: the checksum catches it
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace("return L", "return 2 * L"))
    m3 = _fresh(tmp_path)
    assert C.Path(path).read_text(encoding="utf-8") == text
    assert m3.loss(th, X, y) == expected[0]


def test_damaged_numba_cache_files_are_rebuilt(tmp_path):
    X, y = _data()
    m = compile_model(_tiny(), cache_dir=tmp_path)
    th = m.init(seed=2)
    expected = m.loss(th, X, y)
    pyc = tmp_path / "__pycache__"
    stem = os.path.basename(m.module.__file__)[:-3]
    damaged = 0
    for f in os.listdir(pyc):
        if f.startswith(stem) and "_loss-" in f:
            data = (pyc / f).read_bytes()
            (pyc / f).write_bytes(data[: len(data) // 3])
            damaged += 1
    assert damaged >= 1
    m2 = _fresh(tmp_path)
    assert m2.loss(th, X, y) == expected


def test_unwritable_cache_dir_warns_and_compiles_in_memory(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    X, y = _data()
    with pytest.warns(C.SymnnWarning, match="not usable.*compiling the kernels in memory"):
        m = compile_model(_tiny(), cache_dir=blocker / "cache")
    th = m.init(seed=0)
    ref = m.reference.loss_and_grad(th, X, y)
    L, g = m.loss_and_grad(th, X, y)
    np.testing.assert_allclose(g, ref[1], rtol=1e-12)
    assert "tiny_loss_grad" in inspect.getsource(m.kernels["loss_and_grad"].py_func)
    assert not blocker.is_dir()


def test_cache_false_touches_no_file(tmp_path):
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compile_model(_tiny(), cache=False, cache_dir=tmp_path)
    assert m.loss(m.init(0), X, y) > 0
    assert os.listdir(tmp_path) == []


def test_module_key_is_deterministic_and_covers_its_inputs():
    k = C.module_key("prog", "source", "float64")
    assert k == C.module_key("prog", "source", "float64")
    assert len({k, C.module_key("prog", "source", "float32"),
                C.module_key("prog", "source2", "float64"),
                C.module_key("prog2", "source", "float64")}) == 4
    assert C.module_name(k) == C.module_name(k) and C.module_name(k).isidentifier()


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "symnn_x.py"

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(C.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        C._atomic_write(target, "x = 1\n")
    assert os.listdir(tmp_path) == []


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMNN_CACHE_DIR", str(tmp_path / "a"))
    assert C.default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("SYMNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.default_cache_dir() == tmp_path / "xdg" / "symnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert C.default_cache_dir().parts[-2:] == (".cache", "symnn")


def test_clear_cache(tmp_path):
    compile_model(_tiny(), cache_dir=tmp_path)
    assert C.clear_cache(tmp_path) >= 1
    assert not list(tmp_path.glob("symnn_*.py"))
