"""Second-order training: damped Newton, Levenberg–Marquardt, L-BFGS, Newton-CG.

All four take full-batch iterations on the objective ``f(θ) = L(θ) + ½ Σᵢ λᵢ θᵢ²`` (λ the
optional weight decay) and report to the same training session as the first-order
optimizers (history, validation, early stopping, checks — with ``check_every`` the
Hessian-vector products are checked too, by :func:`symnn.hesscheck`).

=======================  ===================================================================
optimizer                step
=======================  ===================================================================
``Newton()``             ``(H + μI) δ = −∇f`` with the exact Hessian H (``model.hessian``:
                         P Hessian-vector products); μ adapted by the trust ratio
                         ρ = actual / predicted decrease (Nielsen's rule), raised until
                         ``H + μI`` is positive definite.  Small models (P ≤ ``max_params``).
``LevenbergMarquardt()`` ``(G + μD) δ = −∇f`` with the Gauss-Newton matrix G = Jᵀ H_ℓ J
                         (``model.gnvp`` of the P unit vectors; for MSE, 2/B · JᵀJ of the
                         residual Jacobian J), D = I or diag(G); μ adapted as above.
``LBFGS()``              ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)``.
``NewtonCG()``           ``scipy.optimize.minimize(method="trust-ncg")`` (or
                         ``"Newton-CG"``) with exact Hessian-vector products ``model.hvp``.
=======================  ===================================================================

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.train import fit, LevenbergMarquardt
>>> model = symnn.mlp([1, 4, 1], activation="tanh").compile()
>>> X = np.linspace(-2, 2, 40).reshape(-1, 1); y = np.sin(X[:, 0])
>>> res = fit(model, X, y, LevenbergMarquardt(), epochs=30, progress=False)
>>> bool(res.history.loss[-1] < 1e-3)
True
"""

from __future__ import annotations

import math
import time

import numpy as np

from symnn.errors import DeclarationError, SizeLimitError
from symnn.printing.equations import Equation, Equations
from symnn.train.schedules import _positive
from symnn.train.session import Session, array_norms, decay_vector

__all__ = ["SecondOrder", "Newton", "LevenbergMarquardt", "LBFGS", "NewtonCG"]

#: Work memory of one batched Gauss-Newton call when forming G (bytes).
GN_MEMORY = 256 * 2**20


class SecondOrder:
    """Base class of the full-batch second-order optimizers.

    Parameters
    ----------
    weight_decay : float
        λ ≥ 0 of the term ``½ λ‖θ‖²`` added to the objective.
    decay : {"all", "weights"}
        Which parameters it applies to (as for the first-order optimizers).
    tol : float
        Stop when the gradient's largest component is at most ``tol``.
    max_iter : int, optional
        Iterations at most (also bounded by ``fit(epochs=…)``).
    """

    kind = "second_order"
    name = "second_order"
    #: The model's products this method relies on (checked before training by ``fit``).
    products: tuple[str, ...] = ()

    def __init__(self, *, weight_decay: float = 0.0, decay: str = "all",
                 tol: float = 1e-10, max_iter: int | None = None) -> None:
        where = type(self).__name__
        if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, int)
                                     or max_iter < 1):
            raise DeclarationError(f"{where}: max_iter must be an integer ≥ 1, got "
                                   f"{max_iter!r}")
        self.max_iter = max_iter
        self.weight_decay = _positive("weight_decay", weight_decay, where, allow_zero=True)
        if decay not in ("all", "weights"):
            raise DeclarationError(f"{where}: decay must be 'all' or 'weights', got {decay!r}")
        self.decay = decay
        self.tol = _positive("tol", tol, where, allow_zero=True)

    def _iterations(self, s: Session) -> int:
        return s.epochs if self.max_iter is None else min(s.epochs, self.max_iter)

    # the objective ------------------------------------------------------------------------
    def _objective(self, s: Session):
        model, X, Y = s.model, s.X, s.Y
        dt = np.dtype(model.dtype)
        lam = decay_vector(model, self).astype(np.float64)

        def f(theta):
            L, g = model.loss_and_grad(np.asarray(theta, dt), X, Y)
            th = np.asarray(theta, np.float64)
            g = np.asarray(g, np.float64) + lam * th
            return float(L) + 0.5 * float(np.dot(lam, th * th)), g

        return f, lam

    def equations(self) -> Equations:
        """The step rule, as text and LaTeX."""
        t, x = self._step_equation()
        eq = Equation("theta_new", "θₖ₊₁", [t], r"\theta_{k+1}", [x])
        return Equations(repr(self), [("Step", [eq])], [self._note], [self._note_tex])

    _note = "g = ∇f(θₖ) on the full training set."
    _note_tex = r"$g = \nabla f(\theta_k)$ on the full training set."

    def _step_equation(self) -> tuple[str, str]:
        raise NotImplementedError

    def run(self, s: Session, theta: np.ndarray):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# ------------------------------------------------------------------------------------------
# damped Newton and Levenberg–Marquardt
# ------------------------------------------------------------------------------------------


class _Damped(SecondOrder):
    """Trust-ratio damped steps ``(M + μD) δ = −g`` (M the Hessian or Gauss-Newton matrix)."""

    def __init__(self, damping: float = 1e-3, *, max_params: int = 3000,
                 weight_decay: float = 0.0, decay: str = "all", tol: float = 1e-10,
                 max_iter: int | None = None) -> None:
        super().__init__(weight_decay=weight_decay, decay=decay, tol=tol, max_iter=max_iter)
        self.damping = _positive("damping", damping, type(self).__name__)
        self.max_params = int(max_params)

    def matrix(self, s: Session, theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def scaling(self, M: np.ndarray) -> np.ndarray:
        return np.ones(M.shape[0])

    def run(self, s: Session, theta: np.ndarray):
        from scipy.linalg import LinAlgError, cho_factor, cho_solve

        model = s.model
        P = model.n_params
        if P > self.max_params:
            raise SizeLimitError(
                f"{type(self).__name__} forms a {P}×{P} matrix (P = {P} parameters > "
                f"max_params = {self.max_params}); use NewtonCG() or LBFGS(), which need only "
                "Hessian-vector products or gradients, or raise max_params")
        f, lam = self._objective(s)
        dt = np.dtype(model.dtype)
        th = np.asarray(theta, np.float64).copy()
        s.start(th.astype(dt), second_order=True)
        L, g = f(th)
        if not math.isfinite(L):
            raise s.diverged(0, 0, th.astype(dt), "loss", L)
        mu = None
        nu = 2.0
        name = type(self).__name__
        for it in range(1, self._iterations(s) + 1):
            t0 = time.perf_counter()
            norms = array_norms(g, s.names, s.bounds)
            gmax = float(np.max(np.abs(g))) if g.size else 0.0
            if gmax <= self.tol:
                s.stop("converged", f"{name} converged after {it - 1} iterations: the "
                                    f"largest gradient component {gmax:.3g} ≤ tol = "
                                    f"{self.tol:g}")
                break
            M = np.asarray(self.matrix(s, th.astype(dt)), np.float64) + np.diag(lam)
            D = self.scaling(M)
            scale = max(float(np.max(np.abs(np.diag(M)))) if P else 0.0, 1e-12)
            if mu is None:
                mu = self.damping * scale
            # beyond this damping the step is −g/μ below the rounding of θ: nothing to gain
            mu_max = 1e16 * scale
            accepted = False
            why = ""
            for _ in range(60):
                if not mu <= mu_max:
                    why = (f"no step decreases the loss at machine precision (damping μ "
                           f"grew past {mu_max:.3g})")
                    break
                A = M + mu * np.diag(D)
                try:
                    factor = cho_factor(A, lower=True, check_finite=True)
                except (LinAlgError, ValueError):
                    mu *= nu
                    nu *= 2.0
                    continue
                delta = -cho_solve(factor, g)
                if float(np.linalg.norm(delta)) <= 1e-15 * (1.0 + float(np.linalg.norm(th))):
                    why = (f"the step {float(np.linalg.norm(delta)):.3g} is below the "
                           "rounding of θ")
                    break
                predicted = -(float(g @ delta) + 0.5 * float(delta @ (M @ delta)))
                L_new, g_new = f(th + delta)
                rho = (L - L_new) / predicted if predicted > 0 else -math.inf
                if math.isfinite(L_new) and rho > 0:
                    th = th + delta
                    L, g = L_new, g_new
                    mu = max(mu * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 1e-300)
                    nu = 2.0
                    accepted = True
                    break
                mu *= nu
                nu = min(nu * 2.0, 1e6)
            if not accepted:
                s.stop(*_no_step_stop(name, it - 1, why, L, gmax))
                break
            if s.end_epoch(it, th.astype(dt), L, norms, 1, t0, second_order=True,
                           damping=mu):
                break
        return s.result(th.astype(dt))


def _no_step_stop(name: str, n: int, why: str, L: float, gmax: float) -> tuple[str, str]:
    """(reason, message) when no damped step decreases the loss (walk, round 6).

    That is convergence at machine precision only where the gradient is small on the
    loss's own scale (``max|g| ≤ √ε · max(1, √L)``); with data around 1e150 the loss's
    rounding hides every step while the gradient is huge, and that is a stall.
    """
    numbers = f"(loss {L:.6g}, largest gradient component {gmax:.3g})"
    why = why or "no step decreases the loss"
    if gmax <= math.sqrt(np.finfo(np.float64).eps) * max(1.0, math.sqrt(max(L, 0.0))):
        return "converged", f"{name} converged after {n} iterations: {why} {numbers}"
    return "stalled", (f"{name} stopped after {n} iterations without converging: {why}, "
                       f"but the gradient is not small {numbers}; the data may be badly "
                       "scaled: standardize X and y, or try Adam")


class Newton(_Damped):
    """Damped Newton with the exact Hessian: ``(H + μI) δ = −∇f``, μ by the trust ratio.

    Parameters
    ----------
    damping : float
        Initial μ relative to ``max |diag H|``.
    max_params : int
        Refuse models with more parameters (the Hessian is P × P).
    weight_decay, decay, tol
        As :class:`SecondOrder`.

    Examples
    --------
    >>> print(Newton().equations().line("theta_new"))
    θₖ₊₁ = θₖ − (H + μI)⁻¹ g
    """

    name = "newton"
    products = ("hvp",)

    def matrix(self, s, theta):
        return s.model.hessian(theta, s.X, s.Y)

    def _step_equation(self):
        return "θₖ − (H + μI)⁻¹ g", r"\theta_k - \left(H + \mu I\right)^{-1} g"

    def __repr__(self) -> str:
        return f"Newton(damping={self.damping:g})"


class LevenbergMarquardt(_Damped):
    """Levenberg–Marquardt: ``(G + μD) δ = −∇f`` with the Gauss-Newton matrix
    ``G = Jᵀ H_ℓ J``, μ by the trust ratio; ``D = I`` (Levenberg, the default:
    ``scaling="identity"``) or ``D = diag(G)`` floored at 1e-9·max diag
    (``scaling="marquardt"``).

    For a mean-squared-error loss G is ``(2/B) JᵀJ`` of the Jacobian J of the residuals
    w.r.t. θ, and this is the classic method; for other losses it is the generalised
    Gauss-Newton matrix (positive semi-definite for convex losses).  G is formed from P
    Gauss-Newton-vector products (``model.gnvp`` with the unit vectors, batched).

    Examples
    --------
    >>> print(LevenbergMarquardt().equations().line("theta_new"))
    θₖ₊₁ = θₖ − (G + μI)⁻¹ g
    """

    name = "lm"
    products = ("gnvp",)

    def matrix(self, s, theta):
        model = s.model
        P = model.n_params
        dt = np.dtype(model.dtype)
        per = 16
        gen = getattr(model, "generated", None)
        if gen is not None and "gnvp" in getattr(gen, "tangent_sizes", {}):
            per_sample, per_dir = gen.tangent_sizes["gnvp"]
            per_bytes = (s.X.shape[0] * per_sample + per_dir + 2 * P) * dt.itemsize
            per = max(1, min(P, GN_MEMORY // max(per_bytes, 1)))
        G = np.empty((P, P), np.float64)
        for start in range(0, P, per):
            stop = min(P, start + per)
            E = np.zeros((stop - start, P), dt)
            E[np.arange(stop - start), np.arange(start, stop)] = 1
            G[start:stop] = model.gnvp(theta, E, s.X, s.Y)
        return 0.5 * (G + G.T)

    def __init__(self, damping: float = 1e-3, *, scaling: str = "identity",
                 max_params: int = 3000, weight_decay: float = 0.0, decay: str = "all",
                 tol: float = 1e-10, max_iter: int | None = None) -> None:
        super().__init__(damping, max_params=max_params, weight_decay=weight_decay,
                         decay=decay, tol=tol, max_iter=max_iter)
        if scaling not in ("identity", "marquardt"):
            raise DeclarationError(f"LevenbergMarquardt: scaling must be 'identity' or "
                                   f"'marquardt', got {scaling!r}")
        self.scaling_kind = scaling

    def scaling(self, M):
        if self.scaling_kind == "identity":
            return np.ones(M.shape[0])
        d = np.abs(np.diag(M)).copy()
        floor = 1e-9 * max(float(d.max()) if d.size else 1.0, 1e-300)
        return np.maximum(d, floor)

    def _step_equation(self):
        if self.scaling_kind == "identity":
            return "θₖ − (G + μI)⁻¹ g", r"\theta_k - \left(G + \mu I\right)^{-1} g"
        return ("θₖ − (G + μ·diag G)⁻¹ g",
                r"\theta_k - \left(G + \mu \operatorname{diag} G\right)^{-1} g")

    _note = "g = ∇f(θₖ), G = Jᵀ H_ℓ J the Gauss-Newton matrix, on the full training set."
    _note_tex = (r"$g = \nabla f(\theta_k)$ and the Gauss-Newton matrix "
                 r"$G = J^\top H_\ell J$ on the full training set.")

    def __repr__(self) -> str:
        return f"LevenbergMarquardt(damping={self.damping:g})"


# ------------------------------------------------------------------------------------------
# SciPy: L-BFGS and Newton-CG
# ------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised in SciPy's callback to end training (not an error)."""


class _Scipy(SecondOrder):
    method = ""

    def _options(self, s: Session) -> dict:
        return {"maxiter": self._iterations(s)}

    def _hessp(self, s: Session, lam):
        return None

    def run(self, s: Session, theta: np.ndarray):
        from scipy.optimize import minimize

        model = s.model
        dt = np.dtype(model.dtype)
        f, lam = self._objective(s)
        last = {"x": None, "L": None, "g": None}

        def fun(x):
            L, g = f(x)
            last["x"], last["L"], last["g"] = np.array(x, copy=True), L, g
            return L, g

        x0 = np.asarray(theta, np.float64)
        s.start(x0.astype(dt), second_order=True)
        L0, g0 = f(x0)
        if not math.isfinite(L0):
            raise s.diverged(0, 0, x0.astype(dt), "loss", L0)
        state = {"x": x0, "g": g0, "it": 0, "t0": time.perf_counter()}

        def callback(xk, *args):
            x = np.asarray(getattr(xk, "x", xk), np.float64)
            if last["x"] is not None and np.array_equal(last["x"], x):
                L, g = last["L"], last["g"]
            else:
                L, g = f(x)
            norms = array_norms(state["g"], s.names, s.bounds)
            prev = state["x"]
            state["it"] += 1
            stop = s.end_epoch(state["it"], x.astype(dt), L, norms, 1, state["t0"],
                               fallback=prev.astype(dt), second_order=True)
            state["x"], state["g"] = x.copy(), g
            state["t0"] = time.perf_counter()
            if stop:
                raise _Stop

        try:
            res = minimize(fun, x0, jac=True, method=self.method, hessp=self._hessp(s, lam),
                           callback=callback, options=self._options(s))
            x = state["x"]
            name = type(self).__name__
            message = str(getattr(res, "message", "")).strip().rstrip(".")
            n = state["it"]
            if res.success and n < self._iterations(s):
                s.stop("converged", f"{name} converged after {n} iterations: {message}")
            elif not res.success and n < self._iterations(s):
                s.stop("stalled", f"{name} stopped after {n} iterations: {message}")
            else:
                s.stop("completed", f"{name} ran its {n} iterations ({message})")
            if state["it"] == 0 and np.all(np.isfinite(res.x)):
                x = np.asarray(res.x, np.float64)
        except _Stop:
            x = state["x"]
        except ValueError as err:  # walk: SciPy's own finite checks (a CG step overflowed)
            raise s.diverged(state["it"], state["it"], state["x"].astype(dt),
                             f"{type(self).__name__} step", f"not finite ({err})") from err
        return s.result(x.astype(dt))


class LBFGS(_Scipy):
    """L-BFGS through ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)``.

    Parameters
    ----------
    memory : int
        Correction pairs kept (SciPy's ``maxcor``).
    tol : float
        Projected-gradient tolerance (``gtol``).
    ftol : float
        Relative decrease tolerance of the loss (SciPy's ``ftol``).
    max_fun : int, optional
        Loss evaluations at most (SciPy's ``maxfun``; default 20 per iteration).
    weight_decay, decay, max_iter
        As :class:`SecondOrder`.

    Examples
    --------
    >>> print(LBFGS().equations().line("theta_new"))
    θₖ₊₁ = θₖ − αₖ Hₖ g
    """

    name = "lbfgs"
    method = "L-BFGS-B"

    def __init__(self, memory: int = 10, *, tol: float = 1e-9, ftol: float = 1e-12,
                 max_fun: int | None = None, weight_decay: float = 0.0, decay: str = "all",
                 max_iter: int | None = None) -> None:
        super().__init__(weight_decay=weight_decay, decay=decay, tol=tol, max_iter=max_iter)
        self.max_fun = max_fun
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < 1:
            raise DeclarationError(f"LBFGS: memory must be an integer ≥ 1, got {memory!r}")
        self.memory = memory
        self.ftol = _positive("ftol", ftol, "LBFGS", allow_zero=True)

    def _options(self, s):
        n = self._iterations(s)
        return {"maxiter": n, "maxcor": self.memory, "gtol": self.tol, "ftol": self.ftol,
                "maxfun": self.max_fun if self.max_fun is not None else 20 * n + 20}

    def _step_equation(self):
        return "θₖ − αₖ Hₖ g", r"\theta_k - \alpha_k H_k g"

    _note = ("Hₖ: the L-BFGS inverse-Hessian approximation from the last m steps; αₖ by "
             "line search.")
    _note_tex = (r"$H_k$: the L-BFGS inverse-Hessian approximation from the last $m$ "
                 r"steps; $\alpha_k$ by line search.")

    def __repr__(self) -> str:
        return f"LBFGS(memory={self.memory})"


class NewtonCG(_Scipy):
    """Newton-CG with exact Hessian-vector products: SciPy's ``trust-ncg`` (default) or
    ``Newton-CG`` with ``hessp = model.hvp``.

    Examples
    --------
    >>> print(NewtonCG().equations().line("theta_new"))
    θₖ₊₁ = θₖ + argmin_{‖δ‖ ≤ Δₖ} (gᵀδ + ½ δᵀHδ)
    """

    name = "newton_cg"
    products = ("hvp",)

    def __init__(self, method: str = "trust-ncg", *, tol: float = 1e-9,
                 weight_decay: float = 0.0, decay: str = "all",
                 max_iter: int | None = None) -> None:
        super().__init__(weight_decay=weight_decay, decay=decay, tol=tol, max_iter=max_iter)
        if method not in ("trust-ncg", "Newton-CG", "trust-krylov"):
            raise DeclarationError(
                f"NewtonCG: method must be 'trust-ncg', 'Newton-CG' or 'trust-krylov', got "
                f"{method!r}")
        self.method = method

    def _hessp(self, s, lam):
        model = s.model
        dt = np.dtype(model.dtype)

        def hessp(x, p):
            hv = model.hvp(np.asarray(x, dt), np.asarray(p, dt), s.X, s.Y)
            return np.asarray(hv, np.float64) + lam * p

        return hessp

    def _options(self, s):
        if self.method == "Newton-CG":
            return {"maxiter": self._iterations(s), "xtol": self.tol}
        return {"maxiter": self._iterations(s), "gtol": self.tol}

    def _step_equation(self):
        if self.method == "Newton-CG":
            return "θₖ − αₖ H⁻¹ g (H⁻¹g by conjugate gradients)", \
                r"\theta_k - \alpha_k H^{-1} g"
        return ("θₖ + argmin_{‖δ‖ ≤ Δₖ} (gᵀδ + ½ δᵀHδ)",
                r"\theta_k + \operatorname*{arg\,min}_{\lVert\delta\rVert \le \Delta_k} "
                r"\left(g^\top\delta + \tfrac12 \delta^\top H \delta\right)")

    _note = "g, H: gradient and exact Hessian (through Hessian-vector products) at θₖ."
    _note_tex = r"$g$, $H$: gradient and exact Hessian (via Hessian-vector products)."

    def __repr__(self) -> str:
        return f"NewtonCG(method={self.method!r})"
