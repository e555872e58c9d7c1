"""Safe LaTeX from untrusted strings.

Everything a user names — a document title, a custom activation, a model's symbols and
functions, a penalty's parameter list — may reach a ``.tex`` file that ``pdflatex`` reads.
TeX is a programming language: ``\\input``, ``\\openout``, ``\\write18``, ``\\csname`` or a
``^^5c`` (TeX's spelling of a backslash) in such a string would be *run*, and a carriage
return ends a ``%`` comment as surely as a newline does.  So:

- :func:`tex_escape` turns any string into plain text: every TeX-special character is
  escaped, every control character (CR, LF, tab, form feed, NEL, the Unicode line and
  paragraph separators …) becomes a space, non-ASCII becomes a known command or ``?``;
- :func:`name_latex` prints a symbol or function *name* for math mode: identifier-like names
  go through SymPy's conventions (``alpha`` → ``\\alpha``, ``x_1`` → ``x_{1}``), anything
  else is set as escaped text (``\\text{…}``);
- :class:`SafeNamesMixin` gives a SymPy LaTeX printer those rules for every ``Symbol`` and
  undefined function it prints, and :func:`latex` is ``sympy.latex`` with it;
- :func:`check_document` is the last line of defence: a finished document must be printable
  ASCII, contain no TeX primitive that reads, writes, defines or runs anything, and no
  ``^^`` notation.  A violation is a bug in symnn and is refused, never written.

Examples
--------
>>> print(tex_escape("50% of $x\\r\\\\input{/etc/passwd}"))
50\\% of \\$x \\textbackslash{}input\\{/etc/passwd\\}
>>> import sympy as sp
>>> latex(sp.Symbol("alpha_1") + sp.Symbol("x\\\\input{a}"))
'\\\\alpha_{1} + \\\\text{x\\\\textbackslash{}input\\\\{a\\\\}}'
"""

from __future__ import annotations

import re
import unicodedata

import sympy as sp
from sympy.printing.latex import LatexPrinter

from symnn.errors import LatexError

__all__ = ["tex_escape", "ascii_math", "name_latex", "latex", "SafeNamesMixin", "activation_tex",
           "check_document", "UnsafeDocumentError"]

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}

# non-ASCII characters that may reach a document, as LaTeX usable in text and math
_UNICODE_TEX = {
    "σ": r"\sigma", "δ": r"\delta", "θ": r"\theta", "λ": r"\lambda", "α": r"\alpha",
    "β": r"\beta", "γ": r"\gamma", "ε": r"\varepsilon", "η": r"\eta", "μ": r"\mu",
    "ν": r"\nu", "π": r"\pi", "ρ": r"\rho", "τ": r"\tau", "φ": r"\varphi", "ψ": r"\psi",
    "ω": r"\omega", "ξ": r"\xi", "ζ": r"\zeta", "κ": r"\kappa", "χ": r"\chi", "Φ": r"\Phi",
    "Σ": r"\Sigma", "Δ": r"\Delta", "Θ": r"\Theta", "Λ": r"\Lambda", "Ω": r"\Omega",
    "ℓ": r"\ell", "∂": r"\partial", "∇": r"\nabla", "⊙": r"\odot", "→": r"\to",
    "≤": r"\le", "≥": r"\ge", "·": r"\cdot", "×": r"\times", "−": "-", "∑": r"\sum",
    "√": r"\surd", "∞": r"\infty", "≈": r"\approx", "ᵀ": r"^{\top}", "⟨": r"\langle",
    "⟩": r"\rangle",
}


def tex_escape(text: str) -> str:
    r"""Escape plain text for LaTeX: ``_`` → ``\_`` etc.; control characters → spaces.

    Greek letters and common mathematical symbols become ``\ensuremath{…}``; accented
    letters lose their accents; anything else becomes ``?`` (pdflatex without extra
    packages knows nothing else).  The result is printable ASCII: it contains no control
    sequence, comment, group, parameter or line end that the input could smuggle in.

    Examples
    --------
    >>> print(tex_escape("leaky_relu: 50% of $x & y#"))
    leaky\_relu: 50\% of \$x \& y\#
    >>> print(tex_escape("σ'(z)"))
    \ensuremath{\sigma}'(z)
    >>> print(tex_escape("a\r\\end{document}"))
    a \textbackslash{}end\{document\}
    """
    out = []
    for ch in str(text):
        if ch in _TEX_SPECIAL:
            out.append(_TEX_SPECIAL[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        elif ch.isspace() or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(" ")
        else:
            out.append(_non_ascii(ch))
    return "".join(out)


def _non_ascii(ch: str) -> str:
    """A pdflatex-safe stand-in for one non-ASCII character (valid in text and math)."""
    if ch in _UNICODE_TEX:
        cmd = _UNICODE_TEX[ch]
        return cmd if cmd == "-" else r"\ensuremath{" + cmd + "}"
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    plain = "".join(c for c in plain if c.isalnum())
    if plain:
        return plain
    if unicodedata.category(ch).startswith("Z") or unicodedata.category(ch) == "Cc":
        return " "
    return "?"


def ascii_math(tex: str) -> str:
    """Make LaTeX that symnn generated pdflatex-safe: non-ASCII characters become commands
    or ``?`` (the LaTeX itself is trusted; untrusted names went through :func:`name_latex`)."""
    if tex.isascii():
        return tex
    return "".join(ch if ch.isascii() else _non_ascii(ch) for ch in tex)


# A name SymPy's printer may handle: ASCII letters and digits, underscores, and non-ASCII
# letters (θ, which ascii_math turns into \theta).  Anything else is shown as text.
def _identifier_like(name: str) -> bool:
    if not name or len(name) > 64:
        return False
    if not (name[0].isalpha() or name[0] == "_"):
        return False
    for ch in name:
        if ch.isascii():
            if not (ch.isalnum() or ch == "_"):
                return False
        elif not unicodedata.category(ch).startswith("L"):
            return False
    return True


def name_latex(name: str) -> str:
    r"""Math-mode LaTeX for a user's symbol name.

    Examples
    --------
    >>> name_latex("theta_2"), name_latex("x{y}")
    ('\\theta_{2}', '\\text{x\\{y\\}}')
    """
    if _identifier_like(name):
        return ascii_math(LatexPrinter()._print_Symbol(sp.Symbol(name)))
    return r"\text{" + tex_escape(name) + "}"


def _function_name_latex(name: str) -> str:
    if _identifier_like(name) and "_" not in name:
        return name if len(name) == 1 else r"\operatorname{%s}" % name
    # no "%" at all: SymPy uses a function's printed name as a %-format string
    return r"\operatorname{\text{" + tex_escape(name).replace(r"\%", r"\textpercent{}") + "}}"


def activation_tex(act) -> str:
    """Math-mode LaTeX for an activation's function name (``\\sigma``, ``\\operatorname{f}``).

    Built-in activations carry their own LaTeX; a custom activation's name is the user's,
    so it is escaped here rather than trusted.
    """
    if not (act.key and act.key[0] == "lambda"):
        return act.symbol_tex
    name = str(act.name)
    if name == "f":
        return "f"
    if _identifier_like(name):
        return r"\operatorname{%s}" % name.replace("_", r"\_")
    return _function_name_latex(name)


class SafeNamesMixin:
    """Mixin for SymPy LaTeX printers: symbols and undefined functions print safely."""

    def _print_Symbol(self, expr, style="plain"):
        names = getattr(self, "_settings", {}).get("symbol_names") or {}
        if expr in names:
            return names[expr]
        if _identifier_like(expr.name):
            return super()._print_Symbol(expr, style)
        return r"\text{" + tex_escape(expr.name) + "}"

    def _hprint_Function(self, func: str) -> str:
        if _identifier_like(func):
            return super()._hprint_Function(func)
        return _function_name_latex(func)

    def _print_FunctionClass(self, expr):
        return _function_name_latex(str(expr))


class SafeLatexPrinter(SafeNamesMixin, LatexPrinter):
    """SymPy's LaTeX printer, safe for untrusted names."""


def latex(expr, **settings) -> str:
    """``sympy.latex`` with untrusted symbol and function names made safe."""
    return SafeLatexPrinter(settings).doprint(expr)


# -- the last line of defence -------------------------------------------------------------

class UnsafeDocumentError(LatexError):
    """A generated document failed :func:`check_document` (a bug in symnn); a
    :class:`~symnn.errors.LatexError`, so also a ``RuntimeError``."""


# TeX and LaTeX commands that read or write files, run programs, define or redefine
# commands, change category codes or build control sequences from text.
_FORBIDDEN = frozenset("""
    input include includeonly InputIfFileExists IfFileExists openin openout read readline
    write immediate write18 closein closeout special ShellEscape pdfshellescape
    csname endcsname expandafter def edef gdef xdef let futurelet global long outer
    newcommand renewcommand providecommand DeclareRobustCommand newenvironment
    renewenvironment catcode lccode uccode mathcode delcode sfcode uppercase lowercase
    scantokens everypar everymath everydisplay everyhbox everyvbox everyjob everyeof
    everycr output jobname usepackage RequirePackage documentclass LoadClass
    makeatletter makeatother directlua latelua pdfprimitive primitive endinput end
    verbatiminput lstinputlisting includegraphics pdfobj pdfximage pdffiledump
    pdfmdfivesum pdffilesize pdffilemoddate pdfstrcmp message errmessage show showthe
    loop repeat toks tokens afterassignment aftergroup string detokenize unexpanded
    noexpand the
""".split())

# the preamble and closing that symnn writes itself
_ALLOWED_ONCE = {"documentclass", "usepackage", "end"}


def check_document(tex: str) -> None:
    """Refuse a generated document that could run, read or write anything.

    Raises
    ------
    UnsafeDocumentError
        On a non-printable or non-ASCII character, ``^^`` notation, or a forbidden
        primitive (outside the preamble and closing that symnn writes).
    """
    for i, ch in enumerate(tex):
        if not (" " <= ch <= "~" or ch == "\n"):
            raise UnsafeDocumentError(
                f"generated LaTeX has a control or non-ASCII character {ch!r} at offset {i}")
    if "^^" in tex:
        raise UnsafeDocumentError("generated LaTeX contains TeX's ^^ notation")
    body_start = tex.find("\\begin{document}")
    body_end = tex.rfind("\\end{document}")
    for m in re.finditer(r"\\([A-Za-z@]+)", tex):
        name = m.group(1)
        if name not in _FORBIDDEN:
            continue
        inside = body_start < m.start() < body_end
        if name in _ALLOWED_ONCE and not inside:
            continue
        if name == "end" and tex.startswith("{", m.end()):
            env = tex[m.end():].split("}", 1)[0]
            if env != "{document" or m.start() == body_end:
                continue
        raise UnsafeDocumentError(
            f"generated LaTeX contains the control sequence \\{name} at offset {m.start()}")
