"""Curvature and analysis on the exact compiled derivatives.

Hessian spectra (dense, or Lanczos over the exact Hessian-vector product), classification
of critical points, condition numbers, saddle search, weight spectra, Lipschitz bounds with
activation-derivative bounds derived symbolically, and gradient flow over training.

Curvature per layer: per-sample gradients, gradient variance and the empirical Fisher;
the exact diagonals of the Gauss-Newton matrix and of the Hessian; K-FAC's Kronecker
factors and their error against the exact GGN blocks; SciPy ``LinearOperator`` views of
the Hessian, the GGN, the (empirical, Monte-Carlo, exact) Fisher and K-FAC (with its damped
inverse); Hutchinson / Hutch++ traces and diagonals with standard errors;
spectral densities by stochastic Lanczos quadrature.
"""

from symnn.analysis.curvature import (
    CriticalPoint,
    condition_number,
    critical_point,
    find_saddle,
    hessian_spectrum,
)
from symnn.analysis.curvature_print import curvature_equations, loss_hessian_sqrt_symbolic
from symnn.analysis.fisher import FisherOperator, fisher_operator
from symnn.analysis.flow import GradientFlow, gradient_flow
from symnn.analysis.ggn import diag_ggn, diag_hessian
from symnn.analysis.kfac import KroneckerFactors, kfac_error, kfac_factors
from symnn.analysis.kfac_operator import KFACInverseOperator, KFACOperator, kfac_operator
from symnn.analysis.lipschitz import LipschitzReport, derivative_bound, lipschitz_bound
from symnn.analysis.operators import CurvatureOperator, ggn_operator, hessian_operator
from symnn.analysis.persample import empirical_fisher, gradient_variance, per_sample_gradients
from symnn.analysis.recurrent import (  # recurrent layers (issue 13)
    FixedPoint,
    TimeGradientFlow,
    fixed_points,
    recurrent_jacobians,
    time_gradient_flow,
)
from symnn.analysis.stochastic import (
    Estimate,
    SpectralDensity,
    hutchinson_diag,
    hutchinson_trace,
    spectral_density,
)
from symnn.analysis.weights import WeightSpectrum, weight_spectra

__all__ = [
    "hessian_spectrum", "critical_point", "CriticalPoint", "condition_number", "find_saddle",
    "weight_spectra", "WeightSpectrum", "lipschitz_bound", "LipschitzReport",
    "derivative_bound", "gradient_flow", "GradientFlow",
    # per-sample quantities, diagonal curvature, Kronecker factors
    "per_sample_gradients", "gradient_variance", "empirical_fisher", "diag_ggn",
    "diag_hessian", "kfac_factors", "kfac_error", "KroneckerFactors",
    # matrix-free: operators, Hutchinson / Hutch++, stochastic Lanczos quadrature
    "hessian_operator", "ggn_operator", "CurvatureOperator", "hutchinson_trace",
    "hutchinson_diag", "Estimate", "spectral_density", "SpectralDensity",
    # Fisher and K-FAC operators
    "fisher_operator", "FisherOperator", "kfac_operator", "KFACOperator",
    "KFACInverseOperator",
    # what they compute, printed
    "curvature_equations", "loss_hessian_sqrt_symbolic",
    # recurrent layers: gradient flow through time, recurrent Jacobians, fixed points
    "time_gradient_flow", "TimeGradientFlow", "recurrent_jacobians", "fixed_points",
    "FixedPoint",
]
