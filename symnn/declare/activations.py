"""Elementwise activation functions as SymPy functions.

Each activation is a :class:`sympy.Function` subclass whose derivative rule sits beside
its definition (``fdiff``), so SymPy differentiates it to any order.  Every class also
states its elementary ``definition`` (what the function *is*); the tests check that each
``fdiff`` rule equals the derivative of that definition, symbolically and numerically.

Subgradient convention at kinks: ReLU and leaky ReLU use the derivative of the left piece
at ``z = 0`` (``relu'(0) = 0``, ``leaky_relu'(0) = alpha``); MAE/Huber use ``sign(0) = 0``.

Examples
--------
>>> import sympy as sp
>>> from symnn.declare.activations import sigmoid
>>> z = sp.Symbol("z")
>>> sp.diff(sigmoid(z), z)
(1 - σ(z))*σ(z)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

from symnn.errors import DeclarationError, UnknownNameError

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


class ActivationFunction(sp.Function):
    """Base of symnn's activation functions: each subclass gives its elementary
    ``definition`` and its ``fdiff`` rule; what they share lives here.

    * an activation of real arguments is real (so SymPy writes no re()/im() around it);
    * its numerical value at numbers comes from the ``definition`` (so
      ``float(softplus(1))`` works, as it does for SymPy's own functions); symbolic
      arguments stay unevaluated.
    """

    @staticmethod
    def definition(*args: sp.Expr) -> sp.Expr:  # pragma: no cover - every subclass has one
        raise NotImplementedError

    def _eval_is_real(self):
        return True if all(a.is_extended_real for a in self.args) else None

    def _eval_evalf(self, prec):
        if not all(a.is_number for a in self.args):
            return None
        return self.definition(*self.args)._evalf(prec)


class sigmoid(ActivationFunction):
    r"""Logistic sigmoid, :math:`\sigma(z) = 1 / (1 + e^{-z})`.

    Rule: :math:`\sigma'(z) = \sigma(z)\,(1 - \sigma(z))`.
    """

    nargs = 1

    @staticmethod
    def definition(z: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-z))

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        s = sigmoid(self.args[0])
        return s * (1 - s)

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Half
        return None

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))

    def _latex(self, printer, exp=None):
        s = r"\sigma\left(%s\right)" % printer._print(self.args[0])
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        return "σ(%s)" % printer._print(self.args[0])


class relu(ActivationFunction):
    r"""Rectified linear unit, :math:`\max(0, z)`.

    Rule: :math:`\mathrm{relu}'(z) = H(z)` with :math:`H(0) = 0` (subgradient convention).
    """

    nargs = 1

    @staticmethod
    def definition(z: sp.Expr) -> sp.Expr:
        return sp.Max(0, z)

    def _eval_is_nonnegative(self):
        return True if self.args[0].is_real else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Heaviside(self.args[0], 0)

    @classmethod
    def eval(cls, z):
        if z.is_number and z.is_extended_real:
            return sp.Max(0, z)
        if z.is_nonnegative:
            return z
        if z.is_nonpositive:
            return sp.S.Zero
        return None

    def _latex(self, printer, exp=None):
        s = r"\operatorname{ReLU}\left(%s\right)" % printer._print(self.args[0])
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        return "ReLU(%s)" % printer._print(self.args[0])


class leaky_relu(ActivationFunction):
    r"""Leaky ReLU, :math:`z` for :math:`z > 0`, :math:`\alpha z` otherwise.

    Arguments ``(z, alpha)``.  Rule: 1 for :math:`z > 0`, :math:`\alpha` otherwise.
    """

    nargs = 2

    @staticmethod
    def definition(z: sp.Expr, alpha: sp.Expr) -> sp.Expr:
        return sp.Piecewise((z, z > 0), (alpha * z, True))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z, alpha = self.args
        if argindex == 1:
            return sp.Piecewise((1, z > 0), (alpha, True))
        return sp.Piecewise((0, z > 0), (z, True))

    def _latex(self, printer, exp=None):
        z, alpha = self.args
        s = r"\operatorname{LeakyReLU}_{%s}\left(%s\right)" % (
            printer._print(alpha),
            printer._print(z),
        )
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        z, alpha = self.args
        return "LeakyReLU_%s(%s)" % (printer._print(alpha), printer._print(z))


class elu(ActivationFunction):
    r"""Exponential linear unit: :math:`z` for :math:`z > 0`, :math:`\alpha(e^z - 1)` otherwise.

    Arguments ``(z, alpha)``.  Rule: 1 for :math:`z > 0`, :math:`\alpha e^z` otherwise.
    """

    nargs = 2

    @staticmethod
    def definition(z: sp.Expr, alpha: sp.Expr) -> sp.Expr:
        return sp.Piecewise((z, z > 0), (alpha * (sp.exp(z) - 1), True))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z, alpha = self.args
        if argindex == 1:
            return sp.Piecewise((1, z > 0), (alpha * sp.exp(z), True))
        return sp.Piecewise((0, z > 0), (sp.exp(z) - 1, True))

    def _latex(self, printer, exp=None):
        z, alpha = self.args
        s = r"\operatorname{ELU}_{%s}\left(%s\right)" % (printer._print(alpha), printer._print(z))
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        z, alpha = self.args
        return "ELU_%s(%s)" % (printer._print(alpha), printer._print(z))


class softplus(ActivationFunction):
    r"""Softplus, :math:`\log(1 + e^z)`.  Rule: :math:`\mathrm{softplus}'(z) = \sigma(z)`."""

    nargs = 1

    @staticmethod
    def definition(z: sp.Expr) -> sp.Expr:
        return sp.log(1 + sp.exp(z))

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.log(2)
        return None

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return sp.log(1 + sp.exp(z))

    def _latex(self, printer, exp=None):
        s = r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        return "softplus(%s)" % printer._print(self.args[0])


class gelu(ActivationFunction):
    r"""GELU in its exact erf form, :math:`z\,\Phi(z) = \tfrac{z}{2}(1 + \mathrm{erf}(z/\sqrt2))`.

    Rule: :math:`\Phi(z) + z\,\varphi(z)` with :math:`\varphi(z) = e^{-z^2/2}/\sqrt{2\pi}`.
    """

    nargs = 1

    @staticmethod
    def definition(z: sp.Expr) -> sp.Expr:
        return z * (1 + sp.erf(z / sp.sqrt(2))) / 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z = self.args[0]
        return (1 + sp.erf(z / sp.sqrt(2))) / 2 + z * sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Zero
        return None

    def _latex(self, printer, exp=None):
        s = r"\operatorname{GELU}\left(%s\right)" % printer._print(self.args[0])
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        return "GELU(%s)" % printer._print(self.args[0])


class swish(ActivationFunction):
    r"""Swish / SiLU, :math:`z\,\sigma(z)`.

    Rule: :math:`\sigma(z)\,(1 + z\,(1 - \sigma(z)))`.
    """

    nargs = 1

    @staticmethod
    def definition(z: sp.Expr) -> sp.Expr:
        return z / (1 + sp.exp(-z))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z = self.args[0]
        s = sigmoid(z)
        return s * (1 + z * (1 - s))

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Zero
        return None

    def _latex(self, printer, exp=None):
        s = r"\operatorname{swish}\left(%s\right)" % printer._print(self.args[0])
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        return "swish(%s)" % printer._print(self.args[0])


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


#: Registry of named activations.  ``leaky_relu`` uses alpha = 0.01, ``elu`` alpha = 1.
ACTIVATIONS: dict[str, Activation] = {
    "identity": _make("identity", lambda z: z, r"\operatorname{id}", "id", identity=True),
    "sigmoid": _make("sigmoid", sigmoid, r"\sigma", "σ"),
    "tanh": _make("tanh", sp.tanh, r"\tanh", "tanh"),
    "relu": _make("relu", relu, r"\operatorname{ReLU}", "ReLU"),
    "leaky_relu": _make(
        "leaky_relu",
        lambda z: leaky_relu(z, sp.Rational(1, 100)),
        r"\operatorname{LeakyReLU}",
        "LeakyReLU",
    ),
    "elu": _make("elu", lambda z: elu(z, sp.S.One), r"\operatorname{ELU}", "ELU"),
    "softplus": _make("softplus", softplus, r"\operatorname{softplus}", "softplus"),
    "gelu": _make("gelu", gelu, r"\operatorname{GELU}", "GELU"),
    "swish": _make("swish", swish, r"\operatorname{swish}", "swish"),
}
ACTIVATIONS["silu"] = ACTIVATIONS["swish"]
ACTIVATIONS["linear"] = ACTIVATIONS["identity"]


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
