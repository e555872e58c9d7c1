"""Learning-rate schedules as SymPy expressions of the step count ``t``.

A schedule is a formula ``η_t = f(t; η₀, …)`` — the same object prints beside the update
rule (:meth:`symnn.train.Optimizer.equations`) and is compiled into the generated update
(:mod:`symnn.train.epoch_kernel`).  ``t`` counts optimizer steps (mini-batch updates) from
1: the first update uses ``η_1``.

=====================  =================================================================
schedule               η_t
=====================  =================================================================
``Constant()``         ``η₀``
``StepDecay(s, γ)``    ``η₀ · γ^⌊(t − 1)/s⌋``  (multiply by γ every s steps)
``ExponentialDecay``   ``η₀ · γ^((t − 1)/k)``  (a factor γ every k steps, smoothly)
``CosineDecay(T)``     ``η_min + ½(η₀ − η_min)(1 + cos(π·min(t − 1, T)/T))``
``InverseScaling(p)``  ``η₀ / t^p``  (scikit-learn's ``learning_rate="invscaling"``)
=====================  =================================================================

Examples
--------
>>> from symnn.train.schedules import StepDecay, T, ETA0
>>> sched = StepDecay(step_size=100, gamma=0.5)
>>> sched.expr()
eta0*gamma**floor((t - 1)/s)
>>> round(sched.value(eta0=0.1, t=201), 6)
0.025
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symnn.errors import DeclarationError

__all__ = [
    "Hyper",
    "Schedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "CosineDecay",
    "InverseScaling",
    "T",
    "ETA0",
    "ETA",
]

#: The step count (1 for the first update).
T = sp.Symbol("t", positive=True)
#: The base learning rate η₀ (the optimizer's ``lr``).
ETA0 = sp.Symbol("eta0", positive=True)
#: The learning rate of step t, η_t.
ETA = sp.Symbol("eta", positive=True)


@dataclass(frozen=True)
class Hyper:
    """A hyperparameter: its symbol, value and how it prints."""

    symbol: sp.Symbol
    value: float
    text: str
    tex: str
    arg: str = ""

    @property
    def argname(self) -> str:
        """The constructor argument that sets it."""
        return self.arg or self.symbol.name


def _positive(name: str, value, where: str, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise DeclarationError(f"{where}: {name} must be a number, got {value!r}") from err
    if not (v == v) or v in (float("inf"), float("-inf")) or v < 0 or (v == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise DeclarationError(f"{where}: {name} must be a finite number {bound}, got {value!r}")
    return v


class Schedule:
    """A learning-rate schedule: ``η_t`` as a SymPy expression of :data:`T` and :data:`ETA0`.

    Subclasses define :meth:`expr` (written unevaluated, in the order a textbook writes it)
    and :meth:`hypers` (their own hyperparameters, beside η₀).
    """

    name = "constant"

    def expr(self) -> sp.Expr:
        """``η_t`` in :data:`T`, :data:`ETA0` and the schedule's hyperparameter symbols."""
        return ETA0

    def hypers(self) -> list[Hyper]:
        """The schedule's own hyperparameters (not η₀)."""
        return []

    @property
    def constant(self) -> bool:
        """True when ``η_t = η₀`` for every t."""
        return False

    def value(self, eta0: float, t: int) -> float:
        """``η_t`` as a number (evaluated from :meth:`expr`)."""
        sub = {h.symbol: sp.Float(h.value) for h in self.hypers()}
        sub[ETA0] = sp.Float(eta0)
        sub[T] = sp.Integer(t)
        return float(sp.N(sp.sympify(self.expr()).xreplace(sub)))

    def __repr__(self) -> str:
        args = ", ".join(f"{h.argname}={h.value:g}" for h in self.hypers())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``η_t = η₀`` (the default).

    Examples
    --------
    >>> Constant().value(0.01, 10)
    0.01
    """

    @property
    def constant(self) -> bool:
        return True


class StepDecay(Schedule):
    """``η_t = η₀ · γ^⌊(t − 1)/s⌋``: multiply the rate by ``gamma`` every ``step_size`` steps.

    Parameters
    ----------
    step_size : int
        Steps between decays (``s ≥ 1``).
    gamma : float
        Factor per decay (default 0.1).

    Examples
    --------
    >>> [StepDecay(2, 0.5).value(1.0, t) for t in (1, 2, 3, 5)]
    [1.0, 1.0, 0.5, 0.25]
    """

    name = "step"

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise DeclarationError(f"StepDecay: step_size must be an integer ≥ 1, got "
                                   f"{step_size!r}")
        self.step_size = step_size
        self.gamma = _positive("gamma", gamma, "StepDecay")

    def hypers(self) -> list[Hyper]:
        return [Hyper(sp.Symbol("gamma", positive=True), self.gamma, "γ", r"\gamma"),
                Hyper(sp.Symbol("s", positive=True), float(self.step_size), "s", "s",
                      "step_size")]

    def expr(self) -> sp.Expr:
        gamma, s = (h.symbol for h in self.hypers())
        with sp.evaluate(False):
            return ETA0 * gamma ** sp.floor((T - 1) / s)


class ExponentialDecay(Schedule):
    """``η_t = η₀ · γ^((t − 1)/k)``: a factor ``gamma`` every ``decay_steps`` steps, smoothly.

    Examples
    --------
    >>> round(ExponentialDecay(0.5, decay_steps=10).value(1.0, 11), 12)
    0.5
    """

    name = "exponential"

    def __init__(self, gamma: float, decay_steps: int = 1) -> None:
        self.gamma = _positive("gamma", gamma, "ExponentialDecay")
        if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps < 1:
            raise DeclarationError(f"ExponentialDecay: decay_steps must be an integer ≥ 1, "
                                   f"got {decay_steps!r}")
        self.decay_steps = decay_steps

    def hypers(self) -> list[Hyper]:
        return [Hyper(sp.Symbol("gamma", positive=True), self.gamma, "γ", r"\gamma"),
                Hyper(sp.Symbol("k", positive=True), float(self.decay_steps), "k", "k",
                      "decay_steps")]

    def expr(self) -> sp.Expr:
        gamma, k = (h.symbol for h in self.hypers())
        with sp.evaluate(False):
            return ETA0 * gamma ** ((T - 1) / k)


class CosineDecay(Schedule):
    """``η_t = η_min + ½(η₀ − η_min)(1 + cos(π·min(t − 1, T)/T))`` over ``total_steps`` = T.

    After ``total_steps`` steps the rate stays at ``eta_min``.

    Examples
    --------
    >>> s = CosineDecay(total_steps=100, eta_min=0.0)
    >>> s.value(1.0, 1), round(s.value(1.0, 51), 12), s.value(1.0, 500)
    (1.0, 0.5, 0.0)
    """

    name = "cosine"

    def __init__(self, total_steps: int, eta_min: float = 0.0) -> None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise DeclarationError(f"CosineDecay: total_steps must be an integer ≥ 1, got "
                                   f"{total_steps!r}")
        self.total_steps = total_steps
        self.eta_min = _positive("eta_min", eta_min, "CosineDecay", allow_zero=True)

    def hypers(self) -> list[Hyper]:
        return [Hyper(sp.Symbol("eta_min", nonnegative=True), self.eta_min, "η_min",
                      r"\eta_{\min}"),
                Hyper(sp.Symbol("T_max", positive=True), float(self.total_steps), "T",
                      "T", "total_steps")]

    def expr(self) -> sp.Expr:
        eta_min, tmax = (h.symbol for h in self.hypers())
        with sp.evaluate(False):
            return eta_min + sp.Rational(1, 2) * (ETA0 - eta_min) * (
                1 + sp.cos(sp.pi * sp.Min(T - 1, tmax) / tmax))


class InverseScaling(Schedule):
    """``η_t = η₀ / t^p`` (scikit-learn's ``learning_rate="invscaling"``, ``power_t = p``).

    Examples
    --------
    >>> InverseScaling(0.5).value(1.0, 4)
    0.5
    """

    name = "invscaling"

    def __init__(self, power: float = 0.5) -> None:
        self.power = _positive("power", power, "InverseScaling", allow_zero=True)

    def hypers(self) -> list[Hyper]:
        return [Hyper(sp.Symbol("p", nonnegative=True), self.power, "p", "p", "power")]

    def expr(self) -> sp.Expr:
        (p,) = (h.symbol for h in self.hypers())
        with sp.evaluate(False):
            return ETA0 / T ** p
