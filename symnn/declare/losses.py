"""Loss functions and regularisation penalties as SymPy definitions.

A loss is declared by its *pointwise* term :math:`\\ell_k(\\hat y_k, y_k)` (a SymPy scalar
expression in the output component ``a`` and target component ``y``) and how the
components of one sample are combined (``mean`` or ``sum``).  The loss of a batch is always
the mean of the per-sample losses:

.. math::  L = \\frac{1}{B} \\sum_{s=1}^{B} \\ell(a_s, y_s)

Conventions (``n`` is the number of outputs):

===================  ==========================================================
``"mse"``            :math:`\\ell = \\frac1n \\sum_k (\\hat y_k - y_k)^2`
``"mae"``            :math:`\\ell = \\frac1n \\sum_k |\\hat y_k - y_k|`  (sign(0) = 0)
``"huber"``          :math:`\\ell = \\frac1n \\sum_k h_\\delta(\\hat y_k - y_k)`, δ = 1:
                     :math:`r^2/2` for :math:`|r| \\le \\delta`, else
                     :math:`\\delta(|r| - \\delta/2)`
``"bce"``            :math:`\\ell = -\\frac1n \\sum_k y_k \\log \\hat y_k + (1-y_k)\\log(1-\\hat y_k)`;
                     after a sigmoid output it is computed from the logits ``z`` as
                     :math:`\\frac1n\\sum_k \\mathrm{softplus}(z_k) - y_k z_k` (same value,
                     stable), whose gradient is :math:`(a - y)/n`
``"cross_entropy"``  :math:`\\ell = -\\sum_k y_k \\log \\hat y_k` (targets are probability
                     vectors: rows sum to 1); after a softmax output it is computed from
                     the logits as :math:`\\operatorname{LSE}(z) - y\\cdot z`, gradient
                     :math:`p - y`
``"kl"``             :math:`\\ell = \\sum_k y_k \\log(y_k / \\hat y_k)` with :math:`0\\log 0 = 0`
===================  ==========================================================

``bce``, ``cross_entropy`` and ``kl`` take the logarithm of the output, so they need an
output layer whose values lie in (0, 1): ``sigmoid`` or ``softmax``.  Any other output (a
linear one, tanh, ReLU, a custom activation …) is a :class:`~symnn.errors.DeclarationError`
at declaration (:func:`check_output`).  After a sigmoid output every one of them is computed
from the logits ``z`` with :math:`\\log\\sigma(z) = -\\mathrm{softplus}(-z)`, finite for
every ``z``: cross-entropy is :math:`\\sum_k y_k\\,\\mathrm{softplus}(-z_k)`.

Examples
--------
>>> loss = get_loss("mse")
>>> loss.reduction
'mean'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import sympy as sp

from symnn.errors import DeclarationError, UnknownNameError
from symnn.functions import xlogy

__all__ = ["xlogy", "Loss", "LOSSES", "get_loss", "check_output", "Penalty", "L1", "L2"]

#: Real scalar symbols used in the pointwise definitions.
A_SYM = sp.Symbol("a", real=True)
Y_SYM = sp.Symbol("y", real=True)


@dataclass(frozen=True)
class Loss:
    """A loss: pointwise term, reduction over the components of a sample.

    Parameters
    ----------
    name : str
    pointwise : callable
        ``pointwise(a, y)`` returns the SymPy term :math:`\\ell_k` for one component.
    reduction : {"mean", "sum"}
        How the components of one sample combine.
    probabilities : bool
        True when targets must be probability vectors (rows summing to 1).
    tex, text : str
        The per-sample definition as it prints.
    outputs : tuple of str
        The output layers the loss accepts (``("sigmoid", "softmax")`` for the losses that
        take logarithms of the output); empty: any output.  See :func:`check_output`.
    """

    name: str
    pointwise: Callable[[sp.Expr, sp.Expr], sp.Expr] = field(compare=False)
    reduction: str = "mean"
    probabilities: bool = False
    tex: str = ""
    text: str = ""
    outputs: tuple[str, ...] = ()

    def term(self) -> sp.Expr:
        """The pointwise term in the real symbols ``a`` and ``y``."""
        return self.pointwise(A_SYM, Y_SYM)


def _huber(a, y, delta=sp.S.One):
    r = a - y
    return sp.Piecewise((r**2 / 2, sp.Abs(r) <= delta), (delta * (sp.Abs(r) - delta / 2), True))


#: Output layers whose values lie in (0, 1), the domain of log ŷ and log(1 − ŷ).
_UNIT_INTERVAL = ("sigmoid", "softmax")

LOSSES: dict[str, Loss] = {
    "mse": Loss(
        "mse",
        lambda a, y: (a - y) ** 2,
        "mean",
        tex=r"\ell = \frac{1}{n}\sum_{k=1}^{n} (\hat y_k - y_k)^2",
        text="ℓ = (1/n) Σₖ (ŷₖ − yₖ)²",
    ),
    "mae": Loss(
        "mae",
        lambda a, y: sp.Abs(a - y),
        "mean",
        tex=r"\ell = \frac{1}{n}\sum_{k=1}^{n} \lvert \hat y_k - y_k \rvert",
        text="ℓ = (1/n) Σₖ |ŷₖ − yₖ|",
    ),
    "huber": Loss(
        "huber",
        _huber,
        "mean",
        tex=r"\ell = \frac{1}{n}\sum_{k=1}^{n} h_1(\hat y_k - y_k)",
        text="ℓ = (1/n) Σₖ h₁(ŷₖ − yₖ)",
    ),
    "bce": Loss(
        "bce",
        lambda a, y: -(y * sp.log(a) + (1 - y) * sp.log(1 - a)),
        "mean",
        tex=r"\ell = -\frac{1}{n}\sum_{k=1}^{n} \left[y_k \log \hat y_k + (1 - y_k)\log(1 - \hat y_k)\right]",
        text="ℓ = −(1/n) Σₖ [yₖ log ŷₖ + (1 − yₖ) log(1 − ŷₖ)]",
        outputs=_UNIT_INTERVAL,
    ),
    "cross_entropy": Loss(
        "cross_entropy",
        lambda a, y: -y * sp.log(a),
        "sum",
        probabilities=True,
        tex=r"\ell = -\sum_{k=1}^{n} y_k \log \hat y_k",
        text="ℓ = −Σₖ yₖ log ŷₖ",
        outputs=_UNIT_INTERVAL,
    ),
    "kl": Loss(
        "kl",
        lambda a, y: xlogy(y, y) - y * sp.log(a),
        "sum",
        probabilities=True,
        tex=r"\ell = \sum_{k=1}^{n} y_k \log \frac{y_k}{\hat y_k}",
        text="ℓ = Σₖ yₖ log(yₖ / ŷₖ)",
        outputs=_UNIT_INTERVAL,
    ),
}
LOSSES["ce"] = LOSSES["cross_entropy"]
LOSSES["binary_cross_entropy"] = LOSSES["bce"]
LOSSES["squared_error"] = LOSSES["mse"]


def check_output(loss: Loss, output: "str | None", where: str = "Network") -> None:
    """Reject an output layer that cannot feed ``loss`` (the one rule for every declaration).

    ``bce``, ``cross_entropy`` and ``kl`` take ``log ŷ`` (and ``log(1 − ŷ)``): they are
    defined only for outputs in (0, 1), which symnn guarantees for a ``sigmoid`` or
    ``softmax`` output layer and for nothing else (a linear, tanh, ReLU … output, or a
    custom activation, can leave (0, 1), and training would then diverge).

    Parameters
    ----------
    loss : Loss
    output : str or None
        ``"softmax"``, a registered activation's name, ``"custom activation 'f'"`` for a
        user ``Lambda``, or None for a linear output (no output layer).
    where : str
        ``"Network"`` or ``"Model"``: shapes the advice.

    Raises
    ------
    DeclarationError
        Naming the loss, the output and the declaration to write instead.

    Examples
    --------
    >>> check_output(get_loss("bce"), "sigmoid")
    >>> check_output(get_loss("bce"), None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symnn.errors.DeclarationError: loss 'bce' takes the logarithm of the output, so ...
    """
    if not loss.outputs or output in loss.outputs:
        return
    what = "a linear output (no output activation)" if output is None else f"a {output} output"
    if output is not None and not output.startswith("custom"):
        what = f"an output activation {output!r}"
    if loss.name == "bce":
        fix = "output='sigmoid'"
        example = "mlp([...], output='sigmoid', loss='bce')"
    else:
        fix = "output='softmax'"
        example = f"mlp([...], output='softmax', loss={loss.name!r})"
    if where == "Model":
        example = f"Model(expr, inputs=..., params=..., {fix}, loss={loss.name!r})"
    raise DeclarationError(
        f"loss {loss.name!r} takes the logarithm of the output, so the output must lie in "
        f"(0, 1), but this {where} has {what}; declare {fix} ({example}), or use a "
        "regression loss ('mse', 'mae', 'huber')"
    )


def get_loss(spec: "str | Loss", where: str = "") -> Loss:
    """Resolve a loss by name.

    Raises
    ------
    UnknownNameError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in LOSSES:
            return LOSSES[key]
        known = ", ".join(sorted(k for k in LOSSES))
        at = f" ({where})" if where else ""
        import difflib

        squashed = {k.replace("_", ""): k for k in LOSSES}
        close = difflib.get_close_matches(key.replace("_", ""), list(squashed), n=1)
        hint = f" (did you mean {squashed[close[0]]!r}?)" if close else ""
        raise UnknownNameError(f"unknown loss {spec!r}{at}{hint}; known losses: {known}")
    raise DeclarationError(f"loss: expected a name or a Loss, got {type(spec).__name__}")


@dataclass(frozen=True)
class Penalty:
    """A regularisation term added to the batch loss.

    ``L2(lam)`` adds :math:`\\lambda \\sum \\theta^2` and ``L1(lam)`` adds
    :math:`\\lambda \\sum |\\theta|` over the chosen parameters (by default every weight
    matrix ``W1, W2, …``, never biases).  The sign convention at 0 is ``sign(0) = 0``.

    Examples
    --------
    >>> L2(1e-3, params=["W1"]).kind
    'l2'
    """

    kind: str
    lam: float
    params: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("l1", "l2"):
            raise DeclarationError(f"penalty kind must be 'l1' or 'l2', got {self.kind!r}")
        if (isinstance(self.lam, bool) or not isinstance(self.lam, (int, float))
                or not math.isfinite(self.lam) or self.lam < 0):
            raise DeclarationError(
                f"{self.kind.upper()} penalty: strength must be a number ≥ 0, got {self.lam!r}"
            )


def L1(lam: float, params: Sequence[str] | None = None) -> Penalty:
    """L1 penalty :math:`\\lambda \\sum |\\theta|` on ``params`` (default: all weights)."""
    return Penalty("l1", lam, tuple(params) if params is not None else None)


def L2(lam: float, params: Sequence[str] | None = None) -> Penalty:
    """L2 penalty :math:`\\lambda \\sum \\theta^2` on ``params`` (default: all weights)."""
    return Penalty("l2", lam, tuple(params) if params is not None else None)
