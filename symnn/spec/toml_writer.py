"""A small TOML writer for the plain data of a spec (:meth:`Spec.to_toml`)."""

from __future__ import annotations

import math
import re
from typing import Any

from symnn.errors import ArgumentError

__all__ = ["dumps_toml"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _string(k)


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise ArgumentError(f"cannot write {type(v).__name__} as TOML")


def dumps_toml(doc: dict) -> str:
    """Write a dict of plain data (str, int, float, bool, lists, tables) as TOML.

    Top-level tables become ``[sections]``; tables inside them become ``[a.b]`` sections;
    tables inside arrays are written inline.

    Examples
    --------
    >>> print(dumps_toml({"title": "t", "network": {"layers": [2, 1], "penalties": {"l2": 0.1}}}))
    title = "t"
    <BLANKLINE>
    [network]
    layers = [2, 1]
    <BLANKLINE>
    [network.penalties]
    l2 = 0.1
    <BLANKLINE>
    """
    lines: list[str] = []
    _emit(lines, [], doc)
    return "\n".join(lines).lstrip("\n") + "\n"


def _emit(lines: list[str], prefix: list[str], table: dict) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    if prefix and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in prefix) + "]")
    for k, v in scalars:
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in tables:
        _emit(lines, prefix + [k], v)
