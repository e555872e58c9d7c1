"""SciPy ``LinearOperator`` views of the Fisher matrices: empirical, Monte-Carlo and exact.

Each is a sum of outer products of per-sample vectors ``u_r`` (rows of ``U``, ``(R, P)``)
with weights ``w_r``:

    F = Σ_r w_r u_r u_rᵀ,   F v = Uᵀ (w ⊙ (U v)),

formed once on the batch (one interpretation of the derived program, as
:func:`symnn.analysis.per_sample_gradients`), then multiplied by BLAS products: ``O(R·P)``
memory, ``O(R·P·K)`` per ``(P, K)`` block.  The data term only (the penalties' curvature is
not in any Fisher); ``ℓ_s`` the per-sample loss of ``docs/losses.md``, the batch loss
``(1/B) Σ_s ℓ_s``:

==================  =======================================================  ==============
``kind``            ``F``                                                    rows ``R``
==================  =======================================================  ==============
``"empirical"``     ``(1/B) Σ_s ∇ℓ_s ∇ℓ_sᵀ`` (:func:`empirical_fisher`)       ``B``
``"mc"``            ``(1/(B M)) Σ_s Σ_k (J_sᵀ s_sk)(J_sᵀ s_sk)ᵀ``,            ``B·M``
                    ``s_sk`` the loss gradient at a target sampled from the
                    model's predictive distribution (``E[s sᵀ] = H_s``)
``"exact"``         ``(1/B) Σ_s Σ_c (J_sᵀ S_c)(J_sᵀ S_c)ᵀ`` with ``S S ᵀ = H_s``  ``B·m``
                    (:mod:`symnn.analysis.ggn`): the Gauss-Newton matrix's
                    data term, which is the Fisher for softmax-CE, sigmoid-BCE
                    and MSE ("type-2")
==================  =======================================================  ==============

``"mc"`` is an unbiased estimate of ``"exact"``.  Conventions against curvlinops 3.0.1 (the
tests check them): with ``reduction="mean"`` curvlinops divides by the number of loss
*entries* for ``MSELoss`` and ``BCEWithLogitsLoss`` (``B·m``) but by ``B`` for
``CrossEntropyLoss``; its ``EFLinearOperator`` is this ``"empirical"`` for
cross-entropy and ``m`` times it for MSE / BCE with ``m`` outputs (its per-sample loss is
the sum over the outputs, symnn's the mean); its ``FisherMCLinearOperator`` and
``GGNLinearOperator`` estimate / equal ``"exact"`` with no factor.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.codegen.model import ReferenceModel
>>> from symnn.analysis import empirical_fisher
>>> model = ReferenceModel(symnn.mlp([2, 3, 1], activation="tanh"))
>>> theta, X, y = model.init(0), np.ones((4, 2)), np.zeros((4, 1))
>>> F = fisher_operator(model, theta, X, y)          # the empirical Fisher
>>> bool(np.allclose(F @ np.eye(13), empirical_fisher(model, theta, X, y)))
True
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as sla

from symnn.analysis.ggn import backprop_columns, loss_hessian_sqrt
from symnn.analysis.persample import _per_sample, evaluate_program
from symnn.errors import AnalysisError, ShapeError

__all__ = ["FisherOperator", "fisher_operator"]

KINDS = ("empirical", "mc", "exact")


class FisherOperator(sla.LinearOperator):
    """``Σ_r w_r u_r u_rᵀ`` as a symmetric ``(P, P)`` SciPy operator (float64).

    Attributes
    ----------
    kind : str
        ``"empirical"``, ``"mc"`` or ``"exact"``.
    U : ndarray, shape (R, P)
        The per-sample vectors (rows).
    w : ndarray, shape (R,)
        Their weights (``1/B`` or ``1/(B M)``).
    """

    def __init__(self, U: np.ndarray, w: np.ndarray, kind: str) -> None:
        super().__init__(dtype=np.dtype(np.float64), shape=(U.shape[1], U.shape[1]))
        self.U = np.ascontiguousarray(U, dtype=np.float64)
        self.w = np.asarray(w, dtype=np.float64)
        self.kind = kind

    def _matmat(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.shape[0] != self.shape[1]:
            raise ShapeError(f"the Fisher operator is {self.shape[0]}×{self.shape[1]}; a block "
                             f"of shape {X.shape} has the wrong number of rows")
        return self.U.T @ (self.w[:, None] * (self.U @ X))

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

    def dense(self) -> np.ndarray:
        """The ``(P, P)`` matrix ``Uᵀ diag(w) U``."""
        return (self.U * self.w[:, None]).T @ self.U

    def __repr__(self) -> str:
        return (f"<{self.shape[0]}×{self.shape[1]} {self.kind} Fisher operator "
                f"({self.U.shape[0]} rank-one terms)>")


def fisher_operator(model, theta, X, y, kind: str = "empirical", *,
                    mc_samples: int | None = None, seed: int = 0) -> FisherOperator:
    """The (empirical, Monte-Carlo or exact) Fisher at θ as a SciPy ``LinearOperator``.

    ``kind="mc"`` draws ``mc_samples`` (default 1) targets per sample, seeded by ``seed``.
    See the module docstring for the definitions and the scaling.

    Raises
    ------
    AnalysisError
        An unknown ``kind``; ``mc_samples`` with a kind other than ``"mc"``, or not a
        positive integer; ``model`` not a model.
    ShapeError, DataError
        θ, X or y of the wrong shape or not finite.
    """
    if kind not in KINDS:
        raise AnalysisError(f"kind = {kind!r}; use 'empirical' (per-sample gradients), 'mc' "
                            "(sampled targets) or 'exact' (the loss Hessian's square root)")
    if mc_samples is not None and kind != "mc":
        raise AnalysisError(f"mc_samples is for kind='mc' (sampled targets), not {kind!r}")
    ev = evaluate_program(model, theta, X, y, steps=True)
    if kind == "empirical":
        return FisherOperator(_per_sample(ev, ev.env, ev.B, False), np.full(ev.B, 1 / ev.B),
                              kind)
    M = (1 if mc_samples is None else mc_samples) if kind == "mc" else None
    S, w = loss_hessian_sqrt(ev, M, seed)
    env, rows = backprop_columns(ev, S)
    return FisherOperator(_per_sample(ev, env, rows, False), w.reshape(rows) / ev.B, kind)
