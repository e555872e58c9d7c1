"""Layers: the nodes a network is declared from.

Examples
--------
>>> Dense(3, 4)
Dense(n_in=3, n_out=4, bias=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

from symnn.declare.activations import Activation, get_activation
from symnn.declare.limits import check_width
from symnn.errors import DeclarationError

__all__ = ["Dense", "Act", "Softmax", "as_layer", "output_kind"]


@dataclass(frozen=True)
class Dense:
    """Affine layer ``z = W a + b`` with ``W`` of shape ``(n_out, n_in)``, ``b`` of ``(n_out,)``.

    Its parameters are named ``W<l>`` and ``b<l>`` where ``l`` counts the dense layers of
    the network from 1.
    """

    n_in: int
    n_out: int
    bias: bool = True

    def __post_init__(self) -> None:
        for name in ("n_in", "n_out"):
            v = getattr(self, name)
            if isinstance(v, Integral) and not isinstance(v, (bool, int)):  # numpy integers
                v = int(v)
                object.__setattr__(self, name, v)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DeclarationError(
                    f"Dense({self.n_in!r}, {self.n_out!r}): {name} must be a positive "
                    f"integer, got {v!r}"
                )
            check_width(v, f"Dense({self.n_in!r}, {self.n_out!r})")


@dataclass(frozen=True)
class Act:
    """An elementwise activation layer ``a = f(z)``."""

    activation: Activation

    @property
    def name(self) -> str:
        return self.activation.name


@dataclass(frozen=True)
class Softmax:
    """The softmax layer ``p = exp(z) / Σ exp(z)`` (per sample)."""

    name: str = "softmax"


def as_layer(item, where: str = ""):
    """Turn a layer given as a name, ``sympy.Lambda`` or layer object into a layer object."""
    if isinstance(item, (Dense, Act, Softmax)):
        return item
    if isinstance(item, Activation):
        return Act(item)
    if isinstance(item, str) and item.strip().lower() == "softmax":
        return Softmax()
    return Act(get_activation(item, where))


def output_kind(layer) -> str | None:
    """What a loss reads from the last layer: ``"softmax"``, a registered activation's name
    (``"sigmoid"``), ``"custom activation 'f'"`` for a user ``Lambda``, or None for a linear
    output (a Dense layer or the identity)."""
    if isinstance(layer, Softmax):
        return "softmax"
    if isinstance(layer, Act):
        act = layer.activation
        if act.identity:
            return None
        if act.key and act.key[0] != "lambda":
            return act.key[0]
        return f"custom activation {act.name!r}"
    return None
