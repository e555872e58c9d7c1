"""Ahead-of-time kernels (symnn.codegen.aot, issue 16): built once into the kernel cache,
they give the Numba path's numbers to the last bit, in this process and in a new one that
never builds Numba's compiler target; a damaged entry is ignored, deleted and rebuilt on
request; a failed build leaves the Numba path, silently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symnn
from symnn.codegen import _aotbuild, _validate, aot

X = np.array([[0.1, -0.4, 0.3], [0.7, 0.2, -0.1], [-0.3, 0.5, 0.9], [0.2, 0.2, -0.6]])
LABELS = np.array([0, 2, 1, 2])


def _net():
    return symnn.mlp([3, 4, 3], activation="tanh", output="softmax", loss="cross_entropy",
                     name="aot_net")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A saved model whose ahead-of-time module is built into a cache of its own:
    ``(path, cache, model with aot, model without, theta)``."""
    tmp = tmp_path_factory.mktemp("aot")
    theta = _net().compile(cache_dir=tmp / "k").init(seed=3)
    path = tmp / "net.npz"
    symnn.save(path, _net(), theta)
    plain = symnn.load_compiled(path, cache_dir=tmp / "k", aot=False)[0]
    model = symnn.load_compiled(path, cache_dir=tmp / "k", aot=True)[0]
    if not model._aot:
        # the build failed: a skip only where it cannot work (a broken build is a failure)
        import shutil

        if sys.platform.startswith("linux") and (shutil.which("cc") or shutil.which("gcc")):
            pytest.fail("the ahead-of-time build failed on Linux with a C compiler")
        pytest.skip("no ahead-of-time build here (no C compiler, or not Linux)")
    return path, tmp / "k", model, plain, theta


def _results(model, theta):
    V = np.linspace(-1, 1, 2 * model.n_params).reshape(2, -1)
    Y = np.eye(3)[LABELS]
    return [*model.loss_and_grad(theta, X, LABELS), model.loss(theta, X, Y),
            model.predict(theta, X), model.hvp(theta, V, X, LABELS),
            model.gnvp(theta, V[0], X, Y), model.jacobian(theta, X)]


def test_every_kernel_matches_the_numba_path_bit_for_bit(built):
    _, _, model, plain, theta = built
    assert sorted(model._aot) == sorted(model.generated.kernels)
    assert not plain._aot
    for a, b in zip(_results(model, theta), _results(plain, theta)):
        assert np.array_equal(a, b)
    # and the numbers are right: the uncompiled reference
    L, g = model.loss_and_grad(theta, X, LABELS)
    Lr, gr = model.reference.loss_and_grad(theta, X, LABELS)
    assert abs(L - Lr) <= 1e-12 and np.allclose(g, gr, rtol=1e-10, atol=1e-13)
    # the checks still raise the usual errors (through the compiled ones)
    with pytest.raises(symnn.errors.DataError, match="not a class label"):
        model.loss(theta, X, np.array([0, 1, 2, 3]))
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(symnn.errors.DataError, match="row 1, column 2"):
        model.loss_and_grad(theta, bad, LABELS)


def test_checks_take_other_types_to_numba():
    # float32 and non-contiguous arrays go to the Numba dispatcher, as without aot
    assert _validate._nonfinite(np.array([1.0, np.inf], np.float32))
    assert not _validate._nonfinite(np.arange(6.0)[::2].copy())
    assert aot._dtype_of((np.zeros(3), 1, 0.5), "aif") == np.float64
    assert aot._dtype_of((np.zeros(3), 1.0, 0.5), "aif") is None
    assert aot._dtype_of((np.zeros(4)[::2],), "a") is None


CHILD = """
import sys, numpy as np, symnn
model, theta, _ = symnn.load_compiled(sys.argv[1], cache_dir=sys.argv[2])
X = np.array({X}); y = np.array({y})
L, g = model.loss_and_grad(theta, X, y)
linalg = "scipy.linalg" in sys.modules
# then Numba and SciPy as usual: a float32 check compiles, scipy.linalg imports whole
from symnn.codegen import _validate
assert _validate._nonfinite(np.array([np.nan], np.float32))
import scipy.linalg
assert scipy.linalg.blas.dgemm(1.0, np.eye(2), np.eye(2))[1, 1] == 1.0
assert scipy.linalg.cython_blas is sys.modules["scipy.linalg.cython_blas"]
print(sorted(model._aot), linalg, repr(float(L)), g.tobytes().hex())
"""


def test_a_new_process_uses_them_without_numbas_target(built):
    path, cache, model, plain, theta = built
    code = CHILD.format(X=X.tolist(), y=LABELS.tolist())
    out = subprocess.run([sys.executable, "-c", code, str(path), str(cache)],
                         capture_output=True, text=True, check=True).stdout.split("\n")[-2]
    kinds, linalg, L, g = out.rsplit(" ", 3)
    Lp, gp = plain.loss_and_grad(theta, X, LABELS)
    assert "loss_and_grad" in kinds and linalg == "False"  # SciPy's linalg never imported
    assert float(L) == Lp and bytes.fromhex(g) == gp.tobytes()


def _put(path, data: bytes) -> None:
    # a new file renamed into place: the loaded module's mapping keeps its own
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_damaged_stale_or_failed_entries_fall_back(built, monkeypatch):
    path, cache, model, _, theta = built
    key = aot.aot_key(model._module_key, "float64")
    name, so, rec = aot.entry_paths(key, cache)
    saved = so.read_bytes(), rec.read_text()
    monkeypatch.setattr(aot, "_LOADED", {})
    calls = []
    monkeypatch.setattr(_aotbuild, "build", lambda *a, **k: calls.append(a) or False)
    try:
        _put(so, saved[0][:1000])  # damaged: the checksum does not match
        m = symnn.load_compiled(path, cache_dir=cache)[0]
        assert not m._aot and not so.exists() and not rec.exists()  # deleted
        assert np.array_equal(m.loss_and_grad(theta, X, LABELS)[1],
                              model.loss_and_grad(theta, X, LABELS)[1])
        m = symnn.load_compiled(path, cache_dir=cache, aot=True)[0]
        assert len(calls) == 1 and not m._aot  # a rebuild was asked for; it failed
        _put(so, saved[0])
        record = json.loads(saved[1])
        rec.write_text(json.dumps(dict(record, key="0" * 64)))  # stale record
        assert not symnn.load_compiled(path, cache_dir=cache)[0]._aot
        assert not so.exists() and not rec.exists()  # a stale entry goes too
        _put(so, saved[0])
        rec.write_text(saved[1])
        assert symnn.load_compiled(path, cache_dir=cache)[0]._aot  # whole again
        monkeypatch.setattr(aot, "_LOADED", {})
        os.chmod(so.parent, 0o777)  # others could plant a module there: not loaded
        assert not symnn.load_compiled(path, cache_dir=cache)[0]._aot
        assert so.exists()
    finally:
        os.chmod(so.parent, 0o700)
        _put(so, saved[0])
        rec.write_text(saved[1])
    # a build that fails (here: the child process exits at once) is silent
    monkeypatch.undo()
    monkeypatch.setattr(_aotbuild, "_CHILD", "import sys; sys.exit(3)")
    assert _aotbuild.build(model, "f" * 64, cache) is False
    assert not aot.entry_paths("f" * 64, cache)[1].exists()
    monkeypatch.setenv("SYMNN_AOT", "0")
    assert not symnn.load_compiled(path, cache_dir=cache)[0]._aot
    assert os.environ["SYMNN_AOT"] == "0"


def test_the_modules_switch_of_products_follows_set_gemm(built):
    """The module defines its own copy of the products' switch (the JIT links the
    process's flag): it follows set_gemm, and every mode gives the Numba path's numbers."""
    import ctypes

    from symnn.codegen.numba import gemm

    _, cache, model, plain, theta = built
    so = next(Path(cache).rglob("symnn_aot_*.so"))
    flag = ctypes.c_int32.in_dll(ctypes.CDLL(str(so)), _aotbuild.GEMM_FLAG)
    assert _aotbuild.GEMM_FLAG == gemm._SYMBOL
    old = gemm.gemm_mode()
    try:
        for mode, value in (("blas", 0), ("tiles", 1)):
            gemm.set_gemm(mode)
            assert flag.value == value == gemm._FLAG.value
            for a, b in zip(_results(model, theta), _results(plain, theta)):
                assert np.array_equal(a, b)
    finally:
        gemm.set_gemm(old)
