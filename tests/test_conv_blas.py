"""The im2col + BLAS path of the convolutions (:mod:`symnn.codegen.numba.runtime_conv`):
every kernel (gradient, HVP and Gauss-Newton products with one and several directions,
Hessian, Jacobian; float64 and float32) against the NumPy reference and PyTorch autograd,
with the threshold :data:`~symnn.codegen.numba.emit_conv.BLAS_MADDS` at 0 so that every
Conv1D, ConvT1D and ConvWMean of a small test network takes that path (strides, padding
wider than a tap's reach, several input channels).  The session's
poisoned buffers (``SYMNN_POISON=1``) make a read of an unwritten scratch value show."""

from __future__ import annotations

import numpy as np
import pytest
from _exactness import assert_witnesses_agree
from strategies import NetCase

import symnn
from symnn.codegen.numba import emit_conv, generate, runtime_conv
from symnn.derive import derive

# stride 3, padding 2 (wider than a tap's reach at the ends), two input channels; a second
# convolution with padding and stride 2 (stride 1 takes the direct loops instead: see
# tests/test_conv_direct.py), whose input cotangent is computed too
_CASE = NetCase((("conv", 2, 3, 4, 3, 2, 14), "tanh", ("conv", 3, 2, 2, 2, 1, None),
                 ("flatten",), ("dense", 6, 3, True), "softmax"), "cross_entropy",
                (("l2", 0.1),))

_BLOCKS = ("_conv_fwd(", "_conv_t(", "_conv_wmean(")


@pytest.fixture
def blas_everywhere(monkeypatch, tmp_path):
    """Every convolution on the BLAS path, compiled into a private kernel cache (the
    declaration index of the session's cache would find the loop kernels)."""
    monkeypatch.setattr(emit_conv, "BLAS_MADDS", 0)
    monkeypatch.setenv("SYMNN_CACHE_DIR", str(tmp_path))


def test_blas_conv_kernels_agree_with_reference_and_torch(blas_everywhere):
    """float64: every kernel to 1e-9; float32: gradient and a two-direction HVP to the
    float32 tolerances of tests/_exactness.py."""
    _net, m64 = assert_witnesses_agree(_CASE, 5, f32_hvp=True)
    assert all(b in m64.source for b in _BLOCKS), "not every convolution took the BLAS path"


def test_the_threshold_picks_blocks_for_wide_convolutions_and_loops_for_narrow_ones():
    """At the default threshold (generated source only, nothing compiled); stride 1 takes
    the direct loops for Conv1D and ConvT1D."""
    net = symnn.Network([symnn.Conv1D(2, 8, 5, length=140), "relu", symnn.Conv1D(8, 2, 5),
                         "tanh", symnn.Conv1D(2, 1, 1), symnn.Flatten(), symnn.Dense(132, 1)],
                        loss="mse", name="wideconv")
    assert 2 * 8 * 5 * 132 >= emit_conv.BLAS_MADDS > 2 * 1 * 1 * 132
    src = generate(derive(net), "float64").source
    assert "q0 = max(0, " in src  # the narrow one's loops
    grad = src[src.index("_loss_grad("):src.index("_hvp(")]
    # stride 1: the wide ones' Conv1D and ConvT1D take the direct loops, ConvWMean the block
    assert grad.count("_conv_wmean(") == 2 and "_a00 = " in grad
    assert grad.count("_conv_fwd(") == 0 and grad.count("_conv_t(") == 0
    strided = symnn.Network([symnn.Conv1D(2, 8, 5, length=140), "relu",
                             symnn.Conv1D(8, 4, 5, stride=2), symnn.Flatten(),
                             symnn.Dense(264, 1)], loss="mse", name="wideconv2")
    grad = generate(derive(strided), "float64").source
    grad = grad[grad.index("_loss_grad("):grad.index("_hvp(")]
    assert grad.count("_conv_fwd(") == 1 and grad.count("_conv_wmean(") == 2
    assert grad.count("_conv_t(") == 1  # the strided one's; the input's is not computed


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
