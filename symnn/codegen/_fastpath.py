"""The common call, checked in a few comparisons and one compiled scan.

A compiled model's methods check their arguments (:mod:`symnn.codegen._validate`) before a
kernel sees them.  Most calls hand over arrays that need no conversion: ``theta`` a flat
vector, ``X`` a 2-D batch, ``y`` targets of the right shape, all C-contiguous, writable,
aligned arrays of the model's dtype, and no Dropout mask.  :func:`ready_args` recognises
exactly that case with attribute comparisons and then checks the *values* — θ and X
finite, and y finite or, for a probability loss, rows that are non-negative and sum to 1
— in one compiled pass (:func:`_values_ok`) instead of one per argument.

Nothing is skipped: when any condition fails, :func:`ready_args` returns None and the
method runs the full checks of :mod:`symnn.codegen._validate`, which convert what can be
converted and raise the same clear errors as ever (the fast path only ever declines).

Examples
--------
>>> import numpy as np, symnn
>>> model = symnn.mlp([2, 3, 1], activation="tanh").compile()
>>> theta = model.init(0); X = np.ones((4, 2)); y = np.zeros((4, 1))
>>> B, args = ready_args(model, theta, X, y, None)
>>> B, len(args)
(4, 3)
>>> ready_args(model, theta, X.T.copy().T, y, None) is None   # Fortran order: full checks
True
>>> X[0, 0] = np.nan
>>> ready_args(model, theta, X, y, None) is None               # the full checks will raise
True
"""

from __future__ import annotations

import numba
import numpy as np

from symnn.codegen._validate import _bad_probability_row, _nonfinite

__all__ = ["ready_args", "ready_array"]


@numba.njit(cache=True, error_model="numpy")
def _values_ok(theta, x, y, n_out, tol, probabilities):
    """True when θ and x are finite and y is finite (``probabilities``: rows of ``n_out``
    non-negative entries summing to 1 within ``tol``) — the value checks of
    :mod:`symnn.codegen._validate` in one call."""
    if _nonfinite(theta) or _nonfinite(x):
        return False
    if probabilities:
        return _bad_probability_row(y, n_out, tol) < 0
    return not _nonfinite(y)


def ready_array(a, dtype: np.dtype, ndim: int) -> bool:
    """``a`` can go to a kernel as it is: an ndarray of ``dtype`` and rank ``ndim``,
    C-contiguous, writable and aligned (the conversions :func:`~symnn.codegen._validate._cast`
    would make are all no-ops)."""
    if type(a) is not np.ndarray or a.ndim != ndim or a.dtype != dtype:
        return False
    return a.flags.carray  # C-contiguous, aligned and writable in one flag test


def _constants(model) -> tuple:
    """``(NumPy's dtype object, shape of θ, columns of a 2-D X, probability-row tolerance,
    n_out, probabilities)``, computed once per model: the width is the product of one
    sample's shape, the tolerance that of :func:`~symnn.codegen._validate.as_targets`."""
    c = model.__dict__.get("_fast_constants")
    if c is None:
        width = 1
        for n in model.input_shape:
            width *= int(n)
        tol = (1e-6 if model.dtype == np.float64 else 1e-4) * max(1, model.n_outputs)
        c = model._fast_constants = (np.dtype(model.dtype.name), (model.n_params,), width,
                                     tol, model.n_outputs, model._probabilities)
    return c


def ready_args(model, theta, X, y, mask):
    """``(B, (θ, X flat, y flat))`` when the arguments pass every check of
    :mod:`symnn.codegen._validate` unchanged (no conversion, no mask); else None: the
    caller then runs the full checks, which convert or raise.

    The common call costs a few identity and tuple comparisons (a model's dtype is NumPy's
    own dtype object, so ``is`` recognises an array of it; anything else — another byte
    order, a dtype with metadata — goes to the full checks) and one compiled scan."""
    if mask is not None or model.mask_width:
        return None
    dt, shape, width, tol, n_out, probabilities = _constants(model)
    if (type(theta) is not np.ndarray or type(X) is not np.ndarray
            or type(y) is not np.ndarray or theta.dtype is not dt or X.dtype is not dt
            or y.dtype is not dt):
        return None
    xs = X.shape
    if (theta.shape != shape or len(xs) != 2 or xs[1] != width or xs[0] == 0
            or not (theta.flags.carray and X.flags.carray and y.flags.carray)):
        return None
    ys = y.shape
    if ys != (xs[0], n_out) and (ys != (xs[0],) or n_out != 1):
        return None
    Xf, Yf = X.reshape(-1), y.reshape(-1)
    if not _values_ok(theta, Xf, Yf, n_out, tol, probabilities):
        return None
    return xs[0], (theta, Xf, Yf)
