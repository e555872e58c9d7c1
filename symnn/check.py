"""Finite-difference checks of compiled derivatives: ``gradcheck`` and ``hesscheck``.

In the spirit of ``torch.autograd.gradcheck`` and autograd's ``check_grads``: the analytic
gradient (or Hessian-vector product) is compared with central differences

* along random unit directions ``v`` — two loss evaluations per direction, cheap for any
  number of parameters: ``gᵀv ≈ (L(θ + hv) − L(θ − hv)) / 2h``;
* per coordinate — ``∂L/∂θᵢ ≈ (L(θ + hεᵢ) − L(θ − hεᵢ)) / 2h`` for all coordinates of small
  models, a seeded random sample of them for large ones.

The step is scale-aware, ``h = eps · max(1, |θ|∞)`` with ``eps = ε^(1/3)`` of the model's
dtype (≈ 6e-6 in float64, ≈ 5e-3 in float32), which balances truncation and rounding error
of central differences.  A check passes when ``|a − n| ≤ atol + rtol · max(|a|, |n|)`` with
the documented defaults:

========  ========  ========
dtype     rtol      atol
========  ========  ========
float64   1e-5      1e-7
float32   5e-2      1e-3
========  ========  ========

Non-smooth points (ReLU at 0, |r| at 0): symnn uses the subgradient convention of the left
piece (``relu'(0) = 0``).  A finite difference straddling a kink measures neither side, so
the checker detects it instead of failing falsely: each difference is repeated with half
the step, and where the two estimates disagree by more than smooth functions allow, the
probe is reported as *straddling a kink* and excluded from the verdict (the report lists
it).

Examples
--------
>>> import numpy as np, symnn
>>> model = symnn.mlp([3, 4, 2], activation="tanh").compile()  # doctest: +SKIP
>>> theta = model.init(seed=0)                                  # doctest: +SKIP
>>> X, y = np.ones((5, 3)), np.zeros((5, 2))                    # doctest: +SKIP
>>> bool(gradcheck(model, theta, X, y))                         # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symnn.errors import ShapeError

__all__ = ["CheckReport", "gradcheck", "hesscheck", "TOLERANCES"]

#: Default (rtol, atol) per dtype name.
TOLERANCES = {"float64": (1e-5, 1e-7), "float32": (5e-2, 1e-3)}


@dataclass
class Probe:
    """One comparison: a direction or a coordinate."""

    label: str
    analytic: float
    numeric: float
    error: float
    ok: bool
    kink: bool = False


@dataclass
class CheckReport:
    """Result of :func:`gradcheck` / :func:`hesscheck`; truthy when the check passed.

    Attributes
    ----------
    kind : str
        ``"gradient"`` or ``"hessian"``.
    passed : bool
    rtol, atol, step : float
    probes : list of Probe
        Every comparison made (directions first, then coordinates).
    worst : Probe or None
        The probe with the largest error relative to its tolerance.
    kinks : list of Probe
        Probes excluded because the difference straddled a non-smooth point.
    """

    kind: str
    passed: bool
    rtol: float
    atol: float
    step: float
    probes: list = field(default_factory=list)
    kinks: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def worst(self) -> Probe | None:
        counted = [p for p in self.probes if not p.kink]
        if not counted:
            return None
        return max(counted, key=lambda p: p.error / (self.atol + self.rtol * max(
            abs(p.analytic), abs(p.numeric))))

    @property
    def worst_parameter(self) -> Probe | None:
        """The worst per-coordinate probe (names a parameter), else :attr:`worst`."""
        coords = [p for p in self.probes if not p.kink and not p.label.startswith(
            ("direction", "symmetry"))]
        if not coords:
            return self.worst
        return max(coords, key=lambda p: p.error / (self.atol + self.rtol * max(
            abs(p.analytic), abs(p.numeric))))

    @property
    def max_error(self) -> float:
        return max((p.error for p in self.probes if not p.kink), default=0.0)

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        n_dir = sum(p.label.startswith("direction") for p in self.probes)
        n_coord = len(self.probes) - n_dir
        lines = [
            f"{self.kind} check {verdict}: {n_dir} random directions, {n_coord} coordinates, "
            f"step {self.step:.2e}, rtol {self.rtol:g}, atol {self.atol:g}",
        ]
        w = self.worst_parameter
        if w is not None:
            lines.append(
                f"  worst: {w.label}: analytic {w.analytic:.10g}, finite difference "
                f"{w.numeric:.10g}, |error| {w.error:.3g}"
            )
        bad = [p for p in self.probes if not p.ok and not p.kink]
        for p in bad[:10]:
            lines.append(f"  mismatch at {p.label}: analytic {p.analytic:.10g} vs "
                         f"{p.numeric:.10g}")
        if self.kinks:
            lines.append(f"  {len(self.kinks)} probe(s) straddle a non-smooth point and were "
                         "excluded: " + ", ".join(p.label for p in self.kinks[:5]))
        return "\n".join(lines)

    __repr__ = __str__


def param_label(model, i: int) -> str:
    """Name of flat coordinate ``i``: ``"W1[2, 0]"``."""
    off = 0
    for name, shape in model.param_shapes:
        n = int(np.prod(shape)) if shape else 1
        if i < off + n:
            if not shape:
                return name
            idx = np.unravel_index(i - off, shape)
            return f"{name}[{', '.join(str(int(k)) for k in idx)}]"
        off += n
    return f"θ[{i}]"


def _dtype_name(model) -> str:
    return np.dtype(getattr(model, "dtype", np.float64)).name


def _setup(model, theta, rtol, atol, eps):
    theta = np.asarray(theta)
    if theta.ndim != 1 or theta.size != model.n_params:
        raise ShapeError(
            f"θ has shape {theta.shape}; this model takes a flat vector of {model.n_params} "
            "parameters (see model.init())"
        )
    name = _dtype_name(model)
    d_rtol, d_atol = TOLERANCES.get(name, TOLERANCES["float64"])
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    if eps is None:
        eps = float(np.finfo(np.dtype(name)).eps) ** (1 / 3)
    h = eps * max(1.0, float(np.max(np.abs(theta))) if theta.size else 1.0)
    return theta.astype(np.float64), rtol, atol, h


def _coordinates(P: int, coordinates, rng) -> np.ndarray:
    if coordinates == "all" or (coordinates == "auto" and P <= 200):
        return np.arange(P)
    k = 50 if coordinates == "auto" else int(coordinates)
    return np.sort(rng.choice(P, size=min(k, P), replace=False))


def _compare(label, a_fn, n_fn, h, rtol, atol, detect_kinks):
    """Compare analytic ``a`` with central differences at steps h and h/2."""
    a = a_fn()
    n1 = n_fn(h)
    err = np.abs(a - n1)
    tol = atol + rtol * np.maximum(np.abs(a), np.abs(n1))
    ok = bool(np.all(err <= tol))
    kink = False
    if not ok and detect_kinks:
        n2 = n_fn(h / 2)
        if np.all(np.abs(a - n2) <= tol):
            ok = True  # the larger step straddled a kink; the smaller one agrees
        elif np.all(np.abs(n1 - n2) > tol):
            # smooth functions give estimates that agree to O(h²); these do not: the probe
            # straddles a non-smooth point and measures neither side
            kink = True
    return Probe(label, float(np.ravel(a)[0]) if np.ndim(a) else float(a),
                 float(np.ravel(n1)[0]) if np.ndim(n1) else float(n1),
                 float(np.max(err)), ok, kink)


def gradcheck(model, theta, X, y, *, n_directions: int = 8, coordinates="auto",
              rtol: float | None = None, atol: float | None = None, eps: float | None = None,
              seed: int = 0, detect_kinks: bool = True) -> CheckReport:
    """Check ``model.loss_and_grad`` against central differences of ``model.loss``.

    Parameters
    ----------
    model : CompiledModel
        Anything with ``loss(θ, X, y)``, ``loss_and_grad(θ, X, y)``, ``n_params`` and
        ``param_shapes``.
    theta : ndarray, shape (P,)
    X : ndarray, shape (B, n_inputs)
    y : ndarray, shape (B, n_outputs)
    n_directions : int
        Random unit directions (two loss evaluations each).
    coordinates : "auto", "all" or int
        Coordinates to check one by one: all if P ≤ 200 under "auto", else 50 sampled.
    rtol, atol, eps : float, optional
        Tolerances and relative step; defaults depend on the dtype (see module docs).
    seed : int
    detect_kinks : bool
        Exclude probes that straddle a non-smooth point (reported in ``report.kinks``).

    Returns
    -------
    CheckReport
        Truthy when every counted probe is within tolerance.
    """
    theta, rtol, atol, h = _setup(model, theta, rtol, atol, eps)
    rng = np.random.default_rng(seed)
    dt = np.dtype(_dtype_name(model))
    _, g = model.loss_and_grad(theta.astype(dt), X, y)
    g = np.asarray(g, dtype=np.float64)

    def L(t):
        return float(model.loss(t.astype(dt), X, y))

    probes = []
    for k in range(n_directions):
        v = rng.normal(size=theta.size)
        v /= np.linalg.norm(v) or 1.0
        probes.append(_compare(
            f"direction {k}", lambda v=v: float(g @ v),
            lambda hh, v=v: (L(theta + hh * v) - L(theta - hh * v)) / (2 * hh),
            h, rtol, atol, detect_kinks))
    for i in _coordinates(theta.size, coordinates, rng):
        e = np.zeros_like(theta)
        e[i] = 1.0
        probes.append(_compare(
            param_label(model, int(i)), lambda i=i: float(g[i]),
            lambda hh, e=e: (L(theta + hh * e) - L(theta - hh * e)) / (2 * hh),
            h, rtol, atol, detect_kinks))
    kinks = [p for p in probes if p.kink]
    passed = all(p.ok or p.kink for p in probes)
    return CheckReport("gradient", passed, rtol, atol, h, probes, kinks)


def hesscheck(model, theta, X, y, *, n_directions: int = 4, coordinates=0,
              rtol: float | None = None, atol: float | None = None, eps: float | None = None,
              seed: int = 0, detect_kinks: bool = True) -> CheckReport:
    """Check ``model.hvp`` against central differences of the gradient, and its symmetry.

    For each random direction ``v``: ``H v ≈ (∇L(θ + hv) − ∇L(θ − hv)) / 2h`` (all P
    components compared), and for pairs of directions ``uᵀ(Hv) = vᵀ(Hu)``.  With
    ``coordinates`` > 0 (or "all"), columns ``H eᵢ`` are checked too.  Tolerances as in
    :func:`gradcheck`.

    Returns
    -------
    CheckReport
    """
    theta, rtol, atol, h = _setup(model, theta, rtol, atol, eps)
    rng = np.random.default_rng(seed)
    dt = np.dtype(_dtype_name(model))

    def G(t):
        return np.asarray(model.loss_and_grad(t.astype(dt), X, y)[1], dtype=np.float64)

    def Hv(v):
        return np.asarray(model.hvp(theta.astype(dt), v.astype(dt), X, y), dtype=np.float64)

    probes = []
    dirs = []
    for k in range(n_directions):
        v = rng.normal(size=theta.size)
        v /= np.linalg.norm(v) or 1.0
        dirs.append(v)
        hv = Hv(v)
        probes.append(_vector_probe(f"direction {k}", hv,
                                    lambda hh, v=v: (G(theta + hh * v) - G(theta - hh * v))
                                    / (2 * hh), h, rtol, atol, detect_kinks, model))
        if k:
            u = dirs[k - 1]
            a, b = float(u @ hv), float(v @ Hv(u))
            err = abs(a - b)
            ok = err <= atol + rtol * max(abs(a), abs(b))
            probes.append(Probe(f"symmetry {k - 1},{k}", a, b, err, ok))
    if coordinates:
        for i in _coordinates(theta.size, coordinates, rng):
            e = np.zeros_like(theta)
            e[i] = 1.0
            probes.append(_vector_probe(f"column {param_label(model, int(i))}", Hv(e),
                                        lambda hh, e=e: (G(theta + hh * e) - G(theta - hh * e))
                                        / (2 * hh), h, rtol, atol, detect_kinks, model))
    kinks = [p for p in probes if p.kink]
    passed = all(p.ok or p.kink for p in probes)
    return CheckReport("hessian", passed, rtol, atol, h, probes, kinks)


def _vector_probe(label, a, n_fn, h, rtol, atol, detect_kinks, model):
    n1 = n_fn(h)
    err = np.abs(a - n1)
    tol = atol + rtol * np.maximum(np.abs(a), np.abs(n1))
    ok = bool(np.all(err <= tol))
    i = int(np.argmax(err / tol))
    kink = False
    if not ok and detect_kinks:
        n2 = n_fn(h / 2)
        bad = err > tol
        if np.all(np.abs(a - n2) <= tol):
            ok = True
        elif np.all(np.abs(n1 - n2)[bad] > tol[bad]):
            kink = True
    return Probe(f"{label} → {param_label(model, i)}", float(a[i]), float(n1[i]),
                 float(err[i]), ok, kink)
