"""``Penalty``: the value (Σ θ² or Σ |θ|, times the coefficient) or the gradient of an L2
or L1 penalty on one parameter (all of its entries or some)."""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError

__all__ = ["emit_penalty"]


@emits(P.Penalty)
def emit_penalty(w: KernelWriter, op: P.Penalty) -> None:
    p, o = w.slot(op.param), w.slot(op.out)
    size = op.param.size
    coef = w.lit(float(op.coef))
    l1 = int(op.kind == "l1")
    if not op.grad:
        if p.is_k:
            raise CompileError("the value of a penalty has no tangent here")
        w.b(f"acc = {w.lit(0.0)}")
        idx = list(range(size)) if op.indices is None else list(op.indices)
        if op.indices is None:
            w.b(f"for j in range({size}):")
            e = p.at("j")
            w.b(f"acc += {'abs(' + e + ')' if l1 else e + ' * ' + e}", 2)
        else:
            for j in idx:
                e = p.at(str(j))
                w.b(f"acc += {'abs(' + e + ')' if l1 else e + ' * ' + e}")
        w.b(f"{o.arr} = {coef} * acc")
        return
    R = "K" if o.is_k else "1"
    st = str(size) if p.is_k else "0"
    if op.indices is None:
        w.b(f"_penalty_grad({p.arr}, {p.off}, {st}, {size}, {l1}, {coef}, "
            f"{o.arr}, {o.off}, {R}, {w.acc})")
        return
    if not w.acc:
        w.b(f"for q in range({R} * {size}):")
        w.b(f"{o.at('q')} = {w.lit(0.0)}", 2)
    for j in op.indices:
        w.b(f"for k in range({R}):")
        src = p.at(f"k * {size} + {j}") if p.is_k else p.at(str(j))
        g = (f"{coef} * ({w.lit(1.0)} if {src} > 0 else ({w.lit(-1.0)} if {src} < 0 "
             f"else {w.lit(0.0)}))" if l1 else f"{w.lit(2.0 * float(op.coef))} * {src}")
        w.b(f"{o.at(f'k * {size} + {j}')} += {g}", 2)
