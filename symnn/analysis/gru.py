r"""The GRU cell in NumPy, with its exact Jacobians in the state and in the input.

``torch.nn.GRU``'s convention (that of :class:`~symnn.GRU`)::

    rₜ = σ(W_ir xₜ + b_ir + W_hr hₜ₋₁ + b_hr)
    uₜ = σ(W_iz xₜ + b_iz + W_hz hₜ₋₁ + b_hz)
    nₜ = tanh(W_in xₜ + b_in + rₜ ⊙ (W_hn hₜ₋₁ + b_hn))
    hₜ = (1 − uₜ) ⊙ nₜ + uₜ ⊙ hₜ₋₁

and its Jacobians by the chain rule through the gates (``D(v)`` = ``diag(v)``)::

    ∂r/∂h = D(r(1 − r)) W_hr,   ∂u/∂h = D(u(1 − u)) W_hz
    ∂n/∂h = D(1 − n²) (D(r) W_hn + D(W_hn h + b_hn) ∂r/∂h)
    ∂hₜ/∂hₜ₋₁ = D(u) + D(1 − u) ∂n/∂h + D(hₜ₋₁ − n) ∂u/∂h

(the same with ``W_i·`` in place of ``W_h·``, ``W_in`` ungated by ``r`` and no ``D(u)``
term, for ``∂hₜ/∂xₜ``).  Used by
:func:`symnn.analysis.recurrent_jacobians` and :func:`symnn.analysis.fixed_points` for a
GRU layer; the tests hold them against finite differences, ``torch.nn.GRUCell`` and the
cotangents of the derived program.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = {f"{w}_{s}{g}1": rng.normal(size=(2, 1) if (w, s) == ("W", "i") else
...      (2, 2) if w == "W" else (2,)) for w in "Wb" for s in "ih" for g in "rzn"}
>>> cell = GRUCell.from_params(p, 1)
>>> h = cell(np.array([0.5]), np.zeros(2))
>>> Jh, Jx = cell.jacobians(np.array([0.5]), h)
>>> Jh.shape, Jx.shape
((2, 2), (2, 1))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symnn.errors import AnalysisError

__all__ = ["GRUCell"]


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class GRUCell:
    """The weights of one GRU layer (``W[g]``, ``U[g]``: input and state weights of gate
    ``g`` ∈ r, z, n; ``bi[g]``, ``bh[g]``: the biases)."""

    W: dict
    U: dict
    bi: dict
    bh: dict

    @classmethod
    def from_params(cls, params: dict, l: int) -> "GRUCell":
        """From ``{name: array}`` (``model.unflatten(θ)``) for the GRU numbered ``l``."""
        try:
            def get(name, g):
                return np.asarray(params[f"{name}{g}{l}"], float)

            return cls(*({g: get(n, g) for g in "rzn"} for n in ("W_i", "W_h", "b_i", "b_h")))
        except KeyError as err:
            raise AnalysisError(f"the parameters lack {err.args[0]!r} of GRU layer {l}; pass "
                                "model.unflatten(theta)") from None

    def gates(self, x, h):
        """``(r, u, n, c)``: the gates and ``c = W_hn h + b_hn`` at input ``x``, state ``h``."""
        x, h = np.asarray(x, float), np.asarray(h, float)
        pre = {g: self.W[g] @ x + self.bi[g] for g in "rzn"}
        r = _sigmoid(pre["r"] + self.U["r"] @ h + self.bh["r"])
        u = _sigmoid(pre["z"] + self.U["z"] @ h + self.bh["z"])
        c = self.U["n"] @ h + self.bh["n"]
        n = np.tanh(pre["n"] + r * c)
        return r, u, n, c

    def __call__(self, x, h) -> np.ndarray:
        """The next state ``(1 − u) ⊙ n + u ⊙ h``."""
        _, u, n, _ = self.gates(x, h)
        return (1 - u) * n + u * np.asarray(h, float)

    def jacobians(self, x, h) -> tuple[np.ndarray, np.ndarray]:
        """``(∂h'/∂h, ∂h'/∂x)`` at input ``x`` and state ``h`` (module notes)."""
        h = np.asarray(h, float)
        r, u, n, c = self.gates(x, h)
        dr, du, dn = r * (1 - r), u * (1 - u), 1 - n ** 2
        out = []
        for M, gate in ((self.U, r), (self.W, np.ones_like(r))):  # r gates only W_hn h
            Rr = dr[:, None] * M["r"]
            Ru = du[:, None] * M["z"]
            Nn = dn[:, None] * (gate[:, None] * M["n"] + c[:, None] * Rr)
            out.append((1 - u)[:, None] * Nn + (h - n)[:, None] * Ru)
        out[0] = out[0] + np.diag(u)
        return out[0], out[1]
