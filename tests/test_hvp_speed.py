"""Round 7, helper hvp (issue 16: the HVP's speed): the packed copies the product tiles read
(``Bᵀ`` in 16-column strips, ``Aᵀ`` in 8-row panels) and the tiles' bits with a packed
``Aᵀ`` (the same sums, in the same order, as with ``A`` in place)."""

from __future__ import annotations

import numpy as np
import pytest

from symnn.codegen.numba import gemm


@pytest.fixture
def tiles():
    old = gemm.set_gemm("tiles")
    yield
    gemm.set_gemm(old)


def test_the_packed_copies_hold_the_transposed_operands():
    rng = np.random.default_rng(0)
    k, n0, ldb, ob = 37, 48, 50, 3
    Bm = rng.standard_normal(ob + 60 * ldb)
    b = Bm[ob:ob + n0 * ldb].reshape(n0, ldb)[:, :k]  # rows of B: n0 × k
    assert np.array_equal(gemm._packed(Bm, ob, ldb, k, n0).reshape(k, n0), b.T)
    m0, lda, oa = 24, 29, 5
    A = rng.standard_normal(oa + k * lda)
    a = A[oa:oa + k * lda].reshape(k, lda)[:, :m0]  # op(A) = aᵀ, m0 × k
    P = gemm._packed_a(A, oa, lda, k, m0).reshape(m0 // gemm.MR, k, gemm.MR)
    for blk in range(m0 // gemm.MR):
        assert np.array_equal(P[blk], a[:, blk * gemm.MR:(blk + 1) * gemm.MR])


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_transposed_a_gives_the_bits_of_a_in_place(tiles, beta):
    """Aᵀ·B from A's panels equals, bit for bit, A'·B with A' = Aᵀ stored row-major (whole
    tiles over two contraction panels): each tile sums the same products in the same
    order; a misplaced panel would change the values, not just the bits."""
    rng = np.random.default_rng(1)
    m, n, k = 24, gemm.PACK_A_MIN_COLS, 300
    a = rng.standard_normal((k, m))  # stored A; op(A) = aᵀ (m × k)
    b = rng.standard_normal((k, n))
    c0 = rng.standard_normal(m * n)
    out = []
    for ta, A, lda in ((1, a.ravel().copy(), m), (0, a.T.copy().ravel(), k)):
        C = c0.copy() if beta else np.full(m * n, np.nan)
        gemm._gemm(ta, 0, m, n, k, 0.5, A, 0, lda, b.ravel().copy(), 0, n, beta, C, 0, n)
        out.append(C)
    assert np.array_equal(out[0], out[1])
    want = 0.5 * a.T @ b + (beta * c0.reshape(m, n))
    assert np.max(np.abs(out[0].reshape(m, n) - want)) < 1e-12 * np.max(np.abs(want))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_padded_edges_agree_with_numpy(tiles, dtype):
    """A product's last rows of Aᵀ (a zero-padded panel) and last columns of Bᵀ (a
    zero-padded strip) go through the tiles into scratch and are merged into C: the
    10-class output layer's ``a₂ W₃ᵀ`` (256 × 10) and ``δ₃ᵀ a₂`` (10 × 128), over one and
    two contraction panels, beta 0 (C NaN-filled: never read) and 1, at offsets."""
    rng = np.random.default_rng(2)
    tol = 1e-13 if dtype == np.float64 else 2e-5
    for ta, tb, m, n, k in ((0, 1, 256, 10, 128), (0, 1, 136, 21, 300), (0, 1, 128, 40, 64),
                            (1, 0, 10, 128, 256), (1, 0, 13, 40, 300), (1, 0, 21, 16, 200)):
        for beta in (0.0, 1.0):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            c0 = rng.standard_normal((m, n)).astype(dtype)
            A = np.concatenate([np.zeros(2, dtype), a.ravel()])
            Bf = np.concatenate([np.zeros(5, dtype), b.ravel()])
            C = np.full(3 + m * n, np.nan, dtype)
            if beta:
                C[3:] = c0.ravel()
            gemm._gemm(ta, tb, m, n, k, 0.7, A, 2, a.shape[1], Bf, 5, b.shape[1], beta, C, 3, n)
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            want = (0.7 * (a64.T if ta else a64) @ (b64.T if tb else b64)
                    + beta * c0.astype(np.float64))
            err = np.max(np.abs(C[3:].reshape(m, n) - want)) / np.max(np.abs(want))
            assert err <= tol, (ta, tb, m, n, k, beta, err)
