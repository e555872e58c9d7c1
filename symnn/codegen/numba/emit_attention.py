"""Self-attention ops (:mod:`symnn.ops.attention`): per-sample matrix products, the row
softmax (max-shifted) and its Jacobian, row dot products and row scalings.

A product with a parameter matrix (``Q = X W_qᵀ``, ``X̄ = Q̄ W_q``) or the batch mean of
per-sample products (``∂L/∂W_q = ⟨Q̄ᵀ X⟩``) is one BLAS-backed call of the runtime's
matrix blocks over all ``B·T`` rows (``_mm_nt``, ``_mm_nn``, ``_mm_tn``); the rest — the
products of two per-sample matrices (``Q Kᵀ``, ``A V``), the values with tangent directions
in the parameter factor, the row softmax and the row operations — are calls of the
attention blocks of :mod:`symnn.codegen.numba.runtime` (``_attn_mm``, ``_attn_softmax``,
``_attn_rows``), each compiled once, so that a kernel holds no loops of its own for them
(an HVP kernel's compile time stays that of its calls).  Every operand is passed as its
offset and its strides per sample and per direction (0 where it does not vary).
"""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.slots import Slot
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError

__all__ = ["emit_attn_matmul", "emit_attn_softmax", "emit_attn_softmaxt",
           "emit_attn_rowdot", "emit_attn_rowscale"]


def _strides(s: Slot) -> str:
    """``off, per-sample stride, per-direction stride`` of a value in its layout."""
    n = s.var.size
    bs, ks = {"sample": (str(n), "0"), "sampleK": (f"K * {n}", str(n)),
              "param": ("0", "0"), "paramK": ("0", str(n))}.get(s.mode, (None, None))
    if bs is None:
        raise CompileError(f"{s.var.name}: a {s.mode} value cannot be an attention operand")
    return f"{s.off}, {bs}, {ks}"


def _k(o: Slot) -> str:
    return "K" if o.is_k else "1"


@emits(P.AttnMatMul)
def emit_attn_matmul(w: KernelWriter, op: P.AttnMatMul) -> None:
    d = op.d
    a, b, o = w.slot(op.a), w.slot(op.b), w.slot(op.out)
    if w.acc:
        raise CompileError("an attention product cannot add into a sum")
    if _blas(w, op, a, b, o):
        return
    ars, acs = ("1", str(d.m)) if d.ta else (str(d.k), "1")
    brs, bcs = ("1", str(d.k)) if d.tb else (str(d.n), "1")
    scale = w.lit(float(1.0 / d.root ** 0.5))
    if d.mean:
        w.uses_inv_b = True
        scale = f"{scale} * inv_B"
    w.b(f"_attn_mm({a.arr}, {_strides(a)}, {ars}, {acs}, {b.arr}, {_strides(b)}, {brs}, "
        f"{bcs}, B, {_k(o)}, {d.m}, {d.k}, {d.n}, {scale}, {int(d.mean)}, {o.arr}, "
        f"{_strides(o) if not d.mean else f'{o.off}, 0, {d.m * d.n}'})")


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
    if z.is_k != o.is_k or w.acc:
        raise CompileError("a row softmax and its logits differ in directions")
    w.b(f"_attn_softmax({z.arr}, {z.off}, {w.rows(z)}, {d.T}, {d.n}, {int(d.causal)}, "
        f"{o.arr}, {o.off})")


def _rows(w: KernelWriter, u: P.Var, v: P.Var, out: P.Var, d: P.RowDims, what: int) -> None:
    us, vs, o = w.slot(u), w.slot(v), w.slot(out)
    if w.acc:
        raise CompileError("an attention row operation cannot add into a sum")
    w.b(f"_attn_rows({us.arr}, {_strides(us)}, {vs.arr}, {_strides(vs)}, B, {_k(o)}, {d.T}, "
        f"{d.n}, {what}, {o.arr}, {_strides(o)})")


@emits(P.AttnSoftmaxT)
def emit_attn_softmaxt(w: KernelWriter, op: P.AttnSoftmaxT) -> None:
    _rows(w, op.p, op.g, op.out, op.d, 0)


@emits(P.AttnRowDot)
def emit_attn_rowdot(w: KernelWriter, op: P.AttnRowDot) -> None:
    _rows(w, op.u, op.v, op.out, op.d, 1)


@emits(P.AttnRowScale)
def emit_attn_rowscale(w: KernelWriter, op: P.AttnRowScale) -> None:
    _rows(w, op.u, op.s, op.out, op.d, 2)
