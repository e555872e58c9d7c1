"""A function call that several Maps of a tangent kernel evaluate, computed once (issue 16).

Forward-over-reverse evaluates the derivative of an activation at one point in several
places: in the HVP of a tanh MLP, ``sech²(z₂)`` appears in the value's backward pass
(``δ₂ = g₂·sech²(z₂)``), in the forward tangent (``ȧ₂ = ż₂·sech²(z₂)``) and in the backward
tangent (``δ̇₂ = g̈₂·sech²(z₂) − 2 g₂ ż₂ tanh(z₂) sech²(z₂)``), where the gradient evaluates
it once.  Each Map computed it again (an exponential and a division per element, about as
long as the pass over memory itself); :func:`share_calls` gives such a call a Map of its own,
placed before its first reader, and lets every reader read that value instead.

The value is the same call of the same function on the same argument, stored in the
kernel's dtype as the readers' own per-row copies were (``hk[j]``,
:func:`~symnn.codegen.numba.passes.hoist_direction_free`); a reader's product of several
factors may multiply them in another order (the new symbol sorts elsewhere), so results
change by rounding only.  Only calls of direction-free per-sample values of the reader's
own size are shared, and only in tangent kernels (the gradient evaluates each call once).
In the B = 256 HVP of the 64-128-128-10 tanh MLP, five ``sech²`` passes become two.

>>> import sympy as sp
>>> from symnn.ops import Arg, Map, Var
>>> from symnn.ops._tanh import sech2
>>> z, g, d = (Var(n, "sample", (4,)) for n in ("z", "g", "d"))
>>> u, v, x = sp.symbols("u v x", real=True)
>>> m1 = Map(Var("delta", "sample", (4,)), (u * sech2(x),), (Arg(u, g), Arg(x, z)))
>>> m2 = Map(Var("a_dot", "sample", (4,)), (v * sech2(x),), (Arg(v, d), Arg(x, z)))
>>> ops = share_calls([m1, m2], {d})
>>> [op.out.name for op in ops], str(ops[0].exprs[0]), str(ops[2].exprs[0])
(['sech2_z', 'delta', 'a_dot'], 'sech²(z)', 'd*sech2_z')
"""

from __future__ import annotations

import re
from dataclasses import replace

import sympy as sp

from symnn import ops as P
from symnn.ops.ir import sym

__all__ = ["share_calls"]


def _canonical(op):
    """The Map's body in canonical symbols, and the symbols a shared call may read (values
    of the output's size read elementwise that do not change with the direction)."""
    canon = {a.symbol: sym(a.var, a.index) for a in op.args}
    return sp.sympify(op.exprs[0]).xreplace(canon), canon  # (a body may be a plain int)


def _calls(body, eligible: set) -> list:
    """The function calls of ``body`` reading only ``eligible`` symbols (in order)."""
    found: dict = {}
    for node in sp.preorder_traversal(body):
        if (isinstance(node, sp.Function) and node.free_symbols
                and node.free_symbols <= eligible):
            found.setdefault(node, None)
    return list(found)


def _eligible(op, kset) -> set:
    return {sym(a.var) for a in op.args
            if a.index is None and a.var.kind == "sample" and a.var.size == op.out.size
            and a.var not in kset}


def _name(call, taken: set) -> str:
    base = re.sub(r"\W", "_", f"{call.func.__name__}_"
                  + "_".join(sorted(s.name for s in call.free_symbols)))
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def share_calls(ops, kset) -> list:
    """``ops`` with every function call that two or more single-body Maps evaluate on the
    same direction-free values computed once, by a Map of its own before its first reader
    (see the module's docstring).  ``kset``: the values that change with the direction.
    A call that is already a Map's whole body (``a = tanh(z)``) is left alone: the
    emitter reads that value where the call recurs."""
    maps = [i for i, op in enumerate(ops) if isinstance(op, P.Map) and len(op.exprs) == 1]
    whole = {_canonical(ops[i])[0] for i in maps}
    users: dict = {}
    for i in maps:
        body, _ = _canonical(ops[i])
        for call in _calls(body, _eligible(ops[i], kset)):
            if call not in whole:
                users.setdefault((call, ops[i].out.size), []).append(i)
    shared = {key: idx for key, idx in users.items() if len(idx) >= 2}
    if not shared:
        return list(ops)
    taken = {v.name for op in ops for v in (op.out, *op.inputs)}
    by_var = {sym(v): v for op in ops for v in (op.out, *op.inputs)}
    before: dict = {}
    new_sym: dict = {}
    for (call, n), idx in shared.items():
        out = P.Var(_name(call, taken), "sample", (n,))
        args = tuple(P.Arg(s, by_var[s]) for s in sorted(call.free_symbols, key=str))
        before.setdefault(idx[0], []).append(P.Map(out, (call,), args))
        new_sym[(call, n)] = (sym(out), out)
    result = []
    for i, op in enumerate(ops):
        result.extend(before.get(i, []))
        if i in maps:
            op = _rewrite(op, new_sym)
        result.append(op)
    return result


def _rewrite(op, new_sym: dict):
    """A Map reading the shared values instead of calling (its body in canonical
    symbols)."""
    body, _ = _canonical(op)
    sub = {call: s for (call, n), (s, _v) in new_sym.items() if n == op.out.size}
    new = body.xreplace(sub)
    if new == body:
        return op
    args: dict = {}
    for a in op.args:
        args.setdefault(sym(a.var, a.index), P.Arg(sym(a.var, a.index), a.var, a.index))
    for (_call, n), (s, v) in new_sym.items():
        if n == op.out.size:
            args.setdefault(s, P.Arg(s, v))
    used = new.free_symbols
    return replace(op, exprs=(new,), args=tuple(a for s, a in args.items() if s in used))
