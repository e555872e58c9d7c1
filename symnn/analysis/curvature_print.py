"""What the per-layer curvature computes, printed: the loss Hessian's square root ``S``, the
diagonal of the Gauss-Newton matrix and the K-FAC factors of a network, in text and LaTeX.

:func:`loss_hessian_sqrt_symbolic` derives ``S`` (with ``S Sᵀ = H``, the Hessian of the
per-sample loss in the value ``u`` it reads) as a SymPy matrix for the network's loss:
``diag(√p) − p √pᵀ`` for softmax × cross-entropy, ``diag(√(σ(1−σ)/m))`` for sigmoid × BCE,
``diag(√h_k)`` with ``h_k = ∂²ℓ/∂ŷ_k²`` differentiated from the loss's own SymPy term
otherwise — the same table :mod:`symnn.analysis.ggn` evaluates numerically.
:func:`curvature_equations` prints it with every Dense / Conv1D layer's diagonal-GGN and
K-FAC formulas, written in the network's own value names (``δ⁽ˡ⁾``, ``a⁽ˡ⁻¹⁾``).

Examples
--------
>>> import symnn
>>> net = symnn.mlp([2, 3, 2], activation="tanh", output="softmax", loss="cross_entropy")
>>> eqs = curvature_equations(net)
>>> print(eqs.line("S"))
S = diag(√p) − p √pᵀ
>>> print(eqs.line("A1"))
A⁽¹⁾ = (1/B) Σ_s x̄_s x̄_sᵀ,  x̄ = [x; 1]
"""

from __future__ import annotations

import sympy as sp

from symnn import ops as P
from symnn.analysis.kfac import _layers
from symnn.analysis.persample import Evaluated
from symnn.errors import AnalysisError
from symnn.printing.equations import Equation, Equations

__all__ = ["loss_hessian_sqrt_symbolic", "curvature_equations"]

_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _derived(model):
    derived = getattr(model, "derived", None)
    if derived is not None:
        return derived
    from symnn.derive import derive

    try:
        return derive(model)
    except Exception as err:  # noqa: BLE001 — any failure: say what was expected
        raise AnalysisError(f"{type(model).__name__} is neither a compiled model nor a "
                            f"declared network symnn can derive ({err})") from err


def _kind(derived):
    fused = derived.meta.get("fused")
    if fused is not None:
        return tuple(fused)
    return ("none", derived.declared.loss.name)


def loss_hessian_sqrt_symbolic(model) -> tuple[sp.Matrix, sp.Matrix, tuple]:
    """``(S, H, symbols)``: the loss Hessian's square root and the Hessian itself as SymPy
    matrices (``m × m``) in ``symbols`` — ``p_k`` (softmax probabilities), ``σ_k`` (sigmoid
    outputs), ``ŷ_k`` (predictions) and, where they enter, the targets ``y_k``.  For a
    softmax, ``S Sᵀ = H`` on the simplex ``Σ p = 1`` (``S Sᵀ = diag(p) − 2ppᵀ + (Σp) ppᵀ``).

    Examples
    --------
    >>> import symnn
    >>> S, H, (p,) = loss_hessian_sqrt_symbolic(
    ...     symnn.mlp([1, 2], output="softmax", loss="cross_entropy"))
    >>> S
    Matrix([
    [-p_1**(3/2) + sqrt(p_1),        -p_1*sqrt(p_2)],
    [       -sqrt(p_1)*p_2, -p_2**(3/2) + sqrt(p_2)]])
    >>> sp.simplify((S * S.T - H).subs(p[1], 1 - p[0])) == sp.zeros(2, 2)
    True
    """
    derived = _derived(model)
    m = derived.meta["output"].size
    head, loss = _kind(derived)
    y = sp.Matrix(sp.symbols(f"y_1:{m + 1}", real=True))
    if head == "softmax":
        p = sp.Matrix(sp.symbols(f"p_1:{m + 1}", positive=True))
        sq = p.applyfunc(sp.sqrt)
        return sp.diag(*sq) - p * sq.T, sp.diag(*p) - p * p.T, (tuple(p),)
    if head == "sigmoid":
        s = sp.Matrix(sp.symbols(f"sigma_1:{m + 1}", positive=True))
        h = [sk * (1 - sk) / m if loss == "bce" else y[k] * sk * (1 - sk)
             for k, sk in enumerate(s)]
        syms = (tuple(s),) if loss == "bce" else (tuple(s), tuple(y))
    else:
        a = sp.Matrix(sp.symbols(f"yhat_1:{m + 1}", real=True))
        L = derived.declared.loss
        scale = sp.Rational(1, m) if L.reduction == "mean" else sp.S.One
        # almost everywhere: the Dirac masses of |r|'s second derivative are dropped, as
        # the numeric second derivative (a JVP of the gradient) drops them
        h = [sp.simplify(scale * sp.diff(L.pointwise(a[k], y[k]), a[k], 2).replace(
            sp.DiracDelta, lambda *_: sp.S.Zero)) for k in range(m)]
        syms = (tuple(a), tuple(y))
    return sp.diag(*[sp.sqrt(hk) for hk in h]), sp.diag(*h), syms


_S_FORMS = {
    "softmax": ("S = diag(√p) − p √pᵀ", r"\operatorname{diag}(\sqrt{p}) - p \sqrt{p}^\top",
                "H = diag(p) − p pᵀ", r"\operatorname{diag}(p) - p p^\top"),
    "bce": ("S = diag(√(σ(1 − σ)/m))", r"\operatorname{diag}\sqrt{\sigma(1-\sigma)/m}",
            "H = diag(σ(1 − σ)/m)", r"\operatorname{diag}(\sigma(1-\sigma)/m)"),
    "sigmoid": ("S = diag(√(y σ(1 − σ)))", r"\operatorname{diag}\sqrt{y\,\sigma(1-\sigma)}",
                "H = diag(y σ(1 − σ))", r"\operatorname{diag}(y\,\sigma(1-\sigma))"),
}


def _loss_section(model, derived) -> list:
    head, loss = _kind(derived)
    key = "softmax" if head == "softmax" else ("bce" if loss == "bce" else head)
    u = derived.meta["output"]
    if key in _S_FORMS:
        st, sx, ht, hx = _S_FORMS[key]
    else:
        _, H, (a, y) = loss_hessian_sqrt_symbolic(model)
        hk = H[0, 0]
        ht = "H = diag(h),  h_k = " + sp.sstr(
            hk.subs({a[0]: sp.Symbol("ŷ_k"), y[0]: sp.Symbol("y_k")}))
        hx = r"\operatorname{diag}(h),\ h_k = " + sp.latex(
            hk.subs({a[0]: sp.Symbol(r"\hat{y}_k"), y[0]: sp.Symbol("y_k")}))
        st, sx = "S = diag(√h)", r"\operatorname{diag}(\sqrt{h})"
    return [Equation("H", ht.split(" = ")[0] + f" = ∂²ℓ/∂{u.text or u.name}²",
                     [ht.split(" = ", 1)[1]], "H", [hx]),
            Equation("S", "S", [st.split(" = ", 1)[1]], "S", [sx])]


def _layer_equations(p, q, op, conv: str, ell: int) -> tuple[list, list]:
    """(diag-GGN equations, K-FAC equations) of one layer."""
    l_txt, l_tex = str(ell).translate(_SUP), str(ell)
    d, a = op.u, op.v
    dt, at = d.text or d.name, a.text or a.name
    dx, ax = d.tex or d.name, a.tex or a.name
    bar_t = at[0] + "\u0304" + at[1:]                          # x̄, ā⁽¹⁾
    is_conv = isinstance(op, P.ConvWMean)
    if is_conv:
        ggn_t = f"(1/B) Σ_s Σ_c (Σ_t {dt}_sc,t patch_t({at}_s)ᵀ)²"
        ggn_x = (rf"\tfrac1B \sum_s \sum_c \Big(\sum_t {dx}_{{sc,t}}\, "
                 rf"\mathrm{{patch}}_t({ax}_s)^\top\Big)^{{2}}")
    else:
        ggn_t = f"(1/B) Σ_s Σ_c ({dt}_sc)² (({at}_s)²)ᵀ"
        ggn_x = rf"\tfrac1B \sum_s \sum_c ({dx}_{{sc}})^{{2}} \big(({ax}_s)^{{2}}\big)^\top"
    diag = [Equation(f"diag_{p.name}", f"diag G[{p.name}]", [ggn_t],
                     rf"\operatorname{{diag}} G[{p.tex or p.name}]", [ggn_x])]
    if q is not None:
        bt = (f"(1/B) Σ_s Σ_c (Σ_t {dt}_sc,t)²" if is_conv else f"(1/B) Σ_s Σ_c ({dt}_sc)²")
        diag.append(Equation(f"diag_{q.name}", f"diag G[{q.name}]", [bt],
                             rf"\operatorname{{diag}} G[{q.tex or q.name}]",
                             [rf"\tfrac1B \sum_s \sum_c ({dx}_{{sc}})^{{2}}"]))
    one = "; 1" if q is not None else ""
    if is_conv and conv == "expand":
        A = (f"(1/(B T)) Σ_s Σ_t p̄_st p̄_stᵀ,  p̄_t = [patch_t({at}){one}], T = {op.g.l_out}",
             r"\tfrac{1}{BT} \sum_s \sum_t \bar p_{st} {\bar p_{st}}^\top")
        G = (f"(1/B) Σ_s Σ_c Σ_t {dt}_sc,t {dt}_sc,tᵀ",
             rf"\tfrac1B \sum_s \sum_c \sum_t {dx}_{{sc,t}} {{{dx}_{{sc,t}}}}^\top")
    elif is_conv:
        A = (f"(1/B) Σ_s p̂_s p̂_sᵀ,  p̂_s = (1/T) Σ_t [patch_t({at}_s){one}], T = {op.g.l_out}",
             r"\tfrac1B \sum_s \hat p_s {\hat p_s}^\top")
        G = (f"(1/B) Σ_s Σ_c (Σ_t {dt}_sc,t)(Σ_t {dt}_sc,t)ᵀ",
             rf"\tfrac1B \sum_s \sum_c \Big(\sum_t {dx}_{{sc,t}}\Big)"
             rf"\Big(\sum_t {dx}_{{sc,t}}\Big)^\top")
    else:
        tail = f",  {bar_t} = [{at}; 1]" if q is not None else ""
        A = (f"(1/B) Σ_s {bar_t}_s {bar_t}_sᵀ{tail}",
             rf"\tfrac1B \sum_s \bar {ax}_s {{\bar {ax}_s}}^\top")
        G = (f"(1/B) Σ_s Σ_c {dt}_sc {dt}_scᵀ", rf"\tfrac1B \sum_s \sum_c {dx}_{{sc}} "
             rf"{{{dx}_{{sc}}}}^\top")
    kf = [Equation(f"A{ell}", f"A⁽{l_txt}⁾", [A[0]], f"A^{{({l_tex})}}", [A[1]]),
          Equation(f"G{ell}", f"G⁽{l_txt}⁾", [G[0]], f"G^{{({l_tex})}}", [G[1]])]
    return diag, kf


def curvature_equations(model, kind: str = "kflr", conv: str = "expand") -> Equations:
    """The formulas :func:`~symnn.analysis.diag_ggn` and :func:`~symnn.analysis.kfac_factors`
    evaluate for ``model`` (a compiled model or a declared network), as
    :class:`~symnn.printing.equations.Equations` (``str``, ``.latex()``, ``.markdown()``).

    Raises
    ------
    AnalysisError
        An unknown ``kind`` / ``conv``; a model with no Dense or Conv1D layer; a weight
        applied at several steps (a recurrent layer: not printed yet).
    """
    if kind not in ("kflr", "kfac") or conv not in ("expand", "reduce"):
        raise AnalysisError(f"kind = {kind!r}, conv = {conv!r}; use kind 'kflr' or 'kfac' "
                            "and conv 'expand' or 'reduce'")
    derived = _derived(model)
    layers = _layers(Evaluated(derived, {}, 0))
    if not layers:
        raise AnalysisError("the model has no Dense or Conv1D layer; nothing to print")
    shared = [p.name for p, *_, ops in layers if len(ops) > 1]
    if shared:  # (recurrent K-FAC, rkfac) the formulas of a weight shared over steps
        raise AnalysisError(
            f"curvature_equations prints Dense and Conv1D layers; {', '.join(shared)} "
            "are applied at several steps (a recurrent layer), whose formulas it does not "
            "print yet — kfac_factors evaluates them (symnn.analysis.kfac's module notes)")
    diag, kf = [], []
    for ell, (p, _off, q, _qoff, ops) in enumerate(layers, 1):
        d, k = _layer_equations(p, q, ops[0], conv, ell)
        diag += d
        kf += k
    cols = ("c over the m columns of S (exact)" if kind == "kflr" else
            "c over M sampled targets (S_c = ∇_u ℓ(y_c), y_c drawn from the model; weight 1/M)")
    notes = [f"δ_sc: the backward pass's δ of sample s seeded at u with column S_c of the loss "
             f"Hessian's square root instead of ∂ℓ/∂u; {cols}.  G ⊗ A approximates the Gauss-"
             "Newton block of W̄ = [W b] (row-major)."]
    return Equations(f"Curvature of {derived.declared.name!r} ({kind})",
                     [("Loss Hessian's square root", _loss_section(model, derived)),
                      ("Diagonal Gauss-Newton", diag), ("K-FAC factors", kf)], notes,
                     [r"$\delta_{sc}$: the backward pass seeded with column $S_c$ of the loss "
                      r"Hessian's square root; $G \otimes A$ approximates the Gauss-Newton "
                      r"block of $\bar W = [W\ b]$."])
