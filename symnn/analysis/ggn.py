"""The exact diagonals of the Gauss-Newton matrix and of the Hessian.

The Gauss-Newton matrix is the one ``model.gnvp`` multiplies by (``docs/losses.md``):

    G = (1/B) Σ_s J_sᵀ H_s J_s + ∇²R,

``J_s`` the Jacobian of the value ``u`` the loss reads (the logits of a fused softmax /
sigmoid output, the prediction otherwise) and ``H_s = ∂²ℓ_s/∂u²``.  Writing
``H_s = Σ_c w_c S_c S_cᵀ`` (columns ``S_c``, signs ``w_c``), the diagonal is

    diag G = (1/B) Σ_s Σ_c w_c (J_sᵀ S_c)²  +  diag ∇²R,

and ``J_sᵀ S_c`` is the backward pass of the derived program seeded with ``S_c`` at ``u``
instead of ``∂ℓ/∂u`` — its per-sample parameter factors (``δ aᵀ`` for a Dense weight)
before their batch mean.  All columns of all samples run as one batch of ``B·C`` rows.

The square roots, per loss (``m`` outputs; the loss conventions of ``docs/losses.md``):

=========================================  =============================================
loss (value read)                          ``S`` (``S Sᵀ = H``)
=========================================  =============================================
softmax × cross_entropy / kl (logits)      ``diag(√p) − p √pᵀ``  (``H = diag(p) − ppᵀ``)
sigmoid × bce (logits)                     ``diag(√(σ(1−σ)/m))``
sigmoid × cross_entropy / kl (logits)      ``diag(√(y σ(1−σ)))``
mse (prediction)                           ``√(2/m) I``
mae, huber, …                              ``diag(√|h|)`` with ``h`` the loss's own second
                                           derivative (the JVP of ``∂ℓ/∂u``), sign ``w``
bce on a softmax output (probabilities)    ``V √|Λ|`` from ``H = V Λ Vᵀ`` (dense: the loss
                                           reads ``1 − pₖ`` as ``Σ_{j≠k} pⱼ``), sign ``w``
=========================================  =============================================

Every loss symnn has is convex in ``u`` (``h ≥ 0``: huber's is 1 inside ``|r| ≤ 1`` and 0
outside, mae's 0), so ``w = +1``; a negative ``h`` (a loss that is not convex there) has no
real square root and is kept exact as a column of sign −1.  ``mc_samples=M`` replaces the
``m`` exact columns by ``M`` sampled ones with ``E[s sᵀ] = H``: the gradient of the loss at
a target drawn from the model's predictive distribution (a class ``c ~ p``: ``s = p − e_c``;
Bernoulli labels for sigmoid outputs; Gaussian targets for mse, ``s = √(2/m) ε``).
"""

from __future__ import annotations

import numpy as np

from symnn import ops as P
from symnn.analysis._common import check_finite_matrix, check_theta
from symnn.analysis.persample import Evaluated, evaluate_program, run_ops
from symnn.derive.tangent import jvp
from symnn.errors import AnalysisError
from symnn.ops.ir import Builder

__all__ = ["diag_ggn", "diag_hessian", "loss_hessian_sqrt", "output_hessian"]


def _between(ops, u: P.Var, g_u: P.Var) -> list:
    """Ops on which ``g_u`` depends that themselves depend on ``u``."""
    dep, out = {u}, []
    for op in ops:
        if any(v in dep for v in op.inputs):
            dep.add(op.out)
            out.append(op)
        if op.out == g_u:
            break
    return out


def _downstream(ops, start: P.Var) -> list:
    dep, out = {start}, []
    for op in ops:
        if op.out.per_sample and any(v in dep for v in op.inputs):
            dep.add(op.out)
            out.append(op)
    return out


def _u_and_seed(ev: Evaluated):
    u, g_u = ev.derived.meta["output"], ev.derived.meta.get("g_output")
    if g_u is None:
        raise AnalysisError("the loss does not depend on the network's output; its Gauss-"
                            "Newton matrix is 0 (nothing to backpropagate)")
    return u, g_u


def output_hessian(ev: Evaluated) -> np.ndarray:
    """``H_s = ∂²ℓ_s/∂u²`` from the derived program, ``(B, m, m)`` (m JVPs of ``∂ℓ/∂u``)."""
    u, g_u = _u_and_seed(ev)
    b = Builder(prog=P.Program([]), counter=40_000)
    u_dot = P.Var("u_dot", "sample", u.shape)
    dots = jvp(b, _between(ev.derived.program.ops, u, g_u), {u: u_dot})
    m = u.size
    H = np.zeros((ev.B, m, m))
    if dots.get(g_u) is None:
        return H
    for k in range(m):
        e = np.zeros((ev.B, m))
        e[:, k] = 1.0
        env = run_ops(b.prog.ops, {**ev.env, u_dot: e}, ev.B)
        H[:, :, k] = np.asarray(env[dots[g_u]]).reshape(ev.B, m)
    return H


def _diagonal_h(ev: Evaluated, kind: str) -> np.ndarray:
    """The diagonal ``H_s`` of a loss that reads ``u`` elementwise, ``(B, m)``."""
    m = ev.derived.meta["output"].size
    p = np.asarray(ev.env[ev.derived.meta["prediction"]])
    y = np.asarray(ev.env[ev.derived.program.inputs["y"]])
    if isinstance(kind, tuple) and kind[0] == "sigmoid":
        # σ(u)σ(−u) from the logits, not p(1 − p): that is 0 once p rounds to 1 (u ≳ 37)
        # and loses digits well before (round 5, exact: as the derived rules now do)
        import scipy.special

        u = np.asarray(ev.env[ev.derived.meta["output"]]).reshape(p.shape)
        pq = scipy.special.expit(u) * scipy.special.expit(-u)
        return pq / m if kind[1] == "bce" else y * pq
    if kind == "mse":
        return np.full((ev.B, m), 2.0 / m)
    # the loss's own second derivative: one JVP along u̇ = 1 (H is diagonal)
    u, g_u = _u_and_seed(ev)
    b = Builder(prog=P.Program([]), counter=40_000)
    u_dot = P.Var("u_dot", "sample", u.shape)
    dots = jvp(b, _between(ev.derived.program.ops, u, g_u), {u: u_dot})
    if dots.get(g_u) is None:
        return np.zeros((ev.B, m))
    env = run_ops(b.prog.ops, {**ev.env, u_dot: np.ones((ev.B, m))}, ev.B)
    return np.asarray(env[dots[g_u]]).reshape(ev.B, m)


def _loss_kind(ev: Evaluated):
    fused = ev.derived.meta.get("fused")
    if fused is not None:
        return fused[0] if fused[0] == "softmax" else tuple(fused)
    return ev.derived.declared.loss.name


def loss_hessian_sqrt(ev: Evaluated, mc_samples: int | None = None, seed: int = 0):
    """Columns ``S`` ``(B, m, C)`` and weights ``w`` ``(B, C)`` with
    ``Σ_c w_c S_c S_cᵀ = H_s`` exactly (``mc_samples=None``, ``w = ±1``) or in expectation
    (``mc_samples=M``, ``w = 1/M``).  See the module's table."""
    kind = _loss_kind(ev)
    p = np.asarray(ev.env[ev.derived.meta["prediction"]])
    if ev.derived.meta.get("dense_loss_hessian"):
        return _dense_columns(ev, mc_samples, seed)
    if mc_samples is None:
        if kind == "softmax":
            sq = np.sqrt(p)
            m = p.shape[1]
            S = sq[:, None, :] * (np.eye(m)[None] - p[:, :, None])
            return S, np.ones((ev.B, m))
        h = _diagonal_h(ev, kind)
        m = h.shape[1]
        S = np.sqrt(np.abs(h))[:, :, None] * np.eye(m)[None]
        return S, np.where(h < 0, -1.0, 1.0)
    return _sampled_columns(ev, kind, p, mc_samples, seed)


def _check_mc(M) -> None:
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or M < 1:
        raise AnalysisError(f"mc_samples = {M!r}; give a positive number of sampled targets "
                            "per sample (or None for the exact square root)")


def _dense_columns(ev: Evaluated, M: int | None, seed: int):
    """A loss whose Hessian in ``u`` is not diagonal (binary cross-entropy on a softmax
    output): ``H_s = V Λ Vᵀ`` per sample, exact columns ``V √|Λ|`` with signs ``sign Λ``,
    or ``M`` Gaussian columns ``V √Λ ε`` (``E[s sᵀ] = H``)."""
    H = output_hessian(ev)
    H = 0.5 * (H + H.transpose(0, 2, 1))
    if not np.all(np.isfinite(H)):
        raise AnalysisError(
            "the loss's Hessian in the network's output is not finite at some samples (an "
            "output probability rounds to 0 or 1 there); no Gauss-Newton diagonal exists "
            "at this θ — check the data's scale, or use a fused output × loss pairing")
    # symmetric diagonal scaling before eigh: entries such as y/p² span 1e100 and more
    # when a softmax saturates, and eigh is only accurate relative to the largest one
    # (h-exact: diag_ggn was off by 1e94 at inputs ×10); H = D M D, columns D V √|Λ|
    d = np.sqrt(np.abs(np.diagonal(H, axis1=1, axis2=2)))
    d = np.where(d > 0, d, 1.0)
    lam, V = np.linalg.eigh(H / d[:, :, None] / d[:, None, :])
    S = (d[:, :, None] * V) * np.sqrt(np.abs(lam))[:, None, :]
    if M is None:
        return S, np.where(lam < 0, -1.0, 1.0)
    _check_mc(M)
    if np.any(lam < -1e-12 * np.maximum(1.0, np.abs(lam).max())):
        raise AnalysisError("the loss's Hessian has a negative eigenvalue at some samples; "
                            "no sampled square root exists there — use mc_samples=None")
    eps = np.random.default_rng(seed).standard_normal((ev.B, S.shape[2], M))
    return S @ eps, np.full((ev.B, M), 1.0 / M)


def _sampled_columns(ev: Evaluated, kind, p, M: int, seed: int):
    _check_mc(M)
    rng = np.random.default_rng(seed)
    B, m = p.shape
    if kind == "softmax":
        cum = np.cumsum(p, axis=1)
        r = rng.random((B, M)) * cum[:, -1:]
        cls = np.minimum((cum[:, None, :] <= r[:, :, None]).sum(axis=2), m - 1)  # (B, M)
        S = p[:, :, None] - np.eye(m)[cls].transpose(0, 2, 1)
    elif isinstance(kind, tuple):  # a fused sigmoid output: Bernoulli labels
        ys = (rng.random((B, m, M)) < p[:, :, None]).astype(float)
        y = np.asarray(ev.env[ev.derived.program.inputs["y"]])
        scale = np.full((B, m), 1 / np.sqrt(m)) if kind[1] == "bce" else np.sqrt(y)
        S = (p[:, :, None] - ys) * scale[:, :, None]
    else:  # Gaussian targets around the prediction
        h = _diagonal_h(ev, kind)
        if np.any(h < 0):
            raise AnalysisError("the loss's second derivative is negative at some samples; "
                                "no sampled square root exists there — use mc_samples=None")
        S = np.sqrt(h)[:, :, None] * rng.standard_normal((B, m, M))
    return S, np.full((B, M), 1.0 / M)


class _ColumnEnv(dict):
    """The column pass's values; a per-sample value of the forward pass that the backward
    ops did not need is repeated to ``B·C`` rows only when it is first read."""

    def __init__(self, values: dict, base: dict, C: int, computed: set) -> None:
        super().__init__(values)
        self.base, self.C, self.computed = base, C, computed

    def __missing__(self, key):
        v = self.base[key]
        if key.per_sample:
            v = np.repeat(v, self.C, axis=0)
        self[key] = v
        return v


def backprop_columns(ev: Evaluated, S: np.ndarray, lo: int = 0,
                     hi: int | None = None) -> tuple[dict, int]:
    """Replay the backward pass of ``ev`` seeded with the columns ``S`` (``(B, m, C)``) at
    ``u``, for the samples ``lo:hi`` (all by default): an env over ``(hi − lo)·C`` rows
    (sample-major) holding every cotangent.

    Only the forward values the backward ops read are repeated ``C`` times up front; any
    other per-sample value is repeated when the returned env is first asked for it."""
    u, g_u = _u_and_seed(ev)
    hi = ev.B if hi is None else hi
    C = S.shape[2]
    rows = (hi - lo) * C
    ops = _downstream(ev.derived.backward_ops, g_u)
    made = {op.out for op in ops} | {g_u}
    base = {k: (v[lo:hi] if k.per_sample else v) for k, v in ev.env.items()}
    env = {k: v for k, v in base.items() if not k.per_sample}
    for op in ops:
        for k in op.inputs:
            if k not in made and k not in env and k.per_sample:
                env[k] = np.repeat(base[k], C, axis=0)
    env[g_u] = S[lo:hi].transpose(0, 2, 1).reshape(rows, S.shape[1])
    return _ColumnEnv(run_ops(ops, env, rows), base, C, made), rows


#: Rows (samples × columns) per chunk of the column pass of :func:`diag_ggn`: small enough
#: for its temporaries to stay in cache, large enough for BLAS to be efficient.
CHUNK_ROWS = 512


def diag_ggn(model, theta, X, y, *, mc_samples: int | None = None, seed: int = 0):
    """The diagonal of the Gauss-Newton matrix ``model.gnvp`` multiplies by, length P.

    Exact by default (one backward pass per output column of the loss's Hessian square
    root, run as batches of about :data:`CHUNK_ROWS` sample-columns); ``mc_samples=M``: an
    unbiased Monte-Carlo estimate from ``M`` sampled targets per sample (cheaper when the
    output is wide).  Penalties add their curvature: ``2λ`` on L2-penalised components, 0
    for L1.

    Raises
    ------
    ShapeError, DataError
        θ, X or y of the wrong shape or not finite.
    AnalysisError
        ``model`` is not a model; ``mc_samples`` not a positive integer.
    """
    ev = evaluate_program(model, theta, X, y, steps=True)
    S, w = loss_hessian_sqrt(ev, mc_samples, seed)
    out = ev.penalty_curvature()
    terms = [(off, size, p.shape, ev.data_terms(ev.grad_var(p))) for p, off, size in ev.layout]
    step = max(1, CHUNK_ROWS // S.shape[2])
    for lo in range(0, ev.B, step):
        hi = min(ev.B, lo + step)
        env, rows = backprop_columns(ev, S, lo, hi)
        wr = w[lo:hi].reshape(rows) / ev.B
        for off, size, shape, ops in terms:
            out[off:off + size] += np.ravel(_squares(ev, env, rows, wr, shape, ops))
    return out


def _squares(ev: Evaluated, env, rows: int, wr, shape, terms) -> np.ndarray:
    """``Σ_r w_r (per-sample gradient_r)²`` of one parameter over the chunk's rows."""
    if len(terms) == 1 and isinstance(terms[0], P.OuterMean):
        op = terms[0]  # Σ_r w_r (u_r v_rᵀ)² = Σ_r w_r u_r² (v_r²)ᵀ, a BLAS product
        u2 = wr[:, None] * env[op.u] ** 2
        if op.v in env.computed:
            return u2.T @ (env[op.v] ** 2)
        # v is the same in a sample's C rows: Σ_s (Σ_c w u²) (v_s²)ᵀ
        v = env.base[op.v]
        return u2.reshape(v.shape[0], -1, u2.shape[1]).sum(axis=1).T @ (v ** 2)
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    g = sum(ev.per_sample(op, env, rows, shape).reshape(rows, size) for op in terms)
    return wr @ (np.asarray(g) ** 2)


def diag_hessian(model, theta, X, y, *, block: int = 64) -> np.ndarray:
    """The exact diagonal of the Hessian (σ″ terms and penalties included), length P.

    Computed honestly from ``model.hvp`` on blocks of ``block`` unit vectors: ``P``
    Hessian-vector products in all (each about the cost of two gradients), ``O(block·P)``
    memory — exact, but ``P``/``block`` kernel calls.  (BackPACK's DiagHessian instead
    backpropagates square roots of the σ″ residual terms too, whose number of columns
    grows with every layer's width; that route is not implemented here.)
    """
    theta = check_theta(model, theta)
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise AnalysisError(f"block = {block!r}; give a positive number of unit vectors per "
                            "Hessian-vector-product call")
    n = model.n_params
    dt = np.dtype(getattr(model, "dtype", np.float64))
    out = np.empty(n)
    for start in range(0, n, block):
        idx = np.arange(start, min(n, start + block))
        V = np.zeros((idx.size, n), dt)
        V[np.arange(idx.size), idx] = 1
        Hv = np.asarray(model.hvp(theta.astype(dt), V, X, y), float).reshape(idx.size, n)
        out[idx] = Hv[np.arange(idx.size), idx]
    return check_finite_matrix(out, "Hessian diagonal")
