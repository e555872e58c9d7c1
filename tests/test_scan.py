"""An RNN looped over time (``RNN(..., unroll=False)``, :mod:`symnn.ops.scan`): each
sequence op's reverse and forward rule against central differences; the looped program
against the unrolled one of the same declaration (compiled and NumPy reference, every
kernel, to 1e-12); PyTorch ``nn.RNN`` and finite differences through the property
harness; truncated BPTT; a deliberately wrong rule caught; the program not growing with T;
the declaration's options."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from _exactness import check_case, rel_err
from strategies import NetCase, case_data

import symnn
from symnn import ops as P
from symnn.codegen.model import ReferenceModel
from symnn.codegen.reference import evaluate
from symnn.derive import derive
from symnn.derive.reverse import reverse
from symnn.derive.tangent import jvp
from symnn.errors import DeclarationError

T, D = 4, 2
_Z = sp.Symbol("z", real=True)


def _v(name, kind, n):
    return P.Var(name, kind, (n,))


def _w(name):
    return P.Var(name, "param", (D, D))


def _op_cases():
    x, y, s, e = (_v(n, "input", T * D) for n in "xyse")
    W, V, bb = _w("W"), _w("V"), P.Var("bb", "param", (D,))
    return [pytest.param(*c, id=c[0]) for c in [
        ("affine", lambda o: P.SeqAffine(o, W, x, bb, T), (W, x, bb)),
        ("affineT", lambda o: P.SeqAffine(o, W, x, None, T, True), (W, x)),
        ("outer", lambda o: P.SeqOuter(o, x, y, T), (x, y)),
        ("sum", lambda o: P.SeqSum(o, x, T), (x,)),
        ("bcast", lambda o: P.SeqBcast(o, bb, T), (bb,)),
        ("shift+", lambda o: P.SeqShift(o, x, T, 1), (x,)),
        ("shift-cut", lambda o: P.SeqShift(o, x, T, -1, 2), (x,)),
        ("rnn-tanh", lambda o: P.RNNSeq(o, x, W, T, sp.tanh(_Z), _Z), (x, W)),
        ("rnn-softplus", lambda o: P.RNNSeq(o, x, W, T, sp.log(1 + sp.exp(_Z)), _Z), (x, W)),
        ("linrec", lambda o: P.LinRec(o, s, x, W, e, T), (s, x, W, e)),
        ("linrec-rev-T-cut", lambda o: P.LinRec(o, s, None, V, e, T, True, True, 3),
         (s, V, e)),
        ("linrec-cut", lambda o: P.LinRec(o, s, x, W, None, T, False, False, 2), (s, x, W)),
    ]]


def _out_size(op_factory):
    probe = op_factory(_v("o", "sample", 1))
    return probe.out.size if probe.out.size != 1 else None


@pytest.mark.parametrize("label,make,ins", _op_cases())
def test_each_scan_op_reverse_and_forward_rule_matches_central_differences(label, make, ins):
    rng = np.random.default_rng(len(label))
    B = 2
    b = P.Builder()
    probe = make(_v("o", "sample", T * D))
    if isinstance(probe, (P.SeqOuter, P.SeqSum)):
        shape, kind = ((D, D) if isinstance(probe, P.SeqOuter) else (D,)), "param"
        out = b.emit(make(P.Var("o", kind, shape)))
        r = P.Var("r", "param", shape)
        d = b.emit(P.Penalty(P.Var("d", "total", ()), out, "l2", 1, False, None))
        L = d
        seed = None
    else:
        out = b.emit(probe)
        r = _v("r", "input", out.size)
        d = b.emit(P.Dot(_v("d", "sample", 1), out, r))
        L = b.emit(P.BatchMean(P.Var("L", "total", ()), d))
        seed = L
    forward = list(b.prog.ops)
    env = {v: (rng.normal(size=v.shape) if v.kind == "param" else
               rng.normal(size=(B, v.size))) for v in (*ins, r)}
    dirs = {v: rng.normal(size=np.shape(env[v])) for v in ins}
    dots = {v: P.Var(v.name + "_d", v.kind if v.kind == "param" else "sample", v.shape)
            for v in ins}
    tan = jvp(b, forward, dots)

    def loss(env_):
        return float(np.sum(evaluate(forward, env_)[L]))

    h = 1e-6
    if seed is not None:  # reverse: per-sample cotangents, parameter ones batch means
        ct = reverse(b, seed if not isinstance(L, P.Var) or L.kind != "total" else d,
                     list(ins), forward)
        got = evaluate(list(b.prog.ops), {**env, **{dots[v]: dirs[v] for v in ins}})
        for v in ins:
            fd = np.zeros(np.shape(env[v]))
            for i in range(fd.size):
                ei = np.zeros_like(fd)
                ei.flat[i] = h
                fd.flat[i] = (loss({**env, v: env[v] + ei}) - loss({**env, v: env[v] - ei})) / (2 * h)
            want = fd if v.kind == "param" else fd * B
            assert np.allclose(np.reshape(got[ct[v]], fd.shape), want, atol=1e-7), (label, v)
    else:
        got = evaluate(list(b.prog.ops), {**env, **{dots[v]: dirs[v] for v in ins}})
    plus = evaluate(forward, {**env, **{v: env[v] + h * dirs[v] for v in ins}})[out]
    minus = evaluate(forward, {**env, **{v: env[v] - h * dirs[v] for v in ins}})[out]
    assert np.allclose(got[tan[out]], (plus - minus) / (2 * h), atol=1e-7), label


def test_param_output_ops_reverse_rules_are_adjoints():
    """SeqOuter and SeqSum (parameter-shaped outputs): ⟨G, M(u, v)⟩ against their reverse
    rules, the batch mean's 1/B included."""
    rng = np.random.default_rng(3)
    B = 3
    x, y = _v("x", "input", T * D), _v("y", "input", T * D)
    G, g = P.Var("G", "param", (D, D)), P.Var("g", "param", (D,))
    b = P.Builder()
    M = b.emit(P.SeqOuter(P.Var("M", "param", (D, D)), x, y, T))
    S = b.emit(P.SeqSum(P.Var("S", "param", (D,)), x, T))
    ux, uy = P.VJP[P.SeqOuter](b, b.prog.ops[0], G, {x, y})
    (sx,) = P.VJP[P.SeqSum](b, b.prog.ops[1], g, {x})
    env = {x: rng.normal(size=(B, T * D)), y: rng.normal(size=(B, T * D)),
           G: rng.normal(size=(D, D)), g: rng.normal(size=D)}
    r = evaluate(list(b.prog.ops), env)
    assert np.isclose(np.sum(env[G] * r[M]), np.sum(env[x] * r[ux[1]]) / B)
    assert np.isclose(np.sum(env[G] * r[M]), np.sum(env[y] * r[uy[1]]) / B)
    assert np.isclose(np.sum(env[g] * r[S]), np.sum(env[x] * r[sx[1]]) / B)


# ----------------------------------------------------------------------------------------
# networks: the looped program = the unrolled one (same declaration), every kernel


def _pair(T_, ret=False, act="tanh", trunc=None, two=False):
    def net(unroll):
        layers = [symnn.RNN(2, 3, activation=act, length=T_, unroll=unroll,
                            return_sequences=ret or two, truncate=trunc)]
        if two:
            layers.append(symnn.RNN(3, 2, activation="tanh", unroll=unroll,
                                    return_sequences=ret))
        n = (2 if two else 3) * (T_ if ret else 1)
        layers += ([symnn.Flatten()] if ret else []) + [symnn.Dense(n, 2)]
        return symnn.Network(layers, loss="mse", name=f"scan{int(bool(unroll))}")
    return net(True), net(False)


def _all(m, th, X, Y, v):
    L, g = m.loss_and_grad(th, X, Y)
    return {"loss": L, "grad": g, "hvp": m.hvp(th, v, X, Y), "gnvp": m.gnvp(th, v, X, Y),
            "hessian": m.hessian(th, X, Y), "jacobian": m.jacobian(th, X),
            "predict": m.predict(th, X)}


@pytest.mark.parametrize("T_,ret,act,trunc,two", [
    (5, False, "relu", None, True),
    (6, True, "sigmoid", 2, False),
    (4, False, "softplus", 3, False),
])
def test_looped_program_equals_unrolled_for_every_kernel(T_, ret, act, trunc, two):
    """The two programs of one declaration, both interpreted by the NumPy reference (the
    compiled kernels of each are checked against their reference below and in
    test_recurrent.py)."""
    unrolled, looped = _pair(T_, ret, act, trunc, two)
    mu, ml = ReferenceModel(unrolled), ReferenceModel(looped)
    rng = np.random.default_rng(T_)
    th = mu.init(0) + 0.3 * rng.normal(size=mu.n_params)
    X, Y = rng.normal(size=(3, T_, 2)), rng.normal(size=(3, 2))
    v = rng.normal(size=th.size)
    ra, rb = _all(mu, th, X, Y, v), _all(ml, th, X, Y, v)
    for k in ra:
        assert rel_err(rb[k], ra[k]) < 1e-12, (k, rel_err(rb[k], ra[k]))


def test_looped_program_does_not_grow_with_T():
    sizes = []
    for T_ in (20, 300):
        d = derive(symnn.Network([symnn.RNN(2, 3, length=T_), symnn.Dense(3, 1)],
                                 loss="mse"))
        sizes.append(len(d.program.ops))
        assert any(isinstance(o, P.RNNSeq) for o in d.program.ops)
        assert any(isinstance(o, P.LinRec) for o in d.program.ops)  # BPTT is one op
    assert sizes[0] == sizes[1]


def test_looped_kernels_agree_with_reference_torch_and_finite_differences():
    """The property harness: compiled = reference = torch.nn.RNN for every kernel."""
    case = NetCase((("rnnl", 2, 2, "tanh", True, 3, None), ("flatten",),
                    ("dense", 6, 2, True), "softmax"), "cross_entropy", (("l2", 0.1),))
    res = check_case(case, 3)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, res.failures[:3]
    assert ("hessian", "compiled~reference") in res.errors


def test_long_truncated_sequence_against_torch_reference_and_differences():
    """T = 600 (beyond the unrolled form's cap), truncated BPTT every 7 steps: the compiled
    gradient against torch.nn.RNN with .detach() and the reference; the HVP (the exact
    derivative of the truncated gradient) against differences of gradients; the other
    kernels against the reference."""
    item = ("rnnl", 1, 2, "sigmoid", False, 600, 7)
    case = NetCase((item, ("dense", 2, 1, True)), "mse")
    net = case.build()
    m, ref = net.compile(), ReferenceModel(net)
    X, Y, th, v, V = case_data(net, 4, batch=3)
    _, g = m.loss_and_grad(th, X, Y)
    assert rel_err(g, ref.loss_and_grad(th, X, Y)[1]) < 1e-10
    for k in ("hvp", "gnvp"):
        assert rel_err(getattr(m, k)(th, v, X, Y), getattr(ref, k)(th, v, X, Y)) < 1e-10, k
    assert rel_err(m.jacobian(th, X), ref.jacobian(th, X)) < 1e-10
    h = 1e-6
    fdv = (m.loss_and_grad(th + h * v, X, Y)[1] - m.loss_and_grad(th - h * v, X, Y)[1]) / (2 * h)
    assert rel_err(m.hvp(th, v, X, Y), fdv) < 1e-6
    torch = pytest.importorskip("torch")
    from _torch_ref import TorchCase
    from torch.func import grad

    tc = TorchCase(case, net)
    gt = grad(lambda t: tc.loss(t, torch.tensor(X), torch.tensor(Y)))(torch.tensor(th))
    assert rel_err(g, gt.numpy()) < 1e-9
    full = ReferenceModel(NetCase((item[:-1] + (None,), ("dense", 2, 1, True)), "mse").build())
    assert rel_err(full.loss_and_grad(th, X, Y)[1], g) > 1e-8  # the truncation is real


def test_a_deliberately_wrong_linrec_rule_fails_the_gradient_check():
    """BPTT run forward in time instead of backward: gradcheck catches it."""
    saved = P.VJP[P.RNNSeq]

    def wrong(b, o, g, active):
        out = saved(b, o, g, active)
        for op in b.prog.ops[::-1]:
            if isinstance(op, P.LinRec):
                b.prog.ops[b.prog.ops.index(op)] = P.LinRec(
                    op.out, op.s, op.u, op.W, op.e, op.T, False, op.trans, op.cut)
                break
        return out

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 1))

    def report(name):
        net = symnn.Network([symnn.RNN(2, 2, length=4, unroll=False), symnn.Dense(2, 1)],
                            loss="mse", name=name)
        m = ReferenceModel(net)  # the NumPy reference: the rule, not a kernel, is wrong
        return symnn.gradcheck(m, m.init(0), X, Y, seed=0)

    assert report("rightscan").passed
    P.VJP[P.RNNSeq] = wrong
    try:
        assert not report("wrongscan").passed
    finally:
        P.VJP[P.RNNSeq] = saved


# ----------------------------------------------------------------------------------------
# the declaration


def test_unroll_option_threshold_and_caps():
    assert not symnn.RNN(2, 3, length=16).looped
    assert symnn.RNN(2, 3, length=17).looped
    assert symnn.RNN(2, 3, length=3, unroll=False).looped
    assert not symnn.RNN(2, 3, length=100, unroll=True).looped
    assert symnn.RNN(2, 3, length=100_000).length == 100_000
    with pytest.raises(DeclarationError, match="unroll=False"):
        symnn.RNN(2, 3, length=600, unroll=True)
    with pytest.raises(DeclarationError, match="MAX_LOOPED_STEPS"):
        symnn.RNN(2, 3, length=10 ** 7)
    with pytest.raises(DeclarationError, match="unroll must be"):
        symnn.RNN(2, 3, unroll=1)
    assert repr(symnn.RNN(2, 3, unroll=False)) == "RNN(2, 3, unroll=False)"


def test_unroll_round_trips_through_plain_data():
    from symnn.declare.recurrent import layer_from_data

    layer = symnn.RNN(2, 3, length=5, unroll=False)
    assert layer.to_data() == {"rnn": [2, 3], "length": 5, "unroll": False}
    assert layer_from_data(layer.to_data())[0] == layer
    assert "expected true or false" in layer_from_data({"rnn": [2, 3], "unroll": 1})[1]
    assert layer_from_data({"gru": [2, 3], "unroll": False})[0] == symnn.GRU(2, 3, unroll=False)


def test_looped_equations_print_the_recurrence_once():
    net = symnn.Network([symnn.RNN(2, 3, length=40), symnn.Dense(3, 1)], loss="mse")
    text = str(net.equations())
    assert "σ" in text or "tanh" in text
    assert text.count("\n") < 200  # not one equation per step


@pytest.mark.parametrize("act,ret,trunc", [("tanh", False, None), ("identity", True, 5),
                                           ("relu", True, 3)])
def test_time_gradient_flow_and_jacobians_of_a_looped_rnn_equal_the_unrolled(act, ret, trunc):
    from symnn.analysis import recurrent_jacobians, time_gradient_flow

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(2, 12, 1)), np.ones((2, 2))
    out = []
    for unroll in (True, False):
        tail = [symnn.Flatten(), symnn.Dense(36, 2)] if ret else [symnn.Dense(3, 2)]
        net = symnn.Network([symnn.RNN(1, 3, activation=act, length=12, unroll=unroll,
                                       return_sequences=ret, truncate=trunc)] + tail,
                            loss="mse")
        ref = ReferenceModel(net)
        th = ref.init(0) + 0.2
        out.append((time_gradient_flow(ref, th, X, y).norms,
                    recurrent_jacobians(ref, th, X[0])[0]))
    assert rel_err(out[1][0], out[0][0]) < 1e-12
    assert rel_err(out[1][1], out[0][1]) < 1e-12


def test_per_sample_analyses_of_a_looped_rnn_equal_the_unrolled_ones():
    """K-FAC, diagonal GGN, per-sample gradients and the empirical Fisher read the steps of
    a looped RNN from its unrolled twin (same parameters): equal to the declaration written
    unrolled, and a looped program the analyses cannot read stays refused."""
    from symnn.analysis import (diag_ggn, fisher_operator, kfac_factors,
                                per_sample_gradients)
    from symnn.analysis._unrolled import unrolled_twin
    from symnn.derive import derive

    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 1))
    res = []
    for unroll in (False, True):
        net = symnn.Network([symnn.RNN(2, 3, length=5, unroll=unroll, truncate=3),
                             symnn.Dense(3, 1)], loss="mse")
        ref = ReferenceModel(net)
        th = ref.init(1)
        f = kfac_factors(ref, th, X, y)
        res.append((per_sample_gradients(ref, th, X, y), diag_ggn(ref, th, X, y),
                    fisher_operator(ref, th, X, y).dense(),
                    [f[k].kron() for k in sorted(f)]))
    for a, b in zip(res[0][:3], res[1][:3]):
        assert rel_err(a, b) < 1e-12
    assert len(res[0][3]) == len(res[1][3]) > 0
    for a, b in zip(res[0][3], res[1][3]):
        assert rel_err(a, b) < 1e-12
    long = derive(symnn.Network([symnn.RNN(1, 2, length=600), symnn.Dense(2, 1)]))
    assert unrolled_twin(long) is long  # past the unrolled limit: stays looped
