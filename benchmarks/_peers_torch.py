"""The PyTorch peer of :mod:`peers` (eager, float64)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from _peers_common import _check_loss, _import_optional, _sizes_tuple

# --------------------------------------------------------------------------------------
# PyTorch (eager, float64)
# --------------------------------------------------------------------------------------

#: Intra-op threads used by the PyTorch peer (the benchmark machine has 2 cores).
TORCH_THREADS = 2


def set_torch_threads(n: int) -> None:
    """Set :data:`TORCH_THREADS` (before the PyTorch peer is first used)."""
    global TORCH_THREADS
    TORCH_THREADS = int(n)


@functools.cache
def _torch():
    torch = _import_optional("torch")
    torch.set_num_threads(TORCH_THREADS)
    # The first forward-mode AD call loads decompositions through torch.jit.script, which
    # emits a DeprecationWarning from inside torch; trigger it once here, silenced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        x = torch.zeros(1, dtype=torch.float64)
        torch.func.jvp(torch.tanh, (x,), (x,))
    return torch


def to_torch(*arrays: np.ndarray):
    """Convert NumPy arrays to float64 CPU tensors (zero-copy when possible).

    Returns
    -------
    tuple of torch.Tensor
    """
    torch = _torch()
    out = []
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float64)
        if not a.flags.writeable:  # torch warns on read-only buffers
            a = a.copy()
        out.append(torch.from_numpy(a))
    return tuple(out)


def _torch_loss(theta, X, Y, sizes: tuple[int, ...], loss: str):
    torch = _torch()
    L = len(sizes) - 1
    A = X
    off = 0
    for l in range(1, L + 1):
        n_out, n_in = sizes[l], sizes[l - 1]
        W = theta[off : off + n_out * n_in].view(n_out, n_in)
        off += n_out * n_in
        b = theta[off : off + n_out]
        off += n_out
        Z = torch.addmm(b, A, W.T)
        A = torch.tanh(Z) if l < L else Z
    if loss == "ce":
        return -(Y * torch.log_softmax(Z, dim=1)).sum() / X.shape[0]
    return ((Z - Y) ** 2).mean()


def make_torch_loss_and_grad(sizes: Sequence[int], *, loss: str = "ce") -> Callable:
    """PyTorch eager loss and gradient (``torch.autograd.grad``).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.
    loss : {"ce", "mse"}, optional
        Softmax cross-entropy (default) or mean squared error.

    Returns
    -------
    callable
        ``f(theta, X, Y) -> (loss, grad)`` on float64 tensors (see :func:`to_torch`);
        returns a 0-d tensor and a ``(P,)`` tensor.

    Raises
    ------
    PeerUnavailable
        If torch cannot be imported.
    """
    torch = _torch()
    s = _sizes_tuple(sizes)
    _check_loss(loss)

    def loss_and_grad(theta, X, Y):
        th = theta.detach().requires_grad_(True)
        value = _torch_loss(th, X, Y, s, loss)
        (grad,) = torch.autograd.grad(value, th)
        return value.detach(), grad

    return loss_and_grad


def make_torch_hvp(
    sizes: Sequence[int], *, loss: str = "ce", method: str = "forward-over-reverse"
) -> Callable:
    """PyTorch Hessian-vector product.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.
    loss : {"ce", "mse"}, optional
        Softmax cross-entropy (default) or mean squared error.
    method : {"forward-over-reverse", "reverse-over-reverse"}, optional
        ``torch.func.jvp`` of ``torch.func.grad`` (default), or eager double backward
        (``torch.autograd.grad`` with ``create_graph=True``, then a vector-Jacobian
        product with ``v``).

    Returns
    -------
    callable
        ``f(theta, X, Y, v) -> hv`` on float64 tensors.
    """
    torch = _torch()
    s = _sizes_tuple(sizes)
    _check_loss(loss)
    if method == "forward-over-reverse":
        from torch.func import grad, jvp

        def hvp(theta, X, Y, v):
            g = grad(lambda th: _torch_loss(th, X, Y, s, loss))
            return jvp(g, (theta,), (v,))[1]

    elif method == "reverse-over-reverse":

        def hvp(theta, X, Y, v):
            th = theta.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(_torch_loss(th, X, Y, s, loss), th, create_graph=True)
            (hv,) = torch.autograd.grad(g, th, grad_outputs=v)
            return hv

    else:
        raise ValueError(f"unknown method {method!r}")
    return hvp


def make_torch_hessian(sizes: Sequence[int], *, loss: str = "ce") -> Callable:
    """PyTorch full Hessian via ``torch.func.hessian`` (forward-over-reverse, vmapped).

    Returns
    -------
    callable
        ``f(theta, X, Y) -> H`` with ``H`` a ``(P, P)`` tensor.
    """
    _torch()
    from torch.func import hessian

    s = _sizes_tuple(sizes)
    _check_loss(loss)

    def hess(theta, X, Y):
        return hessian(lambda th: _torch_loss(th, X, Y, s, loss))(theta)

    return hess


def torch_loss_and_grad(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> tuple[float, np.ndarray]:
    """Loss and gradient with PyTorch (NumPy in, NumPy out).

    Same contract as :func:`numpy_loss_and_grad`.
    """
    value, grad = make_torch_loss_and_grad(sizes, loss=loss)(*to_torch(theta, X, Y))
    return float(value), grad.numpy()


def torch_hvp(
    theta: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    sizes: Sequence[int],
    v: np.ndarray,
    *,
    loss: str = "ce",
    method: str = "forward-over-reverse",
) -> np.ndarray:
    """Hessian-vector product with PyTorch (NumPy in, NumPy out).

    Same contract as :func:`numpy_hvp` for a 1-D ``v``; ``method`` as in
    :func:`make_torch_hvp`.
    """
    f = make_torch_hvp(sizes, loss=loss, method=method)
    return f(*to_torch(theta, X, Y, v)).detach().numpy()


def torch_hessian(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> np.ndarray:
    """Full Hessian with ``torch.func.hessian`` (NumPy in, NumPy out)."""
    return make_torch_hessian(sizes, loss=loss)(*to_torch(theta, X, Y)).numpy()


def torch_hessian_extreme_eigenvalues(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> tuple[float, float]:
    """``(lambda_min, lambda_max)`` of the Hessian (``torch.linalg.eigvalsh``)."""
    torch = _torch()
    H = make_torch_hessian(sizes, loss=loss)(*to_torch(theta, X, Y))
    ev = torch.linalg.eigvalsh(H)
    return float(ev[0]), float(ev[-1])
