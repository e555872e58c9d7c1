"""The op tables of symnn.ops: every op has every rule, and a wrong rule is caught."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import sympy as sp

import symnn
import symnn.ops
from symnn import ops as P
from symnn.check import gradcheck
from symnn.codegen.model import ReferenceModel
from symnn.codegen.reference import evaluate
from symnn.derive import derive
from symnn.derive.build import forward_program
from symnn.derive.reverse import reverse
from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops.registry import OPS


def _op_classes() -> set:
    """Every concrete subclass of Op defined in a module of symnn.ops."""
    found = set()
    for info in pkgutil.iter_modules(symnn.ops.__path__, "symnn.ops."):
        mod = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if issubclass(obj, P.Op) and obj is not P.Op and not inspect.isabstract(obj):
                found.add(obj)
    return found


def test_every_op_class_has_a_rule_in_every_table():
    classes = _op_classes()
    assert {c.__name__ for c in classes} >= {
        "Affine", "MatTVec", "Map", "Softmax", "LogSumExp", "Dot", "SumComp", "BatchMean",
        "OuterMean", "Add", "Penalty"}
    assert classes == set(OPS.values())  # every op class is declared with @op_class
    for name, table in P.TABLES.items():
        for cls in classes:
            assert cls in table, f"{cls.__name__} has no {name} rule"
    assert P.missing() == {}
    assert set(P.TABLES) == {"VJP", "JVP", "NUMPY", "SYMPY", "EQUATION", "TEXT", "DESCRIBE"}


def test_missing_names_the_gaps_of_a_new_op():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Twice(P.Op):
        out: P.Var
        u: P.Var

        @property
        def inputs(self):
            return (self.u,)

    gaps = P.missing([Twice])
    assert set(gaps) == set(P.TABLES) and all(v == ["Twice"] for v in gaps.values())
    P.register(Twice, text=lambda o: f"2·{o.u.name}")
    try:
        assert "TEXT" not in P.missing([Twice])
        u = P.Var("u", "sample", (2,))
        assert str(P.Program([Twice(P.Var("t", "sample", (2,)), u)])).splitlines()[1] == \
            "t[2] = 2·u"
        assert P.describe(Twice(P.Var("t", "sample", (2,)), u)) == "t = Twice(u)"
    finally:
        del P.TEXT[Twice]
    with pytest.raises(DerivationError, match="no table"):
        P.register(Twice, backward=lambda *a: None)


def _theta_X_y(model, rng, B=5):
    theta = rng.normal(size=model.n_params) * 0.7
    X = rng.normal(size=(B, model.n_inputs))
    y = rng.dirichlet(np.ones(model.n_outputs), size=B)
    return theta, X, y


def _sign_flipped(rule):
    """``rule`` with its per-sample cotangent contributions negated (a plausible slip)."""

    def wrong(b, op, g, active):
        out = []
        for var, c in rule(b, op, g, active):
            if isinstance(c, P.Var) and c.per_sample:
                s = P.sym(c)
                c = b.emit(P.Map(b.temp(c.shape), (-s,), (P.Arg(s, c),)))
            elif not isinstance(c, P.Var):
                c = -c
            out.append((var, c))
        return out

    return wrong


@pytest.mark.parametrize("cls", [P.Dot, P.Softmax, P.Affine])
def test_a_sign_flipped_vjp_entry_fails_gradcheck(cls, monkeypatch):
    rng = np.random.default_rng(3)
    spec = dict(activation="tanh", output="softmax", loss="cross_entropy")
    if cls is P.Softmax:  # a softmax output read by a non-fused loss
        spec["loss"] = "mse"
    good = ReferenceModel(symnn.mlp([3, 4, 3], **spec))
    theta, X, y = _theta_X_y(good, rng)
    assert gradcheck(good, theta, X, y)
    monkeypatch.setitem(P.VJP, cls, _sign_flipped(P.VJP[cls]))
    bad = ReferenceModel(symnn.mlp([3, 4, 3], **spec))
    report = gradcheck(bad, theta, X, y)
    assert not report and not report.passed


# ----------------------------------------------------------------------------------------
# the reverse rules that the derivation of a network does not use today: checked against
# central differences of the NumPy reference


def _central(f, theta: np.ndarray, h=1e-6) -> np.ndarray:
    g = np.zeros_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e.flat[i] = h
        g.flat[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g


def test_reverse_through_mattvec_outermean_batchmean_add_and_penalties():
    b = P.Builder()
    x = P.Var("x", "input", (3,))
    W = P.Var("W", "param", (3, 2))
    V = P.Var("V", "param", (2, 3))
    m = b.emit(P.MatTVec(P.Var("m", "sample", (2,)), W, x))            # Wᵀx
    o = b.emit(P.OuterMean(P.Var("o", "param", (2, 3)), m, x))         # ⟨m xᵀ⟩
    pg = b.emit(P.Penalty(P.Var("pg", "param", (2, 3)), o, "l2", sp.Rational(1, 4), True,
                          (0, 2, 5)))                                   # ∇ of ¼‖o‖² (masked)
    t = b.emit(P.Add(P.Var("t", "param", (2, 3)), (pg, V)))
    R2 = b.emit(P.Penalty(P.Var("R2", "total", ()), t, "l2", sp.Rational(1, 3)))
    R1 = b.emit(P.Penalty(P.Var("R1", "total", ()), V, "l1", sp.Rational(1, 5)))
    mm = b.emit(P.Dot(P.Var("mm", "sample", (1,)), m, m))
    c = b.emit(P.Add(P.Var("c", "sample", (2,)), (m, mm)))             # size-1 broadcast
    cc = b.emit(P.Dot(P.Var("cc", "sample", (1,)), c, m))
    Lm = b.emit(P.BatchMean(P.Var("Lm", "total", ()), cc))
    L = b.emit(P.Add(P.Var("L", "total", ()), (Lm, R2, R1)))
    forward = list(b.prog.ops)
    ct = reverse(b, L, [W, V], forward)
    ops = list(b.prog.ops)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3))
    Wv, Vv = rng.normal(size=(3, 2)), rng.normal(size=(2, 3))

    def run(w, v):
        return evaluate(ops, {x: X, W: w, V: v})

    env = run(Wv, Vv)
    gW = _central(lambda w: float(evaluate(forward, {x: X, W: w, V: Vv})[L]), Wv)
    gV = _central(lambda v: float(evaluate(forward, {x: X, W: Wv, V: v})[L]), Vv)
    assert np.allclose(env[ct[W]], gW, rtol=1e-6, atol=1e-7)
    assert np.allclose(env[ct[V]], gV, rtol=1e-6, atol=1e-7)
    used = {type(op) for op in forward}
    assert {P.MatTVec, P.OuterMean, P.BatchMean, P.Add, P.Penalty} <= used


def test_reverse_from_the_batch_loss_matches_the_derived_gradient():
    """Seeding L (not ℓ) runs BatchMean, Add and the penalty values' reverse rules."""
    net = symnn.mlp([2, 3, 2], activation="tanh", loss="mse",
                    penalties=[symnn.L1(0.01), symnn.L2(0.25)])
    b = forward_program(net)
    forward = list(b.prog.ops)
    params = [v for v in b.prog.inputs.values() if v.kind == "param"]
    ct = reverse(b, b.meta["L"], params, forward)
    d = derive(net)
    rng = np.random.default_rng(1)
    env = {b.prog.inputs["x"]: rng.normal(size=(4, 2)), b.prog.inputs["y"]: rng.normal(
        size=(4, 2))}
    env.update({p: rng.normal(size=p.shape) for p in params})
    mine = evaluate(b.prog.ops, env)
    ref = evaluate(d.program.ops, {d.program.inputs[k.name]: v for k, v in env.items()})
    for p in params:
        assert np.allclose(mine[ct[p]], ref[d.program.outputs["grad:" + p.name]],
                           rtol=1e-12, atol=1e-14)


def test_reverse_rules_refuse_what_they_cannot_express():
    b = P.Builder()
    th = P.Var("th", "param", (2,))
    g = P.Var("g", "total", ())
    u = P.Var("u", "sample", (2,))
    with pytest.raises(DerivationError):
        P.VJP[P.Penalty](b, P.Penalty(P.Var("r", "total", ()), th, "l2", 1), g, {th})
    with pytest.raises(DerivationError):
        P.VJP[P.BatchMean](b, P.BatchMean(P.Var("m", "total", ()), u), g, {u})
    with pytest.raises(DerivationError):
        P.VJP[P.OuterMean](b, P.OuterMean(P.Var("o", "param", (2, 2)), u, u), sp.S.One, {u})
    assert H.is_const(sp.S.One) and not H.is_const(u)


def test_describe_lines():
    d = derive(symnn.mlp([2, 2, 2], activation="tanh", output="softmax",
                         loss="cross_entropy", penalties=[symnn.L2(0.5)]))
    text = [P.describe(op) for op in d.program.ops]
    assert "z1 = W1 x + b1" in text
    assert "lse = LogSumExp(z2)" in text
    assert any(t.startswith("gW1 = Add(") for t in text)
    assert any(t.startswith("t") and "gradient of the L2 penalty 1/2 on W" in t for t in text)
    assert all(len(t) <= 100 for t in text)


def test_a_value_reaching_a_cotangent_twice_is_counted_twice():
    """ℓ = cᵀc: both sides of the Dot hand back the same value c; its cotangent is 2c."""
    b = P.Builder()
    x = P.Var("x", "input", (3,))
    W = P.Var("W", "param", (2, 3))
    c = b.emit(P.Affine(P.Var("c", "sample", (2,)), W, x))
    ell = b.emit(P.Dot(P.Var("ell", "sample", (1,)), c, c))
    L = b.emit(P.BatchMean(P.Var("L", "total", ()), ell))
    forward = list(b.prog.ops)
    ct = reverse(b, ell, [W], forward[:2])
    gW = ct[W]
    rng = np.random.default_rng(3)
    X, Wv = rng.normal(size=(4, 3)), rng.normal(size=(2, 3))
    env = evaluate(b.prog.ops, {x: X, W: Wv})
    fd = _central(lambda w: float(evaluate(forward, {x: X, W: w})[L]), Wv)
    assert np.allclose(env[ct[c]], 2 * env[c])
    assert np.allclose(env[gW], fd, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------
# the pooling ops' reverse and forward rules against central differences (round 5, exact):
# ℓ = q·q for q a pool op applied to affine values of two parameters, so every rule of
# AvgPool, AvgPoolT, MaxGather (max pool and gather of another value) and MaxScatter is run


def _pool_program(kind: str):
    from symnn.ops.conv import Pool
    from symnn.ops.pool import AvgPool, AvgPoolT, MaxGather, MaxScatter

    c, l_in, m = 2, 7, 3  # l_in not a multiple of m: a tail the pool drops
    pool = Pool(c, l_in, m)
    b = P.Builder()
    x = P.Var("x", "input", (3,))
    W = P.Var("W", "param", (c * l_in, 3))
    V = P.Var("V", "param", ((c * pool.l_out if kind in ("avgT", "scatter") else c * l_in), 3))
    u = b.emit(P.Affine(P.Var("u", "sample", (c * l_in,)), W, x))
    w = b.emit(P.Affine(P.Var("w", "sample", V.shape[:1]), V, x))
    if kind == "avg":
        q = b.emit(AvgPool(P.Var("q", "sample", (c * pool.l_out,)), u, pool))
        q2 = b.emit(AvgPool(P.Var("q2", "sample", (c * pool.l_out,)), w, pool))
    elif kind == "avgT":
        q = b.emit(AvgPoolT(P.Var("q", "sample", (c * l_in,)), w, pool))
        q2 = u
    elif kind == "max":
        q = b.emit(MaxGather(P.Var("q", "sample", (c * pool.l_out,)), u, u, pool))
        q2 = b.emit(MaxGather(P.Var("q2", "sample", (c * pool.l_out,)), u, w, pool))
    else:  # scatter
        q = b.emit(MaxScatter(P.Var("q", "sample", (c * l_in,)), u, w, pool))
        q2 = u
    s = b.emit(P.Dot(P.Var("s", "sample", (1,)), q, q2))
    qq = b.emit(P.Dot(P.Var("qq", "sample", (1,)), q, q))
    ell = b.emit(P.Add(P.Var("ell", "sample", (1,)), (s, qq)))
    L = b.emit(P.BatchMean(P.Var("L", "total", ()), ell))
    return b, x, W, V, L


@pytest.mark.parametrize("kind", ["avg", "avgT", "max", "scatter"])
def test_pooling_rules_match_central_differences(kind):
    from symnn.derive.tangent import jvp

    b, x, W, V, L = _pool_program(kind)
    forward = list(b.prog.ops)
    ct = reverse(b, L, [W, V], forward)
    vW, vV = P.Var("vW", "param", W.shape), P.Var("vV", "param", V.shape)
    tan = jvp(b, forward, {W: vW, V: vV})
    rng = np.random.default_rng(11)
    X = rng.normal(size=(4, 3))
    Wv, Vv = rng.normal(size=W.shape), rng.normal(size=V.shape)
    dW, dV = rng.normal(size=W.shape), rng.normal(size=V.shape)
    env = evaluate(b.prog.ops, {x: X, W: Wv, V: Vv, vW: dW, vV: dV})

    def loss(w, v):
        return float(evaluate(forward, {x: X, W: w, V: v})[L])

    # the max pools' argmax does not change within h of these values (no near ties)
    gW = _central(lambda w: loss(w, Vv), Wv)
    gV = _central(lambda v: loss(Wv, v), Vv)
    assert np.allclose(env[ct[W]], gW, rtol=1e-6, atol=1e-7)
    assert np.allclose(env[ct[V]], gV, rtol=1e-6, atol=1e-7)
    h = 1e-6
    directional = (loss(Wv + h * dW, Vv + h * dV) - loss(Wv - h * dW, Vv - h * dV)) / (2 * h)
    assert np.isclose(float(env[tan[L]]), directional, rtol=1e-6, atol=1e-7)
    assert np.isclose(float(env[tan[L]]), np.sum(env[ct[W]] * dW) + np.sum(env[ct[V]] * dV),
                      rtol=1e-10, atol=1e-12)


def test_a_scaled_avgpool_reverse_rule_fails_the_pooling_check(monkeypatch):
    """A cotangent 0.1 % too large (the slip the round-4 sweep planted) is caught."""
    from symnn.ops.pool import AvgPool

    rule = P.VJP[AvgPool]

    def wrong(b, o, g, active):
        return [(v, b.emit(P.Map(b.temp(c.shape), (1.001 * P.sym(c),), (P.Arg(P.sym(c), c),))))
                for v, c in rule(b, o, g, active)]

    monkeypatch.setitem(P.VJP, AvgPool, wrong)
    with pytest.raises(AssertionError):
        test_pooling_rules_match_central_differences("avg")
