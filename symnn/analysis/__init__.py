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

# isort: split
# matrix-free curvature: operators, Hutchinson / Hutch++, stochastic Lanczos quadrature
from symnn.analysis.operators import CurvatureOperator, ggn_operator, hessian_operator
from symnn.analysis.stochastic import (
    Estimate,
    SpectralDensity,
    hutchinson_diag,
    hutchinson_trace,
    spectral_density,
)

__all__ = [
    "hessian_spectrum", "critical_point", "CriticalPoint", "condition_number", "find_saddle",
    "weight_spectra", "WeightSpectrum", "lipschitz_bound", "LipschitzReport",
    "derivative_bound", "gradient_flow", "GradientFlow",
]
__all__ += [
    "hessian_operator", "ggn_operator", "CurvatureOperator", "hutchinson_trace",
    "hutchinson_diag", "Estimate", "spectral_density", "SpectralDensity",
]
