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

# the peers live in one module each (benchmarks/ is on sys.path wherever peers is imported)
from _peers_common import (
    LOSSES,
    PeerUnavailable,
    param_count,
    random_problem,
    unpack,
)
from _peers_jax import (
    _jax,
    jax_hessian,
    jax_hessian_extreme_eigenvalues,
    jax_hvp,
    jax_loss_and_grad,
    make_jax_hessian,
    make_jax_hessian_extreme_eigenvalues,
    make_jax_hvp,
    make_jax_loss_and_grad,
    to_jax,
)
from _peers_numba import (
    NUMBA_SMALL_BATCH,
    make_numba_hessian,
    make_numba_hvp,
    make_numba_loss_and_grad,
    numba_hessian,
    numba_hvp,
    numba_loss_and_grad,
)
from _peers_numba_math import numba_tanh
from _peers_numpy import (
    numpy_hessian,
    numpy_hessian_extreme_eigenvalues,
    numpy_hvp,
    numpy_loss,
    numpy_loss_and_grad,
)
from _peers_torch import (
    TORCH_THREADS,
    _torch,
    make_torch_hessian,
    make_torch_hvp,
    make_torch_loss_and_grad,
    set_torch_threads,
    to_torch,
    torch_hessian,
    torch_hessian_extreme_eigenvalues,
    torch_hvp,
    torch_loss_and_grad,
)

__all__ = [
    "LOSSES",
    "NUMBA_SMALL_BATCH",
    "TORCH_THREADS",
    "PeerUnavailable",
    "set_torch_threads",
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
