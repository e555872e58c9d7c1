r"""Dropout: :class:`Dropout`, inverted dropout with the mask an input of the program.

``Dropout(p)`` writes ``ã = a ⊙ m / (1 − p)``, with ``m ∈ {0, 1}`` per component.  The
mask is not drawn inside the derived program: it is a per-sample value given by the
caller, like the inputs ``x`` and targets ``y`` (a :class:`~symnn.ops.Var` of kind
``"mask"``, one per Dropout layer, holding the scaled mask ``m / (1 − p)``).  So every
derivative symnn derives — the gradient, Hessian-vector and Gauss-Newton products, the
Hessian, the input Jacobian — is the exact derivative of the network *for that fixed mask*.

Models of a network with Dropout take ``mask=`` — ``(B, W)`` of 0s and 1s, the Dropout
layers' columns side by side in the order the forward pass meets them (``W`` is
``model.mask_width``) — in every method; the model scales each layer's columns by its
``1/(1 − p)`` and hands them to the kernels as one more argument ``M``
(:mod:`symnn.codegen.numba.masks`).  ``mask=None`` passes ``M = 1``, so ``ã = a``
exactly: the expected network, the network without its Dropout layers (what ``predict``
gives by default).  Training (``fit``) draws a fresh Bernoulli(1 − p) mask per
mini-batch from the fit's seed (:mod:`symnn.train.dropout`).

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
  ã⁽¹⁾ = a⁽¹⁾ ⊙ m⁽¹⁾/(1 − 0.5)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from numbers import Real
from typing import Callable

from symnn import ops as P
from symnn.declare import layers
from symnn.declare._calls import refuse_bad_calls
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
        why = "; p = 1 would drop every unit" if p >= 1 else ""
        raise DeclarationError(
            f"Dropout: p must satisfy 0 ≤ p < 1 (the probability of dropping a unit), got "
            f"{p!r}{why}")
    return p


def _tilde_tex(tex: str) -> str:
    """``a^{(1)}`` → ``\\tilde{a}^{(1)}`` (a tilde over the whole name otherwise)."""
    if re.match(r"[A-Za-z](\^|\Z)", tex):
        return r"\tilde{%s}%s" % (tex[0], tex[1:])
    return r"\tilde{%s}" % tex


def _tilde_text(text: str) -> str:
    """``a⁽¹⁾`` → ``ã⁽¹⁾``: a tilde over the first letter (precomposed where Unicode has it)."""
    return unicodedata.normalize("NFC", text[:1] + "\u0303" + text[1:]) if text else "ã"


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
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
        """ã = a ⊙ (m / (1 − p)): the scaled mask ``m / (1 − p)`` is a new program input
        (kind ``"mask"``, ``b.meta["masks"]`` lists ``(Var, p)``), so that ``m = 1`` with
        ``p`` folded in is the exact identity ``ã = a`` (no mask: the expected network)."""
        masks = b.meta.setdefault("masks", [])
        j = len(masks) + 1
        sup = P.superscript(f"({l})")
        if self.p:
            tex, text = r"\frac{m^{(%d)}}{1 - %g}" % (l, self.p), f"m{sup}/(1 − {self.p:g})"
        else:
            tex, text = r"m^{(%d)}" % l, "m" + sup
        m = P.Var(f"mask{j}", MASK_KIND, (a.size,), tex, text)
        b.prog.inputs[m.name] = m
        masks.append((m, self.p))
        out = P.Var(f"drop{j}", "sample", (a.size,), _tilde_tex(a.tex), _tilde_text(a.text))
        return b.map_elementwise(out, P.sym(a) * P.sym(m), [a, m], role="dropout")

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


def check_place(items) -> None:
    """DeclarationError for a Dropout layer where it would drop the network's outputs (the
    last layer but identities) or its inputs (the first layer)."""
    kept = [(i, la) for i, la in enumerate(items)
            if not (isinstance(la, layers.Act) and la.activation.identity)]
    if kept and isinstance(kept[-1][1], Dropout):
        raise DeclarationError(
            f"layer {kept[-1][0]} ({kept[-1][1]!r}) is the last layer: it would drop the "
            "network's outputs, which the loss reads; put Dropout between hidden layers")
    if kept and isinstance(kept[0][1], Dropout):
        raise DeclarationError(
            f"layer {kept[0][0]} ({kept[0][1]!r}) comes before any layer with parameters: "
            "symnn's Dropout drops hidden units; start the network with Dense(n_inputs, "
            "n_units) (or Conv1D)")


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


def _read(item: dict, high: int = 1 << 20):
    """:data:`symnn.declare.layers.DATA_READERS`' reader: ``high`` is unused (p is a
    probability, not a size)."""
    return layer_from_data(item)


layers.DATA_READERS.append(((DATA_KIND,), _read))  # spec and model files
