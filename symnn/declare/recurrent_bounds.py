r"""A Lipschitz bound for the :class:`~symnn.GRU` layer (issue 13).

Every state of a GRU lies in the box ``(−1, 1)ᴴ`` (``h₀ = 0``; ``hₜ`` is a convex
combination of ``nₜ ∈ (−1, 1)ᴴ`` and ``hₜ₋₁``), so with ``s = sup|σ'|`` (1/4), ``τ =
sup|tanh'|`` (1) and ``C = maxᵢ (Σⱼ |W_hn,ij| + |b_hn,i|) ≥ |W_hn h + b_hn|ᵢ`` the cell's
Jacobians (:mod:`symnn.analysis.gru`) obey, everywhere on that box,

* ``‖∂hₜ/∂hₜ₋₁‖₂ ≤ a = √(1 + A²) + 2s‖W_hz‖₂``, ``A = τ(‖W_hn‖₂ + C s‖W_hr‖₂)``: row ``i``
  of ``D(u) + D(1 − u) ∂n/∂h`` is a convex combination of ``vᵢ`` and ``(∂n/∂h v)ᵢ``,
  so its square is at most ``vᵢ² + (∂n/∂h v)ᵢ²``; ``|hₜ₋₁ − n| < 2``;
* ``‖∂hₜ/∂xₜ‖₂ ≤ c = τ(‖W_in‖₂ + C s‖W_ir‖₂) + 2s‖W_iz‖₂``.

Hence ``‖Δhₜ‖ ≤ a‖Δhₜ₋₁‖ + c‖Δxₜ‖`` (the mean-value inequality on the convex box), and
``h_T`` is ``c·√(Σ_{j<T} a²ʲ)``-Lipschitz in the sequence, the whole sequence of states
``c·Σ_{j<T} aʲ`` — the same sums as the RNN's bound.  The gate's ``D(u)`` makes ``a ≥ 1``:
the bound grows with ``T`` even where the trained cell forgets slowly.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.analysis import derivative_bound
>>> g = symnn.GRU(1, 2, length=3)
>>> arrays = {p.name: np.zeros(p.shape) for p in g.parameters(1)}
>>> [f.value for f in gru_lipschitz(g, arrays, 1, derivative_bound)]  # c = 0: constant
[0.0]
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from symnn.declare.activations import get_activation
from symnn.declare.layers import Factor

__all__ = ["gru_lipschitz"]


def gru_lipschitz(layer, arrays: dict, l: int, bound: Callable) -> list[Factor]:
    """The factor of a GRU layer numbered ``l`` in a Lipschitz bound (module notes);
    ``bound(activation)``: sup of |its derivative|."""
    s = float(bound(get_activation("sigmoid")))
    tau = float(bound(get_activation("tanh")))

    def norm(name):
        return float(np.linalg.norm(np.asarray(arrays[f"{name}{l}"], float), 2))

    W_hn = np.asarray(arrays[f"W_hn{l}"], float)
    C = float(np.max(np.abs(W_hn).sum(axis=1) + np.abs(np.asarray(arrays[f"b_hn{l}"], float))))
    A = tau * (norm("W_hn") + C * s * norm("W_hr"))
    a = math.sqrt(1 + A * A) + 2 * s * norm("W_hz")
    c = tau * (norm("W_in") + C * s * norm("W_ir")) + 2 * s * norm("W_iz")
    T = layer._steps()
    if layer.return_sequences:
        f, note = c * sum(a ** j for j in range(T)), "c·Σ_{j<T} aʲ"
    else:
        f, note = c * math.sqrt(sum(a ** (2 * j) for j in range(T))), "c·√(Σ_{j<T} a²ʲ)"
    return [Factor(repr(layer), f, f"{note}, c = {c:.4g}, a = {a:.4g} (GRU: gates bounded "
                   f"on the state box (−1, 1)ᴴ, T = {T})", r"L_{\mathrm{gru}}^{(%d)}" % l)]
