"""Kronecker factors of the Gauss-Newton matrix per Dense layer (K-FAC / KFLR).

A Dense layer ``z = W a + b`` has the per-sample gradient ``δ āᵀ`` for ``W̄ = [W b]``
(``ā = [a; 1]``), so its block of the Gauss-Newton matrix (``model.gnvp``'s, without the
penalties) is

    G_W̄ = (1/B) Σ_s Σ_c w_c (g_sc g_scᵀ) ⊗ (ā_s ā_sᵀ),

``g_sc`` the layer's output cotangent when the backward pass is seeded with column ``c`` of
the loss Hessian's square root (:mod:`symnn.analysis.ggn`).  K-FAC replaces the mean of
products by the product of means:

    G_W̄ ≈ G ⊗ A,   A = (1/B) Σ_s ā_s ā_sᵀ,   G = (1/B) Σ_s Σ_c w_c g_sc g_scᵀ.

Scaling (the convention curvlinops issue #82 was about): ``ℓ_s`` is the per-sample loss of
``docs/losses.md`` (mse: mean over outputs of ``(ŷ − y)²``, hence the ``2/m`` in ``S Sᵀ``),
each factor carries one ``1/B``, and nothing else: with one sample ``G ⊗ A`` *is* the exact
block.  ``kind="kflr"`` uses the exact columns of ``S``; ``kind="kfac"`` ``mc_samples``
targets sampled from the model's predictive distribution (an unbiased ``G``).

The layers are found in the derived program, not by name: a parameter whose gradient is one
``OuterMean(δ, a)`` is a weight, and a parameter whose gradient is ``BatchMean(δ)`` with the
same ``δ`` is its bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symnn import ops as P
from symnn.analysis.ggn import backprop_columns, loss_hessian_sqrt
from symnn.analysis.persample import Evaluated, evaluate_program
from symnn.errors import AnalysisError

__all__ = ["KroneckerFactors", "kfac_factors", "kfac_error"]


@dataclass(frozen=True)
class KroneckerFactors:
    """The factors of one Dense layer.

    Attributes
    ----------
    weight, bias : str
        Parameter names (``bias`` None for a layer without one).
    A : ndarray, shape (n_in + 1, n_in + 1) — (n_in, n_in) without a bias
        ``(1/B) Σ ā āᵀ``, ``ā = [a; 1]``.
    G : ndarray, shape (n_out, n_out)
        ``(1/B) Σ_s Σ_c w_c g_sc g_scᵀ``.
    index : ndarray of int
        The flat-layout indices of ``W̄ = [W b]`` in row-major order: ``G ⊗ A`` is the
        approximation of the Gauss-Newton block ``GGN[np.ix_(index, index)]``.
    """

    weight: str
    bias: str | None
    A: np.ndarray
    G: np.ndarray
    index: np.ndarray

    def kron(self) -> np.ndarray:
        """``G ⊗ A``, the approximate block over :attr:`index`."""
        return np.kron(self.G, self.A)


def _layers(ev: Evaluated) -> list:
    """``(weight Var, offset, bias Var or None, bias offset, OuterMean op)`` per Dense layer."""
    single = {}
    for p, off, _size in ev.layout:
        terms = ev.data_terms(ev.grad_var(p))
        if len(terms) == 1:
            single[p] = (terms[0], off)
    biases = {op.u: (p, off) for p, (op, off) in single.items() if isinstance(op, P.BatchMean)}
    out = []
    for p, (op, off) in single.items():
        if isinstance(op, P.OuterMean):
            q, qoff = biases.get(op.u, (None, None))
            out.append((p, off, q, qoff, op))
    return out


def _refuse_conv(ev: Evaluated) -> None:
    """K-FAC here covers Dense layers only: a convolution's weight is refused by name."""
    for p, _off, _size in ev.layout:
        if any(isinstance(op, P.ConvWMean) for op in ev.data_terms(ev.grad_var(p))):
            raise AnalysisError(
                f"parameter {p.name} is the kernel of a Conv1D layer; kfac_factors covers "
                "Dense layers only — Kronecker factors of a convolution are a separate method "
                "(KFC, Grosse & Martens 2016) not implemented here; use diag_ggn or gnvp for "
                "this network"
            )
        if any(isinstance(op, P.AttnMatMul) for op in ev.data_terms(ev.grad_var(p))):
            raise AnalysisError(  # (issue 13)
                f"parameter {p.name} is a weight of a SelfAttention layer; kfac_factors covers "
                "Dense layers only; use diag_ggn or gnvp for this network")


def _index(m: int, n: int, off: int, boff: int | None) -> np.ndarray:
    """Flat indices of ``W̄ = [W b]`` (m × n+1) in row-major order."""
    W = off + np.arange(m * n).reshape(m, n)
    if boff is None:
        return W.ravel()
    return np.concatenate([W, boff + np.arange(m)[:, None]], axis=1).ravel()


def kfac_factors(model, theta, X, y, kind: str = "kflr", *, mc_samples: int | None = None,
                 seed: int = 0) -> dict:
    """The Kronecker factors ``A``, ``G`` of every Dense layer: ``{weight name: factors}``.

    ``kind="kflr"``: ``G`` from the exact square root of the loss Hessian (one backward
    column per output); ``kind="kfac"``: from ``mc_samples`` (default 1) sampled targets
    per sample (seeded by ``seed``).  See the module docstring for the scaling.

    Raises
    ------
    AnalysisError
        An unknown ``kind``; ``mc_samples`` with ``kind="kflr"``; a model with no Dense layer
        (a custom ``Model``); a network with a ``Conv1D`` layer (K-FAC for convolutions,
        KFC, is a separate method).
    """
    if kind not in ("kflr", "kfac"):
        raise AnalysisError(f"kind = {kind!r}; use 'kflr' (exact loss-Hessian square root) "
                            "or 'kfac' (sampled targets)")
    if kind == "kflr" and mc_samples is not None:
        raise AnalysisError("mc_samples is for kind='kfac' (sampled targets); kind='kflr' uses "
                            "the exact square root of the loss Hessian")
    ev = evaluate_program(model, theta, X, y)
    _refuse_conv(ev)
    layers = _layers(ev)
    if not layers:
        raise AnalysisError(
            f"{type(ev.derived.declared).__name__} {ev.derived.declared.name!r} has no Dense "
            "layer (no parameter whose gradient is an outer product δ aᵀ); K-FAC factors need "
            "one — use diag_ggn for a custom model"
        )
    if kind == "kfac" and mc_samples is None:
        mc_samples = 1
    S, w = loss_hessian_sqrt(ev, mc_samples, seed)
    env, rows = backprop_columns(ev, S)
    wr = w.reshape(rows) / ev.B
    out = {}
    for p, off, q, qoff, op in layers:
        a = np.asarray(ev.env[op.v])
        if q is not None:
            a = np.concatenate([a, np.ones((ev.B, 1))], axis=1)
        g = np.asarray(env[op.u])
        out[p.name] = KroneckerFactors(
            p.name, None if q is None else q.name, a.T @ a / ev.B, (g * wr[:, None]).T @ g,
            _index(p.shape[0], p.shape[1], off, qoff))
    return out


def kfac_error(model, theta, X, y, kind: str = "kflr", **options) -> dict:
    """Relative Frobenius error ``‖G_W̄ − G ⊗ A‖ / ‖G_W̄‖`` per Dense layer, against the
    exact Gauss-Newton block from ``model.gnvp`` on unit vectors (the penalties' curvature
    taken out: K-FAC factors the data term).  For small nets: ``|W̄|`` products per layer.
    """
    factors = kfac_factors(model, theta, X, y, kind, **options)
    ev = evaluate_program(model, theta, X, y)
    pen = ev.penalty_curvature()
    dt = np.dtype(getattr(model, "dtype", np.float64))
    out = {}
    for name, f in factors.items():
        V = np.zeros((f.index.size, model.n_params), dt)
        V[np.arange(f.index.size), f.index] = 1
        GV = np.asarray(model.gnvp(np.asarray(theta, dt), V, X, y), float)
        block = GV[:, f.index] - np.diag(pen[f.index])
        norm = np.linalg.norm(block)
        out[name] = float(np.linalg.norm(block - f.kron()) / norm) if norm > 0 else 0.0
    return out
