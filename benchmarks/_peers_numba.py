"""The Numba peer of :mod:`peers`: hand-written loss/gradient and R-operator kernels."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
from _peers_common import _LOSS_CODE, _check_loss, _sizes_tuple, param_count
from _peers_numba_math import _exp_approx, _gemm, _tanh_approx
from numba import njit

# --------------------------------------------------------------------------------------
# Numba: loss and gradient
# --------------------------------------------------------------------------------------


@njit(error_model="numpy", fastmath={"reassoc", "contract"}, cache=True)
def _affine_loops(A, W, Z):
    """``Z = A @ W.T`` with plain loops, for small batches.

    Four rows of ``W`` per pass share each load of ``A[i, k]``; the ``k`` loops are
    vectorised through reassociation (``fastmath={"reassoc", "contract"}``).
    """
    B, n_in = A.shape
    n_out = W.shape[0]
    n4 = n_out - n_out % 4
    for i in range(B):
        for j in range(0, n4, 4):
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            for k in range(n_in):
                x = A[i, k]
                a0 += x * W[j, k]
                a1 += x * W[j + 1, k]
                a2 += x * W[j + 2, k]
                a3 += x * W[j + 3, k]
            Z[i, j] = a0
            Z[i, j + 1] = a1
            Z[i, j + 2] = a2
            Z[i, j + 3] = a3
        for j in range(n4, n_out):
            acc = 0.0
            for k in range(n_in):
                acc += A[i, k] * W[j, k]
            Z[i, j] = acc


@njit(error_model="numpy", cache=True)
def _output_ce(Z, Y):
    """Mean softmax cross-entropy; overwrites ``Z`` with ``dloss/dZ``."""
    B, n = Z.shape
    inv_b = 1.0 / B
    total = 0.0
    for i in range(B):
        m = Z[i, 0]
        for k in range(1, n):
            m = max(m, Z[i, k])
        s = 0.0
        ysum = 0.0
        yz = 0.0
        for k in range(n):
            e = _exp_approx(max(Z[i, k] - m, -700.0))
            yz += Y[i, k] * Z[i, k]
            ysum += Y[i, k]
            Z[i, k] = e
            s += e
        total += ysum * (m + np.log(s)) - yz
        c = ysum * inv_b / s
        for k in range(n):
            Z[i, k] = Z[i, k] * c - Y[i, k] * inv_b
    return total * inv_b


@njit(error_model="numpy", cache=True)
def _output_mse(Z, Y):
    """Mean squared error; overwrites ``Z`` with ``dloss/dZ``."""
    B, n = Z.shape
    scale = 2.0 / (B * n)
    total = 0.0
    for i in range(B):
        for k in range(n):
            r = Z[i, k] - Y[i, k]
            total += r * r
            Z[i, k] = scale * r
    return total / (B * n)


@njit(cache=True)
def _check_shapes(theta, X, Y, sizes):
    L = sizes.size - 1
    P = 0
    for l in range(1, L + 1):
        P += sizes[l] * (sizes[l - 1] + 1)
    if theta.size != P:
        raise ValueError("theta has the wrong length for these sizes")
    if X.shape[1] != sizes[0] or Y.shape[1] != sizes[L] or Y.shape[0] != X.shape[0]:
        raise ValueError("X or Y has the wrong shape for these sizes")


@njit(cache=True)
def _offsets(sizes, rows):
    """Offsets of ``(W_l, b_l)`` in theta and of ``rows x n_l`` blocks in a work array.

    Returns ``(woff, aoff, end, nmax)``: ``end`` is the total size of the blocks and
    ``nmax = max(sizes[1:])``.
    """
    L = sizes.size - 1
    woff = np.empty(L + 1, np.int64)
    aoff = np.empty(L + 1, np.int64)
    w = 0
    a = 0
    nmax = 1
    for l in range(1, L + 1):
        woff[l] = w
        aoff[l] = a
        w += sizes[l] * (sizes[l - 1] + 1)
        a += rows * sizes[l]
        nmax = max(nmax, sizes[l])
    return woff, aoff, a, nmax


@njit(error_model="numpy", cache=True)
def _nb_forward(theta, X, sizes, woff, aoff, work, use_blas):
    """Forward: Z = A_prev W^T + b, A = tanh(Z) fused into one pass after the product;
    returns ``Z_L`` (a block of ``work``)."""
    B = X.shape[0]
    L = sizes.size - 1
    A_prev = X
    for l in range(1, L + 1):
        n_out = sizes[l]
        n_in = sizes[l - 1]
        o = woff[l]
        W = theta[o : o + n_out * n_in].reshape(n_out, n_in)
        b = theta[o + n_out * n_in : o + n_out * (n_in + 1)]
        Z = work[aoff[l] : aoff[l] + B * n_out].reshape(B, n_out)
        if use_blas:
            _gemm(False, True, 1.0, A_prev, W, 0.0, Z)
        else:
            _affine_loops(A_prev, W, Z)
        if l < L:
            for i in range(B):
                for j in range(n_out):
                    Z[i, j] = _tanh_approx(Z[i, j] + b[j])
        else:
            for i in range(B):
                for j in range(n_out):
                    Z[i, j] += b[j]
        A_prev = Z
    return A_prev


@njit(error_model="numpy", cache=True)
def _nb_param_grad(D, A, gW, gb, use_blas):
    """``gb = sum_i D[i]``, ``gW = D^T A``."""
    B, n_out = D.shape
    n_in = A.shape[1]
    for j in range(n_out):
        gb[j] = D[0, j]
    for i in range(1, B):
        for j in range(n_out):
            gb[j] += D[i, j]
    if use_blas:
        _gemm(True, False, 1.0, D, A, 0.0, gW)
        return
    for j in range(n_out):
        d = D[0, j]
        for k in range(n_in):
            gW[j, k] = d * A[0, k]
        for i in range(1, B):
            d = D[i, j]
            for k in range(n_in):
                gW[j, k] += d * A[i, k]


@njit(error_model="numpy", cache=True)
def _nb_delta_blas(D, W, A, G):
    """``D_{l-1} = (D W) * (1 - A^2)``, written over ``A`` (one GEMM into ``G``)."""
    B, n_in = A.shape
    _gemm(False, False, 1.0, D, W, 0.0, G)
    for i in range(B):
        for k in range(n_in):
            a = A[i, k]
            A[i, k] = G[i, k] * (1.0 - a * a)


@njit(error_model="numpy", cache=True)
def _nb_delta_loops(D, W, A, g):
    """``D_{l-1} = (D W) * (1 - A^2)``, written over ``A`` (loops; ``g`` one row of
    scratch)."""
    B, n_in = A.shape
    n_out = D.shape[1]
    n4 = n_out - n_out % 4
    for i in range(B):
        for k in range(n_in):
            g[k] = 0.0
        for j in range(0, n4, 4):  # four rows of W per pass over g
            d0 = D[i, j]
            d1 = D[i, j + 1]
            d2 = D[i, j + 2]
            d3 = D[i, j + 3]
            for k in range(n_in):
                g[k] += (d0 * W[j, k] + d1 * W[j + 1, k]) + (
                    d2 * W[j + 2, k] + d3 * W[j + 3, k]
                )
        for j in range(n4, n_out):
            d = D[i, j]
            for k in range(n_in):
                g[k] += d * W[j, k]
        for k in range(n_in):
            a = A[i, k]
            A[i, k] = g[k] * (1.0 - a * a)


@njit(error_model="numpy", cache=True)
def _nb_loss_and_grad(theta, X, Y, sizes, loss_code, small_batch):
    """Loss and a fresh gradient array; BLAS for ``B > small_batch``, loops otherwise.

    ``work`` holds ``A_1 .. A_{L-1}, Z_L`` back to back, then one ``(B, max n_l)``
    scratch block.  During backprop each ``A_l`` block is overwritten in place by
    ``D_l = dloss/dZ_l``.
    """
    _check_shapes(theta, X, Y, sizes)
    B = X.shape[0]
    L = sizes.size - 1
    use_blas = B > small_batch
    woff, aoff, end, nmax = _offsets(sizes, B)
    work = np.empty(end + B * nmax)
    grad = np.empty(theta.size)
    # Output layer: Z_L -> D_L in place.
    D = _nb_forward(theta, X, sizes, woff, aoff, work, use_blas)
    if loss_code == 0:
        value = _output_ce(D, Y)
    else:
        value = _output_mse(D, Y)
    # Backward.
    for l in range(L, 0, -1):
        n_out = sizes[l]
        n_in = sizes[l - 1]
        o = woff[l]
        if l > 1:
            A = work[aoff[l - 1] : aoff[l - 1] + B * n_in].reshape(B, n_in)
        else:
            A = X
        gW = grad[o : o + n_out * n_in].reshape(n_out, n_in)
        gb = grad[o + n_out * n_in : o + n_out * (n_in + 1)]
        _nb_param_grad(D, A, gW, gb, use_blas)
        if l == 1:
            break
        W = theta[o : o + n_out * n_in].reshape(n_out, n_in)
        if use_blas:
            _nb_delta_blas(D, W, A, work[end : end + B * n_in].reshape(B, n_in))
        else:
            _nb_delta_loops(D, W, A, work[end : end + n_in])
        D = A
    return value, grad


#: Batch sizes up to this use fused loops instead of BLAS in the Numba gradient kernel
#: (tuned on a 2-core AVX2 machine for 64-128-128-10).
NUMBA_SMALL_BATCH = 4


def make_numba_loss_and_grad(
    sizes: Sequence[int], *, loss: str = "ce", small_batch: int = NUMBA_SMALL_BATCH
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, np.ndarray]]:
    """Specialised hand-written Numba loss-and-gradient kernel.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.
    loss : {"ce", "mse"}, optional
        Softmax cross-entropy (default) or mean squared error.
    small_batch : int, optional
        Batches of at most this size use fused loops (no BLAS call overhead); larger
        ones call BLAS ``dgemm``.

    Returns
    -------
    callable
        ``f(theta, X, Y) -> (loss, grad)``: a thin Python closure around one call of a
        cached compiled function (no per-network compilation; ~1 us dispatch). Inputs
        must be C-contiguous float64 arrays of shapes ``(P,)``, ``(B, n_0)``,
        ``(B, n_L)``; ``grad`` is a fresh ``(P,)`` array.
    """
    sizes_arr = np.array(_sizes_tuple(sizes), dtype=np.int64)
    code = _LOSS_CODE[_check_loss(loss)]
    small = int(small_batch)
    entry = _nb_loss_and_grad

    def loss_and_grad(theta, X, Y):
        return entry(theta, X, Y, sizes_arr, code, small)

    return loss_and_grad


@functools.cache
def _numba_lg_cached(sizes: tuple[int, ...], loss: str):
    return make_numba_loss_and_grad(sizes, loss=loss)


def numba_loss_and_grad(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> tuple[float, np.ndarray]:
    """Loss and gradient with the hand-written Numba kernel (convenience wrapper).

    Same contract as :func:`numpy_loss_and_grad`; converts inputs to contiguous float64
    and caches the kernel per ``(sizes, loss)``. For timing use
    :func:`make_numba_loss_and_grad` directly.
    """
    f = _numba_lg_cached(_sizes_tuple(sizes), _check_loss(loss))
    c = np.ascontiguousarray
    value, grad = f(c(theta, float), c(X, float), c(Y, float))
    return float(value), grad


# --------------------------------------------------------------------------------------
# Numba: Hessian-vector product (forward-over-reverse R-operator, BLAS throughout)
# --------------------------------------------------------------------------------------


@njit(error_model="numpy", cache=True)
def _nb_hvps(theta, X, Y, sizes, loss_code, V, HV):
    """``HV[k] = H V[k]`` for each row of ``V`` via the R-operator; returns the loss.

    ``work`` holds, per layer ``l = 1..L``, a ``(2B, n_l)`` block whose top half is
    ``A_l`` (``Z_L`` for the output) and bottom half ``R{A_l}``. Backprop turns each block
    into ``[R{D_l}; D_l]`` (note the order), so ``R{gW_l} = R{D_l}^T A_{l-1} +
    D_l^T R{A_{l-1}}`` is one GEMM of the stacked blocks, and ``[R{D_l} W_l; D_l W_l]``
    is another. Then a ``(2B, max n_l)`` scratch block. The primal pass is recomputed
    for every direction (simple; fine for one HVP, wasteful for a full Hessian).
    """
    _check_shapes(theta, X, Y, sizes)
    if V.shape[1] != theta.size or HV.shape[0] != V.shape[0] or HV.shape[1] != theta.size:
        raise ValueError("V and HV must have shape (K, theta.size)")
    B = X.shape[0]
    _, _, end, nmax = _offsets(sizes, 2 * B)
    work = np.empty(end + 2 * B * nmax)
    value = 0.0
    for kdir in range(V.shape[0]):
        value = _nb_hvp_one(theta, X, Y, sizes, loss_code, V[kdir], HV[kdir], work)
    return value


@njit(error_model="numpy", cache=True)
def _nb_hvp_forward(theta, X, sizes, v, woff, aoff, work):
    """Forward: ``S_l = [Z_l; R{Z_l}] -> [A_l; R{A_l}]``."""
    B = X.shape[0]
    L = sizes.size - 1
    for l in range(1, L + 1):
        n_out = sizes[l]
        n_in = sizes[l - 1]
        o = woff[l]
        W = theta[o : o + n_out * n_in].reshape(n_out, n_in)
        b = theta[o + n_out * n_in : o + n_out * (n_in + 1)]
        VW = v[o : o + n_out * n_in].reshape(n_out, n_in)
        Vb = v[o + n_out * n_in : o + n_out * (n_in + 1)]
        S = work[aoff[l] : aoff[l] + 2 * B * n_out].reshape(2 * B, n_out)
        Z = S[:B]
        RZ = S[B:]
        if l == 1:
            _gemm(False, True, 1.0, X, W, 0.0, Z)
            _gemm(False, True, 1.0, X, VW, 0.0, RZ)
        else:
            Sp = work[aoff[l - 1] : aoff[l - 1] + 2 * B * n_in].reshape(2 * B, n_in)
            _gemm(False, True, 1.0, Sp, W, 0.0, S)  # [A W^T; R{A} W^T]
            _gemm(False, True, 1.0, Sp[:B], VW, 1.0, RZ)  # += A VW^T
        if l < L:
            for i in range(B):
                for j in range(n_out):
                    y = _tanh_approx(Z[i, j] + b[j])
                    Z[i, j] = y
                    RZ[i, j] = (RZ[i, j] + Vb[j]) * (1.0 - y * y)
        else:
            for i in range(B):
                for j in range(n_out):
                    Z[i, j] += b[j]
                    RZ[i, j] += Vb[j]


@njit(error_model="numpy", cache=True)
def _nb_hvp_output_ce(top, bot, Y):
    """Softmax cross-entropy: ``[Z_L; R{Z_L}] -> [R{D_L}; D_L]``; returns the loss."""
    B, n = top.shape
    inv_b = 1.0 / B
    value = 0.0
    for i in range(B):
        m = top[i, 0]
        for k in range(1, n):
            m = max(m, top[i, k])
        s = 0.0
        ysum = 0.0
        yz = 0.0
        for k in range(n):
            e = _exp_approx(max(top[i, k] - m, -700.0))
            yz += Y[i, k] * top[i, k]
            ysum += Y[i, k]
            top[i, k] = e
            s += e
        value += ysum * (m + np.log(s)) - yz
        inv_s = 1.0 / s
        prz = 0.0
        for k in range(n):
            top[i, k] *= inv_s
            prz += top[i, k] * bot[i, k]
        c = ysum * inv_b
        for k in range(n):
            p = top[i, k]
            rz = bot[i, k]
            top[i, k] = c * p * (rz - prz)  # R{D}
            bot[i, k] = c * p - Y[i, k] * inv_b  # D
    return value * inv_b


@njit(error_model="numpy", cache=True)
def _nb_hvp_output_mse(top, bot, Y):
    """Mean squared error: ``[Z_L; R{Z_L}] -> [R{D_L}; D_L]``; returns the loss."""
    B, n = top.shape
    value = 0.0
    scale = 2.0 / (B * n)
    for i in range(B):
        for k in range(n):
            r = top[i, k] - Y[i, k]
            value += r * r
            top[i, k] = scale * bot[i, k]
            bot[i, k] = scale * r
    return value / (B * n)


@njit(error_model="numpy", cache=True)
def _nb_hvp_delta(A, RA, G, RG):
    """``[A; R{A}] -> [R{D_{l-1}}; D_{l-1}]`` in place."""
    B, n_in = A.shape
    for i in range(B):
        for k in range(n_in):
            av = A[i, k]
            ra = RA[i, k]
            g = G[i, k]
            dact = 1.0 - av * av
            A[i, k] = RG[i, k] * dact - 2.0 * g * av * ra
            RA[i, k] = g * dact


@njit(error_model="numpy", cache=True)
def _nb_hvp_one(theta, X, Y, sizes, loss_code, v, hv, work):
    """One R-operator pass (see :func:`_nb_hvps`)."""
    B = X.shape[0]
    L = sizes.size - 1
    woff, aoff, end, _ = _offsets(sizes, 2 * B)
    _nb_hvp_forward(theta, X, sizes, v, woff, aoff, work)
    # Output: [Z_L; R{Z_L}] -> [R{D_L}; D_L].
    n = sizes[L]
    S = work[aoff[L] : aoff[L] + 2 * B * n].reshape(2 * B, n)
    if loss_code == 0:
        value = _nb_hvp_output_ce(S[:B], S[B:], Y)
    else:
        value = _nb_hvp_output_mse(S[:B], S[B:], Y)
    # Backward.
    for l in range(L, 0, -1):
        n_out = sizes[l]
        n_in = sizes[l - 1]
        o = woff[l]
        S = work[aoff[l] : aoff[l] + 2 * B * n_out].reshape(2 * B, n_out)  # [R{D}; D]
        RD = S[:B]
        D = S[B:]
        gW = hv[o : o + n_out * n_in].reshape(n_out, n_in)
        gb = hv[o + n_out * n_in : o + n_out * (n_in + 1)]
        for j in range(n_out):
            gb[j] = RD[0, j]
        for i in range(1, B):
            for j in range(n_out):
                gb[j] += RD[i, j]
        if l == 1:
            _gemm(True, False, 1.0, RD, X, 0.0, gW)
            break
        Sp = work[aoff[l - 1] : aoff[l - 1] + 2 * B * n_in].reshape(2 * B, n_in)  # [A; R{A}]
        _gemm(True, False, 1.0, S, Sp, 0.0, gW)  # R{D}^T A + D^T R{A}
        W = theta[o : o + n_out * n_in].reshape(n_out, n_in)
        VW = v[o : o + n_out * n_in].reshape(n_out, n_in)
        GG = work[end : end + 2 * B * n_in].reshape(2 * B, n_in)
        _gemm(False, False, 1.0, S, W, 0.0, GG)  # [R{D} W; D W] = [R{G} - D VW; G]
        _gemm(False, False, 1.0, D, VW, 1.0, GG[:B])  # R{G}
        _nb_hvp_delta(Sp[:B], Sp[B:], GG[B:], GG[:B])
    return value


def make_numba_hvp(
    sizes: Sequence[int], *, loss: str = "ce"
) -> Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Specialised hand-written Numba Hessian-vector product (R-operator, BLAS GEMMs).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_0, ..., n_L]``.
    loss : {"ce", "mse"}, optional
        Softmax cross-entropy (default) or mean squared error.

    Returns
    -------
    callable
        ``f(theta, X, Y, v) -> hv``: thin closure around a cached compiled function;
        inputs C-contiguous float64. ``v`` of shape ``(P,)`` gives ``hv`` of shape
        ``(P,)``; ``v`` of shape ``(K, P)`` gives the ``K`` products as rows.
    """
    sizes_arr = np.array(_sizes_tuple(sizes), dtype=np.int64)
    code = _LOSS_CODE[_check_loss(loss)]
    kernel = _nb_hvps

    def hvp(theta, X, Y, v):
        V = v.reshape(1, -1) if v.ndim == 1 else v
        HV = np.empty(V.shape)
        kernel(theta, X, Y, sizes_arr, code, V, HV)
        return HV[0] if v.ndim == 1 else HV

    return hvp


def make_numba_hessian(
    sizes: Sequence[int], *, loss: str = "ce"
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Full Hessian as ``P`` Numba Hessian-vector products with the basis vectors.

    One compiled call runs the ``P`` R-operator passes (reusing one workspace); the
    result is symmetrised.

    Returns
    -------
    callable
        ``f(theta, X, Y) -> H`` of shape ``(P, P)``; inputs C-contiguous float64.
    """
    sizes_arr = np.array(_sizes_tuple(sizes), dtype=np.int64)
    code = _LOSS_CODE[_check_loss(loss)]
    kernel = _nb_hvps
    P = param_count(sizes)
    eye = np.eye(P)

    def hessian(theta, X, Y):
        H = np.empty((P, P))
        kernel(theta, X, Y, sizes_arr, code, eye, H)
        H += H.T
        H *= 0.5
        return H

    return hessian


@functools.cache
def _numba_hvp_cached(sizes: tuple[int, ...], loss: str):
    return make_numba_hvp(sizes, loss=loss)


@functools.cache
def _numba_hessian_cached(sizes: tuple[int, ...], loss: str):
    return make_numba_hessian(sizes, loss=loss)


def numba_hvp(
    theta: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    sizes: Sequence[int],
    v: np.ndarray,
    *,
    loss: str = "ce",
) -> np.ndarray:
    """Hessian-vector product with the Numba kernel (convenience wrapper).

    Same contract as :func:`numpy_hvp` for a 1-D ``v``.
    """
    f = _numba_hvp_cached(_sizes_tuple(sizes), _check_loss(loss))
    c = np.ascontiguousarray
    return f(c(theta, float), c(X, float), c(Y, float), c(v, float))


def numba_hessian(
    theta: np.ndarray, X: np.ndarray, Y: np.ndarray, sizes: Sequence[int], *, loss: str = "ce"
) -> np.ndarray:
    """Full Hessian with the Numba HVP kernel (convenience wrapper).

    Same contract as :func:`numpy_hessian`.
    """
    f = _numba_hessian_cached(_sizes_tuple(sizes), _check_loss(loss))
    c = np.ascontiguousarray
    return f(c(theta, float), c(X, float), c(Y, float))
