"""The register-blocked products of :mod:`symnn.codegen.numba.gemm` and their switch
(issue 16): both paths against NumPy for every transpose, ``beta`` 0 / 1 / other, offsets
and leftover rows and columns (``C`` NaN-filled where ``beta = 0`` must not read it); the
switch taking effect at run time in compiled code; float32 on its own tiles; the split of the
tiles over threads (any number of parts, the same bits as one thread); a model's gradient
equal within rounding on both paths.  The tiles are forced here, so they are tested on
processors without AVX-512 too (where ``"auto"`` would not take them)."""

from __future__ import annotations

import os

import numba
import numpy as np
import pytest

import symnn
from symnn.codegen.numba import gemm
from symnn.codegen.numba._blas import _gemm as _blas_gemm


@pytest.fixture
def mode():
    """Restore the session's choice after a test that changes it."""
    old = gemm.gemm_mode()
    yield
    gemm.set_gemm(old)


@numba.njit(error_model="numpy")
def _blas_only(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc):
    _blas_gemm(ta, tb, m, n, k, alpha, A, oa, lda, Bm, ob, ldb, beta, C, oc, ldc)


def _operands(rng, ta, tb, m, n, k, beta, dtype=np.float64):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    A = np.concatenate([np.zeros(2, dtype), a.ravel()])
    Bf = np.concatenate([np.zeros(5, dtype), b.ravel()])
    C = np.full(3 + m * n, np.nan, dtype)
    if beta != 0.0:
        C[3:] = c0.ravel()
    a, b, c0 = (x.astype(np.float64) for x in (a, b, c0))
    want = 0.7 * (a.T if ta else a) @ (b.T if tb else b) + (beta * c0 if beta else 0.0)
    return (ta, tb, m, n, k, 0.7, A, 2, a.shape[1], Bf, 5, b.shape[1], beta, C, 3, n), want


# (m, n, k): whole tiles over two contraction panels; leftover columns; leftover rows with a
# transposed B long enough to be copied; a product too small for tiles
_SHAPES = [(16, 32, 300), (24, 40, 70), (130, 33, 17), (6, 8, 5)]


_TOL = {np.float64: 1e-13, np.float32: 1e-5}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("path", ["tiles", "blas"])
def test_products_agree_with_numpy(path, dtype, mode):
    """(float32 tiles are 8 × 32: the 40-column and 33-column shapes leave columns over)"""
    gemm.set_gemm(path)
    rng = np.random.default_rng(0)
    for m, n, k in _SHAPES:
        for ta in (0, 1):
            for tb in (0, 1):
                for beta in (0.0, 1.0, 0.5):
                    args, want = _operands(rng, ta, tb, m, n, k, beta, dtype)
                    gemm._gemm(*args)
                    got = args[13][3:].reshape(m, n)
                    err = np.max(np.abs(got - want)) / np.max(np.abs(want))
                    assert err <= _TOL[dtype], (path, m, n, k, ta, tb, beta, err)


def test_the_switch_acts_at_run_time(mode):
    """One compiled ``_gemm``: under "tiles" it gives the tiles' bits, under "blas" BLAS's,
    and the two differ (a different order of the sums), so each path really ran."""
    rng = np.random.default_rng(1)
    args, _ = _operands(rng, 1, 0, 128, 64, 1000, 0.0)
    out = {}
    for path in ("tiles", "blas"):
        gemm.set_gemm(path)
        gemm._gemm(*args)
        out[path] = args[13].copy()
    gemm._gemm_tiles(*args)
    np.testing.assert_array_equal(out["tiles"], args[13])
    _blas_only(*args)
    np.testing.assert_array_equal(out["blas"], args[13])
    assert np.any(out["tiles"][3:] != out["blas"][3:])
    assert np.max(np.abs(out["tiles"][3:] - out["blas"][3:])) <= 1e-12 * np.abs(args[13][3:]).max()


def test_set_gemm_checks_its_argument(mode):
    assert gemm.set_gemm("blas") in gemm.GEMM_MODES
    assert gemm.set_gemm("tiles") == "blas"
    with pytest.raises(symnn.SymnnError, match="unknown mode 'avx'"):
        gemm.set_gemm("avx")
    assert gemm.gemm_mode() == "tiles"


def test_float32_takes_its_own_tiles(mode):
    """A float32 product under "tiles" gives the float32 tiles' bits (not BLAS's), within
    float32 rounding of NumPy."""
    rng = np.random.default_rng(3)
    args, want = _operands(rng, 0, 0, 64, 64, 64, 0.0, np.float32)
    gemm.set_gemm("tiles")
    gemm._gemm(*args)
    got = args[13].copy()
    gemm._gemm_tiles(*args)
    np.testing.assert_array_equal(got, args[13])
    _blas_only(*args)
    assert np.any(got[3:] != args[13][3:])
    assert np.max(np.abs(got[3:].reshape(64, 64) - want)) <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_split_over_threads_changes_no_bit(dtype):
    """The whole tiles cut into 2, 3 or 40 runs of row blocks (17 blocks: uneven runs, and
    empty ones) give exactly one run's bits, for every transpose and beta 0 / 1, over two
    contraction panels, with rows and columns left over and C NaN-filled; one run would pass
    a split that drops or repeats a block only if the block were NaN-free in both."""
    rng = np.random.default_rng(4)
    m, n, k = 138, 40, 300
    for ta in (0, 1):
        for tb in (0, 1):
            for beta in (0.0, 1.0):
                args, want = _operands(rng, ta, tb, m, n, k, beta, dtype)
                one = args[13].copy()
                gemm._gemm_tiles(*args[:13], one, *args[14:])
                assert np.max(np.abs(one[3:].reshape(m, n) - want)) <= (
                    _TOL[dtype] * np.abs(want).max())
                for parts in (2, 3, 40):
                    C = args[13].copy()
                    gemm._gemm_split(parts, *args[:13], C, *args[14:])
                    np.testing.assert_array_equal(C, one, err_msg=f"{ta} {tb} {beta} {parts}")


@pytest.fixture
def split_entry():
    """The threaded entry installed (as at import with NUMBA_NUM_THREADS > 1), removed after
    unless it was there before."""
    before = {dt: flag.value for dt, flag in gemm._SPLIT.items()}
    gemm._install_split()
    yield
    for dt, flag in gemm._SPLIT.items():
        flag.value = before[dt]


def test_large_products_go_through_the_threaded_entry(mode, split_entry):
    """A product above SPLIT_MIN_MADDS reaches the installed entry from compiled code (its
    bits are the tiles' on one thread and, where Numba may use two, on two threads)."""
    gemm.set_gemm("tiles")
    rng = np.random.default_rng(5)
    m, n, k = 256, 136, 248  # 8.6 M multiply-adds
    assert m * n * k >= gemm.SPLIT_MIN_MADDS
    args, want = _operands(rng, 1, 0, m, n, k, 0.0)
    one = args[13].copy()
    gemm._gemm_tiles(*args[:13], one, *args[14:])
    threads = [1, 2] if numba.config.NUMBA_NUM_THREADS >= 2 else [1]
    old = numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            C = args[13].copy()
            gemm._gemm(*args[:13], C, *args[14:])
            np.testing.assert_array_equal(C, one, err_msg=str(t))
    finally:
        numba.set_num_threads(old)
    assert np.max(np.abs(one[3:].reshape(m, n) - want)) <= 1e-13 * np.abs(want).max()


def test_a_gradient_is_the_same_on_both_paths(mode):
    """The 64-32-10 tanh / softmax-CE MLP of tests/test_check.py at B = 128 (its Dense
    products and their adjoints large enough for tiles): within rounding of each other and
    of the NumPy reference."""
    model = symnn.mlp([64, 32, 10], activation="tanh", output="softmax",
                      loss="cross_entropy").compile()
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((128, 64)), rng.integers(0, 10, 128)
    th = model.init(0)
    ref = model.reference.loss_and_grad(th, X, y)[1]
    scale = np.abs(ref).max()
    for path in ("tiles", "blas"):
        gemm.set_gemm(path)
        g = model.loss_and_grad(th, X, y)[1]
        assert np.max(np.abs(g - ref)) <= 1e-12 * scale, path


def test_set_gemm_threads_installs_and_withdraws_the_entry(split_entry):
    assert gemm.set_gemm_threads(False) is True
    assert all(f.value == 0 for f in gemm._SPLIT.values())
    assert gemm.set_gemm_threads(True) is False
    assert all(f.value == e.address for f, e in
               zip(gemm._SPLIT.values(), (gemm._ENTRIES["float64"], gemm._ENTRIES["float32"])))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_keeps_its_products_on_one_thread(split_entry):
    """Numba terminates a forked child that starts GNU OpenMP's threads: in the child the
    threaded entry is withdrawn (the products run on the child's thread)."""
    assert gemm._SPLIT["float64"].value != 0
    pid = os.fork()
    if pid == 0:  # the child: exit 0 iff the entries are withdrawn
        os._exit(0 if all(f.value == 0 for f in gemm._SPLIT.values()) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert gemm._SPLIT["float64"].value != 0
