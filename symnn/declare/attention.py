r"""Self-attention: :class:`SelfAttention`, single-head scaled dot-product attention on
sequence values.

A sample's sequence value has the shape ``(T, d_model)`` (time, features), held as a flat
vector in row-major ``(t, i)`` order, as the convolutional layers' ``(channels, length)``
values (:mod:`symnn.declare.conv`).  A network that starts with a :class:`SelfAttention`
takes inputs ``X`` of shape ``(n, T, d_model)`` (PyTorch's ``batch_first``) or their rows
flattened, ``(n, T·d_model)``; ``T`` is read from ``length=`` or inferred from the first
Dense layer after the :class:`~symnn.Flatten`.

Examples
--------
>>> import symnn
>>> net = symnn.Network([symnn.SelfAttention(4, 2), symnn.Flatten(), symnn.Dense(12, 1)])
>>> net.input_shape, net.n_inputs
((3, 4), 12)
>>> [(p.name, p.shape, p.role) for p in net.layers[0].parameters(1)]
[('Wq1', (2, 4), 'weight'), ('Wk1', (2, 4), 'weight'), ('Wv1', (2, 4), 'weight'), ('Wo1', (4, 2), 'weight')]
>>> print(str(net.equations()).split("Backward")[0])  # doctest: +ELLIPSIS
Network(...
Forward pass:
  Q⁽¹⁾ = x (W_q⁽¹⁾)ᵀ
  K⁽¹⁾ = x (W_k⁽¹⁾)ᵀ
  V⁽¹⁾ = x (W_v⁽¹⁾)ᵀ
  S⁽¹⁾ = (1/√2) Q⁽¹⁾ (K⁽¹⁾)ᵀ
  A⁽¹⁾ = softmax_row(S⁽¹⁾)
  O⁽¹⁾ = A⁽¹⁾ V⁽¹⁾
  z⁽¹⁾ = O⁽¹⁾ (W_o⁽¹⁾)ᵀ
...
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from symnn import ops as P
from symnn.declare import layers
from symnn.declare._calls import refuse_bad_calls
from symnn.declare.layers import Factor, ParamSpec, _sup, layer_var
from symnn.declare.limits import check_width
from symnn.errors import DeclarationError

__all__ = ["SelfAttention", "attention_from_data"]

_ROLE = re.compile(r"W[qkvo](\d+)\Z")


def _count(owner: str, name: str, v, low: int = 1) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < low:
        raise DeclarationError(f"{owner}: {name} must be an integer ≥ {low}, got {v!r}")
    return int(v)


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True)
class SelfAttention:
    r"""Single-head scaled dot-product self-attention on a ``(T, d_model)`` value ``X``::

        Q = X W_qᵀ,  K = X W_kᵀ,  V = X W_vᵀ          (W_q, W_k, W_v: d_k × d_model)
        S = Q Kᵀ / √d_k  (+ M, M[t, u] = −∞ for u > t when causal)
        A = softmax of each row of S
        Y = (A V) W_oᵀ                                (W_o: d_model × d_k)

    so ``Y`` is ``(T, d_model)`` again and the layer may sit inside a
    :class:`~symnn.Residual` (a transformer-style block).  As
    ``torch.nn.functional.scaled_dot_product_attention(X W_qᵀ, X W_kᵀ, X W_vᵀ,
    is_causal=causal) @ W_oᵀ``.  There are **no biases**; the four weights (role
    ``"weight"``) are named ``Wq<l>``, ``Wk<l>``, ``Wv<l>``, ``Wo<l>``, ``l`` counting the
    layers with parameters.  ``length``: ``T`` (only needed when the network cannot
    infer it).

    >>> SelfAttention(8, 4, causal=True)
    SelfAttention(8, 4, causal=True)
    >>> SelfAttention(8, 0)
    Traceback (most recent call last):
    ...
    symnn.errors.DeclarationError: SelfAttention: d_k must be an integer ≥ 1, got 0
    """

    d_model: int
    d_k: int
    causal: bool = False
    length: int | None = None

    def __post_init__(self) -> None:
        own = "SelfAttention"
        object.__setattr__(self, "d_model", _count(own, "d_model", self.d_model))
        object.__setattr__(self, "d_k", _count(own, "d_k", self.d_k))
        check_width(self.d_model * self.d_k, f"{own}: d_model·d_k (a projection's size)")
        if not isinstance(self.causal, (bool, np.bool_)):
            raise DeclarationError(f"{own}: causal must be True or False, got {self.causal!r}")
        object.__setattr__(self, "causal", bool(self.causal))
        if self.length is not None:
            object.__setattr__(self, "length", _count(own, "length", self.length))

    def __repr__(self) -> str:
        extra = "".join(f", {n}={getattr(self, n)!r}" for n, d in
                        (("causal", False), ("length", None)) if getattr(self, n) != d)
        return f"SelfAttention({self.d_model}, {self.d_k}{extra})"

    @property
    def name(self) -> str:
        return repr(self)

    #: counted in the network's layer numbering (it has parameters)
    numbered_alone = True

    # -- shape chaining (see symnn.declare.conv.chain_shapes) --------------------------------
    @property
    def in_shape(self):
        return None if self.length is None else (self.length, self.d_model)

    def shape_at(self, length: int) -> tuple[int, int]:
        """The input shape for sequences of ``length`` steps."""
        return (length, self.d_model)

    def out_shape(self, in_shape, where: str):
        if in_shape is None or len(in_shape) != 2:
            flat = "" if in_shape is None else f" of {in_shape[0]}"
            raise DeclarationError(
                f"{where} ({self!r}) reads a (T, d_model) sequence value, but the layer before "
                f"it gives a flat vector{flat}; self-attention starts the network or follows "
                "another sequence layer, before the Flatten")
        T, d = in_shape
        if d != self.d_model:
            raise DeclarationError(
                f"{where} ({self!r}) takes {self.d_model} features per step but the layer "
                f"before it gives {d}; make d_model = {d}")
        if self.length is not None and self.length != T:
            raise DeclarationError(
                f"{where} ({self!r}) is declared for sequences of length {self.length} but "
                f"the layer before it gives length {T}; drop length= or make it {T}")
        check_width(T * T, f"{where} ({self!r}): its T×T attention scores (T = {T})")
        return (T, d)

    def bound(self, in_shape) -> "SelfAttention":
        return replace(self, length=in_shape[0])

    # -- protocol --------------------------------------------------------------------------
    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        """``Wq<l>``, ``Wk<l>``, ``Wv<l>`` (d_k, d_model) and ``Wo<l>`` (d_model, d_k)."""
        out = []
        for c in "qkvo":
            shape = (self.d_model, self.d_k) if c == "o" else (self.d_k, self.d_model)
            out.append(ParamSpec(f"W{c}{l}", shape, "weight", f"W_{{{c}}}^{{({l})}}",
                                 f"W_{c}" + _sup(f"({l})"), l))
        return tuple(out)

    @staticmethod
    def role_of(name: str) -> tuple[str, int] | None:
        """(``"weight"``, l) for ``Wq<l>``, ``Wk<l>``, ``Wv<l>``, ``Wo<l>``; else None."""
        m = _ROLE.match(name)
        return ("weight", int(m.group(1))) if m else None

    def _T(self) -> int:
        if self.length is None:
            raise DeclarationError(f"{self!r}: its sequence length is not known; declare it "
                                   "inside a Network, or give length=")
        return self.length

    def forward(self, b, l: int, x, k: int = 0):
        """Q, K, V = X W_qᵀ, X W_kᵀ, X W_vᵀ;  A = softmax_row(Q Kᵀ/√d_k);  z = (A V) W_oᵀ."""
        T, d, dk = self._T(), self.d_model, self.d_k
        W = {}
        for spec in self.parameters(l):
            v = P.Var(spec.name, "param", spec.shape, spec.tex, spec.text)
            b.prog.inputs[v.name] = v
            W[spec.name[1]] = v

        def val(letter: str, size: int):
            return layer_var(letter, l, size, letter, letter)

        proj = P.MatDims(T, d, dk, tb=True)
        q = b.emit(P.AttnMatMul(val("Q", T * dk), x, W["q"], proj))
        kk = b.emit(P.AttnMatMul(val("K", T * dk), x, W["k"], proj))
        v = b.emit(P.AttnMatMul(val("V", T * dk), x, W["v"], proj))
        s = b.emit(P.AttnMatMul(val("S", T * T), q, kk, P.MatDims(T, dk, T, tb=True, root=dk)))
        a = b.emit(P.AttnSoftmax(val("A", T * T), s, P.RowDims(T, T, self.causal)))
        o = b.emit(P.AttnMatMul(val("O", T * dk), a, v, P.MatDims(T, T, dk)))
        z = layer_var("z", l, T * d, "z", "z")
        return b.emit(P.AttnMatMul(z, o, W["o"], P.MatDims(T, dk, d, tb=True)))

    def initial_values(self, l: int, rng: np.random.Generator,
                       following: str = "identity") -> dict[str, np.ndarray]:
        """Each weight Glorot-uniform, ``U(±sqrt(6/(d_model + d_k)))``."""
        a = math.sqrt(6.0 / (self.d_model + self.d_k))
        return {spec.name: rng.uniform(-a, a, spec.shape) for spec in self.parameters(l)}

    def table_row(self, l) -> tuple[str, str, str, str]:
        """(number, kind, TeX shape, parameter count): a row of a document's table."""
        kind = "self-attention" + (" (causal)" if self.causal else "")
        shape = (r"W_{q,k,v}^{(%d)} \in \mathbb{R}^{%d \times %d},\ W_{o}^{(%d)} \in "
                 r"\mathbb{R}^{%d \times %d}" % (l, self.d_k, self.d_model, l, self.d_model,
                                                  self.d_k))
        return str(l), kind, shape, str(4 * self.d_k * self.d_model)

    def to_data(self) -> dict:
        d: dict = {"self_attention": [self.d_model, self.d_k]}
        if self.causal:
            d["causal"] = True
        if self.length is not None:
            d["length"] = self.length
        return d

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """∞: dot-product self-attention is not globally Lipschitz (Kim, Papamakarios and
        Mnih, 2021), so no finite bound is claimed."""
        return [Factor(repr(self), math.inf, "dot-product attention is not globally "
                       "Lipschitz (Kim et al., 2021)", r"\infty")]


layers.register_layer(SelfAttention)


def attention_from_data(item: dict, high: int = 1 << 20):
    """``(SelfAttention, None)`` from a ``{"self_attention": [d_model, d_k], "causal": …,
    "length": …}`` table, or ``(None, problem)``.

    >>> attention_from_data({"self_attention": [4, 2], "causal": True})[0]
    SelfAttention(4, 2, causal=True)
    >>> attention_from_data({"self_attention": [4]})[1]
    'self_attention: expected [d_model, d_k] of integers from 1 to 1048576, got [4]'
    """
    def ok(v, low):
        return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

    if "self_attention" not in item:
        return None, "causal belongs to a self_attention layer"
    extra = [k for k in item if k not in ("self_attention", "causal", "length")]
    if extra:
        return None, f"self_attention: unexpected keys {sorted(map(str, extra))}"
    v = item["self_attention"]
    if not isinstance(v, list) or len(v) != 2 or not all(ok(n, 1) for n in v):
        return None, (f"self_attention: expected [d_model, d_k] of integers from 1 to {high}, "
                      f"got {str(v)[:60]}")
    causal = item.get("causal", False)
    if not isinstance(causal, bool):
        return None, "self_attention causal: expected true or false"
    length = item.get("length")
    if length is not None and not ok(length, 1):
        return None, f"self_attention length: expected an integer from 1 to {high}, got {length!r}"
    return SelfAttention(v[0], v[1], causal=causal, length=length), None
