r"""Self-attention ops on per-sample matrices (sequence values ``(T, d)``, held flat in
row-major ``(t, i)`` order).

==================  ==========================================================================
op                  meaning (per sample; ``op(M)`` is ``M`` or ``Mᵀ``)
==================  ==========================================================================
``AttnMatMul``      ``C = c · op(A) op(B)``, ``c = 1/√root``; either factor may be a parameter
                    (``Q = X W_qᵀ``) or per-sample (``S = Q Kᵀ/√d_k``, ``O = A V``); with
                    ``mean``, ``C = ⟨c · op(A) op(B)⟩`` is a batch mean (a weight gradient)
``AttnSoftmax``     ``A[t, :] = softmax(S[t, :])`` row by row (the row maximum subtracted
                    first); ``causal``: ``S[t, u] = −∞`` for ``u > t`` (so ``A[t, u] = 0``)
``AttnSoftmaxT``    ``R = A ⊙ (G − rowsum(G ⊙ A))``: the row softmax's Jacobian (symmetric)
                    applied to ``G``
``AttnRowDot``      ``r[t] = Σ_u U[t, u] V[t, u]``
``AttnRowScale``    ``R[t, u] = U[t, u] s[t]``
==================  ==========================================================================

Rules (cotangent ``G`` of the output; per-sample cotangents per sample, parameter cotangents
batch means; a dot a tangent)::

    AttnMatMul    C = c A B:     Ā = c G Bᵀ,  B̄ = c Aᵀ G (transposed to the stored layouts;
                                 a parameter's is a batch mean)        Ċ = c (Ȧ B + A Ḃ)
    AttnSoftmax   A = rsm(S):    S̄ = AttnSoftmaxT(A, G)               Ȧ = AttnSoftmaxT(A, Ṡ)
    AttnSoftmaxT  R = J_A G:     Ḡ = AttnSoftmaxT(A, H),
                                 Ā = H ⊙ G − H ⊙ rowdot(A, G) − G ⊙ rowdot(A, H)
                                 Ṙ = Ȧ ⊙ G − Ȧ ⊙ rowdot(A, G) − A ⊙ rowdot(Ȧ, G) + J_A Ġ
                                 (R is quadratic in A: J_Ȧ G is not its tangent)
    AttnRowDot    r = rowdot(U, V):  Ū = V ⊙ g,  V̄ = U ⊙ g            ṙ = rowdot(U̇, V) + …
    AttnRowScale  R = U ⊙ s:     Ū = H ⊙ s,  s̄ = rowdot(H, U)         Ṙ = U̇ ⊙ s + U ⊙ ṡ

(``X ⊙ s`` with ``s`` of length T scales row t by ``s[t]``.)  The causal mask needs no rule
of its own: masked entries of ``A`` are 0, so every rule above gives them 0.

Examples
--------
>>> import numpy as np
>>> x = np.arange(6.0).reshape(1, 6)                  # one sample, (T, d) = (3, 2)
>>> W = np.array([[1.0, 0.0]])                        # d_k = 1: keep the first feature
>>> matmul_numpy(x, W, MatDims(3, 2, 1, tb=True), 1)
array([[0., 2., 4.]])
>>> row_softmax_numpy(np.zeros((1, 4)), RowDims(2, 2, causal=True))
array([[1. , 0. , 0.5, 0.5]])
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops.ir import Arg, Op, Var, sym
from symnn.ops.registry import generic_text, op, op_class, register

__all__ = ["MatDims", "RowDims", "AttnMatMul", "AttnSoftmax", "AttnSoftmaxT", "AttnRowDot",
           "AttnRowScale", "matmul_numpy", "row_softmax_numpy"]


class _Shape:
    """Iterable like a tuple (``tuple(d)``), yet no tuple: ``Op.renamed`` maps tuples."""

    def __iter__(self):
        return iter(astuple(self))


@dataclass(frozen=True)
class MatDims(_Shape):
    """``C (m×n) = c · op(A) (m×k) · op(B) (k×n)``: ``ta``/``tb`` say that ``A``/``B`` are
    stored transposed (``A`` as ``k×m``, ``B`` as ``n×k``); ``c = 1/√root``; ``mean``: the
    batch mean of the per-sample products (a parameter-shaped result)."""

    m: int
    k: int
    n: int
    ta: bool = False
    tb: bool = False
    root: int = 1
    mean: bool = False

    @property
    def a_shape(self) -> tuple[int, int]:
        return (self.k, self.m) if self.ta else (self.m, self.k)

    @property
    def b_shape(self) -> tuple[int, int]:
        return (self.n, self.k) if self.tb else (self.k, self.n)

    def scale(self):
        """``1/√root`` as a SymPy number."""
        return sp.S.One / sp.sqrt(self.root)

    def __str__(self) -> str:
        t = "".join(("ᵀA" if self.ta else "", "ᵀB" if self.tb else ""))
        extra = f", 1/√{self.root}" if self.root != 1 else ""
        return f"{self.m}×{self.k}·{self.k}×{self.n}{t and ', ' + t}{extra}" + (
            ", mean" if self.mean else "")


@dataclass(frozen=True)
class RowDims(_Shape):
    """A per-sample ``(T, n)`` matrix read row by row; ``causal``: entries ``u > t`` masked."""

    T: int
    n: int
    causal: bool = False

    def allowed(self, t: int) -> int:
        """How many entries of row t take part (``t + 1`` under the causal mask)."""
        return min(self.n, t + 1) if self.causal else self.n

    def __str__(self) -> str:
        return f"{self.T}×{self.n}" + (", causal" if self.causal else "")


class _DimsOp:
    """Mixin: the op's fingerprint line includes its dimensions."""

    def fingerprint_line(self) -> str:
        return f"{self.out.name}{self.out.shape} = {generic_text(self)} [{tuple(self.d)}]"


def _t(v: Var, flag: bool, tex: bool = False) -> str:
    if not flag:
        return v.tex if tex else v.text
    return r"\left(%s\right)^{\top}" % v.tex if tex else f"({v.text})ᵀ"


# -- NumPy forms ----------------------------------------------------------------------------

def _mat(x, shape, per_sample: bool, B: int):
    x = np.asarray(x)
    return x.reshape((B,) + shape) if per_sample else x.reshape((1,) + shape)


def matmul_numpy(a, b, d: MatDims, B: int, a_sample: bool = True, b_sample: bool = False):
    """``c · op(A) op(B)`` for every sample: ``(B, m·n)`` (``(m, n)`` with ``d.mean``)."""
    A = _mat(a, d.a_shape, a_sample, B)
    Bm = _mat(b, d.b_shape, b_sample, B)
    if d.ta:
        A = A.swapaxes(1, 2)
    if d.tb:
        Bm = Bm.swapaxes(1, 2)
    r = (A @ Bm) * (1.0 / np.sqrt(d.root) if d.root != 1 else 1.0)
    if d.mean:
        return r.sum(axis=0) / B
    return np.broadcast_to(r, (B, d.m, d.n)).reshape(B, d.m * d.n)


def _mask(r: RowDims) -> np.ndarray:
    return np.triu(np.ones((r.T, r.n), dtype=bool), 1) if r.causal else np.zeros(
        (r.T, r.n), dtype=bool)


def row_softmax_numpy(z, r: RowDims):
    """The row softmax of ``(B, T·n)`` values (masked entries 0)."""
    z = np.asarray(z).reshape(-1, r.T, r.n)
    mask = _mask(r)
    zm = np.where(mask, -np.inf, z)
    e = np.exp(zm - zm.max(axis=2, keepdims=True))
    return (e / e.sum(axis=2, keepdims=True)).reshape(z.shape[0], -1)


# -- AttnMatMul -------------------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class AttnMatMul(_DimsOp, Op):
    """``out = c · op(a) op(b)`` per sample (``d``: :class:`MatDims`), or its batch mean."""

    out: Var
    a: Var
    b: Var
    d: MatDims

    @property
    def inputs(self):
        return (self.a, self.b)


def _mm(b, x: Var, y: Var, d: MatDims, like: Var | None = None) -> Var:
    """Emit ``AttnMatMul(x, y, d)`` into a fresh value (parameter-shaped ``like`` for a mean)."""
    out = b.temp(like.shape, "param") if d.mean else b.temp((d.m * d.n,))
    return b.emit(AttnMatMul(out, x, y, d))


def matmul_vjp(b, o: AttnMatMul, g, active):
    """C = c op(A) op(B):  Ā = c G op(B)ᵀ,  B̄ = c op(A)ᵀ G (a parameter's: batch means)."""
    d = o.d
    if d.mean and H.is_const(g):
        raise DerivationError(f"{o.out.name}: a constant cotangent of a batch-mean product "
                              "has no rule")
    g = H.materialise(b, g, o.out.size)
    out = []
    if o.a in active:
        mean = not o.a.per_sample
        if not d.ta:
            nd = MatDims(d.m, d.n, d.k, False, not d.tb, d.root, mean)
            out.append((o.a, _mm(b, g, o.b, nd, o.a)))
        else:
            nd = MatDims(d.k, d.n, d.m, d.tb, True, d.root, mean)
            out.append((o.a, _mm(b, o.b, g, nd, o.a)))
    if o.b in active:
        mean = not o.b.per_sample
        if not d.tb:
            nd = MatDims(d.k, d.m, d.n, not d.ta, False, d.root, mean)
            out.append((o.b, _mm(b, o.a, g, nd, o.b)))
        else:
            nd = MatDims(d.n, d.m, d.k, True, d.ta, d.root, mean)
            out.append((o.b, _mm(b, g, o.a, nd, o.b)))
    return out


def matmul_jvp(b, o: AttnMatMul, t):
    ad, bd = t.get(o.a), t.get(o.b)
    terms = []
    if ad is not None:
        terms.append(_mm(b, ad, o.b, o.d, o.out))
    if bd is not None:
        terms.append(_mm(b, o.a, bd, o.d, o.out))
    return H.tangent_sum(b, o.out, terms)


def _sym_mat(env, v: Var, shape, s: int):
    x = np.asarray(env[v], dtype=object)
    return x[s].reshape(shape) if v.per_sample else x.reshape(shape)


def matmul_sympy(o: AttnMatMul, env, B):
    d = o.d
    c = d.scale()
    prods = []
    for s in range(B):
        A = _sym_mat(env, o.a, d.a_shape, s)
        Bm = _sym_mat(env, o.b, d.b_shape, s)
        A = A.T if d.ta else A
        Bm = Bm.T if d.tb else Bm
        prods.append([[sp.Add(*[A[i, q] * Bm[q, j] for q in range(d.k)]) for j in range(d.n)]
                      for i in range(d.m)])
    if d.mean:
        r = np.empty((d.m, d.n), dtype=object)
        for i in range(d.m):
            for j in range(d.n):
                r[i, j] = c * sp.Add(*[p[i][j] for p in prods]) / B
        return r.reshape(o.out.shape)
    r = np.empty((B, d.m * d.n), dtype=object)
    for s, p in enumerate(prods):
        r[s] = [c * v for row in p for v in row]
    return r


def _scale_text(d: MatDims, tex: bool) -> str:
    if d.root == 1:
        return ""
    return r"\frac{1}{\sqrt{%d}}\, " % d.root if tex else f"(1/√{d.root}) "


def matmul_equation(o: AttnMatMul, ctx):
    d = o.d
    t = f"{_scale_text(d, False)}{_t(o.a, d.ta)} {_t(o.b, d.tb)}"
    x = f"{_scale_text(d, True)}{_t(o.a, d.ta, True)} {_t(o.b, d.tb, True)}"
    if d.mean:
        t = f"⟨{t}⟩"
        x = r"\frac{1}{B}\sum_{s=1}^{B} %s" % x
    return ctx.equation(o, t, x)


register(
    AttnMatMul,
    vjp=matmul_vjp,
    jvp=matmul_jvp,
    numpy=lambda o, env, B: matmul_numpy(env[o.a], env[o.b], o.d, B, o.a.per_sample,
                                         o.b.per_sample).reshape(
        o.out.shape if o.d.mean else (B, o.out.size)),
    sympy=matmul_sympy,
    equation=matmul_equation,
    text=lambda o: f"matmul({o.a.name}{'ᵀ' if o.d.ta else ''}, {o.b.name}"
    f"{'ᵀ' if o.d.tb else ''}, {o.d})",
    describe=lambda o: f"{o.out.name} = {o.a.name}{'ᵀ' if o.d.ta else ''} "
    f"{o.b.name}{'ᵀ' if o.d.tb else ''} ({o.d})",
)


# -- AttnSoftmax ------------------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class AttnSoftmax(_DimsOp, Op):
    """``out[t, :] = softmax(z[t, :])`` row by row (the masked entries ``u > t`` are 0 when
    ``d.causal``), computed with the row maximum subtracted first."""

    out: Var
    z: Var
    d: RowDims

    @property
    def inputs(self):
        return (self.z,)


def softmax_vjp(b, o: AttnSoftmax, g, active):
    """A = rowsoftmax(S):  S̄ = A ⊙ (G − rowsum(G ⊙ A))."""
    if o.z not in active or H.is_const(g):
        return []  # a constant cotangent is orthogonal to each row's tangent space
    return [(o.z, b.emit(AttnSoftmaxT(b.temp(o.z.shape), o.out, g, o.d)))]


def softmax_jvp(b, o: AttnSoftmax, t):
    zd = t.get(o.z)
    if zd is None:
        return None
    return b.emit(AttnSoftmaxT(H.dot_var(b, o.out), o.out, zd, o.d))


def softmax_sympy(o: AttnSoftmax, env, B):
    z, d = env[o.z], o.d
    r = np.empty(z.shape, dtype=object)
    for s in range(B):
        for t in range(d.T):
            n = d.allowed(t)
            e = [sp.exp(z[s, t * d.n + u]) for u in range(n)]
            tot = sp.Add(*e)
            for u in range(d.n):
                r[s, t * d.n + u] = e[u] / tot if u < n else sp.S.Zero
    return r


def _mask_text(o, tex: bool) -> str:
    if not o.d.causal:
        return ""
    return r" + M" if tex else " + M"


def softmax_equation(o: AttnSoftmax, ctx):
    t = f"softmax_row({o.z.text}{_mask_text(o, False)})"
    x = r"\operatorname{softmax}_{\mathrm{row}}\left(%s%s\right)" % (o.z.tex,
                                                                   _mask_text(o, True))
    if o.d.causal:
        t += "   (M[t,u] = −∞ for u > t: causal mask)"
        x += r" \quad (M_{t,u} = -\infty \text{ for } u > t)"
    return ctx.equation(o, t, x)


register(
    AttnSoftmax,
    vjp=softmax_vjp,
    jvp=softmax_jvp,
    numpy=lambda o, env, B: row_softmax_numpy(env[o.z], o.d),
    sympy=softmax_sympy,
    equation=softmax_equation,
    text=lambda o: f"softmax_row({o.z.name}, {o.d})",
    describe=lambda o: f"{o.out.name} = row softmax of {o.z.name} ({o.d})",
)


# -- AttnSoftmaxT ------------------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class AttnSoftmaxT(_DimsOp, Op):
    """``out = p ⊙ (g − rowsum(g ⊙ p))``: the row softmax's Jacobian at ``p`` (symmetric,
    so also its transpose) applied to ``g``."""

    out: Var
    p: Var
    g: Var
    d: RowDims

    @property
    def inputs(self):
        return (self.p, self.g)


def _rowdot(b, u: Var, v: Var, d: RowDims) -> Var:
    return b.emit(AttnRowDot(b.temp((d.T,)), u, v, d))


def _rowscale(b, u: Var, s: Var, d: RowDims) -> Var:
    return b.emit(AttnRowScale(b.temp(u.shape), u, s, d))


def softmaxt_vjp(b, o: AttnSoftmaxT, h, active):
    """R = p ⊙ (g − rowdot(p, g)):  ḡ = p ⊙ (h − rowdot(p, h));
    p̄ = h ⊙ g − h ⊙ rowdot(p, g) − g ⊙ rowdot(p, h)."""
    h = H.materialise(b, h, o.out.size)
    out = []
    if o.g in active:
        out.append((o.g, b.emit(AttnSoftmaxT(b.temp(o.g.shape), o.p, h, o.d))))
    if o.p in active:
        out.append((o.p, _in_p(b, o, h, _rowscale(b, o.g, _rowdot(b, o.p, h, o.d), o.d))))
    return out


def _in_p(b, o: AttnSoftmaxT, x: Var, third: Var) -> Var:
    """``x ⊙ g − x ⊙ rowdot(p, g) − third``: with ``third = g ⊙ rowdot(p, H)`` (``x = H``)
    the reverse rule in ``p``, with ``third = p ⊙ rowdot(ṗ, g)`` (``x = ṗ``) the tangent."""
    t1 = _rowscale(b, x, _rowdot(b, o.p, o.g, o.d), o.d)
    xs, gs, s1, s2 = sym(x), sym(o.g), sym(t1), sym(third)
    args = (Arg(xs, x), Arg(gs, o.g), Arg(s1, t1), Arg(s2, third))
    return b.emit(op.Map(b.temp(o.p.shape), (xs * gs - s1 - s2,), args))


def softmaxt_jvp(b, o: AttnSoftmaxT, t):
    """Ṙ = ṗ ⊙ g − ṗ ⊙ rowdot(p, g) − p ⊙ rowdot(ṗ, g) + AttnSoftmaxT(p, ġ) (``R`` is
    quadratic in ``p``, linear in ``g``)."""
    pd, gd = t.get(o.p), t.get(o.g)
    terms = []
    if pd is not None:
        terms.append(_in_p(b, o, pd, _rowscale(b, o.p, _rowdot(b, pd, o.g, o.d), o.d)))
    if gd is not None:
        terms.append(b.emit(AttnSoftmaxT(b.temp(o.out.shape), o.p, gd, o.d)))
    return H.tangent_sum(b, o.out, terms)


def softmaxt_numpy(o: AttnSoftmaxT, env, B):
    d = o.d
    p = np.asarray(env[o.p]).reshape(B, d.T, d.n)
    g = np.asarray(env[o.g]).reshape(B, d.T, d.n)
    # round 7: on a softmax row (Σ p = 1), centred on g at the entry with p > 1/2 (0 if
    # none), as the kernels' _attn_rows: g_k − rowsum(g ⊙ p) cancels where p saturates
    simplex = np.abs(p.sum(axis=2, keepdims=True) - 1.0) <= 1e-12
    w = (g * ((p > 0.5) & simplex)).sum(axis=2, keepdims=True)
    gc = g - w
    return (p * (gc - (p * gc).sum(axis=2, keepdims=True))).reshape(B, -1)


def softmaxt_sympy(o: AttnSoftmaxT, env, B):
    d = o.d
    p, g = env[o.p], env[o.g]
    r = np.empty((B, d.T * d.n), dtype=object)
    for s in range(B):
        for t in range(d.T):
            row = range(t * d.n, (t + 1) * d.n)
            tot = sp.Add(*[p[s, j] * g[s, j] for j in row])
            for j in row:
                r[s, j] = p[s, j] * (g[s, j] - tot)
    return r


register(
    AttnSoftmaxT,
    vjp=softmaxt_vjp,
    jvp=softmaxt_jvp,
    numpy=softmaxt_numpy,
    sympy=softmaxt_sympy,
    equation=lambda o, ctx: ctx.equation(
        o, f"{o.p.text} ⊙ ({o.g.text} − rowsum({o.g.text} ⊙ {o.p.text}))",
        r"%s \odot \left(%s - \operatorname{rowsum}\left(%s \odot %s\right)\right)"
        % (o.p.tex, o.g.tex, o.g.tex, o.p.tex)),
    text=lambda o: f"{o.p.name} ⊙ ({o.g.name} − rowsum({o.g.name} ⊙ {o.p.name}))",
    describe=lambda o: f"{o.out.name} = row softmax Jacobian at {o.p.name} times {o.g.name} "
    f"({o.d})",
)


# -- AttnRowDot / AttnRowScale -------------------------------------------------------------------

@op_class
@dataclass(frozen=True)
class AttnRowDot(_DimsOp, Op):
    """``out[t] = Σ_u x[t, u] y[t, u]`` per sample (``T`` values)."""

    out: Var
    u: Var
    v: Var
    d: RowDims

    @property
    def inputs(self):
        return (self.u, self.v)


def rowdot_vjp(b, o: AttnRowDot, g, active):
    """r = rowdot(U, V):  Ū = V ⊙ g,  V̄ = U ⊙ g (row t scaled by g[t])."""
    g = H.materialise(b, g, o.out.size)
    out = []
    if o.u in active:
        out.append((o.u, _rowscale(b, o.v, g, o.d)))
    if o.v in active:
        out.append((o.v, _rowscale(b, o.u, g, o.d)))
    return out


def rowdot_jvp(b, o: AttnRowDot, t):
    ud, vd = t.get(o.u), t.get(o.v)
    terms = []
    if ud is not None:
        terms.append(_rowdot(b, ud, o.v, o.d))
    if vd is not None:
        terms.append(_rowdot(b, o.u, vd, o.d))
    return H.tangent_sum(b, o.out, terms)


def rowdot_sympy(o: AttnRowDot, env, B):
    d = o.d
    u, v = env[o.u], env[o.v]
    r = np.empty((B, d.T), dtype=object)
    for s in range(B):
        for t in range(d.T):
            r[s, t] = sp.Add(*[u[s, j] * v[s, j] for j in range(t * d.n, (t + 1) * d.n)])
    return r


register(
    AttnRowDot,
    vjp=rowdot_vjp,
    jvp=rowdot_jvp,
    numpy=lambda o, env, B: (np.asarray(env[o.u]).reshape(B, o.d.T, o.d.n)
                             * np.asarray(env[o.v]).reshape(B, o.d.T, o.d.n)).sum(axis=2),
    sympy=rowdot_sympy,
    equation=lambda o, ctx: ctx.equation(
        o, f"rowsum({o.u.text} ⊙ {o.v.text})",
        r"\operatorname{rowsum}\left(%s \odot %s\right)" % (o.u.tex, o.v.tex)),
    text=lambda o: f"rowsum({o.u.name} ⊙ {o.v.name})",
    describe=lambda o: f"{o.out.name} = row sums of {o.u.name} ⊙ {o.v.name} ({o.d})",
)


@op_class
@dataclass(frozen=True)
class AttnRowScale(_DimsOp, Op):
    """``out[t, u] = x[t, u] s[t]`` per sample (row t scaled by ``s[t]``)."""

    out: Var
    u: Var
    s: Var
    d: RowDims

    @property
    def inputs(self):
        return (self.u, self.s)


def rowscale_vjp(b, o: AttnRowScale, h, active):
    """R = diag(s) U:  Ū = diag(s) H,  s̄ = rowdot(H, U)."""
    h = H.materialise(b, h, o.out.size)
    out = []
    if o.u in active:
        out.append((o.u, _rowscale(b, h, o.s, o.d)))
    if o.s in active:
        out.append((o.s, _rowdot(b, h, o.u, o.d)))
    return out


def rowscale_jvp(b, o: AttnRowScale, t):
    ud, sd = t.get(o.u), t.get(o.s)
    terms = []
    if ud is not None:
        terms.append(_rowscale(b, ud, o.s, o.d))
    if sd is not None:
        terms.append(_rowscale(b, o.u, sd, o.d))
    return H.tangent_sum(b, o.out, terms)


def rowscale_sympy(o: AttnRowScale, env, B):
    d = o.d
    u, s_ = env[o.u], env[o.s]
    r = np.empty((B, d.T * d.n), dtype=object)
    for s in range(B):
        for j in range(d.T * d.n):
            r[s, j] = u[s, j] * s_[s, j // d.n]
    return r


register(
    AttnRowScale,
    vjp=rowscale_vjp,
    jvp=rowscale_jvp,
    numpy=lambda o, env, B: (np.asarray(env[o.u]).reshape(B, o.d.T, o.d.n)
                             * np.asarray(env[o.s]).reshape(B, o.d.T, 1)).reshape(B, -1),
    sympy=rowscale_sympy,
    equation=lambda o, ctx: ctx.equation(
        o, f"diag({o.s.text}) {o.u.text}",
        r"\operatorname{diag}\left(%s\right) %s" % (o.s.tex, o.u.tex)),
    text=lambda o: f"diag({o.s.name})·{o.u.name}",
    describe=lambda o: f"{o.out.name} = rows of {o.u.name} scaled by {o.s.name} ({o.d})",
)
