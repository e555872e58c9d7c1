r"""Layers: the nodes a network is declared from, and the layer protocol.

Every layer class states, for itself:

* its parameters — :meth:`parameters` gives one :class:`ParamSpec` (name, shape, role,
  TeX and text) per array, the role (``"weight"``, ``"bias"``) being what the rest of
  symnn asks for (weight decay, penalties, initialisation, gradient flow, Lipschitz
  bounds), never the name;
* its forward program — :meth:`forward` emits the layer's ops into a program builder;
* its initialisation — :meth:`initial_values`;
* its save/spec form — :meth:`to_data` (plain data, the ``layers`` entries of a spec);
* its Lipschitz contribution — :meth:`lipschitz`.

Examples
--------
>>> Dense(3, 4)
Dense(n_in=3, n_out=4, bias=True)
>>> [(p.name, p.shape, p.role) for p in Dense(3, 4).parameters(1)]
[('W1', (4, 3), 'weight'), ('b1', (4,), 'bias')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Callable, NamedTuple

import numpy as np

from symnn import ops as P
from symnn.declare._calls import refuse_bad_calls
from symnn.declare.activations import Activation, get_activation
from symnn.declare.limits import check_width
from symnn.errors import DeclarationError

__all__ = ["ParamSpec", "Factor", "Dense", "Act", "Softmax", "as_layer", "output_kind",
           "param_specs", "param_roles", "role_of_name", "initial_parameters", "ROLES",
           "register_layer", "DATA_READERS"]

#: The roles a parameter array can have.  ``"param"``: a custom model's parameter vector;
#: ``"scale"``: a normalisation's gain γ (initialised to 1; like a bias, not penalised by
#: default and not decayed by ``decay="weights"``).
ROLES = ("weight", "bias", "param", "scale")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter array: its name in the flat layout, shape, role and display names."""

    name: str
    shape: tuple[int, ...]
    role: str
    tex: str
    text: str
    layer: int = 0  #: the Dense layer's number l (0 for a custom model's vector)


class Factor(NamedTuple):
    """One factor of a Lipschitz bound: what it is, its value, a note, and its TeX (None:
    left out of the TeX product)."""

    name: str
    value: float
    note: str
    tex: str | None


def _sup(text: str) -> str:

    return P.superscript(text)


def _vec(name, size, tex, text, kind="sample"):

    return P.Var(name, kind, (size,), tex=tex, text=text)


def layer_var(prefix: str, l: int, size: int, tex_base: str, text_base: str):
    """The per-sample value ``<prefix><l>`` (``z2``, ``a2``) printed ``z⁽²⁾``."""
    return _vec(f"{prefix}{l}", size, f"{tex_base}^{{({l})}}", text_base + _sup(f"({l})"))


def act_var(l: int, k: int, size: int):
    """The output of the k-th activation after Dense layer l: ``a<l>``, then ``a<l>_<k>``
    for a second (third …) activation stacked on the first."""
    if k <= 1:
        return layer_var("a", l, size, "a", "a")
    return _vec(f"a{l}_{k}", size, f"a^{{({l}.{k})}}", "a" + _sup(f"({l}") + f".{k}"
                + _sup(")"))


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True)
class Dense:
    """Affine layer ``z = W a + b`` with ``W`` of shape ``(n_out, n_in)``, ``b`` of ``(n_out,)``.

    Its parameters are named ``W<l>`` (role ``"weight"``) and ``b<l>`` (role ``"bias"``)
    where ``l`` counts the dense layers of the network from 1.
    """

    n_in: int
    n_out: int
    bias: bool = True

    #: Activations after which the weights start He-uniform rather than Glorot-uniform.
    HE_FAMILY = frozenset({"relu", "leaky_relu", "elu", "gelu", "swish", "silu"})

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
        if not isinstance(self.bias, (bool, np.bool_)):  # walk: Dense(2, 3, 4) was bias=4
            raise DeclarationError(f"Dense({self.n_in}, {self.n_out}, bias={self.bias!r}): "
                                   "bias must be True or False (Dense(n_in, n_out, bias=True))")
        object.__setattr__(self, "bias", bool(self.bias))

    # -- parameters -----------------------------------------------------------------------
    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        """The weight ``W<l>`` and (with ``bias``) the bias ``b<l>``."""
        out = [ParamSpec(f"W{l}", (self.n_out, self.n_in), "weight", f"W^{{({l})}}",
                         "W" + _sup(f"({l})"), l)]
        if self.bias:
            out.append(ParamSpec(f"b{l}", (self.n_out,), "bias", f"b^{{({l})}}",
                                 "b" + _sup(f"({l})"), l))
        return tuple(out)

    @staticmethod
    def role_of(name: str) -> tuple[str, int] | None:
        """(role, l) of a parameter name this layer class gives (``"W2"`` → weight, 2), or
        None — for data that has only names (a training history)."""
        roles = {"W": "weight", "b": "bias"}
        if len(name) > 1 and name[0] in roles and name[1:].isdigit():
            return roles[name[0]], int(name[1:])
        return None

    # -- forward program ------------------------------------------------------------------
    def forward(self, b, l: int, a_prev, k: int = 0):
        """z⁽ˡ⁾ = W⁽ˡ⁾ a⁽ˡ⁻¹⁾ + b⁽ˡ⁾."""

        vars_ = {}
        for spec in self.parameters(l):
            v = P.Var(spec.name, "param", spec.shape, spec.tex, spec.text)
            b.prog.inputs[v.name] = v
            vars_[spec.role] = v
        z = layer_var("z", l, self.n_out, "z", "z")
        return b.emit(P.Affine(z, vars_["weight"], a_prev, vars_.get("bias")))

    # -- initialisation -------------------------------------------------------------------
    def initial_values(self, l: int, rng: np.random.Generator,
                       following: str = "identity") -> dict[str, np.ndarray]:
        """Initial arrays: the weight Glorot-uniform, ``U(±sqrt(6 / (fan_in + fan_out)))``,
        or He-uniform, ``U(±sqrt(6 / fan_in))``, when the activation ``following`` it is of
        the ReLU family (:data:`HE_FAMILY`); the bias 0."""
        out = {}
        for spec in self.parameters(l):
            if spec.role == "weight":
                fan_out, fan_in = spec.shape
                a = math.sqrt(6.0 / (fan_in if following in self.HE_FAMILY
                                     else fan_in + fan_out))
                out[spec.name] = rng.uniform(-a, a, fan_out * fan_in).reshape(spec.shape)
            else:
                out[spec.name] = np.zeros(spec.shape)
        return out

    # -- save / spec form -----------------------------------------------------------------
    def to_data(self) -> dict:
        """The layer as plain data (a spec's ``layers`` entry)."""
        return {"dense": [self.n_in, self.n_out], "bias": self.bias}

    # -- Lipschitz ------------------------------------------------------------------------
    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """The spectral norm of the weight (an affine map's Lipschitz constant)."""
        out = []
        for spec in self.parameters(l):
            if spec.role == "weight":
                s = float(np.linalg.norm(np.asarray(arrays[spec.name], float), 2))
                out.append(Factor(spec.name, s, "spectral norm",
                                  r"\lVert %s \rVert_2" % spec.tex))
        return out


@dataclass(frozen=True)
class Act:
    """An elementwise activation layer ``a = f(z)``."""

    activation: Activation

    @property
    def name(self) -> str:
        return self.activation.name

    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        return ()

    def forward(self, b, l: int, z, k: int = 1):
        """a⁽ˡ⁾ = f(z⁽ˡ⁾), elementwise (``z`` is the previous activation's output when
        activations are stacked, ``k`` counting them)."""
        act = self.activation
        if act.identity:
            return z
        a = act_var(l, k, z.size)
        return b.map_elementwise(a, act.apply(P.sym(z)), [z], role="act", label=(act,))

    def initial_values(self, l, rng, following="identity") -> dict:
        return {}

    def to_data(self) -> dict:
        """``{"activation": name}`` (a custom ``Lambda`` needs its expression stored by the
        caller: text in a spec file, a tree in a model file)."""
        return {"activation": self.activation.name}

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """sup|f'| (``bound(activation)``, derived from the activation's derivative)."""
        b = bound(self.activation)
        return [Factor(self.activation.name, float(b),
                       f"sup|{self.activation.symbol_text}'| = {b}", str(b))]


@dataclass(frozen=True)
class Softmax:
    """The softmax layer ``p = exp(z) / Σ exp(z)`` (per sample)."""

    name: str = "softmax"

    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        return ()

    def forward(self, b, l: int, z, k: int = 1):
        """a⁽ˡ⁾ = softmax(z⁽ˡ⁾)."""

        return b.emit(P.Softmax(act_var(l, k, z.size), z))

    def initial_values(self, l, rng, following="identity") -> dict:
        return {}

    def to_data(self) -> dict:
        return {"activation": "softmax"}

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """1/2: the Jacobian diag(p) − ppᵀ has, by Gershgorin, every eigenvalue ≤ 1/2."""
        return [Factor("softmax", 0.5, "‖diag(p) − ppᵀ‖₂ ≤ 1/2", None)]


#: The layer classes (for :func:`as_layer` and :func:`role_of_name`); blocks and other
#: layer modules add theirs with :func:`register_layer` (:mod:`symnn.declare.blocks`:
#: ``Residual``; :mod:`symnn.declare.conv`: ``Conv1D``, ``AvgPool1D``, ``MaxPool1D``,
#: ``Flatten``).
LAYER_TYPES: tuple[type, ...] = (Dense, Act, Softmax)


#: Readers of the plain-data layer kinds other modules define (spec and model files):
#: ``(kinds, reader)`` pairs, ``reader(item, high) -> (layer, None) or (None, problem)``;
#: :mod:`symnn.declare.conv` (``conv1d``, pools, ``flatten``), :mod:`symnn.declare.norm`
#: (``layer_norm``) add theirs.
DATA_READERS: list[tuple[tuple[str, ...], Callable]] = []


def register_layer(cls: type) -> type:
    """Add a layer class defined in another module to :data:`LAYER_TYPES`."""
    global LAYER_TYPES
    if cls not in LAYER_TYPES:
        LAYER_TYPES = LAYER_TYPES + (cls,)
    return cls


def as_layer(item, where: str = ""):
    """Turn a layer given as a name, ``sympy.Lambda`` or layer object into a layer object."""
    if isinstance(item, LAYER_TYPES):
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


# ------------------------------------------------------------------------------------------
# asking a declaration for its parameters
# ------------------------------------------------------------------------------------------


def layer_numbers(net) -> list[tuple[Any, int]]:
    """(layer, l) for every layer of a network: ``l`` is the number of the Dense layer it
    belongs to (the Dense layer itself, or the last one before an activation)."""
    out, l = [], 0
    for i, layer in enumerate(net.layers):
        l = net.dense_index.get(i, l)
        out.append((layer, l))
    return out


def param_specs(declared) -> list[ParamSpec]:
    """The :class:`ParamSpec` of every parameter array of a Network (asked of its layers)
    or custom Model (one vector ``theta``, role ``"param"``), in the flat layout order."""
    if hasattr(declared, "layers"):
        return [p for layer, l in layer_numbers(declared) for p in layer.parameters(l)]
    return [ParamSpec(name, tuple(shape), "param", r"\theta", "θ")
            for name, shape in declared.param_shapes]


def param_roles(declared) -> dict[str, str]:
    """``{name: role}`` of every parameter array (``{"W1": "weight", "b1": "bias", …}``)."""
    return {p.name: p.role for p in param_specs(declared)}


def role_of_name(name: str) -> tuple[str, int] | None:
    """(role, layer number) for a parameter name, asked of the layer classes; for data that
    holds only names (a training history's gradient norms).  None when no layer gives it."""
    for cls in LAYER_TYPES:
        found = getattr(cls, "role_of", None)
        if found is not None and (r := found(name)) is not None:
            return r
    return None


def initial_parameters(net, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every layer's initial arrays (see :meth:`Dense.initial_values`), drawn in the flat
    layout order; each Dense layer is told the activation that follows it."""
    out: dict[str, np.ndarray] = {}
    layers = list(net.layers)
    for i, (layer, l) in enumerate(layer_numbers(net)):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        following = nxt.name if isinstance(nxt, (Act, Softmax)) else "identity"
        out.update(layer.initial_values(l, rng, following))
    return out
