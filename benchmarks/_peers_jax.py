"""The JAX peer of :mod:`peers` (jit, float64)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
from _peers_common import _check_loss, _import_optional, _sizes_tuple

# --------------------------------------------------------------------------------------
# JAX (jit, float64)
# --------------------------------------------------------------------------------------


@functools.cache
def _jax():
    jax = _import_optional("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def to_jax(*arrays: np.ndarray):
    """Put NumPy arrays on JAX's default (CPU) device as float64 arrays.

    Returns
    -------
    tuple of jax.Array
    """
    jax = _jax()
    return tuple(jax.device_put(np.asarray(a, dtype=np.float64)) for a in arrays)


def _jax_loss_fn(sizes: tuple[int, ...], loss: str):
    jax = _jax()
    jnp = jax.numpy
    L = len(sizes) - 1

    def loss_fn(theta, X, Y):
        A = X
        off = 0
        for l in range(1, L + 1):
            n_out, n_in = sizes[l], sizes[l - 1]
            W = theta[off : off + n_out * n_in].reshape(n_out, n_in)
            off += n_out * n_in
            b = theta[off : off + n_out]
            off += n_out
            Z = A @ W.T + b
            A = jnp.tanh(Z) if l < L else Z
        if loss == "ce":
            return -jnp.sum(Y * jax.nn.log_softmax(Z, axis=1)) / X.shape[0]
        return jnp.mean((Z - Y) ** 2)

    return loss_fn


@functools.cache
def _make_jax_cached(kind: str, sizes: tuple[int, ...], loss: str):
    jax = _jax()
    f = _jax_loss_fn(sizes, loss)
    if kind == "loss_and_grad":
        return jax.jit(jax.value_and_grad(f))
    if kind == "hvp":

        def hvp(theta, X, Y, v):
            return jax.jvp(lambda th: jax.grad(f)(th, X, Y), (theta,), (v,))[1]

        return jax.jit(hvp)
    if kind == "hessian":
        return jax.jit(jax.hessian(f))
    if kind == "eig":

        def extremes(theta, X, Y):
            ev = jax.numpy.linalg.eigvalsh(jax.hessian(f)(theta, X, Y))
            return ev[0], ev[-1]

        return jax.jit(extremes)
    raise ValueError(kind)


def make_jax_loss_and_grad(sizes: Sequence[int], *, loss: str = "ce") -> Callable:
    """``jax.jit(jax.value_and_grad(loss))``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]`` (static: one compilation per network).
    loss : {"ce", "mse"}, optional
        Softmax cross-entropy (default) or mean squared error.

    Returns
    -------
    callable
        ``f(theta, X, Y) -> (loss, grad)`` on float64 JAX arrays (see :func:`to_jax`).
        Dispatch is asynchronous: call ``jax.block_until_ready`` on the result when
        timing. Each new batch size triggers one trace/compile.

    Raises
    ------
    PeerUnavailable
        If jax cannot be imported.
    """
    return _make_jax_cached("loss_and_grad", _sizes_tuple(sizes), _check_loss(loss))


def make_jax_hvp(sizes: Sequence[int], *, loss: str = "ce") -> Callable:
    """Jitted forward-over-reverse HVP, ``jax.jvp`` of ``jax.grad``.

    Returns
    -------
    callable
        ``f(theta, X, Y, v) -> hv`` on float64 JAX arrays (asynchronous dispatch).
    """
    return _make_jax_cached("hvp", _sizes_tuple(sizes), _check_loss(loss))


def make_jax_hessian(sizes: Sequence[int], *, loss: str = "ce") -> Callable:
    """``jax.jit(jax.hessian(loss))`` (forward-over-reverse, vmapped over the basis).

    Returns
    -------
    callable
        ``f(theta, X, Y) -> H`` with ``H`` of shape ``(P, P)`` (asynchronous dispatch).
    """
    return _make_jax_cached("hessian", _sizes_tuple(sizes), _check_loss(loss))


def make_jax_hessian_extreme_eigenvalues(sizes: Sequence[int], *, loss: str = "ce") -> Callable:
    """Jitted dense ``jnp.linalg.eigvalsh(jax.hessian(loss)(...))`` extremes.

    Returns
    -------
    callable
        ``f(theta, X, Y) -> (lambda_min, lambda_max)`` as 0-d JAX arrays.
    """
    return _make_jax_cached("eig", _sizes_tuple(sizes), _check_loss(loss))


def jax_loss_and_grad(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> tuple[float, np.ndarray]:
    """Loss and gradient with JAX (NumPy in, NumPy out).

    Same contract as :func:`numpy_loss_and_grad`.
    """
    value, grad = make_jax_loss_and_grad(sizes, loss=loss)(*to_jax(theta, X, Y))
    return float(value), np.array(grad)


def jax_hvp(
    theta: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    sizes: Sequence[int],
    v: np.ndarray,
    *,
    loss: str = "ce",
) -> np.ndarray:
    """Hessian-vector product with JAX (NumPy in, NumPy out).

    Same contract as :func:`numpy_hvp` for a 1-D ``v``.
    """
    return np.array(make_jax_hvp(sizes, loss=loss)(*to_jax(theta, X, Y, v)))


def jax_hessian(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> np.ndarray:
    """Full Hessian with ``jax.hessian`` (NumPy in, NumPy out)."""
    return np.array(make_jax_hessian(sizes, loss=loss)(*to_jax(theta, X, Y)))


def jax_hessian_extreme_eigenvalues(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> tuple[float, float]:
    """``(lambda_min, lambda_max)`` of the Hessian, dense ``jnp.linalg.eigvalsh``."""
    lo, hi = make_jax_hessian_extreme_eigenvalues(sizes, loss=loss)(*to_jax(theta, X, Y))
    return float(lo), float(hi)
