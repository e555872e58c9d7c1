"""Codegen passes over a kernel's ops, before any code is written.

* :func:`drop_dirac` / :func:`canonical` — ``DiracDelta`` (the derivative of a step) is 0;
* :func:`sum_plan` / :func:`sum_values` — sums of products computed in place;
* :func:`softmax_lse_pairs` — a softmax and a log-sum-exp of the same logits share a pass;
* :func:`deferred_biases` / :func:`tangent_means` — work folded into a Map's loop;
* :func:`hoist_invariant` — loop-invariant work out of a Map's loops.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from symnn import ops as P

__all__ = ["hoist_invariant", "canonical", "drop_dirac", "sum_plan", "sum_values",
           "sum_terms", "softmax_lse_pairs", "deferred_biases", "tangent_means"]


def _largest(bodies, movable) -> list:
    """The largest subexpressions ``e`` of the bodies with ``movable(e)`` (in order, once
    each)."""
    found: dict = {}

    def visit(e):
        if e.is_Atom or not isinstance(e, sp.Expr):
            if not e.is_Atom:
                for arg in e.args:
                    visit(arg)
            return
        if e.free_symbols and movable(e):
            found.setdefault(e, None)
            return
        for arg in e.args:
            visit(arg)

    for body in bodies:
        visit(body)
    return list(found)


def hoist_direction_free(bodies, varying: set, fresh):
    """Work that does not change with the direction ``k`` out of a tangent Map's ``k``
    loop: every largest subexpression of the bodies that reads no ``k``-indexed value and
    calls a function (``fm_sech2(z1)`` in every direction's ``a1_dot``) is computed once per
    row and component, before the ``k`` loop, into a small array, and read inside it
    (``hk0[j]``).  Printed as it would have been inside the loop, so results do not change.
    ``varying``: the symbols that change with ``k``.  Returns ``(new bodies, [(name,
    expression), …])``."""
    found = {e: fresh() for e in _largest(
        bodies, lambda e: not (e.free_symbols & varying) and e.atoms(sp.Function))}
    if not found:
        return bodies, []
    sub = {e: sp.Symbol(f"{name}[j]", real=True) for e, name in found.items()}
    return [b.xreplace(sub) for b in bodies], [(name, e) for e, name in found.items()]


def hoist_invariant(bodies, invariant: set, fresh):
    """Loop-invariant work out of a Map's loops: every largest subexpression of the bodies
    that reads only parameters and totals and calls a function or takes a power is computed
    once, before the loop (``h = fm_exp(-params[2])``), and read inside it.

    Besides the saved work, this keeps LLVM from a pathological case: nested fast-math
    calls on a loop-invariant value (``fm_exp(-fm_exp(-fm_exp(-params[2])))`` inside a
    per-sample loop) took it minutes to optimise.  The hoisted expression is printed as it
    would have been inside the loop, so results do not change.  Returns
    ``(new bodies, [(symbol, expression), …])``."""
    found = {e: sp.Symbol(fresh(), real=True) for e in _largest(
        bodies, lambda e: e.free_symbols <= invariant
        and (e.atoms(sp.Function) or e.atoms(sp.Pow)))}
    if not found:
        return bodies, []
    return [b.xreplace(found) for b in bodies], [(h, e) for e, h in found.items()]


def canonical(op: P.Map):
    """A Map's bodies in canonical symbols (one per value or fixed component read), with
    ``DiracDelta`` replaced by 0 (the subgradient convention)."""
    subs, args = {}, {}
    for a in op.args:
        cname = a.var.name if a.index is None else f"{a.var.name}__{a.index}"
        sym = sp.Symbol(cname, real=True)
        subs[a.symbol] = sym
        args[sym] = a
    exprs = []
    for e in op.exprs:
        e = sp.sympify(e).xreplace(subs)
        if e.has(sp.DiracDelta):
            e = e.replace(sp.DiracDelta, lambda *x: sp.S.Zero)
        exprs.append(e)
    return exprs, args


def drop_dirac(ops):
    """Maps whose bodies hold ``DiracDelta`` (the derivative of a step): replace it by 0
    and drop the arguments that no longer appear, so that pruning removes their producers."""
    out = []
    for op in ops:
        if isinstance(op, P.Map) and any(sp.sympify(e).has(sp.DiracDelta) for e in op.exprs):
            exprs = tuple(sp.sympify(e).replace(sp.DiracDelta, lambda *x: sp.S.Zero)
                          for e in op.exprs)
            used = set().union(*(e.free_symbols for e in exprs))
            op = replace(op, exprs=exprs, args=tuple(a for a in op.args if a.symbol in used))
        out.append(op)
    return out



#: Ops whose emitters can add into an existing value (``w.acc``).
_ACCUMULATING = (P.Affine, P.MatTVec, P.OuterMean, P.Map, P.Penalty, P.BatchMean, P.Add,
                 P.RecRowT)  # recurrent: a sequence's cotangent, one row per term


def sum_plan(ops, kvars: set, keep: set):
    """Sums computed in place: ``s = t1 + t2`` where each term is used only by the sum.

    The terms are written into the sum's storage — the first writer (in program order)
    overwrites, the others add to it (BLAS ``beta = 1``) — and the sum op disappears.  In a
    Hessian-vector product that is ``ż = v_W a + v_b + W ȧ`` as two products into one
    buffer.  Sums of sums collapse into one storage.  Returns
    ``({value: (storage value, add?)}, {dropped sum ops})``."""
    cands = _sum_candidates(ops, kvars, keep)
    while True:
        parent = {t: s for s, (_, terms) in cands.items() for t in terms}
        writers: dict = {}
        for op in ops:
            if op.out in parent and op.out not in cands:
                writers.setdefault(_root(op.out, parent), []).append(op)
        bad = [r for r, ws in writers.items() if not _accumulates(ws)]
        if not bad:
            break
        for r in bad:
            cands.pop(r, None)
    plan = {}
    for r, ws in writers.items():
        for n, w in enumerate(ws):
            plan[w.out] = (r, 1 if n else 0)
    for s in cands:
        if s in parent:
            plan[s] = (_root(s, parent), 1)
    return plan, {op for op, _ in cands.values()}


def _sum_candidates(ops, kvars: set, keep: set) -> dict:
    """``{sum value: (op, terms)}`` for the sums whose terms may share the sum's storage."""
    uses: dict = {}
    index = {}
    for i, op in enumerate(ops):
        index[op.out] = i
        for v in op.inputs:
            uses[v] = uses.get(v, 0) + 1

    def fits(t, out) -> bool:
        return (t not in keep and t in index and uses.get(t, 0) == 1 and t.size == out.size
                and (t in kvars) == (out in kvars) and t.kind == out.kind)

    cands = {}
    for op in ops:
        terms = sum_terms(op)
        if not terms or len(terms) < 2 or len(set(terms)) != len(terms):
            continue
        if op.out.kind == "total" or not all(fits(t, op.out) for t in terms):
            continue
        cands[op.out] = (op, terms)
    return cands


def _root(v, parent: dict):
    while v in parent:
        v = parent[v]
    return v


def _accumulates(writers) -> bool:
    """Whether these ops can write one storage in turn (all but the first add into it)."""
    return all(isinstance(w, _ACCUMULATING) for w in writers[1:]) and not any(
        isinstance(w, P.BatchMean) and w.out.kind == "total" for w in writers)


def sum_values(ops) -> set:
    """Values of plain sums of products: kept out of Map fusion, so that :func:`sum_plan`
    can compute them in place (``g = W₂ᵀ δ̇ + V₂ᵀ δ`` as two products into one buffer)."""
    gemm = (P.Affine, P.MatTVec, P.OuterMean)
    made = {op.out for op in ops if isinstance(op, gemm)}
    return {op.out for op in ops
            if isinstance(op, P.Map) and (sum_terms(op) or [None])[0] in made}


def sum_terms(op) -> list | None:
    """The terms of ``op`` if it is a plain elementwise sum of values, else None."""
    if isinstance(op, P.Add):
        return list(op.terms)
    if isinstance(op, P.Map) and len(op.exprs) == 1:
        e = sp.sympify(op.exprs[0])
        if not isinstance(e, sp.Add):
            return None
        bind = {a.symbol: a for a in op.args}
        terms = []
        for t in e.args:
            a = bind.get(t)
            if a is None or a.index is not None or not a.var.per_sample:
                return None
            terms.append(a.var)
        return terms
    return None


def softmax_lse_pairs(ops) -> dict:
    """A Softmax and a LogSumExp of the same logits share one pass (at the first)."""
    first: dict = {}
    pairs: dict = {}
    for op in ops:
        if isinstance(op, (P.Softmax, P.LogSumExp)):
            prev = first.get(op.z)
            if prev is None:
                first[op.z] = op
            elif type(prev) is not type(op) and prev not in pairs:
                pairs[prev] = op
    return pairs


def deferred_biases(ops, plan: dict, keep: set, dropped: set, identity: set) -> dict:
    """``{affine value: its bias}`` for the Affine ops whose bias is added where the value
    is read, because only Maps read it (one pass fewer).  ``identity``: the identity input
    tangents (an Affine of one is written by a loop of its own).

    Also an Affine that is a term of an in-place sum (:func:`sum_plan`; ``ż = V a + v_b +
    W ȧ`` in a Hessian-vector product) when it is the sum's only term with a bias and only
    Maps read the sum: its bias is then keyed by both the term (so that the product skips
    it) and the sum's storage value (so that the readers add it)."""
    consumers: dict = {}
    for op in ops:
        for v in op.inputs:
            consumers.setdefault(v, []).append(op)

    def only_maps(v) -> bool:
        return bool(consumers.get(v)) and all(isinstance(c, P.Map) and c not in dropped
                                              for c in consumers[v])

    deferred = {}
    roots: dict = {}
    for op in ops:
        if not (isinstance(op, P.Affine) and op.b is not None and op.a not in identity):
            continue
        if op.out in plan:
            roots.setdefault(plan[op.out][0], []).append(op)
        elif op.out not in keep and only_maps(op.out):
            deferred[op.out] = op.b
    for root, terms in roots.items():
        if len(terms) == 1 and root not in keep and root not in plan and only_maps(root):
            deferred[root] = deferred[terms[0].out] = terms[0].b
    return deferred


def tangent_means(ops, skip: set, kvars: set, plan: dict) -> dict:
    """``{tangent value: [BatchMean ops]}``: a tangent's batch mean accumulated inside the
    loop of the Map that makes the tangent (one pass fewer over a B·K·n array; not worth the
    code for ordinary values).  Only a Map that is itself emitted: a sum computed in place
    by :func:`sum_plan` has no loop of its own, so a mean hung on it would never be written.
    The means found are added to ``skip``."""
    means: dict = {}
    emitted_maps = {o.out for o in ops if isinstance(o, P.Map) and o not in skip}
    for op in ops:
        if (isinstance(op, P.BatchMean) and op.out.kind != "total" and op not in skip
                and op.out in kvars and plan.get(op.out, (None, 0))[1] == 0
                and op.u in emitted_maps
                and op.u not in plan and op.u.size == op.out.size):
            means.setdefault(op.u, []).append(op)
            skip.add(op)
    return means
