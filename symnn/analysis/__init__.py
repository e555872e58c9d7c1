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

# per-sample gradients, diagonal curvature and Kronecker factors (issue 14, parts 1–3)
from symnn.analysis.ggn import diag_ggn, diag_hessian  # noqa: E402
from symnn.analysis.kfac import KroneckerFactors, kfac_error, kfac_factors  # noqa: E402
from symnn.analysis.persample import (  # noqa: E402
    empirical_fisher,
    gradient_variance,
    per_sample_gradients,
)

__all__ += [
    "per_sample_gradients", "gradient_variance", "empirical_fisher", "diag_ggn",
    "diag_hessian", "kfac_factors", "kfac_error", "KroneckerFactors",
]
