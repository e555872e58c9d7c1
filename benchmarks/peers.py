"""Reference ("peer") implementations of MLP losses, gradients and second derivatives.

Every peer computes the *same* quantity from the *same* flat parameter vector so that
symnn's generated kernels can be checked and timed against them.

Network and parameter layout
----------------------------
``sizes = [n_0, n_1, ..., n_L]``. The flat float64 vector ``theta`` holds, for
``l = 1..L`` in order, ``W_l`` of shape ``(n_l, n_{l-1})`` flattened row-major (C order)
followed by ``b_l`` of shape ``(n_l,)``::

    theta = [W_1.ravel(), b_1, W_2.ravel(), b_2, ..., W_L.ravel(), b_L]

This is symnn's documented layout. A batch ``X`` has shape ``(B, n_0)``; targets ``Y``
have shape ``(B, n_L)``. Hidden layers compute ``A_l = tanh(A_{l-1} @ W_l.T + b_l)``;
the output layer is affine, ``Z_L = A_{L-1} @ W_L.T + b_L``, followed by

* ``loss="ce"``: softmax cross-entropy, ``mean_i  -sum_k Y_ik log softmax(Z_L)_ik``
  (``Y`` one-hot, or any non-negative weights; evaluated with a stable log-sum-exp);
* ``loss="mse"``: identity output, ``mean_{i,k} (Z_L,ik - Y_ik)**2``.

Peers
-----
``numpy``
    Hand-written forward/backward (and forward-over-reverse R-operator for
    Hessian-vector products) in NumPy.
``numba``
    Hand-written, tuned Numba kernels (``error_model="numpy"``): BLAS ``dgemm`` for the
    matrix products when ``B > NUMBA_SMALL_BATCH`` (the very function numba's ``np.dot``
    calls, scipy's OpenBLAS, but called directly so products accumulate and transpose
    for free and compile faster), register-blocked loops for small batches, bias, tanh
    and the loss fused into single passes, and a vectorisable inline ``tanh`` (Cephes
    rational approximation with a bit-level ``exp``, ~1.4 ulp, see :func:`numba_tanh`).
    The gradient kernel is the performance reference for symnn's generated kernels. The
    HVP kernel is a BLAS R-operator; the Numba "Hessian" is simply ``P`` such HVPs.
``torch``
    PyTorch eager in float64 (``torch.set_num_threads(2)``), ``torch.func`` for second
    derivatives.
``jax``
    ``jax.jit`` of ``jax.value_and_grad`` / ``jvp``-of-``grad`` / ``jax.hessian`` with
    ``jax_enable_x64`` switched on (a process-wide JAX setting).

Each peer offers plain functions taking NumPy arrays and returning NumPy results
(``<peer>_loss_and_grad``, ``<peer>_hvp``, ``<peer>_hessian``, ...) and, for timing,
``make_<peer>_*`` factories returning callables that work on the library's native
arrays (see the factories' docstrings). Optional peers raise :class:`PeerUnavailable`
when their library cannot be imported; :func:`peer_status` tells which are usable.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Sequence

import llvmlite.binding as ll
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address, intrinsic

__all__ = [
    "LOSSES",
    "NUMBA_SMALL_BATCH",
    "TORCH_THREADS",
    "PeerUnavailable",
    "jax_hessian",
    "jax_hessian_extreme_eigenvalues",
    "jax_hvp",
    "jax_loss_and_grad",
    "make_jax_hessian",
    "make_jax_hessian_extreme_eigenvalues",
    "make_jax_hvp",
    "make_jax_loss_and_grad",
    "make_numba_hessian",
    "make_numba_hvp",
    "make_numba_loss_and_grad",
    "make_torch_hessian",
    "make_torch_hvp",
    "make_torch_loss_and_grad",
    "numba_hessian",
    "numba_hvp",
    "numba_loss_and_grad",
    "numba_tanh",
    "numpy_hessian",
    "numpy_hessian_extreme_eigenvalues",
    "numpy_hvp",
    "numpy_loss",
    "numpy_loss_and_grad",
    "param_count",
    "peer_status",
    "random_problem",
    "to_jax",
    "to_torch",
    "torch_hessian",
    "torch_hessian_extreme_eigenvalues",
    "torch_hvp",
    "torch_loss_and_grad",
    "unpack",
]

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


def peer_status() -> dict[str, str | None]:
    """Which peers can run here.

    Returns
    -------
    dict
        Maps ``"numpy"``, ``"numba"``, ``"torch"``, ``"jax"`` to ``None`` when usable, or
        to a reason string when not. Importing torch/jax happens here (and configures
        them as described in the module docstring).
    """
    status: dict[str, str | None] = {"numpy": None, "numba": None}
    for name, loader in (("torch", _torch), ("jax", _jax)):
        try:
            loader()
            status[name] = None
        except PeerUnavailable as exc:
            status[name] = str(exc)
    return status


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


# --------------------------------------------------------------------------------------
# Numba: vectorisable tanh/exp
# --------------------------------------------------------------------------------------


@intrinsic
def _f64_as_i64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64 (LLVM ``bitcast``, vectorisable)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@intrinsic
def _i64_as_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (LLVM ``bitcast``, vectorisable)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93145751953125e-1  # Cody-Waite split of ln 2 (Cephes)
_LN2_LO = 1.42860682030941723212e-6
_ROUND_SHIFT = 6755399441055744.0  # 1.5 * 2**52: x + shift rounds x to an integer


@njit(error_model="numpy", cache=True)
def _exp_approx(x):
    """``exp(x)`` for ``-708 <= x <= 708``, ~1.6 ulp, branch-free (Cephes Padé).

    ``n = round(x / ln 2)`` is obtained with the ``1.5 * 2**52`` shifter, so ``2**n`` is
    built from the shifted value's low bits without a float->int conversion; every
    operation maps to an AVX2 instruction and the loops calling it vectorise.
    """
    kd = x * _LOG2E + _ROUND_SHIFT
    n = kd - _ROUND_SHIFT
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    rr = r * r
    px = r * (
        (1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
        + 9.99999999999999999910e-1
    )
    qx = (
        (3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
        + 2.27265548208155028766e-1
    ) * rr + 2.00000000000000000009e0
    e = 1.0 + 2.0 * px / (qx - px)
    # low bits of kd hold n (two's complement); shifting by 52 drops the shifter's bits.
    return e * _i64_as_f64((_f64_as_i64(kd) + 1023) << 52)


@njit(error_model="numpy", cache=True)
def _tanh_approx(x):
    """Branch-free ``tanh(x)`` (Cephes algorithm), max error ~1.4 ulp over the reals.

    ``|x| < 0.625``: ``x + x^3 P(x^2)/Q(x^2)``; otherwise ``1 - 2/(exp(2|x|) + 1)`` with the
    inline :func:`_exp_approx` (argument clamped at 40, where ``tanh`` rounds to 1).
    Both branches are computed and one is selected, so loops over it vectorise.
    NaN propagates; the sign of ``-0.0`` is not preserved.
    """
    ax = abs(x)
    z = x * x
    p = x + x * z * (
        ((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3)
        / (
            ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
            + 4.84406305325125486048e3
        )
    )
    s = _exp_approx(min(2.0 * ax, 40.0))
    q = 1.0 - 2.0 / (s + 1.0)
    q = q if x >= 0.0 else -q
    return p if ax < 0.625 else q


@njit(error_model="numpy", cache=True)
def _tanh_array(x, out):
    for i in range(x.size):
        out[i] = _tanh_approx(x[i])


def numba_tanh(x: np.ndarray) -> np.ndarray:
    """Elementwise ``tanh`` with the inline approximation used by the Numba kernels.

    Provided for testing its accuracy (max ~1.4 ulp vs. ~1.2 ulp for ``np.tanh``).

    Parameters
    ----------
    x : array_like

    Returns
    -------
    ndarray
        float64, same shape as ``x``.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _tanh_array(x.reshape(-1), out.reshape(-1))
    return out


# --------------------------------------------------------------------------------------
# Numba: BLAS dgemm called directly (scipy's LP64 OpenBLAS, the one numba's np.dot uses)
# --------------------------------------------------------------------------------------

# Calling dgemm through a named external symbol (instead of np.dot) gives alpha/beta
# accumulation and free transposes, and compiles several times faster than np.dot's
# generic lowering; the symbol is re-registered on import, so on-disk caching works.
_DGEMM_SYMBOL = "symnn_bench_peers_dgemm"
ll.add_symbol(_DGEMM_SYMBOL, get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))
_dgemm = types.ExternalFunction(_DGEMM_SYMBOL, types.void(*([types.voidptr] * 13)))


@njit(
    "void(boolean, boolean, float64, float64[:, ::1], float64[:, ::1], float64, float64[:, ::1])",
    cache=True,
)
def _gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """Row-major ``C = alpha * op(A) @ op(B) + beta * C`` on 2-D C-contiguous arrays.

    A row-major matrix is its transpose in column-major terms, so this calls the
    column-major ``C.T = op(B).T @ op(A).T``. The explicit signature keeps numba from
    compiling one specialisation per literal ``trans_a``/``trans_b`` combination.
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    ib = np.empty(8, np.int32)
    db = np.empty(2)
    ib[0] = n
    ib[1] = m
    ib[2] = k
    ib[3] = B.shape[1]  # ldb
    ib[4] = A.shape[1]  # lda
    ib[5] = n  # ldc
    ib[6] = 84 if trans_b else 78  # 'T' / 'N'
    ib[7] = 84 if trans_a else 78
    db[0] = alpha
    db[1] = beta
    _dgemm(
        ib[6:].ctypes,
        ib[7:].ctypes,
        ib.ctypes,
        ib[1:].ctypes,
        ib[2:].ctypes,
        db.ctypes,
        B.ctypes,
        ib[3:].ctypes,
        A.ctypes,
        ib[4:].ctypes,
        db[1:].ctypes,
        C.ctypes,
        ib[5:].ctypes,
    )


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


# --------------------------------------------------------------------------------------
# PyTorch (eager, float64)
# --------------------------------------------------------------------------------------

#: Intra-op threads used by the PyTorch peer (the benchmark machine has 2 cores).
TORCH_THREADS = 2


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
