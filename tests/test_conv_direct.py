"""The direct loops of stride-1 convolutions (:class:`symnn.codegen.numba.emit_conv._Direct`):
Conv1D and ConvT1D of at least :data:`~symnn.codegen.numba.emit_conv.BLAS_MADDS`
multiply-adds at stride 1 are emitted as loops over taps in groups of 4, 2 and 1 and over
four output rows a pass.  With the threshold at 0, every kernel of a small network whose
geometries reach every branch (5 output rows: a pass of four and one alone; kernel 6: a
group of 4 and one of 2; kernel 3: 2 and 1; padding wider than a tap's reach, so that the
adjoint's padding is negative; several input channels) against the NumPy reference and
PyTorch autograd.  The session's poisoned buffers (``SYMNN_POISON=1``) make a read of an
unwritten value show."""

from __future__ import annotations

import pytest
from _exactness import F32_TOL, HAVE_TORCH, check_case, rel_err
from strategies import NetCase, case_data

from symnn.codegen.numba import emit_conv

_CASE = NetCase((("conv", 2, 5, 6, 1, 0, 13), "tanh", ("conv", 5, 3, 3, 1, 4, None),
                 ("flatten",), ("dense", 42, 2, True), "softmax"), "cross_entropy", ())


@pytest.fixture
def direct_everywhere(monkeypatch, tmp_path):
    """Every stride-1 convolution on the direct loops, compiled into a private kernel cache."""
    monkeypatch.setattr(emit_conv, "BLAS_MADDS", 0)
    monkeypatch.setenv("SYMNN_CACHE_DIR", str(tmp_path))


def test_direct_conv_loops_agree_with_reference_and_torch(direct_everywhere):
    """float64: every kernel (gradient, HVP with one and several directions, Gauss-Newton
    product, Hessian, Jacobian) to 1e-9; float32: the gradient to the float32 tolerance."""
    res = check_case(_CASE, 4)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, res.failures[:3]
    for kernel in ("grad", "hvp", "hvp_batched", "gnvp", "hessian", "jacobian"):
        assert (kernel, "compiled~reference") in res.errors
        if HAVE_TORCH:
            assert (kernel, "compiled~torch") in res.errors
    net = _CASE.build()
    m64, m32 = net.compile(), net.compile(dtype="float32")
    grad = m64.source[m64.source.index("_loss_grad("):m64.source.index("_hvp(")]
    # both convolutions and the second one's adjoint take the loops; no block but ConvWMean
    assert "_conv_fwd(" not in m64.source and "_conv_t(" not in m64.source
    assert grad.count("_a00 = ") == 3 * 2 + 2 * 2 and "_a13 = " in grad
    X, Y, th, _v, _V = case_data(net, 4)
    g64, g32 = m64.loss_and_grad(th, X, Y)[1], m32.loss_and_grad(th, X, Y)[1]
    assert rel_err(g32, g64) <= F32_TOL["grad"]


def test_tap_groups_cover_every_tap_once():
    """Groups of 4, then 2, then 1, in order, covering 0 … k − 1 exactly once."""
    for k in range(1, 12):
        groups = emit_conv._tap_groups(k)
        taps = [j0 + t for j0, n in groups for t in range(n)]
        assert taps == list(range(k)) and all(n in (4, 2, 1) for _, n in groups)
    assert emit_conv._tap_groups(7) == [(0, 4), (4, 2), (6, 1)]
