"""Curvature and analysis on the exact compiled derivatives.

Hessian spectra (dense, or Lanczos over the exact Hessian-vector product), classification
of critical points, condition numbers, saddle search, weight spectra, Lipschitz bounds with
activation-derivative bounds derived symbolically, and gradient flow over training.
"""

from symnn.analysis.curvature import (
    CriticalPoint,
    condition_number,
    critical_point,
    find_saddle,
    hessian_spectrum,
)
from symnn.analysis.flow import GradientFlow, gradient_flow
from symnn.analysis.lipschitz import LipschitzReport, derivative_bound, lipschitz_bound
from symnn.analysis.weights import WeightSpectrum, weight_spectra

__all__ = [
    "hessian_spectrum", "critical_point", "CriticalPoint", "condition_number", "find_saddle",
    "weight_spectra", "WeightSpectrum", "lipschitz_bound", "LipschitzReport",
    "derivative_bound", "gradient_flow", "GradientFlow",
]
