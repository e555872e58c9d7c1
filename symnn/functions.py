r"""The one registry of the scalar functions symnn knows.

Two kinds of function appear in symnn's expressions:

* symnn's own SymPy functions, subclasses of :class:`SymnnFunction` — the activations
  (:class:`ActivationFunction`: sigmoid, relu, leaky_relu, elu, softplus, gelu, swish) and
  :class:`xlogy`.  Each class carries its names (TeX, display text, spec language), its
  kernel and NumPy forms (the print hooks ``_numbacode`` and ``_numpycode`` that SymPy's
  printers call through their ``printmethod``) and registers itself when it is defined
  (``__init_subclass__``);
* the SymPy builtins symnn accepts (``exp``, ``log``, ``tanh``, ``Abs``, ``Heaviside`` …),
  described by one :class:`FunctionInfo` each in :data:`BUILTINS`.

Every name table (:data:`KERNEL_CALLS`, :data:`NUMPY_IMPLS`, :data:`TEXT_NAMES`,
:data:`SPEC_FUNCTIONS`, :data:`FILE_NODES`) is derived from :data:`REGISTRY` and kept current
when a class is defined; modules with tables of their own :func:`subscribe` to changes.

So a new elementwise activation takes one class, in any module::

    class softsign(ActivationFunction):
        nargs = 1

        @staticmethod
        def definition(z):
            return z / (1 + sp.Abs(z))

and is then a named activation, a spec-language function, a model-file node, and prints in
equations, kernels and the NumPy reference.

Examples
--------
>>> import sympy as sp
>>> z = sp.Symbol("z")
>>> sp.diff(sigmoid(z), z)
σ(-z)*σ(z)
>>> REGISTRY["sigmoid"].spec, REGISTRY["Abs"].spec, KERNEL_CALLS["tanh"]
('sigmoid', 'abs', ('fm_tanh', 'math.tanh'))

At kinks ReLU and leaky ReLU take the left piece's derivative (``relu'(0) = 0``,
``leaky_relu'(0) = alpha``); ``Heaviside(z, h0)`` is ``h0`` at 0; ``DiracDelta`` is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from symnn import _numpy_forms
from symnn.errors import DeclarationError

__all__ = [
    "FunctionInfo", "SymnnFunction", "ActivationFunction",
    "sigmoid", "relu", "leaky_relu", "elu", "softplus", "gelu", "swish", "xlogy", "normcdf",
    "REGISTRY", "BUILTINS", "KERNEL_CALLS", "NUMPY_IMPLS", "TEXT_NAMES", "SPEC_FUNCTIONS",
    "FILE_NODES", "register", "unregister", "subscribe", "activation_classes",
]


@dataclass(frozen=True)
class FunctionInfo:
    r"""What symnn knows about one scalar function.

    Parameters
    ----------
    name : str
        The SymPy class name (``"Abs"``), the key in :data:`REGISTRY`; for the
        functions that are no SymPy class (``sqrt``, ``expm1``) the name the kernel printer
        or the spec language uses.
    cls : type or None
        The SymPy class (None for ``sqrt``, ``expm1``, ``log1p``).
    spec : str or None
        The name in the spec expression language (``"abs"``), None when spec files and
        saved expression text cannot call it.
    build : callable or None
        Builds the SymPy expression from the spec call's arguments (default ``cls``).
    min_args, max_args : int
        Accepted argument counts in the spec language (``max_args=None``: any number).
    doc : str
        One line for the spec-format documentation.
    kernel : (str, str) or None
        The kernel call: the :mod:`symnn.codegen.fastmath` name and the plain
        Numba-compilable name (``("fm_tanh", "math.tanh")``); None when the kernel printer
        has its own rule (a ``_print_<name>`` method or the class's ``_numbacode``).
    numpy : callable or None
        A NumPy implementation for the reference evaluator (None: SymPy's NumPy printer
        knows the function, or the class prints its ``definition``).
    tex, text : str or None
        The function's name in TeX (``\operatorname{ReLU}``) and in display text (``ReLU``).
    saved : bool
        Whether a model file may contain the function as an expression node.
    """

    name: str
    cls: Any = None
    spec: str | None = None
    build: Callable[..., sp.Expr] | None = None
    min_args: int = 1
    max_args: int | None = 1
    doc: str = ""
    kernel: tuple[str, str] | None = None
    numpy: Callable[..., Any] | None = None
    tex: str | None = None
    text: str | None = None
    saved: bool = True

    @property
    def builder(self) -> Callable[..., sp.Expr]:
        """What builds the expression from spec-call arguments."""
        return self.build if self.build is not None else self.cls


#: Every function symnn knows, by name (builtins first, then symnn's classes as defined).
REGISTRY: dict[str, FunctionInfo] = {}
#: Derived tables, kept current in place (other modules hold these very dicts).
KERNEL_CALLS: dict[str, tuple[str, str]] = {}
NUMPY_IMPLS: dict[str, Callable[..., Any]] = {}
TEXT_NAMES: dict[str, str] = {}
SPEC_FUNCTIONS: dict[str, FunctionInfo] = {}
FILE_NODES: dict[str, type] = {}
_LISTENERS: list[Callable[[], None]] = []


def _rebuild() -> None:
    KERNEL_CALLS.clear()
    NUMPY_IMPLS.clear()
    TEXT_NAMES.clear()
    SPEC_FUNCTIONS.clear()
    FILE_NODES.clear()
    for info in REGISTRY.values():
        if info.kernel is not None:
            KERNEL_CALLS[info.name] = info.kernel
        if info.numpy is not None:
            NUMPY_IMPLS[info.name] = info.numpy
        if info.spec is not None:
            SPEC_FUNCTIONS[info.spec] = info
            if info.cls is not None:
                TEXT_NAMES[info.name] = info.spec
        if info.saved and info.cls is not None:
            FILE_NODES[info.name] = info.cls
    _numpy_forms.__dict__.update(NUMPY_IMPLS)  # what _numpycode's calls import
    for listener in list(_LISTENERS):
        listener()


def subscribe(listener: Callable[[], None]) -> None:
    """Call ``listener()`` now and after every change of the registry."""
    _LISTENERS.append(listener)
    listener()


def register(entry: "FunctionInfo | type") -> FunctionInfo:
    """Add a function to the registry (a :class:`SymnnFunction` subclass registers itself
    when it is defined; a builtin is given as its :class:`FunctionInfo`).

    Raises
    ------
    DeclarationError
        When the name or the spec name is taken by a function of another class.
    """
    info = entry if isinstance(entry, FunctionInfo) else _info_of(entry)
    old = REGISTRY.get(info.name)
    if old is not None and old.cls is not None and old.cls.__module__ != getattr(
            info.cls, "__module__", None):
        raise DeclarationError(
            f"a function named {info.name!r} is registered already (from "
            f"{old.cls.__module__}); give the new class another name or unregister the old")
    clash = SPEC_FUNCTIONS.get(info.spec) if info.spec else None
    if clash is not None and clash.name != info.name:
        raise DeclarationError(
            f"the spec name {info.spec!r} of {info.name} is taken by {clash.name}")
    REGISTRY[info.name] = info
    _rebuild()
    return info


def unregister(name: str) -> None:
    """Remove the function ``name`` from the registry (for tests and interactive work)."""
    REGISTRY.pop(name, None)
    _rebuild()


def activation_classes() -> dict[str, type]:
    """The registered :class:`ActivationFunction` classes, by name."""
    return {n: i.cls for n, i in REGISTRY.items()
            if isinstance(i.cls, type) and issubclass(i.cls, ActivationFunction)}


def _info_of(cls: type) -> FunctionInfo:
    name = cls.__name__
    spec = cls.spec_name
    if spec == "":
        spec = name
    nargs = cls.nargs if isinstance(getattr(cls, "nargs", None), sp.FiniteSet) else None
    n = min(nargs) if nargs else 1
    return FunctionInfo(
        name=name, cls=cls, spec=spec, min_args=n, max_args=max(nargs) if nargs else n,
        doc=cls.spec_doc, kernel=cls.kernel_names, numpy=cls.numpy_impl,
        tex=cls.tex_name or r"\operatorname{%s}" % name.replace("_", r"\_"),
        text=cls.text_name or name,
    )


def _args(printer, expr) -> str:
    return ", ".join(printer._print(a) for a in expr.args)


def _mul_operand(printer, e) -> str:
    return printer.parenthesize(e, PRECEDENCE["Mul"], strict=True)


class SymnnFunction(sp.Function):
    """Base of symnn's own SymPy functions: names, print hooks and self-registration.

    Class attributes a subclass may set (all optional):

    ``tex_name``, ``text_name``
        The name in TeX and in display text (default ``\\operatorname{<name>}``, the name).
    ``spec_name``
        The name in the spec expression language; ``""`` (the default) means the class
        name, None keeps the function out of the spec language.
    ``spec_doc``
        One line for the spec-format documentation.
    ``kernel_names``
        ``(fastmath name, plain name)`` of a kernel helper the kernel prints a call of;
        without it the kernel prints the class's ``_numbacode`` (by default the
        ``definition``).
    ``numpy_impl``
        A NumPy implementation for the reference evaluator (by default the reference
        evaluates the ``definition``).
    """

    _abstract: ClassVar[bool] = True
    tex_name: ClassVar[str | None] = None
    text_name: ClassVar[str | None] = None
    spec_name: ClassVar[str | None] = ""
    spec_doc: ClassVar[str] = ""
    kernel_names: ClassVar[tuple[str, str] | None] = None
    numpy_impl: ClassVar[Callable[..., Any] | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("_abstract", False):
            register(cls)

    @staticmethod
    def definition(*args: sp.Expr) -> sp.Expr:
        """The function in elementary terms (what it *is*)."""
        raise NotImplementedError

    def _tex_head(self, printer) -> str:
        return REGISTRY[type(self).__name__].tex

    def _latex(self, printer, exp=None):
        s = r"%s\left(%s\right)" % (self._tex_head(printer), _args(printer, self))
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        return "%s(%s)" % (REGISTRY[type(self).__name__].text, _args(printer, self))

    def _numbacode(self, printer) -> str:
        """The kernel form: a call of the kernel helper, else the ``definition`` printed."""
        name = type(self).__name__
        if name in KERNEL_CALLS:
            return printer._call(name, *self.args)
        return printer._print(self.definition(*self.args))

    def _numpycode(self, printer) -> str:
        """The NumPy form (``sp.lambdify``): a call of the registered NumPy function, which
        lambdify imports from :mod:`symnn._numpy_forms` unless given one, else the
        ``definition`` printed."""
        name = type(self).__name__
        if name in NUMPY_IMPLS:
            head = printer._module_format(f"symnn._numpy_forms.{name}")
            return "%s(%s)" % (head, _args(printer, self))
        return printer._print(self.definition(*self.args))

    _pythoncode = _lambdacode = _numpycode


class ActivationFunction(SymnnFunction):
    """Base of symnn's activation functions: each subclass gives its elementary
    ``definition`` and (optionally) its ``fdiff`` rule; what they share lives here.

    * an activation of real arguments is real (so SymPy writes no re()/im() around it);
    * its numerical value at numbers comes from the ``definition`` (so
      ``float(softplus(1))`` works, as it does for SymPy's own functions); symbolic
      arguments stay unevaluated;
    * without an ``fdiff`` of its own, its derivative is that of its ``definition``;
    * ``defaults`` are the values of the arguments after ``z`` when the function is used as
      a named activation (``leaky_relu``: alpha = 1/100).
    """

    _abstract = True
    defaults: ClassVar[tuple] = ()

    def _eval_is_real(self):
        return True if all(a.is_extended_real for a in self.args) else None

    def _eval_evalf(self, prec):
        if not all(a.is_number for a in self.args):
            return None
        return self.definition(*self.args)._evalf(prec)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        ds = [sp.Dummy(real=True) for _ in self.args]
        d = sp.diff(self.definition(*ds), ds[argindex - 1])
        return d.xreplace(dict(zip(ds, self.args)))


def _special(name: str):
    def f(*args):
        import scipy.special
        return getattr(scipy.special, name)(*args)
    return f


_expit, _erf, _ndtr, _xlogy = (_special(n) for n in ("expit", "erf", "ndtr", "xlogy"))


class sigmoid(ActivationFunction):
    r"""Logistic sigmoid, :math:`\sigma(z) = 1 / (1 + e^{-z})`.

    Rule: :math:`\sigma'(z) = \sigma(z)\,\sigma(-z)`: :math:`\sigma(1 - \sigma)` with its relative
    accuracy kept at large ``z``, where ``1 - σ(z)`` rounds to 0 and ``σ(-z)`` is ``e^{-z}``.
    """

    nargs = 1
    tex_name = r"\sigma"
    text_name = "σ"
    spec_doc = "logistic sigmoid 1/(1+exp(-x))"
    kernel_names = ("fm_sigmoid", "_sigmoid")
    numpy_impl = staticmethod(_expit)

    @staticmethod
    def definition(z: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-z))

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0]) * sigmoid(-self.args[0])  # not σ(1 − σ): see above

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Half
        return None

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))


class softplus(ActivationFunction):
    r"""Softplus, :math:`\log(1 + e^z)`.  Rule: :math:`\mathrm{softplus}'(z) = \sigma(z)`."""

    nargs = 1
    tex_name = r"\operatorname{softplus}"
    spec_doc = "log(1+exp(x))"
    kernel_names = ("fm_softplus", "_softplus")
    numpy_impl = staticmethod(lambda x: np.logaddexp(0.0, x))

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


class relu(ActivationFunction):
    r"""Rectified linear unit, :math:`\max(0, z)`.

    Rule: :math:`\mathrm{relu}'(z) = H(z)` with :math:`H(0) = 0` (subgradient convention).
    """

    nargs = 1
    tex_name = r"\operatorname{ReLU}"
    text_name = "ReLU"
    spec_doc = "max(0, x)"
    numpy_impl = staticmethod(lambda x: np.maximum(x, 0.0))

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

    def _numbacode(self, printer) -> str:
        return f"max({printer._print(self.args[0])}, {printer.literal(0.0)})"


class _Parametrised(ActivationFunction):
    """An activation ``f(z, alpha)``: its TeX and text carry alpha as a subscript."""

    _abstract = True

    def _latex(self, printer, exp=None):
        z, alpha = self.args
        s = r"%s_{%s}\left(%s\right)" % (self._tex_head(printer), printer._print(alpha),
                                         printer._print(z))
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        z, alpha = self.args
        return "%s_%s(%s)" % (REGISTRY[type(self).__name__].text, printer._print(alpha),
                              printer._print(z))


class leaky_relu(_Parametrised):
    r"""Leaky ReLU, :math:`z` for :math:`z > 0`, :math:`\alpha z` otherwise.

    Arguments ``(z, alpha)``.  Rule: 1 for :math:`z > 0`, :math:`\alpha` otherwise.
    """

    nargs = 2
    defaults = (sp.Rational(1, 100),)
    tex_name = r"\operatorname{LeakyReLU}"
    text_name = "LeakyReLU"
    spec_name = None
    numpy_impl = staticmethod(lambda x, alpha: np.where(x > 0, x, alpha * x))

    @staticmethod
    def definition(z: sp.Expr, alpha: sp.Expr) -> sp.Expr:
        return sp.Piecewise((z, z > 0), (alpha * z, True))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z, alpha = self.args
        if argindex == 1:
            return sp.Piecewise((1, z > 0), (alpha, True))
        return sp.Piecewise((0, z > 0), (z, True))

    def _numbacode(self, printer) -> str:
        z, alpha = self.args
        pz = printer._print(z)
        return (f"({pz} if {pz} > {printer.literal(0.0)} else "
                f"{_mul_operand(printer, alpha)}*{_mul_operand(printer, z)})")


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


class elu(_Parametrised):
    r"""Exponential linear unit: :math:`z` for :math:`z > 0`, :math:`\alpha(e^z - 1)` otherwise.

    Arguments ``(z, alpha)``.  Rule: 1 for :math:`z > 0`, :math:`\alpha e^z` otherwise.
    """

    nargs = 2
    defaults = (sp.S.One,)
    tex_name = r"\operatorname{ELU}"
    text_name = "ELU"
    spec_name = None
    numpy_impl = staticmethod(_elu)

    @staticmethod
    def definition(z: sp.Expr, alpha: sp.Expr) -> sp.Expr:
        return sp.Piecewise((z, z > 0), (alpha * (sp.exp(z) - 1), True))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z, alpha = self.args
        if argindex == 1:
            return sp.Piecewise((1, z > 0), (alpha * sp.exp(z), True))
        return sp.Piecewise((0, z > 0), (sp.exp(z) - 1, True))

    def _numbacode(self, printer) -> str:
        z, alpha = self.args
        pz = printer._print(z)
        return (f"({pz} if {pz} > {printer.literal(0.0)} else "
                f"{_mul_operand(printer, alpha)}*{printer._call('expm1', z)})")


class normcdf(SymnnFunction):
    r"""The normal CDF :math:`\Phi(z) = \tfrac12(1 + \mathrm{erf}(z/\sqrt2))` as
    :math:`\tfrac12\mathrm{erfc}(-z/\sqrt2)`, exact relative to its value at ``z ≪ 0``
    too, where ``1 + erf`` cancels to 0 (GELU's derivative)."""

    nargs = 1
    tex_name = r"\Phi"
    text_name = "Φ"
    spec_name = None
    numpy_impl = staticmethod(_ndtr)

    @staticmethod
    def definition(z: sp.Expr) -> sp.Expr:
        return (1 + sp.erf(z / sp.sqrt(2))) / 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.exp(-(self.args[0] ** 2) / 2) / sp.sqrt(2 * sp.pi)

    def _eval_evalf(self, prec):  # through erfc: no cancellation at z << 0
        if not self.args[0].is_number:
            return None
        return (sp.erfc(-self.args[0] / sp.sqrt(2)) / 2)._evalf(prec)

    def _numbacode(self, printer) -> str:
        if printer.fast:  # vectorisable and relatively accurate everywhere (round 6, exact)
            return printer.used.add("fm_ndtr") or f"fm_ndtr({printer._print(self.args[0])})"
        x, (h, one) = self.args[0] * sp.Float(1 / np.sqrt(2.0)), map(printer.literal, (0.5, 1.0))
        return (f"({h}*({one} + {printer._call('erf', x)}) if {printer._print(x)} > "
                f"{printer.literal(-0.5)} else {h}*{printer._call('erfc', -x)})")


class gelu(ActivationFunction):
    r"""GELU in its exact erf form, :math:`z\,\Phi(z) = \tfrac{z}{2}(1 + \mathrm{erf}(z/\sqrt2))`.

    Rule: :math:`\Phi(z) + z\,\varphi(z)` with :math:`\varphi(z) = e^{-z^2/2}/\sqrt{2\pi}`.
    """

    nargs = 1
    tex_name = r"\operatorname{GELU}"
    text_name = "GELU"
    spec_doc = "x Φ(x) (erf form)"
    numpy_impl = staticmethod(lambda x: x * _ndtr(x))

    @staticmethod
    def definition(z: sp.Expr) -> sp.Expr:
        return z * (1 + sp.erf(z / sp.sqrt(2))) / 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z = self.args[0]
        # Φ as normcdf (erfc form): (1 + erf)/2 cancels to 0 at z ≲ −8 (round 5, exact)
        return normcdf(z) + z * sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Zero
        return None

    def _numbacode(self, printer) -> str:  # z Φ(z): (1 + erf) cancels at z ≪ 0 (round 6)
        z = self.args[0]
        return f"{_mul_operand(printer, z)}*{printer._print(normcdf(z))}"


class swish(ActivationFunction):
    r"""Swish / SiLU, :math:`z\,\sigma(z)`.

    Rule: :math:`\sigma(z)\,(1 + z\,\sigma(-z))` (``σ(-z)``: see :class:`sigmoid`).
    """

    nargs = 1
    tex_name = r"\operatorname{swish}"
    spec_doc = "x sigmoid(x)"
    numpy_impl = staticmethod(lambda x: x * _expit(x))

    @staticmethod
    def definition(z: sp.Expr) -> sp.Expr:
        return z / (1 + sp.exp(-z))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z = self.args[0]
        return sigmoid(z) * (1 + z * sigmoid(-z))

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Zero
        return None

    def _numbacode(self, printer) -> str:
        z = self.args[0]
        return f"{_mul_operand(printer, z)}*{printer._call('sigmoid', z)}"


class xlogy(SymnnFunction):
    """``x log y`` with the convention ``0 log y = 0`` (also at ``y = 0``)."""

    nargs = 2
    spec_name = None
    numpy_impl = staticmethod(_xlogy)

    @staticmethod
    def definition(x: sp.Expr, y: sp.Expr) -> sp.Expr:
        return sp.Piecewise((0, sp.Eq(x, 0)), (x * sp.log(y), True))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, y = self.args
        if argindex == 1:
            return sp.log(y)
        return x / y

    @classmethod
    def eval(cls, x, y):
        if x.is_zero:
            return sp.S.Zero
        return None

    def _latex(self, printer, exp=None):
        x, y = self.args
        s = r"%s \log %s" % (printer.parenthesize(x, 50), printer.parenthesize(y, 50))
        return s if exp is None else r"\left(%s\right)^{%s}" % (s, exp)

    def _numbacode(self, printer) -> str:
        x, y = self.args
        zero = printer.literal(0.0)
        return (f"({zero} if {printer._print(x)} == {zero} else "
                f"{_mul_operand(printer, x)}*{printer._call('log', y)})")


# ------------------------------------------------------------------------------------------
# the SymPy builtins symnn accepts
# ------------------------------------------------------------------------------------------


def _log(x, base=None):
    return sp.log(x) if base is None else sp.log(x, base)


def _heaviside(x, h0=0.5):
    return np.heaviside(x, h0)


def _dirac(x, *k):
    # the derivative of a step is zero away from the step; at the step it is undefined and
    # symnn uses the subgradient convention 0
    return np.zeros_like(np.asarray(x, dtype=float))


def _b(cls, spec=None, kernel=None, name=None, **kw) -> FunctionInfo:
    name = name or cls.__name__
    if isinstance(kernel, str):  # the same call with and without fastmath
        kernel = (kernel, kernel)
    tex = kw.pop("tex", "\\" + name if name in _TEX_OPERATORS else
                 r"\operatorname{%s}" % (spec or name))
    return FunctionInfo(name, cls, spec, kernel=kernel, tex=tex,
                        text=kw.pop("text", spec or name), **kw)


_TEX_OPERATORS = {"exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin"}

#: The SymPy builtins symnn accepts, with their names and forms.
BUILTINS: tuple[FunctionInfo, ...] = (
    _b(sp.exp, "exp", ("fm_exp", "math.exp"), doc="exponential"),
    _b(sp.log, "log", ("fm_log", "math.log"), build=_log, max_args=2,
       doc="natural logarithm; log(x, b) in base b"),
    _b(None, "sqrt", name="sqrt", build=sp.sqrt, doc="square root", tex=r"\sqrt"),
    *(_b(f, f.__name__, "math." + f.__name__)
      for f in (sp.sin, sp.cos, sp.tan, sp.asin, sp.acos, sp.atan, sp.sinh, sp.cosh)),
    _b(sp.tanh, "tanh", ("fm_tanh", "math.tanh")),
    _b(sp.asinh, None, "math.asinh"),
    _b(sp.atanh, None, "math.atanh"),
    _b(sp.Abs, "abs", doc="absolute value (derivative sign(x), sign(0) = 0)"),
    _b(sp.erf, "erf", ("fm_erf", "math.erf"), numpy=_erf, doc="error function"),
    _b(sp.erfc, None, "math.erfc"),
    _b(None, None, ("fm_expm1", "math.expm1"), name="expm1", saved=False),
    _b(None, None, ("fm_log1p", "math.log1p"), name="log1p", saved=False),
    _b(sp.Max, "max", min_args=2, max_args=None, doc="largest argument"),
    _b(sp.Min, "min", min_args=2, max_args=None, doc="smallest argument"),
    _b(sp.sign, None),
    _b(sp.Heaviside, None, numpy=_heaviside),
    _b(sp.DiracDelta, None, numpy=_dirac),
    _b(sp.floor, None),
    _b(sp.ceiling, None),
)

def _order() -> None:
    """Builtins first up to ``erf``, then symnn's classes, then the other builtins: the
    order the spec language lists its functions in."""
    names = [b.name for b in BUILTINS]
    cut = names.index("erf") + 1
    classes = {n: i for n, i in REGISTRY.items() if n not in names}
    items = {b.name: b for b in BUILTINS[:cut]} | classes | {b.name: b for b in BUILTINS[cut:]}
    REGISTRY.clear()
    REGISTRY.update(items)
    _rebuild()


_order()
