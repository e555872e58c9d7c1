"""Forward mode over the program: one Jacobian-vector rule per op type (a table).

Applied to the forward + backward program this is forward-over-reverse (Pearlmutter's
R-operator): the tangent of every gradient along a parameter direction ``v`` is the exact
Hessian-vector product ``H v``.  Tangent values are named ``<name>_dot``; elementwise
tangents come from ``sympy.diff`` of each :class:`Map` body.

================  ===============================================================
``Affine``        ``ż = Ẇ a + W ȧ + ḃ``
``MatTVec``       ``(Wᵀg)˙ = Ẇᵀ g + Wᵀ ġ``
``Map``           ``ȯ = Σᵢ ∂f/∂uᵢ · u̇ᵢ``
``Softmax``       ``ṗ = p ⊙ (ż − pᵀż)``
``LogSumExp``     ``ṡ = pᵀ ż``
``Dot``           ``(uᵀv)˙ = u̇ᵀv + uᵀv̇``
``SumComp``       ``(Σu)˙ = Σu̇``
``BatchMean``     ``⟨u⟩˙ = ⟨u̇⟩``
``OuterMean``     ``⟨u vᵀ⟩˙ = ⟨u̇ vᵀ⟩ + ⟨u v̇ᵀ⟩``
``Add``           ``(Σ tᵢ)˙ = Σ ṫᵢ``
``Penalty``       L2: ``(2λθ)˙ = 2λθ̇``; L1: ``(λ sign θ)˙ = 0``
================  ===============================================================
"""

from __future__ import annotations

import sympy as sp

from symnn.derive import program as P
from symnn.derive.build import Builder, sym
from symnn.errors import DerivationError

__all__ = ["JVP_RULES", "jvp"]


def _dot_var(b: Builder, v: P.Var) -> P.Var:
    b.counter += 1
    return P.Var(f"{v.name}_dot{b.counter}", v.kind if v.kind != "input" else "sample",
                 v.shape, r"\dot{%s}" % v.tex, v.text + "̇")


def _sum(b: Builder, like: P.Var, terms: list[P.Var]) -> P.Var | None:
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    if len(terms) == 1:
        return terms[0]
    out = _dot_var(b, like)
    if like.kind in ("param", "total"):
        return b.emit(P.Add(out, tuple(terms)))
    args = tuple(P.Arg(sym(t), t) for t in terms)
    return b.emit(P.Map(out, (sp.Add(*(sym(t) for t in terms)),), args, role="sum"))


def affine_jvp(b, op: P.Affine, d):
    Wd, ad = d.get(op.W), d.get(op.a)
    bd = d.get(op.b) if op.b is not None else None
    terms = []
    if Wd is not None:
        terms.append(b.emit(P.Affine(b.temp(op.out.shape), Wd, op.a, bd)))
    elif bd is not None:
        z = b.emit(P.Map(b.temp(op.a.shape), (0,), ()))  # W·0 + ḃ: the bias tangent alone
        terms.append(b.emit(P.Affine(b.temp(op.out.shape), op.W, z, bd)))
    if ad is not None:
        terms.append(b.emit(P.Affine(b.temp(op.out.shape), op.W, ad, None)))
    return _sum(b, op.out, terms)


def mattvec_jvp(b, op: P.MatTVec, d):
    Wd, gd = d.get(op.W), d.get(op.g)
    terms = []
    if Wd is not None:
        terms.append(b.emit(P.MatTVec(b.temp(op.out.shape), Wd, op.g)))
    if gd is not None:
        terms.append(b.emit(P.MatTVec(b.temp(op.out.shape), op.W, gd)))
    return _sum(b, op.out, terms)


def map_jvp(b, op: P.Map, d):
    new_args = list(op.args)
    tangent_terms = [sp.S.Zero] * len(op.exprs)
    any_dot = False
    for a in op.args:
        vd = d.get(a.var)
        if vd is None:
            continue
        any_dot = True
        s_dot = sp.Symbol(f"{a.symbol.name}__dot", real=True)
        new_args.append(P.Arg(s_dot, vd, a.index))
        for k, e in enumerate(op.exprs):
            tangent_terms[k] = tangent_terms[k] + sp.diff(e, a.symbol) * s_dot
    if not any_dot:
        return None
    exprs = tuple(tangent_terms)
    if all(sp.sympify(e) == 0 for e in exprs):
        return None
    used = set().union(*(sp.sympify(e).free_symbols for e in exprs))
    args = []
    seen = set()
    for a in new_args:
        key = (a.symbol, a.var, a.index)
        if a.symbol in used and key not in seen:
            seen.add(key)
            args.append(a)
    return b.emit(P.Map(_dot_var(b, op.out), exprs, tuple(args)))


def softmax_jvp(b, op: P.Softmax, d):
    zd = d.get(op.z)
    if zd is None:
        return None
    t = b.emit(P.Dot(b.temp((1,)), op.out, zd))
    ps, zs, ts = sym(op.out), sym(zd), sym(t)
    args = (P.Arg(ps, op.out), P.Arg(zs, zd), P.Arg(ts, t))
    return b.emit(P.Map(_dot_var(b, op.out), (ps * (zs - ts),), args))


def logsumexp_jvp(b, op: P.LogSumExp, d):
    zd = d.get(op.z)
    if zd is None:
        return None
    p = None
    for o in b.prog.ops:
        if isinstance(o, P.Softmax) and o.z == op.z:
            p = o.out
            break
    if p is None:
        p = b.emit(P.Softmax(b.temp(op.z.shape), op.z))
    return b.emit(P.Dot(_dot_var(b, op.out), p, zd))


def dot_jvp(b, op: P.Dot, d):
    ud, vd = d.get(op.u), d.get(op.v)
    terms = []
    if ud is not None:
        terms.append(b.emit(P.Dot(b.temp((1,)), ud, op.v)))
    if vd is not None:
        terms.append(b.emit(P.Dot(b.temp((1,)), op.u, vd)))
    return _sum(b, op.out, terms)


def sumcomp_jvp(b, op: P.SumComp, d):
    ud = d.get(op.u)
    return None if ud is None else b.emit(P.SumComp(_dot_var(b, op.out), ud))


def batchmean_jvp(b, op: P.BatchMean, d):
    ud = d.get(op.u)
    return None if ud is None else b.emit(P.BatchMean(_dot_var(b, op.out), ud))


def outermean_jvp(b, op: P.OuterMean, d):
    ud, vd = d.get(op.u), d.get(op.v)
    terms = []
    if ud is not None:
        terms.append(b.emit(P.OuterMean(b.temp(op.out.shape, "param"), ud, op.v)))
    if vd is not None:
        terms.append(b.emit(P.OuterMean(b.temp(op.out.shape, "param"), op.u, vd)))
    return _sum(b, op.out, terms)


def add_jvp(b, op: P.Add, d):
    return _sum(b, op.out, [d.get(t) for t in op.terms])


def mattvec_or_penalty_jvp(b, op: P.Penalty, d):
    pd = d.get(op.param)
    if pd is None:
        return None
    if op.grad:
        if op.kind == "l1":
            return None  # d/dθ sign(θ) = 0 almost everywhere
        return b.emit(P.Penalty(_dot_var(b, op.out), pd, "l2", op.coef, True, op.indices))
    # value tangent: L2: 2λ θ·θ̇ ; L1: λ sign(θ)·θ̇  — not needed by the products, but exact
    raise DerivationError("tangent of a penalty value is not needed; use its gradient")


JVP_RULES = {
    P.Affine: affine_jvp,
    P.MatTVec: mattvec_jvp,
    P.Map: map_jvp,
    P.Softmax: softmax_jvp,
    P.LogSumExp: logsumexp_jvp,
    P.Dot: dot_jvp,
    P.SumComp: sumcomp_jvp,
    P.BatchMean: batchmean_jvp,
    P.OuterMean: outermean_jvp,
    P.Add: add_jvp,
    P.Penalty: mattvec_or_penalty_jvp,
}


def jvp(b: Builder, ops, tangents: dict) -> dict:
    """Append tangent ops for ``ops`` to ``b``; returns ``{value: tangent Var}``.

    ``tangents`` seeds the map (e.g. ``{W1: vW1, …}``); values with no tangent are
    constant along the direction.
    """
    d = dict(tangents)
    for op in ops:
        if not any(v in d for v in op.inputs):
            continue
        if isinstance(op, P.Penalty) and not op.grad:
            continue
        rule = JVP_RULES.get(type(op))
        if rule is None:
            raise DerivationError(
                f"no forward-mode rule for {type(op).__name__} (computing {op.out.name}); "
                "add one to symnn.derive.tangent.JVP_RULES"
            )
        t = rule(b, op, d)
        if t is not None:
            d[op.out] = t
    return d
