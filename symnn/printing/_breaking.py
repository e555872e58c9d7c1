"""Breaking long display equations across the rows of an ``align*`` block.

A printed right-hand side is parsed into a small tree (brace groups, ``\\left … \\right``
pairs, environments, tokens) and broken, in order of preference:

1. at top-level ``=``, ``+`` and ``-`` (between terms);
2. inside the widest parenthesised group of a term that is still too long: its
   ``\\left( … \\right)`` becomes ``\\bigl( … \\bigr)`` (which, unlike ``\\left``/``\\right``,
   may span rows), and its content is broken the same way, one level deeper;
3. between the factors of a product (at ``\\cdot``, ``\\odot`` or an implicit product).

The pieces are packed greedily into rows of at most ``width`` printed characters; rows
after the first start with ``&\\quad`` (``&\\qquad`` inside a group) and an operator that
begins a row is made binary with ``{}``.  Widths are estimated from the LaTeX text, with
sub- and superscripts counted smaller; ``tests/test_latex.py`` compiles documents and
checks that no row overflows the page.

Examples
--------
>>> rows = break_row("y", " + ".join(f"a_{{{i}}} b_{{{i}}}" for i in range(1, 40)), 40)
>>> rows[0][:16], rows[1][:11], len(rows) > 2
('y &= a_{1} b_{1}', '&\\\\quad {} +', True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["break_row", "width"]


def width(tex: str) -> float:
    """Estimated printed width of math LaTeX, in characters of the body font."""
    s = re.sub(r"\\(left|right|bigl|bigr|Bigl|Bigr)\b", "", tex)
    s = re.sub(r"\\(quad|qquad)\b", "xx", s)
    s = re.sub(r"\\(text|operatorname|mathrm)\{([^{}]*)\}", r"\2", s)
    s = re.sub(r"\\(frac|dfrac)\{([^{}]*)\}\{([^{}]*)\}",
               lambda m: "x" * max(len(m.group(2)), len(m.group(3))) if max(
                   len(m.group(2)), len(m.group(3))) < 12 else m.group(2) + m.group(3), s)
    # scripts print at about 70 %: count a script group's characters at that rate
    small = sum(len(re.sub(r"\\[A-Za-z]+", "x", g)) for g in re.findall(r"[_^]\{([^{}]*)\}", s))
    s = re.sub(r"[_^]\{[^{}]*\}", "", s)
    s = re.sub(r"\\[A-Za-z]+", "x", s)
    ops = len(re.findall(r"(?<=\s)[-+=](?=\s)", s))
    s = re.sub(r"[{}^_\s\\]", "", s)
    return len(s) + 0.7 * small + 1.5 * ops


# -- a small parse tree ----------------------------------------------------------------------

@dataclass
class _Node:
    kind: str  # "tok" | "brace" | "lr" | "env"
    text: str = ""  # tok / env: the source text; lr: the \left delimiter text
    close: str = ""  # lr: the \right delimiter text
    children: list = field(default_factory=list)

    def tex(self) -> str:
        if self.kind in ("tok", "env"):
            return self.text
        inner = "".join(c.tex() for c in self.children)
        if self.kind == "brace":
            return "{" + inner + "}"
        return self.text + inner + self.close


_DELIM = re.compile(r"\s*(\\[A-Za-z]+|\\.|.)", re.S)


def _parse(tex: str) -> list[_Node]:
    stack: list[list] = [[]]
    opens: list[_Node] = []
    i, n = 0, len(tex)
    while i < n:
        ch = tex[i]
        if tex.startswith(r"\begin{", i):
            env = tex[i + 7: tex.index("}", i)]
            end = tex.find(r"\end{" + env + "}", i)
            if end < 0:
                raise ValueError("unbalanced environment")
            j = end + len(r"\end{" + env + "}")
            stack[-1].append(_Node("env", tex[i:j]))
            i = j
        elif re.match(r"\\(left|right)(?![A-Za-z])", tex[i:]):
            word = "left" if tex.startswith(r"\left", i) else "right"
            m = _DELIM.match(tex, i + len(word) + 1)
            if m is None:
                raise ValueError("\\left without a delimiter")
            text = tex[i: m.end()]
            i = m.end()
            if word == "left":
                node = _Node("lr", text)
                stack[-1].append(node)
                opens.append(node)
                stack.append(node.children)
            else:
                if not opens or opens[-1].kind != "lr":
                    raise ValueError("unbalanced \\right")
                opens.pop().close = text
                stack.pop()
        elif ch == "{":
            node = _Node("brace")
            stack[-1].append(node)
            opens.append(node)
            stack.append(node.children)
            i += 1
        elif ch == "}":
            if not opens or opens[-1].kind != "brace":
                raise ValueError("unbalanced }")
            opens.pop()
            stack.pop()
            i += 1
        elif ch == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", tex[i:], re.S)
            stack[-1].append(_Node("tok", m.group(0)))
            i += len(m.group(0))
        else:
            stack[-1].append(_Node("tok", ch))
            i += 1
    if opens:
        raise ValueError("unbalanced group")
    return stack[0]


def _ser(nodes) -> str:
    return "".join(n.tex() for n in nodes).strip()


def _is_space(n: _Node) -> bool:
    return n.kind == "tok" and n.text.isspace()


def _split_at(nodes: list[_Node], ops: set[str]) -> list[list[_Node]]:
    """Split a node sequence before each top-level binary operator in ``ops``."""
    parts: list[list[_Node]] = [[]]
    for k, nd in enumerate(nodes):
        binary = (nd.kind == "tok" and nd.text in ops and any(not _is_space(x) for x in
                                                                parts[-1])
                  and k > 0 and _is_space(nodes[k - 1])
                  and k + 1 < len(nodes) and _is_space(nodes[k + 1]))
        if binary:
            parts.append([])
        parts[-1].append(nd)
    return [p for p in parts if any(not _is_space(x) for x in p)]


_ARG_TAKERS = {r"\frac", r"\dfrac", r"\binom", r"\sqrt", r"\text", r"\operatorname",
               r"\mathrm", r"\hat", r"\bar", r"\dot", r"\tilde", r"\vec"}


def _openable(nodes: list[_Node], k: int) -> _Node | None:
    """The lr group at position ``k`` (or wrapped alone in a droppable brace), else None."""
    nd = nodes[k]
    if nd.kind == "lr":
        return nd if nd.text.rstrip().endswith(("(", "[", "|")) else None
    if nd.kind != "brace":
        return None
    inner = [c for c in nd.children if not _is_space(c)]
    if len(inner) != 1 or inner[0].kind != "lr":
        return None
    prev = next((nodes[j] for j in range(k - 1, -1, -1) if not _is_space(nodes[j])), None)
    if prev is not None and prev.kind == "tok" and (prev.text in "^_" or prev.text in
                                                    _ARG_TAKERS):
        return None
    if prev is not None and prev.kind == "brace":
        j = nodes.index(prev)
        pp = next((nodes[i] for i in range(j - 1, -1, -1) if not _is_space(nodes[i])), None)
        if pp is not None and pp.kind == "tok" and pp.text in (r"\frac", r"\dfrac", r"\binom"):
            return None
    return _openable(nd.children, nd.children.index(inner[0]))


_BIG = {"(": (r"\bigl(", r"\bigr)"), "[": (r"\bigl[", r"\bigr]"), "|": (r"\bigl|", r"\bigr|")}


def _pieces(nodes: list[_Node], limit: float, depth: int) -> list[tuple[int, str]]:
    """Atoms (depth, LaTeX) whose concatenation is the sequence, each as short as possible."""
    text = _ser(nodes)
    if width(text) <= limit:
        return [(depth, text)]
    terms = _split_at(nodes, {"=", "+", "-"})
    if len(terms) > 1:
        out = []
        for t in terms:
            out.extend(_pieces(t, limit, depth))
        return out
    # one term: open its widest parenthesised group
    best, best_w = None, 0.0
    for k in range(len(nodes)):
        g = _openable(nodes, k)
        if g is not None and width(g.tex()) > best_w:
            best, best_w = k, width(g.tex())
    if best is not None and best_w > limit / 3:
        g = _openable(nodes, best)
        left, right = _BIG[g.text.rstrip()[-1]]
        if g.close.strip().startswith(r"\right") and g.close.rstrip()[-1] in ")]|":
            right = right[:-1] + g.close.rstrip()[-1]
        head = _ser(nodes[:best])
        tail = _ser(nodes[best + 1:])
        inner = _pieces([c for c in g.children], limit, depth + 1)
        inner[0] = (inner[0][0], (head + " " if head else "") + left + " " + inner[0][1])
        inner[-1] = (inner[-1][0], inner[-1][1] + " " + right + ("" if not tail else
                                                                  tail if tail[0] in "^_"
                                                                  else " " + tail))
        return inner
    # a product: break between factors
    factors = _split_at(nodes, {r"\cdot", r"\odot", r"\times"})
    if len(factors) > 1:
        out = []
        for f in factors:
            out.extend(_pieces(f, limit, depth))
        return out
    return [(depth, text)]


def _pack(atoms: list[tuple[int, str]], limit: float) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    for depth, s in atoms:
        if lines and width(lines[-1][1]) + width(s) <= limit:
            lines[-1] = (lines[-1][0], lines[-1][1] + " " + s)
        else:
            lines.append((depth, s))
    return lines


def break_row(lhs: str, rhs: str, width_limit: float, sep: str = "&=") -> list[str]:
    """Rows of an ``align*`` block for ``lhs = rhs``, broken to fit ``width_limit``.

    ``lhs`` may be empty (a continuation of a block).  Returns the rows without the
    trailing ``\\\\``.  Text that cannot be parsed is returned as one row.
    """
    first = f"{lhs} {sep} " if lhs else f"{sep} "
    if width(lhs) + width(rhs) <= width_limit:
        return [first + rhs]
    try:
        nodes = _parse(rhs)
    except (ValueError, AttributeError):
        return [first + rhs]
    limit = max(width_limit - min(width(lhs), width_limit / 3), width_limit / 2)
    lines = _pack(_pieces(nodes, limit - 4, 0), limit - 4)
    rows = [first + lines[0][1]]
    for depth, ln in lines[1:]:
        indent = r"&\quad" if depth == 0 else r"&\qquad"
        if re.match(r"[-+=]\s", ln) or ln.startswith((r"\cdot ", r"\odot ", r"\times ")):
            rows.append(f"{indent} {{}} {ln}")
        else:
            rows.append(f"{indent} {ln}")
    return rows
