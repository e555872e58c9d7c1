"""Gradient flow: per-layer gradient norms, over training or at one point.

Vanishing gradients show as norms that shrink layer by layer towards the input (a deep
sigmoid net: each layer multiplies the backward signal by at most sup|σ'| = 1/4);
exploding gradients as norms that grow.

Examples
--------
>>> from symnn.train.history import History
>>> h = History()
>>> _ = h.append(epoch=1, loss=1.0, val_loss=None, grad_norm={"W1": 1e-6, "W2": 1.0}, time=0)
>>> print(gradient_flow(h).verdict)
vanishing
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symnn.analysis._common import check_theta
from symnn.declare.layers import param_roles, role_of_name

__all__ = ["GradientFlow", "gradient_flow"]


@dataclass
class GradientFlow:
    """Per-layer gradient norms (rows: epochs or one point; columns: weight matrices)."""

    names: list
    norms: np.ndarray
    ratio: float
    verdict: str

    def __str__(self) -> str:
        last = self.norms[-1]
        cols = ", ".join(f"{n}: {v:.3e}" for n, v in zip(self.names, last))
        return (f"gradient norms by layer ({cols}); first/last layer ratio {self.ratio:.3e} "
                f"→ {self.verdict}")


def _verdict(ratio: float, threshold: float) -> str:
    if not np.isfinite(ratio):
        return "undefined"
    if ratio < 1 / threshold:
        return "vanishing"
    if ratio > threshold:
        return "exploding"
    return "healthy"


def gradient_flow(source, theta=None, X=None, y=None, *, threshold: float = 1e3) -> GradientFlow:
    """Per-layer gradient norms of the weight matrices ``W1 … WL``.

    Parameters
    ----------
    source : History or CompiledModel
        A training history (norms recorded per epoch), or a model evaluated at ``theta``
        on ``X, y`` (one row).
    threshold : float
        The verdict is "vanishing" when ‖∂L/∂W1‖ / ‖∂L/∂WL‖ (averaged over the rows) is
        below 1/threshold, "exploding" above threshold, else "healthy".
    """
    if hasattr(source, "grad_norms"):
        # a history holds names only: the layer classes say which names are weights
        norms_by = {k: np.asarray(v, float) for k, v in source.grad_norms.items()}
        roles = {k: role_of_name(k) for k in norms_by}
        names = sorted((k for k, r in roles.items() if r and r[0] == "weight"),
                       key=lambda k: roles[k][1])
        norms = np.stack([norms_by[n] for n in names], axis=1)
    else:
        theta = check_theta(source, theta)
        _, g = source.loss_and_grad(theta, X, y)
        parts = source.unflatten(np.asarray(g))
        roles = param_roles(source.declared)
        names = [n for n in parts if roles.get(n) == "weight" and np.ndim(parts[n]) == 2]
        norms = np.array([[float(np.linalg.norm(parts[n])) for n in names]])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.exp(np.mean(np.log(norms[:, 0]) - np.log(norms[:, -1]))))
    return GradientFlow(names, norms, ratio, _verdict(ratio, threshold))
