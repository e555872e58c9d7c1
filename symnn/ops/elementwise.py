"""Elementwise ops: ``Map``, scalar SymPy bodies applied per component.

A Map's derivatives come from ``sympy.diff`` of its body (tanh's as ``sech²(z)``, which keeps
its relative accuracy at large ``|z|``: :mod:`symnn.ops._tanh`).  Where a derivative can be
written through a value the forward pass already computed (``σ'(z) = a σ(−z)``) it is.

================  ===============================================================
reverse           ``ḡ_u = g ⊙ ∂f/∂u`` (summed over components for a broadcast
                  size-1 ``u``; batch-meaned for an indexed parameter)
forward           ``ȯ = Σᵢ ∂f/∂uᵢ · u̇ᵢ``
================  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import sympy as sp

from symnn.errors import DerivationError
from symnn.ops import _rules as H
from symnn.ops._numpy import numpy_function
from symnn.ops._tanh import diff as _diff  # sp.diff, tanh' as sech² (round 6, exact)
from symnn.ops.ir import Arg, Op, Var, sym
from symnn.ops.registry import op, op_class, register

__all__ = ["Map"]


@op_class
@dataclass(frozen=True)
class Map(Op):
    """Elementwise (or per-component) scalar expressions.

    ``exprs`` holds one SymPy expression used for every output component, or one per
    component.  ``args`` binds the free symbols of the expressions to values (see
    :class:`~symnn.ops.ir.Arg`).  ``role`` and ``label`` are display hints for the printers
    (e.g. ``role="act_grad"`` with ``label`` the derivative factor's name).
    """

    out: Var
    exprs: tuple[sp.Expr, ...]
    args: tuple[Arg, ...]
    role: str = ""
    label: tuple = field(default=(), compare=False)

    @property
    def inputs(self):
        seen: list[Var] = []
        for a in self.args:
            if a.var not in seen:
                seen.append(a.var)
        return tuple(seen)

    def expr_for(self, k: int) -> sp.Expr:
        return self.exprs[0] if len(self.exprs) == 1 else self.exprs[k]

    def fingerprint_line(self) -> str:
        body = "; ".join(sp.srepr(e) for e in self.exprs)
        args = ",".join(
            f"{a.symbol}={a.var.name}" + ("" if a.index is None else f"[{a.index}]")
            for a in self.args
        )
        return f"{self.out.name}{self.out.shape} = Map[{body}]({args})"

    def renamed(self, mapping: dict) -> "Map":
        """Renamed values; body symbols named after a renamed value are renamed too."""
        op2 = Op.renamed(self, mapping)
        ren = {}
        newargs = []
        for a_old, a_new in zip(self.args, op2.args):
            if a_old.var != a_new.var and a_old.symbol == sym(a_old.var, a_old.index):
                s_new = sym(a_new.var, a_new.index)
                ren[a_old.symbol] = s_new
                newargs.append(Arg(s_new, a_new.var, a_new.index))
            else:
                newargs.append(a_new)
        if ren:
            op2 = replace(op2, exprs=tuple(e.xreplace(ren) for e in op2.exprs),
                          args=tuple(newargs))
        return op2


# ----------------------------------------------------------------------------------------
# reverse mode


def map_vjp(b, o: Map, g, active):
    """out = f(u, …):  ḡ_u = g ⊙ ∂f/∂u, with ∂f/∂u from ``sympy.diff`` of the body."""
    known = H.known_bodies(b)
    contribs = []
    by_var: dict[Var, list[Arg]] = {}
    for a in o.args:
        if a.var in active:
            by_var.setdefault(a.var, []).append(a)
    for var, args in by_var.items():
        elementwise = [a for a in args if a.index is None]
        indexed = [a for a in args if a.index is not None]
        if elementwise:
            contribs.append((var, _elementwise_vjp(b, o, g, var, elementwise, known)))
        if indexed:
            contribs.append((var, _indexed_vjp(b, o, g, var, indexed, known)))
    return contribs


def _elementwise_vjp(b, o: Map, g, var: Var, args: list[Arg], known):
    n = o.out.size
    if len(o.exprs) != 1 and n > 1 and var.size == n:
        raise DerivationError(
            f"{o.out.name}: per-component Map with elementwise argument {var.name} "
            "has no reverse rule"
        )
    d = sp.S.Zero
    for a in args:
        d = d + _diff(o.exprs[0], a.symbol)
    d, extra = H.through_outputs(d, known, o.args)
    label = o.label if o.role == "act" else ()
    if var.per_sample and (var.size == n):
        return H.map_contrib(b, n, d, list(o.args) + extra, g,
                             role="act_grad" if o.role == "act" else "", label=label)
    if var.per_sample and var.size == 1:
        c = H.map_contrib(b, n, d, list(o.args) + extra, g)
        if H.is_const(c):
            return c * n
        return b.emit(op.SumComp(b.temp((1,)), c))
    raise DerivationError(
        f"{o.out.name}: elementwise binding of {var.name} {var.shape} has no rule"
    )


def _indexed_vjp(b, o: Map, g, var: Var, args: list[Arg], known):
    n = o.out.size
    gargs = []
    if H.is_const(g):
        gsyms = [g] * n
    else:
        gsyms = []
        for k in range(n):
            s = sp.Symbol(f"g_{g.name}_{k}", real=True)
            gsyms.append(s)
            gargs.append(Arg(s, g, k if g.size == n else 0))
    exprs = []
    for i in range(var.size):
        total = sp.S.Zero
        for a in args:
            if a.index != i:
                continue
            for k in range(n):
                total += gsyms[k] * _diff(o.expr_for(k), a.symbol)
        exprs.append(total)
    allargs = H.dedupe(list(o.args) + gargs)
    used = set().union(*(e.free_symbols for e in exprs)) if exprs else set()
    allargs = tuple(a for a in allargs if a.symbol in used)
    out = b.temp((var.size,))
    m = b.emit(Map(out, tuple(exprs), allargs, role="model_grad", label=o.label))
    if var.kind == "param":
        return b.emit(op.BatchMean(b.temp(var.shape, "param"), m))
    return m


# ----------------------------------------------------------------------------------------
# forward mode


def map_jvp(b, o: Map, d):
    new_args = list(o.args)
    tangent_terms = [sp.S.Zero] * len(o.exprs)
    any_dot = False
    for a in o.args:
        vd = d.get(a.var)
        if vd is None:
            continue
        any_dot = True
        s_dot = sp.Symbol(f"{a.symbol.name}__dot", real=True)
        new_args.append(Arg(s_dot, vd, a.index))
        for k, e in enumerate(o.exprs):
            tangent_terms[k] = tangent_terms[k] + _diff(e, a.symbol) * s_dot
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
    return b.emit(Map(H.dot_var(b, o.out), exprs, tuple(args)))


# ----------------------------------------------------------------------------------------
# evaluation


def _arg_value(env, a: Arg, k: int | None, B: int):
    v = env[a.var]
    if a.var.kind == "param":
        flat = np.ravel(v)
        return flat[a.index if a.index is not None else 0]
    if a.index is not None:
        return v[:, a.index]
    if a.var.size == 1:
        return v[:, 0]
    return v[:, k] if k is not None else v


def map_numpy(o: Map, env, B: int):
    n = o.out.size
    syms = tuple(a.symbol for a in o.args)
    out = np.empty((B, n))
    if len(o.exprs) == 1 and n > 1:
        vals = []
        for a in o.args:
            v = env[a.var]
            if a.var.kind == "param":
                vals.append(np.ravel(v)[a.index if a.index is not None else 0])
            elif a.index is not None:
                vals.append(v[:, a.index : a.index + 1])
            else:
                vals.append(v)  # (B, n) or (B, 1): broadcasts
        out[:] = numpy_function(syms, o.exprs[0])(*vals)
        return out
    for k in range(n):
        vals = [_arg_value(env, a, k, B) for a in o.args]
        out[:, k] = numpy_function(syms, o.expr_for(k))(*vals)
    return out


def _sympy_arg(env, a: Arg, s: int, k: int):
    v = env[a.var]
    if a.var.kind == "param":
        return np.ravel(v)[a.index if a.index is not None else 0]
    if a.index is not None:
        return v[s, a.index]
    if a.var.size == 1:
        return v[s, 0]
    return v[s, k]


def map_sympy(o: Map, env, B: int):
    n = o.out.size
    r = np.empty((B, n), dtype=object)
    for s in range(B):
        for k in range(n):
            sub = {a.symbol: _sympy_arg(env, a, s, k) for a in o.args}
            r[s, k] = sp.sympify(o.expr_for(k)).xreplace(sub)
    return r


# ----------------------------------------------------------------------------------------
# display


def map_text(o: Map) -> str:
    sub = {a.symbol: sp.Symbol(a.var.name if a.index is None else f"{a.var.name}[{a.index}]")
           for a in o.args}
    bodies = [str(e.xreplace(sub)) for e in o.exprs]
    rhs = bodies[0] if len(bodies) == 1 else "[" + ", ".join(bodies) + "]"
    if len(o.exprs) == 1 and any(a.index is None and a.var.size > 1 for a in o.args):
        rhs += "   (elementwise)"
    return rhs


def map_describe(o: Map) -> str:
    subs = {a.symbol: sp.Symbol(a.var.name if a.index is None else f"{a.var.name}[{a.index}]")
            for a in o.args}
    bodies = [str(sp.sympify(e).xreplace(subs)) for e in o.exprs]
    return f"{o.out.name} = " + (bodies[0] if len(bodies) == 1
                                 else "[" + "; ".join(bodies) + "]")


register(
    Map,
    vjp=map_vjp,
    jvp=map_jvp,
    numpy=map_numpy,
    sympy=map_sympy,
    # the body is printed by the printer's elementwise printers (symnn.printing.elementwise)
    equation=lambda o, ctx: ctx.map_equation(o),
    text=map_text,
    describe=map_describe,
)
