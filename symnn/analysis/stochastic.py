"""Matrix-free curvature estimates over the exact compiled curvature products.

* :func:`hutchinson_trace`, :func:`hutchinson_diag` — Rademacher probes ``z`` with
  ``E[zᵀAz] = tr A`` and ``E[z ⊙ Az] = diag A`` (Hutchinson 1989), or Hutch++ (Meyer,
  Musco, Musco & Woodruff 2021), which takes the trace of a sketched top subspace exactly
  and estimates only the rest;
* :func:`spectral_density` — stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017):
  Lanczos with full reorthogonalisation from random unit probes, each giving a Gauss
  quadrature (nodes, weights) of the spectral measure ``Σᵢ (vᵀuᵢ)² δ(λ − λᵢ)``.

Every product is exact; all the error is Monte-Carlo error, which each result reports as a
standard error.  Probes are applied K at a time through the batched kernels.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.analysis import hutchinson_trace
>>> rng = np.random.default_rng(0)
>>> X, y = rng.normal(size=(16, 2)), rng.normal(size=(16, 1))
>>> model = symnn.mlp([2, 3, 1], activation="tanh").compile()   # doctest: +SKIP
>>> print(hutchinson_trace(model, model.init(seed=0), X, y))      # doctest: +SKIP
trace of the hessian ≈ ... ± ... (standard error; Hutchinson, 100 probes)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symnn.analysis.operators import CurvatureOperator
from symnn.errors import AnalysisError

__all__ = ["Estimate", "SpectralDensity", "hutchinson_trace", "hutchinson_diag",
           "spectral_density", "BLOCK"]

#: Probe directions per kernel call (the K of the batched HVP / GNVP kernels).
BLOCK = 32

_METHODS = {"hutchinson": "Hutchinson", "hutch++": "Hutch++"}
_NAMES = {**_METHODS, "slq": "stochastic Lanczos quadrature"}


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate and its estimated standard error.

    Attributes
    ----------
    value : float or ndarray
        The estimate (a trace, a diagonal, a moment).
    stderr : float or ndarray
        Its estimated standard error, of the same shape (``nan`` where the estimate has too
        few random samples to estimate its spread).
    probes : int
        Matrix-vector products spent.
    method : str
        ``"hutchinson"``, ``"hutch++"`` or ``"slq"``.
    what : str
        What is estimated, in words.
    """

    value: float | np.ndarray
    stderr: float | np.ndarray
    probes: int
    method: str
    what: str = "estimate"

    def __str__(self) -> str:
        n = f"{self.probes} probe{'s' if self.probes != 1 else ''}"
        how = f"{_NAMES.get(self.method, self.method)}, {n}"
        if np.ndim(self.value) == 0:
            return (f"{self.what} ≈ {self.value:.6g} ± {self.stderr:.2g} (standard error; "
                    f"{how})")
        v, s = np.asarray(self.value), np.asarray(self.stderr)
        spread = (f"standard errors up to {np.nanmax(s):.2g}" if np.any(np.isfinite(s))
                  else "no standard errors (too few probes)")
        return f"{self.what}: {v.size} entries in {v.min():.4g} … {v.max():.4g}, {spread} ({how})"


def _positive_int(value, name: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise AnalysisError(
            f"{name} = {value!r}; it must be an integer ≥ {least}"
            + (" (the number of random probe vectors)" if name == "probes" else "")
        )
    return int(value)


def _method(method, probes: int) -> str:
    if method not in _METHODS:
        raise AnalysisError(f"method = {method!r}; use 'hutchinson' or 'hutch++'")
    if method == "hutch++" and probes < 3:
        raise AnalysisError(
            f"Hutch++ splits its probes in three (sketch, exact part, residual); it needs "
            f"probes ≥ 3, got {probes}"
        )
    return method


def _apply(op: CurvatureOperator, Z: np.ndarray, block: int) -> np.ndarray:
    """``A zₖ`` for the rows of ``Z`` ``(K, P)``, ``block`` directions per kernel call."""
    out = np.empty(Z.shape, float)
    for start in range(0, Z.shape[0], block):
        out[start:start + block] = op.products(Z[start:start + block])
    return out


def _rademacher(rng, n: int, P: int) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=(n, P))


def _mean_and_stderr(samples: np.ndarray):
    """Mean over axis 0 and its standard error (``nan`` for a single sample)."""
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, samples.std(axis=0, ddof=1) / np.sqrt(n)


def _sketch(op, rng, probes: int, block: int):
    """Hutch++'s split of ``probes`` products: an orthonormal basis Q of A S (S with
    ⌊probes/3⌋ columns), ``AQ``, and the residual probes ``G``."""
    P = op.shape[0]
    k = min(probes // 3, P)
    S = _rademacher(rng, k, P)
    Q, _ = np.linalg.qr(_apply(op, S, block).T)          # (P, k), orthonormal columns
    AQ = _apply(op, Q.T, block).T                          # (P, k)
    G = _rademacher(rng, probes - 2 * k, P)
    return Q, AQ, G


def _setup(model, theta, X, y, matrix, probes, method, block):
    op = CurvatureOperator(model, theta, X, y, matrix)
    probes = _positive_int(probes, "probes")
    block = _positive_int(block, "block")
    return op, probes, _method(method, probes), block


def hutchinson_trace(model, theta, X, y, matrix: str = "hessian", probes: int = 100,
                     seed: int = 0, method: str = "hutchinson", *, block: int = BLOCK
                     ) -> Estimate:
    """Estimate ``tr A`` of the Hessian (``matrix="hessian"``) or GGN (``"ggn"``) at θ.

    Parameters
    ----------
    model : CompiledModel
    theta : ndarray, shape (P,)
    X, y : arrays
        The batch the loss is averaged over.
    matrix : {"hessian", "ggn"}
    probes : int
        Matrix-vector products to spend (≥ 1; ≥ 3 for Hutch++).
    seed : int
        Seed of the Rademacher probes.
    method : {"hutchinson", "hutch++"}
        ``"hutchinson"``: the mean of ``zᵀAz`` over ``probes`` Rademacher ``z``; its standard
        error is the sample standard deviation over √probes.  ``"hutch++"``: ⌊probes/3⌋
        products sketch ``Q = orth(A S)``, as many give ``tr QᵀAQ`` exactly, and the rest
        estimate ``tr (I−QQᵀ)A(I−QQᵀ)`` by Hutchinson; the standard error is that of the
        residual estimate given Q (``nan`` with fewer than two residual probes, and itself
        rough with fewer than about ten).  Much smaller error when a few eigenvalues
        dominate; somewhat larger for a flat spectrum.
    block : int
        Probe directions per kernel call.

    Returns
    -------
    Estimate
        ``value``, ``stderr``, ``probes``, ``method``.
    """
    op, probes, method, block = _setup(model, theta, X, y, matrix, probes, method, block)
    rng = np.random.default_rng(seed)
    if method == "hutchinson":
        Z = _rademacher(rng, probes, op.shape[0])
        value, stderr = _mean_and_stderr(np.einsum("kp,kp->k", Z, _apply(op, Z, block)))
    else:
        Q, AQ, G = _sketch(op, rng, probes, block)
        exact = float(np.einsum("pk,pk->", Q, AQ))
        if G.shape[0]:
            R = G - (G @ Q) @ Q.T                            # (I − QQᵀ) g, row-wise
            value, stderr = _mean_and_stderr(np.einsum("kp,kp->k", R, _apply(op, R, block)))
        else:
            value, stderr = 0.0, np.nan
        value = exact + value
    return Estimate(float(value), float(stderr), probes, method,
                    f"trace of the {op.matrix}")


def hutchinson_diag(model, theta, X, y, matrix: str = "hessian", probes: int = 100,
                    seed: int = 0, method: str = "hutchinson", *, block: int = BLOCK
                    ) -> Estimate:
    """Estimate the diagonal of the Hessian or GGN at θ (a vector in θ's flat layout).

    ``"hutchinson"``: the mean of ``z ⊙ Az`` over Rademacher ``z`` (Bekas, Kokiopoulou &
    Saad 2007), with per-entry standard errors.  ``"hutch++"`` (Diag++): the diagonal of
    ``QQᵀA`` exactly from a sketch Q as in :func:`hutchinson_trace`, plus the Hutchinson
    estimate of ``diag (I−QQᵀ)A``.  Arguments as :func:`hutchinson_trace`.

    Returns
    -------
    Estimate
        ``value`` and ``stderr`` of shape ``(P,)``.
    """
    op, probes, method, block = _setup(model, theta, X, y, matrix, probes, method, block)
    rng = np.random.default_rng(seed)
    P = op.shape[0]
    if method == "hutchinson":
        Z = _rademacher(rng, probes, P)
        value, stderr = _mean_and_stderr(Z * _apply(op, Z, block))
    else:
        Q, AQ, G = _sketch(op, rng, probes, block)
        exact = np.einsum("pk,pk->p", Q, AQ)                 # diag(Q (AQ)ᵀ) = diag(QQᵀA)
        if G.shape[0]:
            AG = _apply(op, G, block)
            value, stderr = _mean_and_stderr(G * (AG - (AG @ Q) @ Q.T))
        else:
            value, stderr = np.zeros(P), np.full(P, np.nan)
        value = exact + value
    return Estimate(np.asarray(value, float), np.asarray(stderr, float), probes, method,
                    f"diagonal of the {op.matrix}")


@dataclass(frozen=True)
class SpectralDensity:
    """Stochastic Lanczos quadrature of a curvature matrix's spectrum.

    Attributes
    ----------
    nodes, weights : tuple of ndarray
        Per probe, the Gauss quadrature nodes (Ritz values, ascending) and weights (they sum
        to 1): ``Σᵢ wᵢ f(λᵢ)`` approximates ``vᵀ f(A) v`` for the unit probe v, exactly for
        polynomials of degree < 2·steps.
    n_params : int
        P, the size of the matrix.
    matrix : str
    steps : int
        Lanczos steps per probe, at most P (a probe stops earlier when its Krylov space is
        exhausted: then its nodes are exact eigenvalues).
    """

    nodes: tuple
    weights: tuple
    n_params: int
    matrix: str = "hessian"
    steps: int = 0

    @property
    def probes(self) -> int:
        return len(self.nodes)

    def _all(self):
        return np.concatenate(self.nodes), np.concatenate(self.weights)

    def default_sigma(self) -> float:
        """The default smoothing width: 1 % of the range of the nodes (or of their size)."""
        lam, _ = self._all()
        span = float(lam.max() - lam.min())
        return 0.01 * (span if span > 0 else max(abs(float(lam.max())), 1.0))

    def grid(self, n: int = 512, sigma: float | None = None) -> np.ndarray:
        """``n`` points over the nodes' range, widened by 5σ on each side."""
        lam, _ = self._all()
        s = self.default_sigma() if sigma is None else float(sigma)
        return np.linspace(lam.min() - 5 * s, lam.max() + 5 * s, _positive_int(n, "n", 2))

    def density(self, t, sigma: float | None = None) -> np.ndarray:
        """The Gaussian-smoothed spectral density at the points ``t``:
        ``(1/probes) Σₗ Σᵢ wᵢˡ 𝒩(t; λᵢˡ, σ²)``, which integrates to 1 (the normalised
        eigenvalue count, smoothed)."""
        s = self.default_sigma() if sigma is None else float(sigma)
        if not s > 0:
            raise AnalysisError(f"sigma = {sigma!r}; the smoothing width must be positive")
        t = np.asarray(t, float)
        lam, w = self._all()
        z = (t[..., None] - lam) / s
        return (np.exp(-0.5 * z * z) @ w) / (s * np.sqrt(2 * np.pi) * self.probes)

    def moment(self, k: int) -> Estimate:
        """``tr(Aᵏ)/P`` estimated as the mean over probes of ``Σᵢ wᵢ λᵢᵏ`` (exact per probe
        for k < 2·steps), with its standard error over the probes."""
        k = _positive_int(k, "k", 0)
        per = np.array([np.sum(w * lam ** k) for lam, w in zip(self.nodes, self.weights)])
        value, stderr = _mean_and_stderr(per)
        return Estimate(float(value), float(stderr), self.probes, "slq",
                        f"moment {k} (tr Aᵏ / P) of the {self.matrix}")

    def moments(self, kmax: int = 3) -> list[Estimate]:
        """:meth:`moment` for k = 0 … kmax."""
        return [self.moment(k) for k in range(_positive_int(kmax, "kmax", 0) + 1)]

    def __str__(self) -> str:
        lam, _ = self._all()
        return (f"spectral density of the {self.n_params}×{self.n_params} {self.matrix}: "
                f"{self.probes} probes × {self.steps} Lanczos steps, nodes in "
                f"{lam.min():.4g} … {lam.max():.4g}, mean eigenvalue "
                f"{self.moment(1).value:.4g} ± {self.moment(1).stderr:.2g}")


def _lanczos(op: CurvatureOperator, V0: np.ndarray, steps: int, block: int):
    """Lanczos from each row of ``V0`` (unit vectors), all probes in step together, with
    full reorthogonalisation; returns per probe the (α, β) of its tridiagonal matrix."""
    n, P = V0.shape
    basis = np.zeros((n, steps, P))
    basis[:, 0] = V0
    alpha, beta = np.zeros((n, steps)), np.zeros((n, steps))
    length = np.zeros(n, int)
    active = np.ones(n, bool)
    scale = np.zeros(n)
    for j in range(steps):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        length[idx] = j + 1
        W = _apply(op, basis[idx, j], block)
        alpha[idx, j] = np.einsum("kp,kp->k", W, basis[idx, j])
        Qj = basis[:, :j + 1] if idx.size == n else basis[idx, :j + 1]   # (k, j+1, P)
        for _ in range(2):                                     # twice is enough
            c = np.matmul(Qj, W[:, :, None])                   # (k, j+1, 1): Qⱼᵀw
            W -= np.matmul(c.transpose(0, 2, 1), Qj)[:, 0]
        b = np.linalg.norm(W, axis=1)
        scale[idx] = np.maximum(scale[idx], np.abs(alpha[idx, j]) + b)
        if j + 1 == steps:
            break
        beta[idx, j] = b
        done = b <= 1e-10 * np.maximum(scale[idx], 1e-300)
        active[idx[done]] = False
        keep = ~done
        basis[idx[keep], j + 1] = W[keep] / b[keep, None]
    return [(alpha[i, :length[i]], beta[i, :length[i] - 1]) for i in range(n)]


def spectral_density(model, theta, X, y, matrix: str = "hessian", probes: int = 10,
                     steps: int = 30, seed: int = 0, *, block: int = BLOCK
                     ) -> SpectralDensity:
    """The spectral density of the Hessian or GGN at θ by stochastic Lanczos quadrature.

    Parameters
    ----------
    matrix : {"hessian", "ggn"}
    probes : int
        Random unit probes ``z/√P`` (z Rademacher); each gives one quadrature.
    steps : int
        Lanczos steps per probe (at most P are taken).  With ``steps = P`` and distinct
        eigenvalues the nodes are the eigenvalues themselves.
    seed : int
    block : int
        Probe directions per kernel call: the probes advance through Lanczos together.

    Returns
    -------
    SpectralDensity
        Nodes and weights per probe; ``.density(t, sigma)`` for a smoothed density,
        ``.moments()`` for ``tr(Aᵏ)/P`` with standard errors.
    """
    op = CurvatureOperator(model, theta, X, y, matrix)
    probes = _positive_int(probes, "probes")
    steps = min(_positive_int(steps, "steps"), op.shape[0])
    block = _positive_int(block, "block")
    P = op.shape[0]
    V0 = _rademacher(np.random.default_rng(seed), probes, P) / np.sqrt(P)
    nodes, weights = [], []
    for a, b in _lanczos(op, V0, steps, block):
        T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
        lam, U = np.linalg.eigh(T)
        nodes.append(lam)
        weights.append(U[0] ** 2)
    return SpectralDensity(tuple(nodes), tuple(weights), P, op.matrix, steps)
