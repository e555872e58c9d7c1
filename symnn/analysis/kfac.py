"""Kronecker factors of the Gauss-Newton matrix per Dense, Conv1D and recurrent weight (K-FAC).

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

**Convolutions** (KFC, Grosse & Martens 2016).  A Conv1D layer's weight gradient is
``Σ_t δ_t p̄_tᵀ`` over its ``T = L_out`` output positions, ``p̄_t = [patch_t; 1]`` the input
patch output position ``t`` reads (``C_in·k`` values, zeros in the padding, the kernel's
``(c_in, k)`` order) and ``W̄ = [W.reshape(C_out, C_in·k) b]``.  Two approximations
(Eschenhagen et al. 2023 name them), chosen by ``conv=``:

* ``"expand"`` (KFC; the default):
  ``A = (1/(B T)) Σ_s Σ_t p̄_st p̄_stᵀ``, ``G = (1/B) Σ_s Σ_c w_c Σ_t g_sct g_sctᵀ`` —
  KFC's ``Ω = E[Σ_t p̄ p̄ᵀ]`` and ``Γ = (1/T) E[Σ_t g gᵀ]`` with the ``1/T`` moved from
  ``Γ`` to ``A`` (the product ``G ⊗ A = Γ ⊗ Ω`` is the same); curvlinops' ``"expand"``.
* ``"reduce"``: ``A = (1/B) Σ_s p̄̂_s p̄̂_sᵀ`` with ``p̄̂_s = (1/T) Σ_t p̄_st``,
  ``G = (1/B) Σ_s Σ_c w_c ĝ_sc ĝ_scᵀ`` with ``ĝ_sc = Σ_t g_sct`` (so ``G`` is the exact
  Gauss-Newton block of the bias); curvlinops' ``"reduce"``.

With ``T = 1`` both are the Dense factors.  (BackPACK 1.7's KFLR for ``Conv1d`` returns
``T·A_expand`` without the bias row for the weight and ``G_reduce`` for both: a product of
the two conventions; ``tests/test_kfac_conv.py`` maps it.)

**Recurrent layers** (RNN, GRU: the recurrence unrolled, :mod:`symnn.declare.recurrent`).  A
weight applied at ``R`` steps — ``W_xh`` reads ``a_t = x_t``, ``W_hh`` reads ``a_t = h_{t−1}``,
each with the cotangent ``g_t`` of its affine op's output — has the gradient
``Σ_t g_t ā_tᵀ``, one ``OuterMean`` per step in the derived program, and takes the same two
approximations with the steps as the positions (``T`` → ``R``, ``p̄_st`` → ``ā_st``):
expand ``A = (1/(B R)) Σ_s Σ_t ā ā ᵀ``, ``G = (1/B) Σ_s Σ_c w_c Σ_t g gᵀ``; reduce
``A = (1/B) Σ_s ā̂ ā̂ᵀ`` (``ā̂`` the mean over the steps), ``G = (1/B) Σ_s Σ_c w_c ĝ ĝᵀ``
(``ĝ = Σ_t g_t``: the bias's exact block).  ``R`` counts the affine ops the gradient
reaches: an RNN's ``W_hh`` acts from step 2 (``h_0 = 0`` is not multiplied), so ``R = T − 1``
for it and ``R = T`` for ``W_xh``; a GRU multiplies ``h_0 = 0`` too (``R = T``, ``a_1 = 0``);
with ``truncate`` only the steps the truncated gradient reaches count.  ``R = 1`` is the
Dense layer, and a one-step RNN's factors are its equivalent Dense network's.

The layers are found in the derived program, not by name: a parameter whose gradient is
``OuterMean(δ_t, a_t)`` summed over its ``R ≥ 1`` applications (or one ``ConvWMean(δ, a)``)
is a weight, and a parameter whose gradient is ``BatchMean(δ_t)`` summed over the same
``δ_t`` (``ChannelMean(δ)``) is its bias — when the affine ops reading the weight add that
bias (an RNN's ``W_hh`` has none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symnn import ops as P
from symnn.analysis.ggn import CHUNK_ROWS, backprop_columns, loss_hessian_sqrt
from symnn.analysis.persample import Evaluated, evaluate_program
from symnn.errors import AnalysisError
from symnn.ops.conv import taps

__all__ = ["KroneckerFactors", "kfac_factors", "kfac_error"]


@dataclass(frozen=True)
class KroneckerFactors:
    """The factors of one Dense, Conv1D or recurrent weight.

    Attributes
    ----------
    weight, bias : str
        Parameter names (``bias`` None for a layer without one).
    A : ndarray, shape (n_in + 1, n_in + 1) — (n_in, n_in) without a bias
        ``(1/B) Σ ā āᵀ``, ``ā = [a; 1]`` (a convolution: ``n_in = C_in·k``, see the module).
    G : ndarray, shape (n_out, n_out)
        ``(1/B) Σ_s Σ_c w_c g_sc g_scᵀ`` (a convolution: ``n_out = C_out``).
    index : ndarray of int
        The flat-layout indices of ``W̄ = [W b]`` in row-major order: ``G ⊗ A`` is the
        approximation of the Gauss-Newton block ``GGN[np.ix_(index, index)]``.
    positions : int
        ``T``, the output positions sharing the weight (a recurrent weight: ``R``, the
        steps applying it; 1 for a Dense layer).
    conv : str or None
        ``"expand"`` or ``"reduce"`` for a convolution or a weight shared over ``R > 1``
        steps, None for a Dense layer.
    """

    weight: str
    bias: str | None
    A: np.ndarray
    G: np.ndarray
    index: np.ndarray
    positions: int = 1
    conv: str | None = None

    def kron(self) -> np.ndarray:
        """``G ⊗ A``, the approximate block over :attr:`index`."""
        return np.kron(self.G, self.A)


def _layers(ev: Evaluated) -> list:
    """``(weight Var, offset, bias Var or None, bias offset, ops)`` per layer: ``ops`` the
    weight gradient's terms — one ``OuterMean`` (Dense), one ``ConvWMean`` (Conv1D) or one
    ``OuterMean`` per step that applies a shared weight (a recurrent layer)."""
    terms = {}
    for p, off, _size in ev.layout:
        ts = ev.data_terms(ev.grad_var(p))
        if ts:
            terms[p] = (tuple(ts), off)
    biases = {}
    for p, (ts, off) in terms.items():
        if all(isinstance(t, P.BatchMean) for t in ts):
            biases[frozenset(t.u for t in ts)] = (p, off)
        elif len(ts) == 1 and isinstance(ts[0], P.ChannelMean):
            biases[frozenset([ts[0].v])] = (p, off)
    added = {}  # the biases the affine ops reading a weight add (RNN: W_hh adds none)
    for op in ev.derived.program.ops:
        if isinstance(op, P.Affine):
            added.setdefault(op.W, set()).add(op.b)
    out = []
    for p, (ts, off) in terms.items():
        if all(isinstance(t, P.OuterMean) for t in ts) or (
                len(ts) == 1 and isinstance(ts[0], P.ConvWMean)):
            q, qoff = biases.get(frozenset(t.u for t in ts), (None, None))
            if p in added and added[p] != {q}:
                q, qoff = None, None
            out.append((p, off, q, qoff, ts))
    return out


def patches(x: np.ndarray, g) -> np.ndarray:
    """``(B, L_out, C_in·k)``: the input patch each output position of a convolution of
    geometry ``g`` reads (zero where the padding is), in the kernel's ``(c_in, k)`` order.

    Examples
    --------
    >>> from symnn.ops.conv import Geom
    >>> patches(np.arange(4.0)[None], Geom(1, 4, 1, 2, 1, 0))[0]
    array([[0., 1.],
           [1., 2.],
           [2., 3.]])
    """
    B = x.shape[0]
    xs = np.asarray(x).reshape(B, g.c_in, g.l_in)
    out = np.zeros((B, g.l_out, g.c_in, g.k), dtype=xs.dtype)
    for t, k, u in taps(g):
        out[:, t, :, k] = xs[:, :, u]
    return out.reshape(B, g.l_out, g.c_in * g.k)


def _inputs(env: dict, ops: tuple, B: int) -> np.ndarray:
    """``(B, T, n_in)``: the input each of the ``T`` applications of a weight reads (a
    convolution: its patches; a recurrent weight: ``a_t`` of every step)."""
    if isinstance(ops[0], P.ConvWMean):
        return patches(np.asarray(env[ops[0].v]), ops[0].g)
    return np.stack([np.asarray(env[op.v]) for op in ops], axis=1)


def _cotangents(env: dict, ops: tuple) -> np.ndarray:
    """``(rows, T, n_out)``: the output cotangent of each of the ``T`` applications."""
    if isinstance(ops[0], P.ConvWMean):
        g = ops[0].g
        return np.asarray(env[ops[0].u]).reshape(-1, g.c_out, g.l_out).transpose(0, 2, 1)
    return np.stack([np.asarray(env[op.u]) for op in ops], axis=1)


def _a_factor(pa: np.ndarray, bias: bool, conv: str) -> np.ndarray:
    """``A`` from the inputs ``pa`` ``(B, T, n_in)`` of the ``T`` applications (module
    notes; ``T = 1``: a Dense layer's ``(1/B) Σ ā āᵀ``)."""
    B, T = pa.shape[:2]
    if bias:
        pa = np.concatenate([pa, np.ones((B, T, 1))], axis=2)
    if conv == "expand":
        pa = pa.reshape(B * T, -1)
        return pa.T @ pa / (B * T)
    pm = pa.mean(axis=1)
    return pm.T @ pm / B


def _g_factor(gs: np.ndarray, wr: np.ndarray, conv: str) -> np.ndarray:
    """``Σ_r w_r (…)`` part of ``G`` from the rows' cotangents ``gs`` ``(rows, T, n_out)``
    (``wr``: the rows' weights, 1/B included)."""
    T = gs.shape[1]
    if conv == "expand":
        return _weighted_gram(gs.reshape(-1, gs.shape[2]), np.repeat(wr, T))
    return _weighted_gram(gs.sum(axis=1), wr)


def _weighted_gram(g: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Σ_r w_r g_r g_rᵀ``."""
    return (g * w[:, None]).T @ g


def _refuse_attention(ev: Evaluated) -> None:
    """A SelfAttention weight has no Kronecker factors here: refused by name."""
    for p, _off, _size in ev.layout:
        if any(isinstance(op, P.AttnMatMul) for op in ev.data_terms(ev.grad_var(p))):
            raise AnalysisError(  # (issue 13)
                f"parameter {p.name} is a weight of a SelfAttention layer; kfac_factors covers "
                "Dense and Conv1D layers; use diag_ggn or gnvp for this network")


def _index(m: int, n: int, off: int, boff: int | None) -> np.ndarray:
    """Flat indices of ``W̄ = [W b]`` (m × n+1) in row-major order."""
    W = off + np.arange(m * n).reshape(m, n)
    if boff is None:
        return W.ravel()
    return np.concatenate([W, boff + np.arange(m)[:, None]], axis=1).ravel()


def _check_options(kind: str, mc_samples, conv: str) -> None:
    if kind not in ("kflr", "kfac"):
        raise AnalysisError(f"kind = {kind!r}; use 'kflr' (exact loss-Hessian square root) "
                            "or 'kfac' (sampled targets)")
    if kind == "kflr" and mc_samples is not None:
        raise AnalysisError("mc_samples is for kind='kfac' (sampled targets); kind='kflr' uses "
                            "the exact square root of the loss Hessian")
    if conv not in ("expand", "reduce"):
        raise AnalysisError(f"conv = {conv!r}; use 'expand' (KFC: sums over output positions "
                            "inside both factors) or 'reduce' (positions summed first)")


def kfac_factors(model, theta, X, y, kind: str = "kflr", *, mc_samples: int | None = None,
                 seed: int = 0, conv: str = "expand") -> dict:
    """The Kronecker factors ``A``, ``G`` of every Dense, Conv1D and recurrent weight
    (RNN, GRU): ``{weight name: KroneckerFactors}``, in the order of the flat layout.

    ``kind="kflr"``: ``G`` from the exact square root of the loss Hessian (one backward
    column per output); ``kind="kfac"``: from ``mc_samples`` (default 1) sampled targets
    per sample (seeded by ``seed``).  ``conv``: the approximation of a weight shared
    over positions or steps (convolutions, recurrences), ``"expand"`` (KFC) or
    ``"reduce"``.  See the module docstring for the scaling.

    Raises
    ------
    AnalysisError
        An unknown ``kind`` or ``conv``; ``mc_samples`` with ``kind="kflr"``; a model with
        no Dense, Conv1D or recurrent layer (a custom ``Model``).
    """
    _check_options(kind, mc_samples, conv)
    ev = evaluate_program(model, theta, X, y, steps=True)
    _refuse_attention(ev)
    layers = _layers(ev)
    if not layers:
        raise AnalysisError(
            f"{type(ev.derived.declared).__name__} {ev.derived.declared.name!r} has no Dense, "
            "Conv1D or recurrent layer (no parameter whose gradient is an outer product "
            "δ aᵀ); K-FAC factors need one — use diag_ggn for a custom model"
        )
    if kind == "kfac" and mc_samples is None:
        mc_samples = 1
    S, w = loss_hessian_sqrt(ev, mc_samples, seed)
    G = {p: 0.0 for p, *_ in layers}
    step = max(1, CHUNK_ROWS // S.shape[2])    # the column pass in cache-sized chunks
    for lo in range(0, ev.B, step):
        hi = min(ev.B, lo + step)
        env, rows = backprop_columns(ev, S, lo, hi)
        wr = w[lo:hi].reshape(rows) / ev.B
        for p, *_, ops in layers:
            G[p] = G[p] + _g_factor(_cotangents(env, ops), wr, conv)
    out = {}
    for p, off, q, qoff, ops in layers:
        pa = _inputs(ev.env, ops, ev.B)
        A = _a_factor(pa, q is not None, conv)
        bias = None if q is None else q.name
        T, n_in = pa.shape[1:]
        index = _index(G[p].shape[0], n_in, off, qoff)
        shared = isinstance(ops[0], P.ConvWMean) or T > 1
        out[p.name] = KroneckerFactors(p.name, bias, A, G[p], index, T,
                                       conv if shared else None)
    return out


def kfac_error(model, theta, X, y, kind: str = "kflr", **options) -> dict:
    """Relative Frobenius error ``‖G_W̄ − G ⊗ A‖ / ‖G_W̄‖`` per layer, against the
    exact Gauss-Newton block from ``model.gnvp`` on unit vectors (the penalties' curvature
    taken out: K-FAC factors the data term).  For small nets: ``|W̄|`` products per layer.
    """
    factors = kfac_factors(model, theta, X, y, kind, **options)
    ev = evaluate_program(model, theta, X, y, steps=True)
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
