"""The probes behind :mod:`symnn.check`: one analytic directional derivative against
central differences, with the retries that tell a kink from a wrong derivative, and the
random-direction and blocked-coordinate probes of a gradient.  The method is described in
the docs of :mod:`symnn.check`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from symnn.errors import ArgumentError

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


# -- differences ---------------------------------------------------------------------------

def _scale(*values) -> np.ndarray:
    """The magnitude the rounding of a difference is relative to (elementwise; a vector's
    small components are measured against its larger ones too)."""
    with np.errstate(all="ignore"):
        scale = np.abs(values[0])
        for v in values[1:]:
            scale = np.maximum(scale, np.abs(v))
        if scale.ndim:
            scale = np.maximum(scale, 1e-3 * float(np.max(scale, initial=0.0)))
    return scale


class _Differences:
    """Difference quotients of ``f`` along ``s`` at ``theta``, each with its rounding
    noise."""

    def __init__(self, f: Callable, theta: np.ndarray, s: np.ndarray, emach: float) -> None:
        self.f, self.theta, self.s, self.emach = f, theta, s, emach
        self._f0: np.ndarray | None = None

    def at(self, t: float) -> np.ndarray:
        return np.asarray(self.f(self.theta + t * self.s), np.float64)

    def central(self, hh: float):
        fp, fm = self.at(hh), self.at(-hh)
        scale = _scale(fp, fm)
        with np.errstate(all="ignore"):  # a non-finite value fails the probe, no warning
            return (fp - fm) / (2 * hh), NOISE * self.emach * scale / hh

    def one_sided(self, hh: float, sign: int):
        """Second-order one-sided difference on the side ``sign``."""
        f1, f2 = self.at(sign * hh), self.at(sign * 2 * hh)
        if self._f0 is None:
            self._f0 = np.asarray(self.f(self.theta), np.float64)
        base = self._f0
        scale = _scale(f1, f2, base)
        with np.errstate(all="ignore"):
            return (sign * (-f2 + 4 * f1 - 3 * base) / (2 * hh),
                    4 * NOISE * self.emach * scale / hh)


# -- one comparison, with kink handling ------------------------------------------------------

def _compare(label: str, a, f: Callable, theta: np.ndarray, s: np.ndarray, h: float,
             tol0: Callable, emach: float, detect_kinks: bool, kind: str = "coordinate",
             namer: Callable[[int], str] | None = None) -> Probe:
    """Compare ``a`` (scalar or vector, the analytic directional derivative along ``s``)
    with central differences of ``f`` (scalar or vector valued) along ``s``.

    ``tol0(a, n)`` is the elementwise tolerance without the rounding noise; ``namer(i)``
    names component i of a vector comparison (the worst one is reported)."""
    d = _Differences(f, theta, s, emach)
    a = np.asarray(a, np.float64)
    n0, z0 = d.central(h)
    with np.errstate(all="ignore"):
        err0 = np.abs(a - n0)
        tol_first = tol0(a, n0) + z0
        good = err0 <= tol_first  # False wherever anything is NaN or ±inf
        ratio = np.where(np.isfinite(err0), err0 / np.where(tol_first > 0, tol_first, 1e-300),
                         np.inf)
    i = int(np.argmax(ratio)) if a.ndim else 0

    def probe(ok: bool, kink: bool) -> Probe:
        if a.ndim:
            lab = f"{label} → {namer(i)}" if namer is not None else label
            return Probe(lab, float(a[i]), float(np.ravel(n0)[i]), float(np.ravel(err0)[i]),
                         ok, kink, float(np.ravel(tol_first)[i]), kind)
        return Probe(label, float(a), float(n0), float(err0), ok, kink, float(tol_first), kind)

    if not (np.all(np.isfinite(n0)) and np.all(np.isfinite(a))):
        detect_kinks = False  # nothing to retry: the values themselves are not finite
    if np.all(good) or not detect_kinks:
        return probe(bool(np.all(good)), False)
    # retry at smaller steps (and Richardson), then one-sided, before counting a failure
    good, seq, noise = _retry_smaller(a, d, h, tol0, err0, good, n0, z0)
    good = _retry_one_sided(a, d, h, tol0, err0, good)
    if np.all(good):
        return probe(True, bool(np.any(err0 > 100 * tol_first)))
    # no step agreed: a jump (estimates diverge as the step shrinks) or a wrong derivative
    return probe(False, _is_jump(a, d, h, tol0, ~good, seq, noise))


def _retry_smaller(a, d: _Differences, h, tol0, err0, good, n0, z0):
    """Central differences (and Richardson extrapolation) at steps h/4, h/16, h/64; returns
    the components now agreeing, and the estimates and noises by step."""
    seq, noise = [n0], [z0]
    for div in SHRINK:
        nk, zk = d.central(h / div)
        rich = (16 * nk - seq[-1]) / 15
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
    return good, seq, noise


def _retry_one_sided(a, d: _Differences, h, tol0, err0, good):
    """One-sided differences, each side, at the steps whose noise allows it."""
    for div in SHRINK:
        if np.all(good):
            break
        for sign in (1, -1):
            no, zo = d.one_sided(h / div, sign)
            good = good | ((np.abs(a - no) <= tol0(a, no) + zo)
                           & (zo <= np.maximum(0.25 * err0, tol0(a, no))))
    return good


def _is_jump(a, d: _Differences, h, tol0, bad, seq, noise) -> bool:
    """Whether the failing components ``bad`` sit on a non-smooth point rather than show a
    wrong derivative.

    θ exactly on a kink (a ReLU pre-activation of exactly 0: zero inputs and zero biases):
    the one-sided derivatives differ from each other at every step, so the loss is not
    differentiable along s here and no difference quotient can judge the convention
    (relu'(0) = 0).  A wrong derivative of a smooth function has equal one-sided limits.
    Near a kink the estimates diverge as the step shrinks instead of converging."""
    right, z_right = d.one_sided(h / SHRINK[0], 1)
    left, z_left = d.one_sided(h / SHRINK[0], -1)
    with np.errstate(all="ignore"):
        jump = np.abs(right - left) > tol0(a, right) + 2 * (z_right + z_left)
    if np.all(jump[bad] if a.ndim else jump):
        return True
    if len(seq) >= 3:
        d_last = np.abs(seq[-1] - seq[-2])
        d_prev = np.abs(seq[-2] - seq[-3])
        diverging = (d_last > 0.5 * d_prev) & (d_last > 4 * noise[-1])
        if np.all(diverging[bad] if a.ndim else diverging):
            return True
    return False


def _vector_compare(label, a, f, theta, s, h, rtol, atol, emach, detect_kinks, model, kind):
    return _compare(label, a, f, theta, s, h,
                    lambda a_, n_: atol + rtol * np.maximum(np.abs(a_), np.abs(n_)),
                    emach, detect_kinks, kind, lambda i: param_label(model, i))


# -- the probes of a gradient ---------------------------------------------------------------

def _check_coordinates(coordinates) -> None:
    if isinstance(coordinates, str):
        bad = coordinates not in ("auto", "all")
    else:
        bad = (isinstance(coordinates, bool) or not isinstance(coordinates, (int, np.integer))
               or coordinates < 0)
    if bad:
        raise ArgumentError(f"coordinates must be 'auto', 'all' or an integer ≥ 0, got "
                            f"{coordinates!r}")


def _blocks(coordinates, a: np.ndarray, floor: float, max_blocks: int,
            rng: np.random.Generator) -> list[np.ndarray]:
    """The coordinate blocks to probe: single coordinates ("all", or "auto" with P ≤
    max_blocks, or k sampled ones), else coordinates sorted by magnitude and cut into
    ``max_blocks`` blocks."""
    P = a.size
    if coordinates == "all" or (coordinates == "auto" and P <= max_blocks):
        return [np.array([i]) for i in range(P)]
    if coordinates == "auto":
        w = np.maximum(np.abs(a), floor)
        order = np.argsort(-w, kind="stable")
        m = -(-P // max_blocks)
        return [order[i:i + m] for i in range(0, P, m)]
    k = min(int(coordinates), P)
    return [np.array([i]) for i in np.sort(rng.choice(P, size=k, replace=False))]


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

    def coordinate(i: int) -> Probe:
        e = np.zeros(P)
        e[i] = 1.0
        return _compare(prefix + param_label(model, i), float(a[i]), f, theta, e, h,
                        scalar_tol, emach, detect_kinks)

    _check_coordinates(coordinates)
    # components below `floor` cannot be resolved to rtol by a difference of f (rounding)
    floor = max(atol, NOISE * emach * max(f_theta, 1.0) / h) / max(rtol, 1e-300)
    for k in range(n_directions):
        v = rng.normal(size=P)
        v /= np.linalg.norm(v) or 1.0
        probes.append(_compare(f"{prefix}direction {k}", float(a @ v), f, theta, v, h,
                               scalar_tol, emach, detect_kinks, "direction"))
    for j, S in enumerate(_blocks(coordinates, a, floor, max_blocks, rng)):
        if len(S) == 1:
            probes.append(coordinate(int(S[0])))
            continue
        w = np.maximum(np.abs(a[S]), floor)
        s = np.zeros(P)
        s[S] = rng.choice([-1.0, 1.0], size=len(S)) * (w.min() / w)
        s /= float(np.linalg.norm(s))
        bound = float((np.abs(s[S]) * (atol + rtol * np.abs(a[S]))).max())
        p = _compare(f"{prefix}block {j} ({len(S)} coordinates)", float(a @ s), f, theta, s,
                     h, lambda a_, n_, bound=bound: bound, emach, detect_kinks, "block")
        probes.append(p)
        if not p.ok and not p.kink:
            # resolve the block coordinate by coordinate: name the worst parameter
            probes.extend(q for q in map(coordinate, (int(i) for i in S)) if not q.ok)
    return probes
