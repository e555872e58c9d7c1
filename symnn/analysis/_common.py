"""Argument checks shared by the analysis functions."""

from __future__ import annotations

import numpy as np

from symnn.errors import DataError, ShapeError


def check_theta(model, theta) -> np.ndarray:
    theta = np.asarray(theta)
    if theta.ndim != 1 or theta.size != model.n_params:
        raise ShapeError(
            f"θ has shape {theta.shape}; this model takes a flat vector of {model.n_params} "
            "parameters (see model.init())"
        )
    if not np.all(np.isfinite(theta)):
        raise DataError("θ contains NaN or inf; analysis needs finite parameters")
    return theta


def check_finite_matrix(H: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(H)):
        bad = np.argwhere(~np.isfinite(H))[0]
        raise DataError(
            f"the {what} has non-finite entries (first at {tuple(int(i) for i in bad)}); the "
            "loss is not twice differentiable there — check θ and the data for overflow"
        )
    return H
