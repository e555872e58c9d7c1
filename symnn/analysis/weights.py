"""Singular values, rank and conditioning of each weight matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symnn.analysis._common import check_theta

__all__ = ["WeightSpectrum", "weight_spectra"]


@dataclass
class WeightSpectrum:
    """The singular values of one weight matrix and what follows from them."""

    name: str
    shape: tuple
    singular_values: np.ndarray
    rank: int
    spectral_norm: float
    condition_number: float

    def __str__(self) -> str:
        return (f"{self.name} {self.shape}: ‖·‖₂ = {self.spectral_norm:.4g}, rank "
                f"{self.rank}/{min(self.shape)}, condition number {self.condition_number:.4g}")


def weight_spectra(model, theta, rtol: float | None = None) -> list[WeightSpectrum]:
    """Singular values, numerical rank, spectral norm and condition number per weight matrix.

    The numerical rank counts singular values above ``rtol · σ_max`` with the
    NumPy convention ``rtol = max(m, n) · ε`` by default.

    Examples
    --------
    >>> import numpy as np
    >>> class M:  # any model with a flat layout works
    ...     n_params = 4
    ...     def unflatten(self, t):
    ...         return {"W1": t.reshape(2, 2)}
    >>> sv = weight_spectra(M(), np.array([3., 0, 0, 1]))[0].singular_values
    >>> [round(float(s), 3) for s in sv]
    [3.0, 1.0]
    """
    theta = check_theta(model, theta)
    out = []
    for name, arr in model.unflatten(theta).items():
        arr = np.asarray(arr, dtype=float)
        if arr.ndim != 2:
            continue
        s = np.linalg.svd(arr, compute_uv=False)
        tol = (max(arr.shape) * np.finfo(float).eps if rtol is None else rtol) * s[0]
        rank = int(np.sum(s > tol))
        cond = float(s[0] / s[-1]) if s[-1] > 0 else float("inf")
        out.append(WeightSpectrum(name, arr.shape, s, rank, float(s[0]), cond))
    return out
