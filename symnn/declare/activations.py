"""Elementwise activations: the :class:`Activation` layer form and the registry of names.

The activation functions themselves are SymPy functions defined in :mod:`symnn.functions`
(re-exported here): each is a :class:`sympy.Function` subclass whose derivative rule sits
beside its definition (``fdiff``), so SymPy differentiates it to any order.  Every class also
states its elementary ``definition`` (what the function *is*); the tests check that each
``fdiff`` rule equals the derivative of that definition, symbolically and numerically.
Defining a new :class:`~symnn.functions.ActivationFunction` subclass (anywhere) adds it to
:data:`ACTIVATIONS` under its class name.

Subgradient convention at kinks: ReLU and leaky ReLU use the derivative of the left piece
at ``z = 0`` (``relu'(0) = 0``, ``leaky_relu'(0) = alpha``); MAE/Huber use ``sign(0) = 0``.

Examples
--------
>>> import sympy as sp
>>> from symnn.declare.activations import sigmoid
>>> z = sp.Symbol("z")
>>> sp.diff(sigmoid(z), z)
σ(-z)*σ(z)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

from symnn.errors import DeclarationError, UnknownNameError
from symnn.functions import (
    REGISTRY,
    ActivationFunction,
    activation_classes,
    elu,
    gelu,
    leaky_relu,
    relu,
    sigmoid,
    softplus,
    subscribe,
    swish,
)

__all__ = [
    "ActivationFunction",
    "sigmoid",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "gelu",
    "swish",
    "Activation",
    "ACTIVATIONS",
    "get_activation",
]


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: a name and the SymPy function it applies.

    Parameters
    ----------
    name : str
        The registry name (``"tanh"``) or a user label for a custom ``Lambda``.
    apply : callable
        Maps a SymPy scalar ``z`` to the SymPy expression ``f(z)``.
    symbol_tex, symbol_text : str
        How the function's name prints (``\\sigma`` / ``σ``) in derivative labels.

    Examples
    --------
    >>> import sympy as sp
    >>> act = get_activation("tanh")
    >>> z = sp.Symbol("z")
    >>> act.apply(z)
    tanh(z)
    """

    name: str
    apply: Callable[[sp.Expr], sp.Expr] = field(compare=False)
    symbol_tex: str = r"\sigma"
    symbol_text: str = "σ"
    identity: bool = False
    key: tuple = ()

    @staticmethod
    def from_lambda(fn: sp.Lambda, name: str = "f") -> "Activation":
        """Wrap a user SymPy ``Lambda`` of one scalar variable as an activation.

        Raises
        ------
        DeclarationError
            If ``fn`` is not a ``Lambda`` of exactly one variable with a scalar body.
        """
        if not isinstance(fn, sp.Lambda):
            raise DeclarationError(
                f"custom activation {name!r}: expected a sympy.Lambda of one variable, got "
                f"{type(fn).__name__}; write e.g. sympy.Lambda(t, t**3)"
            )
        if len(fn.variables) != 1:
            raise DeclarationError(
                f"custom activation {name!r}: a Lambda of {len(fn.variables)} variables was "
                "given; an elementwise activation takes exactly one"
            )
        if not isinstance(fn.expr, sp.Expr) or isinstance(fn.expr, sp.MatrixBase):
            raise DeclarationError(
                f"custom activation {name!r}: the Lambda's body must be a scalar expression, "
                f"got {type(fn.expr).__name__}"
            )
        (var,) = fn.variables
        extra = fn.expr.free_symbols - {var}
        if extra:
            raise DeclarationError(
                f"custom activation {name!r}: the body uses free symbols "
                f"{sorted(map(str, extra))} besides its variable {var}; substitute numbers "
                "for them (an activation has no trainable parameters)"
            )
        return Activation(
            name=name,
            apply=lambda z: fn(z),
            symbol_tex="f" if name == "f" else r"\operatorname{%s}" % name.replace("_", r"\_"),
            symbol_text=name,
            key=("lambda", sp.srepr(fn)),
        )


def _make(name, apply, tex, text, identity=False):
    return Activation(name, apply, tex, text, identity=identity, key=(name,))


def _of_class(cls) -> Activation:
    """The named activation of a registered activation class (its ``defaults`` fill the
    arguments after ``z``)."""
    info = REGISTRY[cls.__name__]
    extra = tuple(cls.defaults)
    return _make(cls.__name__, (lambda z: cls(z, *extra)) if extra else cls, info.tex, info.text)


#: Registry of named activations: the identity, tanh and every registered
#: :class:`~symnn.functions.ActivationFunction` class (kept current when one is defined).
#: ``leaky_relu`` uses alpha = 0.01, ``elu`` alpha = 1.
ACTIVATIONS: dict[str, Activation] = {
    "identity": _make("identity", lambda z: z, r"\operatorname{id}", "id", identity=True),
    "tanh": _make("tanh", sp.tanh, r"\tanh", "tanh"),
}
_FIXED = ("identity", "tanh")
_ALIASES = {"silu": "swish", "linear": "identity"}


#: The class each registry activation was made from (to notice removed or replaced ones).
_CLASS_OF: dict[str, type] = {}


def _sync() -> None:
    classes = activation_classes()
    for name, cls in list(_CLASS_OF.items()):
        if classes.get(name) is not cls:
            del _CLASS_OF[name]
            ACTIVATIONS.pop(name, None)
    for name, cls in classes.items():
        if name in _FIXED or name in _ALIASES or name == "softmax":
            continue  # names symnn gives its own meaning
        if name not in _CLASS_OF:
            ACTIVATIONS[name] = _of_class(cls)
            _CLASS_OF[name] = cls
    for alias, target in _ALIASES.items():
        if target in ACTIVATIONS:
            ACTIVATIONS[alias] = ACTIVATIONS[target]
        else:
            ACTIVATIONS.pop(alias, None)


subscribe(_sync)


def get_activation(spec: "str | Activation | sp.Lambda", where: str = "") -> Activation:
    """Resolve an activation given by name, ``Activation`` or SymPy ``Lambda``.

    Raises
    ------
    UnknownNameError
        For a name symnn does not know; the message lists the known names.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, sp.Lambda):
        return Activation.from_lambda(spec)
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in ACTIVATIONS:
            return ACTIVATIONS[key]
        known = ", ".join(sorted(ACTIVATIONS))
        at = f" ({where})" if where else ""
        raise UnknownNameError(
            f"unknown activation {spec!r}{at}; known activations: {known}, 'softmax', "
            "or pass a sympy.Lambda of one variable"
        )
    if callable(spec) and str(getattr(spec, "__module__", "")).startswith("sympy."):
        return _from_sympy_function(spec, where)  # sp.tanh, sp.sin, sp.exp, sp.sqrt …
    raise DeclarationError(
        f"activation{(' (' + where + ')') if where else ''}: expected a name, an Activation or "
        f"a sympy.Lambda, got {type(spec).__name__}"
    )


def _from_sympy_function(fn, where: str = "") -> Activation:
    """``sp.tanh`` → the built-in tanh; any other SymPy function of one argument (``sp.sin``,
    ``sp.exp``, ``sp.sqrt``) → ``Activation.from_lambda(Lambda(t, fn(t)), name)``."""
    at = f" ({where})" if where else ""
    name = getattr(fn, "__name__", "f")
    if fn is sp.tanh:
        return ACTIVATIONS["tanh"]
    t = sp.Symbol("t", real=True)
    try:
        body = sp.sympify(fn(t))
    except (TypeError, ValueError, sp.SympifyError) as err:
        raise DeclarationError(
            f"activation{at}: {name} is not a SymPy function of one argument ({err}); pass "
            "e.g. sympy.tanh, sympy.sin or sympy.Lambda(t, t**3)"
        ) from err
    if not isinstance(body, sp.Expr) or t not in body.free_symbols or body == t:
        raise DeclarationError(
            f"activation{at}: {name}(t) gave {body!r}, not an expression in t; pass a SymPy "
            "function of one argument (sympy.sin) or a sympy.Lambda"
        )
    return Activation.from_lambda(sp.Lambda(t, body), name=name if name.isidentifier() else "f")
