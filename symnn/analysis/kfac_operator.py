"""K-FAC as SciPy ``LinearOperator``s: the block-diagonal ``⊕_l G_l ⊗ A_l`` and its damped
inverse.

Layer ``l``'s block acts on ``W̄_l = [W b]`` (its :attr:`KroneckerFactors.index`, row-major,
``(n_out, n_in + 1)``) as ``(G ⊗ A) vec W̄ = vec(G W̄ A)`` — two small matrix products
per layer, no ``P × P`` matrix.  The inverse, three ways (the names and formulas of
curvlinops' ``KFACInverseLinearOperator``, whose ``damping`` argument is ``δ`` here):

==================  ======================================================================
``mode``            layer block of the inverse
==================  ======================================================================
``"tikhonov"``      ``(G + δ_G I)⁻¹ ⊗ (A + δ_A I)⁻¹`` with ``δ_A = δ_G = δ``, or
                    ``damping=(δ_A, δ_G)``
``"heuristic"``     the same with Martens & Grosse's π split (2015, §6.3):
                    ``δ_A = max(π √δ, min_damping)``, ``δ_G = max(√δ / π, min_damping)``,
                    ``π = √((tr A / dim A) / (tr G / dim G))`` (π = 1 when a trace is 0)
``"exact"``         ``(G ⊗ A + δ I)⁻¹`` — in the factors' eigenbases,
                    ``(Q_G ⊗ Q_A) (Λ_G ⊗ Λ_A + δ I)⁻¹ (Q_G ⊗ Q_A)ᵀ``
==================  ======================================================================

All three are computed from the eigendecompositions of ``A`` and ``G`` (taken once, when the
inverse is made).  Every parameter must belong to a Dense, Conv1D or recurrent layer (so that
``⊕_l G_l ⊗ A_l`` is a matrix over all of θ); the factors' conventions are
:func:`symnn.analysis.kfac_factors`'s (``kind``, ``mc_samples``, ``conv``).

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.codegen.model import ReferenceModel
>>> model = ReferenceModel(symnn.mlp([2, 3, 1], activation="tanh"))
>>> theta, X, y = model.init(0), np.ones((4, 2)) / 2, np.zeros((4, 1))
>>> K = kfac_operator(model, theta, X, y)
>>> Kinv = K.inverse(damping=1e-3, mode="exact")
>>> v = np.arange(13.0)
>>> bool(np.allclose(Kinv @ (K @ v + 1e-3 * v), v))
True
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse.linalg as sla

from symnn.analysis.kfac import kfac_factors
from symnn.errors import AnalysisError, ShapeError

__all__ = ["KFACOperator", "KFACInverseOperator", "kfac_operator"]

MODES = ("tikhonov", "heuristic", "exact")


class _BlockOperator(sla.LinearOperator):
    """A symmetric operator that acts block by block on the layers' indices."""

    def __init__(self, factors: dict, n: int) -> None:
        super().__init__(dtype=np.dtype(np.float64), shape=(n, n))
        self.factors = factors

    def _block(self, f, V: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _matmat(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.shape[0] != self.shape[1]:
            raise ShapeError(f"the operator is {self.shape[0]}×{self.shape[1]}; a block of "
                             f"shape {X.shape} has the wrong number of rows")
        out = np.zeros_like(X)
        K = X.shape[1]
        for name, f in self.factors.items():
            m, n = f.G.shape[0], f.A.shape[0]
            V = X[f.index].reshape(m, n, K).transpose(2, 0, 1)        # (K, m, n)
            out[f.index] = self._block(name, V).transpose(1, 2, 0).reshape(m * n, K)
        return out

    def _matvec(self, x):
        x = np.asarray(x)
        return self._matmat(x.reshape(-1, 1)).reshape(x.shape)

    def _rmatvec(self, x):
        return self._matvec(x)

    def _rmatmat(self, X):
        return self._matmat(X)

    def _adjoint(self):
        return self

    _transpose = _adjoint


class KFACOperator(_BlockOperator):
    """``⊕_l G_l ⊗ A_l`` over the flat layout (float64).

    Attributes
    ----------
    factors : dict
        ``{weight name: KroneckerFactors}`` (:func:`symnn.analysis.kfac_factors`).
    """

    def _block(self, name, V):
        f = self.factors[name]
        return f.G @ V @ f.A

    def dense(self) -> np.ndarray:
        """The ``(P, P)`` block-diagonal matrix (for small nets)."""
        out = np.zeros(self.shape)
        for f in self.factors.values():
            out[np.ix_(f.index, f.index)] = f.kron()
        return out

    def inverse(self, damping=0.0, mode: str = "tikhonov", *,
                min_damping: float = 0.0) -> KFACInverseOperator:
        """The damped inverse (module docstring): ``mode`` ``"tikhonov"`` (``damping`` δ or
        ``(δ_A, δ_G)``), ``"heuristic"`` (π-split of δ) or ``"exact"`` (``(G ⊗ A + δI)⁻¹``).

        Raises
        ------
        AnalysisError
            An unknown mode; a negative or non-finite damping; a pair of dampings with a
            mode other than ``"tikhonov"``; a singular block (zero damping on a factor
            with a zero eigenvalue).
        """
        return KFACInverseOperator(self, damping, mode, min_damping)

    def __repr__(self) -> str:
        return f"<{self.shape[0]}×{self.shape[1]} K-FAC operator, {len(self.factors)} layers>"


def _dampings(damping, mode: str, min_damping: float):
    """``(δ_A, δ_G)`` of the tikhonov mode, δ of the others; checked."""
    pair = isinstance(damping, (tuple, list))
    if mode not in MODES:
        raise AnalysisError(f"mode = {mode!r}; use 'tikhonov', 'heuristic' (π-split, Martens & "
                            "Grosse §6.3) or 'exact' ((G ⊗ A + δI)⁻¹)")
    if pair and mode != "tikhonov":
        raise AnalysisError(f"a pair of dampings (δ_A, δ_G) is for mode='tikhonov'; "
                            f"mode={mode!r} takes one δ")
    values = list(damping) if pair else [damping, damping]
    if len(values) != 2 or not all(isinstance(v, (int, float, np.floating, np.integer))
                                   and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                                   for v in [*values, min_damping]):
        raise AnalysisError(f"damping = {damping!r}, min_damping = {min_damping!r}: give "
                            "finite numbers ≥ 0 (a pair (δ_A, δ_G) for mode='tikhonov')")
    return float(values[0]), float(values[1])


class KFACInverseOperator(_BlockOperator):
    """The damped inverse of a :class:`KFACOperator` (see the module docstring).

    Attributes
    ----------
    mode : str
    damping : tuple of float
        ``(δ_A, δ_G)`` as given (``(δ, δ)`` for one δ).
    layer_dampings : dict
        ``{weight name: (δ_A, δ_G)}`` as applied (``"heuristic"``: after the π split;
        ``"exact"``: ``(δ, δ)``, δ added to the Kronecker product).
    """

    def __init__(self, K: KFACOperator, damping, mode: str, min_damping: float) -> None:
        super().__init__(K.factors, K.shape[0])
        self.damping = _dampings(damping, mode, min_damping)
        self.mode = mode
        self.layer_dampings = {}
        self._denominators = {}
        self._eig = {}
        for name, f in K.factors.items():
            eA, QA = np.linalg.eigh(0.5 * (f.A + f.A.T))
            eG, QG = np.linalg.eigh(0.5 * (f.G + f.G.T))
            dA, dG = self._split(f, min_damping)
            self.layer_dampings[name] = (dA, dG)
            den = (np.outer(eG, eA) + dA if mode == "exact"
                   else np.outer(eG + dG, eA + dA))
            if not np.all(den > 0):
                raise AnalysisError(
                    f"the K-FAC block of {name} is singular with damping {self.damping} "
                    f"(mode={mode!r}); give a positive damping")
            self._eig[name] = (QA, QG)
            self._denominators[name] = den

    def _split(self, f, min_damping: float) -> tuple[float, float]:
        dA, dG = self.damping
        if self.mode != "heuristic":
            return dA, dG
        ta = float(np.trace(f.A)) / f.A.shape[0]
        tg = float(np.trace(f.G)) / f.G.shape[0]
        pi = math.sqrt(ta / tg) if ta > 0 and tg > 0 else 1.0
        root = math.sqrt(dA)
        return max(pi * root, min_damping), max(root / pi, min_damping)

    def _block(self, name, V):
        QA, QG = self._eig[name]
        return QG @ ((QG.T @ V @ QA) / self._denominators[name]) @ QA.T

    def __repr__(self) -> str:
        return (f"<{self.shape[0]}×{self.shape[1]} inverse K-FAC operator, mode={self.mode!r}, "
                f"damping={self.damping}>")


def kfac_operator(model, theta, X, y, kind: str = "kflr", **options) -> KFACOperator:
    """K-FAC's block-diagonal approximation of the Gauss-Newton matrix at θ as a SciPy
    ``LinearOperator``; ``kind`` and ``options`` (``mc_samples``, ``seed``, ``conv``) as
    :func:`symnn.analysis.kfac_factors`.  ``.inverse(damping, mode)`` gives its damped
    inverse.

    Raises
    ------
    AnalysisError
        As :func:`~symnn.analysis.kfac_factors`; a parameter that is in no Dense, Conv1D or
        recurrent layer (the operator would not be defined on it).
    """
    factors = kfac_factors(model, theta, X, y, kind, **options)
    covered = np.zeros(model.n_params, bool)
    for f in factors.values():
        covered[f.index] = True
    if not covered.all():
        raise AnalysisError(
            f"{int((~covered).sum())} of the {model.n_params} parameters (flat indices from "
            f"{int(np.flatnonzero(~covered)[0])}) are in no Dense, Conv1D or recurrent "
            "layer (a one-step RNN's W_hh acts on nothing); K-FAC has no "
            "block for them — use ggn_operator or fisher_operator for this model")
    return KFACOperator(factors, model.n_params)
