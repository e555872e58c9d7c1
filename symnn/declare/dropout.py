r"""Dropout: :class:`Dropout`, inverted dropout with the mask an input of the program.

``Dropout(p)`` writes ``ã = a ⊙ m / (1 − p)``, with ``m ∈ {0, 1}`` per component.  The
mask ``m`` is not drawn inside the derived program: it is a per-sample value given by the
caller, like the inputs ``x`` and targets ``y`` (a :class:`~symnn.ops.Var` of kind
``"mask"``, one per Dropout layer).  So every derivative symnn derives — the gradient,
Hessian-vector and Gauss-Newton products, the Hessian, the input Jacobian — is the exact
derivative of the network *for that fixed mask*.

Compiled kernels of a network with Dropout take the masks of all its Dropout layers side by
side, ``M`` of shape ``(B, total mask width)`` (``model.mask_width``; the layers' columns
in the order the forward pass meets them); a
:class:`~symnn.codegen.model.CompiledModel` method given ``mask=None`` uses ``m = 1``
everywhere, the expected network (what ``predict`` always does).  Training (``fit``) draws
a fresh Bernoulli(1 − p) mask per mini-batch from the fit's seed.

Examples
--------
>>> import symnn
>>> net = symnn.Network([symnn.Dense(3, 4), "relu", symnn.Dropout(0.5),
...                      symnn.Dense(4, 1)], loss="mse")
>>> net.layers[2]
Dropout(0.5)
>>> [(m.name, m.kind, m.shape, p) for m, p in net.program().meta["masks"]]
[('mask1', 'mask', (4,), 0.5)]
>>> print(str(net.equations()).splitlines()[5])
  ã⁽¹⁾ = 2·a⁽¹⁾ ⊙ m⁽¹⁾
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from numbers import Real
from typing import Callable

import sympy as sp

from symnn import ops as P
from symnn.declare import layers
from symnn.declare.layers import Factor, ParamSpec
from symnn.errors import DeclarationError

__all__ = ["Dropout", "MASK_KIND", "DATA_KIND", "layer_from_data"]

#: The :class:`~symnn.ops.Var` kind of a dropout mask.
MASK_KIND = "mask"
#: The key of a layer table (spec files, model files) that names a Dropout layer.
DATA_KIND = "dropout"


def _probability(p) -> float:
    if isinstance(p, bool) or not isinstance(p, Real):
        raise DeclarationError(
            f"Dropout: p must be a number (the probability of dropping a unit), got {p!r}")
    p = float(p)
    if not (0.0 <= p < 1.0):  # NaN fails too
        raise DeclarationError(
            f"Dropout: p must satisfy 0 ≤ p < 1 (the probability of dropping a unit), got "
            f"{p!r}; p = 1 would drop every unit")
    return p


def _scale(p: float) -> sp.Expr:
    """``1/(1 − p)`` exactly when ``p`` is a short decimal (0.5 → 2), else a Float."""
    q = sp.nsimplify(p)
    return 1 / (1 - q) if float(q) == p else sp.Float(1.0 / (1.0 - p))


def _tilde_text(text: str) -> str:
    """``a⁽¹⁾`` → ``ã⁽¹⁾``: a tilde over the first letter (precomposed where Unicode has it)."""
    return unicodedata.normalize("NFC", text[:1] + "\u0303" + text[1:]) if text else "ã"


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout ``ã = a ⊙ m / (1 − p)``, ``m ∈ {0, 1}`` given per sample (the
    mask is an input of the derived program: see the module docstring).

    ``p`` is the probability of dropping a unit, ``0 ≤ p < 1``; during training each
    component of ``m`` is 1 with probability ``1 − p``, so ``E[ã] = a``.  Without a mask
    (``mask=None``: prediction, evaluation) ``m = 1``.  It has no parameters and keeps the
    shape of the value it reads.
    """

    p: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", _probability(self.p))

    def __repr__(self) -> str:
        return f"Dropout({self.p!r})"

    @property
    def name(self) -> str:
        return repr(self)

    # -- protocol --------------------------------------------------------------------------
    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        return ()

    def forward(self, b, l: int, a, k: int = 1):
        """ã = a ⊙ m / (1 − p): the mask ``m`` a new program input (kind ``"mask"``)."""
        masks = b.meta.setdefault("masks", [])
        j = len(masks) + 1
        sup = P.superscript(f"({l})")
        m = P.Var(f"mask{j}", MASK_KIND, (a.size,), r"m^{(%d)}" % l, "m" + sup)
        b.prog.inputs[m.name] = m
        masks.append((m, self.p))
        out = P.Var(f"drop{j}", "sample", (a.size,), r"\tilde{%s}" % a.tex,
                    _tilde_text(a.text))
        if self.p == 0.0:  # nothing is dropped: ã = a ⊙ m (the mask still applies)
            return b.map_elementwise(out, P.sym(a) * P.sym(m), [a, m], role="dropout")
        return b.map_elementwise(out, _scale(self.p) * P.sym(a) * P.sym(m), [a, m],
                                 role="dropout")

    def initial_values(self, l, rng, following: str = "identity") -> dict:
        return {}

    def table_row(self, l) -> tuple[str, str, str, str]:
        return "", f"dropout p = {self.p:g}", "", "0"

    def to_data(self) -> dict:
        return {DATA_KIND: self.p}

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """1/(1 − p): ``|m/(1 − p)| ≤ 1/(1 − p)`` componentwise, for every mask."""
        s = 1.0 / (1.0 - self.p)
        return [Factor(repr(self), s, f"1/(1 − p) = {s:g} (every mask)",
                       r"\tfrac{1}{1 - %g}" % self.p if self.p else None)]


layers.register_layer(Dropout)


def layer_from_data(item: dict):
    """``(Dropout, None)`` from ``{"dropout": p}``, or ``(None, problem)``.

    >>> layer_from_data({"dropout": 0.25})[0]
    Dropout(0.25)
    >>> layer_from_data({"dropout": 1})[1]  # doctest: +ELLIPSIS
    'Dropout: p must satisfy 0 ≤ p < 1 ...'
    """
    extra = [k for k in item if k != DATA_KIND]
    if extra:
        return None, f"dropout: unexpected keys {sorted(map(str, extra))}"
    try:
        return Dropout(item[DATA_KIND]), None
    except DeclarationError as err:
        return None, str(err)

