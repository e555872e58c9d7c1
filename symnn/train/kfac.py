"""K-FAC: natural-gradient steps preconditioned by Kronecker-factored Gauss-Newton blocks.

Each Dense layer ``z = W a + b`` has, in the exact Gauss-Newton matrix, a block over
``W̄ = [W b]`` that K-FAC approximates by ``G ⊗ A`` (:func:`symnn.analysis.kfac_factors`:
``A = ⟨ā āᵀ⟩`` with ``ā = [a; 1]``, ``G = ⟨Σ_c g_c g_cᵀ⟩``, exact columns of the loss
Hessian's square root for ``kind="kflr"``, sampled targets for ``kind="kfac"``).  One
iteration, on the full training set (Martens & Grosse 2015):

1. the factors' moving averages ``Ā ← ε Ā + (1 − ε) A``, ``Ḡ ← ε Ḡ + (1 − ε) G``
   (ε = ``min(ema, 1 − 1/k)``: the first estimate is taken whole);
2. every ``inverse_every`` iterations the eigendecompositions of ``Ā`` and ``Ḡ`` (the damping
   is applied to the eigenvalues at every step, so a new λ takes effect at once);
3. the Tikhonov damping ``γ = √(λ + η)`` (η the weight decay) split between the factors
   with ``π = √((tr Ā / dim Ā) / (tr Ḡ / dim Ḡ))`` (§6.3):
   ``Δ W̄ = −(Ḡ + γ/π I)⁻¹ ∇W̄ (Ā + π γ I)⁻¹``;
4. the velocity ``v ← α (a Δ + m v)``, ``θ ← θ + v``, with ``(a, m)`` minimising the damped
   quadratic model ``gᵀu + ½ uᵀ(G + (λ + η)I)u`` of ``u = a Δ + m v`` through exact
   Gauss-Newton products (§6.4, §7; ``m = 0`` without momentum) — or, with
   ``adaptive=False``, ``v ← μ v + α Δ``;
5. every ``adapt_every`` iterations the Levenberg–Marquardt rule (§6.5) with the exact
   Gauss-Newton product (``model.gnvp``): ``ρ = (f(θ + v) − f(θ)) / (gᵀv + ½ vᵀ(G + ηI)v)``,
   ``λ ← ω λ`` if ρ < ¼, ``λ ← λ / ω`` if ρ > ¾.

Every parameter must belong to a Dense, Conv1D, RNN or GRU layer (a convolution's factors:
KFC, ``conv="expand"``; a recurrent weight's: the same over its steps,
:mod:`symnn.analysis.kfac`); other models (a custom ``Model``, a layer whose
gradient is not an outer product) are refused when ``fit`` starts, naming the alternatives.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.train import fit, KFAC
>>> model = symnn.mlp([1, 6, 1], activation="tanh").compile()
>>> X = np.linspace(-2, 2, 40).reshape(-1, 1); y = np.sin(X[:, 0])
>>> res = fit(model, X, y, KFAC(), epochs=40, progress=False)
>>> bool(res.history.loss[-1] < 1e-2)
True
"""

from __future__ import annotations

import math
import time

import numpy as np

from symnn.errors import AnalysisError, DeclarationError
from symnn.printing.equations import Equation, Equations
from symnn.train.schedules import _positive
from symnn.train.second_order import SecondOrder
from symnn.train.session import Session, array_norms

__all__ = ["KFAC", "pi_damping", "adapt_damping"]


def pi_damping(A: np.ndarray, G: np.ndarray, gamma: float) -> tuple[float, float, float]:
    """The π-adjusted split of the damping ``γ``: ``(π, γ_A, γ_G)`` with ``γ_A = π γ`` added
    to ``A`` and ``γ_G = γ/π`` to ``G`` (Martens & Grosse 2015, §6.3: the factor with the
    larger mean eigenvalue gets the larger share):
    ``π = √((tr A / dim A) / (tr G / dim G))``, 1 when either trace is not positive.

    Examples
    --------
    >>> pi_damping(np.diag([4.0, 4.0]), np.diag([1.0]), 0.5)
    (2.0, 1.0, 0.25)
    """
    ta = float(np.trace(A)) / A.shape[0]
    tg = float(np.trace(G)) / G.shape[0]
    pi = math.sqrt(ta / tg) if ta > 0 and tg > 0 and math.isfinite(ta / tg) else 1.0
    return pi, gamma * pi, gamma / pi


def adapt_damping(damping: float, rho: float, omega: float, lo: float = 0.0,
                  hi: float = math.inf) -> float:
    """The Levenberg–Marquardt rule: ``λ·ω`` if ``ρ < ¼`` (or ρ is not a number), ``λ/ω``
    if ``ρ > ¾``, else ``λ``; clipped to ``[lo, hi]``.

    Examples
    --------
    >>> adapt_damping(1.0, 0.1, 2.0), adapt_damping(1.0, 0.9, 2.0), adapt_damping(1.0, 0.5, 2.0)
    (2.0, 0.5, 1.0)
    """
    if not rho >= 0.25:  # NaN too
        damping *= omega
    elif rho > 0.75:
        damping /= omega
    return min(max(damping, lo), hi)


def _int(name: str, value, where: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DeclarationError(f"{where}: {name} must be an integer ≥ 1"
                               f"{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def _fraction(name: str, value, where: str) -> float:
    v = _positive(name, value, where, allow_zero=True)
    if v >= 1:
        raise DeclarationError(f"{where}: {name} must be in [0, 1), got {value!r}")
    return v


class _Layer:
    """One layer's averaged factors, their eigendecompositions and flat indices."""

    def __init__(self, f) -> None:
        self.name = f.weight
        self.index = f.index
        self.shape = (f.G.shape[0], f.A.shape[0])
        self.A, self.G = f.A.copy(), f.G.copy()
        self.eig = None

    def average(self, f, eps: float) -> None:
        self.A = eps * self.A + (1.0 - eps) * f.A
        self.G = eps * self.G + (1.0 - eps) * f.G

    def refresh(self) -> None:
        eA, QA = np.linalg.eigh(0.5 * (self.A + self.A.T))
        eG, QG = np.linalg.eigh(0.5 * (self.G + self.G.T))
        # the factors are positive semi-definite: rounding below 0 is 0
        self.eig = (np.maximum(eA, 0.0), QA, np.maximum(eG, 0.0), QG)

    def precondition(self, g: np.ndarray, gamma: float, split: bool = True) -> np.ndarray:
        """``(Ḡ + γ/π I)⁻¹ V (Ā + πγI)⁻¹`` of this layer's gradient block ``V``; with
        ``split=False`` ``(Ḡ ⊗ Ā + γ²I)⁻¹ vec V``, both in the factors' eigenbases."""
        eA, QA, eG, QG = self.eig
        V = QG.T @ g[self.index].reshape(self.shape) @ QA
        if split:
            _, ga, gg = pi_damping(np.diag(eA), np.diag(eG), gamma)
            V /= np.outer(eG + gg, eA + ga)
        else:
            V /= np.outer(eG, eA) + gamma * gamma
        return (QG @ V @ QA.T).ravel()


class KFAC(SecondOrder):
    """Natural-gradient descent with Kronecker-factored curvature (K-FAC / KFLR).

    Parameters
    ----------
    lr : float
        α, the step's multiplier (1: the damped natural-gradient step, or the quadratic
        model's step with ``adaptive``).
    damping : float
        The initial Tikhonov damping λ > 0.
    kind : {"kflr", "kfac"}
        Exact loss-Hessian columns (``"kflr"``) or ``mc_samples`` sampled targets per
        sample (``"kfac"``) for ``G``.
    mc_samples : int, optional
        Sampled targets for ``kind="kfac"`` (default 1).
    ema : float in [0, 1)
        ε of the factors' moving averages (0: the current estimate alone).
    inverse_every : int
        Iterations between eigendecompositions of the averaged factors.
    momentum : float in [0, 1)
        μ of ``v ← μ v + α Δ`` (``adaptive=False``); with ``adaptive`` any μ > 0 adds the
        previous velocity to the quadratic model, which then picks its coefficient.
    adapt_every : int or None
        Iterations between Levenberg–Marquardt adaptations of λ (None: λ fixed).
    omega : float, optional
        ω > 1 of the adaptation (default ``(20/19)^adapt_every``).
    min_damping, max_damping : float
        Bounds of the adapted λ.
    adaptive : bool
        Choose the step's scale α (and μ, with momentum) each iteration by minimising the
        damped quadratic model with exact Gauss-Newton products (M&G §6.4, §7); ``lr``
        then multiplies that step.  False: ``v ← μ v + lr·Δ``.
    split_damping : bool
        True: the π-adjusted split ``(Ḡ + γ/πI) ⊗ (Ā + πγI)``; False: the damping added to
        the Kronecker product itself, ``(Ḡ ⊗ Ā + γ²I)⁻¹``, applied in the factors'
        eigenbases (exact for the approximation, as cheap once the eigenvectors are known).
    seed : int
        Seeds the sampled targets of ``kind="kfac"`` and the factor mini-batches
        (iteration k uses ``seed + k``).
    factor_batch : int or None
        None: the factors of every iteration from the whole training set.  An integer
        ``b``: from ``b`` training rows drawn at random without replacement each iteration
        (the moving averages then average over mini-batches; the gradient, the quadratic
        model and ρ stay on the whole set).  ``b`` ≥ the number of rows means all of them.
    weight_decay, decay, tol, max_iter
        As :class:`~symnn.train.second_order.SecondOrder`; the weight decay η also damps
        (``γ = √(λ + η)``).

    Examples
    --------
    >>> print(KFAC().equations().line("delta"))
    Δₖ = −(Ḡₗ + γ/πₗ I)⁻¹ ∇W̄ₗ (Āₗ + πₗγ I)⁻¹
    """

    name = "kfac"
    products = ("gnvp",)

    def __init__(self, lr: float = 1.0, *, damping: float = 1e-3, kind: str = "kflr",
                 mc_samples: int | None = None, ema: float = 0.95, inverse_every: int = 5,
                 momentum: float = 0.0, adapt_every: int | None = 5,
                 omega: float | None = None, min_damping: float = 1e-12,
                 max_damping: float = 1e12, adaptive: bool = True,
                 split_damping: bool = True, seed: int = 0,
                 factor_batch: int | None = None, weight_decay: float = 0.0,
                 decay: str = "all", tol: float = 1e-10, max_iter: int | None = None) -> None:
        super().__init__(weight_decay=weight_decay, decay=decay, tol=tol, max_iter=max_iter)
        where = "KFAC"
        self.lr = _positive("lr", lr, where)
        self.damping = _positive("damping", damping, where)
        if kind not in ("kflr", "kfac"):
            raise DeclarationError(f"KFAC: kind must be 'kflr' (exact loss-Hessian columns) "
                                   f"or 'kfac' (sampled targets), got {kind!r}")
        self.kind = kind
        if mc_samples is not None and kind != "kfac":
            raise DeclarationError("KFAC: mc_samples is for kind='kfac' (sampled targets)")
        self.mc_samples = _int("mc_samples", mc_samples, where, allow_none=True)
        self.ema = _fraction("ema", ema, where)
        self.inverse_every = _int("inverse_every", inverse_every, where)
        self.momentum = _fraction("momentum", momentum, where)
        self.adapt_every = _int("adapt_every", adapt_every, where, allow_none=True)
        if omega is None:
            omega = (20.0 / 19.0) ** (self.adapt_every or 1)
        self.omega = _positive("omega", omega, where)
        if self.omega <= 1:
            raise DeclarationError(f"KFAC: omega must be > 1, got {omega!r}")
        self.min_damping = _positive("min_damping", min_damping, where, allow_zero=True)
        self.max_damping = _positive("max_damping", max_damping, where)
        if not self.min_damping <= self.damping <= self.max_damping:
            raise DeclarationError(
                f"KFAC: damping = {damping!r} must lie in [min_damping, max_damping] = "
                f"[{min_damping!r}, {max_damping!r}]")
        if not isinstance(adaptive, bool):
            raise DeclarationError(f"KFAC: adaptive must be True or False, got {adaptive!r}")
        self.adaptive = adaptive
        if not isinstance(split_damping, bool):
            raise DeclarationError(f"KFAC: split_damping must be True or False, got "
                                   f"{split_damping!r}")
        self.split_damping = split_damping
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise DeclarationError(f"KFAC: seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.factor_batch = _int("factor_batch", factor_batch, where, allow_none=True)

    # -- the curvature ---------------------------------------------------------------------
    def factors(self, s: Session, theta: np.ndarray, k: int) -> dict:
        """``kfac_factors`` at ``theta`` (iteration ``k``) of the training set, or of
        ``factor_batch`` rows of it drawn with the seed ``seed + k``."""
        from symnn.analysis import kfac_factors

        X, Y = s.X, s.Y
        n = X.shape[0]
        if self.factor_batch is not None and self.factor_batch < n:
            rows = np.random.default_rng(self.seed + k).choice(n, self.factor_batch,
                                                               replace=False)
            X, Y = X[np.sort(rows)], Y[np.sort(rows)]
        if self.kind == "kflr":
            return kfac_factors(s.model, theta, X, Y, "kflr")
        return kfac_factors(s.model, theta, X, Y, "kfac", mc_samples=self.mc_samples,
                            seed=self.seed + k)

    def layers(self, s: Session, theta: np.ndarray) -> dict:
        """The layers' factors at ``theta``; refuse a model K-FAC does not cover."""
        model = s.model
        alternative = ("use NewtonCG() or LevenbergMarquardt() (exact curvature products, any "
                       "model) or Adam()")
        try:  # walk 7: data that overflows is refused below by its loss, not by NumPy
            with np.errstate(over="ignore", invalid="ignore"):
                factors = self.factors(s, theta, 0)
        except AnalysisError as err:
            raise DeclarationError(f"KFAC cannot precondition {type(model).__name__}: {err}; "
                                   f"{alternative}") from err
        covered = np.zeros(model.n_params, bool)
        for f in factors.values():
            covered[f.index] = True
        if not covered.all():
            missing = [n for a, n in enumerate(s.names)
                       if not covered[s.bounds[a]:s.bounds[a + 1]].all()]
            raise DeclarationError(
                f"KFAC preconditions Dense, Conv1D, RNN and GRU layers only; the parameters "
                f"{', '.join(missing)} are not in one; {alternative}")
        return {name: _Layer(f) for name, f in factors.items()}

    def step(self, layers: dict, g: np.ndarray, damping: float) -> np.ndarray:
        """``Δ = −P⁻¹ g``: every layer's block preconditioned by its damped factors."""
        gamma = math.sqrt(damping + self.weight_decay)
        delta = np.zeros_like(g)
        for layer in layers.values():
            delta[layer.index] = -layer.precondition(g, gamma, self.split_damping)
        return delta

    @staticmethod
    def _gnvp(s: Session, theta, V) -> np.ndarray:
        dt = np.dtype(s.model.dtype)
        V = np.atleast_2d(V)
        out = s.model.gnvp(theta.astype(dt), V.astype(dt), s.X, s.Y)
        return np.asarray(out, np.float64).reshape(V.shape)

    def combine(self, s: Session, theta, delta, v, g, lam, damping) -> np.ndarray:
        """The next velocity: ``μ v + α Δ``; with ``adaptive`` α and μ minimise the damped
        quadratic model ``gᵀu + ½ uᵀ(G + (λ + η)I)u`` of ``u = α Δ + μ v`` (M&G §7)."""
        if not self.adaptive:
            return self.momentum * v + self.lr * delta
        use_v = self.momentum > 0 and bool(np.any(v))
        D = np.stack([delta, v]) if use_v else delta[None, :]
        CD = self._gnvp(s, theta, D) + (lam + damping) * D
        M = D @ CD.T
        b = D @ g
        try:
            coef = -np.linalg.solve(M, b) if np.all(np.isfinite(M)) else None
        except np.linalg.LinAlgError:
            coef = None
        if coef is None or not np.all(np.isfinite(coef)):
            return self.momentum * v + self.lr * delta
        return self.lr * (coef @ D)

    def reduction_ratio(self, s: Session, theta, v, L, L_new, g, lam) -> float:
        """ρ = actual / predicted change of f, the model ``gᵀv + ½ vᵀ(G + ηI)v`` with the
        exact Gauss-Newton product."""
        Gv = self._gnvp(s, theta, v)[0]
        predicted = float(g @ v) + 0.5 * float(v @ (Gv + lam * v))
        if not predicted < 0 or not math.isfinite(L_new):
            return -math.inf
        return (L_new - L) / predicted

    # -- the loop ----------------------------------------------------------------------------
    def run(self, s: Session, theta: np.ndarray):
        model = s.model
        f, lam = self._objective(s)
        dt = np.dtype(model.dtype)
        th = np.asarray(theta, np.float64).copy()
        layers = self.layers(s, th)
        s.start(th.astype(dt), second_order=True)
        L, g = f(th)
        if not math.isfinite(L):
            raise s.diverged(0, 0, th.astype(dt), "loss", L)
        damping = self.damping
        v = np.zeros_like(th)
        for it in range(1, self._iterations(s) + 1):
            t0 = time.perf_counter()
            norms = array_norms(g, s.names, s.bounds)
            gmax = float(np.max(np.abs(g))) if g.size else 0.0
            if gmax <= self.tol:
                s.stop("converged", f"KFAC converged after {it - 1} iterations: the largest "
                                    f"gradient component {gmax:.3g} ≤ tol = {self.tol:g}")
                break
            if it > 1:
                eps = min(self.ema, 1.0 - 1.0 / it)
                for name, fk in self.factors(s, th, it - 1).items():
                    layers[name].average(fk, eps)
            if (it - 1) % self.inverse_every == 0:
                for layer in layers.values():
                    layer.refresh()
            v = self.combine(s, th, self.step(layers, g, damping), v, g, lam, damping)
            L_new, g_new = f(th + v)
            if self.adapt_every and it % self.adapt_every == 0:
                rho = self.reduction_ratio(s, th, v, L, L_new, g, lam)
                damping = adapt_damping(damping, rho, self.omega, self.min_damping,
                                        self.max_damping)
            old = th
            th = th + v
            L, g = L_new, g_new
            if s.end_epoch(it, th.astype(dt), L, norms, 1, t0, fallback=old.astype(dt),
                           second_order=True, damping=damping):
                break
        return s.result(th.astype(dt))

    # -- printing ----------------------------------------------------------------------------
    def equations(self) -> Equations:
        """The update: factor averages, π-adjusted damping, the step, the λ rule."""
        def eq(name, lt, rt, lx, rx):
            return Equation(name, lt, [rt], lx, [rx])

        curvature = [
            eq("A", "Āₗ", "ε·Āₗ + (1 − ε)·⟨ā āᵀ⟩", r"\bar A_l",
               r"\varepsilon \bar A_l + (1 - \varepsilon) \langle \bar a \bar a^\top \rangle"),
            eq("G", "Ḡₗ", "ε·Ḡₗ + (1 − ε)·⟨Σ_c g_c g_cᵀ⟩", r"\bar G_l",
               r"\varepsilon \bar G_l + (1 - \varepsilon) "
               r"\langle \textstyle\sum_c g_c g_c^\top \rangle"),
            eq("pi", "πₗ", "√((tr Āₗ / dim Āₗ)/(tr Ḡₗ / dim Ḡₗ))", r"\pi_l",
               r"\sqrt{\frac{\operatorname{tr} \bar A_l / \dim \bar A_l}"
               r"{\operatorname{tr} \bar G_l / \dim \bar G_l}}"),
            eq("gamma", "γ", "√(λ + η)", r"\gamma", r"\sqrt{\lambda + \eta}"),
        ]
        if not self.split_damping:
            curvature = [e for e in curvature if e.name != "pi"]
        if self.split_damping:
            delta = eq("delta", "Δₖ", "−(Ḡₗ + γ/πₗ I)⁻¹ ∇W̄ₗ (Āₗ + πₗγ I)⁻¹", r"\Delta_k",
                       r"-\left(\bar G_l + \tfrac{\gamma}{\pi_l} I\right)^{-1} "
                       r"\nabla_{\bar W_l} f \left(\bar A_l + \pi_l \gamma I\right)^{-1}")
        else:
            delta = eq("delta", "vec Δₖ", "−(Ḡₗ ⊗ Āₗ + γ² I)⁻¹ vec ∇W̄ₗ", r"\operatorname{vec}"
                       r" \Delta_k", r"-\left(\bar G_l \otimes \bar A_l + \gamma^2 I"
                       r"\right)^{-1} \operatorname{vec} \nabla_{\bar W_l} f")
        step = [delta]
        if self.adaptive:
            step += [
                eq("v", "vₖ", "α·(aₖ·Δₖ + mₖ·vₖ₋₁)", "v_k",
                   r"\alpha \left(a_k \Delta_k + m_k v_{k-1}\right)"),
                eq("am", "(aₖ, mₖ)",
                   "argmin_{a, m} gᵀu + ½·uᵀ(G + (λ + η)I)u,  u = a·Δₖ + m·vₖ₋₁",
                   "(a_k, m_k)",
                   r"\operatorname*{arg\,min}_{a, m} g^\top u + \tfrac12 u^\top "
                   r"(G + (\lambda + \eta) I) u,\ u = a \Delta_k + m v_{k-1}"),
            ]
        else:
            step.append(eq("v", "vₖ", "μ·vₖ₋₁ + α·Δₖ", "v_k", r"\mu v_{k-1} + \alpha \Delta_k"))
        step.append(eq("theta_new", "θₖ₊₁", "θₖ + vₖ", r"\theta_{k+1}", r"\theta_k + v_k"))
        adapt = [
            eq("rho", "ρ", "(f(θₖ + vₖ) − f(θₖ))/(gᵀvₖ + ½·vₖᵀ(G + ηI)vₖ)", r"\rho",
               r"\frac{f(\theta_k + v_k) - f(\theta_k)}"
               r"{g^\top v_k + \tfrac12 v_k^\top (G + \eta I) v_k}"),
            eq("lambda", "λ", "ω·λ if ρ < ¼;  λ/ω if ρ > ¾", r"\lambda",
               r"\omega\lambda \text{ if } \rho < \tfrac14,\quad \lambda/\omega "
               r"\text{ if } \rho > \tfrac34"),
        ]
        sections = [("Kronecker factors", curvature), ("Step", step)]
        if self.adapt_every:
            sections.append((f"Damping (every {self.adapt_every} iterations)", adapt))
        batch = ("" if self.factor_batch is None else
                 f"; ⟨·⟩ over {self.factor_batch} training rows drawn each iteration")
        notes = [f"Per Dense layer l, W̄ = [W b], ā = [a; 1]; g_c the layer's output cotangent "
                 f"for column c of the loss Hessian's square root ({self.kind}); "
                 f"ε = min({self.ema:g}, 1 − 1/k); Āₗ, Ḡₗ eigendecomposed every "
                 f"{self.inverse_every} iterations; η the weight decay; G the exact "
                 "Gauss-Newton matrix (model.gnvp); f and g = ∇f on the full training set"
                 + batch + ("; mₖ = 0 without momentum." if self.adaptive else ".")]
        notes_tex = [r"Per Dense layer $l$, $\bar W = [W\ b]$, $\bar a = [a; 1]$; $g_c$ the "
                     r"layer's output cotangent for column $c$ of the loss Hessian's square "
                     r"root; $G$ the exact Gauss-Newton matrix; $f$, $g = \nabla f$ on the "
                     r"full training set."]
        return Equations(repr(self), sections, notes, notes_tex)

    def __repr__(self) -> str:
        extra = "" if self.kind == "kflr" else ", kind='kfac'"
        mom = f", momentum={self.momentum:g}" if self.momentum else ""
        fb = "" if self.factor_batch is None else f", factor_batch={self.factor_batch}"
        return f"KFAC(lr={self.lr:g}, damping={self.damping:g}{extra}{mom}{fb})"
