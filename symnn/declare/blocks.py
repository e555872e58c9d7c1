r"""Blocks: layers made of layers.

:class:`Residual` is a skip connection ``y = x + f(x)`` around an inner stack of layers
``f`` that maps ``n`` values to ``n``.  It follows the layer protocol of
:mod:`symnn.declare.layers`; its inner layers keep their own parameters, numbered in the
flat order of all the network's Dense layers (``W<l>``, ``b<l>`` stay unique), and its
forward program is the inner layers' forward ops plus one per-sample sum.

Numbering: a network numbers its Dense layers 1, 2, … in declaration order, counting the
Dense layers inside a block where they stand.  A block is given ``l``, the number of its
*last* Dense layer, like the activations after a Dense layer are.  The block's output is
the next ``a`` value of that layer: ``a⁽ˡ⁾ = a⁽ᵏ⁾ + z⁽ˡ⁾`` when the inner stack ends with a
Dense layer (``k`` the layer before the block), ``a⁽ˡ·²⁾ = a⁽ᵏ⁾ + a⁽ˡ⁾`` when it ends with an
activation.

Examples
--------
>>> r = Residual([Dense(3, 3), "tanh", Dense(3, 3)])
>>> r
Residual([Dense(3, 3), 'tanh', Dense(3, 3)])
>>> r.n_in, r.n_out, r.n_dense
(3, 3, 2)
>>> [p.name for p in r.parameters(3)]        # after one Dense layer: layers 2 and 3
['W2', 'b2', 'W3', 'b3']
>>> Residual([Dense(3, 2)])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
symnn.errors.DeclarationError: Residual: the inner layers map 3 values to 2, but ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import sympy as sp

from symnn import ops as P
from symnn.declare._calls import refuse_bad_calls
from symnn.declare.layers import (
    Act,
    Dense,
    Factor,
    ParamSpec,
    Softmax,
    act_var,
    as_layer,
    layer_numbers,
    register_layer,
)
from symnn.declare.text import expr_text
from symnn.errors import DeclarationError

__all__ = ["Residual", "dense_count", "layer_data", "flat_layers"]


def dense_count(layer) -> int:
    """How many Dense layers ``layer`` holds: 1 for a Dense layer, a block's ``n_dense``,
    else 0."""
    if isinstance(layer, Dense):
        return 1
    return int(getattr(layer, "n_dense", 0))


def _count(layer) -> int:
    """How many numbered layers ``layer`` is: its Dense layers, or 1 for a sequence layer with
    parameters of its own (``numbered_alone``, e.g. SelfAttention)."""
    return dense_count(layer) or int(any(bool(getattr(layer, a, False)) for a in (
        "numbered_alone", "numbered_layer", "own_number")))


def layer_data(layer) -> dict:
    """A layer's plain-data form (a spec's ``layers`` entry); a custom ``Lambda``
    activation as its body in spec-language text."""
    act = getattr(layer, "activation", None)
    if getattr(act, "key", None) and act.key[0] == "lambda":  # (RNN: a name)
        t = sp.Symbol("t")
        return {"activation": {"expr": expr_text(act.apply(t)), "var": "t", "name": act.name}}
    return layer.to_data()


def flat_layers(net) -> list[tuple[Any, int, int]]:
    """``(layer, l, depth)`` for every layer of a network with the blocks opened: their inner
    layers in order (``depth`` the number of blocks around them), then the block itself
    (at its own depth) where its skip sum is taken.  ``l`` is the Dense number, as in
    :func:`symnn.declare.layers.layer_numbers`."""
    out: list = []

    def walk(items, depth):
        for layer, l in items:
            if hasattr(layer, "numbered"):
                walk(layer.numbered(l), depth + 1)
            out.append((layer, l, depth))

    walk(layer_numbers(net), 0)
    return out


def _skips(layer) -> bool:
    """An identity activation: it changes nothing and names nothing."""
    return isinstance(layer, Act) and layer.activation.identity


def _inner(layers, where: str) -> tuple:
    if isinstance(layers, (str, bytes, Dense)) or not hasattr(layers, "__iter__"):
        raise DeclarationError(f"{where}: give the inner layers as a list, e.g. "
                               "Residual([Dense(n, n), 'tanh', Dense(n, n)])")
    return tuple(as_layer(item, where=f"{where} layer {i}") for i, item in enumerate(layers))


def _widths(items: tuple, where: str) -> int | None:
    """The width n the inner stack maps to itself (DeclarationError unless n → n); for a
    stack of sequence layers, ``T·d`` once its length is known (else None)."""
    if items and hasattr(items[0], "shape_at"):
        return _sequence_width(items, where)
    n = width = None
    for i, layer in enumerate(items):
        if dense_count(layer):
            if width is not None and layer.n_in != width:
                raise DeclarationError(
                    f"{where}: inner layer {i} takes {layer.n_in} inputs but the layer before "
                    f"it gives {width}; make n_in = {width}")
            n = layer.n_in if n is None else n
            width = layer.n_out
        elif hasattr(layer, "shape_at"):  # a sequence layer after a Dense layer (issue 13)
            raise DeclarationError(
                f"{where}: inner layer {i} ({layer!r}) reads a (T, d) sequence value, but the "
                "block starts with a Dense layer; put sequence layers in a block of their own, "
                "e.g. Residual([SelfAttention(d, d_k)])")
        elif width is None and hasattr(layer, "return_sequences"):  # round 5 (h-exact)
            raise DeclarationError(
                f"{where}: inner layer {i} ({layer!r}) is a recurrent layer; a Residual holds "
                "flat-vector layers that start with Dense(n, …), or sequence layers that keep "
                "the (T, d) shape (SelfAttention, activations): a skip connection around an "
                "RNN or GRU is not supported — declare the recurrent layer outside the block")
        elif width is None:
            raise DeclarationError(
                f"{where}: inner layer {i} ({getattr(layer, 'name', layer)}) comes before any "
                "Dense layer; start the inner stack with Dense(n, …)")
        elif hasattr(layer, "out_shape"):  # LayerNorm(n) reads (n,); Conv1D, RNN … refuse
            _flat_inner(layer, i, width, where)
        elif isinstance(layer, Softmax) and width == 1:
            raise DeclarationError(f"{where}: inner layer {i} (softmax) normalises a single "
                                   "value (the constant 1); give the Dense layer before it "
                                   "≥ 2 units")
    if n is None:
        raise DeclarationError(f"{where}: the inner stack has no Dense layer; declare at "
                               "least one, e.g. Residual([Dense(n, n), 'tanh'])")
    if width != n:
        raise DeclarationError(
            f"{where}: the inner layers map {n} values to {width}, but y = x + f(x) needs f "
            f"to map n values to n; make the last Dense layer's n_out = {n}")
    return n


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True, repr=False)
class Residual:
    """The skip connection ``y = x + f(x)``, ``f`` the inner ``layers`` (``n → n``).

    ``layers`` are given as in :class:`~symnn.Network`: ``Dense`` layers, activation names,
    ``"softmax"``, ``sympy.Lambda`` activations, or blocks.
    """

    layers: Any

    name = "residual"

    def __post_init__(self) -> None:
        items = _inner(self.layers, "Residual")
        object.__setattr__(self, "layers", items)
        object.__setattr__(self, "n", _widths(items, "Residual"))

    def __repr__(self) -> str:
        parts = [f"Dense({la.n_in}, {la.n_out})" if isinstance(la, Dense)
                 else repr(la.name) if isinstance(la, (Act, Softmax)) else repr(la)
                 for la in self.layers]
        return f"Residual([{', '.join(parts)}])"

    @property
    def n_in(self) -> int:
        return self.n

    @property
    def n_out(self) -> int:
        return self.n

    @property
    def n_dense(self) -> int:
        """The number of Dense layers inside (counted in the network's numbering; a sequence
        layer with parameters, e.g. SelfAttention, counts as one)."""
        return sum(_count(la) for la in self.layers)

    @property
    def stacked_after(self) -> int:
        """How many ``a`` values of its last Dense layer the block defines (the inner
        activations after that layer, and the sum): an activation after the block takes the
        next one."""
        k = 0
        for layer in self.layers:
            if _skips(layer):
                continue
            k = getattr(layer, "stacked_after", 0) if _count(layer) else k + 1
        return k + 1

    def numbered(self, l: int) -> list[tuple[Any, int]]:
        """(inner layer, its Dense number) like :func:`symnn.declare.layers.layer_numbers`,
        for the block numbered ``l`` (its last Dense layer)."""
        out, k = [], l - self.n_dense
        for layer in self.layers:
            k += _count(layer)
            out.append((layer, k))
        return out

    # -- the layer protocol ---------------------------------------------------------------
    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        """The inner layers' parameters, in their flat order."""
        return tuple(p for layer, k in self.numbered(l) for p in layer.parameters(k))

    def forward(self, b, l: int, a_prev, k: int = 0):
        """a⁽ˡ⁾ = a⁽ˡ⁻¹⁾ + f(a⁽ˡ⁻¹⁾): the inner layers' forward ops, then the per-sample
        sum (whose reverse rule hands the cotangent to both the skip and the inner path)."""
        cur, stacked = a_prev, 0
        for layer, m in self.numbered(l):
            if _skips(layer):
                continue
            stacked = 0 if _count(layer) else stacked + 1
            cur = layer.forward(b, m, cur, stacked)
            stacked = getattr(layer, "stacked_after", stacked)
        out = act_var(l, stacked + 1, self.n)
        return b.map_elementwise(out, P.sym(a_prev) + P.sym(cur), [a_prev, cur], role="skip")

    def initial_values(self, l: int, rng: np.random.Generator,
                       following: str = "identity") -> dict[str, np.ndarray]:
        """The inner layers' initial arrays (each Dense layer told the activation after it
        inside the block; the last one ``following``)."""
        out: dict[str, np.ndarray] = {}
        items = self.numbered(l)
        for i, (layer, k) in enumerate(items):
            nxt = items[i + 1][0] if i + 1 < len(items) else None
            after = (nxt.name if isinstance(nxt, (Act, Softmax))
                     else following if nxt is None else "identity")
            out.update(layer.initial_values(k, rng, after))
        return out

    def to_data(self) -> dict:
        """``{"residual": [inner layer data, …]}``."""
        return {"residual": [layer_data(layer) for layer in self.layers]}

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """``1 + Lip(f)``, Lip(f) the product of the inner layers' factors."""
        inner = [f for layer, k in self.numbered(l) for f in layer.lipschitz(arrays, k, bound)]
        value = 1.0
        for f in inner:
            value *= f.value
        texs = [f.tex for f in inner if f.tex is not None]
        tex = r"\left(1 + %s\right)" % (r" \cdot ".join(texs) if texs else "1")
        names = " · ".join(f.name for f in inner)
        return [Factor(f"residual({names})", 1.0 + value, "1 + Lip(f) (skip connection)", tex)]


    # -- sequence blocks (issue 13: Residual([SelfAttention(…)])) ---------------------------
    @property
    def shaped(self) -> bool:
        """True for a block of sequence layers: it chains ``(T, d)`` shapes, as the
        convolutional layers do (:func:`symnn.declare.conv.chain_shapes`)."""
        return hasattr(self.layers[0], "shape_at")

    @property
    def length(self):
        return getattr(self.layers[0], "length", None)

    def shape_at(self, length: int):
        if not self.shaped:
            raise DeclarationError(f"{self!r} holds Dense layers: it reads flat vectors")
        return self.layers[0].shape_at(length)

    def out_shape(self, in_shape, where: str):
        """The inner sequence layers chained from ``in_shape``, which they must map to
        itself (y = x + f(x))."""
        if not self.shaped:
            raise DeclarationError(f"{where} ({self!r}) reads a flat vector; insert "
                                   "symnn.Flatten() before it")
        shape = in_shape
        for i, layer in enumerate(self.layers):
            if hasattr(layer, "out_shape"):
                shape = layer.out_shape(shape, f"{where} (Residual) inner layer {i}")
        if shape != in_shape:
            raise DeclarationError(
                f"{where} ({self!r}): the inner layers map {in_shape} to {shape}, but "
                "y = x + f(x) needs the same shape")
        return in_shape

    def bound(self, in_shape) -> "Residual":
        items, shape = [], in_shape
        for layer in self.layers:
            if hasattr(layer, "bound"):
                new = layer.out_shape(shape, "Residual")
                layer, shape = layer.bound(shape), new
            items.append(layer)
        return Residual(items)


def _flat_inner(layer, i: int, width: int, where: str) -> None:
    """DeclarationError unless the shaped ``layer`` maps the flat ``width`` values of a
    Dense stack to as many (a LayerNorm(width) does; a Conv1D, pool, Flatten or recurrent
    layer reads 2-D values)."""
    try:
        shape = tuple(layer.out_shape((width,), f"{where} inner layer {i}"))
    except DeclarationError as err:
        raise DeclarationError(
            f"{err} (a Residual that starts with a Dense layer holds flat-vector layers: "
            "Dense, activations, LayerNorm, Dropout, blocks)") from None
    if shape != (width,):
        raise DeclarationError(f"{where}: inner layer {i} ({layer!r}) maps {width} values "
                               f"to shape {shape}; inside a Dense stack it must keep {width}")


def _sequence_width(items: tuple, where: str) -> int | None:
    """A stack of sequence layers and activations: ``T·d`` when the first layer's input shape
    is known, else None (the network binds it)."""
    for i, layer in enumerate(items):
        if not (hasattr(layer, "out_shape") or isinstance(layer, (Act, Softmax))) \
                or dense_count(layer):
            raise DeclarationError(
                f"{where}: inner layer {i} ({getattr(layer, 'name', layer)}) does not take a "
                "sequence value; a block of sequence layers holds sequence layers (e.g. "
                "SelfAttention) and activations")
        if getattr(layer, "layout", None) == "channels":  # (:func:`conv.layout_of`)
            raise DeclarationError(
                f"{where}: inner layer {i} ({layer!r}) reads a (channels, length) value, but "
                f"the block's layer 0 ({items[0]!r}) reads (time, features) sequences: the "
                "axes would be swapped; symnn has no transpose layer, so keep convolutions "
                "and sequence layers in separate parts of the network")
    shape = items[0].in_shape
    return None if shape is None else shape[0] * shape[1]


register_layer(Residual)
