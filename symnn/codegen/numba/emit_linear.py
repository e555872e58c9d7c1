"""Linear ops: ``Affine`` (W a + b), ``MatTVec`` (Wᵀ g) and ``OuterMean`` (the batch mean
of outer products u vᵀ), as calls of the matrix blocks of
:mod:`symnn.codegen.numba.runtime` (BLAS above a size threshold).  The batch mean's ``1/B``
is BLAS's alpha; an Affine's bias is added where its value is read when only Maps read it.
Tangent values (``K`` directions) stay one product over ``B·K`` rows where they can.
"""

from __future__ import annotations

from symnn import ops as P
from symnn.codegen.numba.slots import Slot
from symnn.codegen.numba.writer import KernelWriter, emits
from symnn.errors import CompileError

__all__ = ["emit_affine", "emit_mattvec", "emit_outermean"]


@emits(P.Affine)
def emit_affine(w: KernelWriter, op: P.Affine) -> None:
    W, a, o = w.slot(op.W), w.slot(op.a), w.slot(op.out)
    bb = w.slot(op.b) if op.b is not None and op.out not in w.deferred else None
    n_out, n_in = op.W.shape
    acc = w.acc
    if op.a in w.gen.identity_tangents and not W.is_k and not acc:
        _affine_identity(w, W, o, bb, n_out, n_in)
    elif not W.is_k and (a.is_k or not o.is_k):
        rows = "B * K" if a.is_k else "B"
        hasb = bb is not None and not bb.is_k
        barg = f"{bb.arr}, {bb.off}, 1" if hasb else f"{W.arr}, 0, 0"
        w.b(f"_mm_nt({a.arr}, {a.off}, {rows}, {n_in}, {W.arr}, {W.off}, {n_out}, "
            f"{barg}, {acc}, {o.arr}, {o.off})")
        if bb is not None and bb.is_k:
            _bias_rows(w, o, bb, n_out)
    elif W.is_k and not a.is_k:
        # a (B, n_in) times the stacked directions (K·n_out, n_in): (B, K·n_out) at once,
        # and a bias of the directions, (K, n_out), is a bias of K·n_out columns
        if bb is not None and bb.is_k:
            barg = f"{bb.arr}, {bb.off}, 1"
        else:
            barg = f"{W.arr}, 0, 0"
        w.b(f"_mm_nt({a.arr}, {a.off}, B, {n_in}, {W.arr}, {W.off}, K * {n_out}, "
            f"{barg}, {acc}, {o.arr}, {o.off})")
        if bb is not None and not bb.is_k:
            w.b(f"_add_rows({o.arr}, {o.off}, B * K, 1, {n_out}, {bb.arr}, {bb.off})")
    else:
        _affine_loops(w, W, a, o, bb, n_out, n_in)


def _affine_identity(w: KernelWriter, W: Slot, o: Slot, bb: Slot | None, n_out: int,
                     n_in: int) -> None:
    """a is the identity input tangent: (W ẋ)[i, k, :] = W[:, k]."""
    w.b("for i in range(B):")
    w.b(f"for k in range({n_in}):", 2)
    w.b(f"for j in range({n_out}):", 3)
    w.b(f"{o.at(f'(i * K + k) * {n_out} + j')} = {W.at(f'j * {n_in} + k')}", 4)
    if bb is not None:
        _bias_rows(w, o, bb, n_out)


def _affine_loops(w: KernelWriter, W: Slot, a: Slot, o: Slot, bb: Slot | None, n_out: int,
                  n_in: int) -> None:
    """The rest (a direction in both factors, or only in the bias): loops."""
    op_ = "+=" if w.acc else "="
    w.b("for i in range(B):")
    w.b("for k in range(K):", 2)
    w.b(f"for j in range({n_out}):", 3)
    w.b(f"s = {w.lit(0.0)}", 4)
    w.b(f"for l in range({n_in}):", 4)
    wt = W.at(f"(k * {n_out} + j) * {n_in} + l") if W.is_k else W.at(f"j * {n_in} + l")
    at = a.at(f"(i * K + k) * {n_in} + l") if a.is_k else a.at(f"i * {n_in} + l")
    w.b(f"s += {wt} * {at}", 5)
    if bb is not None:
        w.b(f"s += {bb.at(f'k * {n_out} + j') if bb.is_k else bb.at('j')}", 4)
    w.b(f"{o.at(f'(i * K + k) * {n_out} + j')} {op_} s", 4)


def _bias_rows(w: KernelWriter, o: Slot, bb: Slot, n: int) -> None:
    if bb.is_k:
        w.b(f"_add_rows({o.arr}, {o.off}, B, K, {n}, {bb.arr}, {bb.off})")
    else:
        w.b(f"_add_rows({o.arr}, {o.off}, {w.rows(o)}, 1, {n}, {bb.arr}, {bb.off})")


@emits(P.MatTVec)
def emit_mattvec(w: KernelWriter, op: P.MatTVec) -> None:
    W, g, o = w.slot(op.W), w.slot(op.g), w.slot(op.out)
    n_out, n_in = op.W.shape
    if not W.is_k:
        rows = "B * K" if g.is_k else "B"
        if o.is_k and not g.is_k:
            raise CompileError("inconsistent directions in MatTVec")
        w.b(f"_mm_nn({g.arr}, {g.off}, {rows}, {n_out}, {W.arr}, {W.off}, {n_in}, "
            f"{w.acc}, {o.arr}, {o.off})")
        return
    if not g.is_k:
        t = w.carve(op.W.name + "_h", "K", n_out * n_in)
        w.b(f"_adjoint_k({g.arr}, {g.off}, B, {n_out}, {W.arr}, {W.off}, K, {n_in}, "
            f"{w.acc}, work, {t}, {o.arr}, {o.off})")
        return
    op_ = "+=" if w.acc else "="
    w.b("for i in range(B):")
    w.b("for k in range(K):", 2)
    w.b(f"for c in range({n_in}):", 3)
    w.b(f"s = {w.lit(0.0)}", 4)
    w.b(f"for r in range({n_out}):", 4)
    w.b(f"s += {g.at(f'(i * K + k) * {n_out} + r')} * "
        f"{W.at(f'(k * {n_out} + r) * {n_in} + c')}", 5)
    w.b(f"{o.at(f'(i * K + k) * {n_in} + c')} {op_} s", 4)


@emits(P.OuterMean)
def emit_outermean(w: KernelWriter, op: P.OuterMean) -> None:
    u, v, o = w.slot(op.u), w.slot(op.v), w.slot(op.out)
    nu, nv = op.u.size, op.v.size
    w.uses_inv_b = True
    if not u.is_k and not v.is_k:
        w.b(f"_mm_tn({u.arr}, {u.off}, B, {nu}, {v.arr}, {v.off}, {nv}, inv_B, "
            f"{w.acc}, {o.arr}, {o.off})")
    elif u.is_k and not v.is_k:
        # (B, K·nu)ᵀ (B, nv) is (K·nu, nv): every direction's mean outer product at once
        w.b(f"_mm_tn({u.arr}, {u.off}, B, K * {nu}, {v.arr}, {v.off}, {nv}, inv_B, "
            f"{w.acc}, {o.arr}, {o.off})")
    elif v.is_k and not u.is_k:
        t = w.carve(op.out.name + "_t", "K", nu * nv)
        w.b(f"_outer_k({u.arr}, {u.off}, B, {nu}, {v.arr}, {v.off}, K, {nv}, inv_B, "
            f"{w.acc}, work, {t}, {o.arr}, {o.off})")
    else:
        if not w.acc:
            w.b(f"for q in range(K * {nu * nv}):")
            w.b(f"{o.at('q')} = {w.lit(0.0)}", 2)
        w.b("for i in range(B):")
        w.b("for k in range(K):", 2)
        w.b(f"for r in range({nu}):", 3)
        w.b(f"d = {u.at(f'(i * K + k) * {nu} + r')} * inv_B", 4)
        w.b(f"for c in range({nv}):", 4)
        w.b(f"{o.at(f'(k * {nu} + r) * {nv} + c')} += "
            f"d * {v.at(f'(i * K + k) * {nv} + c')}", 5)
