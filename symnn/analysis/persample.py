"""Per-sample gradients, their variance and the empirical Fisher, read off the derived program.

The derived program (:func:`symnn.derive.derive`) computes every parameter gradient as a
batch mean of per-sample factors: ``OuterMean(δ, a)`` is ``(1/B) Σ_s δ_s a_sᵀ`` for a Dense
weight, ``BatchMean(u)`` is ``(1/B) Σ_s u_s`` for a bias or a custom model's parameters.
The per-sample gradient of sample ``s`` is the same op *without the mean*: ``δ_s a_sᵀ``,
``u_s``.  This module interprets the program once over the batch with the ops' NumPy rules
(:data:`symnn.ops.NUMPY`, the rules the uncompiled reference uses) and reads those factors:
one pass, no loop of batch-1 kernel calls, generic over the IR (any op the program's
gradients are built of: ``OuterMean``, ``BatchMean``, a convolution's ``ConvWMean`` and
``ChannelMean``, ``Add`` and the penalties' gradients) — so Dense layers, Residual blocks
and Conv1D / pooling / Flatten networks alike.

Conventions (see ``docs/losses.md``): the batch loss is ``L = (1/B) Σ_s ℓ_s + R(θ)``.
``per_sample_gradients`` returns ``g_s = ∇ℓ_s + ∇R`` — the gradient of the batch holding
sample ``s`` alone — so that ``mean_s g_s = ∇L``; ``penalties=False`` leaves ``∇R`` out.
The empirical Fisher is ``F̃ = (1/B) Σ_s ∇ℓ_s ∇ℓ_sᵀ`` (data term only).

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.codegen.model import ReferenceModel
>>> model = ReferenceModel(symnn.mlp([2, 3, 1], activation="tanh"))   # or net.compile()
>>> theta, X, y = model.init(0), np.ones((4, 2)), np.zeros((4, 1))
>>> G = per_sample_gradients(model, theta, X, y)
>>> G.shape
(4, 13)
>>> bool(np.allclose(G.mean(axis=0), model.loss_and_grad(theta, X, y)[1]))
True
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from symnn import ops as P
from symnn.analysis._common import check_theta
from symnn.analysis._unrolled import unrolled_twin
from symnn.errors import AnalysisError, ShapeError
from symnn.ops.attention import matmul_numpy
from symnn.ops.conv import taps

__all__ = ["per_sample_gradients", "gradient_variance", "empirical_fisher", "Evaluated",
           "evaluate_program"]

#: Largest parameter count for which a dense P×P matrix is formed.
DENSE_LIMIT = 4000

#: The batch-mean ops a gradient's data term may be built of (each has a per-sample form).
PER_SAMPLE_OPS = (P.OuterMean, P.BatchMean, P.ConvWMean, P.ChannelMean,
                  P.NormColMean)  # NormColMean: a LayerNorm's γ and β


def conv_weight_per_sample(u, v, g) -> np.ndarray:
    """``(B, C_out, C_in, k)``: ``Σ_t u_s[c, t] v_s[c′, t·s + k − p]`` per sample — the
    :class:`~symnn.ops.ConvWMean` term of sample ``s`` before its batch mean."""
    B = u.shape[0]
    us = np.asarray(u).reshape(B, g.c_out, g.l_out)
    vs = np.asarray(v).reshape(B, g.c_in, g.l_in)
    out = np.zeros((B, g.c_out, g.c_in, g.k), dtype=np.result_type(us, vs))
    for t, k, uu in taps(g):
        out[:, :, :, k] += us[:, :, t, None] * vs[:, None, :, uu]
    return out


class Evaluated:
    """The derived program of ``model`` interpreted on one batch: every value, per sample.

    Attributes
    ----------
    derived : symnn.derive.Derived
    env : dict
        ``{Var: ndarray}``; per-sample values have shape ``(B, size)``.
    B : int
    layout : list of (Var, offset, size)
        The parameters in the flat layout.
    producer : dict
        ``{Var: the op that writes it}``.
    """

    def __init__(self, derived, env: dict, B: int) -> None:
        self.derived = derived
        self.env = env
        self.B = B
        self.producer = {op.out: op for op in derived.program.ops}
        self.layout = []
        off = 0
        for p in derived.params:
            size = int(np.prod(p.shape, dtype=np.int64)) if p.shape else 1
            self.layout.append((p, off, size))
            off += size
        self.n_params = off

    def grad_var(self, p: P.Var) -> P.Var:
        return self.derived.program.outputs["grad:" + p.name]

    def data_terms(self, var: P.Var) -> list:
        """The ops whose batch means sum to the data term of the gradient ``var``."""
        op = self.producer.get(var)
        if isinstance(op, P.Add):
            return [t for term in op.terms for t in self.data_terms(term)]
        if isinstance(op, P.Penalty) and op.grad:
            return []
        if isinstance(op, PER_SAMPLE_OPS) or (isinstance(op, P.AttnMatMul) and op.d.mean):
            return [op]
        raise AnalysisError(
            f"the gradient {var.name} is written by {type(op).__name__}, which is not a batch "
            "mean of per-sample factors (OuterMean / BatchMean / ConvWMean / ChannelMean); "
            "per-sample quantities are not available for this program"
            + (" (an RNN looped over time has none yet: declare it with RNN(..., "
               "unroll=True))" if type(op).__name__ in ("SeqOuter", "SeqSum") else "")
        )

    def penalty_ops(self, var: P.Var) -> list:
        op = self.producer.get(var)
        if isinstance(op, P.Add):
            return [t for term in op.terms for t in self.penalty_ops(term)]
        if isinstance(op, P.Penalty) and op.grad:
            return [op]
        return []

    def per_sample(self, op, env: dict, rows: int, shape) -> np.ndarray:
        """``(rows, *shape)``: the term ``op`` of a gradient, before its batch mean."""
        if isinstance(op, P.OuterMean):
            return np.einsum("bi,bj->bij", env[op.u], env[op.v])
        if isinstance(op, P.ConvWMean):
            return conv_weight_per_sample(env[op.u], env[op.v], op.g).reshape((rows, *shape))
        if isinstance(op, P.ChannelMean):
            return np.asarray(env[op.v]).reshape(rows, op.c, op.l).sum(axis=2)
        if isinstance(op, P.NormColMean):  # Σ_t u[t] ⊙ v[t] of each sample (v absent: 1)
            u = np.asarray(env[op.u]).reshape(rows, op.rows, op.n)
            v = 1.0 if op.v is None else np.asarray(env[op.v]).reshape(rows, op.rows, op.n)
            return (u * v).sum(axis=1).reshape((rows, *shape))
        if isinstance(op, P.AttnMatMul):  # a self-attention weight's ⟨op(A) op(B)⟩ (issue 13)
            d = replace(op.d, mean=False)
            return matmul_numpy(env[op.a], env[op.b], d, rows, True, True).reshape(
                (rows, *shape))
        return np.asarray(env[op.u]).reshape((rows, *shape))

    def penalty_curvature(self) -> np.ndarray:
        """The diagonal of ``∇²R`` in the flat layout: ``2λ`` on L2-penalised components."""
        out = np.zeros(self.n_params)
        for p, off, size in self.layout:
            for op in self.penalty_ops(self.grad_var(p)):
                if op.kind == "l2":
                    rule = P.NUMPY[type(op)]
                    out[off:off + size] += np.ravel(rule(op, {op.param: np.ones(p.shape)}, 1))
        return out


def evaluate_program(model, theta, X, y, *, steps: bool = False) -> Evaluated:
    """Check the arguments and interpret ``model``'s derived program on the batch.

    ``steps=True`` (the per-sample analyses): an RNN looped over time is interpreted in its
    unrolled form (:func:`symnn.analysis._unrolled.unrolled_twin`; same parameters and
    numbers), so each time step's factors are values of the program.

    ``model`` is a compiled or reference model (anything with ``derived``, ``n_params``
    and the argument checks ``_X`` / ``_Y`` of :class:`symnn.codegen.model.CompiledModel`).
    """
    derived = getattr(model, "derived", None)
    if derived is None or not hasattr(model, "n_params"):
        raise AnalysisError(
            f"{type(model).__name__} is not a model; pass a compiled model "
            "(net.compile()) or its reference (model.reference)"
        )
    theta = check_theta(model, theta)
    X = model._X(X)
    Y = model._Y(y, X.shape[0])
    if steps:
        derived = unrolled_twin(derived)
    prog = derived.program
    env = {prog.inputs["x"]: np.asarray(X, np.float64),
           prog.inputs["y"]: np.asarray(Y, np.float64)}
    for m, _p in derived.meta.get("masks", ()):  # Dropout: no mask, the expected network
        env[m] = np.ones((X.shape[0], m.size))
    off = 0
    for p in derived.params:
        size = int(np.prod(p.shape, dtype=np.int64)) if p.shape else 1
        env[p] = np.asarray(theta[off:off + size], np.float64).reshape(p.shape)
        off += size
    env = run_ops(prog.ops, env, X.shape[0])
    return Evaluated(derived, env, X.shape[0])


def run_ops(ops, env: dict, rows: int) -> dict:
    """Run ``ops`` with their NumPy rules on ``env`` (per-sample values: ``rows`` rows)."""
    env = dict(env)
    for op in ops:
        env[op.out] = P.NUMPY[type(op)](op, env, rows)
    return env


def per_sample_gradients(model, theta, X, y, *, penalties: bool = True) -> np.ndarray:
    """The gradient of each sample's loss, ``(B, P)`` in the flat layout.

    Row ``s`` is ``∇_θ [ℓ(x_s, y_s) + R(θ)]`` — what the gradient kernel returns for the
    batch ``X[s:s+1]`` — so the rows average to ``model.loss_and_grad(θ, X, y)[1]``.
    ``penalties=False`` leaves the penalties' gradient ``∇R`` out (``∇ℓ_s`` alone).

    A Dense weight's row block is ``δ_s a_sᵀ`` (the layer's backpropagated error and input,
    from one interpretation of the derived program over the whole batch); a bias's is ``δ_s``.

    Raises
    ------
    ShapeError, DataError
        θ, X or y of the wrong shape or not finite.
    AnalysisError
        ``model`` is not a model, or its gradients are not batch means of per-sample factors.
    """
    ev = evaluate_program(model, theta, X, y, steps=True)
    return _per_sample(ev, ev.env, ev.B, penalties)


def _per_sample(ev: Evaluated, env: dict, rows: int, penalties: bool) -> np.ndarray:
    out = np.zeros((rows, ev.n_params))
    for p, off, size in ev.layout:
        g = ev.grad_var(p)
        block = out[:, off:off + size]
        for op in ev.data_terms(g):
            block += ev.per_sample(op, env, rows, p.shape).reshape(rows, size)
        if penalties:
            for op in ev.penalty_ops(g):
                block += np.ravel(env[op.out])[None, :]
    return out


def gradient_variance(model, theta, X, y, *, ddof: int = 0) -> np.ndarray:
    """The variance of the per-sample gradients, per coordinate, length P.

    ``Σ_s (g_s − ḡ)² / (B − ddof)`` with ``g_s`` the rows of :func:`per_sample_gradients`
    (the penalties' gradient is the same in every row and does not change it).
    """
    if ddof not in (0, 1):
        raise AnalysisError(f"ddof = {ddof!r}; use 0 (population) or 1 (sample variance)")
    G = per_sample_gradients(model, theta, X, y, penalties=False)
    if G.shape[0] - ddof < 1:
        raise ShapeError(f"the variance with ddof={ddof} needs at least {ddof + 1} samples; "
                         f"the batch has {G.shape[0]}")
    return G.var(axis=0, ddof=ddof)


def empirical_fisher(model, theta, X, y, v=None) -> np.ndarray:
    """The empirical Fisher ``F̃ = (1/B) Σ_s ∇ℓ_s ∇ℓ_sᵀ`` (data term, no penalties).

    ``v=None``: the dense P×P matrix (P ≤ :data:`DENSE_LIMIT`).  ``v`` of shape ``(P,)`` or
    ``(K, P)``: the product ``F̃ v`` (row by row), without forming ``F̃``:
    ``Gᵀ (G v) / B`` with ``G`` the per-sample gradients.
    """
    G = per_sample_gradients(model, theta, X, y, penalties=False)
    B, Pn = G.shape
    if v is None:
        if Pn > DENSE_LIMIT:
            raise AnalysisError(
                f"the dense empirical Fisher of {Pn} parameters is {Pn}×{Pn}; pass v to get "
                "its products F̃ v instead"
            )
        return G.T @ G / B
    V = np.asarray(v, dtype=np.float64)
    if V.ndim not in (1, 2) or V.shape[-1] != Pn or not np.all(np.isfinite(V)):
        raise ShapeError(f"v has shape {V.shape}; the empirical Fisher's products take finite "
                         f"vectors of length {Pn}, shape ({Pn},) or (K, {Pn})")
    return (V @ G.T) @ G / B
