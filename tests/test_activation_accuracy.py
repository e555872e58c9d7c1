"""The activations' first and second derivatives, as symnn derives and evaluates them,
keep their RELATIVE accuracy at large |z| (round 5, exact).

``σ'(z) = σ(z)(1 − σ(z))`` is 0 once ``σ(z)`` rounds to 1 (z ≳ 37) where the true value is
``e^{-z}``: every curvature that goes through it (a sigmoid layer's HVP, the fused
sigmoid × bce Hessian) lost all its digits there.  The rules are written with ``σ(−z)``
instead; this file checks the derived reverse (first derivative) and forward-over-reverse
(second derivative) rules of every smooth activation against mpmath at 50 digits, on the
NumPy reference evaluation of the derived ops (the forms the kernels print, with the
forward values read back through the layer's output as the derivation does).
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

from symnn import ops as P
from symnn.codegen.reference import evaluate
from symnn.derive.reverse import reverse
from symnn.derive.tangent import jvp
from symnn.functions import elu, gelu, sigmoid, softplus, swish

mp.mp.dps = 50

Z = np.array([-700.0, -300.0, -60.0, -40.0, -37.5, -20.0, -5.0, -0.5, 0.25, 3.0, 20.0, 37.5,
              40.0, 60.0, 300.0, 700.0])


def _exact(name):
    s = lambda z: 1 / (1 + mp.exp(-z))  # noqa: E731
    return {
        "sigmoid": (lambda z: s(z) * s(-z), lambda z: s(z) * s(-z) * (s(-z) - s(z))),
        "softplus": (s, lambda z: s(z) * s(-z)),
        "swish": (lambda z: s(z) * (1 + z * s(-z)),
                  lambda z: s(z) * s(-z) * (2 + z * (s(-z) - s(z)))),
        "elu": (lambda z: 1 if z > 0 else mp.exp(z), lambda z: 0 if z > 0 else mp.exp(z)),
        "gelu": (lambda z: mp.ncdf(z) + z * mp.npdf(z), lambda z: mp.npdf(z) * (2 - z * z)),
        # round 6: tanh' = sech²(z) (1 − tanh² lost every digit at |z| ≥ 19)
        "tanh": (lambda z: mp.sech(z) ** 2, lambda z: -2 * mp.tanh(z) * mp.sech(z) ** 2),
    }[name]


FUNCS = {"sigmoid": sigmoid, "softplus": softplus, "swish": swish, "gelu": gelu,
         "elu": lambda z: elu(z, sp.S.One), "tanh": sp.tanh}


def _derived(f, z: np.ndarray):
    """f'(z) and f''(z) from the derived reverse rule and its tangent (x ↦ a = f(x))."""
    n = z.size
    b = P.Builder()
    x = P.Var("x", "input", (n,))
    xs = P.sym(x)
    a = b.emit(P.Map(P.Var("a", "sample", (n,)), (f(xs),), (P.Arg(xs, x),), role="act"))
    ell = b.emit(P.SumComp(P.Var("ell", "sample", (1,)), a))
    forward = list(b.prog.ops)
    g = reverse(b, ell, [x], forward)[x]
    vx = P.Var("vx", "input", (n,))
    t = jvp(b, list(b.prog.ops), {x: vx})
    env = evaluate(b.prog.ops, {x: z[None, :], vx: np.ones((1, n))})
    return np.asarray(env[g]).reshape(-1), np.asarray(env[t[g]]).reshape(-1)


def _check(got, want_f, z, rtol):
    for zi, gi in zip(z, got):
        w = want_f(mp.mpf(float(zi)))
        wf = float(w)
        if wf == 0.0 or abs(wf) < 1e-300:  # underflows float64: any value below is fine
            assert abs(gi) <= 1e-300, (zi, gi, w)
            continue
        assert abs(gi - wf) <= rtol * abs(wf), f"z = {zi}: {gi!r} vs exact {mp.nstr(w, 17)}"


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_first_and_second_derivatives_keep_relative_accuracy(name):
    d1, d2 = _derived(FUNCS[name], Z)
    e1, e2 = _exact(name)
    _check(d1, e1, Z, 1e-13)
    _check(d2, e2, Z, 1e-12)


def test_sigmoid_second_derivative_at_40_is_not_zero():
    """The case of the round-4 report: σ''(40) ≈ −4.25e-18, was 0."""
    _, d2 = _derived(sigmoid, np.array([40.0]))
    assert d2[0] < 0 and np.isclose(d2[0], -np.exp(-40.0), rtol=1e-12)


def test_the_old_rule_would_fail_this_check():
    """σ(1 − σ) (the old rule) misses by 100 % at z = 40: the check above can fail."""
    z = np.array([40.0])
    old = 1 / (1 + np.exp(-z)) * (1 - 1 / (1 + np.exp(-z)))
    with pytest.raises(AssertionError):
        _check(old, _exact("sigmoid")[0], z, 1e-13)


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("fast", [True, False])
def test_the_kernel_forms_of_the_derivatives_keep_relative_accuracy(name, fast):
    """The same rules as the kernels print them (KernelPrinter: symnn.codegen.fastmath or
    the plain math helpers), evaluated point by point — no compile of a network."""
    import math

    from symnn.codegen import fastmath, fastmath_extra
    from symnn.codegen.numba import runtime
    from symnn.codegen.printer import KernelPrinter
    from symnn.ops._tanh import diff as tdiff

    z = sp.Symbol("z", real=True)
    f = FUNCS[name](z)
    ns = {"math": math, "_sigmoid": runtime._sigmoid, "_softplus": runtime._softplus,
          **{k: getattr(fastmath, k) for k in dir(fastmath) if k.startswith("fm_")},
          **{k: getattr(fastmath_extra, k) for k in fastmath_extra.__all__}}
    e1, e2 = _exact(name)
    for order, want in ((1, e1), (2, e2)):
        d = tdiff(f, z) if order == 1 else tdiff(tdiff(f, z), z)  # the op kits' diff (sech²)
        src = KernelPrinter(fast=fast).doprint(d)
        code = compile(src, "<kernel form>", "eval")  # symnn's own printed expression
        got = np.array([eval(code, dict(ns, z=float(v))) for v in Z])  # noqa: S307
        _check(got, want, Z, 1e-13 if order == 1 else 1e-12)
