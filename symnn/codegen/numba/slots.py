"""Where values live inside one generated kernel: :class:`Slot` and name helpers."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from symnn import ops as P

__all__ = ["Slot", "RESERVED", "ident", "plus"]

#: Names the generated code uses itself: a value's local is never named after one of them.
RESERVED = {
    "params", "grad", "V", "X", "Y", "out", "B", "K", "work", "np", "math", "njit", "i", "k",
    "j", "q", "r", "c", "l", "_f", "inv_B", "acc", "m", "e", "d", "prange", "fm", "True",
    "M",  # the Dropout masks' argument (symnn.codegen.numba.masks)
}


@dataclass
class Slot:
    """Where a value lives inside one kernel: ``arr[off + …]``.

    ``mode``: ``sample`` ``(B, n)``, ``sampleK`` ``(B, K, n)``, ``param`` (its shape, flat),
    ``paramK`` ``(K, size)``, ``total`` (a scalar local named ``arr``) or ``totalK`` ``(K,)``.
    ``off`` is an int literal or the name of a local holding the offset.
    """

    var: P.Var
    mode: str
    arr: str
    off: str = "0"

    @property
    def n(self) -> int:
        return self.var.size

    @property
    def is_k(self) -> bool:
        return self.mode.endswith("K")

    def at(self, index: str) -> str:
        """``arr[off + index]``, trivial offsets folded; an index with arithmetic is cast to
        unsigned (``_u``), which spares Numba's negative-index test and lets LLVM vectorise."""
        i = plus(self.off, index)
        if i.isdigit() or i.isidentifier():
            return f"{self.arr}[{i}]"
        return f"{self.arr}[_u({i})]"


def plus(a: str, b: str) -> str:
    if a == "0":
        return b
    if b == "0":
        return a
    if a.isdigit() and b.isdigit():
        return str(int(a) + int(b))
    return f"{a} + {b}"


def ident(name: str) -> str:
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit() or keyword.iskeyword(text) or text in RESERVED:
        text = "v_" + text
    return text

