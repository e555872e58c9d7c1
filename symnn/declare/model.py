"""Custom models: any SymPy expression f(x; θ) with declared inputs and parameters.

Examples
--------
>>> import sympy as sp, symnn
>>> x, a, b = sp.symbols("x a b")
>>> m = symnn.Model(a * sp.exp(-b * x), inputs=[x], params=[a, b], loss="mse")
>>> m.n_params, m.n_inputs, m.n_outputs
(2, 1, 1)
"""

from __future__ import annotations

from typing import Any, Sequence

import sympy as sp

from symnn.declare.layers import Act, Softmax, as_layer
from symnn.declare.losses import Loss, Penalty, get_loss
from symnn.declare.network import Declared, _identifier
from symnn.declare.text import expr_text
from symnn.errors import DeclarationError

__all__ = ["Model"]


class Model(Declared):
    """A custom model ``ŷ = f(x; θ)`` given as SymPy expressions.

    Parameters
    ----------
    expr : sympy.Expr or sequence of sympy.Expr
        One expression per output.
    inputs : sequence of sympy.Symbol
        The input symbols, in the column order of ``X``.
    params : sequence of sympy.Symbol
        The trainable parameters, in the order of the flat vector θ.
    loss : str or Loss
    output : str, optional
        An activation applied to the outputs (``"sigmoid"``, ``"softmax"``, …).
    penalties : sequence of Penalty, optional
        Penalties name parameters by their symbol names (default: all parameters).
    """

    def __init__(
        self,
        expr: "sp.Expr | Sequence[sp.Expr]",
        inputs: Sequence[sp.Symbol],
        params: Sequence[sp.Symbol],
        loss: "str | Loss" = "mse",
        output: Any = None,
        penalties: Sequence[Penalty] = (),
        name: str = "model",
    ) -> None:
        if isinstance(expr, sp.MatrixBase):
            exprs = list(expr)
        elif isinstance(expr, (list, tuple)):
            exprs = list(expr)
        else:
            exprs = [expr]
        if not exprs:
            raise DeclarationError("Model: give at least one output expression")
        try:
            exprs = [sp.sympify(e, strict=True) for e in exprs]
        except (sp.SympifyError, TypeError) as err:
            raise DeclarationError(
                "Model: each output must be a SymPy expression (build it from sympy symbols, "
                "not a string)"
            ) from err
        for i, e in enumerate(exprs):
            if not isinstance(e, sp.Expr) or isinstance(e, sp.MatrixBase):
                raise DeclarationError(f"Model output {i}: expected a scalar SymPy expression")
        self.inputs = tuple(_symbols(inputs, "inputs"))
        self.params = tuple(_symbols(params, "params"))
        if not self.params:
            raise DeclarationError("Model: declare at least one parameter symbol in params=")
        clash = set(self.inputs) & set(self.params)
        if clash:
            raise DeclarationError(
                f"Model: {sorted(map(str, clash))} declared both as input and as parameter"
            )
        declared = set(self.inputs) | set(self.params)
        used: set = set()
        for i, e in enumerate(exprs):
            extra = e.free_symbols - declared
            if extra:
                raise DeclarationError(
                    f"Model output {i} uses undeclared symbols {sorted(map(str, extra))}; add "
                    "them to inputs= or params=, or substitute numbers"
                )
            used |= e.free_symbols
        missing = [str(p) for p in self.params if p not in used]
        if missing:
            raise DeclarationError(
                f"Model: parameters {missing} do not appear in the model's expression; remove "
                "them from params= or use them in the expression"
            )
        self.exprs = tuple(exprs)
        self.loss = get_loss(loss, where="Model loss")
        self.output = None
        if output is not None and not (
            isinstance(output, str) and output.lower() in ("identity", "linear")
        ):
            self.output = as_layer(output, where="Model output")
            if not isinstance(self.output, (Act, Softmax)):
                raise DeclarationError("Model output= must be an activation name or 'softmax'")
        self.n_inputs = len(self.inputs)
        self.n_outputs = len(self.exprs)
        names = {str(p) for p in self.params}
        for pen in penalties:
            for p in pen.params or ():
                if p not in names:
                    raise DeclarationError(
                        f"{pen.kind.upper()} penalty names parameter {p!r}; the model's "
                        f"parameters are {sorted(names)}"
                    )
        self.penalties = tuple(penalties)
        self.name = _identifier(name)

    @property
    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """One flat parameter vector ``theta`` of shape ``(P,)`` in the order of ``params``."""
        return [("theta", (len(self.params),))]

    def spec(self) -> dict:
        """Plain data from which the model is rebuilt: expressions as text in the spec
        language (read back by :func:`symnn.spec.parse_expression`, never evaluated)."""
        out = {
            "kind": "model",
            "name": self.name,
            "exprs": [expr_text(e) for e in self.exprs],
            "inputs": [str(s) for s in self.inputs],
            "params": [str(s) for s in self.params],
            "loss": self.loss.name,
            "penalties": [
                {"kind": p.kind, "lam": p.lam, "params": list(p.params) if p.params else None}
                for p in self.penalties
            ],
        }
        if self.output is not None:
            out["output"] = getattr(self.output, "name", "softmax")
        return out

    def __repr__(self) -> str:
        body = self.exprs[0] if len(self.exprs) == 1 else list(self.exprs)
        return (
            f"Model({body}, inputs={list(self.inputs)}, params={list(self.params)}, "
            f"loss={self.loss.name!r})"
        )


def _symbols(items, what):
    out = []
    for s in items:
        if not isinstance(s, sp.Symbol):
            raise DeclarationError(
                f"Model {what}: expected sympy.Symbol objects, got {s!r} "
                f"({type(s).__name__})"
            )
        if s in out:
            raise DeclarationError(f"Model {what}: symbol {s} is listed twice")
        out.append(s)
    return out
