"""A dict keyed by SymPy symbols that also accepts their names.

``net.gradient()`` maps each parameter symbol (``Symbol("W1_11", real=True)``) to its exact
derivative.  A user types ``grad["W1_11"]``; a plain dict would raise ``KeyError`` because
``Symbol("W1_11")`` (no assumptions) is a different key.  :class:`SymbolDict` looks a
string up by name, and renders in Jupyter as a LaTeX list of equations.

Examples
--------
>>> import sympy as sp
>>> w = sp.Symbol("w", real=True)
>>> d = SymbolDict({w: 2 * w})
>>> d["w"], d[w], "w" in d
(2*w, 2*w, True)
"""

from __future__ import annotations

from typing import Any

__all__ = ["SymbolDict"]


class SymbolDict(dict):
    """``{sympy.Symbol: value}`` whose lookups also take the symbol's name (a ``str``)."""

    def _key(self, key: Any) -> Any:
        if isinstance(key, str) and not dict.__contains__(self, key):
            for k in self:
                if getattr(k, "name", None) == key:
                    return k
        return key

    def __getitem__(self, key: Any) -> Any:
        try:
            return dict.__getitem__(self, self._key(key))
        except KeyError:
            if isinstance(key, str):
                names = [getattr(k, "name", str(k)) for k in list(self)[:8]]
                more = ", …" if len(self) > 8 else ""
                raise KeyError(
                    f"{key!r}: no symbol of that name; names: {', '.join(names)}{more}"
                ) from None
            raise

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return dict.get(self, self._key(key), default)

    def _repr_latex_(self) -> str:
        import sympy as sp

        rows = [rf"\frac{{\partial L}}{{\partial {sp.latex(k)}}} &= {sp.latex(v)}"
                for k, v in self.items()]
        return "$\\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}$"
