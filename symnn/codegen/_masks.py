"""Dropout masks handed to compiled and reference models: checks and the kernels' ``M``.

A model of a network with :class:`~symnn.Dropout` layers takes ``mask=`` in every method:
``(B, W)`` with entries 0 (dropped) or 1 (kept), ``W`` the total mask width (the Dropout
layers' widths side by side, in the order the forward pass meets them;
``model.mask_width``).  The program's mask values hold ``m / (1 − p)``: the model scales
each layer's columns before the kernels see them (their argument ``M``).  ``mask=None``
passes ``M = 1``, which makes every Dropout layer the exact identity: the expected
network, equal to the network without its Dropout layers (``predict``'s default).  A model
without Dropout refuses a mask that is not None (there is nothing to drop).

Examples
--------
>>> import numpy as np, symnn
>>> net = symnn.Network([symnn.Dense(2, 3), "tanh", symnn.Dropout(0.5),
...                      symnn.Dense(3, 1)], loss="mse")
>>> model = net.compile()
>>> model.mask_width
3
>>> theta = model.init(seed=0); X = np.ones((2, 2)); y = np.zeros(2)
>>> m = np.array([[1, 0, 1], [0, 1, 1]])
>>> bool(np.isclose(model.loss(theta, X, y, mask=m), model.reference.loss(theta, X, y, mask=m)))
True
>>> plain = symnn.Network([symnn.Dense(2, 3), "tanh", symnn.Dense(3, 1)], loss="mse")
>>> model.loss(theta, X, y) == plain.compile().loss(theta, X, y)
True
"""

from __future__ import annotations

import numpy as np

from symnn.codegen._validate import _numeric
from symnn.codegen.numba.masks import mask_width, masks_of
from symnn.errors import ArgumentError, DataError, ShapeError

__all__ = ["as_mask", "scaled_mask", "kernel_masks", "mask_env", "mask_width", "masks_of"]


def as_mask(model, mask, batch: int) -> np.ndarray | None:
    """``mask`` checked: ``(batch, model.mask_width)`` of 0s and 1s in the model's dtype,
    C-contiguous; None stays None.  ArgumentError for a mask given to a model without
    Dropout; ShapeError / DataError for a wrong shape or a value other than 0 and 1."""
    W = model.mask_width
    if mask is None:
        return None
    if W == 0:
        raise ArgumentError(
            f"mask: {model.name!r} has no Dropout layer, so there is nothing to mask; "
            "leave mask=None")
    arr = _numeric(mask, "mask")
    if arr.shape != (batch, W):
        raise ShapeError(
            f"mask must have shape (B, {W}) = ({batch}, {W}) — one row per sample, the "
            f"Dropout layers' widths side by side — got {arr.shape}")
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"mask entries must be 0 (dropped) or 1 (kept); mask{list(where)} = "
            f"{float(arr[where])!r} (the 1/(1 − p) scaling is the network's own)")
    return np.ascontiguousarray(arr, dtype=model.dtype)


def _scales(model) -> np.ndarray:
    """``1/(1 − p)`` for every column of the mask (each Dropout layer's own ``p``)."""
    return np.concatenate([np.full(m.size, 1.0 / (1.0 - p))
                           for m, p in model.derived.meta["masks"]])


def scaled_mask(model, mask, batch: int) -> np.ndarray | None:
    """What the program's mask values hold: ``m / (1 − p)`` per column, float64, ``(batch,
    W)``; ones for ``mask=None`` (``ã = a`` exactly); None without Dropout."""
    M = as_mask(model, mask, batch)
    if model.mask_width == 0:
        return None
    if M is None:
        return np.ones((batch, model.mask_width))
    return M.astype(np.float64) * _scales(model)


def kernel_masks(model, mask, batch: int) -> tuple:
    """The kernels' extra arguments: ``()`` without Dropout, else ``(M flat,)``, the scaled
    mask in the model's dtype."""
    M = scaled_mask(model, mask, batch)
    if M is None:
        return ()
    return (np.ascontiguousarray(M, dtype=model.dtype).reshape(-1),)


def mask_env(model, mask, batch: int) -> dict:
    """``{mask Var: (batch, width) float64 columns}`` for the NumPy reference."""
    M = scaled_mask(model, mask, batch)
    env, col = {}, 0
    for m in masks_of(model.derived):
        env[m] = M[:, col:col + m.size]
        col += m.size
    return env
