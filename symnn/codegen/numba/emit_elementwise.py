"""The elementwise op, ``Map``: one loop per (fused) Map.

Each Map is one loop whose body :class:`~symnn.codegen.printer.KernelPrinter` prints after
:func:`sympy.cse`; a body that recomputes an earlier Map's value (``tanh(z1)`` in a tangent
when ``a1 = tanh(z1)`` exists) reads that value instead.  The loop runs over the whole value
(``flat``, index ``q``), over rows and components (``elem``: ``i``, ``k``, ``j``) or over
rows with the components unrolled (``row``, one body per component).
"""

from __future__ import annotations

import re

import sympy as sp

from symnn import ops as P
from symnn.codegen.numba.passes import canonical, hoist_direction_free, hoist_invariant
from symnn.codegen.numba.slots import Slot
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError

__all__ = ["emit_map"]

_K_INDEX = re.compile(r"\b(k|ik|rk\d+)\b")  # an element read that moves with the direction


@emits(P.Map)
def emit_map(w: KernelWriter, op: P.Map) -> None:
    out = w.slot(op.out)
    exprs, args = canonical(op)
    exprs, args = reuse_values(w, exprs, args, op.out)
    n = op.out.size
    single = len(exprs) == 1
    _check_sizes(exprs, args, n)
    means = [w.slot(m.out) for m in w.means.get(op.out, [])]
    loop = _loop_kind(w, out, args, single, bool(means), n)
    w.rows_used = set()
    bodies, targets, invariant = _bodies(w, loop, out, exprs, args, n)
    bodies, hoisted = hoist_invariant(bodies, invariant, lambda: w.fresh("h"))
    for sym, e in hoisted:
        w.b(f"{sym} = {w.printer.doprint(e)}")
    per_row = []
    if loop == "elem" and out.is_k:
        bodies, per_row = hoist_direction_free(bodies, _k_varying(bodies),
                                               lambda: w.fresh("hk"))
        for name, _ in per_row:
            w.b(f"{name} = np.empty({n}, work.dtype)")
    repl, reduced = sp.cse(bodies, symbols=sp.numbered_symbols("c"), order="none")
    ind = _open_loops(w, loop, out.is_k, n, per_row)
    pr = w.printer
    for sym, e in repl:
        w.b(f"{sym} = {pr.doprint(e)}", ind)
    if not means:
        op_ = "+=" if w.acc else "="
        for t, e in zip(targets, reduced):
            w.b(f"{t} {op_} {pr.doprint(e)}", ind)
    else:
        _store_with_means(w, loop, targets, reduced, means, n, ind)
    remember(w, op, exprs, args)


def _check_sizes(exprs, args, n: int) -> None:
    if len(exprs) != 1 and len(exprs) != n:
        raise CompileError(f"{len(exprs)} bodies for {n} components")
    for a in args.values():
        if a.var.per_sample and a.index is None and a.var.size not in (n, 1):
            raise CompileError(
                f"elementwise argument {a.var.name} has size {a.var.size}, the output {n}"
            )


def _loop_kind(w: KernelWriter, out: Slot, args, single: bool, means: bool, n: int) -> str:
    """``flat`` when every argument is read at the output's own index, else ``elem`` (one
    body for every component) or ``row`` (one body per component)."""
    is_k = out.is_k
    flat = single and not means and all(
        (w.slot(a.var).mode in ("total", "param"))
        or (a.var.per_sample and a.index is None and a.var.size == n
            and w.slot(a.var).is_k == is_k and a.var not in w.deferred)
        for a in args.values()
    )
    return "flat" if flat else ("elem" if single and n > 1 else "row")


def _bodies(w: KernelWriter, loop: str, out: Slot, exprs, args, n: int):
    """The loop bodies in the arrays' element names, the elements they are stored into,
    and the symbols of values that do not change inside the loops."""
    invariant: set = set()

    def read(a, comp):
        text = access(w, a, loop, comp)
        if isinstance(text, tuple):  # value + deferred bias: CSE shares the sum
            return sp.Symbol(text[0], real=True) + sp.Symbol(text[1], real=True)
        s = sp.Symbol(text, real=True)
        if w.slot(a.var).mode in ("param", "total"):
            invariant.add(s)
        return s

    if loop == "row":
        bodies = []
        for c in range(n):
            sub = {s: read(a, c) for s, a in args.items()}
            bodies.append((exprs[0] if len(exprs) == 1 else exprs[c]).xreplace(sub))
        targets = [out.at(f"{row_name(w, out)} + {c}" if c else row_name(w, out))
                   for c in range(n)]
        return bodies, targets, invariant
    sub = {s: read(a, None) for s, a in args.items()}
    bodies = [exprs[0].xreplace(sub)]
    targets = [out.at(f"{row_name(w, out)} + j") if loop == "elem" else out.at("q")]
    return bodies, targets, invariant


def _k_varying(bodies) -> set:
    """The element symbols of the bodies that change with the direction ``k``."""
    return {s for b in bodies for s in b.free_symbols if _K_INDEX.search(s.name)}


def _open_loops(w: KernelWriter, loop: str, is_k: bool, n: int, per_row=()) -> int:
    """Write the loop headers (and the row offsets used); returns the body's indent.
    ``per_row``: direction-free values computed per row before the ``k`` loop."""
    if loop == "flat":
        size = "B * K" if is_k else "B"
        if n > 1:
            size += f" * {n}"
        w.b(f"for q in range({size}):")
        return 2
    w.b("for i in range(B):")
    ind = 2
    for r in sorted(w.rows_used):
        if r.startswith("ri"):
            w.b(f"{r} = i * {r[2:]}", ind)
    if per_row:
        w.b(f"for j in range({n}):", ind)
        for name, e in per_row:
            w.b(f"{name}[j] = {w.printer.doprint(e)}", ind + 1)
    if is_k:
        w.b("for k in range(K):", ind)
        ind += 1
        if "ik" in w.rows_used or any(r.startswith("rk") for r in w.rows_used):
            w.b("ik = i * K + k", ind)
        for r in sorted(w.rows_used):
            if r.startswith("rk"):
                w.b(f"{r} = ik * {r[2:]}", ind)
    if loop == "elem":
        w.b(f"for j in range({n}):", ind)
        ind += 1
    return ind


def _store_with_means(w: KernelWriter, loop: str, targets, reduced, means, n: int,
                      ind: int) -> None:
    """Store the values and sum the batch means of this value in the same loop (rows in
    order); the means are zeroed before the op's code and scaled by 1/B after it."""
    pr = w.printer
    op_ = "+=" if w.acc else "="
    comps = ["j"] if loop == "elem" else [str(c) for c in range(n)]
    for c, (t, e) in enumerate(zip(targets, reduced)):
        w.b(f"e = {pr.doprint(e)}", ind)
        w.b(f"{t} {op_} e", ind)
        for ms in means:
            col = comps[c] if comps[c] != "0" else "0"
            idx = f"k * {n} + {col}" if ms.is_k else col
            w.b(f"{ms.at(idx)} += e", ind)
    w.uses_inv_b = True
    zero, tail = [], []
    for ms in means:
        size = f"K * {n}" if ms.is_k else str(n)
        zero.append(f"_fill({ms.arr}, {ms.off}, {size}, 0.0, 0)")
        tail.append(f"_fill({ms.arr}, {ms.off}, {size}, inv_B, 1)")
    at = len(w.body) - 1
    while not isinstance(w.body[at], tuple):
        at -= 1
    w.body[at + 1:at + 1] = ["    " + z for z in zero]
    for t in tail:
        w.b(t)


def reuse_values(w: KernelWriter, exprs, args, out: P.Var):
    """Read earlier Maps' values where a body recomputes them (``tanh(z1)`` → ``a1``)."""
    repl = {body: sym for body, (sym, var) in w.values.items()
            if var.size in (out.size, 1)}
    if not repl:
        return exprs, args
    new = [e.xreplace(repl) for e in exprs]
    if new == exprs:
        return exprs, args
    args = dict(args)
    for _body, (sym, var) in w.values.items():
        args.setdefault(sym, P.Arg(sym, var, None))
    used = set().union(*(e.free_symbols for e in new))
    return new, {s: a for s, a in args.items() if s in used}


def remember(w: KernelWriter, op: P.Map, exprs, args) -> None:
    """Note the value of a single-body Map of ordinary values, for :func:`reuse_values`."""
    if len(exprs) != 1 or op.out in w.kvars or w.acc or op.out in w.shared:
        return
    e = exprs[0]
    if e.is_Symbol or not e.free_symbols:
        return
    for a in args.values():
        if a.index is not None or not (a.var.per_sample or a.var.kind == "total"):
            return
        if a.var.per_sample and a.var.size not in (op.out.size, 1):
            return
    w.values.setdefault(e, (sp.Symbol(op.out.name, real=True), op.out))


def access(w: KernelWriter, a: P.Arg, loop: str, comp):
    """Text reading argument ``a`` inside a Map loop.

    ``loop``: ``flat`` (index ``q`` runs over the whole value), ``elem`` (row ``i`` or
    ``(i, k)``, component ``j``) or ``row`` (component ``comp``).  Row offsets are the
    locals ``ri<n>`` = i·n and ``rk<n>`` = (i·K + k)·n set up by :func:`emit_map`.  An
    affine value whose bias is added where it is read gives ``(value, bias)``."""
    s = w.slot(a.var)
    idx = a.index if a.index is not None else 0
    if s.mode == "total":
        return s.arr
    if s.mode == "totalK":
        return s.at("k")
    if s.mode == "param":
        return s.at(str(idx))
    if s.mode == "paramK":
        return s.at(f"k * {s.n} + {idx}" if idx else f"k * {s.n}")
    if loop == "flat":
        return s.at("q")
    if a.index is not None:
        c = str(a.index)
    elif s.n == 1:
        c = "0"
    else:
        c = "j" if loop == "elem" else str(comp)
    row = row_name(w, s)
    text = s.at(row if c == "0" else f"{row} + {c}")
    b = w.deferred.get(a.var)
    if b is not None:  # the affine value's bias, added where it is read (see write)
        if b.is_k:
            return text, b.at(f"k * {s.n} + {c}" if c != "0" else f"k * {s.n}")
        return text, b.at(c)
    return text


def row_name(w: KernelWriter, s: Slot) -> str:
    name = (f"rk{s.n}" if s.is_k else f"ri{s.n}") if s.n > 1 else ("ik" if s.is_k else "i")
    w.rows_used.add(name)
    return name
