"""Hessian spectra, critical points, condition numbers and saddle search.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.analysis import critical_point
>>> model = symnn.mlp([2, 2, 1], activation="tanh").compile()      # doctest: +SKIP
>>> cp = critical_point(model, model.init(seed=0), X, y)            # doctest: +SKIP
>>> print(cp)                                                       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse.linalg as sla

from symnn._threads import single_threaded_if_small
from symnn.analysis._common import check_finite_matrix, check_theta
from symnn.errors import AnalysisError, SymnnError  # noqa: F401 (re-export)

__all__ = ["hessian_spectrum", "critical_point", "CriticalPoint", "condition_number",
           "find_saddle", "DENSE_LIMIT"]

#: Largest parameter count for which the dense Hessian is formed by default.
DENSE_LIMIT = 2000


def hessian_spectrum(model, theta, X, y, k: int | None = None, *, which: str = "both",
                     tol: float = 0.0, seed: int = 0) -> np.ndarray:
    """Eigenvalues of the exact Hessian of the loss at θ, ascending.

    Parameters
    ----------
    model : CompiledModel
    theta : ndarray, shape (P,)
    X, y : arrays
        The batch the loss is averaged over.
    k : int, optional
        ``None``: all P eigenvalues from the dense exact Hessian (``numpy.linalg.eigvalsh``).
        An integer: the k extreme eigenvalues by Lanczos (``scipy.sparse.linalg.eigsh``)
        on a ``LinearOperator`` whose product is the exact Hessian-vector product — no
        Hessian is formed.  ``which="both"`` gives ⌈k/2⌉ largest and ⌊k/2⌋ smallest,
        ``"largest"`` / ``"smallest"`` one end.

    Returns
    -------
    ndarray
        The eigenvalues, ascending.

    Raises
    ------
    ShapeError
        θ of the wrong size.
    AnalysisError
        ``k`` not in 1 … P−1, or ``k=None`` for more than :data:`DENSE_LIMIT` parameters.
    DataError
        A non-finite Hessian.
    """
    theta = check_theta(model, theta)
    P = model.n_params
    if k is None:
        if P > DENSE_LIMIT:
            raise AnalysisError(
                f"the dense Hessian of {P} parameters is {P}×{P}; ask for k extreme "
                "eigenvalues (Lanczos over Hessian-vector products) instead"
            )
        H = check_finite_matrix(np.asarray(model.hessian(theta, X, y), float), "Hessian")
        return symmetric_eigvals(H)
    if not isinstance(k, (int, np.integer)) or not 1 <= k < P:
        raise AnalysisError(
            f"k = {k!r} extreme eigenvalues requested of a {P}-parameter Hessian; k must be an "
            f"integer in 1 … {P - 1} (use k=None for all {P})"
        )
    dt = np.dtype(getattr(model, "dtype", np.float64))
    t = theta.astype(dt)

    def mv(v):
        out = np.asarray(model.hvp(t, np.ascontiguousarray(v, dtype=dt).ravel(), X, y),
                         dtype=float)
        if not np.all(np.isfinite(out)):
            raise check_finite_matrix(out[None, :], "Hessian-vector product")
        return out

    op = sla.LinearOperator((P, P), matvec=mv, dtype=float)
    v0 = np.random.default_rng(seed).normal(size=P)
    mode = {"both": "BE", "largest": "LA", "smallest": "SA"}.get(which)
    if mode is None:
        raise AnalysisError(f"which must be 'both', 'largest' or 'smallest', got {which!r}")
    if mode == "BE" and k == 1:
        mode = "LM"
    vals = sla.eigsh(op, k=k, which=mode, v0=v0, tol=tol, return_eigenvectors=False)
    return np.sort(vals)


def symmetric_eigvals(M: np.ndarray) -> np.ndarray:
    """Eigenvalues, ascending, of the symmetric part ``(M + Mᵀ)/2`` of a square matrix.

    LAPACK's divide-and-conquer ``?syevd`` through :func:`numpy.linalg.eigvalsh`, on one BLAS
    thread up to :data:`symnn._threads.SMALL_PARAMS` rows: at these sizes the symmetric
    drivers (``syev``, ``syevd``, ``syevr``, through NumPy or SciPy, with or without
    ``check_finite``/``overwrite_a``) cost the same on one thread, and every one is many
    times slower when OpenBLAS spreads the tridiagonal reduction over threads that compete
    for a busy core (``benchmarks/bench_eigsolvers.py``).

    >>> symmetric_eigvals(np.array([[2.0, 1.0], [1.0, 2.0]])).tolist()
    [1.0, 3.0]
    """
    with single_threaded_if_small(M.shape[0]):
        return np.linalg.eigvalsh(0.5 * (M + M.T))


@dataclass
class CriticalPoint:
    """Classification of θ from the gradient and the exact Hessian spectrum.

    ``kind`` is one of ``"minimum"``, ``"maximum"``, ``"saddle"``, ``"degenerate"`` (a
    critical point whose Hessian has near-zero eigenvalues and no negative ones — or no
    positive ones — so second order cannot decide) or ``"not critical"`` (gradient norm
    above ``tol``).
    """

    kind: str
    grad_norm: float
    n_positive: int
    n_negative: int
    n_zero: int
    eigenvalues: np.ndarray
    condition_number: float
    escape_direction: np.ndarray | None = None

    def __str__(self) -> str:
        lo, hi = self.eigenvalues[0], self.eigenvalues[-1]
        s = (f"{self.kind}: |∇L| = {self.grad_norm:.3e}; Hessian eigenvalues: "
             f"{self.n_positive} positive, {self.n_negative} negative, {self.n_zero} ≈ 0 "
             f"(range {lo:.4g} … {hi:.4g}); condition number {self.condition_number:.4g}")
        if self.escape_direction is not None and self.n_negative:
            s += f"; escape along the eigenvector of λ = {lo:.4g}"
        return s


def _counts(eigs: np.ndarray, zero_tol: float):
    scale = max(float(np.max(np.abs(eigs))), 1e-300)
    z = np.abs(eigs) <= zero_tol * scale
    return int(np.sum((eigs > 0) & ~z)), int(np.sum((eigs < 0) & ~z)), int(np.sum(z))


def _cond(eigs: np.ndarray) -> float:
    a = np.abs(eigs)
    return float(np.max(a) / np.min(a)) if np.min(a) > 0 else float("inf")


def critical_point(model, theta, X, y, tol: float = 1e-6, zero_tol: float = 1e-8
                   ) -> CriticalPoint:
    """Classify θ: gradient norm, eigenvalue counts and the kind of critical point.

    Parameters
    ----------
    tol : float
        θ is critical when ‖∇L‖₂ ≤ tol.
    zero_tol : float
        Eigenvalues with |λ| ≤ zero_tol · max|λ| count as zero.
    """
    theta = check_theta(model, theta)
    _, g = model.loss_and_grad(theta, X, y)
    gn = float(np.linalg.norm(g))
    H = check_finite_matrix(np.asarray(model.hessian(theta, X, y), float), "Hessian")
    with single_threaded_if_small(H.shape[0]):
        eigs, vecs = np.linalg.eigh(0.5 * (H + H.T))
    pos, neg, zero = _counts(eigs, zero_tol)
    if gn > tol:
        kind = "not critical"
    elif neg and pos:
        kind = "saddle"
    elif zero:
        kind = "degenerate"
    elif neg:
        kind = "maximum"
    else:
        kind = "minimum"
    escape = vecs[:, 0] if neg else None
    return CriticalPoint(kind, gn, pos, neg, zero, eigs, _cond(eigs), escape)


def condition_number(model, theta, X, y, matrix: str = "hessian") -> float:
    """max|λ| / min|λ| of the Hessian (``matrix="hessian"``) or the Gauss-Newton matrix
    (``"gauss_newton"``, formed from P exact Gauss-Newton-vector products) at θ."""
    theta = check_theta(model, theta)
    if matrix == "hessian":
        M = np.asarray(model.hessian(theta, X, y), float)
    elif matrix in ("gauss_newton", "gn"):
        P = model.n_params
        M = np.empty((P, P))
        for j in range(P):
            e = np.zeros(P, dtype=theta.dtype)
            e[j] = 1
            M[:, j] = model.gnvp(theta, e, X, y)
    else:
        raise AnalysisError(f"matrix must be 'hessian' or 'gauss_newton', got {matrix!r}")
    M = check_finite_matrix(M, matrix.replace("_", "-") + " matrix")
    return _cond(symmetric_eigvals(M))


def find_saddle(model, theta0, X, y, *, tol: float = 1e-10, maxiter: int = 500
                ) -> tuple[np.ndarray, CriticalPoint]:
    """Find a nearby critical point by minimising ½‖∇L(θ)‖², whatever its kind.

    The objective's gradient is H(θ)∇L(θ), one exact Hessian-vector product, so the search
    converges to saddles as readily as to minima (gradient descent on L would flee them).

    Returns
    -------
    theta : ndarray
    report : CriticalPoint
    """
    theta0 = check_theta(model, theta0).astype(float)

    def f(t):
        _, g = model.loss_and_grad(t, X, y)
        g = np.asarray(g, float)
        return 0.5 * float(g @ g), np.asarray(model.hvp(t, g, X, y), float)

    res = scipy.optimize.minimize(f, theta0, jac=True, method="BFGS",
                                  options={"gtol": tol, "maxiter": maxiter})
    return res.x, critical_point(model, res.x, X, y, tol=max(1e-5, np.sqrt(2 * res.fun) * 10))
