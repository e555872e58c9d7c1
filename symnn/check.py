"""Finite-difference checks of compiled derivatives: ``gradcheck``, ``hesscheck``, ``gnvcheck``.

In the spirit of ``torch.autograd.gradcheck`` and autograd's ``check_grads``: each analytic
derivative is compared with central differences of something computed independently of it.

=============  ===========================  ==============================================
checker        analytic                     numeric witness
=============  ===========================  ==============================================
``gradcheck``  ``model.loss_and_grad``      central differences of ``model.loss``
``hesscheck``  ``model.hvp``                central differences of the gradient, and the
                                            symmetry ``uᵀ(Hv) = vᵀ(Hu)``
``gnvcheck``   ``model.gnvp``               ``Jᵀ H_ℓ J v`` built from finite differences of
                                            the loss's input value ``u(θ)`` and of its
                                            cotangent ``∂ℓ/∂u``, evaluated by the uncompiled
                                            NumPy reference (:mod:`symnn.codegen.reference`)
=============  ===========================  ==============================================

**Probes.**  A gradient (or any vector ``a`` claimed to be the gradient of a scalar function
``f``) is probed

* along random unit directions ``v`` — two evaluations each: ``aᵀv ≈ (f(θ + hv) −
  f(θ − hv)) / 2h``;
* along *blocked coordinate* directions, which cover every coordinate whatever P: the
  coordinates are sorted by ``wᵢ = max(|aᵢ|, floor)`` and cut into at most ``max_blocks``
  blocks of similar magnitude; block S is probed along ``sᵢ = ±w_min(S) / wᵢ`` (random
  signs), so that every component of the block contributes equally to ``sᵀa`` and a
  relative error in any *single* component moves ``sᵀa`` as much as it would move that
  component's own coordinate probe.  The tolerance is measured per component:
  ``|sᵀa − FD| ≤ maxᵢ |sᵢ|(atol + rtol·|aᵢ|) + noise``, where ``noise`` is the rounding
  error of the difference (``8 ε |f| / h``).  For P ≤ ``max_blocks`` every block is one
  coordinate.  A failing block is resolved coordinate by coordinate, so the report names
  the worst *parameter*.

**Measured power** (``python benchmarks/check_power.py``; float64, random networks —
tanh 16-24-4 softmax/CE with P = 508, ReLU 10-20-12-2 MSE with P = 500, tanh 64-32-10
softmax/CE with P = 2 410 — batch 32, a new θ, batch and wrong component per trial, one
component multiplied by ``1 + δ``):

* over components drawn uniformly (100 trials per cell): **every** error of δ = 3e-5,
  1e-4 and 1e-3 was caught, at P = 500 and P = 2 410 alike, and no correct kernel failed
  (the sampled-coordinate scheme used before caught δ = 1e-4 in 63, 59 and 39 of 100);
* by magnitude (``--stratified``, 40 trials per band): δ = 1e-4 was caught in **every**
  component with ``|gᵢ| ≥ 1e-5·max(1, |L|)`` (120 of 120); of those with
  ``1e-6 ≤ |gᵢ| / max(1, |L|) < 1e-5``, 5 of 13 at P ≈ 500 and 0 of 34 at P = 2 410.
  With ``max_blocks=64`` (what ``fit`` uses) one of 40 in the 1e-5 … 1e-3 band was
  missed at P = 2 410 (blocks of 38 coordinates: √38 more rounding per probe).

So the detection threshold is a relative error of 1e-4 in any single component with
``|gᵢ| ≥ 1e-5·max(1, |L|)``, whatever P.  Smaller components are below what a finite
difference of the loss can resolve to 1e-4 (the difference of two losses carries about
``8 ε |L| / h ≈ 3e-10·|L|`` of rounding); they are checked to an absolute error of about
that, times √(block size) beyond ``max_blocks`` coordinates.  Exactly-zero components
(dead ReLU units) have no relative error to find.

**Step.**  ``h = eps · max(1, |θ|∞)`` with ``eps = ε^(1/3)`` of the model's dtype (≈ 6e-6 in
float64, ≈ 5e-3 in float32), which balances truncation and rounding error.  Default
tolerances (a per-component bound ``atol + rtol·|a|``, plus the rounding noise):

========  ========  ========
dtype     rtol      atol
========  ========  ========
float64   1e-5      1e-10
float32   5e-2      1e-3
========  ========  ========

**Non-smooth points** (ReLU at 0, |r| at 0).  symnn uses the subgradient convention of the
left piece (``relu'(0) = 0``).  A central difference that straddles a kink measures neither
side, so a probe that fails at step h is retried before it counts: at steps h/4, h/16, h/64
(with Richardson extrapolation), then with one-sided second-order differences on each side
at the smallest step.  If any of these agrees, the probe passes and, when the step-h
estimate was far off, it is listed in ``report.kinks`` ("straddled a kink, agreed at a
smaller or one-sided step").  If none agrees but the estimates *diverge* as the step
shrinks (a jump, not a wrong derivative: a wrong derivative makes them converge to another
value), the probe is excluded from the verdict and listed in ``report.kinks``; so is a
probe whose two one-sided derivatives differ from each other (θ exactly on a kink, as a
ReLU net with zero biases is on an all-zero input row: the loss is not differentiable along
that direction, and no difference quotient can judge the convention).  A smooth function
has equal one-sided limits, so a wrong derivative away from kinks still fails.  A correct
ReLU network with a pre-activation 1e-8 from its kink, or exactly on it, therefore passes
(tested).

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

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from symnn.errors import ArgumentError, ShapeError

__all__ = ["CheckReport", "gradcheck", "hesscheck", "gnvcheck", "TOLERANCES"]

#: Default (rtol, atol) per dtype name.
TOLERANCES = {"float64": (1e-5, 1e-10), "float32": (5e-2, 1e-3)}

#: Rounding error of a difference of two function values, in units of ε·|f| / h.
NOISE = 8.0

#: Steps tried after a failure: h/4, h/16, h/64.
SHRINK = (4.0, 16.0, 64.0)


@dataclass
class Probe:
    """One comparison: a direction, a block of coordinates or a coordinate."""

    label: str
    analytic: float
    numeric: float
    error: float
    ok: bool
    kink: bool = False
    tol: float = 0.0
    #: "direction", "block", "coordinate", "column", "symmetry" or "linearity"
    kind: str = "coordinate"


@dataclass
class CheckReport:
    """Result of :func:`gradcheck` / :func:`hesscheck` / :func:`gnvcheck`; truthy when the
    check passed.

    Attributes
    ----------
    kind : str
        ``"gradient"``, ``"hessian"`` or ``"gauss-newton"``.
    passed : bool
    rtol, atol, step : float
    probes : list of Probe
        Every comparison made (directions first, then blocks / coordinates).
    worst : Probe or None
        The probe with the largest error relative to its tolerance.
    kinks : list of Probe
        Probes whose difference straddled a non-smooth point (passed at a smaller or
        one-sided step, or excluded when no step agreed and the estimates diverged).
    """

    kind: str
    passed: bool
    rtol: float
    atol: float
    step: float
    probes: list = field(default_factory=list)
    kinks: list = field(default_factory=list)

    def _repr_html_(self) -> str:
        """Jupyter: the report, verdict in bold."""
        from symnn.printing.html import report_html

        return report_html(self)

    def __bool__(self) -> bool:
        return self.passed

    @staticmethod
    def _ratio(p: Probe, rtol: float, atol: float) -> float:
        tol = p.tol or (atol + rtol * max(abs(p.analytic), abs(p.numeric)))
        return p.error / tol if tol > 0 else (math.inf if p.error else 0.0)

    @property
    def worst(self) -> Probe | None:
        counted = [p for p in self.probes if not (p.kink and not p.ok)]
        if not counted:
            return None
        return max(counted, key=lambda p: self._ratio(p, self.rtol, self.atol))

    @property
    def worst_parameter(self) -> Probe | None:
        """The worst probe that names a parameter, else :attr:`worst`."""
        counted = [p for p in self.probes if not (p.kink and not p.ok)]
        coords = [p for p in counted if p.kind in ("coordinate", "column")]
        if not coords:  # vector probes along directions name their worst component
            coords = [p for p in counted if p.kind == "direction" and " → " in p.label]
        if not coords:
            return self.worst
        return max(coords, key=lambda p: self._ratio(p, self.rtol, self.atol))

    @property
    def max_error(self) -> float:
        return max((p.error for p in self.probes if not (p.kink and not p.ok)), default=0.0)

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        n_dir = sum(p.kind == "direction" for p in self.probes)
        n_block = sum(p.kind == "block" for p in self.probes)
        n_other = len(self.probes) - n_dir - n_block
        lines = [
            f"{self.kind} check {verdict}: {n_dir} random directions, {n_block} coordinate "
            f"blocks, {n_other} other probes, step {self.step:.2e}, rtol {self.rtol:g}, "
            f"atol {self.atol:g}",
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
            excluded = sum(not p.ok for p in self.kinks)
            lines.append(f"  {len(self.kinks)} probe(s) straddle a non-smooth point "
                         f"({excluded} excluded): "
                         + ", ".join(p.label for p in self.kinks[:5]))
        return "\n".join(lines)

    __repr__ = __str__


def param_label(model, i: int) -> str:
    """Name of flat coordinate ``i``: ``"W1[2, 0]"``."""
    off = 0
    for name, shape in getattr(model, "param_shapes", []):
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


def _setup(model, theta, rtol, atol, eps, what: str):
    if not (hasattr(model, "loss_and_grad") and hasattr(model, "n_params")):
        hint = (" — compile it first: model = net.compile()" if hasattr(model, "compile")
                else "")
        raise ArgumentError(
            f"{what}: expected a compiled model (with loss, loss_and_grad and n_params), got "
            f"{type(model).__name__}{hint}")
    for name, value in (("rtol", rtol), ("atol", atol), ("eps", eps)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating,
                                                              np.integer)):
            raise ArgumentError(f"{what}: {name} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0 or (name == "eps" and value == 0):
            kind = "> 0" if name == "eps" else "≥ 0"
            raise ArgumentError(f"{what}: {name} must be a finite number {kind}, got "
                                f"{value!r}" + (" (the finite-difference step would be 0)"
                                                if name == "eps" else ""))
    try:
        theta = np.asarray(theta, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ArgumentError(f"{what}: θ must be a numeric vector, got "
                            f"{type(theta).__name__}") from err
    if theta.ndim != 1 or theta.size != model.n_params:
        raise ShapeError(
            f"θ has shape {theta.shape}; this model takes a flat vector of {model.n_params} "
            "parameters (see model.init())"
        )
    name = _dtype_name(model)
    d_rtol, d_atol = TOLERANCES.get(name, TOLERANCES["float64"])
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    if eps is None:
        eps = float(np.finfo(np.dtype(name)).eps) ** (1 / 3)
    h = float(eps) * max(1.0, float(np.max(np.abs(theta))) if theta.size else 1.0)
    return theta, rtol, atol, h


def _seed(seed, what: str) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"{what}: seed must be an integer ≥ 0, got {seed!r}")
    return np.random.default_rng(int(seed))


def _machine_eps(model) -> float:
    return float(np.finfo(np.dtype(_dtype_name(model))).eps)


# ------------------------------------------------------------------------------------------
# the comparison, with kink handling
# ------------------------------------------------------------------------------------------


def _compare(label: str, a, f: Callable, theta: np.ndarray, s: np.ndarray, h: float,
             tol0: Callable, emach: float, detect_kinks: bool, kind: str = "coordinate",
             namer: Callable[[int], str] | None = None) -> Probe:
    """Compare ``a`` (scalar or vector, the analytic directional derivative along ``s``)
    with central differences of ``f`` (scalar or vector valued) along ``s``.

    ``tol0(a, n)`` is the elementwise tolerance without the rounding noise; ``namer(i)``
    names component i of a vector comparison (the worst one is reported)."""
    f0_cache: list = []

    def f0():
        if not f0_cache:
            f0_cache.append(np.asarray(f(theta), np.float64))
        return f0_cache[0]

    def central(hh):
        fp = np.asarray(f(theta + hh * s), np.float64)
        fm = np.asarray(f(theta - hh * s), np.float64)
        with np.errstate(all="ignore"):  # a non-finite value fails the probe, no warning
            scale = np.maximum(np.abs(fp), np.abs(fm))
            if scale.ndim:  # a vector: rounding relative to its larger components too
                scale = np.maximum(scale, 1e-3 * float(np.max(scale, initial=0.0)))
            return (fp - fm) / (2 * hh), NOISE * emach * scale / hh

    def one_sided(hh, sign):
        f1 = np.asarray(f(theta + sign * hh * s), np.float64)
        f2 = np.asarray(f(theta + sign * 2 * hh * s), np.float64)
        base = f0()
        with np.errstate(all="ignore"):
            scale = np.maximum(np.maximum(np.abs(f1), np.abs(f2)), np.abs(base))
            if scale.ndim:
                scale = np.maximum(scale, 1e-3 * float(np.max(scale, initial=0.0)))
            return sign * (-f2 + 4 * f1 - 3 * base) / (2 * hh), 4 * NOISE * emach * scale / hh

    a = np.asarray(a, np.float64)
    n0, z0 = central(h)
    with np.errstate(all="ignore"):
        err0 = np.abs(a - n0)
        tol_first = tol0(a, n0) + z0
        good = err0 <= tol_first  # False wherever anything is NaN or ±inf
        ratio = np.where(np.isfinite(err0), err0 / np.where(tol_first > 0, tol_first, 1e-300),
                         np.inf)
    i = int(np.argmax(ratio)) if a.ndim else 0
    if not (np.all(np.isfinite(n0)) and np.all(np.isfinite(a))):
        detect_kinks = False  # nothing to retry: the values themselves are not finite

    def probe(n, ok, kink, err, tol):
        if a.ndim:
            lab = f"{label} → {namer(i)}" if namer is not None else label
            return Probe(lab, float(a[i]), float(np.ravel(n)[i]), float(np.ravel(err)[i]),
                         ok, kink, float(np.ravel(tol)[i]), kind)
        return Probe(label, float(a), float(n), float(err), ok, kink, float(tol), kind)

    if np.all(good) or not detect_kinks:
        return probe(n0, bool(np.all(good)), False, err0, tol_first)
    # retry at smaller steps (and Richardson), then one-sided, before counting a failure
    seq = [n0]
    noise = [z0]
    for div in SHRINK:
        nk, zk = central(h / div)
        prev = seq[-1]
        rich = (16 * nk - prev) / 15
        # a smaller step settles the probe only where it resolves the discrepancy seen at
        # step h (its rounding noise well below it, or below the tolerance itself); else
        # noise would pass a real error
        resolves = zk * 17 / 15 <= np.maximum(0.25 * err0, tol0(a, nk))
        ok_k = (np.abs(a - nk) <= tol0(a, nk) + zk) & resolves
        ok_r = (np.abs(a - rich) <= tol0(a, rich) + zk * 17 / 15) & resolves
        good = good | ok_k | ok_r
        seq.append(nk)
        noise.append(zk)
        if np.all(good):
            break
    for div in SHRINK:  # one-sided, each side, at the steps whose noise allows it
        if np.all(good):
            break
        for sign in (1, -1):
            no, zo = one_sided(h / div, sign)
            good = good | ((np.abs(a - no) <= tol0(a, no) + zo)
                           & (zo <= np.maximum(0.25 * err0, tol0(a, no))))
    far_off = bool(np.any(err0 > 100 * tol_first))
    if np.all(good):
        return probe(n0, True, far_off, err0, tol_first)
    # no step agreed: a jump (estimates diverge as the step shrinks) or a wrong derivative
    bad = ~good
    # θ exactly on a kink (a ReLU pre-activation of exactly 0: zero inputs and zero biases):
    # the one-sided derivatives differ from each other at every step, so the loss is not
    # differentiable along s here and no difference quotient can judge the convention
    # (relu'(0) = 0).  A wrong derivative of a smooth function has equal one-sided limits.
    right, z_right = one_sided(h / SHRINK[0], 1)
    left, z_left = one_sided(h / SHRINK[0], -1)
    with np.errstate(all="ignore"):
        jump = np.abs(right - left) > tol0(a, right) + 2 * (z_right + z_left)
    if np.all(jump[bad] if a.ndim else jump):
        return probe(n0, False, True, err0, tol_first)
    if len(seq) >= 3:
        d_last = np.abs(seq[-1] - seq[-2])
        d_prev = np.abs(seq[-2] - seq[-3])
        diverging = (d_last > 0.5 * d_prev) & (d_last > 4 * noise[-1])
        if np.all(diverging[bad] if a.ndim else diverging):
            return probe(n0, False, True, err0, tol_first)
    return probe(n0, False, False, err0, tol_first)


def _vector_compare(label, a, f, theta, s, h, rtol, atol, emach, detect_kinks, model, kind):
    return _compare(label, a, f, theta, s, h,
                    lambda a_, n_: atol + rtol * np.maximum(np.abs(a_), np.abs(n_)),
                    emach, detect_kinks, kind, lambda i: param_label(model, i))


def _gradient_probes(model, f: Callable, a: np.ndarray, theta: np.ndarray, h: float,
                     rtol: float, atol: float, emach: float, rng: np.random.Generator,
                     n_directions: int, coordinates, max_blocks: int, detect_kinks: bool,
                     prefix: str = "") -> list[Probe]:
    """Probes of ``a`` as the gradient of the scalar function ``f`` at ``theta``."""
    P = theta.size
    probes: list[Probe] = []
    f_theta = abs(float(f(theta))) if P else 0.0

    def scalar_tol(a_, n_):
        return atol + rtol * max(abs(float(a_)), abs(float(n_)))

    if (coordinates not in ("auto", "all") if isinstance(coordinates, str) else (
            isinstance(coordinates, bool) or not isinstance(coordinates, (int, np.integer))
            or coordinates < 0)):
        raise ArgumentError(f"coordinates must be 'auto', 'all' or an integer ≥ 0, got "
                            f"{coordinates!r}")
    # components below `floor` cannot be resolved to rtol by a difference of f (rounding)
    floor = max(atol, NOISE * emach * max(f_theta, 1.0) / h) / max(rtol, 1e-300)
    for k in range(n_directions):
        v = rng.normal(size=P)
        v /= np.linalg.norm(v) or 1.0
        probes.append(_compare(f"{prefix}direction {k}", float(a @ v), f, theta, v, h,
                               scalar_tol, emach, detect_kinks, "direction"))
    if coordinates == "all" or (coordinates == "auto" and P <= max_blocks):
        blocks = [np.array([i]) for i in range(P)]
    elif coordinates == "auto":
        w = np.maximum(np.abs(a), floor)
        order = np.argsort(-w, kind="stable")
        m = -(-P // max_blocks)
        blocks = [order[i:i + m] for i in range(0, P, m)]
    else:
        k = min(int(coordinates), P)
        blocks = [np.array([i]) for i in np.sort(rng.choice(P, size=k, replace=False))]
    for j, S in enumerate(blocks):
        if len(S) == 1:
            i = int(S[0])
            e = np.zeros(P)
            e[i] = 1.0
            probes.append(_compare(prefix + param_label(model, i), float(a[i]), f, theta, e,
                                   h, scalar_tol, emach, detect_kinks))
            continue
        w = np.maximum(np.abs(a[S]), floor)
        s = np.zeros(P)
        s[S] = rng.choice([-1.0, 1.0], size=len(S)) * (w.min() / w)
        norm = float(np.linalg.norm(s))
        s /= norm
        per = np.abs(s[S]) * (atol + rtol * np.abs(a[S]))
        bound = float(per.max())
        p = _compare(f"{prefix}block {j} ({len(S)} coordinates)", float(a @ s), f, theta, s,
                     h, lambda a_, n_, bound=bound: bound, emach, detect_kinks, "block")
        if not p.ok and not p.kink:
            # resolve the block coordinate by coordinate: name the worst parameter
            subs = []
            for i in S:
                e = np.zeros(P)
                e[int(i)] = 1.0
                subs.append(_compare(prefix + param_label(model, int(i)), float(a[int(i)]), f,
                                     theta, e, h, scalar_tol, emach, detect_kinks))
            probes.append(p)
            probes.extend(q for q in subs if not q.ok)
            continue
        probes.append(p)
    return probes


def _verdict(kind, probes, rtol, atol, h) -> CheckReport:
    kinks = [p for p in probes if p.kink]
    passed = all(p.ok or p.kink for p in probes)
    return CheckReport(kind, passed, rtol, atol, h, probes, kinks)


# ------------------------------------------------------------------------------------------
# the checkers
# ------------------------------------------------------------------------------------------


def gradcheck(model, theta, X, y, *, n_directions: int = 8, coordinates: Any = "auto",
              max_blocks: int = 256, rtol: float | None = None, atol: float | None = None,
              eps: float | None = None, seed: int = 0,
              detect_kinks: bool = True) -> CheckReport:
    """Check ``model.loss_and_grad`` against central differences of ``model.loss``.

    Detects a relative error of 1e-4 in any single gradient component with
    ``|gᵢ| ≥ 1e-5·max(1, |L|)``, whatever P: measured over random networks with P = 500
    and P = 2 410, every such error was caught and no correct kernel failed (see the
    module docs and ``benchmarks/check_power.py``).  Costs
    ``2·(n_directions + min(P, max_blocks))`` loss evaluations when it passes.

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
        "auto": every coordinate, one by one when P ≤ ``max_blocks``, else in
        ``max_blocks`` magnitude-scaled blocks (see the module docs); "all": every
        coordinate one by one; an int k: k coordinates sampled at random (no guarantee);
        0: none.
    max_blocks : int
        Most coordinate probes under "auto".
    rtol, atol, eps : float, optional
        Per-component tolerances and relative step; defaults depend on the dtype.
    seed : int
    detect_kinks : bool
        Retry failing probes at smaller and one-sided steps, and exclude those that
        straddle a non-smooth point (reported in ``report.kinks``).

    Returns
    -------
    CheckReport
        Truthy when every counted probe is within tolerance.

    Raises
    ------
    ArgumentError
        ``model`` is not a compiled model, or ``eps`` ≤ 0, a tolerance < 0, a bad seed.
    ShapeError
        θ of the wrong shape.
    """
    theta, rtol, atol, h = _setup(model, theta, rtol, atol, eps, "gradcheck")
    rng = _seed(seed, "gradcheck")
    _count("n_directions", n_directions, "gradcheck")
    _count("max_blocks", max_blocks, "gradcheck", minimum=1)
    dt = np.dtype(_dtype_name(model))
    _, g = model.loss_and_grad(theta.astype(dt), X, y)
    g = np.asarray(g, dtype=np.float64)

    def L(t):
        return float(model.loss(t.astype(dt), X, y))

    probes = _gradient_probes(model, L, g, theta, h, rtol, atol, _machine_eps(model), rng,
                              n_directions, coordinates, max_blocks, detect_kinks)
    return _verdict("gradient", probes, rtol, atol, h)


def _count(name, value, what, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArgumentError(f"{what}: {name} must be an integer ≥ {minimum}, got {value!r}")


def _linearity_probe(kind, product, theta, atol) -> Probe:
    """``product(θ, 0)`` must be 0: a product with the zero vector is zero."""
    z = np.asarray(product(np.zeros_like(theta)), np.float64)
    err = float(np.max(np.abs(z), initial=0.0))
    return Probe(f"linearity: {kind}(θ, v=0) = 0", err, 0.0, err, err <= atol, False, atol,
                 "linearity")


def hesscheck(model, theta, X, y, *, n_directions: int = 4, coordinates: Any = 0,
              rtol: float | None = None, atol: float | None = None, eps: float | None = None,
              seed: int = 0, detect_kinks: bool = True) -> CheckReport:
    """Check ``model.hvp`` against central differences of the gradient, and its symmetry.

    For each random direction ``v``: ``H v ≈ (∇L(θ + hv) − ∇L(θ − hv)) / 2h`` (all P
    components compared, each to ``atol + rtol·|(Hv)ᵢ|`` plus the rounding noise), and for
    pairs of directions ``uᵀ(Hv) = vᵀ(Hu)``; ``H·0 = 0``.  With ``coordinates`` > 0 (or
    "all"), columns ``H eᵢ`` are checked too.  Near a ReLU kink the gradient jumps: a
    failing probe is retried at steps h/4, h/16, h/64 and one-sided, and excluded only if
    its estimates diverge (see the module docs).  Measured (``benchmarks/check_power.py
    --products``, P ≈ 500): one component of ``H v`` wrong by 1e-4 failed the check in
    20 of 20 trials, correct kernels in 0 of 20.

    Returns
    -------
    CheckReport
    """
    theta, rtol, atol, h = _setup(model, theta, rtol, atol, eps, "hesscheck")
    rng = _seed(seed, "hesscheck")
    _count("n_directions", n_directions, "hesscheck")
    dt = np.dtype(_dtype_name(model))
    emach = _machine_eps(model)

    def G(t):
        return np.asarray(model.loss_and_grad(t.astype(dt), X, y)[1], dtype=np.float64)

    def Hv(v):
        return np.asarray(model.hvp(theta.astype(dt), v.astype(dt), X, y), dtype=np.float64)

    probes = [_linearity_probe("hvp", Hv, theta, atol)]
    dirs = []
    for k in range(n_directions):
        v = rng.normal(size=theta.size)
        v /= np.linalg.norm(v) or 1.0
        dirs.append(v)
        hv = Hv(v)
        probes.append(_vector_compare(f"direction {k}", hv, G, theta, v, h, rtol, atol,
                                      emach, detect_kinks, model, "direction"))
        if k:
            u = dirs[k - 1]
            a, b = float(u @ hv), float(v @ Hv(u))
            err = abs(a - b)
            tol = max(atol, 1e-7 * float(np.max(np.abs(hv), initial=0.0))) + rtol * max(
                abs(a), abs(b))
            probes.append(Probe(f"symmetry {k - 1},{k}", a, b, err, err <= tol, False, tol,
                                "symmetry"))
    if coordinates:
        if isinstance(coordinates, str) and coordinates != "all":
            raise ArgumentError(f"hesscheck: coordinates must be 'all' or an integer ≥ 0, got "
                                f"{coordinates!r}")
        idx = (np.arange(theta.size) if coordinates == "all" else
               np.sort(rng.choice(theta.size, size=min(int(coordinates), theta.size),
                                  replace=False)))
        for i in idx:
            e = np.zeros_like(theta)
            e[i] = 1.0
            probes.append(_vector_compare(f"column {param_label(model, int(i))}", Hv(e), G,
                                          theta, e, h, rtol, atol, emach, detect_kinks, model,
                                          "column"))
    return _verdict("hessian", probes, rtol, atol, h)


def _penalty_curvature(model) -> np.ndarray:
    """The diagonal of ∇²R for the declared penalties: 2λ per L2-penalised coordinate (the
    penalty is λΣθ²), 0 for L1 (λΣ|θ| is piecewise linear)."""
    curv = np.zeros(model.n_params)
    derived = model.reference.derived
    offsets = {}
    off = 0
    for name, shape in model.param_shapes:
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        offsets[name] = (off, n)
        off += n
    for pen, param, idx in derived.meta.get("penalties", ()):
        if pen.kind != "l2":
            continue
        o, n = offsets[param.name]
        block = curv[o:o + n]
        if idx is None:
            block += 2 * pen.lam
        else:
            block[np.asarray(idx, dtype=np.int64)] += 2 * pen.lam
    return curv


def gnvcheck(model, theta, X, y, *, n_directions: int = 2, coordinates: Any = "auto",
             max_blocks: int = 256, rtol: float | None = None, atol: float | None = None,
             eps: float | None = None, seed: int = 0,
             detect_kinks: bool = True) -> CheckReport:
    """Check ``model.gnvp`` (the Gauss-Newton product ``G v = Jᵀ H_ℓ J v + ∇²R v``) by an
    independent numeric route.

    ``u(θ)`` is the value the loss reads (the network output, or the logits of a fused
    softmax/sigmoid output) and ``g(u) = ∂ℓᵢ/∂uᵢ`` its per-sample cotangent, both evaluated by the
    uncompiled NumPy reference.  For a random unit ``v``:

    1. ``J v ≈ (u(θ + hv) − u(θ − hv)) / 2h``;
    2. ``r = H_ℓ J v ≈ (g(u + a·Jv) − g(u − a·Jv)) / 2a`` (only u varies);
    3. ``Jᵀ r`` is the gradient of the scalar ``φ(θ') = (1/B) Σ r ⊙ u(θ')``, so
       ``gnvp(v) − ∇²R v`` is probed as that gradient exactly as :func:`gradcheck` probes
       a gradient: random directions and blocked coordinates covering every component;
    4. the penalties' curvature ``∇²R v`` comes from their definitions (2λ per
       L2-penalised coordinate, 0 for L1), and ``gnvp(θ, 0) = 0`` is checked.

    Parameters are those of :func:`gradcheck`; the power per component is the same
    (measured, P ≈ 500: one component of ``G v`` wrong by 1e-4 failed the check in 20 of
    20 trials, correct kernels in 0 of 20).

    Returns
    -------
    CheckReport
    """
    from symnn.codegen.reference import evaluate
    from symnn.derive import _ops_between

    theta, rtol, atol, h = _setup(model, theta, rtol, atol, eps, "gnvcheck")
    rng = _seed(seed, "gnvcheck")
    _count("n_directions", n_directions, "gnvcheck", minimum=1)
    _count("max_blocks", max_blocks, "gnvcheck", minimum=1)
    ref = getattr(model, "reference", None)
    if ref is None or not hasattr(model, "gnvp"):
        raise ArgumentError("gnvcheck: expected a compiled symnn model (with gnvp and a "
                            f"reference), got {type(model).__name__}")
    dt = np.dtype(_dtype_name(model))
    emach = _machine_eps(model)
    d = ref.derived
    u_var, g_var = d.meta["output"], d.meta["g_output"]
    Xa = ref._X(X)
    Ya = ref._Y(y, Xa.shape[0])
    fwd = list(d.forward_ops)

    def U(t):
        return np.asarray(evaluate(fwd, ref._env(t, Xa, Ya))[u_var], np.float64)

    env0 = evaluate(fwd, ref._env(theta, Xa, Ya))
    U0 = np.asarray(env0[u_var], np.float64)
    n_samples = max(Xa.shape[0], 1)
    loss_part = _ops_between(d, u_var, g_var)

    def g_of(u_val):
        env = dict(env0)
        env[u_var] = u_val
        return np.asarray(evaluate(loss_part, env)[g_var], np.float64)

    curv = _penalty_curvature(model)

    def GNv(v):
        return np.asarray(model.gnvp(theta.astype(dt), v.astype(dt), X, y), np.float64)

    probes = [_linearity_probe("gnvp", GNv, theta, atol)]
    u_scale = max(1.0, float(np.max(np.abs(U0), initial=0.0)))
    for k in range(n_directions):
        v = rng.normal(size=theta.size)
        v /= np.linalg.norm(v) or 1.0
        a = GNv(v) - curv * v
        Jv = (U(theta + h * v) - U(theta - h * v)) / (2 * h)
        jmax = float(np.max(np.abs(Jv), initial=0.0))
        if jmax == 0.0:
            r = np.zeros_like(U0)
        else:
            step = (h / max(1.0, float(np.max(np.abs(theta), initial=0.0)))) * u_scale / jmax
            r = (g_of(U0 + step * Jv) - g_of(U0 - step * Jv)) / (2 * step)

        def phi(t, r=r):  # g is the per-sample cotangent ∂ℓᵢ/∂uᵢ; L is their mean
            return float(np.sum(r * U(t))) / n_samples

        probes.extend(_gradient_probes(model, phi, a, theta, h, rtol, atol, emach, rng, 2,
                                       coordinates, max_blocks, detect_kinks,
                                       prefix=f"v{k}: "))
    return _verdict("gauss-newton", probes, rtol, atol, h)
