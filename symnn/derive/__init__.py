"""Derivation: exact derivatives by reverse mode over the network graph.

``derive(net)`` returns a :class:`~symnn.ops.Program` holding the forward
pass, the per-sample loss ℓ, the batch loss L and the backward pass (δ⁽ˡ⁾ and every
∂L/∂θ), each value a named :class:`~symnn.ops.Var`.  ``hvp_program`` and
``gnvp_program`` extend it forward-over-reverse (the R-operator) to exact Hessian-vector and
Gauss-Newton-vector products; ``input_jvp_program`` gives the input Jacobian.
"""

from __future__ import annotations

import re

from symnn import ops as P
from symnn.derive.build import Builder, _coef, forward_program
from symnn.derive.reverse import rename_vars, reverse
from symnn.derive.simplify import fuse_maps
from symnn.derive.tangent import jvp


def forward_ops_out(ops):
    return [op.out for op in ops]

__all__ = ["derive", "hvp_program", "gnvp_program", "input_jvp_program", "Derived"]


class Derived:
    """The derived program and what each value means.

    Attributes
    ----------
    program : Program
        Forward + backward ops.  Outputs: ``prediction``, ``loss``, ``grad:<param>``.
    forward_ops, backward_ops : list of Op
    params : list of Var
        In the flat layout order.
    cotangent : dict
        ``{value: its cotangent Var}`` — e.g. ``z2 → delta2``, ``W1 → gW1``.
    meta : dict
        ``prediction``, ``output`` (the value the loss reads: logits for fused losses),
        ``ell``, ``L``, ``fused``, ``penalties``.
    """

    def __init__(self, declared, builder: Builder, forward_ops, cotangent):
        self.declared = declared
        self.program = builder.prog
        self.meta = builder.meta
        self.forward_ops = forward_ops
        fwd_ids = {id(op) for op in forward_ops}
        self.backward_ops = [op for op in builder.prog.ops if id(op) not in fwd_ids]
        self.params = [v for v in builder.prog.inputs.values() if v.kind == "param"]
        self.cotangent = cotangent
        self._builder = builder

    @property
    def x(self) -> P.Var:
        return self.program.inputs["x"]

    @property
    def y(self) -> P.Var:
        return self.program.inputs["y"]

    def grad(self, name: str) -> P.Var:
        return self.program.outputs["grad:" + name]


_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _nice_name(var: P.Var) -> P.Var | None:
    """Name of the cotangent of ``var`` as the mathematics writes it."""
    n = var.name
    if var.kind == "param":
        return P.Var("g" + n, "param", var.shape,
                     r"\frac{\partial L}{\partial %s}" % var.tex, "∂L/∂" + var.text)
    if n.startswith("z") and n[1:].isdigit():
        l = n[1:]
        return P.Var("delta" + l, "sample", var.shape, r"\delta^{(%s)}" % l,
                     "δ" + P.superscript(f"({l})"))
    m = re.fullmatch(r"z(\d+)_(\d+)", n)  # a recurrent layer's step: δ⁽ˡ⁾ₜ
    if m is not None:
        l, t = m.groups()
        return P.Var(f"delta{l}_{t}", "sample", var.shape, r"{\delta^{(%s)}_{%s}}" % (l, t),
                     "δ" + P.superscript(f"({l})") + t.translate(_SUB))
    if var.kind in ("input", "target"):
        return None
    return P.Var("g_" + n, "sample", var.shape,
                 r"\nabla_{%s}\ell" % var.tex, "∇_" + var.text + "ℓ")


def _derive(declared) -> Derived:
    b = forward_program(declared)
    forward_ops = list(b.prog.ops)
    params = [v for v in b.prog.inputs.values() if v.kind == "param"]
    ell = b.meta["ell"]
    ct = reverse(b, ell, params, [op for op in forward_ops if op.out.per_sample])
    # penalties: their gradients join the data term
    grads = {}
    for p in params:
        g = ct.get(p)
        if g is None or not isinstance(g, P.Var):
            # a parameter that does not reach the loss: zero gradient
            g = b.emit(P.Map(b.temp((p.size,)), (0,), ()))
            g = b.emit(P.BatchMean(b.temp(p.shape, "param"), g))
        pen_terms = []
        for pen, var, idx in b.meta.get("penalties", []):
            if var == p:
                out = b.temp(p.shape, "param")
                pen_terms.append(b.emit(P.Penalty(out, p, pen.kind, _coef(pen.lam), True, idx)))
        if pen_terms:
            g = b.emit(P.Add(b.temp(p.shape, "param"), (g, *pen_terms)))
        grads[p] = g
    # name the cotangents the way the mathematics does
    produced = {op.out for op in b.prog.ops[len(forward_ops):]}
    mapping: dict[P.Var, P.Var] = {}
    cot: dict[P.Var, P.Var] = {}
    for var, g in list(ct.items()) + list(grads.items()):
        if not isinstance(g, P.Var):
            continue
        if var.kind == "param" and var not in grads:
            continue
        if var.kind == "param":
            g = grads[var]
        nice = _nice_name(var)
        if nice is not None and g in produced and g not in mapping and nice not in cot.values():
            mapping[g] = nice
            cot[var] = nice
        else:
            cot[var] = mapping.get(g, g)
    backward = rename_vars(b.prog.ops[len(forward_ops):], mapping)
    keep = set(mapping.values()) | set(forward_ops_out(forward_ops))
    b.prog.ops = forward_ops + fuse_maps(backward, keep, only_temps=True)
    for p in params:
        b.prog.outputs["grad:" + p.name] = mapping.get(grads[p], grads[p])
    out = b.meta["output"]
    b.meta["g_output"] = cot.get(out)
    return Derived(declared, b, forward_ops, cot)


def derive(declared) -> Derived:
    """Derive the forward and backward program of a network or custom model.

    The result is kept on the declaration (declarations are immutable), so printing,
    expanding and compiling the same network derive it once.

    Examples
    --------
    >>> import symnn
    >>> d = derive(symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid"))
    >>> sorted(k for k in d.program.outputs if k.startswith("grad:"))
    ['grad:W1', 'grad:W2', 'grad:b1', 'grad:b2']
    """
    d = getattr(declared, "_derived", None)
    if d is None:
        d = _derive(declared)
        try:
            declared._derived = d
        except AttributeError:  # pragma: no cover - a declaration without a __dict__
            pass
    return d


def hvp_program(d: Derived):
    """Forward-over-reverse: the tangent of every gradient along parameter tangents ``v``.

    Returns ``(ops, tangent_inputs, hvp_outputs)``: the extra ops (to run after
    ``d.program``), the tangent Vars (``vW1``, …, one per parameter, same shapes) and
    ``{param name: Var holding (H v) for that parameter}``.
    """
    b = Builder(prog=P.Program(list(d.program.ops)), counter=10_000)
    tangents = {p: P.Var("v" + p.name, "param", p.shape, r"v_{%s}" % p.tex, "v_" + p.text)
                for p in d.params}
    dots = jvp(b, d.program.ops, dict(tangents))
    outs = {}
    for p in d.params:
        g = d.program.outputs["grad:" + p.name]
        t = dots.get(g)
        if t is None:
            t = b.emit(P.Map(b.temp((p.size,)), (0,), ()))
            t = b.emit(P.BatchMean(b.temp(p.shape, "param"), t))
        outs[p.name] = t
    extra = b.prog.ops[len(d.program.ops):]
    return extra, tangents, outs


def gnvp_program(d: Derived):
    """The Gauss-Newton product ``Jᵀ H_ℓ J v + ∇²R v`` (J: Jacobian of the loss's input
    value; R: the penalties, whose curvature is ``2λ`` on L2-penalised components and 0
    for L1), linear in ``v``.

    The loss's input value ``u`` is the network output, or the logits for a fused output and
    loss (softmax with cross_entropy / kl; sigmoid with bce / cross_entropy / kl:
    ``meta["fused"]``).  Returns ``(ops, tangent_inputs, outputs)`` like
    :func:`hvp_program`.
    """
    u = d.meta["output"]
    g_u = d.meta["g_output"]
    b = Builder(prog=P.Program(list(d.program.ops)), counter=20_000)
    tangents = {p: P.Var("v" + p.name, "param", p.shape, r"v_{%s}" % p.tex, "v_" + p.text)
                for p in d.params}
    # 1. J v: tangent of the forward ops up to u
    fwd = [op for op in d.forward_ops if op.out.per_sample]
    upto = fwd[: [op.out for op in fwd].index(u) + 1] if u in [op.out for op in fwd] else fwd
    dots = jvp(b, upto, dict(tangents), cut="cuts_gauss_newton")  # J: the truncated one
    u_dot = dots.get(u)
    # 2. H_ℓ (J v): tangent of the loss's cotangent at u, only u varying
    loss_part = _ops_between(d, u, g_u)
    dots2 = jvp(b, loss_part, {u: u_dot} if u_dot is not None else {})
    r = dots2.get(g_u)
    # 3. Jᵀ r: replay the backward ops downstream of g_u with r as the seed
    downstream = _downstream(d.backward_ops, g_u) if r is not None else []
    mapping = {g_u: r}
    for op in downstream:
        mapping[op.out] = P.Var("gn_" + op.out.name, op.out.kind, op.out.shape,
                                op.out.tex, op.out.text)
    # 4. a penalty's term: its curvature times v (2λv for L2, 0 for L1), never its gradient
    #    (the replayed sums that add a penalty's gradient ∇R(θ) get 2λv instead)
    pen_grads = {op.out: op for op in d.backward_ops if isinstance(op, P.Penalty) and op.grad}
    downstream = [_penalty_curvature(b, op, pen_grads, tangents) if isinstance(op, P.Add)
                  else op for op in downstream]
    replay = rename_vars(downstream, mapping)
    b.prog.ops.extend(replay)
    outs = {}
    for p in d.params:
        g = d.program.outputs["grad:" + p.name]
        t = mapping.get(g)
        if t is None:
            # the data term does not reach p: only the penalties' curvature is left
            terms = [_penalty_curvature_term(b, op, tangents) for op in pen_grads.values()
                     if op.param == p]
            terms = [x for x in terms if x is not None]
            if len(terms) > 1:
                t = b.emit(P.Add(b.temp(p.shape, "param"), tuple(terms)))
            elif terms:
                t = terms[0]
            else:
                t = b.emit(P.Map(b.temp((p.size,)), (0,), ()))
                t = b.emit(P.BatchMean(b.temp(p.shape, "param"), t))
        outs[p.name] = t
    extra = b.prog.ops[len(d.program.ops):]
    return extra, tangents, outs


def _penalty_curvature_term(b: Builder, op: P.Penalty, tangents: dict) -> P.Var | None:
    """``∇²R · v`` of one penalty gradient op: ``2λ v`` for L2, None (zero) for L1."""
    if op.kind == "l1":
        return None  # λ sign(θ) is constant almost everywhere
    out = b.temp(op.param.shape, "param")
    return b.emit(P.Penalty(out, tangents[op.param], "l2", op.coef, True, op.indices))


def _penalty_curvature(b: Builder, op: P.Add, pen_grads: dict, tangents: dict) -> P.Add:
    """An Add of the backward pass with its penalty-gradient terms replaced by the
    penalties' curvature along ``v`` (the Gauss-Newton product of ``L + R`` is
    ``Jᵀ H_ℓ J v + ∇²R v``)."""
    if not any(t in pen_grads for t in op.terms):
        return op
    terms = []
    for t in op.terms:
        if t in pen_grads:
            t = _penalty_curvature_term(b, pen_grads[t], tangents)
        if t is not None:
            terms.append(t)
    return P.Add(op.out, tuple(terms))


def _ops_between(d: Derived, u: P.Var, g_u: P.Var) -> list:
    """Ops on which ``g_u`` depends that themselves depend on ``u`` (forward and backward)."""
    dep = {u}
    ops = []
    for op in d.program.ops:
        if any(v in dep for v in op.inputs):
            dep.add(op.out)
            ops.append(op)
        if op.out == g_u:
            break
    return ops


def _downstream(ops, start: P.Var) -> list:
    dep = {start}
    out = []
    for op in ops:
        if any(v in dep for v in op.inputs):
            dep.add(op.out)
            out.append(op)
    return out


def input_jvp_program(d: Derived):
    """Tangent of the prediction along an input tangent ``x_dot`` (for input Jacobians).

    Returns ``(ops, x_dot Var, prediction tangent Var)``.
    """
    b = Builder(prog=P.Program(list(d.program.ops)), counter=30_000)
    x = d.x
    x_dot = P.Var("x_dot", "input", x.shape, r"\dot x", "ẋ")
    fwd = [op for op in d.forward_ops if op.out.per_sample]
    pred = d.meta["prediction"]
    names = [op.out for op in fwd]
    upto = fwd[: names.index(pred) + 1] if pred in names else fwd
    dots = jvp(b, upto, {x: x_dot})
    out = dots.get(pred)
    extra = b.prog.ops[len(d.program.ops):]
    return extra, x_dot, out

