"""First-order optimizers whose update rules are SymPy equations.

Each optimizer *declares* its update as a list of :class:`Rule` objects — ``target = expr``
over symbols for the parameters θ, the mini-batch gradient g, the optimizer's state
(m, v, …), the step count t, the learning rate η and its hyperparameters (β₁, ε, μ …).
The same rules

* print as the textbook writes them (:meth:`Optimizer.equations`: Unicode text, LaTeX
  ``align*``, Jupyter), to stand beside the backprop equations of the network;
* are compiled: :mod:`symnn.train.epoch_kernel` prints them with a code printer into the
  Python source of one ``numba.njit`` update function (scalar subexpressions such as
  ``1 − β₁ᵗ`` are hoisted out of the loop over parameters), so no optimizer has
  hand-written numeric code.

Every optimizer takes ``lr`` (η₀), ``weight_decay`` (λ: coupled L2 decay, ``g̃ = g + λθ``),
``clip_norm`` (c: global gradient-norm clipping, ``g̃ = g·min(1, c/‖g‖)``, applied before
the decay) and ``schedule`` (a :mod:`symnn.train.schedules` object making η a function of
t).  By default the decay applies to every parameter; ``decay="weights"`` restricts it to
the weight matrices ``W1, W2, …`` (not biases), as scikit-learn's ``alpha`` does.

Examples
--------
>>> opt = Adam(lr=1e-3)
>>> print(opt.equations())
Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)
<BLANKLINE>
Update rule:
  mₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ
  vₜ = β₂·vₜ₋₁ + (1 − β₂)·gₜ²
  m̂ₜ = mₜ/(1 − β₁ᵗ)
  v̂ₜ = vₜ/(1 − β₂ᵗ)
  θₜ = θₜ₋₁ − η·m̂ₜ/(√v̂ₜ + ε)
<BLANKLINE>
gₜ is the gradient of the mini-batch loss at θₜ₋₁; t = 1, 2, … counts updates.
Vector operations (products, quotients, powers, √) are elementwise.
State starts at m₀ = 0, v₀ = 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.printing.str import StrPrinter

from symnn.errors import DeclarationError, UnknownNameError
from symnn.printing.equations import Equation, Equations
from symnn.train import _structure
from symnn.train import second_order as so
from symnn.train.schedules import ETA, ETA0, Constant, Hyper, Schedule, T, _positive

__all__ = [
    "Rule",
    "StateVar",
    "Optimizer",
    "SGD",
    "Momentum",
    "Nesterov",
    "Adagrad",
    "RMSProp",
    "Adam",
    "get_optimizer",
    "evaluate_rules",
    "THETA",
    "THETA_NEW",
    "GRAD",
    "GT",
    "GNORM",
    "LAM",
]

#: θₜ₋₁, the parameters before the update.
THETA = sp.Symbol("theta", real=True)
#: θₜ, the parameters after the update.
THETA_NEW = sp.Symbol("theta_new", real=True)
#: gₜ, the gradient of the mini-batch loss at θₜ₋₁.
GRAD = sp.Symbol("g", real=True)
#: g̃ₜ, the gradient after clipping and weight decay.
GT = sp.Symbol("gt", real=True)
#: ‖gₜ‖, the Euclidean norm of the whole gradient vector.
GNORM = sp.Symbol("gnorm", nonnegative=True)
#: λ, the weight-decay coefficient (per coordinate in the compiled code).
LAM = sp.Symbol("lam", nonnegative=True)
#: c, the clipping threshold of the gradient norm.
CLIP = sp.Symbol("c", positive=True)

_BASE_NAMES: dict[sp.Symbol, tuple[str, str]] = {
    THETA: ("θₜ₋₁", r"\theta_{t-1}"),
    THETA_NEW: ("θₜ", r"\theta_{t}"),
    GRAD: ("gₜ", "g_{t}"),
    GT: ("g̃ₜ", r"\tilde{g}_{t}"),
    GNORM: ("‖gₜ‖", r"\lVert g_{t} \rVert"),
    LAM: ("λ", r"\lambda"),
    CLIP: ("c", "c"),
    T: ("t", "t"),
    ETA: ("ηₜ", r"\eta_{t}"),
}


@dataclass(frozen=True)
class Rule:
    """One equation of an update: ``target = expr``.

    Attributes
    ----------
    target : sympy.Symbol
    expr : sympy.Expr
        Written unevaluated (``sympy.evaluate(False)``) so that it prints in the order
        written; :meth:`evaluated` gives the canonical SymPy form the code printer reads.
    kind : {"scalar", "vector", "norm"}
        ``scalar``: one number per step (η_t); ``vector``: one value per parameter
        (elementwise); ``norm``: ``target = ‖g‖₂`` over the whole gradient (its ``expr`` is
        :data:`GRAD`).
    """

    target: sp.Symbol
    expr: sp.Expr
    kind: str

    def evaluated(self) -> sp.Expr:
        return _evaluate(self.expr)


@dataclass(frozen=True)
class StateVar:
    """A per-parameter state vector: previous value ``prev``, new value ``new``, start 0."""

    prev: sp.Symbol
    new: sp.Symbol
    text: str
    tex: str
    init: float = 0.0


def _evaluate(expr: sp.Expr) -> sp.Expr:
    """Rebuild an unevaluated expression with SymPy's evaluation switched on."""
    if not expr.args:
        return expr
    return expr.func(*[_evaluate(a) for a in expr.args])


def _state(name: str, text: str, tex: str, init: float = 0.0) -> StateVar:
    return StateVar(sp.Symbol(name, real=True), sp.Symbol(name + "_new", real=True),
                    text, tex, init)


# ------------------------------------------------------------------------------------------
# printing
# ------------------------------------------------------------------------------------------

_SUP = str.maketrans("0123456789-t", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻ᵗ")
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


class UnicodeRulePrinter(StrPrinter):
    """Unicode text of an update rule in the order written: ``β₁·mₜ₋₁ + (1 − β₁)·gₜ``."""

    def __init__(self, names: dict[sp.Symbol, str]) -> None:
        super().__init__({"order": "none"})
        self.names = names

    def _print_Symbol(self, expr) -> str:
        return self.names.get(expr, expr.name)

    def _print_Add(self, expr, order=None) -> str:
        out = ""
        for i, a in enumerate(expr.args):
            neg = a.is_Mul and a.args and a.args[0] == -1
            neg = neg or (a.is_Number and a < 0)
            if neg:
                body = self.parenthesize(-a if a.is_Number else sp.Mul(*a.args[1:],
                                                                        evaluate=False),
                                         self._prec("Add") + 1)
                out += ("−" if i == 0 else " − ") + body
            else:
                out += ("" if i == 0 else " + ") + self._print(a)
        return out

    def _prec(self, name: str) -> int:
        from sympy.printing.precedence import PRECEDENCE

        return PRECEDENCE[name]

    def _print_Mul(self, expr) -> str:
        num, den = [], []
        for a in expr.args:
            if a.is_Pow and a.exp.is_Number and a.exp < 0:
                den.append(a.base if a.exp == -1 else sp.Pow(a.base, -a.exp, evaluate=False))
            elif a.is_Rational and not a.is_Integer and a.p == 1:
                den.append(sp.Integer(a.q))
            else:
                num.append(a)
        sign = ""
        if num and num[0] == -1:
            sign = "−"
            num = num[1:]
        top = "·".join(self.parenthesize(a, self._prec("Mul")) for a in num) or "1"
        if not den:
            return sign + top
        bottom = "·".join(self.parenthesize(a, self._prec("Mul")) for a in den)
        if len(den) > 1 or (den[0].is_Add or den[0].is_Mul):
            bottom = "(" + bottom + ")" if not bottom.startswith("(") else bottom
        return f"{sign}{top}/{bottom}"

    def _print_Pow(self, expr, rational=False) -> str:
        b, e = expr.args
        if e == sp.S.Half:
            inner = self._print(b)
            return "√" + (inner if b.is_Atom else f"({inner})")
        base = self.parenthesize(b, self._prec("Pow"), strict=True)
        es = self._print(e)
        if all(ch in "0123456789-t" for ch in es) and (e.is_Integer or e == T):
            return base + es.translate(_SUP)
        return f"{base}^{self.parenthesize(e, self._prec('Pow'), strict=True)}"

    def _print_floor(self, expr) -> str:
        return f"⌊{self._print(expr.args[0])}⌋"

    def _print_Min(self, expr) -> str:
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Rational(self, expr) -> str:
        return f"{expr.p}/{expr.q}"

    def _print_Half(self, expr) -> str:
        return "½"

    def _print_Pi(self, expr) -> str:
        return "π"

    def _print_Float(self, expr) -> str:
        return f"{float(expr):g}"


def _flat(expr: sp.Expr) -> sp.Expr:
    """Merge nested unevaluated sums and products (``(a + b) − c`` → ``a + b − c``)."""
    if not expr.args:
        return expr
    args = [_flat(a) for a in expr.args]
    if expr.is_Add or expr.is_Mul:
        merged = []
        for a in args:
            merged.extend(a.args if a.func is expr.func else [a])
        return expr.func(*merged, evaluate=False)
    return expr.func(*args, evaluate=False)


def _latex(expr: sp.Expr, names: dict[sp.Symbol, str]) -> str:
    return sp.latex(_flat(expr), symbol_names=names, order="none")


# ------------------------------------------------------------------------------------------
# the optimizers
# ------------------------------------------------------------------------------------------


class Optimizer:
    """Base class of the first-order optimizers.

    Parameters
    ----------
    lr : float
        The learning rate η (η₀ when a schedule is given), > 0.
    weight_decay : float
        λ ≥ 0: the update uses ``g̃ = g + λθ`` (coupled L2 decay).
    clip_norm : float, optional
        c > 0: rescale the gradient to norm at most c, ``g·min(1, c/‖g‖)``.
    schedule : Schedule, optional
        Makes η a function of the step t (:mod:`symnn.train.schedules`).
    decay : {"all", "weights"}
        Which parameters the weight decay applies to: all, or the weight matrices
        ``W1, W2, …`` only (networks; a custom model's θ counts as weights).

    Subclasses set :attr:`name`, :attr:`state` and implement :meth:`core_rules` (in terms
    of the gradient symbol they are given) and :meth:`own_hypers`.
    """

    name = "optimizer"
    kind = "first_order"

    def __init__(self, lr: float, *, weight_decay: float = 0.0, clip_norm: float | None = None,
                 schedule: Schedule | None = None, decay: str = "all") -> None:
        where = type(self).__name__
        self.lr = _positive("lr", lr, where)
        self.weight_decay = _positive("weight_decay", weight_decay, where, allow_zero=True)
        self.clip_norm = None if clip_norm is None else _positive("clip_norm", clip_norm, where)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise DeclarationError(
                f"{where}: schedule must be a symnn.train.schedules object (StepDecay, "
                f"ExponentialDecay, CosineDecay, InverseScaling), got {schedule!r}"
            )
        self.schedule = schedule if schedule is not None else Constant()
        if decay not in ("all", "weights"):
            raise DeclarationError(f"{where}: decay must be 'all' or 'weights', got {decay!r}")
        self.decay = decay

    # -- what subclasses declare ---------------------------------------------------------------
    state: tuple[StateVar, ...] = ()

    def own_hypers(self) -> list[Hyper]:
        return []

    def core_rules(self, g: sp.Symbol, eta: sp.Symbol) -> list[Rule]:
        raise NotImplementedError

    # -- the full update ---------------------------------------------------------------------
    @property
    def _eta(self) -> sp.Symbol:
        return ETA0 if self.schedule.constant else ETA

    def hypers(self) -> list[Hyper]:
        """Every scalar hyperparameter in the order the compiled update reads them."""
        out = [Hyper(ETA0, self.lr, "η" if self.schedule.constant else "η₀",
                     r"\eta" if self.schedule.constant else r"\eta_{0}")]
        out += self.own_hypers()
        if self.clip_norm is not None:
            out.append(Hyper(CLIP, self.clip_norm, "c", "c"))
        out += self.schedule.hypers()
        return out

    def rules(self) -> list[Rule]:
        """The update as an ordered list of rules (schedule, clipping, decay, core rule)."""
        rules = []
        if not self.schedule.constant:
            rules.append(Rule(ETA, self.schedule.expr(), "scalar"))
        g = GRAD
        if self.clip_norm is not None or self.weight_decay:
            with sp.evaluate(False):
                gt = GRAD
                if self.clip_norm is not None:
                    rules.append(Rule(GNORM, GRAD, "norm"))
                    gt = GRAD * sp.Min(1, CLIP / GNORM)
                if self.weight_decay:
                    gt = gt + LAM * THETA
            rules.append(Rule(GT, gt, "vector"))
            g = GT
        rules += self.core_rules(g, self._eta)
        return rules

    @property
    def uses_decay(self) -> bool:
        return bool(self.weight_decay)

    def names(self, tex: bool = False) -> dict[sp.Symbol, str]:
        """How each symbol of the rules prints (text or LaTeX)."""
        k = 1 if tex else 0
        out = {s: v[k] for s, v in _BASE_NAMES.items()}
        for st in self.state:
            out[st.prev] = f"{st.tex}_{{t-1}}" if tex else f"{st.text}ₜ₋₁"
            out[st.new] = f"{st.tex}_{{t}}" if tex else f"{st.text}ₜ"
        for h in self.hypers():
            out[h.symbol] = h.tex if tex else h.text
        for sym, (text, texs) in self.extra_names().items():
            out[sym] = texs if tex else text
        return out

    def extra_names(self) -> dict[sp.Symbol, tuple[str, str]]:
        """Names of intermediate symbols (m̂ …) a subclass introduces."""
        return {}

    def structure(self) -> str:
        """A text identifying the update's code (rules and state, not hyperparameter values).

        Memoised for symnn's own optimizers (:mod:`symnn.train._structure`)."""
        return _structure.structure(self)

    def equations(self) -> Equations:
        """The update rule, printable as Unicode text (``str``) and LaTeX (``.latex()``)."""
        text_names, tex_names = self.names(False), self.names(True)
        tp = UnicodeRulePrinter(text_names)
        eqs = []
        for r in self.rules():
            lt, lx = text_names[r.target], tex_names[r.target]
            if r.kind == "norm":
                eqs.append(Equation(r.target.name, lt, ["√(Σᵢ gₜ,ᵢ²)"], lx,
                                    [r"\sqrt{\textstyle\sum_i g_{t,i}^{2}}"]))
                continue
            eqs.append(Equation(r.target.name, lt, [tp.doprint(_flat(r.expr))], lx,
                                [_latex(r.expr, tex_names)], r.evaluated()))
        notes = ["gₜ is the gradient of the mini-batch loss at θₜ₋₁; t = 1, 2, … counts "
                 "updates.",
                 "Vector operations (products, quotients, powers, √) are elementwise."]
        notes_tex = [r"$g_t$ is the gradient of the mini-batch loss at $\theta_{t-1}$; "
                     r"$t = 1, 2, \dots$ counts updates.",
                     r"Products, quotients, powers and square roots of vectors are "
                     r"elementwise."]
        if self.state:
            notes.append("State starts at " + ", ".join(f"{s.text}₀ = {s.init:g}"
                                                        for s in self.state) + ".")
            notes_tex.append("State starts at " + ", ".join(
                f"${s.tex}_0 = {s.init:g}$" for s in self.state) + ".")
        if self.weight_decay and self.decay == "weights":
            notes.append("λ applies to the weight matrices only (λ = 0 for biases).")
            notes_tex.append(r"$\lambda$ applies to the weight matrices only "
                             r"($\lambda = 0$ for biases).")
        return Equations(repr(self), [("Update rule", eqs)], notes, notes_tex)

    def __repr__(self) -> str:
        parts = [f"lr={self.lr:g}"]
        parts += [f"{h.argname}={h.value:g}" for h in self.own_hypers()]
        if self.weight_decay:
            parts.append(f"weight_decay={self.weight_decay:g}")
        if self.clip_norm is not None:
            parts.append(f"clip_norm={self.clip_norm:g}")
        if not self.schedule.constant:
            parts.append(f"schedule={self.schedule!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class SGD(Optimizer):
    """Plain stochastic gradient descent, ``θₜ = θₜ₋₁ − η gₜ``.

    Examples
    --------
    >>> print(SGD(lr=0.1).equations().line("theta_new"))
    θₜ = θₜ₋₁ − η·gₜ
    """

    name = "sgd"

    def __init__(self, lr: float = 0.01, **options: Any) -> None:
        super().__init__(lr, **options)

    def core_rules(self, g, eta):
        with sp.evaluate(False):
            return [Rule(THETA_NEW, THETA - eta * g, "vector")]


class Momentum(Optimizer):
    """Heavy-ball momentum: ``vₜ = μ vₜ₋₁ − η gₜ``, ``θₜ = θₜ₋₁ + vₜ``.

    Examples
    --------
    >>> print(Momentum(lr=0.1, momentum=0.9).equations().line("v_new"))
    vₜ = μ·vₜ₋₁ − η·gₜ
    """

    name = "momentum"
    state = (_state("v", "v", "v"),)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, **options: Any) -> None:
        super().__init__(lr, **options)
        self.momentum = _fraction("momentum", momentum, type(self).__name__)

    def own_hypers(self):
        return [Hyper(sp.Symbol("mu", positive=True), self.momentum, "μ", r"\mu", "momentum")]

    def core_rules(self, g, eta):
        (mu,) = (h.symbol for h in self.own_hypers())
        v = self.state[0]
        with sp.evaluate(False):
            return [Rule(v.new, mu * v.prev - eta * g, "vector"),
                    Rule(THETA_NEW, THETA + v.new, "vector")]


class Nesterov(Momentum):
    """Nesterov momentum (the form of Sutskever et al. 2013 and scikit-learn):
    ``vₜ = μ vₜ₋₁ − η gₜ``, ``θₜ = θₜ₋₁ + μ vₜ − η gₜ``.

    Examples
    --------
    >>> print(Nesterov(lr=0.1).equations().line("theta_new"))
    θₜ = θₜ₋₁ + μ·vₜ − η·gₜ
    """

    name = "nesterov"

    def core_rules(self, g, eta):
        (mu,) = (h.symbol for h in self.own_hypers())
        v = self.state[0]
        with sp.evaluate(False):
            return [Rule(v.new, mu * v.prev - eta * g, "vector"),
                    Rule(THETA_NEW, THETA + mu * v.new - eta * g, "vector")]


class Adagrad(Optimizer):
    """Adagrad: ``Gₜ = Gₜ₋₁ + gₜ²``, ``θₜ = θₜ₋₁ − η gₜ/(√Gₜ + ε)``.

    Examples
    --------
    >>> print(Adagrad(lr=0.1).equations().line("G_new"))
    Gₜ = Gₜ₋₁ + gₜ²
    """

    name = "adagrad"
    state = (_state("G", "G", "G"),)

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, **options: Any) -> None:
        super().__init__(lr, **options)
        self.eps = _positive("eps", eps, type(self).__name__)

    def own_hypers(self):
        return [Hyper(sp.Symbol("epsilon", positive=True), self.eps, "ε", r"\varepsilon", "eps")]

    def core_rules(self, g, eta):
        (eps,) = (h.symbol for h in self.own_hypers())
        s = self.state[0]
        with sp.evaluate(False):
            return [Rule(s.new, s.prev + g ** 2, "vector"),
                    Rule(THETA_NEW, THETA - eta * g / (sp.sqrt(s.new) + eps), "vector")]


class RMSProp(Optimizer):
    """RMSProp: ``vₜ = ρ vₜ₋₁ + (1 − ρ) gₜ²``, ``θₜ = θₜ₋₁ − η gₜ/(√vₜ + ε)``.

    Examples
    --------
    >>> print(RMSProp(lr=0.01).equations().line("v_new"))
    vₜ = ρ·vₜ₋₁ + (1 − ρ)·gₜ²
    """

    name = "rmsprop"
    state = (_state("v", "v", "v"),)

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-8,
                 **options: Any) -> None:
        super().__init__(lr, **options)
        self.rho = _fraction("rho", rho, type(self).__name__)
        self.eps = _positive("eps", eps, type(self).__name__)

    def own_hypers(self):
        return [Hyper(sp.Symbol("rho", positive=True), self.rho, "ρ", r"\rho"),
                Hyper(sp.Symbol("epsilon", positive=True), self.eps, "ε", r"\varepsilon", "eps")]

    def core_rules(self, g, eta):
        rho, eps = (h.symbol for h in self.own_hypers())
        v = self.state[0]
        with sp.evaluate(False):
            return [Rule(v.new, rho * v.prev + (1 - rho) * g ** 2, "vector"),
                    Rule(THETA_NEW, THETA - eta * g / (sp.sqrt(v.new) + eps), "vector")]


_MHAT = sp.Symbol("mhat", real=True)
_VHAT = sp.Symbol("vhat", nonnegative=True)


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015, Algorithm 1).

    ``mₜ = β₁mₜ₋₁ + (1 − β₁)gₜ``, ``vₜ = β₂vₜ₋₁ + (1 − β₂)gₜ²``, ``m̂ₜ = mₜ/(1 − β₁ᵗ)``,
    ``v̂ₜ = vₜ/(1 − β₂ᵗ)``, ``θₜ = θₜ₋₁ − η m̂ₜ/(√v̂ₜ + ε)``.

    Examples
    --------
    >>> print(Adam().equations().latex().splitlines()[-2])
    \\theta_{t} &= \\theta_{t-1} - \\frac{\\eta \\hat{m}_{t}}{\\sqrt{\\hat{v}_{t}} + \\varepsilon}
    """

    name = "adam"
    state = (_state("m", "m", "m"), _state("v", "v", "v"))

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, **options: Any) -> None:
        super().__init__(lr, **options)
        self.beta1 = _fraction("beta1", beta1, "Adam")
        self.beta2 = _fraction("beta2", beta2, "Adam")
        self.eps = _positive("eps", eps, "Adam")

    def own_hypers(self):
        return [Hyper(sp.Symbol("beta1", positive=True), self.beta1, "β₁", r"\beta_{1}"),
                Hyper(sp.Symbol("beta2", positive=True), self.beta2, "β₂", r"\beta_{2}"),
                Hyper(sp.Symbol("epsilon", positive=True), self.eps, "ε", r"\varepsilon", "eps")]

    def extra_names(self):
        return {_MHAT: ("m̂ₜ", r"\hat{m}_{t}"), _VHAT: ("v̂ₜ", r"\hat{v}_{t}")}

    def core_rules(self, g, eta):
        b1, b2, eps = (h.symbol for h in self.own_hypers())
        m, v = self.state
        with sp.evaluate(False):
            return [Rule(m.new, b1 * m.prev + (1 - b1) * g, "vector"),
                    Rule(v.new, b2 * v.prev + (1 - b2) * g ** 2, "vector"),
                    Rule(_MHAT, m.new / (1 - b1 ** T), "vector"),
                    Rule(_VHAT, v.new / (1 - b2 ** T), "vector"),
                    Rule(THETA_NEW, THETA - eta * _MHAT / (sp.sqrt(_VHAT) + eps), "vector")]


def evaluate_rules(opt: Optimizer, theta, g, lam=None, state=None, t: int = 0):
    """Apply the update rules of ``opt`` with NumPy: each rule's SymPy expression is
    turned into a NumPy function by :func:`sympy.lambdify` and evaluated in order.

    This is the uncompiled witness of the generated update.  ``state`` is the
    ``(n_state, P)`` array of state vectors (default: their start values), ``t`` the number
    of steps already taken.  Returns ``(θₜ, new state, t + 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> theta, S, t = evaluate_rules(Momentum(lr=0.1, momentum=0.5), np.array([1.0]),
    ...                              np.array([2.0]))
    >>> theta, S
    (array([0.8]), array([[-0.2]]))
    """
    import numpy as np

    theta = np.asarray(theta, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    P = theta.shape[0]
    if lam is None:
        lam = np.full(P, opt.weight_decay)
    if state is None:
        state = np.array([np.full(P, s.init) for s in opt.state]).reshape(len(opt.state), P)
    env: dict = {THETA: theta, GRAD: g, LAM: np.asarray(lam, np.float64), T: float(t + 1)}
    for h in opt.hypers():
        env[h.symbol] = h.value
    for j, s in enumerate(opt.state):
        env[s.prev] = np.asarray(state[j], np.float64)
    for r in opt.rules():
        if r.kind == "norm":
            env[r.target] = np.sqrt(np.sum(g * g))
            continue
        e = r.evaluated()
        syms = sorted(e.free_symbols, key=lambda s: s.name)
        fn = sp.lambdify(syms, e, modules="numpy")
        env[r.target] = fn(*[env[s] for s in syms]) * np.ones(P)
    new_state = np.array([env[s.new] for s in opt.state]).reshape(len(opt.state), P)
    return env[THETA_NEW], new_state, t + 1


def _fraction(name: str, value, where: str) -> float:
    v = _positive(name, value, where, allow_zero=True)
    if v >= 1:
        raise DeclarationError(f"{where}: {name} must be in [0, 1), got {value!r}")
    return v


# ------------------------------------------------------------------------------------------
# by name (spec files, the CLI, the scikit-learn estimators)
# ------------------------------------------------------------------------------------------

_SPEC_KEYS = {"beta1": "beta1", "beta2": "beta2", "eps": "eps", "rho": "rho",
              "momentum": "momentum", "weight_decay": "weight_decay", "clip": "clip_norm",
              "clip_norm": "clip_norm", "lr": "lr", "damping": "damping", "memory": "memory",
              "max_iter": "max_iter", "tol": "tol", "schedule": "schedule",
              "decay": "decay"}


def get_optimizer(spec: "str | dict | Any", **options: Any):
    """An optimizer from a name (``"adam"``), a spec-file table or an optimizer object.

    Names: ``sgd`` (``momentum > 0`` gives :class:`Momentum`, ``nesterov = true``
    :class:`Nesterov`), ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop``, ``adam``,
    ``lbfgs``, ``newton_cg`` (``trust_ncg``), ``newton``, ``lm`` (``levenberg_marquardt``),
    ``kfac``.
    Keys of a spec's ``[optimizer]`` table: ``lr``, ``momentum``, ``nesterov``, ``beta1``,
    ``beta2``, ``eps``, ``rho``, ``weight_decay``, ``clip``, ``damping``, ``memory``,
    ``max_iter``, ``tol``.

    Examples
    --------
    >>> get_optimizer({"name": "adam", "lr": 0.01})
    Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08)
    >>> get_optimizer("sgd", lr=0.1, momentum=0.9, nesterov=True)
    Nesterov(lr=0.1, momentum=0.9)
    """
    if isinstance(spec, (Optimizer, so.SecondOrder)):
        return spec
    if isinstance(spec, dict):
        options = {**{k: v for k, v in spec.items() if k != "name"}, **options}
        spec = spec.get("name")
    if not isinstance(spec, str):
        raise UnknownNameError(f"optimizer: expected a name or an optimizer object, got "
                               f"{spec!r}")
    key = re.sub(r"[\s\-]+", "_", spec.strip().lower())
    nesterov = bool(options.pop("nesterov", False))
    kw = {}
    for k, v in options.items():
        if k not in _SPEC_KEYS:
            raise UnknownNameError(f"optimizer {spec!r}: unknown option {k!r}; known: "
                                   f"{sorted(_SPEC_KEYS)}")
        kw[_SPEC_KEYS[k]] = v
    if key == "sgd":
        if nesterov:
            key = "nesterov"
        elif kw.get("momentum", 0):
            key = "momentum"
        else:
            kw.pop("momentum", None)
    table = {
        "sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": Adagrad,
        "rmsprop": RMSProp, "adam": Adam, "lbfgs": so.LBFGS, "l_bfgs": so.LBFGS,
        "newton_cg": so.NewtonCG, "trust_ncg": so.NewtonCG, "newton": so.Newton,
        "lm": so.LevenbergMarquardt, "levenberg_marquardt": so.LevenbergMarquardt,
    }
    from symnn.train.kfac import KFAC

    table["kfac"] = KFAC
    if key not in table:
        raise UnknownNameError(f"unknown optimizer {spec!r}; known: {sorted(table)}")
    cls = table[key]
    try:
        return cls(**kw)
    except TypeError as err:
        raise UnknownNameError(f"optimizer {spec!r}: {err}") from err
