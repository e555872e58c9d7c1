"""Forward mode over the program: the driver of the Jacobian-vector rules.

Applied to the forward + backward program this is forward-over-reverse (Pearlmutter's
R-operator): the tangent of every gradient along a parameter direction ``v`` is the exact
Hessian-vector product ``H v``.  Tangent values are named ``<name>_dot``; each op kit
(:mod:`symnn.ops`) registers its rule in :data:`symnn.ops.JVP` (elementwise tangents come
from ``sympy.diff`` of each :class:`~symnn.ops.Map` body).
"""

from __future__ import annotations

from symnn.errors import DerivationError
from symnn.ops import JVP
from symnn.ops.ir import Builder

__all__ = ["JVP_RULES", "jvp"]

#: The Jacobian-vector rules, keyed by op class (the table :data:`symnn.ops.JVP`).
JVP_RULES = JVP


def jvp(b: Builder, ops, tangents: dict, cut: str = "") -> dict:
    """Append tangent ops for ``ops`` to ``b``; returns ``{value: tangent Var}``.

    ``tangents`` seeds the map (e.g. ``{W1: vW1, …}``); values with no tangent are
    constant along the direction (a rule returns None for those).  ``cut``: the name of a
    class attribute; ops whose class sets it true pass no tangent on (the Gauss-Newton
    product's ``J v`` stops where truncated BPTT stops the gradient: ``cuts_gauss_newton``).
    An op class with ``<cut>_inside`` (a looped recurrence whose cuts are inside the op,
    :mod:`symnn.ops.scan`) gives its own rule for that case, ``rule(b, op, d)``.
    """
    d = dict(tangents)
    for op in ops:
        if not any(v in d for v in op.inputs):
            continue
        if cut and getattr(type(op), cut, False):
            continue
        rule = JVP.get(type(op))
        if rule is None:
            raise DerivationError(
                f"no forward-mode rule for {type(op).__name__} (computing {op.out.name}); "
                "register one in symnn.ops.JVP"
            )
        inside = getattr(type(op), cut + "_inside", None) if cut else None  # scan ops
        t = inside(b, op, d) if inside is not None else rule(b, op, d)
        if t is not None:
            d[op.out] = t
    return d
