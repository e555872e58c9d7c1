"""The backprop equations of a network, in layer (matrix) form.

Every line is printed from an op of the derived program (:mod:`symnn.derive`): nothing here
is template text about a particular network.  ``Equations`` prints as Unicode text
(``str``), as LaTeX (``.latex()``, an ``align*`` block), as Markdown (``.markdown()``) and
renders in Jupyter (``_repr_latex_``).

Examples
--------
>>> import symnn
>>> eq = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid").equations()
>>> print(eq.line("delta2"))
δ⁽²⁾ = ∇_a⁽²⁾ℓ ⊙ σ'(z⁽²⁾)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from symnn import ops as P
from symnn.declare.activations import Activation
from symnn.declare.model import Model
from symnn.derive import Derived, derive
from symnn.derive.simplify import is_temp
from symnn.printing._breaking import break_row
from symnn.printing._tex import activation_tex, latex
from symnn.printing.elementwise import vector_latex, vector_text
from symnn.printing.recurrent import bptt_equations

__all__ = ["Equation", "Equations", "equations_of"]

#: Printed width (characters) at which a row of :meth:`Equations.latex` is broken.
_LINE_WIDTH = 72


@dataclass
class Equation:
    """One printed equation: ``lhs = rhs`` (with optional further equal forms)."""

    name: str
    lhs_text: str
    rhs_text: list[str]
    lhs_tex: str
    rhs_tex: list[str]
    rhs_expr: sp.Expr | None = None

    def text(self) -> str:
        return self.lhs_text + " = " + " = ".join(self.rhs_text)

    def latex(self) -> str:
        return self.lhs_tex + " &= " + " = ".join(self.rhs_tex)


@dataclass
class Equations:
    """Sections of equations (forward pass, loss, backward pass, gradients).

    Attributes
    ----------
    title : str
    sections : list of (str, list of Equation)
    notes : list of str
        Conventions (batch mean, elementwise operations, subgradients).
    """

    title: str
    sections: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    notes_tex: list = field(default_factory=list)

    def __iter__(self):
        for _, eqs in self.sections:
            yield from eqs

    def find(self, name: str) -> Equation:
        """The equation defining the value ``name`` (``"delta2"``, ``"gW1"``, ``"z1"``)."""
        for eq in self:
            if eq.name == name:
                return eq
        raise KeyError(f"no equation defines {name!r}; names: {[e.name for e in self]}")

    def line(self, name: str) -> str:
        return self.find(name).text()

    def rhs(self, name: str) -> sp.Expr:
        """The right-hand side of an elementwise equation as a SymPy expression in plain
        value names (``a2``, ``y``, ``g_a2`` …)."""
        e = self.find(name).rhs_expr
        if e is None:
            raise KeyError(f"{name!r} is not an elementwise equation")
        return e

    def __str__(self) -> str:
        out = [self.title]
        for title, eqs in self.sections:
            out.append("")
            out.append(title + ":")
            out.extend("  " + e.text() for e in eqs)
        if self.notes:
            out.append("")
            out.extend(self.notes)
        return "\n".join(out)

    def __repr__(self) -> str:
        return str(self)

    def latex(self, environment: str = "align*") -> str:
        """The equations as one LaTeX block (``align*`` by default; needs amsmath).

        A row wider than a page is broken across lines (:mod:`symnn.printing._breaking`).
        """
        rows = []
        for title, eqs in self.sections:
            rows.append(r"&\text{%s:} \\" % title)
            for e in eqs:
                rows.extend(r + r" \\" for r in break_row(e.lhs_tex, " = ".join(e.rhs_tex),
                                                           _LINE_WIDTH))
        if rows:
            rows[-1] = rows[-1][: -len(r" \\")]
        return "\\begin{%s}\n%s\n\\end{%s}" % (environment, "\n".join(rows), environment)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex("aligned") + "$$"

    def markdown(self) -> str:
        """Markdown: a heading per section and the equations as ``$$…$$`` blocks."""
        out = [f"**{self.title}**", ""]
        for title, eqs in self.sections:
            out.append(f"*{title}*")
            out.append("")
            out.append("$$\n\\begin{aligned}\n" + " \\\\\n".join(e.latex() for e in eqs)
                       + "\n\\end{aligned}\n$$")
            out.append("")
        out.extend("> " + n for n in self.notes_tex)
        return "\n".join(out)


# ----------------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, d: Derived):
        self.d = d
        self.vectors: set = set()
        self.temps: dict = {}
        self.extra: list = []
        #: per-sample temporaries printed inside the sum that reads them (the inner path
        #: of a skip connection: ∇_a⁽¹⁾ℓ = ∇_a⁽³⁾ℓ + (W⁽²⁾)ᵀ δ⁽²⁾)
        self.inline: dict = {}

    def names(self, op: P.Map, tex: bool) -> dict:  # noqa: D102
        out = {}
        display = {}
        if op.role in ("model", "model_grad") and op.label:
            display = op.label[0]
        for a in op.args:
            if a.symbol in display:
                out[a.symbol] = latex(display[a.symbol]) if tex else str(display[a.symbol])
            elif a.index is None and a.var.name in self.inline:
                out[a.symbol] = self.inline[a.var.name][1 if tex else 0]
            elif a.index is not None:
                base = a.var.tex if tex else a.var.text
                out[a.symbol] = f"{base}_{{{a.index + 1}}}" if tex else f"{base}[{a.index + 1}]"
            else:
                out[a.symbol] = a.var.tex if tex else a.var.text
        return out

    def equation(self, op: P.Op, rhs_text: str, rhs_tex: str) -> Equation:
        """``out = rhs`` for ``op``'s output (what the op kits' equation rules return)."""
        o = op.out
        return Equation(o.name, o.text, [rhs_text], o.tex, [rhs_tex])

    def map_equation(self, op: P.Map) -> Equation:
        """The equation of a Map, its body printed elementwise."""
        return _map_equation(self, op)

    def vec(self, op: P.Map) -> set:
        return {a.symbol for a in op.args if _is_vector(a.var) and a.index is None}

    def plain(self, op: P.Map, expr: sp.Expr) -> sp.Expr:
        sub = {}
        for a in op.args:
            nm = a.var.name if a.index is None else f"{a.var.name}_{a.index}"
            sub[a.symbol] = sp.Symbol(nm, real=True)
        return expr.xreplace(sub)


def _is_vector(v: P.Var) -> bool:
    return v.per_sample and not (v.size == 1 and v.name in ("ell", "lse", "yz", "negent"))


def _paren_t(s: str) -> str:
    return s if all(ch not in s for ch in " +-") else "(" + s + ")"


def _op_equation(ctx: _Ctx, op: P.Op) -> Equation | None:
    """The equation of ``op``: its kit's rule in :data:`symnn.ops.EQUATION` (None: none)."""
    rule = P.EQUATION.get(type(op))
    return None if rule is None else rule(op, ctx)


def _map_equation(ctx: _Ctx, op: P.Map) -> Equation:
    o = op.out
    names_t, names_x, vec = ctx.names(op, False), ctx.names(op, True), ctx.vec(op)
    if op.role == "act_grad" and op.label and isinstance(op.label[0], Activation):
        eq = _act_grad_equation(ctx, op, op.label[0], names_t, names_x, vec)
        if eq is not None:
            return eq
    if op.role == "model_grad" and op.label:
        return _model_grad_equations(ctx, op, names_t, names_x, vec)
    if len(op.exprs) > 1:
        texts = [vector_text(e, names_t, vec) for e in op.exprs]
        texes = [vector_latex(e, names_x, vec) for e in op.exprs]
        return Equation(o.name, o.text, ["[" + ", ".join(texts) + "]"], o.tex,
                        [r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(texes)])
    e = op.exprs[0]
    return Equation(o.name, o.text, [vector_text(e, names_t, vec)], o.tex,
                    [vector_latex(e, names_x, vec)], ctx.plain(op, e))


def _model_grad_equations(ctx, op: P.Map, names_t, names_x, vec) -> Equation:
    """∂ℓ/∂θ of a custom model: one equation per parameter (queued in ``ctx.extra``, so
    each prints on its own row), then the vector they make."""
    o = op.out
    display = op.label[0]
    params = [display.get(sp.Symbol(f"theta_{j}", real=True), sp.Symbol(f"θ{j + 1}"))
              for j in range(len(op.exprs))]
    labels_t = [f"∂ℓ/∂{p}" for p in params]
    labels_x = [r"\frac{\partial \ell}{\partial %s}" % latex(p) for p in params]
    for p, e, lt, lx in zip(params, op.exprs, labels_t, labels_x):
        ctx.extra.append(Equation(f"g_{p}", lt, [vector_text(e, names_t, vec)], lx,
                                  [vector_latex(e, names_x, vec)], ctx.plain(op, e)))
    ctx.temps[o.name] = ("∂ℓ/∂θ", r"\frac{\partial \ell}{\partial \theta}")
    if len(params) <= 6:
        vec_x = r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(labels_x)
    else:
        vec_x = r"\left(%s, \dots, %s\right)^{\top}" % (labels_x[0], labels_x[-1])
    vec_t = "(" + ", ".join(labels_t) + ")" if len(params) <= 6 else (
        f"({labels_t[0]}, …, {labels_t[-1]})")
    return Equation(o.name, "∂ℓ/∂θ", [vec_t], r"\frac{\partial \ell}{\partial \theta}",
                    [vec_x])


def _act_grad_equation(ctx, op, act: Activation, names_t, names_x, vec):
    """δ = g ⊙ f'(z), with f'(z) printed as derived (and through the output if possible)."""
    body = op.exprs[0]
    gargs = [a for a in op.args if a.symbol.name.startswith("g_")]
    if len(gargs) != 1:
        return None
    g = gargs[0]
    deriv = sp.diff(body, g.symbol)
    if sp.simplify(body - g.symbol * deriv) != 0:
        return None
    # the forward value this derivative belongs to
    fwd = next((f for f in ctx.d.forward_ops if ctx.d.cotangent.get(f.out) == g.var), None)
    if fwd is None or not isinstance(fwd, P.Map):
        return None
    z = fwd.args[0].var
    zs = sp.Symbol("z", real=True)
    dz = sp.diff(act.apply(zs), zs)
    zname_t, zname_x = z.text, z.tex
    label_t = f"{act.symbol_text}'({zname_t})"
    label_x = r"%s'\left(%s\right)" % (activation_tex(act), zname_x)
    dz_t = vector_text(dz, {zs: zname_t}, {zs})
    dz_x = vector_latex(dz, {zs: zname_x}, {zs})
    rhs_t = [f"{_paren_t(names_t[g.symbol])} ⊙ {label_t}"]
    rhs_x = [r"%s \odot %s" % (names_x[g.symbol], label_x)]
    eq = Equation(op.out.name, op.out.text, rhs_t, op.out.tex, rhs_x, ctx.plain(op, body))
    d_out_t = vector_text(deriv, names_t, vec)
    d_out_x = vector_latex(deriv, names_x, vec)
    forms_t = [dz_t] + ([d_out_t] if d_out_t != dz_t else [])
    forms_x = [dz_x] + ([d_out_x] if d_out_x != dz_x else [])
    ctx.extra.append(Equation("d" + z.name, label_t, forms_t, label_x, forms_x,
                              ctx.plain(op, deriv)))
    return eq


def equations_of(declared) -> Equations:
    """Build the :class:`Equations` of a network or custom model."""
    d = derive(declared)
    ctx = _Ctx(d)
    ctx.extra = []
    title = _title(declared)
    forward, loss_eqs = _forward_and_loss(ctx, d, declared)
    backward, grads = _backward(ctx, d)
    grads.sort(key=_param_order(declared))
    sections = [("Forward pass", forward), ("Loss", loss_eqs),
                ("Backward pass", backward), ("Gradients", grads)]
    bptt = [Equation(*e) for e in bptt_equations(declared)]  # RNN layers: BPTT, textbook
    if bptt:
        sections.append(("Backpropagation through time (the same sums, by step)", bptt))
    notes, notes_tex = _notes(d)
    return Equations(title, sections, notes, notes_tex)


def _forward_and_loss(ctx: _Ctx, d: Derived, declared) -> tuple[list, list]:
    """The forward pass up to the prediction, then the loss (ℓ, its terms, L)."""
    forward, loss_eqs = [], []
    pred = d.meta["prediction"]
    fwd_ops = [op for op in d.forward_ops if op.out.per_sample]
    names = [op.out for op in fwd_ops]
    cut = names.index(pred) + 1 if pred in names else 0
    for op in fwd_ops[:cut]:
        eq = _op_equation(ctx, op)
        if eq is not None:
            forward.append(eq)
    loss = declared.loss
    lt = loss.text
    lx = loss.tex
    fused = d.meta.get("fused")
    out_t, out_x = pred.text, pred.tex
    loss_eqs.append(Equation("ell_def", "ℓ", [lt.split("= ", 1)[1] + f"   (ŷ = {out_t})"],
                             r"\ell", [lx.split("= ", 1)[1] + r"\quad (\hat y = %s)" % out_x]))
    prod = {op.out: op for op in fwd_ops}
    for op in fwd_ops[cut:]:
        if is_temp(op.out):
            continue
        inner = _summed_temp(prod, op)
        if inner is not None:
            inner = _op_equation(ctx, inner)
            eq = Equation(op.out.name, op.out.text, ["Σₖ " + _paren_t(inner.rhs_text[0])],
                          op.out.tex, [r"\sum_k \left(%s\right)" % inner.rhs_tex[0]])
            if fused:
                loss_eqs.append(eq)
            continue
        eq = _op_equation(ctx, op)
        if eq is not None:
            loss_eqs.append(eq)
    for op in d.forward_ops:
        if not op.out.per_sample:
            eq = _op_equation(ctx, op)
            if eq is not None:
                loss_eqs.append(eq)
    return forward, loss_eqs


def _summed_temp(prod: dict, op: P.Op):
    """The Map whose temporary output ``op`` sums over its components (ℓ = Σₖ tₖ), if so."""
    if isinstance(op, P.SumComp) and is_temp(op.u) and isinstance(prod.get(op.u), P.Map):
        return prod[op.u]
    return None


def _backward(ctx: _Ctx, d: Derived) -> tuple[list, list]:
    """The backward pass (cotangents; notes queued by the rules first) and the gradients."""
    backward, grads = [], []
    summed = _summed_paths(d.backward_ops)
    for op in d.backward_ops:
        eq = _op_equation(ctx, op)
        if eq is None:
            continue
        if op.out in summed and not ctx.extra:
            ctx.inline[op.out.name] = (eq.rhs_text[0], eq.rhs_tex[0])
            continue
        if is_temp(op.out) and op.out.kind == "param":
            ctx.temps[op.out.name] = (eq.rhs_text[0], eq.rhs_tex[0])
            continue
        if isinstance(op, P.Map) and op.role == "centred" and op.label:
            eq, helpers = _centred_equation(ctx, op)
            backward = [e for e in backward if e.name not in {h.name for h in helpers}]
        if ctx.extra:
            backward.extend(ctx.extra)
            ctx.extra = []
        (grads if op.out.kind == "param" else backward).append(eq)
    return backward, grads


def _centred_equation(ctx: _Ctx, op: P.Map) -> tuple[Equation, tuple]:
    """A softmax cotangent computed in the centred form (:func:`symnn.ops.softmax._centred`,
    exact at saturation) printed as the textbook's ``p ⊙ (g − pᵀg)``; its helper values
    (which then print no equations of their own)."""
    p, g, helpers = op.label

    def name(v, tex):
        if v.name in ctx.inline:
            return ctx.inline[v.name][1 if tex else 0]
        return v.tex if tex else v.text

    pt, gt, px, gx = name(p, False), _paren_t(name(g, False)), name(p, True), name(g, True)
    text = f"{pt} ⊙ ({gt} − {pt}ᵀ {gt})"
    tex = r"%s \odot \left(%s - {%s}^{\top} %s\right)" % (px, gx, px, gx)
    return Equation(op.out.name, op.out.text, [text], op.out.tex, [tex]), helpers


def _summed_paths(ops) -> set:
    """Per-sample temporaries read once, by a sum of cotangents (where paths of the graph
    join: the identity and the inner path of a skip connection), to print inside it."""
    uses: dict = {}
    for op in ops:
        for v in op.inputs:
            uses[v] = uses.get(v, 0) + 1
    return {a.var for op in ops if isinstance(op, P.Map) and op.role == "sum"
            for a in op.args if a.index is None and is_temp(a.var) and a.var.per_sample
            and uses.get(a.var) == 1}


def _notes(d: Derived) -> tuple[list, list]:
    """The conventions under the equations, in text and TeX (fused outputs explained)."""
    fused = d.meta.get("fused")
    notes = [
        "Vectors are per sample; products marked ⊙ and powers of vectors are elementwise.",
        "⟨·⟩ is the mean over the B samples of a batch: L = ⟨ℓ⟩.",
    ]
    notes_tex = [
        r"Vectors are per sample; $\odot$ and powers of vectors are elementwise.",
        r"The batch loss is the mean over its $B$ samples: $L = \frac{1}{B}\sum_s \ell_s$.",
    ]
    if fused == ("softmax", "cross_entropy") or fused == ("softmax", "kl"):
        notes.append("Softmax and cross-entropy are fused: ℓ = LSE(z) − yᵀz for targets "
                     "that sum to 1, so δ = p − y.")
        notes_tex.append(r"Softmax and cross-entropy are fused: "
                         r"$\ell = \operatorname{LSE}(z) - y^\top z$ for targets summing to 1.")
    # the fused sigmoid forms, from the value u the sigmoid reads (the logits z, or an earlier
    # activation's output): log σ(u) = −softplus(−u), log(1 − σ(u)) = −softplus(u)
    if fused and fused[0] == "sigmoid":
        u = d.meta["output"]
        ut, ux = u.text or u.name, u.tex or u.name
        if fused[1] == "bce":
            what, form = "binary cross-entropy", "ℓ = (1/n) Σₖ [softplus(uₖ) − yₖuₖ]"
            form_tex = r"\ell = \frac{1}{n}\sum_k \operatorname{softplus}(u_k) - y_k u_k"
        else:
            kl = fused[1] == "kl"
            what = "KL divergence" if kl else "cross-entropy"
            form = ("ℓ = Σₖ [yₖ log yₖ + yₖ softplus(−uₖ)]" if kl
                    else "ℓ = Σₖ yₖ softplus(−uₖ)")
            form_tex = (r"\ell = \sum_k y_k \log y_k + y_k \operatorname{softplus}(-u_k)" if kl
                        else r"\ell = \sum_k y_k \operatorname{softplus}(-u_k)")
        notes.append(f"Sigmoid and {what} are fused: {form} with u = {ut}, finite for every "
                     "u (log σ(u) = −softplus(−u)).")
        notes_tex.append(f"Sigmoid and {what} are fused: ${form_tex}$ with $u = {ux}$.")
    return notes, notes_tex


def _param_order(declared):
    """Sort key for gradient equations: parameters in the declaration's order (layer by
    layer, W before b)."""
    order = {name: i for i, (name, _shape) in enumerate(declared.param_shapes)}
    d = derive(declared)
    grad_of = {}
    for key, var in d.program.outputs.items() if hasattr(d, "program") else ():
        if key.startswith("grad:"):
            grad_of[var.name] = key[len("grad:"):]

    def key(eq: Equation):
        name = grad_of.get(eq.name, eq.name[1:] if eq.name.startswith("g") else eq.name)
        return order.get(name, len(order))

    return key


def _title(declared) -> str:
    if isinstance(declared, Model):
        n_in, n_p = declared.n_inputs, declared.n_params
        return (f"Model {declared.name}: {n_in} input{'' if n_in == 1 else 's'}, {n_p} "
                f"parameter{'' if n_p == 1 else 's'}, loss {declared.loss.name}")
    return f"{declared!r}: {declared.n_params} parameters"
