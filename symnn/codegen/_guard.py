"""The second-order products of binary cross-entropy on a (non-fused) softmax output: a
clear error instead of silent NaN (round 5, exact).

``bce`` on a softmax output reads the probabilities ``p`` (its Gauss-Newton split is at
``p``), and its second derivative in ``p`` holds ``y/p²``: once an output probability is
below about 1e-154 (a logit gap over about 354 in float64; far less in float32) that
overflows, and the Hessian-vector product, the Gauss-Newton product and the Hessian come
out NaN or ±inf although the loss and the gradient are finite and exact (PyTorch autograd
does the same).  The true products are finite; symnn cannot compute them in this pairing,
so it says so.  Only models of that pairing are checked (a flag computed once), so the
products of every other model pay nothing.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.codegen.model import ReferenceModel
>>> m = ReferenceModel(symnn.Network([symnn.Dense(1, 2), "softmax"], loss="bce"))
>>> theta, y = np.array([1.0, -1.0, 0.0, 0.0]), np.array([[0.3, 0.7]])
>>> v = np.array([1.0, 0.0, 0.0, 0.0])
>>> m.hvp(theta, v, np.array([[1.0]]), y).round(3)
array([ 0.105, -0.105,  0.105, -0.105])
>>> m.loss(theta, np.array([[200.0]]), y)  # p₂ ≈ e⁻⁴⁰⁰: the loss is finite
280.0
>>> m.hvp(theta, v, np.array([[200.0]]), y)
Traceback (most recent call last):
    ...
symnn.errors.DataError: the Hessian-vector product of binary cross-entropy on a softmax output is not finite ...
"""

from __future__ import annotations

import contextlib

import numpy as np

from symnn.errors import DataError

__all__ = ["softmax_bce", "check_products", "quiet"]

_WHAT = {"hvp": "Hessian-vector product", "gnvp": "Gauss-Newton-vector product",
         "hessian": "Hessian"}


def softmax_bce(declared) -> bool:
    """Whether ``declared`` puts ``bce`` on a softmax output (no fused form exists)."""
    from symnn.declare.layers import Softmax
    from symnn.derive.build import _last_layer

    try:
        return declared.loss.name == "bce" and isinstance(_last_layer(declared), Softmax)
    except AttributeError:  # a custom model without layers
        return False


def _flag(model) -> bool:
    flag = model.__dict__.get("_softmax_bce")
    if flag is None:
        flag = model.__dict__["_softmax_bce"] = softmax_bce(model.declared)
    return flag


def quiet(model):
    """NumPy's overflow warnings off while the reference computes products of the flagged
    pairing (:func:`check_products` reports instead); a no-op context otherwise."""
    return np.errstate(all="ignore") if _flag(model) else contextlib.nullcontext()


def check_products(model, out: np.ndarray, kind: str) -> None:
    """DataError when ``out`` (products of ``model`` of ``kind``) is not finite and the
    model is of the softmax × bce pairing; nothing otherwise."""
    if not _flag(model) or np.isfinite(out).all():
        return
    raise DataError(
        f"the {_WHAT.get(kind, kind)} of binary cross-entropy on a softmax output is not "
        "finite at this θ and data, although the true one is: an output probability p is "
        f"so small that the loss's second derivative y/p² overflows {np.dtype(model.dtype).name} "
        "(the loss and the gradient are exact).  Use a pairing that reads the logits — a "
        "softmax output with loss='cross_entropy', or a sigmoid output with loss='bce' — or "
        "rescale the inputs / regularise the weights so the logit gaps stay moderate")
