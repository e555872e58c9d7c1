"""Forward programs: each layer's own forward rule, then the loss.

``forward_program(declared)`` turns a :class:`~symnn.Network` (each layer emits its own
ops: ``layer.forward``) or :class:`~symnn.Model` into the forward half of a
:class:`~symnn.ops.Program`: affine maps, activations, softmax, the per-sample
loss ``ℓ`` and the batch loss ``L``.  The backward half is derived from it by
:mod:`symnn.derive.reverse`.
"""

from __future__ import annotations

import sympy as sp

from symnn import ops as P
from symnn.declare.layers import Act, Dense, Softmax, output_kind, param_specs
from symnn.declare.losses import A_SYM, Y_SYM
from symnn.declare.model import Model
from symnn.declare.network import Network
from symnn.errors import DerivationError
from symnn.functions import softplus, xlogy
from symnn.ops import Builder, sym

__all__ = ["sym", "Builder", "forward_program"]


def _vec(name, size, tex, text, kind="sample"):
    return P.Var(name, kind, (size,), tex=tex, text=text)


# The forward rule of each layer is the layer's own ``forward(builder, l, value, k)``
# (symnn.declare.layers): Dense emits the affine map, Act the elementwise map, Softmax the
# softmax.


# ----------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------


def _loss_ops(b: Builder, declared, out: P.Var, pre: P.Var | None, y: P.Var) -> P.Var:
    """Emit the per-sample loss ℓ.  ``pre`` is the logit before a sigmoid/softmax output."""
    loss = declared.loss
    n = out.size
    ell = P.Var("ell", "sample", (1,), r"\ell", "ℓ")
    last = _last_layer(declared)
    ys = sym(y)
    if isinstance(last, Softmax) and loss.name in ("cross_entropy", "kl") and pre is not None:
        # Fused softmax + cross-entropy: ℓ = LSE(z) − y·z  (targets are probability vectors)
        lse = b.emit(P.LogSumExp(P.Var("lse", "sample", (1,), r"\operatorname{LSE}", "LSE"), pre))
        yz = b.emit(P.Dot(P.Var("yz", "sample", (1,), r"y^\top z", "yᵀz"), y, pre))
        body = sym(lse) - sym(yz)
        vars_ = [lse, yz]
        if loss.name == "kl":
            ent_t = b.map_elementwise(b.temp((n,)), xlogy(ys, ys), [y])
            ent = b.emit(P.SumComp(P.Var("negent", "sample", (1,), r"H", "H"), ent_t))
            body = body + sym(ent)
            vars_.append(ent)
        b.meta["output"] = pre
        b.meta["fused"] = ("softmax", loss.name)
        return b.map_elementwise(ell, body, vars_, role="loss")
    if output_kind(last) == "sigmoid" and loss.name in ("bce", "cross_entropy", "kl") \
            and pre is not None:
        # Fused sigmoid + a logarithmic loss, from the logits z, with log σ(z) = −softplus(−z)
        # and log(1 − σ(z)) = −softplus(z) (finite for every z):
        #   bce:           ℓₖ = (softplus(z) − y z) / n    (gradient (a − y) / n)
        #   cross_entropy: ℓₖ = y softplus(−z)
        #   kl:            ℓₖ = y log y + y softplus(−z)
        zs = sym(pre)
        if loss.name == "bce":
            term = (softplus(zs) - ys * zs) / n
        else:
            term = ys * softplus(-zs)
            if loss.name == "kl":
                term = xlogy(ys, ys) + term
        t = b.map_elementwise(b.temp((n,)), term, [pre, y], role="loss")
        b.meta["output"] = pre
        b.meta["fused"] = ("sigmoid", loss.name)
        return b.emit(P.SumComp(ell, t))
    if isinstance(last, Softmax) and loss.name == "bce" and 1 < n <= MAX_LOO_OUTPUTS:
        return _softmax_bce(b, out, y, ell)
    term = loss.term().xreplace({A_SYM: sym(out), Y_SYM: ys})
    if loss.reduction == "mean":
        term = term / n
    t = b.map_elementwise(b.temp((n,)), term, [out, y], role="loss")
    b.meta["output"] = out
    return b.emit(P.SumComp(ell, t))


#: The widest softmax output whose binary cross-entropy reads ``1 − pₖ`` as ``Σ_{j≠k} pⱼ``
#: (n² terms); wider outputs use ``log(1 − pₖ)`` as written.
MAX_LOO_OUTPUTS = 64


def _softmax_bce(b: Builder, p: P.Var, y: P.Var, ell: P.Var) -> P.Var:
    """Binary cross-entropy on a softmax output with ``1 − pₖ`` read as ``Σ_{j≠k} pⱼ``.

    ``1 − pₖ`` rounds to 0 once a logit leads the others by about 37 (float64), and
    ``log(1 − pₖ)`` is then −∞ (NaN after a multiplication by 0); the sum of the other
    probabilities is the same number without the cancellation.  Equal to the declared loss
    on the simplex, with equal gradient, Hessian and Gauss-Newton matrix in θ (the two
    forms' derivatives in ``p`` differ by multiples of 𝟙, which the softmax Jacobian
    annihilates); the loss's Hessian in ``p`` is no longer diagonal
    (``meta["dense_loss_hessian"]``).
    """
    n = p.size
    ps = [sym(p, j) for j in range(n)]
    exprs = []
    for k in range(n):
        yk = sym(y, k)
        rest = sp.Add(*(ps[j] for j in range(n) if j != k))
        exprs.append(-(xlogy(yk, ps[k]) + xlogy(1 - yk, rest)) / n)
    args = tuple(P.Arg(sym(p, j), p, j) for j in range(n)) + tuple(
        P.Arg(sym(y, k), y, k) for k in range(n))
    t = b.emit(P.Map(b.temp((n,)), tuple(exprs), args, role="loss"))
    b.meta["output"] = p
    b.meta["dense_loss_hessian"] = True
    return b.emit(P.SumComp(ell, t))


def _last_layer(declared):
    """The output layer: the last one that is not the identity (None: a linear output)."""
    if isinstance(declared, Network):
        for layer in reversed(declared.layers):
            if not (isinstance(layer, Act) and layer.activation.identity):
                return None if isinstance(layer, Dense) else layer
    return declared.output


def _total_loss(b: Builder, declared, ell: P.Var) -> P.Var:
    mean = P.Var("Lmean", "total", (), r"\bar\ell", "ℓ̄")
    L = P.Var("L", "total", (), "L", "L")
    if not declared.penalties:
        b.emit(P.BatchMean(L, ell))
        return L
    b.emit(P.BatchMean(mean, ell))
    terms = [mean]
    for i, (pen, param, idx) in enumerate(_penalty_targets(b, declared)):
        out = P.Var(f"pen{i}", "total", (), f"R_{{{i}}}", f"R{i}")
        terms.append(b.emit(P.Penalty(out, param, pen.kind, _coef(pen.lam), False, idx)))
    b.emit(P.Add(L, tuple(terms)))
    return L


def _coef(lam: float):
    return sp.nsimplify(lam) if float(lam) == float(sp.nsimplify(lam)) else sp.Float(lam)


def _penalty_targets(b: Builder, declared):
    """(penalty, param Var, component indices or None) for every penalised parameter."""
    out = []
    for pen in declared.penalties:
        if isinstance(declared, Model):
            theta = b.prog.inputs["theta"]
            names = [str(s) for s in declared.params]
            idx = None if pen.params is None else tuple(names.index(p) for p in pen.params)
            out.append((pen, theta, idx))
        else:
            names = pen.params or [p.name for p in param_specs(declared) if p.role == "weight"]
            for name in names:
                out.append((pen, b.prog.inputs[name], None))
    b.meta["penalties"] = out
    return out


# ----------------------------------------------------------------------------------------


def forward_program(declared) -> Builder:
    """Build the forward program of a network or custom model.

    Returns the :class:`Builder`; ``builder.prog`` holds the ops, ``builder.meta`` the
    roles of key values (``prediction``, ``output`` — the value the loss reads, ``ell``).
    """
    b = Builder()
    x = _vec("x", declared.n_inputs, "x", "x", kind="input")
    y = _vec("y", declared.n_outputs, "y", "y", kind="target")
    b.prog.inputs["x"] = x
    b.prog.inputs["y"] = y
    pre: P.Var | None = None
    if isinstance(declared, Network):
        cur = x
        l = 0
        stacked = 0  # activations since the last Dense layer
        for i, layer in enumerate(declared.layers):
            if not callable(getattr(layer, "forward", None)):
                raise DerivationError(
                    f"layer {i} ({type(layer).__name__}) has no forward rule; give its class "
                    "a forward(builder, l, value, k) method (see symnn.declare.layers)"
                )
            if isinstance(layer, Act) and layer.activation.identity:
                continue  # changes nothing, names nothing
            # ``pre``: what the last layer reads (the logits of a fused output + loss)
            pre = cur
            if i in declared.dense_index:
                l = declared.dense_index[i]
                stacked = 0
            else:
                stacked += 1
            cur = layer.forward(b, l, cur, stacked)
            # a block (Residual) names a values of its last Dense layer itself
            stacked = getattr(layer, "stacked_after", stacked)
        out = cur
        if not isinstance(_last_layer(declared), (Act, Softmax)):
            pre = None
    elif isinstance(declared, Model):
        out, pre = _model_forward(b, declared, x)
    else:
        raise DerivationError(f"cannot derive a {type(declared).__name__}")
    b.meta["prediction"] = out
    ell = _loss_ops(b, declared, out, pre, y)
    b.meta["ell"] = ell
    L = _total_loss(b, declared, ell)
    b.meta["L"] = L
    b.prog.outputs["prediction"] = out
    b.prog.outputs["loss"] = L
    return b


def _model_forward(b: Builder, model: Model, x: P.Var):
    theta = P.Var("theta", "param", (len(model.params),), r"\theta", "θ")
    b.prog.inputs["theta"] = theta
    args = [P.Arg(sym(x, i), x, i) for i in range(model.n_inputs)]
    args += [P.Arg(sym(theta, j), theta, j) for j in range(len(model.params))]
    rename = {s: sym(x, i) for i, s in enumerate(model.inputs)}
    rename.update({s: sym(theta, j) for j, s in enumerate(model.params)})
    exprs = tuple(e.xreplace(rename) for e in model.exprs)
    display = {sym(x, i): s for i, s in enumerate(model.inputs)}
    display.update({sym(theta, j): s for j, s in enumerate(model.params)})
    f = _vec("f", model.n_outputs, "f", "f")
    b.emit(P.Map(f, exprs, tuple(args), role="model", label=(display,)))
    b.meta["display"] = display
    if model.output is None:
        return f, None
    return model.output.forward(b, 1, f), f
