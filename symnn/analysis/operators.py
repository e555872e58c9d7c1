"""SciPy ``LinearOperator`` views of the exact Hessian and Gauss-Newton matrix.

The operators form no matrix: ``A @ v`` is one exact Hessian-vector (or Gauss-Newton-vector)
product of the compiled kernels, and ``A @ V`` for a ``(P, K)`` block is computed by the
batched kernels, which take K directions in one call.  Both matrices are symmetric, so
``A.T`` and ``A.H`` are ``A`` itself; the operator's dtype is the model's.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.analysis import hessian_operator
>>> model = symnn.mlp([2, 3, 1], activation="tanh").compile()   # doctest: +SKIP
>>> H = hessian_operator(model, model.init(seed=0), X, y)         # doctest: +SKIP
>>> scipy.sparse.linalg.eigsh(H, k=2)                              # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as sla

from symnn.analysis._common import check_finite_matrix, check_theta
from symnn.errors import AnalysisError, DataError, ShapeError

__all__ = ["hessian_operator", "ggn_operator", "curvature_operator", "MATRICES",
           "product_kind"]

#: Accepted names of the curvature matrices, and the kernel each one uses.
MATRICES = {"hessian": "hvp", "ggn": "gnvp", "gauss_newton": "gnvp", "gn": "gnvp"}


def product_kind(matrix) -> str:
    """``"hvp"`` or ``"gnvp"`` for a matrix name; an :class:`AnalysisError` otherwise."""
    kind = MATRICES.get(matrix) if isinstance(matrix, str) else None
    if kind is None:
        raise AnalysisError(
            f"matrix = {matrix!r} is not a curvature matrix symnn knows; use 'hessian' "
            "(the exact Hessian of the loss) or 'ggn' (the generalised Gauss-Newton matrix)"
        )
    return kind


class CurvatureOperator(sla.LinearOperator):
    """A symmetric ``(P, P)`` operator whose products are exact compiled curvature products.

    Attributes
    ----------
    model, theta, X, y
        What the products are taken at.
    matrix : str
        ``"hessian"`` or ``"ggn"``.
    calls : int
        Kernel calls made so far (a ``(P, K)`` product is one call).
    """

    def __init__(self, model, theta, X, y, matrix: str = "hessian") -> None:
        kind = product_kind(matrix)
        theta = check_theta(model, theta)
        dtype = np.dtype(getattr(model, "dtype", np.float64))
        super().__init__(dtype=dtype, shape=(model.n_params, model.n_params))
        self.model = model
        self.theta = np.ascontiguousarray(theta, dtype=dtype)
        self.X, self.y = X, y
        self.matrix = "hessian" if kind == "hvp" else "ggn"
        self.calls = 0
        self._product = getattr(model, kind)

    def products(self, V: np.ndarray) -> np.ndarray:
        """The K products of the rows of ``V`` ``(K, P)``: ``(K, P)``, in one kernel call."""
        V = np.ascontiguousarray(V, dtype=self.dtype)
        out = np.asarray(self._product(self.theta, V, self.X, self.y))
        self.calls += 1
        if not np.all(np.isfinite(out)):
            check_finite_matrix(out, f"{self.matrix} product")
        return out

    # walk: a vector of the wrong length was scipy's bare "dimension mismatch"; NaN in a
    # vector was reported at "row 0, column i" of the (1, P) block
    def matvec(self, x):
        """``A x``; ``x`` of shape ``(P,)`` or ``(P, 1)``."""
        x = np.asarray(x)
        if x.shape not in ((self.shape[1],), (self.shape[1], 1)):
            raise ShapeError(f"the {self.matrix} operator is {self.shape[0]}×{self.shape[1]}: "
                             f"it multiplies a vector of shape ({self.shape[1]},), got "
                             f"{x.shape}")
        return super().matvec(x)

    def rmatvec(self, x):
        """``Aᵀ x = A x`` (the operator is symmetric)."""
        return np.conj(self.matvec(np.conj(x)))

    def matmat(self, X):
        """``A X``; ``X`` of shape ``(P, K)``."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != self.shape[1]:
            raise ShapeError(f"the {self.matrix} operator is {self.shape[0]}×{self.shape[1]}: "
                             f"it multiplies a matrix of shape ({self.shape[1]}, K), got "
                             f"{X.shape}")
        return super().matmat(X)

    def _matvec(self, x):
        x = np.asarray(x)
        if x.dtype.kind in "fc" and not np.all(np.isfinite(x)):
            i = int(np.flatnonzero(~np.isfinite(x.reshape(-1)))[0])
            raise DataError(f"the vector multiplied by the {self.matrix} operator contains "
                            f"{x.reshape(-1)[i]} at index {i}; give a finite vector")
        return self.products(x.reshape(1, -1))[0].reshape(x.shape)

    def _matmat(self, X):
        return self.products(np.asarray(X).T).T

    def _rmatvec(self, x):
        return np.conj(self._matvec(np.conj(x)))

    def _rmatmat(self, X):
        return np.conj(self._matmat(np.conj(X)))

    def _adjoint(self):
        return self

    _transpose = _adjoint

    def __repr__(self) -> str:
        return (f"<{self.shape[0]}×{self.shape[1]} exact {self.matrix} operator of "
                f"{type(self.model).__name__} (dtype {self.dtype})>")


def curvature_operator(model, theta, X, y, matrix: str = "hessian") -> CurvatureOperator:
    """The Hessian (``matrix="hessian"``) or Gauss-Newton (``"ggn"``) operator at θ.

    Raises
    ------
    AnalysisError
        An unknown ``matrix``.
    ShapeError
        θ of the wrong shape.
    """
    return CurvatureOperator(model, theta, X, y, matrix)


def hessian_operator(model, theta, X, y) -> CurvatureOperator:
    """The exact Hessian of the batch loss at θ as a SciPy ``LinearOperator``.

    ``H @ v`` is ``model.hvp(θ, v, X, y)``; ``H @ V`` for ``V`` of shape ``(P, K)`` is one
    batched call of the K-direction kernel.  Symmetric (``H.T is H``), dtype of the model.
    """
    return CurvatureOperator(model, theta, X, y, "hessian")


def ggn_operator(model, theta, X, y) -> CurvatureOperator:
    """The exact generalised Gauss-Newton matrix ``Jᵀ H_ℓ J`` at θ as a ``LinearOperator``
    (products by ``model.gnvp``; shapes and symmetry as :func:`hessian_operator`)."""
    return CurvatureOperator(model, theta, X, y, "ggn")
