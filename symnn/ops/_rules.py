"""Helpers shared by the op kits' derivative rules.

A cotangent ``g`` is a :class:`~symnn.ops.ir.Var` or a SymPy number meaning "every
component equals this constant".  Ops of other families are built through
:data:`symnn.ops.registry.op` (``op.Map``), so this module imports no kit.
"""

from __future__ import annotations

import sympy as sp

from symnn.ops.ir import Arg, Builder, Var, sym
from symnn.ops.registry import op

__all__: list[str] = []


def is_const(g) -> bool:
    """True when the cotangent ``g`` is a constant (not a Var)."""
    return not isinstance(g, Var)


def dedupe(args):
    """``args`` without repeated (symbol, value, index) bindings, in order."""
    seen = set()
    out = []
    for a in args:
        key = (a.symbol, a.var, a.index)
        if key not in seen:
            seen.add(key)
            out.append(a)
    return out


def known_bodies(b: Builder) -> dict:
    """Forward values that a derivative may be rewritten through: body → symbol of value.

    Kept in ``b.meta`` and extended incrementally (the scan is linear overall).
    """
    known, seen = b.meta.setdefault("_known", ({}, [0]))
    ops = b.prog.ops
    Map = op.Map
    for o in ops[seen[0]:]:
        if isinstance(o, Map) and len(o.exprs) == 1 and o.out.per_sample:
            body = o.exprs[0]
            # a zero gradient's Map may hold a plain int 0 (round 5, h-exact: the Jacobian in X
            # of an RNN(length=1) before a looped RNN crashed here with AttributeError)
            if isinstance(body, sp.Basic) and not body.is_Symbol and not body.is_Number:
                for s in body.free_symbols:
                    known.setdefault(s, {})[body] = (sym(o.out), o.out)
    seen[0] = len(ops)
    return known


def through_outputs(expr: sp.Expr, known: dict, args: list[Arg]) -> tuple[sp.Expr, list]:
    """Rewrite ``expr`` through known forward values; returns (expr, extra args)."""
    extra = []
    sub = {}
    candidates = {}
    for fs in expr.free_symbols:
        candidates.update(known.get(fs, {}))
    for body, (s, var) in candidates.items():
        if expr.has(body):
            sub[body] = s
            extra.append(Arg(s, var))
    if not sub:
        return expr, extra
    new = expr.xreplace(sub)
    return new, extra


def map_contrib(b: Builder, size: int, expr: sp.Expr, args, g, role="", label=()):
    """Emit ``Map(g · expr)`` (``g`` a Var or constant) and return the new Var or constant."""
    args = list(args)
    if is_const(g):
        body = g * expr
    else:
        gs = sp.Symbol(f"g_{g.name}", real=True)
        body = gs * expr
        args.append(Arg(gs, g))
    body = sp.sympify(body)
    if body.is_Number:
        return body
    used = body.free_symbols
    args = dedupe([a for a in args if a.symbol in used])
    if len(args) == 1 and body == args[0].symbol and args[0].index is None:
        if args[0].var.shape == (size,):
            return args[0].var
    out = b.temp((size,))
    return b.emit(op.Map(out, (body,), tuple(args), role=role, label=label))


def materialise(b: Builder, g, size: int) -> Var:
    """The cotangent ``g`` as a Var (a constant becomes a constant Map)."""
    if not is_const(g):
        return g
    return b.emit(op.Map(b.temp((size,)), (sp.sympify(g),), ()))


def softmax_of(b: Builder, z: Var) -> Var:
    """``softmax(z)``: the value already computed in ``b``, or a new Softmax op."""
    Softmax = op.Softmax
    for o in b.prog.ops:
        if isinstance(o, Softmax) and o.z == z:
            return o.out
    return b.emit(Softmax(b.temp(z.shape), z))


# ----------------------------------------------------------------------------------------
# forward mode


def dot_var(b: Builder, v: Var) -> Var:
    """A fresh tangent value for ``v``: ``<name>_dot<n>``."""
    b.counter += 1
    return Var(f"{v.name}_dot{b.counter}", v.kind if v.kind != "input" else "sample",
               v.shape, r"\dot{%s}" % v.tex, v.text + "̇")


def tangent_sum(b: Builder, like: Var, terms: list) -> Var | None:
    """The sum of the tangent ``terms`` (None entries dropped; None when all are)."""
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    if len(terms) == 1:
        return terms[0]
    out = dot_var(b, like)
    if like.kind in ("param", "total"):
        return b.emit(op.Add(out, tuple(terms)))
    args = tuple(Arg(sym(t), t) for t in terms)
    return b.emit(op.Map(out, (sp.Add(*(sym(t) for t in terms)),), args, role="sum"))
