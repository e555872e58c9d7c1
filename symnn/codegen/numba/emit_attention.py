"""Self-attention ops (:mod:`symnn.ops.attention`): per-sample matrix products, the row
softmax (max-shifted) and its Jacobian, row dot products and row scalings.

A product with a parameter matrix (``Q = X W_qᵀ``, ``X̄ = Q̄ W_q``) or the batch mean of
per-sample products (``∂L/∂W_q = ⟨Q̄ᵀ X⟩``) is one BLAS-backed call of the runtime's
matrix blocks over all ``B·T`` rows (``_mm_nt``, ``_mm_nn``, ``_mm_tn``); the products of
two per-sample matrices (``Q Kᵀ``, ``A V``) and the values with tangent directions in the
parameter factor are loops, which Numba compiles well at attention's per-sample sizes.
Every loop walks the batch (``i``) and, when its output carries tangent directions, the
directions (``k``); an input without directions is read without ``k``.
"""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.slots import Slot
from symnn.codegen.numba.writer import KernelWriter, emits

__all__ = ["emit_attn_matmul", "emit_attn_softmax", "emit_attn_softmaxt",
           "emit_attn_rowdot", "emit_attn_rowscale"]


def _at(s: Slot, n: int, idx: str) -> str:
    """Component ``idx`` of value ``s`` (n components a row) for sample i, direction k."""
    if s.mode == "sample":
        return s.at(f"i * {n} + {idx}")
    if s.mode == "sampleK":
        return s.at(f"(i * K + k) * {n} + {idx}")
    if s.mode == "paramK":
        return s.at(f"k * {n} + {idx}")
    return s.at(idx)


def _open(w: KernelWriter, out: Slot) -> int:
    w.b("for i in range(B):")
    if out.is_k:
        w.b("for k in range(K):", 2)
        return 3
    return 2


def _store(w: KernelWriter) -> str:
    return "+=" if w.acc else "="


def _index(d: P.MatDims, first: bool, r: str, q: str) -> str:
    """Where op(A)[r, q] (``first``) or op(B)[q, r] lives in its stored layout."""
    if first:
        return f"{q} * {d.m} + {r}" if d.ta else f"{r} * {d.k} + {q}"
    return f"{r} * {d.k} + {q}" if d.tb else f"{q} * {d.n} + {r}"


@emits(P.AttnMatMul)
def emit_attn_matmul(w: KernelWriter, op: P.AttnMatMul) -> None:
    d = op.d
    a, b, o = w.slot(op.a), w.slot(op.b), w.slot(op.out)
    if _blas(w, op, a, b, o):
        return
    na, nb, no = d.m * d.k, d.k * d.n, d.m * d.n
    scale = w.lit(float(1.0 / d.root ** 0.5)) if d.root != 1 else None
    if d.mean:
        w.uses_inv_b = True
        if not w.acc:
            w.b(f"for q in range({'K * ' if o.is_k else ''}{no}):")
            w.b(f"{o.at('q')} = {w.lit(0.0)}", 2)
    dd = _open(w, o)
    w.b(f"for r in range({d.m}):", dd)
    w.b(f"for c in range({d.n}):", dd + 1)
    w.b(f"e = {w.lit(0.0)}", dd + 2)
    w.b(f"for q in range({d.k}):", dd + 2)
    w.b(f"e += {_at(a, na, _index(d, True, 'r', 'q'))} * "
        f"{_at(b, nb, _index(d, False, 'c', 'q'))}", dd + 3)
    if scale is not None:
        w.b(f"e *= {scale}", dd + 2)
    if d.mean:
        w.b(f"{_at(o, no, f'r * {d.n} + c')} += e * inv_B", dd + 2)
    else:
        w.b(f"{_at(o, no, f'r * {d.n} + c')} {_store(w)} e", dd + 2)


def _blas(w: KernelWriter, op: P.AttnMatMul, a: Slot, b: Slot, o: Slot) -> bool:
    """One runtime matrix call over the stacked rows, where the layouts allow it."""
    d = op.d
    if d.root != 1:
        return False
    if not d.mean and a.var.per_sample and not b.var.per_sample and not b.is_k \
            and not d.ta:
        rows = f"{w.rows(a)} * {d.m}"
        if d.tb:   # out (rows × n) = A (rows × k) Bᵀ, B stored (n × k)
            w.b(f"_mm_nt({a.arr}, {a.off}, {rows}, {d.k}, {b.arr}, {b.off}, {d.n}, "
                f"{b.arr}, 0, 0, {w.acc}, {o.arr}, {o.off})")
        else:      # out (rows × n) = A (rows × k) B, B stored (k × n)
            w.b(f"_mm_nn({a.arr}, {a.off}, {rows}, {d.k}, {b.arr}, {b.off}, {d.n}, "
                f"{w.acc}, {o.arr}, {o.off})")
        return True
    if d.mean and d.ta and not d.tb and not a.is_k and not b.is_k:
        # ⟨Aᵀ B⟩ over the B·T stacked rows: A stored (T × m), B (T × n) per sample
        w.uses_inv_b = True
        w.b(f"_mm_tn({a.arr}, {a.off}, B * {d.k}, {d.m}, {b.arr}, {b.off}, {d.n}, inv_B, "
            f"{w.acc}, {o.arr}, {o.off})")
        return True
    return False


@emits(P.AttnSoftmax)
def emit_attn_softmax(w: KernelWriter, op: P.AttnSoftmax) -> None:
    d = op.d
    z, o = w.slot(op.z), w.slot(op.out)
    n = d.T * d.n
    dd = _open(w, o)
    w.b(f"for r in range({d.T}):", dd)
    w.b(f"j = min({d.n}, r + 1)" if d.causal else f"j = {d.n}", dd + 1)
    w.b(f"e = {_at(z, n, f'r * {d.n}')}", dd + 1)
    w.b("for c in range(1, j):", dd + 1)
    w.b(f"e = max(e, {_at(z, n, f'r * {d.n} + c')})", dd + 2)
    w.b(f"s = {w.lit(0.0)}", dd + 1)
    w.b("for c in range(j):", dd + 1)
    w.b(f"d = math.exp({_at(z, n, f'r * {d.n} + c')} - e)", dd + 2)
    w.b(f"{_at(o, n, f'r * {d.n} + c')} = d", dd + 2)
    w.b("s += d", dd + 2)
    w.b(f"s = {w.lit(1.0)} / s", dd + 1)
    w.b("for c in range(j):", dd + 1)
    w.b(f"{_at(o, n, f'r * {d.n} + c')} *= s", dd + 2)
    if d.causal:
        w.b(f"for c in range(j, {d.n}):", dd + 1)
        w.b(f"{_at(o, n, f'r * {d.n} + c')} = {w.lit(0.0)}", dd + 2)


@emits(P.AttnSoftmaxT)
def emit_attn_softmaxt(w: KernelWriter, op: P.AttnSoftmaxT) -> None:
    d = op.d
    p, g, o = w.slot(op.p), w.slot(op.g), w.slot(op.out)
    n = d.T * d.n
    dd = _open(w, o)
    w.b(f"for r in range({d.T}):", dd)
    w.b(f"s = {w.lit(0.0)}", dd + 1)
    w.b(f"for c in range({d.n}):", dd + 1)
    w.b(f"s += {_at(p, n, f'r * {d.n} + c')} * {_at(g, n, f'r * {d.n} + c')}", dd + 2)
    w.b(f"for c in range({d.n}):", dd + 1)
    w.b(f"{_at(o, n, f'r * {d.n} + c')} {_store(w)} {_at(p, n, f'r * {d.n} + c')} * "
        f"({_at(g, n, f'r * {d.n} + c')} - s)", dd + 2)


@emits(P.AttnRowDot)
def emit_attn_rowdot(w: KernelWriter, op: P.AttnRowDot) -> None:
    d = op.d
    u, v, o = w.slot(op.u), w.slot(op.v), w.slot(op.out)
    n = d.T * d.n
    dd = _open(w, o)
    w.b(f"for r in range({d.T}):", dd)
    w.b(f"s = {w.lit(0.0)}", dd + 1)
    w.b(f"for c in range({d.n}):", dd + 1)
    w.b(f"s += {_at(u, n, f'r * {d.n} + c')} * {_at(v, n, f'r * {d.n} + c')}", dd + 2)
    w.b(f"{_at(o, d.T, 'r')} {_store(w)} s", dd + 1)


@emits(P.AttnRowScale)
def emit_attn_rowscale(w: KernelWriter, op: P.AttnRowScale) -> None:
    d = op.d
    u, s, o = w.slot(op.u), w.slot(op.s), w.slot(op.out)
    n = d.T * d.n
    dd = _open(w, o)
    w.b(f"for r in range({d.T}):", dd)
    w.b(f"e = {_at(s, d.T, 'r')}", dd + 1)
    w.b(f"for c in range({d.n}):", dd + 1)
    w.b(f"{_at(o, n, f'r * {d.n} + c')} {_store(w)} {_at(u, n, f'r * {d.n} + c')} * e",
        dd + 2)
