"""SelfAttention (issue 13): the attention ops' rules against central differences, the
compiled kernels against the NumPy reference, PyTorch autograd
(``torch.nn.functional.scaled_dot_product_attention``) and finite differences, the printed
equations checked symbolically, the declaration's checks, spec and model files."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from _exactness import HAVE_TORCH, check_case, rel_err
from strategies import NetCase

import symnn
from symnn import ops as P
from symnn.codegen.reference import evaluate
from symnn.derive.reverse import reverse
from symnn.derive.tangent import jvp
from symnn.errors import DeclarationError, SpecError

# ----------------------------------------------------------------------------------------
# op level: every reverse and forward rule of the attention kit against central differences
# of the NumPy reference

R = P.RowDims(3, 3)
RC = P.RowDims(3, 3, causal=True)


def _v(name, kind, n):
    return P.Var(name, kind, (n,) if isinstance(n, int) else n)


def _mm_cases():
    """AttnMatMul in every transpose combination, with a parameter or per-sample factor,
    scaled, and as a batch mean."""
    out = []
    for ta in (False, True):
        for tb in (False, True):
            d = P.MatDims(3, 2, 4, ta, tb, 2 if ta == tb else 1)
            a_s, b_s = _v("a", "input", 6), _v("b", "input", 8)
            a_p, b_p = _v("a", "param", d.a_shape), _v("b", "param", d.b_shape)
            tag = f"{'T' if ta else 'N'}{'T' if tb else 'N'}"
            out += [
                (f"mm_ss_{tag}", lambda o, d=d, a=a_s, b=b_s: P.AttnMatMul(o, a, b, d),
                 (a_s, b_s), 12),
                (f"mm_sp_{tag}", lambda o, d=d, a=a_s, b=b_p: P.AttnMatMul(o, a, b, d),
                 (a_s, b_p), 12),
                (f"mm_ps_{tag}", lambda o, d=d, a=a_p, b=b_s: P.AttnMatMul(o, a, b, d),
                 (a_p, b_s), 12),
            ]
            dm = P.MatDims(3, 2, 4, ta, tb, 3, True)
            out.append((f"mm_mean_{tag}",
                        lambda o, d=dm, a=a_s, b=b_s: P.AttnMatMul(o, a, b, d),
                        (a_s, b_s), (3, 4)))
    return out


def _op_cases():
    z, g, u, s = _v("z", "input", 9), _v("g", "input", 9), _v("u", "input", 9), \
        _v("s", "input", 3)
    cases = _mm_cases() + [
        ("softmax", lambda o: P.AttnSoftmax(o, z, R), (z,), 9),
        ("softmax_causal", lambda o: P.AttnSoftmax(o, z, RC), (z,), 9),
        ("softmaxT", lambda o: P.AttnSoftmaxT(o, z, g, R), (z, g), 9),
        ("rowdot", lambda o: P.AttnRowDot(o, u, g, R), (u, g), 3),
        ("rowdot_same", lambda o: P.AttnRowDot(o, u, u, R), (u,), 3),
        ("rowscale", lambda o: P.AttnRowScale(o, u, s, R), (u, s), 9),
    ]
    return [pytest.param(*c, id=c[0]) for c in cases]


def _scalar_program(make, out_shape):
    """L = ⟨r · op(ins)⟩ for a per-sample output, L = ‖op(ins)‖² for a parameter-shaped one."""
    b = P.Builder()
    per_sample = isinstance(out_shape, int)
    o = P.Var("o", "sample" if per_sample else "param",
              (out_shape,) if per_sample else out_shape)
    out = b.emit(make(o))
    r = None
    if per_sample:
        r = _v("r", "input", out_shape)
        d = b.emit(P.Dot(_v("d", "sample", 1), out, r))
        L = b.emit(P.BatchMean(P.Var("L", "total", ()), d))
    else:
        L = b.emit(P.Penalty(P.Var("L", "total", ()), out, "l2", sp.Integer(1)))
    return b, out, r, L


def _values(ins, rng, B):
    return {v: rng.normal(size=(B, v.size)) if v.per_sample else rng.normal(size=v.shape)
            for v in ins}


@pytest.mark.parametrize("label,make,ins,out_shape", _op_cases())
def test_each_attention_op_reverse_rule_matches_central_differences(label, make, ins,
                                                                     out_shape):
    rng = np.random.default_rng(abs(hash(label)) % 2**32)
    B = 3
    b, out, r, L = _scalar_program(make, out_shape)
    forward = list(b.prog.ops)
    ct = reverse(b, L, list(ins), forward)
    env = _values(ins, rng, B)
    if r is not None:
        env[r] = rng.normal(size=(B, r.size))
    got = evaluate(list(b.prog.ops), dict(env))
    h = 1e-6
    for v in ins:
        base = env[v]
        fd = np.zeros_like(base)
        for i in range(base.size):
            e = np.zeros_like(base)
            e.flat[i] = h
            lp = float(evaluate(forward, {**env, v: base + e})[L])
            lm = float(evaluate(forward, {**env, v: base - e})[L])
            fd.flat[i] = (lp - lm) / (2 * h)
        if v.per_sample:
            fd = fd * B  # a per-sample cotangent is ∂ℓ_s/∂v_s = B·∂L/∂v_s
        mine = got[ct[v]] if v in ct else np.zeros_like(fd)
        assert np.allclose(np.reshape(mine, fd.shape), fd, rtol=1e-6, atol=1e-7), (label, v)


@pytest.mark.parametrize("label,make,ins,out_shape", _op_cases())
def test_each_attention_op_forward_rule_matches_central_differences(label, make, ins,
                                                                    out_shape):
    rng = np.random.default_rng(1 + abs(hash(label)) % 2**32)
    B = 3
    b = P.Builder()
    per_sample = isinstance(out_shape, int)
    o = P.Var("o", "sample" if per_sample else "param",
              (out_shape,) if per_sample else out_shape)
    out = b.emit(make(o))
    forward = list(b.prog.ops)
    dots = {v: P.Var(v.name + "_d", "sample" if v.per_sample else "param", v.shape)
            for v in ins}
    d = jvp(b, forward, dots)
    env = _values(ins, rng, B)
    dirs = _values(ins, rng, B)
    env.update({dots[v]: dirs[v] for v in ins})
    batch = {_v("batch", "input", 1): np.zeros((B, 1))}  # the batch size, for the evaluator
    got = evaluate(list(b.prog.ops), {**env, **batch})[d[out]]
    h = 1e-6
    plus = evaluate(forward, {**batch, **{v: env[v] + h * dirs[v] for v in ins}})[out]
    minus = evaluate(forward, {**batch, **{v: env[v] - h * dirs[v] for v in ins}})[out]
    fd = (plus - minus) / (2 * h)
    assert np.allclose(np.reshape(got, fd.shape), fd, rtol=1e-6, atol=1e-7), label
