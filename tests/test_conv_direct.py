"""The direct loops of stride-1 convolutions (:class:`symnn.codegen.numba.emit_conv._Direct`):
Conv1D and ConvT1D of at least :data:`~symnn.codegen.numba.emit_conv.BLAS_MADDS`
multiply-adds at stride 1 are emitted as loops over taps in groups of at most eight and
over two output rows a pass.  With the threshold at 0, every kernel of a small network
whose geometries reach every branch (5 output rows: passes of two and one alone; kernel
9: groups of 5 and 4; kernel 3 with padding 4, wider than a tap's reach, so that the
adjoint's padding is negative and every tap has ends; several input channels) against the
NumPy reference and PyTorch autograd (the witness block of tests/_exactness.py,
:func:`assert_witnesses_agree`).  The session's poisoned buffers (``SYMNN_POISON=1``) make a
read of an unwritten value show."""

from __future__ import annotations

import pytest
from _exactness import assert_witnesses_agree
from strategies import NetCase

from symnn.codegen.numba import emit_conv

_CASE = NetCase((("conv", 2, 5, 9, 1, 0, 16), "tanh", ("conv", 5, 3, 3, 1, 4, None),
                 ("flatten",), ("dense", 42, 2, True), "softmax"), "cross_entropy", ())


@pytest.fixture
def direct_everywhere(monkeypatch, tmp_path):
    """Every stride-1 convolution on the direct loops, compiled into a private kernel cache."""
    monkeypatch.setattr(emit_conv, "BLAS_MADDS", 0)
    monkeypatch.setenv("SYMNN_CACHE_DIR", str(tmp_path))


def test_direct_conv_loops_agree_with_reference_and_torch(direct_everywhere):
    """float64: every kernel (gradient, HVP with one and several directions, Gauss-Newton
    product, Hessian, Jacobian) to 1e-9; float32: the gradient to the float32 tolerance."""
    _net, m64 = assert_witnesses_agree(_CASE, 4)
    grad = m64.source[m64.source.index("_loss_grad("):m64.source.index("_hvp(")]
    # in the gradient, both convolutions and the second one's adjoint take the loops (no
    # block but ConvWMean); the HVP's tangent ones (with directions) keep the blocks
    assert "_conv_fwd(" not in grad and "_conv_t(" not in grad
    assert "_conv_fwd(" in m64.source and "_conv_t(" in m64.source
    # passes × tap groups: the first's 2 × 2, the second's 2 × 1, its adjoint's 2 × 1
    assert grad.count("_a00 = ") == 4 + 2 + 2 and "_a14 = " in grad


def test_tap_groups_cover_every_tap_once():
    """Groups of at most eight taps, as even as can be, in order, covering 0 … k − 1 once."""
    for k in range(1, 30):
        groups = emit_conv._tap_groups(k)
        taps = [j0 + t for j0, n in groups for t in range(n)]
        sizes = [n for _, n in groups]
        assert taps == list(range(k)) and max(sizes) <= emit_conv._TAPS
        assert max(sizes) - min(sizes) <= 1 and len(groups) == -(-k // emit_conv._TAPS)
    assert emit_conv._tap_groups(10) == [(0, 5), (5, 5)]
