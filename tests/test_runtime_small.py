"""The small-batch paths of the runtime's matrix blocks (issue 16) against NumPy.

``_mm_nt`` loops over four rows of W at a time below the BLAS threshold (``_nt_small``), and
``_mm_tn`` / ``_mm_nn`` have one-sample paths (``_outer1``, ``_vecmat1``); each is checked
here at 1–3 rows (and 5, 6 rows just past the threshold), with row counts of W that are and
are not multiples of four, with and without bias and accumulation, and with row strides
(``_outer_k`` / ``_adjoint_k`` write one direction's block with the stride of K of them).
Every output lies between NaN sentinels, which must survive: a block may write only its own
entries.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from symnn.codegen.numba import runtime as rt

rt.prepare_runtime("float64")
PAD = 3  # NaN sentinels before and after every operand


def _flat(a, rng=None):
    """(padded flat copy of a, offset of a in it); the padding is NaN."""
    a = np.asarray(a, dtype=np.float64).ravel()
    buf = np.full(a.size + 2 * PAD, np.nan)
    buf[PAD:PAD + a.size] = a
    return buf, PAD


def _out(shape, acc, rng):
    """An output buffer: random values when accumulating (else NaN, which must be
    overwritten), NaN sentinels around it."""
    start = rng.standard_normal(shape) if acc else np.full(shape, np.nan)
    buf, o = _flat(start)
    return buf, o, start


def _check(buf, o, want):
    got = buf[o:o + want.size].reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    assert np.isnan(buf[:o]).all() and np.isnan(buf[o + want.size:]).all()


SHAPES = list(itertools.product([1, 2, 3, 6], [1, 3, 4, 7, 10], [1, 5, 9]))


@pytest.mark.parametrize("m,p,n", SHAPES)
def test_mm_nt_small(m, p, n):
    rng = np.random.default_rng(m * 100 + p * 10 + n)
    A, W, b = rng.standard_normal((m, n)), rng.standard_normal((p, n)), rng.standard_normal(p)
    (Af, oa), (Wf, ow), (bf, ob) = _flat(A), _flat(W), _flat(b)
    for hasb, acc in itertools.product([0, 1], [0, 1]):
        buf, o, start = _out((m, p), acc, rng)
        rt._mm_nt(Af, oa, m, n, Wf, ow, p, bf, ob, hasb, acc, buf, o)
        _check(buf, o, A @ W.T + (b if hasb else 0) + (start if acc else 0))


@pytest.mark.parametrize("m,p,n", SHAPES)
def test_mm_tn_and_nn_small(m, p, n):
    rng = np.random.default_rng(m * 100 + p * 10 + n + 7)
    U, Vm = rng.standard_normal((m, p)), rng.standard_normal((m, n))
    G, W = rng.standard_normal((m, p)), rng.standard_normal((p, n))
    (Uf, ou), (Vf, ov), (Gf, og), (Wf, ow) = _flat(U), _flat(Vm), _flat(G), _flat(W)
    for acc in (0, 1):
        buf, o, start = _out((p, n), acc, rng)
        rt._mm_tn(Uf, ou, m, p, Vf, ov, n, 0.5, acc, buf, o)
        _check(buf, o, 0.5 * U.T @ Vm + (start if acc else 0))
        buf, o, start = _out((m, n), acc, rng)
        rt._mm_nn(Gf, og, m, p, Wf, ow, n, acc, buf, o)
        _check(buf, o, G @ W + (start if acc else 0))


@pytest.mark.parametrize("B,K", [(1, 1), (1, 3), (2, 2)])
def test_strided_one_sample_paths(B, K):
    """``_outer_k`` and ``_adjoint_k`` with a few directions: each direction's block is
    read or written with the row stride of K blocks (the one-sample paths' ``ldo``/``ldw``)."""
    rng = np.random.default_rng(B * 10 + K)
    nu, nv, n_out, n_in = 5, 6, 7, 9
    U, Vm = rng.standard_normal((B, nu)), rng.standard_normal((B, K, nv))
    G, Wk = rng.standard_normal((B, n_out)), rng.standard_normal((K, n_out, n_in))
    (Uf, ou), (Vf, ov), (Gf, og), (Wf, ow) = _flat(U), _flat(Vm), _flat(G), _flat(Wk)
    tmp = np.full(B * K * max(nu * nv, n_out * n_in) + 8, np.nan)
    for acc in (0, 1):
        buf, o, start = _out((K, nu, nv), acc, rng)
        rt._outer_k(Uf, ou, B, nu, Vf, ov, K, nv, 0.25, acc, tmp, 0, buf, o)
        _check(buf, o, 0.25 * np.einsum("iu,ikv->kuv", U, Vm) + (start if acc else 0))
        buf, o, start = _out((B, K, n_in), acc, rng)
        rt._adjoint_k(Gf, og, B, n_out, Wf, ow, K, n_in, acc, tmp, 0, buf, o)
        _check(buf, o, np.einsum("io,koj->ikj", G, Wk) + (start if acc else 0))


def test_small_products_propagate_nan_and_inf():
    """No fast-math assumption beyond reordering: a NaN or inf in W reaches the output."""
    A = np.ones(4)
    for bad in (np.nan, np.inf, -np.inf):
        W = np.ones(4 * 5)
        W[4 * 4 + 2] = bad  # the leftover fifth row
        out = np.zeros(5)
        rt._mm_nt(A, 0, 1, 4, W, 0, 5, W, 0, 0, 0, out, 0)
        assert np.isfinite(out[:4]).all() and not np.isfinite(out[4])
