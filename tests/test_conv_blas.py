"""The im2col + BLAS path of the convolutions (:mod:`symnn.codegen.numba.runtime_conv`):
every kernel (gradient, HVP and Gauss-Newton products with one and several directions,
Hessian, Jacobian; float64 and float32) against the NumPy reference and PyTorch autograd,
with the threshold :data:`~symnn.codegen.numba.emit_conv.BLAS_MADDS` at 0 so that every
Conv1D, ConvT1D and ConvWMean of the small test networks takes that path (strides,
padding, several input channels, max and average pooling after it).  The session's
poisoned buffers (``SYMNN_POISON=1``) make a read of an unwritten scratch value show."""

from __future__ import annotations

import numpy as np
import pytest
from _exactness import HAVE_TORCH, check_case
from strategies import NetCase

import symnn
from symnn.codegen.numba import emit_conv, runtime_conv

_CASES = [
    # stride 2, padding 1, two input channels; max pool; a second conv; average pool
    NetCase((("conv", 2, 3, 3, 2, 1, 11), "tanh", ("maxpool", 2), ("conv", 3, 2, 2, 1, 0, None),
             ("avgpool", 2), ("flatten",), ("dense", 2, 3, True), "softmax"),
            "cross_entropy", (("l2", 0.1),)),
    # padding 2 wider than a tap's reach at the ends; stride 3
    NetCase((("conv", 1, 2, 4, 3, 2, 10), "sigmoid", ("conv", 2, 2, 2, 1, 1, None),
             ("flatten",), ("dense", 10, 2, True), "elu", ("dense", 2, 1, True)), "mse",
            (("l1", 0.05),)),
]

_BLOCKS = ("_conv_fwd(", "_conv_t(", "_conv_wmean(")


@pytest.fixture
def blas_everywhere(monkeypatch, tmp_path):
    """Every convolution on the BLAS path, compiled into a private kernel cache."""
    monkeypatch.setattr(emit_conv, "BLAS_MADDS", 0)
    monkeypatch.setenv("SYMNN_CACHE_DIR", str(tmp_path))


@pytest.mark.parametrize("case,seed", [(_CASES[0], 5), (_CASES[1], 3)])
def test_blas_conv_kernels_agree_with_reference_and_torch(blas_everywhere, case, seed):
    res = check_case(case, seed, float32=True)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, res.failures[:3]
    for kernel in ("grad", "hvp", "hvp_batched", "gnvp", "hessian", "jacobian"):
        assert (kernel, "compiled~reference") in res.errors
        assert (kernel, "float32~float64") in res.errors
        if HAVE_TORCH:
            assert (kernel, "compiled~torch") in res.errors
    source = case.build().compile().source
    assert all(b in source for b in _BLOCKS), "not every convolution took the BLAS path"


def test_blas_path_is_taken_from_the_threshold_and_loops_below(monkeypatch, tmp_path):
    """At the default threshold wide convolutions call the blocks and a narrow one loops;
    all kernels agree with the reference."""
    monkeypatch.setenv("SYMNN_CACHE_DIR", str(tmp_path))
    net = symnn.Network([symnn.Conv1D(2, 8, 5, length=140), "relu", symnn.Conv1D(8, 2, 5),
                         "tanh", symnn.Conv1D(2, 1, 1), symnn.Flatten(), symnn.Dense(132, 1)],
                        loss="mse", name="wideconv")
    assert 2 * 8 * 5 * 132 >= emit_conv.BLAS_MADDS > 2 * 1 * 1 * 132
    m = net.compile()
    assert all(b in m.source for b in _BLOCKS)
    assert "q0 = max(0, " in m.source  # the narrow one's loops
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((3, 280)), rng.standard_normal((3, 1))
    th, v = m.init(0), rng.standard_normal(net.n_params)
    ref = m.reference
    for got, want in ((m.loss_and_grad(th, X, Y)[1], ref.loss_and_grad(th, X, Y)[1]),
                      (m.hvp(th, v, X, Y), ref.hvp(th, v, X, Y)),
                      (m.gnvp(th, v, X, Y), ref.gnvp(th, v, X, Y)),
                      (m.jacobian(th, X), ref.jacobian(th, X))):
        assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want))


def test_im2col_and_col2im_are_adjoint():
    """⟨col(x), c⟩ = ⟨x, col⁻¹(c)⟩ for a geometry with stride and padding (the identity
    that makes ConvT1D the adjoint of Conv1D on this path); and a wrong col2im (one tap
    dropped) breaks it."""
    ci, li, kw, st, pd = 2, 9, 4, 2, 2
    lo = (li + 2 * pd - kw) // st + 1
    rng = np.random.default_rng(1)
    x, c = rng.standard_normal(ci * li), rng.standard_normal(ci * kw * lo)
    col, back = np.full(ci * kw * lo, np.nan), np.full(ci * li, np.nan)
    runtime_conv._im2col(x, 0, ci, li, lo, kw, st, pd, col, 0)
    runtime_conv._col2im(c, 0, ci, li, lo, kw, st, pd, 0, back, 0)
    assert np.isfinite(col).all() and np.isfinite(back).all()
    assert abs(col @ c - x @ back) <= 1e-12 * np.abs(col).sum() * np.abs(c).max()
    c_cut = c.copy()
    c_cut[:lo] = 0.0  # drop tap (0, 0): the adjoint identity no longer holds
    runtime_conv._col2im(c_cut, 0, ci, li, lo, kw, st, pd, 0, back, 0)
    assert abs(col @ c - x @ back) > 1e-6
