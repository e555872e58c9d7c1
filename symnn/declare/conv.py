r"""Convolutional layers: :class:`Conv1D`, :class:`AvgPool1D`, :class:`MaxPool1D`,
:class:`Flatten`.

A sample's value between these layers has the shape ``(channels, length)``, held as a flat
vector in row-major ``(c, t)`` order (``symnn.ops`` values are flat); each layer records the
shape it reads (``in_shape``), which :class:`~symnn.Network` fills in when it chains the
layers (:func:`chain_shapes`).  A network whose first layer is a :class:`Conv1D` takes
inputs ``X`` of shape ``(n, channels, length)`` (or their rows flattened, ``(n, c·L)``).

The input length is read from ``Conv1D(..., length=L)`` when given, and otherwise inferred
from the first ``Dense`` layer after the ``Flatten`` (its ``n_in`` must equal the flattened
size; when several lengths fit, the network asks for ``length=``).

Layouts: a ``(channels, length)`` value (Conv1D, the pools) is not a ``(T, d)`` sequence
(RNN, GRU, SelfAttention, whose rows are the time steps), although both are 2-D: a
convolution reads its length on the last axis, a recurrence its time on the first.  So a
layer of one kind after a layer of the other is refused, naming both (:func:`layout_of`);
symnn has no transpose layer, and reading one as the other would silently swap the axes.
Layers that keep either (LayerNorm, Dropout, activations) pass the layout on; Flatten
ends it.

Examples
--------
>>> import symnn
>>> net = symnn.Network([symnn.Conv1D(1, 2, 3), "relu", symnn.Flatten(),
...                      symnn.Dense(16, 1)], loss="mse")
>>> net.input_shape, net.n_inputs
((1, 10), 10)
>>> symnn.Network([symnn.Conv1D(1, 2, 3, length=10), "relu", symnn.MaxPool1D(2),
...                symnn.Flatten(), symnn.Dense(8, 1)]).layers[2].in_shape
(2, 8)
>>> [(p.name, p.shape, p.role) for p in net.layers[0].parameters(1)]
[('W1', (2, 1, 3), 'weight'), ('b1', (2,), 'bias')]
>>> symnn.Network([symnn.RNN(2, 3, return_sequences=True, length=4), symnn.Conv1D(4, 2, 2),
...                symnn.Flatten(), symnn.Dense(4, 1)])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
symnn.errors.DeclarationError: layer 1 (Conv1D(4, 2, 2)) reads a (channels, length) value, but layer 0 (RNN(2, 3, return_sequences=True, length=4)) gives a (time, features) sequence ...
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from numbers import Integral
from typing import Callable

import numpy as np

from symnn import ops as P
from symnn.declare import layers, recurrent
from symnn.declare._calls import refuse_bad_calls
from symnn.declare.blocks import dense_count
from symnn.declare.layers import Dense, Factor, ParamSpec, Softmax, _sup, layer_var
from symnn.declare.limits import check_width
from symnn.errors import DeclarationError, SizeLimitError

__all__ = ["Conv1D", "AvgPool1D", "MaxPool1D", "Flatten", "CONV_TYPES", "chain_shapes"]

#: The largest input length :func:`chain_shapes` tries when it infers one.
MAX_INFERRED_LENGTH = 1 << 16


def _positive(owner: str, name: str, v, low: int = 1) -> int:
    if isinstance(v, Integral) and not isinstance(v, bool):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise DeclarationError(f"{owner}: {name} must be an integer ≥ {low}, got {v!r}")
    return v


def _shape2(owner: str, in_shape) -> tuple[int, int]:
    if in_shape is None or len(in_shape) != 2:
        raise DeclarationError(
            f"{owner} reads a (channels, length) value, but the layer before it gives a flat "
            f"vector{'' if in_shape is None else f' of {in_shape[0]}'}; a convolution or pool "
            "comes after a Conv1D (or another pool), before the Flatten")
    return in_shape


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True)
class Conv1D:
    """``z[c, t] = Σ_{c', k} W[c, c', k] · x[c', t·s + k − p] + b[c]`` on a
    ``(in_channels, length)`` input (zero padding ``p`` at both ends, stride ``s``), as
    ``torch.nn.functional.conv1d(x, W, b, stride=s, padding=p)``.

    ``W`` has shape ``(out_channels, in_channels, kernel_size)`` (role ``"weight"``),
    ``b`` ``(out_channels,)`` (role ``"bias"``); named ``W<l>``, ``b<l>`` like a Dense
    layer's, ``l`` counting the layers with parameters.  ``length``: the input length (only
    needed when the network cannot infer it).
    """

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    length: int | None = None
    bias: bool = True

    HE_FAMILY = Dense.HE_FAMILY
    layout = "channels"  #: reads and gives (channels, length) values (:func:`layout_of`)
    numbered_alone = True  #: numbered like a Dense layer, also inside a Residual

    def __post_init__(self) -> None:
        own = repr(self)
        for name, low in (("in_channels", 1), ("out_channels", 1), ("kernel_size", 1),
                          ("stride", 1), ("padding", 0)):
            object.__setattr__(self, name, _positive(own, name, getattr(self, name), low))
            check_width(getattr(self, name), f"{own}: {name}")
        if not isinstance(self.bias, (bool, np.bool_)):
            raise DeclarationError(f"{own}: bias must be True or False, got {self.bias!r}")
        object.__setattr__(self, "bias", bool(self.bias))
        if self.length is not None:
            object.__setattr__(self, "length", _positive(own, "length", self.length))
            if self.length + 2 * self.padding < self.kernel_size:
                raise DeclarationError(
                    f"{own}: the kernel ({self.kernel_size}) is longer than the padded input "
                    f"({self.length} + 2·{self.padding}); use a shorter kernel or more padding")

    def __repr__(self) -> str:
        extra = "".join(f", {n}={getattr(self, n)!r}" for n, d in
                        (("stride", 1), ("padding", 0), ("length", None), ("bias", True))
                        if getattr(self, n) != d)
        return f"Conv1D({self.in_channels}, {self.out_channels}, {self.kernel_size}{extra})"

    @property
    def name(self) -> str:
        return repr(self)

    @property
    def in_shape(self):
        return None if self.length is None else (self.in_channels, self.length)

    def geom(self) -> P.Geom:
        if self.length is None:
            raise DeclarationError(f"{self!r}: its input length is not known; declare it "
                                   "inside a Network, or give length=")
        return P.Geom(self.in_channels, self.length, self.out_channels, self.kernel_size,
                      self.stride, self.padding)

    def out_shape(self, in_shape, where: str):
        c, L = _shape2(f"{where} ({self!r})", in_shape)
        if c != self.in_channels:
            raise DeclarationError(
                f"{where} ({self!r}) takes {self.in_channels} channels but the layer before "
                f"it gives {c}; make in_channels = {c}")
        if self.length is not None and self.length != L:
            raise DeclarationError(
                f"{where} ({self!r}) is declared for inputs of length {self.length} but the "
                f"layer before it gives length {L}; drop length= or make it {L}")
        if L + 2 * self.padding < self.kernel_size:
            raise DeclarationError(
                f"{where} ({self!r}): the kernel ({self.kernel_size}) is longer than the "
                f"padded input ({L} + 2·{self.padding}); use a shorter kernel or more padding")
        return (self.out_channels, (L + 2 * self.padding - self.kernel_size) // self.stride + 1)

    def bound(self, in_shape) -> "Conv1D":
        return replace(self, length=in_shape[1])

    # -- protocol --------------------------------------------------------------------------
    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        """``W<l>`` (out_channels, in_channels, kernel_size) and ``b<l>`` (out_channels,)."""
        out = [ParamSpec(f"W{l}", (self.out_channels, self.in_channels, self.kernel_size),
                         "weight", f"W^{{({l})}}", "W" + _sup(f"({l})"), l)]
        if self.bias:
            out.append(ParamSpec(f"b{l}", (self.out_channels,), "bias", f"b^{{({l})}}",
                                 "b" + _sup(f"({l})"), l))
        return tuple(out)

    role_of = staticmethod(Dense.role_of)

    def forward(self, b, l: int, a_prev, k: int = 0):
        """z⁽ˡ⁾[c, t] = Σ W⁽ˡ⁾[c, c′, k] a⁽ˡ⁻¹⁾[c′, t·s + k − p] + b⁽ˡ⁾[c]."""
        g = self.geom()
        vars_ = {}
        for spec in self.parameters(l):
            v = P.Var(spec.name, "param", spec.shape, spec.tex, spec.text)
            b.prog.inputs[v.name] = v
            vars_[spec.role] = v
        z = layer_var("z", l, g.c_out * g.l_out, "z", "z")
        return b.emit(P.Conv1D(z, vars_["weight"], a_prev, vars_.get("bias"), g))

    def initial_values(self, l: int, rng: np.random.Generator,
                       following: str = "identity") -> dict[str, np.ndarray]:
        """The weight He-uniform ``U(±sqrt(6/fan_in))`` before a ReLU-family activation,
        else Glorot-uniform ``U(±sqrt(6/(fan_in + fan_out)))``, with ``fan_in =
        in_channels·kernel_size`` and ``fan_out = out_channels·kernel_size``; the bias 0."""
        fan_in = self.in_channels * self.kernel_size
        fan_out = self.out_channels * self.kernel_size
        a = math.sqrt(6.0 / (fan_in if following in self.HE_FAMILY else fan_in + fan_out))
        out = {}
        for spec in self.parameters(l):
            if spec.role == "weight":
                out[spec.name] = rng.uniform(-a, a, int(np.prod(spec.shape))).reshape(spec.shape)
            else:
                out[spec.name] = np.zeros(spec.shape)
        return out

    def table_row(self, l) -> tuple[str, str, str, str]:
        """(number, kind, TeX shape, parameter count): a row of a document's table."""
        n = self.out_channels * self.in_channels * self.kernel_size + (
            self.out_channels if self.bias else 0)
        kind = f"conv1d (stride {self.stride}, padding {self.padding})"
        shape = r"W^{(%d)} \in \mathbb{R}^{%d \times %d \times %d}" % (
            l, self.out_channels, self.in_channels, self.kernel_size)
        return str(l), kind, shape, str(n)

    def to_data(self) -> dict:
        d = {"conv1d": [self.in_channels, self.out_channels, self.kernel_size],
             "stride": self.stride, "padding": self.padding}
        if self.length is not None:
            d["length"] = self.length
        if not self.bias:
            d["bias"] = False
        return d

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """``‖W_mat‖₂ · sqrt(⌈K/s⌉)``, ``W_mat`` the weight reshaped to
        ``(out_channels, in_channels·K)``: each output position is ``W_mat`` times a patch
        of the input, and each input component lies in at most ``⌈K/s⌉`` patches."""
        W = np.asarray(arrays[f"W{l}"], float).reshape(self.out_channels, -1)
        reps = -(-self.kernel_size // self.stride)
        s = float(np.linalg.norm(W, 2)) * math.sqrt(reps)
        return [Factor(f"W{l}", s, f"‖W{l} reshaped‖₂·√{reps} (convolution)",
                       r"\sqrt{%d}\,\lVert W^{(%d)} \rVert_2" % (reps, l))]


@dataclass(frozen=True)
class _Pool:
    size: int
    in_shape: tuple | None = field(default=None, repr=False, compare=False)

    layout = "channels"  #: reads and gives (channels, length) values (:func:`layout_of`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _positive(type(self).__name__, "size", self.size))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size})"

    @property
    def name(self) -> str:
        return repr(self)

    def pool(self) -> P.Pool:
        if self.in_shape is None:
            raise DeclarationError(f"{self!r}: its input shape is not known; declare it "
                                   "inside a Network")
        return P.Pool(self.in_shape[0], self.in_shape[1], self.size)

    def out_shape(self, in_shape, where: str):
        c, L = _shape2(f"{where} ({self!r})", in_shape)
        if L < self.size:
            raise DeclarationError(f"{where} ({self!r}): the window ({self.size}) is longer "
                                   f"than the input ({L})")
        return (c, L // self.size)

    def bound(self, in_shape):
        return replace(self, in_shape=tuple(in_shape))

    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        return ()

    def initial_values(self, l, rng, following="identity") -> dict:
        return {}

    def table_row(self, l) -> tuple[str, str, str, str]:
        c, L = self.in_shape
        kind = f"{'average' if isinstance(self, AvgPool1D) else 'max'} pool {self.size}"
        return "", kind, r"%d \times %d \to %d \times %d" % (c, L, c, L // self.size), "0"

    def _out(self, l: int, k: int, n: int):
        return P.Var(f"{self.PREFIX}{l}_{k}", "sample", (n,),
                     r"%s^{(%d.%d)}" % (self.PREFIX, l, k), self.PREFIX + _sup(f"({l}.{k})"))


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True, repr=False)
class AvgPool1D(_Pool):
    """``r[c, t] = (1/m) Σ_{j<m} x[c, t·m + j]``: non-overlapping windows of ``size = m``
    (a tail shorter than m is dropped), as ``torch.nn.functional.avg_pool1d(x, m)``."""

    PREFIX = "p"

    def forward(self, b, l: int, x, k: int = 1):
        p = self.pool()
        return b.emit(P.AvgPool(self._out(l, k, p.c * p.l_out), x, p))

    def to_data(self) -> dict:
        return {"avg_pool1d": self.size}

    def lipschitz(self, arrays, l, bound) -> list[Factor]:
        """1/√m: each output is a mean of m inputs, ``(Σ x/m)² ≤ Σ x²/m``, windows disjoint."""
        return [Factor(repr(self), 1 / math.sqrt(self.size), f"1/√{self.size} (mean of "
                       f"{self.size})", r"\tfrac{1}{\sqrt{%d}}" % self.size)]


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True, repr=False)
class MaxPool1D(_Pool):
    """``r[c, t] = max_{j<m} x[c, t·m + j]``, as ``torch.nn.functional.max_pool1d(x, m)``;
    its derivative routes the cotangent to the window's argmax (the first one on a tie,
    as PyTorch)."""

    PREFIX = "m"

    def forward(self, b, l: int, x, k: int = 1):
        p = self.pool()
        return b.emit(P.MaxGather(self._out(l, k, p.c * p.l_out), x, x, p))

    def to_data(self) -> dict:
        return {"max_pool1d": self.size}

    def lipschitz(self, arrays, l, bound) -> list[Factor]:
        """1: |max a − max b| ≤ max|a − b| per window, windows disjoint."""
        return [Factor(repr(self), 1.0, "max over disjoint windows", None)]


@dataclass(frozen=True)
class Flatten:
    """``(channels, length) → channels·length`` in row-major ``(c, t)`` order (as
    ``torch.flatten(x, 1)``); the values are flat already, so it emits no op."""

    def __init__(self, *args, **kwargs) -> None:
        # walk: a wrong call is a symnn error, not Python's TypeError
        if args or kwargs:
            given = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in
                                                          kwargs.items()])
            raise DeclarationError(
                f"Flatten({given}): Flatten takes no arguments — it always turns the "
                "(channels, length) value before it into one flat vector (as "
                "torch.flatten(x, 1)); write Flatten()")

    #: what help() and the API reference show (the arguments above are only refused)
    __signature__ = inspect.Signature(return_annotation=None)

    def __repr__(self) -> str:
        return "Flatten()"

    @property
    def name(self) -> str:
        return "Flatten()"

    def out_shape(self, in_shape, where: str):
        c, L = _shape2(f"{where} (Flatten())", in_shape)
        return (c * L,)

    def bound(self, in_shape):
        return self

    def table_row(self, l) -> tuple[str, str, str, str]:
        return "", "flatten", "", "0"

    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        return ()

    def forward(self, b, l: int, x, k: int = 1):
        return x

    def initial_values(self, l, rng, following="identity") -> dict:
        return {}

    def to_data(self) -> dict:
        return {"flatten": True}

    def lipschitz(self, arrays, l, bound) -> list[Factor]:
        return []


#: The layer classes of this module.
CONV_TYPES: tuple[type, ...] = (Conv1D, AvgPool1D, MaxPool1D, Flatten)


def _walk(layers, shape):
    """Chain ``shape`` through ``layers``: (bound layers, {index: l}, output shape)."""
    out, index, count = [], {}, 0
    src = _source(layers, shape)
    for i, layer in enumerate(layers):
        where = f"layer {i}"
        src = _check_layout(layer, i, shape, src)
        if _shaped(layer) and not isinstance(layer, CONV_TYPES):  # a sequence layer or block
            new = layer.out_shape(shape, where)
            layer = layer.bound(shape)
            shape = new
        elif dense_count(layer):  # a Dense layer, or a block of them (Residual)
            what = (f"Dense({layer.n_in}, {layer.n_out})" if isinstance(layer, Dense)
                    else repr(layer))
            if len(shape) != 1:
                raise DeclarationError(
                    f"{where} ({what}) reads a flat vector but the layer before it gives "
                    f"{LAYOUTS[src[2]] if src else 'a 2-D value'} of shape {tuple(shape)}; "
                    "insert symnn.Flatten() before it")
            if layer.n_in != shape[0]:
                raise DeclarationError(
                    f"{where} ({what}) takes {layer.n_in} inputs but the layer before it "
                    f"gives {shape[0]}; make n_in = {shape[0]}")
            shape = (layer.n_out,)
        elif isinstance(layer, CONV_TYPES) or hasattr(layer, "out_shape"):  # (LayerNorm …)
            new = layer.out_shape(shape, where)
            layer = layer.bound(shape)
            shape = new
        elif isinstance(layer, Softmax) and shape[0] == 1 and len(shape) == 1:
            raise DeclarationError(f"{where} (softmax) normalises a single value; use "
                                   "'sigmoid' for one output")
        check_width(int(np.prod(shape, dtype=object)), f"{where} ({layer!r}) output {shape}")
        numbered = dense_count(layer) or int(isinstance(layer, Conv1D) or _alone(layer))
        if numbered:  # a block is numbered by its last Dense layer
            count += numbered
            index[i] = count
        out.append(layer)
    return out, index, shape


# -- layouts (a (channels, length) value is not a (T, d) sequence) -------------------------
#: The two layouts of a 2-D value: what its axes mean, as the messages name them.
LAYOUTS = {"channels": "a (channels, length) value", "sequence": "a (time, features) sequence"}


_SWAP = {"channels": "a convolution or pool would run over the features instead of time",
         "sequence": "a recurrence or attention would run over the channels instead of the "
                     "positions"}


def layout_of(layer) -> str | None:
    """``"channels"`` for a layer that reads and gives ``(channels, length)`` values
    (Conv1D, the pools), ``"sequence"`` for one that reads ``(T, d)`` sequences (RNN, GRU,
    SelfAttention, a Residual of them), None for one that keeps either (LayerNorm, Dropout,
    activations) or reads flat vectors.

    >>> layout_of(Conv1D(1, 2, 3)), layout_of(recurrent.RNN(2, 3)), layout_of(Flatten())
    ('channels', 'sequence', None)
    """
    if getattr(layer, "layout", None) == "channels":  # Conv1D, the pools
        return "channels"
    if hasattr(layer, "shape_for") or (hasattr(layer, "shape_at") and _shaped(layer)):
        return "sequence"
    return None


def _source(layers, shape):
    """(index, layer, layout) of what gives the network's 2-D input (None for flat inputs):
    a LayerNorm that starts a network reads sequences ``(T, n)``."""
    if len(shape) != 2 or not layers:
        return None
    lay = layout_of(layers[0]) or "sequence"
    return ("the network's input", layers[0], lay)


def _check_layout(layer, i: int, shape, src):
    """DeclarationError when ``layer`` reads the 2-D value ``src`` gave in the other layout
    (the axes would be swapped silently); the new source of the value after ``layer``."""
    lay = layout_of(layer)
    if lay is None or len(shape) != 2:
        return src
    if src is not None and src[2] != lay:
        j, other, had = src
        given = f"layer {j} ({other!r})" if isinstance(j, int) else f"{j} (for {other!r})"
        raise DeclarationError(
            f"layer {i} ({layer!r}) reads {LAYOUTS[lay]}, but {given} gives "
            f"{LAYOUTS[had]} of shape {tuple(shape)}: the axes would be swapped ({_SWAP[lay]}). "
            "symnn has no transpose layer; end one part with symnn.Flatten() and continue "
            "with Dense layers, or declare the network on one layout")
    return (i, layer, lay)


def _shaped(layer) -> bool:
    """A shaped layer of another module (a sequence layer or block: it chains shapes)."""
    return (hasattr(layer, "out_shape") and hasattr(layer, "bound")
            and bool(getattr(layer, "shaped", True)))


shaped_layer = _shaped


def _alone(layer) -> bool:
    """A shaped layer with parameters of its own, numbered like a Conv1D."""
    return any(bool(getattr(layer, a, False))
               for a in ("numbered_alone", "numbered_layer", "own_number"))


def _infer_length(layers, first: Conv1D) -> int:
    """The input length that makes the chain meet the first Dense layer after a Flatten."""
    nxt = next((i for i, la in enumerate(layers) if isinstance(la, Dense)), None)
    if nxt is None:
        raise DeclarationError(
            f"layer 0 ({first!r}): the input length cannot be inferred (no Dense layer "
            "follows); give it, e.g. Conv1D(..., length=L)")
    fits = []
    for L in range(1, MAX_INFERRED_LENGTH + 1):
        try:
            _walk(layers[:nxt + 1], _start_shape(first, L))
        except DeclarationError:
            continue
        except SizeLimitError:  # longer inputs are larger still
            break
        fits.append(L)
        if len(fits) > 1:
            break
    if len(fits) != 1:
        what = "no input length fits" if not fits else f"input lengths {fits} … all fit"
        raise DeclarationError(
            f"layer 0 ({first!r}): {what} the Dense layer {nxt} (n_in = "
            f"{layers[nxt].n_in}); give the length, {type(first).__name__}(..., length=L)")
    return fits[0]


def _first_shape(layers) -> tuple:
    """The input shape of a network that does not start with a Conv1D: the first layer's
    ``in_shape`` (a shape-chained layer such as LayerNorm), or a Dense layer's ``(n_in,)``
    when no convolutional layer follows."""
    first = layers[0]
    conv = [i for i, la in enumerate(layers)
            if isinstance(la, CONV_TYPES) or hasattr(la, "shape_for")
            or (hasattr(la, "shape_at") and _shaped(la))]
    if getattr(first, "in_shape", None) is not None and not isinstance(first, CONV_TYPES):
        return tuple(first.in_shape)
    if conv:
        bad = conv[0]
        # walk: an RNN after a Dense layer was said to need a "(channels, length)" input
        kind = ("a (time, features) sequence" if layout_of(layers[bad]) == "sequence"
                else "a (channels, length)")
        raise DeclarationError(
            f"layer {bad} ({layers[bad]!r}) needs {kind} input: a network with "
            "convolutional or sequence layers starts with a Conv1D or a sequence layer (RNN, "
            "GRU, SelfAttention, or a LayerNorm given length=)")
    if not dense_count(first):
        raise DeclarationError(
            f"layer 0 ({getattr(first, 'name', first)}) comes before any Dense layer; "
            "start the network with Dense(n_inputs, n_units)")
    return (first.n_in,)


def _start_shape(first, L: int) -> tuple[int, int]:
    """The input shape of a network whose first layer is ``first`` and inputs of length L
    (a recurrent layer, :mod:`symnn.declare.recurrent`, says ``(T, n_in)`` itself)."""
    shape_for = getattr(first, "shape_for", None) or getattr(first, "shape_at", None)
    return shape_for(L) if shape_for is not None else (first.in_channels, L)


def chain_shapes(layers):
    """Chain a network's layers from its first :class:`Conv1D`: returns (the layers with
    their input shapes filled in, ``{layer index: l}`` for the layers with parameters, the
    input shape ``(channels, length)``, the output width).  DeclarationError, naming the
    layer, when the shapes do not chain."""
    first = layers[0]
    if isinstance(first, Conv1D) or hasattr(first, "shape_for") or (
            hasattr(first, "shape_at") and _shaped(first)):
        L = first.length if first.length is not None else _infer_length(layers, first)
        in_shape = _start_shape(first, L)
    else:
        in_shape = _first_shape(layers)
    out, index, shape = _walk(layers, in_shape)
    if len(shape) != 1:
        raise DeclarationError(
            f"the last layer gives a 2-D value of shape {tuple(shape)} ((channels, length) "
            "or (time, features)); end with symnn.Flatten() (and Dense layers) so that the "
            "output is a vector")
    return tuple(out), index, in_shape, shape[0]


for _cls in CONV_TYPES:  # as_layer and role_of_name read LAYER_TYPES at call time
    layers.register_layer(_cls)


# ------------------------------------------------------------------------------------------
# plain data (spec files, model files): parsed, never evaluated
# ------------------------------------------------------------------------------------------

#: The keys of a layer table that name a convolutional layer, and their options (and the
#: recurrent layers' keys, whose tables :func:`layer_from_data` hands on to
#: :func:`symnn.declare.recurrent.layer_from_data`).
DATA_KINDS = ("conv1d", "avg_pool1d", "max_pool1d", "flatten") + recurrent.DATA_KINDS + (
    "self_attention", "causal")  # (the last two: SelfAttention, issue 13)
DATA_OPTIONS = ("stride", "padding", "length", "bias")


def _int_ok(v, low: int, high: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def layer_from_data(item: dict, high: int = 1 << 20):
    """``(layer, None)`` from a layer table with one of :data:`DATA_KINDS`, or ``(None,
    problem)`` saying what is wrong (the caller raises its own error with it).  Integers
    are bounded by ``high``.

    >>> layer_from_data({"conv1d": [1, 4, 5], "stride": 2})[0]
    Conv1D(1, 4, 5, stride=2)
    >>> layer_from_data({"max_pool1d": 0})[1]
    'max_pool1d: expected an integer from 1 to 1048576, got 0'
    """
    if any(k in item for k in recurrent.DATA_KINDS):  # RNN, GRU
        return recurrent.layer_from_data(item, high)
    if "self_attention" in item or "causal" in item:  # a SelfAttention (issue 13)
        from symnn.declare.attention import attention_from_data

        return attention_from_data(item, high)
    kinds = [k for k in DATA_KINDS if k in item]
    if len(kinds) != 1:
        return None, f"a layer table names one layer; this one names {kinds or 'none'}"
    kind = kinds[0]
    extra = [k for k in item if k != kind and (kind != "conv1d" or k not in DATA_OPTIONS)]
    if extra:
        return None, f"{kind}: unexpected keys {sorted(map(str, extra))}"
    v = item[kind]
    if kind == "flatten":
        return (Flatten(), None) if v is True else (None, "flatten: expected true")
    if kind != "conv1d":
        if not _int_ok(v, 1, high):
            return None, f"{kind}: expected an integer from 1 to {high}, got {repr(v)[:40]}"
        return (AvgPool1D(v) if kind == "avg_pool1d" else MaxPool1D(v)), None
    if not isinstance(v, list) or len(v) != 3 or not all(_int_ok(n, 1, high) for n in v):
        return None, (f"conv1d: expected [in_channels, out_channels, kernel_size] of "
                      f"integers from 1 to {high}, got {str(v)[:60]}")
    opts = {"stride": (1, 1), "padding": (0, 0), "length": (None, 1)}
    kw = {}
    for name, (default, low) in opts.items():
        x = item.get(name, default)
        if x is not default and not _int_ok(x, low, high):
            return None, f"conv1d {name}: expected an integer from {low} to {high}, got {x!r}"
        kw[name] = x
    bias = item.get("bias", True)
    if not isinstance(bias, bool):
        return None, "conv1d bias: expected true or false"
    try:
        return Conv1D(v[0], v[1], v[2], bias=bias, **kw), None
    except DeclarationError as err:
        return None, str(err)


layers.DATA_READERS.append((DATA_KINDS, layer_from_data))  # spec and model files
