"""Shared pieces of the benchmark peers (:mod:`peers`): the parameter layout, random
problems, loss names, optional imports."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import numpy as np

#: Supported loss names.
LOSSES = ("ce", "mse")

_LOSS_CODE = {"ce": 0, "mse": 1}


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


class PeerUnavailable(ImportError):
    """Raised when an optional peer library (torch, jax) cannot be imported."""


def _check_loss(loss: str) -> str:
    if loss not in _LOSS_CODE:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return loss


def _sizes_tuple(sizes: Sequence[int]) -> tuple[int, ...]:
    sizes_t = tuple(int(n) for n in sizes)
    if len(sizes_t) < 2 or min(sizes_t) < 1:
        raise ValueError(f"sizes must list at least two positive widths, got {sizes!r}")
    return sizes_t


def param_count(sizes: Sequence[int]) -> int:
    """Number of parameters of the MLP ``sizes`` (length of ``theta``).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.

    Returns
    -------
    int
        ``sum_l n_l * (n_{l-1} + 1)``.
    """
    s = _sizes_tuple(sizes)
    return sum(s[l] * (s[l - 1] + 1) for l in range(1, len(s)))


def unpack(theta: np.ndarray, sizes: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split a flat parameter vector into per-layer ``(W_l, b_l)`` views.

    Parameters
    ----------
    theta : ndarray, shape (P,)
        Flat parameters in symnn's layout (see module docstring).
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.

    Returns
    -------
    list of (ndarray, ndarray)
        ``[(W_1, b_1), ..., (W_L, b_L)]`` with ``W_l`` of shape ``(n_l, n_{l-1})``.
        These are views of ``theta`` when it is contiguous.
    """
    s = _sizes_tuple(sizes)
    theta = np.asarray(theta)
    if theta.shape != (param_count(s),):
        raise ValueError(f"theta has shape {theta.shape}, expected ({param_count(s)},)")
    out = []
    off = 0
    for l in range(1, len(s)):
        n_out, n_in = s[l], s[l - 1]
        W = theta[off : off + n_out * n_in].reshape(n_out, n_in)
        off += n_out * n_in
        b = theta[off : off + n_out]
        off += n_out
        out.append((W, b))
    return out


def random_problem(
    sizes: Sequence[int], batch: int, *, loss: str = "ce", seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a reproducible random ``(theta, X, Y)`` problem.

    Weights are Glorot-like normal (``std = 1/sqrt(n_{l-1})``), biases ``N(0, 0.1^2)``,
    inputs standard normal. For ``loss="ce"`` the targets are one-hot rows with random
    classes; for ``loss="mse"`` they are standard normal.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.
    batch : int
        Batch size ``B``.
    loss : {"ce", "mse"}, optional
        Which kind of targets to draw.
    seed : int, optional
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    theta : ndarray, shape (P,)
    X : ndarray, shape (B, n_0)
    Y : ndarray, shape (B, n_L)
    """
    s = _sizes_tuple(sizes)
    _check_loss(loss)
    rng = np.random.default_rng(seed)
    parts = []
    for l in range(1, len(s)):
        parts.append(rng.standard_normal(s[l] * s[l - 1]) / np.sqrt(s[l - 1]))
        parts.append(0.1 * rng.standard_normal(s[l]))
    theta = np.concatenate(parts)
    X = rng.standard_normal((batch, s[0]))
    if loss == "ce":
        Y = np.zeros((batch, s[-1]))
        Y[np.arange(batch), rng.integers(0, s[-1], size=batch)] = 1.0
    else:
        Y = rng.standard_normal((batch, s[-1]))
    return theta, X, Y


def _import_optional(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install raising anything else
        raise PeerUnavailable(f"{name} not importable: {type(exc).__name__}: {exc}") from exc
