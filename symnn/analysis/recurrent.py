r"""Recurrent layers under the microscope: gradient flow through time, the recurrent
Jacobian along a trajectory, and the fixed points of the autonomous recurrence.

* :func:`time_gradient_flow` — ``‖∂ℓ/∂hₜ‖`` against ``t`` for a recurrent layer (the
  cotangents of the derived program, interpreted with the NumPy rules): vanishing and
  exploding gradients made visible.
* :func:`recurrent_jacobians` — ``∂hₜ/∂hₜ₋₁`` along the trajectory of a sample, and its
  spectral radius per step: ``diag(σ'(zₜ)) W_hh`` for an :class:`~symnn.RNN` (σ' from
  ``sympy.diff`` of the activation), the Jacobian through the gates for a
  :class:`~symnn.GRU` (:mod:`symnn.analysis.gru`).
* :func:`fixed_points` — solutions of ``h = cell(x, h)`` (a constant input ``x``, default 0)
  by Newton's method from several starts, with the eigenvalues of the Jacobian there
  (stable when all lie inside the unit circle); RNN and GRU.

Examples
--------
>>> import numpy as np, symnn
>>> net = symnn.Network([symnn.RNN(1, 2, length=4), symnn.Dense(2, 1)], loss="mse")
>>> m = net.compile()
>>> th, X, y = m.init(0), np.ones((3, 4, 1)), np.zeros((3, 1))
>>> flow = time_gradient_flow(m.reference, th, X, y)
>>> flow.norms.shape
(4,)
>>> J, rho = recurrent_jacobians(m.reference, th, X[0])
>>> J.shape, rho.shape
((4, 2, 2), (4,))
>>> fp = fixed_points(net, m.unflatten(th))
>>> bool(np.allclose(fp[0].h, 0.0))    # b = 0 at initialisation: h = 0 is a fixed point
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symnn.analysis.gru import GRUCell
from symnn.analysis.persample import evaluate_program
from symnn.declare.layers import layer_numbers
from symnn.declare.recurrent import GRU, RNN
from symnn.errors import AnalysisError
from symnn.ops._numpy import numpy_function

__all__ = ["TimeGradientFlow", "time_gradient_flow", "recurrent_jacobians", "FixedPoint",
           "fixed_points"]


def _recurrent_layer(declared, layer: int | None, kinds=(RNN, GRU)):
    """(layer object, l) of the recurrent layer numbered ``layer`` (default: the first)."""
    found = [(la, l) for la, l in layer_numbers(declared) if isinstance(la, kinds)]
    names = "/".join(k.__name__ for k in kinds)
    if not found:
        raise AnalysisError(f"the network has no {names} layer")
    if layer is None:
        return found[0]
    for la, l in found:
        if l == layer:
            return la, l
    raise AnalysisError(f"no {names} layer is numbered {layer}; the network's are "
                        f"{[l for _, l in found]}")


def _gru_steps(model) -> bool:
    """Whether the network has a GRU looped over time (:mod:`symnn.ops.scan_gru`): then
    the analyses read its unrolled twin (same parameters and numbers; the steps' states
    are values there)."""
    declared = getattr(getattr(model, "derived", None), "declared", None)
    return any(isinstance(la, GRU) and la.looped for la in getattr(declared, "layers", ()))


def _check_gru_steps(la) -> None:
    if isinstance(la, GRU) and la.looped:
        raise AnalysisError(f"{la!r} is looped over time with T = {la.length} > "
                            "MAX_UNROLLED_STEPS; the per-step analyses read its steps in "
                            "the unrolled form: analyse a shorter sequence")


@dataclass
class TimeGradientFlow:
    """``norms[t−1] = ⟨‖∂ℓ/∂hₜ‖⟩`` (the mean over the batch) of a recurrent layer ``l``;
    ``ratio = norms[0] / norms[−1]`` (≪ 1: the gradient vanishes going back in time)."""

    layer: int
    norms: np.ndarray
    ratio: float

    def __str__(self) -> str:
        return (f"layer {self.layer}: ‖∂ℓ/∂hₜ‖ from t = 1 to T: "
                + np.array2string(self.norms, precision=3) + f"; first/last = {self.ratio:.3g}")


def _state_vars(derived, l: int, T: int) -> list:
    by_name = {op.out.name: op.out for op in derived.forward_ops}
    out = []
    for t in range(1, T + 1):
        v = by_name.get(f"h{l}_{t}", by_name.get(f"z{l}_{t}"))
        out.append(v)
    return out


def time_gradient_flow(model, theta, X, y, layer: int | None = None) -> TimeGradientFlow:
    """``‖∂ℓ/∂hₜ‖`` for t = 1 … T of a recurrent layer (default: the first), each the
    batch mean of the per-sample norms — the total derivative through every later step
    (what backpropagation through time carries back; with ``truncate``, the truncated one).

    ``model``: a compiled model or its reference.
    """
    ev = evaluate_program(model, theta, X, y, steps=_gru_steps(model))
    la, l = _recurrent_layer(ev.derived.declared, layer)
    _check_gru_steps(la)
    cot = ev.derived.cotangent
    if getattr(la, "looped", False):
        return _looped_flow(model, theta, ev, la, l)
    norms = []
    for v in _state_vars(ev.derived, l, la.length):
        g = cot.get(v)
        if g is None or not hasattr(g, "name"):
            norms.append(0.0)
            continue
        norms.append(float(np.mean(np.linalg.norm(np.asarray(ev.env[g]), axis=1))))
    norms = np.array(norms)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(norms[0] / norms[-1]) if norms[-1] else float("inf")
    return TimeGradientFlow(l, norms, ratio)


def _looped_flow(model, theta, ev, la: RNN, l: int) -> TimeGradientFlow:
    """:func:`time_gradient_flow` of an RNN looped over time (:mod:`symnn.ops.scan`): from
    the cotangents of ``u`` (``a``: BPTT's total one of ``z``, which ``u`` shares) and of
    ``h`` (``ḡ``, what later layers send), ``∂ℓ/∂hₜ = ḡₜ + W_hhᵀ aₜ₊₁`` (no second term
    across a cut)."""
    from symnn.ops.scan import linked

    T, H = la.length, la.n_hidden
    by_name = {op.out.name: op.out for op in ev.derived.forward_ops}
    u, h = by_name[f"u{l}"], by_name.get(f"h{l}")
    W = np.asarray(model.unflatten(np.asarray(theta))[f"W_hh{l}"], float)

    def cot(v):
        g = ev.derived.cotangent.get(v) if v is not None else None
        return None if g is None or not hasattr(g, "name") else np.asarray(ev.env[g], float)

    a = cot(u)
    B = ev.env[ev.derived.x].shape[0]
    a = np.zeros((B, T, H)) if a is None else a.reshape(B, T, H)
    if h is None:  # identity activation: h = z, a is already the total cotangent
        G = a
    else:
        gh = cot(h)
        G = np.zeros((B, T, H)) if gh is None else gh.reshape(B, T, H).copy()
        for t in range(T - 1):
            if linked(T, la.truncate or 0, t + 1):
                G[:, t] += a[:, t + 1] @ W
    norms = np.mean(np.linalg.norm(G, axis=2), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(norms[0] / norms[-1]) if norms[-1] else float("inf")
    return TimeGradientFlow(l, norms, ratio)


def _dsigma(layer: RNN):
    z = sp.Symbol("z", real=True)
    return numpy_function((z,), sp.diff(layer.act().apply(z), z))


def recurrent_jacobians(model, theta, x, layer: int | None = None):
    """``(J, ρ)``: ``J[t−1] = ∂hₜ/∂hₜ₋₁`` along the trajectory of one sample ``x`` (shape
    ``(T, n_in)``, or the network's input row), ``J[0]`` the map from ``h₀``; ``ρ[t−1]`` its
    spectral radius.  For an :class:`~symnn.RNN` layer ``diag(σ'(zₜ)) W_hh``; for a
    :class:`~symnn.GRU` the Jacobian through its gates (:class:`symnn.analysis.gru.GRUCell`)
    at the states and inputs the derived program computes."""
    x = np.asarray(x, float)
    X = x.reshape(1, -1)
    y = np.zeros((1, model.n_outputs))
    ev = evaluate_program(model, theta, X, y, steps=_gru_steps(model))
    la, l = _recurrent_layer(ev.derived.declared, layer)
    _check_gru_steps(la)
    params = model.unflatten(np.asarray(theta))
    by_name = {op.out.name: op.out for op in ev.derived.forward_ops}
    J = []
    if isinstance(la, GRU):  # issue 13: the GRU's Jacobian through its gates
        cell = GRUCell.from_params(params, l)
        for t in range(1, la.length + 1):
            xt, h = (np.asarray(ev.env[by_name[n]], float)[0]
                     for n in (f"x{l}_{t}", f"h{l}_{t - 1}"))
            J.append(cell.jacobians(xt, h)[0])
    else:
        W = np.asarray(params[f"W_hh{l}"], float)
        ds = _dsigma(la)
        zs = (np.asarray(ev.env[by_name[f"z{l}"]], float)[0].reshape(la.length, -1)
              if la.looped else None)  # looped over time: one (T, H) value
        for t in range(1, la.length + 1):
            z = zs[t - 1] if zs is not None else np.asarray(
                ev.env[by_name[f"z{l}_{t}"]], float)[0]
            J.append(np.broadcast_to(ds(z), z.shape)[:, None] * W)
    J = np.array(J)
    rho = np.array([float(np.max(np.abs(np.linalg.eigvals(j)))) for j in J])
    return J, rho


@dataclass
class FixedPoint:
    """A solution ``h`` of ``h = cell(x, h)`` and the eigenvalues of ``∂cell/∂h`` there."""

    h: np.ndarray
    eigenvalues: np.ndarray
    residual: float

    @property
    def stable(self) -> bool:
        """All eigenvalues strictly inside the unit circle (a local attractor)."""
        return bool(np.max(np.abs(self.eigenvalues)) < 1.0)


def _newton(step, H: int, starts: int, seed: int, tol: float, max_iter: int):
    """Distinct solutions of ``h = f(h)`` by Newton from 0 and random points of [−1, 1]ᴴ;
    ``step(h) -> (f(h), ∂f/∂h)``."""
    rng = np.random.default_rng(seed)
    inits = [np.zeros(H)] + [rng.uniform(-1, 1, H) for _ in range(starts - 1)]
    found: list[FixedPoint] = []
    for h in inits:
        for _ in range(max_iter):
            f, Jf = step(h)
            F = h - f
            if not np.all(np.isfinite(F)) or np.linalg.norm(F) < tol:
                break
            try:
                h = h - np.linalg.solve(np.eye(H) - Jf, F)
            except np.linalg.LinAlgError:
                break
        f, Jf = step(h)
        res = float(np.linalg.norm(h - f))
        if not np.isfinite(res) or res > 1e-8:
            continue
        if any(np.linalg.norm(h - p.h) < 1e-8 for p in found):
            continue
        found.append(FixedPoint(h, np.linalg.eigvals(Jf), res))
    return sorted(found, key=lambda p: float(np.linalg.norm(p.h)))


def fixed_points(net, params: dict, layer: int | None = None, *,
                 x: np.ndarray | None = None, starts: int = 8,
                 seed: int = 0, tol: float = 1e-12, max_iter: int = 100) -> list[FixedPoint]:
    """Fixed points ``h* = cell(x, h*)`` of a recurrent layer's recurrence under a constant
    input ``x`` (default 0): for an :class:`~symnn.RNN` ``h = σ(W_hh h + W_xh x + b)``, for
    a :class:`~symnn.GRU` its gated update (:class:`symnn.analysis.gru.GRUCell`).  Newton's
    method on ``F(h) = h − cell(x, h)`` from ``h = 0`` and ``starts − 1`` random points in
    ``[−1, 1]``; distinct solutions (to 1e-8), sorted by norm, each with the eigenvalues of
    ``∂cell/∂h`` there.  ``params``: ``{name: array}`` (``model.unflatten(θ)``)."""
    la, l = _recurrent_layer(net, layer)
    H = la.n_hidden
    x = np.zeros(la.n_in) if x is None else np.asarray(x, float).reshape(-1)
    if x.shape != (la.n_in,):
        raise AnalysisError(f"fixed_points: x must hold the layer's {la.n_in} input "
                            f"features, got shape {x.shape}")
    if isinstance(la, GRU):  # issue 13
        cell = GRUCell.from_params(params, l)
        return _newton(lambda h: (cell(x, h), cell.jacobians(x, h)[0]), H, starts, seed, tol,
                       max_iter)
    W = np.asarray(params[f"W_hh{l}"], float)
    b = np.asarray(params[f"b{l}"], float)
    if x.any():
        b = b + np.asarray(params[f"W_xh{l}"], float) @ x
    z = sp.Symbol("z", real=True)
    f, ds = numpy_function((z,), la.act().apply(z)), _dsigma(la)

    def step(h):
        zz = W @ h + b
        return (np.broadcast_to(f(zz), h.shape),
                np.broadcast_to(ds(zz), h.shape)[:, None] * W)

    return _newton(step, H, starts, seed, tol, max_iter)
