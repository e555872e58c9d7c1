"""Lipschitz bounds: the product-of-norms bound beside the empirical input-Jacobian norm.

For a network x ↦ f_L(W_L … f_1(W_1 x + b_1) …) the input Jacobian is
J = D_L W_L ⋯ D_1 W_1 with D_l diagonal, |D_l| ≤ sup|f_l'|, so

    ‖J(x)‖₂ ≤ Π_l ‖W_l‖₂ · Π_l sup_z |f_l'(z)|.

Each sup|f'| is derived from the activation's own symbolic derivative: SymPy
differentiates the activation, its critical points (f'' = 0) and limits at ±∞ are located,
and the largest |f'| there is the bound (printed exactly where SymPy recognises the value,
e.g. sup|σ'| = 1/4).  Softmax enters with 1/2: its Jacobian diag(p) − ppᵀ has, by
Gershgorin, every eigenvalue ≤ 2pᵢ(1 − pᵢ) ≤ 1/2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import sympy as sp

from symnn.analysis._common import check_theta
from symnn.declare.activations import Activation
from symnn.declare.layers import Factor, layer_numbers
from symnn.declare.network import Network
from symnn.errors import SymnnError
from symnn.functions import NUMPY_IMPLS

__all__ = ["derivative_bound", "lipschitz_bound", "LipschitzReport"]

_BOUNDS: dict = {}


def derivative_bound(act: Activation) -> sp.Expr:
    """sup over real z of |f'(z)| for an activation, derived from its symbolic derivative.

    Examples
    --------
    >>> from symnn.declare.activations import ACTIVATIONS
    >>> derivative_bound(ACTIVATIONS["sigmoid"])
    1/4
    >>> derivative_bound(ACTIVATIONS["tanh"])
    1
    """
    key = act.key or act.name
    if key in _BOUNDS:
        return _BOUNDS[key]
    z = sp.Symbol("z", real=True)
    d1 = sp.diff(act.apply(z), z)
    d2 = sp.diff(d1, z)
    f1 = sp.lambdify((z,), d1, modules=[NUMPY_IMPLS, "numpy", "scipy"])
    f2 = sp.lambdify((z,), d2, modules=[NUMPY_IMPLS, "numpy", "scipy"])
    grid = np.concatenate([np.linspace(-40, 40, 8001), [-1e3, 1e3]])
    with np.errstate(all="ignore"):  # piecewise forms evaluate every branch
        vals = np.abs(np.broadcast_to(np.asarray(f1(grid), float), grid.shape))
        g2 = np.broadcast_to(np.asarray(f2(grid[:-2]), float), grid[:-2].shape)
    cands = [float(np.nanmax(vals))]
    for i in np.nonzero(np.sign(g2[:-1]) * np.sign(g2[1:]) < 0)[0]:
        try:
            r = scipy.optimize.brentq(lambda t: float(f2(t)), grid[i], grid[i + 1], xtol=1e-14)
        except ValueError:
            continue
        cands.append(abs(float(f1(r))))
    for lim in (sp.oo, -sp.oo):
        try:
            v = sp.limit(d1.rewrite(sp.exp), z, lim)
            if v.is_finite:
                cands.append(abs(float(v)))
        except (NotImplementedError, TypeError, ValueError):  # pragma: no cover
            pass
    best = max(cands)
    exact = sp.Rational(best).limit_denominator(64)
    bound = exact if abs(float(exact) - best) <= 1e-12 * max(1, best) else sp.Float(best, 15)
    _BOUNDS[key] = bound
    return bound


@dataclass
class LipschitzReport:
    """Upper bound and empirical value of the network's Lipschitz constant (2-norms)."""

    bound: float
    empirical: float | None
    factors: list[Factor] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"Lipschitz upper bound Π‖W‖₂·Π sup|f'| = {self.bound:.6g}"]
        for name, value, note, _ in self.factors:
            lines.append(f"  {name}: {value:.6g}  {note}")
        if self.empirical is not None:
            lines.append(f"empirical max ‖∂ŷ/∂x‖₂ over the data = {self.empirical:.6g} "
                         f"({self.empirical / self.bound:.1%} of the bound)")
        return "\n".join(lines)

    def latex(self) -> str:
        parts = [f.tex for f in self.factors if f.tex is not None]
        return r"L \le " + r" \cdot ".join(parts) + f" = {self.bound:.6g}"


def lipschitz_bound(model, theta, X=None, network: Network | None = None) -> LipschitzReport:
    """The product-of-spectral-norms Lipschitz bound, and the empirical maximum of the input
    Jacobian's spectral norm over ``X`` (when given).

    Raises
    ------
    SymnnError
        For a custom model (no layer structure to bound).
    """
    theta = check_theta(model, theta)
    net = network if network is not None else getattr(model, "declared", None)
    if not isinstance(net, Network):
        raise SymnnError("lipschitz_bound needs a layered symnn.Network (pass network=...)")
    arrays = model.unflatten(theta)
    bound = 1.0
    factors = []
    for layer, l in layer_numbers(net):  # each layer states its own contribution
        for f in layer.lipschitz(arrays, l, derivative_bound):
            factors.append(f)
            bound *= f.value
    emp = None
    if X is not None:
        J = np.asarray(model.jacobian(theta, X), float)
        emp = float(np.max(np.linalg.norm(J, 2, axis=(1, 2))))
    return LipschitzReport(bound, emp, factors)
