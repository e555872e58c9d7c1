r"""Layer normalisation: :class:`LayerNorm`.

``y = γ ⊙ (x − μ)/sqrt(σ² + ε) + β`` over the last ``n`` components of each sample's
value, as ``torch.nn.functional.layer_norm(x, (n,), γ, β, ε)``: on a flat vector of ``n``
(between Dense layers: ``Dense → LayerNorm → tanh``) or on each row (time step) of a
sequence value ``(T, n)`` (held flat in row-major ``(t, i)`` order, see
:mod:`symnn.declare.conv`).  ``μ`` and ``σ²`` (the biased variance) are taken per row.

The layer is numbered like a Dense layer (``l`` counts the layers with parameters): its
scale ``gamma<l>`` has role ``"scale"`` (initialised to 1, not penalised and not decayed
by ``decay="weights"``, like a bias), its shift ``beta<l>`` role ``"bias"`` (initialised to
0); its output is ``z⁽ˡ⁾``, so an activation after it gives ``a⁽ˡ⁾``.  A network that
starts with a LayerNorm on sequences says the length: ``LayerNorm(n, length=T)`` (inputs
``X`` of shape ``(B, T, n)`` or ``(B, T·n)``); without ``length`` a first LayerNorm reads
flat vectors of ``n``.

Examples
--------
>>> import symnn
>>> net = symnn.Network([symnn.Dense(3, 4), symnn.LayerNorm(4), "tanh",
...                      symnn.Dense(4, 1)], loss="mse")
>>> from symnn.declare.layers import param_specs
>>> [(p.name, p.role) for p in param_specs(net)]  # doctest: +NORMALIZE_WHITESPACE
[('W1', 'weight'), ('b1', 'bias'), ('gamma2', 'scale'), ('beta2', 'bias'),
 ('W3', 'weight'), ('b3', 'bias')]
>>> seq = symnn.Network([symnn.LayerNorm(2, length=3), symnn.Flatten(),
...                      symnn.Dense(6, 1)], loss="mse")
>>> seq.input_shape, seq.n_inputs
((3, 2), 6)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from typing import Callable

import numpy as np

from symnn import ops as P
from symnn.declare import layers
from symnn.declare._calls import refuse_bad_calls
from symnn.declare.layers import Factor, ParamSpec, _sup, layer_var
from symnn.declare.limits import check_width
from symnn.errors import DeclarationError

__all__ = ["LayerNorm", "layer_from_data", "DATA_KINDS"]


def _int(owner: str, name: str, v) -> int:
    if isinstance(v, Integral) and not isinstance(v, bool):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise DeclarationError(f"{owner}: {name} must be an integer ≥ 1, got {v!r}")
    return v


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True)
class LayerNorm:
    """``y = γ ⊙ (x − μ)/sqrt(σ² + ε) + β`` over each row of ``n`` components.

    ``n``: the normalised width (the last axis); ``eps``: ε > 0 (finite); ``length``: the
    number of rows T when the layer starts a network on sequences ``(T, n)``.
    """

    n: int
    eps: float = 1e-5
    length: int | None = None
    shape: tuple | None = field(default=None, repr=False, compare=False)

    #: numbered in the network's count of layers with parameters (as Dense, Conv1D)
    own_number = True

    def __post_init__(self) -> None:
        own = f"LayerNorm({self.n!r}, eps={self.eps!r})"
        object.__setattr__(self, "n", _int(own, "n", self.n))
        check_width(self.n, own)
        e = self.eps
        if isinstance(e, bool) or not isinstance(e, Real) or not math.isfinite(float(e)) \
                or float(e) <= 0:
            raise DeclarationError(
                f"{own}: eps must be a finite number > 0 (it keeps 1/sqrt(σ² + ε) finite on a "
                f"constant row), got {e!r}")
        object.__setattr__(self, "eps", float(e))
        if self.length is not None:
            object.__setattr__(self, "length", _int(own, "length", self.length))

    def __repr__(self) -> str:
        extra = "" if self.eps == 1e-5 else f", eps={self.eps!r}"
        if self.length is not None:
            extra += f", length={self.length}"
        return f"LayerNorm({self.n}{extra})"

    @property
    def name(self) -> str:
        return repr(self)

    # -- shapes (see symnn.declare.conv.chain_shapes) --------------------------------------
    @property
    def in_shape(self) -> tuple:
        if self.shape is not None:
            return self.shape
        return (self.length, self.n) if self.length is not None else (self.n,)

    @property
    def rows(self) -> int:
        return int(np.prod(self.in_shape[:-1], dtype=np.int64)) if len(self.in_shape) > 1 else 1

    def out_shape(self, in_shape, where: str):
        """The shape it reads (``(n,)`` or ``(T, n)``), unchanged."""
        in_shape = tuple(in_shape)
        if len(in_shape) not in (1, 2) or in_shape[-1] != self.n:
            raise DeclarationError(
                f"{where} ({self!r}) normalises rows of {self.n} but the layer before it gives "
                f"a value of shape {in_shape}; make n = {in_shape[-1]}")
        if self.length is not None and (len(in_shape) != 2 or in_shape[0] != self.length):
            raise DeclarationError(
                f"{where} ({self!r}) is declared for sequences of length {self.length} but "
                f"the layer before it gives shape {in_shape}; drop length= or make it match")
        return in_shape

    def bound(self, in_shape) -> "LayerNorm":
        return replace(self, shape=tuple(in_shape))

    # -- protocol --------------------------------------------------------------------------
    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        """``gamma<l>`` (n,), role ``"scale"``, and ``beta<l>`` (n,), role ``"bias"``."""
        return (ParamSpec(f"gamma{l}", (self.n,), "scale", r"\gamma^{(%d)}" % l,
                          "γ" + _sup(f"({l})"), l),
                ParamSpec(f"beta{l}", (self.n,), "bias", r"\beta^{(%d)}" % l,
                          "β" + _sup(f"({l})"), l))

    @staticmethod
    def role_of(name: str) -> tuple[str, int] | None:
        """(role, l) of ``gamma<l>`` / ``beta<l>``, else None."""
        for prefix, role in (("gamma", "scale"), ("beta", "bias")):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                return role, int(name[len(prefix):])
        return None

    def forward(self, b, l: int, x, k: int = 0):
        """x̂⁽ˡ⁾ = (x − μ)/σ̂ per row;  z⁽ˡ⁾ = γ⁽ˡ⁾ ⊙ x̂⁽ˡ⁾ + β⁽ˡ⁾."""
        vars_ = {}
        for spec in self.parameters(l):
            v = P.Var(spec.name, "param", spec.shape, spec.tex, spec.text)
            b.prog.inputs[v.name] = v
            vars_[spec.role] = v
        rows, size = self.rows, self.rows * self.n
        if x.size != size:
            raise DeclarationError(f"{self!r}: reads {x.size} values, expected {size}")
        xhat = P.Var(f"xhat{l}", "sample", (size,), r"\hat{x}^{(%d)}" % l, "x̂" + _sup(f"({l})"))
        b.emit(P.NormStandardize(xhat, x, rows, self.n, self.eps))
        z = layer_var("z", l, size, "z", "z")
        return b.emit(P.NormScaleShift(z, xhat, vars_["scale"], vars_["bias"], rows, self.n))

    def initial_values(self, l: int, rng: np.random.Generator,
                       following: str = "identity") -> dict[str, np.ndarray]:
        """γ = 1, β = 0 (the layer starts as the plain standardisation)."""
        return {f"gamma{l}": np.ones(self.n), f"beta{l}": np.zeros(self.n)}

    def table_row(self, l) -> tuple[str, str, str, str]:
        """(number, kind, TeX shape, parameter count): a row of a document's table."""
        shape = r"\gamma^{(%d)}, \beta^{(%d)} \in \mathbb{R}^{%d}" % (l, l, self.n)
        return str(l), f"layer norm (ε = {self.eps:g}, {self.rows} row(s))", shape, str(2 * self.n)

    def to_data(self) -> dict:
        d: dict = {"layer_norm": self.n, "eps": self.eps}
        if self.length is not None:
            d["length"] = self.length
        return d

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """``‖γ‖∞/√ε``: the Jacobian of ``x ↦ x̂`` is ``(1/σ̂)(I − 11ᵀ/n − x̂x̂ᵀ/n)``, a
        matrix of norm ≤ 1 over σ̂ ≥ √ε; rows are independent.  Honest but loose: the
        layer is not globally Lipschitz with a better constant, since σ² may be near 0."""
        g = float(np.max(np.abs(np.asarray(arrays[f"gamma{l}"], float))))
        s = g / math.sqrt(self.eps)
        return [Factor(f"gamma{l}", s, f"‖γ{l}‖∞/√ε (layer norm, ε = {self.eps:g})",
                       r"\lVert \gamma^{(%d)} \rVert_\infty / \sqrt{\varepsilon}" % l)]


layers.register_layer(LayerNorm)


# ------------------------------------------------------------------------------------------
# plain data (spec files, model files): parsed, never evaluated
# ------------------------------------------------------------------------------------------

#: The key of a layer table that names a LayerNorm, and its options.
DATA_KINDS = ("layer_norm",)
DATA_OPTIONS = ("eps", "length")


def layer_from_data(item: dict, high: int = 1 << 20):
    """``(LayerNorm, None)`` from ``{"layer_norm": n, "eps": ε, "length": T}``, or ``(None,
    problem)``.

    >>> layer_from_data({"layer_norm": 4, "eps": 1e-6})[0]
    LayerNorm(4, eps=1e-06)
    >>> layer_from_data({"layer_norm": 4, "eps": -1.0})[1]
    'layer_norm eps: expected a finite number > 0, got -1.0'
    """
    extra = [k for k in item if k not in DATA_KINDS + DATA_OPTIONS]
    if extra:
        return None, f"layer_norm: unexpected keys {sorted(map(str, extra))}"
    n = item.get("layer_norm")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= high:
        return None, f"layer_norm: expected an integer from 1 to {high}, got {str(n)[:40]}"
    eps = item.get("eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) \
            or eps <= 0:
        return None, f"layer_norm eps: expected a finite number > 0, got {str(eps)[:40]}"
    length = item.get("length")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or not 1 <= length <= high):
        return None, f"layer_norm length: expected an integer from 1 to {high}, got {length!r}"
    return LayerNorm(n, float(eps), length), None


layers.DATA_READERS.append((DATA_KINDS, layer_from_data))  # spec and model files
