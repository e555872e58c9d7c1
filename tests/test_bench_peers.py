"""Correctness of the benchmark reference peers in ``benchmarks/peers.py``.

Every installed peer must agree with the hand-written NumPy peer (loss and gradient to
1e-10 relative, HVP and Hessian to 1e-8), and the NumPy peer must agree with central
finite differences. No timing assertions.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import peers
from _timing import format_seconds, median_time, print_table

GRAD_RTOL = 1e-10
SECOND_RTOL = 1e-8

# Widths not divisible by 4 exercise the remainder loops of the Numba kernels.
NETS = {
    "ce": [(5, 7, 3), (4, 9, 6, 3)],
    "mse": [(5, 7, 3), (3, 6, 1)],
}
CASES = [(sizes, loss) for loss, nets in NETS.items() for sizes in nets]


def rel_err(a, b) -> float:
    """Normwise relative error ``max|a - b| / max|b|``."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def problem(sizes, batch, loss, seed=0):
    theta, X, Y = peers.random_problem(sizes, batch, loss=loss, seed=seed)
    v = np.random.default_rng(seed + 100).standard_normal(theta.size)
    return theta, X, Y, v


# --------------------------------------------------------------------------------------
# Layout and the NumPy reference
# --------------------------------------------------------------------------------------


def test_layout_is_w_row_major_then_b_per_layer():
    sizes = (3, 4, 2)
    theta = np.arange(peers.param_count(sizes), dtype=float)
    assert theta.size == 4 * 3 + 4 + 2 * 4 + 2
    (W1, b1), (W2, b2) = peers.unpack(theta, sizes)
    np.testing.assert_array_equal(W1, np.arange(12.0).reshape(4, 3))
    np.testing.assert_array_equal(b1, np.arange(12.0, 16.0))
    np.testing.assert_array_equal(W2, np.arange(16.0, 24.0).reshape(2, 4))
    np.testing.assert_array_equal(b2, np.arange(24.0, 26.0))


def test_numpy_loss_matches_definition():
    sizes = (4, 5, 3)
    theta, X, Y, _ = problem(sizes, 6, "ce")
    (W1, b1), (W2, b2) = peers.unpack(theta, sizes)
    Z = np.tanh(X @ W1.T + b1) @ W2.T + b2
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    expected = -np.mean(np.sum(Y * np.log(P), axis=1))
    assert peers.numpy_loss(theta, X, Y, sizes) == pytest.approx(expected, rel=1e-13)
    expected_mse = np.mean((Z - Y) ** 2)
    assert peers.numpy_loss(theta, X, Y, sizes, loss="mse") == pytest.approx(expected_mse)


@pytest.mark.parametrize(("sizes", "loss"), CASES)
def test_numpy_gradient_matches_central_differences(sizes, loss):
    theta, X, Y, _ = problem(sizes, 5, loss)
    _, grad = peers.numpy_loss_and_grad(theta, X, Y, sizes, loss=loss)
    eps = 1e-6
    fd = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = eps
        lp = peers.numpy_loss(theta + e, X, Y, sizes, loss=loss)
        lm = peers.numpy_loss(theta - e, X, Y, sizes, loss=loss)
        fd[i] = (lp - lm) / (2 * eps)
    assert rel_err(fd, grad) < 1e-7


@pytest.mark.parametrize(("sizes", "loss"), CASES)
def test_numpy_hvp_matches_gradient_differences(sizes, loss):
    theta, X, Y, v = problem(sizes, 5, loss)
    hv = peers.numpy_hvp(theta, X, Y, sizes, v, loss=loss)
    eps = 1e-5
    gp = peers.numpy_loss_and_grad(theta + eps * v, X, Y, sizes, loss=loss)[1]
    gm = peers.numpy_loss_and_grad(theta - eps * v, X, Y, sizes, loss=loss)[1]
    assert rel_err((gp - gm) / (2 * eps), hv) < 1e-6


@pytest.mark.parametrize(("sizes", "loss"), CASES)
def test_numpy_hessian_consistent_with_hvp(sizes, loss):
    theta, X, Y, v = problem(sizes, 5, loss)
    H = peers.numpy_hessian(theta, X, Y, sizes, loss=loss)
    np.testing.assert_array_equal(H, H.T)
    hv = peers.numpy_hvp(theta, X, Y, sizes, v, loss=loss)
    assert rel_err(H @ v, hv) < 1e-12
    V = np.random.default_rng(7).standard_normal((3, theta.size))
    HV = peers.numpy_hvp(theta, X, Y, sizes, V, loss=loss)
    assert rel_err(HV, V @ H) < 1e-12
    lo, hi = peers.numpy_hessian_extreme_eigenvalues(theta, X, Y, sizes, loss=loss)
    ev = np.linalg.eigvalsh(H)
    assert (lo, hi) == (ev[0], ev[-1])


def test_numpy_ce_accepts_extreme_logits():
    sizes = (2, 3)
    theta = np.array([800.0, 0, 0, 0, -800.0, 0, 0, 0, 0])
    X = np.array([[1.0, 1.0]])
    Y = np.array([[0.0, 1.0, 0.0]])
    value, grad = peers.numpy_loss_and_grad(theta, X, Y, sizes)
    assert value == pytest.approx(800.0)
    assert np.all(np.isfinite(grad))


# --------------------------------------------------------------------------------------
# Numba
# --------------------------------------------------------------------------------------


def test_numba_tanh_accuracy():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [rng.standard_normal(20_000) * s for s in (1e-3, 0.3, 1.0, 3.0, 30.0)]
        + [np.array([0.0, 0.625, -0.625, 19.0, -25.0, 1e-300, 700.0, -1e308])]
    )
    y = peers.numba_tanh(x)
    ref = np.tanh(x.astype(np.longdouble))
    ulp = np.abs(y - ref) / np.spacing(np.abs(ref).astype(float))
    assert float(ulp.max()) <= 2.0
    special = peers.numba_tanh(np.array([np.inf, -np.inf, np.nan]))
    assert special[0] == 1.0 and special[1] == -1.0 and np.isnan(special[2])


@pytest.mark.parametrize("batch", [1, 3, 9])  # loops (B <= 4) and BLAS paths
@pytest.mark.parametrize(("sizes", "loss"), CASES)
def test_numba_loss_and_grad_match_numpy(sizes, loss, batch):
    theta, X, Y, _ = problem(sizes, batch, loss, seed=batch)
    l0, g0 = peers.numpy_loss_and_grad(theta, X, Y, sizes, loss=loss)
    l1, g1 = peers.numba_loss_and_grad(theta, X, Y, sizes, loss=loss)
    assert l1 == pytest.approx(l0, rel=GRAD_RTOL)
    assert rel_err(g1, g0) < GRAD_RTOL


def test_numba_small_batch_threshold_does_not_change_results():
    sizes = (5, 7, 3)
    theta, X, Y, _ = problem(sizes, 6, "ce")
    loops = peers.make_numba_loss_and_grad(sizes, small_batch=1000)(theta, X, Y)
    blas = peers.make_numba_loss_and_grad(sizes, small_batch=0)(theta, X, Y)
    assert loops[0] == pytest.approx(blas[0], rel=1e-14)
    assert rel_err(loops[1], blas[1]) < 1e-13


@pytest.mark.parametrize(("sizes", "loss"), CASES)
def test_numba_hvp_and_hessian_match_numpy(sizes, loss):
    theta, X, Y, v = problem(sizes, 6, loss)
    hv0 = peers.numpy_hvp(theta, X, Y, sizes, v, loss=loss)
    assert rel_err(peers.numba_hvp(theta, X, Y, sizes, v, loss=loss), hv0) < SECOND_RTOL
    H0 = peers.numpy_hessian(theta, X, Y, sizes, loss=loss)
    assert rel_err(peers.numba_hessian(theta, X, Y, sizes, loss=loss), H0) < SECOND_RTOL


def test_numba_rejects_wrong_shapes():
    sizes = (5, 7, 3)
    theta, X, Y, _ = problem(sizes, 2, "ce")
    with pytest.raises(ValueError, match="theta"):
        peers.numba_loss_and_grad(theta[:-1], X, Y, sizes)
    with pytest.raises(ValueError, match="X or Y"):
        peers.numba_loss_and_grad(theta, X, Y[:, :2], sizes)


# --------------------------------------------------------------------------------------
# Optional peers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "loss"), CASES[::2])
def test_torch_matches_numpy(sizes, loss):
    pytest.importorskip("torch")
    theta, X, Y, v = problem(sizes, 6, loss)
    l0, g0 = peers.numpy_loss_and_grad(theta, X, Y, sizes, loss=loss)
    l1, g1 = peers.torch_loss_and_grad(theta, X, Y, sizes, loss=loss)
    assert l1 == pytest.approx(l0, rel=GRAD_RTOL)
    assert rel_err(g1, g0) < GRAD_RTOL
    hv0 = peers.numpy_hvp(theta, X, Y, sizes, v, loss=loss)
    for method in ("forward-over-reverse", "reverse-over-reverse"):
        hv = peers.torch_hvp(theta, X, Y, sizes, v, loss=loss, method=method)
        assert rel_err(hv, hv0) < SECOND_RTOL
    H0 = peers.numpy_hessian(theta, X, Y, sizes, loss=loss)
    assert rel_err(peers.torch_hessian(theta, X, Y, sizes, loss=loss), H0) < SECOND_RTOL
    ext = peers.torch_hessian_extreme_eigenvalues(theta, X, Y, sizes, loss=loss)
    ext0 = peers.numpy_hessian_extreme_eigenvalues(theta, X, Y, sizes, loss=loss)
    assert rel_err(ext, ext0) < SECOND_RTOL


@pytest.mark.parametrize(("sizes", "loss"), CASES[::2])
def test_jax_matches_numpy(sizes, loss):
    pytest.importorskip("jax")
    theta, X, Y, v = problem(sizes, 6, loss)
    l0, g0 = peers.numpy_loss_and_grad(theta, X, Y, sizes, loss=loss)
    l1, g1 = peers.jax_loss_and_grad(theta, X, Y, sizes, loss=loss)
    assert l1 == pytest.approx(l0, rel=GRAD_RTOL)
    assert rel_err(g1, g0) < GRAD_RTOL
    hv0 = peers.numpy_hvp(theta, X, Y, sizes, v, loss=loss)
    assert rel_err(peers.jax_hvp(theta, X, Y, sizes, v, loss=loss), hv0) < SECOND_RTOL
    H0 = peers.numpy_hessian(theta, X, Y, sizes, loss=loss)
    assert rel_err(peers.jax_hessian(theta, X, Y, sizes, loss=loss), H0) < SECOND_RTOL
    ext = peers.jax_hessian_extreme_eigenvalues(theta, X, Y, sizes, loss=loss)
    ext0 = peers.numpy_hessian_extreme_eigenvalues(theta, X, Y, sizes, loss=loss)
    assert rel_err(ext, ext0) < SECOND_RTOL


def test_peer_status_reports_every_peer():
    status = peers.peer_status()
    assert set(status) == {"numpy", "numba", "torch", "jax"}
    assert status["numpy"] is None and status["numba"] is None
    assert all(reason is None or isinstance(reason, str) for reason in status.values())


# --------------------------------------------------------------------------------------
# Timing harness (smoke tests only; nothing about speed is asserted)
# --------------------------------------------------------------------------------------


def test_median_time_and_table(capsys):
    t = median_time(lambda: sum(range(10)), repeat=3, min_time=1e-3)
    assert 0.0 < t < 0.01
    print_table("demo", {"B=1": {"ref": 2e-6, "other": 5e-3, "skip": "n/a"}}, reference="ref")
    out = capsys.readouterr().out
    assert "ref (ref)" in out and "2500.00x" in out and "5.00 ms" in out and "n/a" in out
    assert format_seconds(1.5e-6) == "1.50 µs" and format_seconds(0.25) == "250 ms"
