"""A GRU looped over time (``GRU(..., unroll=False)``, :mod:`symnn.ops.scan_gru`): each op's
reverse and forward rule against central differences; the two directions of ``GateRec``
adjoint; the looped program against the unrolled one of the same declaration (NumPy
reference, every kernel, to 1e-12); compiled = reference = PyTorch ``nn.GRU`` through the
property harness; truncated BPTT; a deliberately wrong rule caught; the declaration's
options and the analyses."""

from __future__ import annotations

import numpy as np
import pytest
from _exactness import check_case, rel_err
from strategies import NetCase

import symnn
from symnn import ops as P
from symnn.codegen.model import ReferenceModel
from symnn.codegen.reference import evaluate
from symnn.derive import derive
from symnn.derive.reverse import reverse
from symnn.derive.tangent import jvp
from symnn.errors import DeclarationError

T, D = 4, 2


def _v(name, kind="input"):
    return P.Var(name, kind, (T * D,))


def _w(name):
    return P.Var(name, "param", (D, D))


def _op_cases():
    ar, az, an, e, c, br, bz, bn = (_v(n) for n in ("ar", "az", "an", "e", "c", "br", "bz",
                                                    "bn"))
    Wr, Wz, Wn = _w("Wr"), _w("Wz"), _w("Wn")
    hr, hz, hn = (P.Var(n, "param", (D,)) for n in ("hr", "hz", "hn"))
    rec = (e, c, br, bz, bn, Wr, Wz, Wn)
    return [pytest.param(*x, id=x[0]) for x in [
        ("gru", lambda o: P.GRUSeq(o, ar, az, an, Wr, Wz, Wn, hr, hz, hn, T),
         (ar, az, an, Wr, Wz, Wn, hr, hz, hn)),
        ("gru-cut", lambda o: P.GRUSeq(o, ar, az, an, Wr, Wz, Wn, hr, hz, hn, T, 2),
         (ar, az, an, Wr, Wz, Wn, hr, hz, hn)),
        ("gaterec-fwd", lambda o: P.GateRec(o, *rec, T), rec),
        ("gaterec-rev-cut", lambda o: P.GateRec(o, *rec, T, True, 3), rec),
        ("gaterec-fwd-cut", lambda o: P.GateRec(o, *rec, T, False, 2), rec),
    ]]


@pytest.mark.parametrize("label,make,ins", _op_cases())
def test_each_gru_op_reverse_and_forward_rule_matches_central_differences(label, make, ins):
    """Reverse rule (per-sample cotangents ×B, parameter ones batch means) and forward rule
    against central differences of the NumPy evaluation.  GRUSeq's cut is a stop-gradient:
    its reverse rule is checked without one (the cut case: the forward rule only)."""
    rng = np.random.default_rng(len(label))
    B = 2
    b = P.Builder()
    out = b.emit(make(_v("o", "sample")))
    r = _v("r")
    d = b.emit(P.Dot(P.Var("d", "sample", (1,)), out, r))
    L = b.emit(P.BatchMean(P.Var("L", "total", ()), d))
    forward = list(b.prog.ops)
    env = {v: (rng.normal(size=v.shape) if v.kind == "param" else
               rng.normal(size=(B, v.size))) for v in (*ins, r)}
    dirs = {v: rng.normal(size=np.shape(env[v])) for v in ins}
    dots = {v: P.Var(v.name + "_d", v.kind if v.kind == "param" else "sample", v.shape)
            for v in ins}
    tan = jvp(b, forward, dots)
    h = 1e-6
    if label != "gru-cut":
        ct = reverse(b, L, list(ins), forward)

        def loss(env_):
            return float(np.sum(evaluate(forward, env_)[L]))

        got = evaluate(list(b.prog.ops), {**env, **{dots[v]: dirs[v] for v in ins}})
        for v in ins:
            fd = np.zeros(np.shape(env[v]))
            for i in range(fd.size):
                ei = np.zeros_like(fd)
                ei.flat[i] = h
                fd.flat[i] = (loss({**env, v: env[v] + ei}) - loss({**env, v: env[v] - ei})) / (2 * h)
            want = fd if v.kind == "param" else fd * B
            assert np.allclose(np.reshape(got[ct[v]], fd.shape), want, atol=1e-7), (label, v)
    got = evaluate(list(b.prog.ops), {**env, **{dots[v]: dirs[v] for v in ins}})
    plus = evaluate(forward, {**env, **{v: env[v] + h * dirs[v] for v in ins}})[out]
    minus = evaluate(forward, {**env, **{v: env[v] - h * dirs[v] for v in ins}})[out]
    assert np.allclose(got[tan[out]], (plus - minus) / (2 * h), atol=1e-7), label


@pytest.mark.parametrize("cut", [0, 3])
def test_gaterec_directions_are_adjoints(cut):
    """⟨g, Fwd(e)⟩ = ⟨Rev(g), e⟩ with the same coefficients (the family's closure)."""
    rng = np.random.default_rng(cut)
    names = ("e", "c", "br", "bz", "bn")
    vs = [_v(n) for n in names] + [_w(n) for n in ("Wr", "Wz", "Wn")]
    env = {v: rng.normal(size=v.shape if v.kind == "param" else (3, v.size)) for v in vs}
    g = _v("g")
    env[g] = rng.normal(size=(3, g.size))
    fwd = P.GateRec(_v("y", "sample"), *vs, T, False, cut)
    rev = P.GateRec(_v("p", "sample"), g, *vs[1:], T, True, cut)
    y = P.NUMPY[P.GateRec](fwd, env, 3)
    p = P.NUMPY[P.GateRec](rev, env, 3)
    assert np.isclose(np.sum(env[g] * y), np.sum(p * env[vs[0]]))


def _net(unroll, T_=4, ret=False, trunc=None, two=False):
    layers = [symnn.GRU(2, 3, length=T_, unroll=unroll, return_sequences=ret or two,
                        truncate=trunc)]
    if two:
        layers.append(symnn.GRU(3, 2, unroll=unroll, return_sequences=ret))
    n = (2 if two else 3) * (T_ if ret else 1)
    layers += ([symnn.Flatten()] if ret else []) + [symnn.Dense(n, 2)]
    return symnn.Network(layers, loss="mse", name=f"gruscan{int(bool(unroll))}")


@pytest.mark.parametrize("T_,ret,trunc,two", [(4, False, None, False), (5, True, 2, False),
                                              (3, False, None, True)])
def test_looped_gru_equals_unrolled_for_every_kernel(T_, ret, trunc, two):
    """Loss, gradient, HVP, Gauss-Newton product (truncated J on both sides), Hessian,
    Jacobian and predictions of the two programs of one declaration (NumPy reference)."""
    mu, ml = ReferenceModel(_net(None, T_, ret, trunc, two)), ReferenceModel(
        _net(False, T_, ret, trunc, two))
    rng = np.random.default_rng(T_)
    th = mu.init(0) + 0.3 * rng.normal(size=mu.n_params)
    X, Y = rng.normal(size=(3, T_, 2)), rng.normal(size=(3, 2))
    v = rng.normal(size=th.size)
    Lu, gu = mu.loss_and_grad(th, X, Y)
    Ll, gl = ml.loss_and_grad(th, X, Y)
    got = {"loss": (Ll, Lu), "grad": (gl, gu),
           "hvp": (ml.hvp(th, v, X, Y), mu.hvp(th, v, X, Y)),
           "gnvp": (ml.gnvp(th, v, X, Y), mu.gnvp(th, v, X, Y)),
           "hessian": (ml.hessian(th, X, Y), mu.hessian(th, X, Y)),
           "jacobian": (ml.jacobian(th, X), mu.jacobian(th, X)),
           "predict": (ml.predict(th, X), mu.predict(th, X))}
    for k, (a, b) in got.items():
        assert rel_err(a, b) < 1e-12, (k, rel_err(a, b))
    assert any(isinstance(o, P.GateRec) and o.rev for o in ml.derived.program.ops)


def test_looped_gru_kernels_agree_with_reference_torch_and_finite_differences():
    """The property harness: compiled = reference = torch.nn.GRU for every kernel."""
    case = NetCase((("grul", 2, 2, True, 3, None), ("flatten",), ("dense", 6, 2, True),
                    "softmax"), "cross_entropy", (("l2", 0.1),))
    res = check_case(case, 3)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, res.failures[:3]
    assert ("hessian", "compiled~reference") in res.errors


def test_truncated_looped_gru_against_torch_detach():
    """truncate=2 over T = 7: the gradient equals torch.nn.GRU's with .detach() and differs
    from the untruncated one."""
    torch = pytest.importorskip("torch")
    from _torch_ref import TorchCase
    from strategies import case_data
    from torch.func import grad

    item = ("grul", 2, 3, False, 7, 2)
    case = NetCase((item, ("dense", 3, 1, True)), "mse")
    net = case.build()
    ref = ReferenceModel(net)
    X, Y, th, v, V = case_data(net, 4, batch=3)
    g = ref.loss_and_grad(th, X, Y)[1]
    tc = TorchCase(case, net)
    gt = grad(lambda t: tc.loss(t, torch.tensor(X), torch.tensor(Y)))(torch.tensor(th))
    assert rel_err(g, gt.numpy()) < 1e-9
    full = ReferenceModel(NetCase((item[:-1] + (None,), ("dense", 3, 1, True)), "mse").build())
    assert rel_err(full.loss_and_grad(th, X, Y)[1], g) > 1e-8  # the truncation is real


def test_a_deliberately_wrong_gru_rule_fails_the_gradient_check():
    """BPTT's coefficients of the update gate and the reset gate swapped: gradcheck catches
    it."""
    saved = P.VJP[P.GRUSeq]

    def wrong(b, o, g, active):
        out = saved(b, o, g, active)
        for i, op in enumerate(b.prog.ops):
            if isinstance(op, P.GateRec) and op.rev:
                b.prog.ops[i] = P.GateRec(op.out, op.e, op.br, op.c, op.bz, op.bn, op.Wr,
                                          op.Wz, op.Wn, op.T, op.rev, op.cut)
        return out

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 1))

    def report(name):
        net = symnn.Network([symnn.GRU(2, 2, length=4, unroll=False), symnn.Dense(2, 1)],
                            loss="mse", name=name)
        m = ReferenceModel(net)
        return symnn.gradcheck(m, m.init(0) + 0.5, X, Y, seed=0)

    assert report("rightgruscan").passed
    P.VJP[P.GRUSeq] = wrong
    try:
        assert not report("wronggruscan").passed
    finally:
        P.VJP[P.GRUSeq] = saved


def test_looped_gru_program_does_not_grow_with_T():
    sizes = []
    for T_ in (5, 40):
        d = derive(symnn.Network([symnn.GRU(2, 3, length=T_, unroll=False),
                                  symnn.Dense(3, 1)], loss="mse"))
        sizes.append(len(d.program.ops))
        assert any(isinstance(o, P.GRUSeq) for o in d.program.ops)
    assert sizes[0] == sizes[1]


def test_gru_unroll_option_and_plain_data():
    from symnn.declare.recurrent import layer_from_data

    assert symnn.GRU(2, 3, length=100).looped  # the default: looped above UNROLL_UP_TO
    assert not symnn.GRU(2, 3, length=16).looped
    assert not symnn.GRU(2, 3, length=100, unroll=True).looped
    assert symnn.GRU(2, 3, length=3, unroll=False).looped
    assert symnn.GRU(2, 3, length=10_000).length == 10_000
    with pytest.raises(DeclarationError, match="MAX_UNROLLED_STEPS"):
        symnn.GRU(2, 3, length=600, unroll=True)
    with pytest.raises(DeclarationError, match="unroll must be"):
        symnn.GRU(2, 3, unroll="no")
    layer = symnn.GRU(2, 3, length=5, unroll=False)
    assert repr(layer) == "GRU(2, 3, length=5, unroll=False)"
    assert layer.to_data() == {"gru": [2, 3], "length": 5, "unroll": False}
    assert layer_from_data(layer.to_data())[0] == layer
    assert "expected true or false" in layer_from_data({"gru": [2, 3], "unroll": 0})[1]


def test_analyses_of_a_looped_gru_equal_the_unrolled_ones():
    """time_gradient_flow, recurrent_jacobians and K-FAC/diag GGN read a looped GRU through
    its unrolled twin: the same numbers as the declaration written unrolled."""
    from symnn.analysis import (diag_ggn, kfac_factors, recurrent_jacobians,
                                time_gradient_flow)

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(2, 5, 2)), rng.normal(size=(2, 1))
    out = []
    for unroll in (None, False):
        net = symnn.Network([symnn.GRU(2, 3, length=5, unroll=unroll, truncate=3),
                             symnn.Dense(3, 1)], loss="mse")
        ref = ReferenceModel(net)
        th = ref.init(2) + 0.1
        f = kfac_factors(ref, th, X, y)
        out.append([time_gradient_flow(ref, th, X, y).norms,
                    recurrent_jacobians(ref, th, X[0])[0], diag_ggn(ref, th, X, y)]
                   + [f[k].kron() for k in sorted(f)])
    assert len(out[0]) == len(out[1]) > 3
    for a, b in zip(*out):
        assert rel_err(a, b) < 1e-12


def test_looped_gru_equations_print_the_recurrence_once():
    net = symnn.Network([symnn.GRU(2, 3, length=40, unroll=False), symnn.Dense(3, 1)],
                        loss="mse")
    text = str(net.equations())
    assert "(1 − uₜ) ⊙ nₜ" in text and "Backpropagation through time" in text
    assert text.count("\n") < 120  # not one equation per step
