"""Reverse mode over the program: one vector-Jacobian rule per op type (a table).

Each rule receives the op and the cotangent ``g`` of its output (a :class:`Var`, or a SymPy
number meaning "every component equals this constant") and returns the cotangent
contributions of the op's inputs, emitting the ops that compute them.  Elementwise
derivatives come from ``sympy.diff`` of each :class:`Map` body; where the derivative can be
written through a value the forward pass already computed (``σ'(z) = a(1 − a)``,
``tanh'(z) = 1 − a²``, ``LSE'(z) = p``) it is.

The rules, in matrix form (per sample; parameter cotangents are batch means):

================  ===============================================================
``Affine``        ``ḡ_a = Wᵀ g``, ``∂L/∂W = ⟨g aᵀ⟩``, ``∂L/∂b = ⟨g⟩``
``Map``           ``ḡ_u = g ⊙ ∂f/∂u`` (``sympy.diff`` of the body)
``Softmax``       ``ḡ_z = p ⊙ (g − gᵀp)``
``LogSumExp``     ``ḡ_z = g p`` with ``p = softmax(z)``
``Dot``           ``ḡ_u = g v``, ``ḡ_v = g u``
``SumComp``       ``ḡ_u = g 1``
================  ===============================================================
"""

from __future__ import annotations

from dataclasses import fields, replace

import sympy as sp

from symnn.derive import program as P
from symnn.derive.build import Builder, sym
from symnn.errors import DerivationError

__all__ = ["VJP_RULES", "reverse", "rename_vars"]

def _is_const(g) -> bool:
    return not isinstance(g, P.Var)


def _known_bodies(b: Builder) -> dict:
    """Forward values that a derivative may be rewritten through: body → symbol of value.

    Kept in ``b.meta`` and extended incrementally (the scan is linear overall).
    """
    known, seen = b.meta.setdefault("_known", ({}, [0]))
    ops = b.prog.ops
    for op in ops[seen[0]:]:
        if isinstance(op, P.Map) and len(op.exprs) == 1 and op.out.per_sample:
            body = op.exprs[0]
            if not body.is_Symbol and not body.is_Number:
                for s in body.free_symbols:
                    known.setdefault(s, {})[body] = (sym(op.out), op.out)
    seen[0] = len(ops)
    return known


def _through_outputs(expr: sp.Expr, known: dict, args: list[P.Arg]) -> tuple[sp.Expr, list]:
    """Rewrite ``expr`` through known forward values; returns (expr, extra args)."""
    extra = []
    sub = {}
    candidates = {}
    for fs in expr.free_symbols:
        candidates.update(known.get(fs, {}))
    for body, (s, var) in candidates.items():
        if expr.has(body):
            sub[body] = s
            extra.append(P.Arg(s, var))
    if not sub:
        return expr, extra
    new = expr.xreplace(sub)
    return new, extra


def _map_contrib(b: Builder, size: int, expr: sp.Expr, args, g, role="", label=()):
    """Emit ``Map(g · expr)`` (``g`` a Var or constant) and return the new Var or constant."""
    args = list(args)
    if _is_const(g):
        body = g * expr
    else:
        gs = sp.Symbol(f"g_{g.name}", real=True)
        body = gs * expr
        args.append(P.Arg(gs, g))
    body = sp.sympify(body)
    if body.is_Number:
        return body
    used = body.free_symbols
    args = _dedupe([a for a in args if a.symbol in used])
    if len(args) == 1 and body == args[0].symbol and args[0].index is None:
        if args[0].var.shape == (size,):
            return args[0].var
    out = b.temp((size,))
    return b.emit(P.Map(out, (body,), tuple(args), role=role, label=label))


def _dedupe(args):
    seen = set()
    out = []
    for a in args:
        key = (a.symbol, a.var, a.index)
        if key not in seen:
            seen.add(key)
            out.append(a)
    return out


# ----------------------------------------------------------------------------------------
# the rule table
# ----------------------------------------------------------------------------------------


def affine_vjp(b: Builder, op: P.Affine, g, active):
    """z = W a + b:  ḡ_a = Wᵀ g;  ∂L/∂W = ⟨g aᵀ⟩;  ∂L/∂b = ⟨g⟩."""
    g = _materialise(b, g, op.out.size)
    out = []
    if op.W in active:
        out.append((op.W, b.emit(P.OuterMean(b.temp(op.W.shape, "param"), g, op.a))))
    if op.b is not None and op.b in active:
        out.append((op.b, b.emit(P.BatchMean(b.temp(op.b.shape, "param"), g))))
    if op.a in active:
        out.append((op.a, b.emit(P.MatTVec(b.temp(op.a.shape), op.W, g))))
    return out


def map_vjp(b: Builder, op: P.Map, g, active):
    """out = f(u, …):  ḡ_u = g ⊙ ∂f/∂u, with ∂f/∂u from ``sympy.diff`` of the body."""
    known = _known_bodies(b)
    n = op.out.size
    contribs = []
    by_var: dict[P.Var, list[P.Arg]] = {}
    for a in op.args:
        if a.var in active:
            by_var.setdefault(a.var, []).append(a)
    for var, args in by_var.items():
        elementwise = [a for a in args if a.index is None]
        indexed = [a for a in args if a.index is not None]
        if elementwise:
            if len(op.exprs) != 1 and n > 1 and var.size == n:
                raise DerivationError(
                    f"{op.out.name}: per-component Map with elementwise argument {var.name} "
                    "has no reverse rule"
                )
            d = sp.S.Zero
            for a in elementwise:
                d = d + sp.diff(op.exprs[0], a.symbol)
            d, extra = _through_outputs(d, known, op.args)
            label = ()
            if op.role == "act":
                label = op.label
            if var.per_sample and (var.size == n):
                c = _map_contrib(b, n, d, list(op.args) + extra, g,
                                 role="act_grad" if op.role == "act" else "", label=label)
                contribs.append((var, c))
            elif var.per_sample and var.size == 1:
                c = _map_contrib(b, n, d, list(op.args) + extra, g)
                if _is_const(c):
                    contribs.append((var, c * n))
                else:
                    contribs.append((var, b.emit(P.SumComp(b.temp((1,)), c))))
            else:
                raise DerivationError(
                    f"{op.out.name}: elementwise binding of {var.name} {var.shape} has no rule"
                )
        if indexed:
            contribs.append((var, _indexed_vjp(b, op, g, var, indexed, known)))
    return contribs


def _indexed_vjp(b: Builder, op: P.Map, g, var: P.Var, args: list[P.Arg], known):
    n = op.out.size
    gargs = []
    if _is_const(g):
        gsyms = [g] * n
    else:
        gsyms = []
        for k in range(n):
            s = sp.Symbol(f"g_{g.name}_{k}", real=True)
            gsyms.append(s)
            gargs.append(P.Arg(s, g, k if g.size == n else 0))
    exprs = []
    for i in range(var.size):
        total = sp.S.Zero
        for a in args:
            if a.index != i:
                continue
            for k in range(n):
                total += gsyms[k] * sp.diff(op.expr_for(k), a.symbol)
        exprs.append(total)
    allargs = _dedupe(list(op.args) + gargs)
    used = set().union(*(e.free_symbols for e in exprs)) if exprs else set()
    allargs = tuple(a for a in allargs if a.symbol in used)
    out = b.temp((var.size,))
    m = b.emit(P.Map(out, tuple(exprs), allargs, role="model_grad", label=op.label))
    if var.kind == "param":
        return b.emit(P.BatchMean(b.temp(var.shape, "param"), m))
    return m


def softmax_vjp(b: Builder, op: P.Softmax, g, active):
    """p = softmax(z):  ḡ_z = p ⊙ (g − gᵀp)."""
    if op.z not in active:
        return []
    if _is_const(g):
        return []  # a constant cotangent is orthogonal to softmax's tangent space
    t = b.emit(P.Dot(b.temp((1,)), g, op.out))
    ps, gs, ts = sym(op.out), sym(g), sym(t)
    out = b.temp(op.z.shape)
    args = (P.Arg(ps, op.out), P.Arg(gs, g), P.Arg(ts, t))
    return [(op.z, b.emit(P.Map(out, (ps * (gs - ts),), args)))]


def _softmax_of(b: Builder, z: P.Var) -> P.Var:
    for o in b.prog.ops:
        if isinstance(o, P.Softmax) and o.z == z:
            return o.out
    return b.emit(P.Softmax(b.temp(z.shape), z))


def logsumexp_vjp(b: Builder, op: P.LogSumExp, g, active):
    """s = log Σ exp(z):  ḡ_z = g p,  p = softmax(z)."""
    if op.z not in active:
        return []
    p = _softmax_of(b, op.z)
    if _is_const(g) and g == 1:
        return [(op.z, p)]
    return [(op.z, _map_contrib(b, op.z.size, sym(p), [P.Arg(sym(p), p)], g))]


def dot_vjp(b: Builder, op: P.Dot, g, active):
    """s = uᵀv:  ḡ_u = g v,  ḡ_v = g u."""
    out = []
    if op.u in active:
        out.append((op.u, _map_contrib(b, op.u.size, sym(op.v), [P.Arg(sym(op.v), op.v)], g)))
    if op.v in active:
        out.append((op.v, _map_contrib(b, op.v.size, sym(op.u), [P.Arg(sym(op.u), op.u)], g)))
    return out


def sumcomp_vjp(b: Builder, op: P.SumComp, g, active):
    """s = Σ u:  ḡ_u = g 1."""
    if op.u not in active:
        return []
    if _is_const(g):
        return [(op.u, g)]
    gs = sym(g)
    return [(op.u, b.emit(P.Map(b.temp(op.u.shape), (gs,), (P.Arg(gs, g),))))]


VJP_RULES = {
    P.Affine: affine_vjp,
    P.Map: map_vjp,
    P.Softmax: softmax_vjp,
    P.LogSumExp: logsumexp_vjp,
    P.Dot: dot_vjp,
    P.SumComp: sumcomp_vjp,
}


# ----------------------------------------------------------------------------------------


def _materialise(b: Builder, g, size: int) -> P.Var:
    if not _is_const(g):
        return g
    return b.emit(P.Map(b.temp((size,)), (sp.sympify(g),), ()))


def _accumulate(b: Builder, var: P.Var, items: list):
    """Sum the cotangent contributions of ``var`` into one Var (or constant)."""
    consts = [c for c in items if _is_const(c)]
    vars_ = [v for v in items if not _is_const(v)]
    const = sp.Add(*consts) if consts else sp.S.Zero
    if not vars_:
        return const
    if len(vars_) == 1 and const == 0:
        return vars_[0]
    if var.kind == "param":
        if const != 0:
            raise DerivationError(f"constant cotangent for parameter {var.name}")
        return b.emit(P.Add(b.temp(var.shape, "param"), tuple(vars_)))
    args = tuple(P.Arg(sym(v), v) for v in vars_)
    body = sp.Add(*(sym(v) for v in vars_)) + const
    return b.emit(P.Map(b.temp(var.shape), (body,), args, role="sum"))


def active_vars(prog: P.Program, sources) -> set:
    """Values that depend on any of ``sources``."""
    active = set(sources)
    for op in prog.ops:
        if any(v in active for v in op.inputs):
            active.add(op.out)
    return active


def reverse(b: Builder, seed_var: P.Var, wrt: list[P.Var], forward_ops: list[P.Op]) -> dict:
    """Append to ``b`` the reverse sweep from per-sample ``seed_var`` (cotangent 1).

    Returns ``{var: cotangent}`` for every value reached (``wrt`` params included).
    """
    fwd = P.Program(list(forward_ops))
    active = active_vars(fwd, wrt)
    pending: dict[P.Var, list] = {seed_var: [sp.S.One]}
    result: dict[P.Var, object] = {}
    for op in reversed(forward_ops):
        if op.out not in pending or op.out not in active:
            continue
        g = _accumulate(b, op.out, pending.pop(op.out))
        result[op.out] = g
        if _is_const(g) and g == 0:
            continue
        rule = VJP_RULES.get(type(op))
        if rule is None:
            raise DerivationError(
                f"no reverse-mode rule for {type(op).__name__} (computing {op.out.name}); "
                "add one to symnn.derive.reverse.VJP_RULES"
            )
        for var, c in rule(b, op, g, active):
            if _is_const(c) and c == 0:
                continue
            pending.setdefault(var, []).append(c)
    for var, items in pending.items():
        result[var] = _accumulate(b, var, items)
    return result


def rename_vars(ops: list[P.Op], mapping: dict) -> list[P.Op]:
    """Rename values throughout ``ops`` (``mapping`` old Var → new Var)."""
    if not mapping:
        return list(ops)

    def sub(v):
        if isinstance(v, P.Var):
            return mapping.get(v, v)
        if isinstance(v, P.Arg):
            return P.Arg(v.symbol, mapping.get(v.var, v.var), v.index)
        if isinstance(v, tuple):
            return tuple(sub(x) for x in v)
        return v

    out = []
    for op in ops:
        changes = {f.name: sub(getattr(op, f.name)) for f in fields(op) if f.name != "label"}
        op2 = replace(op, **changes)
        if isinstance(op2, P.Map):
            # keep Map bodies' symbol names equal to the (renamed) value names
            ren = {}
            newargs = []
            for a_old, a_new in zip(op.args, op2.args):
                if a_old.var != a_new.var and a_old.symbol == sym(a_old.var, a_old.index):
                    s_new = sym(a_new.var, a_new.index)
                    ren[a_old.symbol] = s_new
                    newargs.append(P.Arg(s_new, a_new.var, a_new.index))
                else:
                    newargs.append(a_new)
            if ren:
                op2 = replace(op2, exprs=tuple(e.xreplace(ren) for e in op2.exprs),
                              args=tuple(newargs))
        out.append(op2)
    return out
