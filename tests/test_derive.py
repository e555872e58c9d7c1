"""Exactness of the derivation: expanded gradients and Hessians against finite differences."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
import sympy as sp
from _numeric import central_gradient, lambdify, rel_err, targets

import symnn
from symnn.codegen.reference import evaluate
from symnn.declare import activations as acts
from symnn.derive import derive, hvp_program
from symnn.derive.expanded import param_symbols

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
               "swish"]
# (output activation, loss): every loss, with its natural output
LOSSES = [(None, "mse"), (None, "mae"), (None, "huber"), ("sigmoid", "bce"),
          ("softmax", "cross_entropy"), ("softmax", "kl"), ("softmax", "mse"), ("tanh", "mse")]


def _symbols(net, B=1):
    d = derive(net)
    ps = param_symbols(net)
    theta = [s for p in d.params for s in np.ravel(ps[p.name])]
    xs = [sp.Symbol(f"x{i + 1}", real=True) for i in range(net.n_inputs)] if B == 1 else [
        sp.Symbol(f"x_{s + 1}_{i + 1}", real=True) for s in range(B) for i in range(net.n_inputs)]
    ys = [sp.Symbol(f"y{k + 1}", real=True) for k in range(net.n_outputs)] if B == 1 else [
        sp.Symbol(f"y_{s + 1}_{k + 1}", real=True) for s in range(B)
        for k in range(net.n_outputs)]
    return theta, xs, ys


def expanded_gradient_error(net, seed=0, B=1) -> float:
    """Max relative error of the expanded exact gradient against central differences."""
    rng = np.random.default_rng(seed)
    theta_s, xs, ys = _symbols(net, B)
    grad = net.gradient(batch_size=B)
    L = net.loss_expr(batch_size=B)
    allsyms = theta_s + xs + ys
    f_loss = lambdify(allsyms, L)
    f_grad = lambdify(allsyms, [grad[s] for s in theta_s])
    th = rng.normal(size=len(theta_s)) * 0.8
    X = rng.normal(size=len(xs))
    Y = targets(rng, net.loss.name, B, net.n_outputs).ravel()
    # keep away from kinks: ReLU/leaky at 0, MAE/Huber at |r| = 0 or 1 (measure-zero events)
    g = np.asarray(f_grad(*th, *X, *Y), float)
    fd = central_gradient(lambda t: float(f_loss(*t, *X, *Y)), th)
    return rel_err(g, fd)


@pytest.mark.parametrize("act,out_loss", list(itertools.product(ACTIVATIONS, LOSSES)))
def test_expanded_gradient_matches_finite_differences(act, out_loss):
    out, loss = out_loss
    net = symnn.mlp([3, 4, 2], activation=act, output=out, loss=loss)
    assert expanded_gradient_error(net) < 1e-7


def test_expanded_gradient_over_a_symbolic_batch():
    net = symnn.mlp([2, 3, 2], activation="tanh", output="softmax", loss="cross_entropy",
                    penalties=[symnn.L2(0.01)])
    assert expanded_gradient_error(net, B=3) < 1e-7


def _hessian_errors(net, seed=1):
    rng = np.random.default_rng(seed)
    theta_s, xs, ys = _symbols(net)
    H = net.hessian()
    grad = net.gradient()
    allsyms = theta_s + xs + ys
    f_H = lambdify(allsyms, H)
    f_g = lambdify(allsyms, [grad[s] for s in theta_s])
    th = rng.normal(size=len(theta_s)) * 0.8
    X = rng.normal(size=len(xs))
    Y = targets(rng, net.loss.name, 1, net.n_outputs).ravel()
    Hn = np.asarray(f_H(*th, *X, *Y), float)
    cols = []
    for i in range(len(th)):
        e = np.zeros_like(th)
        e[i] = 1e-5
        cols.append((np.asarray(f_g(*(th + e), *X, *Y), float)
                     - np.asarray(f_g(*(th - e), *X, *Y), float)) / 2e-5)
    fd = np.array(cols).T
    return rel_err(Hn, Hn.T, 1e-12), rel_err(Hn, fd)


@pytest.mark.parametrize("act,out_loss", [
    ("sigmoid", (None, "mse")), ("tanh", ("softmax", "cross_entropy")),
    ("softplus", ("sigmoid", "bce")), ("gelu", ("softmax", "kl")), ("swish", (None, "huber")),
    ("elu", ("tanh", "mse")), ("leaky_relu", ("softmax", "mse")), ("relu", (None, "mae")),
])
def test_expanded_hessian_symmetric_and_matches_finite_differences(act, out_loss):
    out, loss = out_loss
    net = symnn.mlp([2, 3, 2], activation=act, output=out, loss=loss)
    sym_err, fd_err = _hessian_errors(net)
    assert sym_err < 1e-12
    assert fd_err < 1e-6


def test_a_wrong_local_rule_fails_the_check(monkeypatch):
    net_ok = symnn.mlp([3, 4, 2], activation="sigmoid", loss="mse")
    assert expanded_gradient_error(net_ok) < 1e-7

    def wrong_fdiff(self, argindex=1):  # σ' written as σ(1 + σ): a plausible slip
        s = acts.sigmoid(self.args[0])
        return s * (1 + s)

    monkeypatch.setattr(acts.sigmoid, "fdiff", wrong_fdiff)
    net_bad = symnn.mlp([3, 4, 2], activation="sigmoid", loss="mse")
    assert expanded_gradient_error(net_bad) > 1e-2


def test_a_wrong_reverse_rule_fails_the_check(monkeypatch):
    P = importlib.import_module("symnn.ops")

    def wrong_softmax_vjp(b, op, g, active):  # forgets the −gᵀp term
        out = b.temp(op.z.shape)
        ps, gs = P.sym(op.out), P.sym(g)
        return [(op.z, b.emit(P.Map(out, (ps * gs,), (P.Arg(ps, op.out), P.Arg(gs, g)))))]

    monkeypatch.setitem(P.VJP, P.Softmax, wrong_softmax_vjp)
    net = symnn.mlp([3, 4, 3], activation="tanh", output="softmax", loss="mse")
    assert expanded_gradient_error(net) > 1e-3


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_each_rule_equals_the_derivative_of_its_definition(name):
    z = sp.Symbol("z", real=True)
    f = acts.ACTIVATIONS[name].apply(z)
    cls = type(f)
    if name == "identity" or not hasattr(cls, "definition"):
        defn = f.rewrite(sp.exp) if name != "identity" else z
    elif cls.nargs == {2}:
        defn = cls.definition(z, f.args[1])
    else:
        defn = cls.definition(z)
    rule = sp.diff(f, z)
    truth = sp.diff(defn, z)
    pts = [-3.1, -1.2, -0.4, 0.3, 0.9, 2.7]
    fr, ft = lambdify([z], rule), lambdify([z], truth)
    for p in pts:
        assert abs(float(fr(p)) - float(ft(p))) < 1e-12 * max(1, abs(float(ft(p))))
    # second derivatives too (SymPy differentiates the rule again)
    fr2, ft2 = lambdify([z], sp.diff(rule, z)), lambdify([z], sp.diff(truth, z))
    for p in pts:
        assert abs(float(fr2(p)) - float(ft2(p))) < 1e-10 * max(1, abs(float(ft2(p))))


def test_custom_model_gradient_hessian():
    x, a, b, c = sp.symbols("x a b c")
    m = symnn.Model(a * sp.exp(-b * x) + c, inputs=[x], params=[a, b, c], loss="mse")
    g = m.gradient()
    H = m.hessian()
    y = sp.Symbol("y1", real=True)
    L = m.loss_expr()
    # here the whole model is one small expression, so differentiating it is a valid witness
    for p in (a, b, c):
        assert sp.simplify(g[p] - sp.diff(L, p)) == 0
    for i, p in enumerate((a, b, c)):
        for j, q in enumerate((a, b, c)):
            assert sp.simplify(H[i, j] - sp.diff(L, p, q)) == 0
    assert y in L.free_symbols


def test_custom_vector_model_with_softmax_output():
    x1, x2, u, v, w = sp.symbols("x1 x2 u v w")
    m = symnn.Model([u * x1 + v * x2, w * x1 * x2], inputs=[x1, x2], params=[u, v, w],
                    loss="cross_entropy", output="softmax")
    rng = np.random.default_rng(3)
    d = derive(m)
    theta = rng.normal(size=3)
    X = rng.normal(size=(4, 2))
    Y = targets(rng, "cross_entropy", 4, 2)
    env = {d.x: X, d.y: Y, d.params[0]: theta}
    out = evaluate(d.program.ops, env)
    g = out[d.program.outputs["grad:theta"]]

    def loss(t):
        return float(evaluate(d.program.ops, {d.x: X, d.y: Y, d.params[0]: t})
                     [d.program.outputs["loss"]])

    assert rel_err(g, central_gradient(loss, theta)) < 1e-7


def test_jacobian_matches_finite_differences():
    net = symnn.mlp([3, 4, 2], activation="tanh", output="softmax", loss="cross_entropy")
    J = net.jacobian()
    theta_s, xs, ys = _symbols(net)
    rng = np.random.default_rng(5)
    th = rng.normal(size=len(theta_s))
    X = rng.normal(size=3)
    fJ = lambdify(theta_s + xs, J)
    d = derive(net)
    ps = param_symbols(net)
    env_p = {}
    off = 0
    for p in d.params:
        env_p[p] = th[off:off + p.size].reshape(p.shape)
        off += p.size

    def pred(xv, k):
        out = evaluate(d.forward_ops, {d.x: xv[None, :], d.y: np.full((1, 2), 0.5), **env_p})
        return float(out[d.program.outputs["prediction"]][0, k])

    Jn = np.asarray(fJ(*th, *X), float)
    fd = np.array([central_gradient(lambda xv, k=k: pred(xv, k), X) for k in range(2)])
    assert J.shape == (2, 3)
    assert rel_err(Jn, fd) < 1e-7
    del ps


def test_reference_hvp_is_symmetric_bilinear():
    """vᵀ(H w) = wᵀ(H v) for the derived Hessian-vector product (a property of exactness)."""
    net = symnn.mlp([3, 5, 4, 3], activation="gelu", output="softmax", loss="cross_entropy")
    d = derive(net)
    ops, tang, outs = hvp_program(d)
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 3))
    Y = targets(rng, "cross_entropy", 6, 3)
    base = {d.x: X, d.y: Y}
    base.update({p: rng.normal(size=p.shape) for p in d.params})

    def hv(vec):
        env = dict(base)
        env.update({tang[p]: vec[p] for p in d.params})
        out = evaluate(d.program.ops + ops, env)
        return {p: out[outs[p.name]] for p in d.params}

    v = {p: rng.normal(size=p.shape) for p in d.params}
    w = {p: rng.normal(size=p.shape) for p in d.params}
    hv_, hw_ = hv(v), hv(w)
    a = sum(np.sum(w[p] * hv_[p]) for p in d.params)
    b = sum(np.sum(v[p] * hw_[p]) for p in d.params)
    assert abs(a - b) < 1e-10 * max(1.0, abs(a))


def test_derivation_is_linear_in_depth():
    """Reverse mode: the program grows by a constant number of ops per layer."""
    counts = []
    for depth in (2, 4, 8, 16):
        net = symnn.mlp([8] + [8] * depth + [2], activation="tanh", output="softmax",
                        loss="cross_entropy")
        counts.append(len(derive(net).program.ops))
    steps = np.diff(counts) / np.diff([2, 4, 8, 16])
    assert np.all(steps == steps[0])
