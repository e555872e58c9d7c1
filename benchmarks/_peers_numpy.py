"""The NumPy peer of :mod:`peers`: forward/backward and the R-operator by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from _peers_common import _check_loss, _sizes_tuple, unpack

# --------------------------------------------------------------------------------------
# NumPy by hand
# --------------------------------------------------------------------------------------


def _np_forward(theta, X, sizes):
    """Return ``(layers, acts, Z_L)``: ``acts[l]`` is ``A_l`` for ``l = 0..L-1``."""
    layers = unpack(theta, sizes)
    acts = [X]
    A = X
    for W, b in layers[:-1]:
        A = np.tanh(A @ W.T + b)
        acts.append(A)
    W, b = layers[-1]
    return layers, acts, A @ W.T + b


def _np_output(Z, Y, loss):
    """Loss value, ``D = dloss/dZ_L`` and the pieces the R-operator needs."""
    B, n_out = Z.shape
    if loss == "ce":
        m = Z.max(axis=1, keepdims=True)
        E = np.exp(Z - m)
        s = E.sum(axis=1, keepdims=True)
        lse = m + np.log(s)
        value = float(np.sum(Y * (lse - Z)) / B)
        P = E / s
        ysum = Y.sum(axis=1, keepdims=True)
        D = (P * ysum - Y) / B
        return value, D, (P, ysum)
    R = Z - Y
    value = float(np.sum(R * R) / (B * n_out))
    return value, (2.0 / (B * n_out)) * R, None


def numpy_loss(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> float:
    """Loss value only (NumPy).

    Parameters
    ----------
    theta : ndarray, shape (P,)
        Flat parameters in symnn's layout.
    X : ndarray, shape (B, n_0)
        Inputs.
    Y : ndarray, shape (B, n_L)
        Targets (one-hot for ``"ce"``).
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.
    loss : {"ce", "mse"}, optional
        Softmax cross-entropy (default) or mean squared error.

    Returns
    -------
    float
    """
    _check_loss(loss)
    _, _, Z = _np_forward(np.asarray(theta, float), np.asarray(X, float), sizes)
    return _np_output(Z, np.asarray(Y, float), loss)[0]


def numpy_loss_and_grad(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> tuple[float, np.ndarray]:
    """Loss and gradient by hand-written backpropagation in NumPy.

    Parameters
    ----------
    theta : ndarray, shape (P,)
        Flat parameters in symnn's layout.
    X : ndarray, shape (B, n_0)
        Inputs.
    Y : ndarray, shape (B, n_L)
        Targets (one-hot for ``"ce"``).
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.
    loss : {"ce", "mse"}, optional
        Softmax cross-entropy (default) or mean squared error.

    Returns
    -------
    loss : float
    grad : ndarray, shape (P,)
        Gradient in the same flat layout as ``theta``.
    """
    _check_loss(loss)
    theta = np.asarray(theta, float)
    layers, acts, Z = _np_forward(theta, np.asarray(X, float), sizes)
    value, D, _ = _np_output(Z, np.asarray(Y, float), loss)
    grad = np.empty_like(theta)
    gviews = unpack(grad, sizes)
    for l in range(len(layers) - 1, -1, -1):
        W, _ = layers[l]
        gW, gb = gviews[l]
        A = acts[l]
        np.dot(D.T, A, out=gW)
        gb[:] = D.sum(axis=0)
        if l > 0:
            D = (D @ W) * (1.0 - A * A)
    return value, grad


def numpy_hvp(
    theta: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    sizes: Sequence[int],
    v: np.ndarray,
    *,
    loss: str = "ce",
) -> np.ndarray:
    """Hessian-vector product(s) by a hand-written forward-over-reverse R-operator.

    Pearlmutter's R-operator ``R{.} = d/dr (.)(theta + r v)|_{r=0}`` is pushed through
    the forward pass and the backpropagation equations; ``R{grad} = H v`` exactly (no
    finite differences).

    Parameters
    ----------
    theta : ndarray, shape (P,)
        Flat parameters in symnn's layout.
    X : ndarray, shape (B, n_0)
        Inputs.
    Y : ndarray, shape (B, n_L)
        Targets.
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.
    v : ndarray, shape (P,) or (K, P)
        Direction(s). With a 2-D ``v`` all ``K`` products are computed at once
        (vectorised over the leading axis).
    loss : {"ce", "mse"}, optional
        Softmax cross-entropy (default) or mean squared error.

    Returns
    -------
    ndarray, same shape as ``v``
        ``H v`` (or ``v @ H``, which is the same since ``H`` is symmetric).
    """
    _check_loss(loss)
    theta = np.asarray(theta, float)
    X = np.asarray(X, float)
    Y = np.asarray(Y, float)
    v = np.asarray(v, float)
    single = v.ndim == 1
    V = v[None, :] if single else v
    K, P = V.shape
    if P != theta.size:
        raise ValueError(f"v has {P} entries per direction, expected {theta.size}")
    s = _sizes_tuple(sizes)
    layers, acts, Z = _np_forward(theta, X, s)
    _, D, extra = _np_output(Z, Y, loss)
    vblocks = _np_direction_blocks(V, s)
    RA, RZ = _np_r_forward(layers, acts, vblocks, X.shape[0], K, s)
    # Output layer: R{D_L}.
    B = X.shape[0]
    if loss == "ce":
        Pm, ysum = extra
        RP = Pm * (RZ - np.sum(Pm * RZ, axis=2, keepdims=True))
        RD = RP * ysum / B
    else:
        RD = (2.0 / (B * s[-1])) * RZ
    HV = _np_r_backward(layers, acts, vblocks, RA, D, RD, s, np.empty_like(V))
    return HV[0] if single else HV


def _np_direction_blocks(V, s):
    """Per-layer direction blocks, shapes ``(K, n_l, n_{l-1})`` and ``(K, 1, n_l)``."""
    K = V.shape[0]
    vblocks = []
    off = 0
    for l in range(1, len(s)):
        n_out, n_in = s[l], s[l - 1]
        VW = V[:, off : off + n_out * n_in].reshape(K, n_out, n_in)
        off += n_out * n_in
        Vb = V[:, off : off + n_out].reshape(K, 1, n_out)
        off += n_out
        vblocks.append((VW, Vb))
    return vblocks


def _np_r_forward(layers, acts, vblocks, B, K, s):
    """Forward R-pass: ``RA[l] = R{A_l}``, shape ``(K, B, n_l)`` (``R{A_0} = 0``), and
    ``R{Z_L}``."""
    L = len(s) - 1
    RA = [np.zeros((K, B, s[0]))]
    for l in range(L):
        W, _ = layers[l]
        VW, Vb = vblocks[l]
        RZ = RA[l] @ W.T + acts[l] @ VW.transpose(0, 2, 1) + Vb
        if l < L - 1:
            RA.append((1.0 - acts[l + 1] ** 2) * RZ)
    return RA, RZ


def _np_r_backward(layers, acts, vblocks, RA, D, RD, s, HV):
    """Backward R-pass: ``R{grad}`` into ``HV`` (K, P)."""
    K = HV.shape[0]
    off_end = HV.shape[1]
    for l in range(len(s) - 2, -1, -1):
        W, _ = layers[l]
        VW, _ = vblocks[l]
        A = acts[l]
        n_out, n_in = s[l + 1], s[l]
        RgW = RD.transpose(0, 2, 1) @ A + D.T @ RA[l]
        Rgb = RD.sum(axis=1)
        HV[:, off_end - n_out : off_end] = Rgb
        off_end -= n_out
        HV[:, off_end - n_out * n_in : off_end] = RgW.reshape(K, -1)
        off_end -= n_out * n_in
        if l > 0:
            G = D @ W
            RG = RD @ W + D @ VW
            dact = 1.0 - A * A
            RD = RG * dact - 2.0 * G * A * RA[l]
            D = G * dact
    return HV


def numpy_hessian(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> np.ndarray:
    """Full Hessian via :func:`numpy_hvp` applied to all basis vectors at once.

    Parameters
    ----------
    theta, X, Y, sizes, loss
        As in :func:`numpy_loss_and_grad`.

    Returns
    -------
    ndarray, shape (P, P)
        The (symmetrised) Hessian. Memory is ``O(P * B * max n_l)``: meant for small nets.
    """
    theta = np.asarray(theta, float)
    H = numpy_hvp(theta, X, Y, sizes, np.eye(theta.size), loss=loss)
    return 0.5 * (H + H.T)


def numpy_hessian_extreme_eigenvalues(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> tuple[float, float]:
    """Smallest and largest Hessian eigenvalues (dense ``numpy.linalg.eigvalsh``).

    Returns
    -------
    (float, float)
        ``(lambda_min, lambda_max)``.
    """
    ev = np.linalg.eigvalsh(numpy_hessian(theta, X, Y, sizes, loss=loss))
    return float(ev[0]), float(ev[-1])
