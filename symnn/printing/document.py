"""Standalone documents: a network's derivation as LaTeX (``.tex``) or Markdown.

:func:`export_latex` writes an ``article`` that compiles with plain ``pdflatex`` (amsmath,
amssymb and geometry only).  It holds the architecture (a table of layers), the forward
equations, the loss, the backprop equations in matrix form (from
:meth:`Declared.equations`), the optimizer's update rule when one is given, and on request
— for small networks — the expanded per-parameter gradient and the Hessian entries with
common subexpressions named (:func:`sympy.cse`) and long sums broken across lines.
:func:`export_markdown` writes the same content with ``$$…$$`` blocks.

The document is built once as a list of blocks (heading, paragraph, table, display math)
and rendered by one of two small renderers, so both formats always say the same thing.

Every string that comes from the user (a title, a custom activation's name, a model's
symbols) is escaped on its way in (:mod:`symnn.printing._tex`), and a finished LaTeX
document is checked before it is returned or written: printable ASCII only, and no TeX
primitive that reads, writes or defines anything.

Examples
--------
>>> import symnn
>>> net = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse")
>>> tex = export_latex(net)
>>> tex.splitlines()[1]
'\\\\documentclass[11pt]{article}'
>>> "\\\\delta^{(1)}" in tex and tex.rstrip().endswith("\\\\end{document}")
True
>>> md = export_markdown(net)
>>> md.splitlines()[0]
'# Backpropagation: network mlp (2-2-1)'
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter

from symnn._atomic import atomic_path, atomic_write_text
from symnn.declare.blocks import flat_layers
from symnn.declare.layers import Act, Dense, Softmax
from symnn.declare.model import Model
from symnn.errors import LatexError, SizeLimitError, SymnnError  # noqa: F401 (re-export)
from symnn.printing._breaking import break_row, width
from symnn.printing._render import (
    _Heading,
    _Math,
    _Para,
    _Raw,
    _Table,
    render_latex,
    render_markdown,
)
from symnn.printing._tex import (
    SafeNamesMixin,
    activation_tex,
    latex,
    tex_escape,
)

__all__ = [
    "EXPANDED_LIMIT",
    "HESSIAN_LIMIT",
    "LatexError",
    "compile_pdf",
    "expanded_gradient_latex",
    "export_latex",
    "export_markdown",
    "tex_escape",
]

#: Largest parameter count for which a document prints the expanded gradient.
EXPANDED_LIMIT = 200
#: Largest parameter count for which a document prints the Hessian entries.
HESSIAN_LIMIT = 40
#: Approximate printed width (characters) of one display line before a sum is broken.
LINE_WIDTH = 64


# -- public API -------------------------------------------------------------------------

def export_latex(
    declared,
    path: str | os.PathLike[str] | None = None,
    *,
    optimizer: Any = None,
    expanded: bool = False,
    hessian: bool = False,
    title: str | None = None,
    limit: int | None = None,
) -> str:
    r"""A standalone LaTeX ``article`` of the network's derivation.

    Parameters
    ----------
    declared : Network or Model
    path : str or os.PathLike, optional
        Where to write the document (atomically: a temporary file in the same directory,
        then :func:`os.replace`).
    optimizer : object, optional
        Printed with its update rule when it has ``.latex()`` or ``.equations().latex()``;
        a mapping of plain data (``{"name": "adam", "lr": 1e-3}``, as in a spec file) prints
        as a table of hyperparameters; anything else is named only.
    expanded : bool
        Add every ∂L/∂θᵢ written out for one sample, with shared subexpressions named.
    hessian : bool
        Add the Hessian entries ∂²L/∂θᵢ∂θⱼ (upper triangle, by parameter pair).
    title : str, optional
        The document's title (plain text; special characters are escaped).
    limit : int, optional
        Largest parameter count for the expanded forms (default :data:`EXPANDED_LIMIT`
        for the gradient, :data:`HESSIAN_LIMIT` for the Hessian).

    Returns
    -------
    str
        The document text.

    Raises
    ------
    SizeLimitError
        When ``expanded`` or ``hessian`` is asked for a network larger than the limit.
    OSError
        When ``path`` cannot be written (nothing is left behind).

    Examples
    --------
    >>> import symnn
    >>> net = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid")
    >>> tex = export_latex(net, expanded=True, title="XOR")
    >>> r"\frac{\partial L}{\partial W^{(1)}_{11}}" in tex
    True
    """
    blocks = _document(declared, optimizer, expanded, hessian, title, limit)
    text = render_latex(blocks, title or _default_title(declared))
    if path is not None:
        _write_atomic(path, text)
    return text


def export_markdown(
    declared,
    path: str | os.PathLike[str] | None = None,
    *,
    optimizer: Any = None,
    expanded: bool = False,
    hessian: bool = False,
    title: str | None = None,
    limit: int | None = None,
) -> str:
    """The same document as :func:`export_latex`, in Markdown with ``$$…$$`` math blocks.

    Headings are ``#`` (title) and ``##`` (sections); the architecture is a pipe table;
    display math is ``$$\\begin{aligned}…\\end{aligned}$$`` (KaTeX / MathJax / GitHub).

    Examples
    --------
    >>> import symnn
    >>> md = export_markdown(symnn.mlp([2, 1], activation="identity"))
    >>> [line for line in md.splitlines() if line.startswith("## ")][:3]
    ['## Architecture', '## Forward pass', '## Loss']
    """
    blocks = _document(declared, optimizer, expanded, hessian, title, limit)
    text = render_markdown(blocks, title or _default_title(declared))
    if path is not None:
        _write_atomic(path, text)
    return text


def expanded_gradient_latex(declared, *, limit: int | None = None) -> str:
    r"""The expanded gradient as one LaTeX ``align*`` block (common subexpressions named).

    Raises
    ------
    SizeLimitError
        Above ``limit`` parameters (default :data:`EXPANDED_LIMIT`).

    Examples
    --------
    >>> import symnn
    >>> print(expanded_gradient_latex(symnn.mlp([1, 1], activation="identity")))
    \begin{align*}
    u_{1} &= 2 W^{(1)}_{11} x_{1} + 2 b^{(1)}_{1} - 2 y_{1} \\
    \frac{\partial L}{\partial W^{(1)}_{11}} &= u_{1} x_{1} \\
    \frac{\partial L}{\partial b^{(1)}_{1}} &= u_{1}
    \end{align*}
    """
    (block,) = [b for b in _expanded_gradient(declared, limit) if isinstance(b, _Math)]
    return "\\begin{align*}\n" + " \\\\\n".join(block.rows) + "\n\\end{align*}"


def compile_pdf(tex_path: str | os.PathLike[str], *, timeout: float = 120.0,
                keep_log: bool = True) -> Path:
    """Run ``pdflatex`` on a ``.tex`` file; returns the PDF's path (next to the file).

    The engine runs locked down, since a ``.tex`` file is a program: in a private
    temporary directory (a copy of the file is all it sees there), with
    ``-no-shell-escape``, ``-no-parse-first-line``, kpathsea's paranoid file access
    (``openin_any=p``, ``openout_any=p``: no absolute paths, no ``..``, no dot files;
    writes only inside the build directory), stdin closed, and a timeout.  The PDF and
    the log are then copied next to the ``.tex`` file (the log only on failure with
    ``keep_log=False``, as ``symnn latex --pdf`` does).  Only the file itself is compiled
    (as symnn's documents are: self-contained); files it would ``\\input`` are not there.

    Parameters
    ----------
    tex_path : str or os.PathLike
    timeout : float
        Seconds before ``pdflatex`` is stopped.
    keep_log : bool
        Copy pdflatex's log next to the file also after a successful compile (default);
        False removes a log an earlier failed compile of the file left.

    Raises
    ------
    LatexError
        When ``pdflatex`` is not installed, times out or reports an error (the message
        quotes the first ``!`` line of the log).
    """
    tex = Path(tex_path).resolve()
    _check_tex_name(tex)  # walk 7
    exe = shutil.which("pdflatex")
    if exe is None:
        raise LatexError("pdflatex is not installed; install texlive-latex-base and "
                         "texlive-latex-recommended (Debian) or compile the .tex elsewhere")
    try:
        source = tex.read_bytes()
    except OSError as err:
        raise LatexError(f"cannot read {tex}: {err.strerror or err}") from err
    with tempfile.TemporaryDirectory(prefix="symnn-latex-") as build:
        (Path(build) / "doc.tex").write_bytes(source)
        env = dict(os.environ, openin_any="p", openout_any="p", shell_escape="f",
                   TEXMFOUTPUT=build)
        cmd = [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
               "-no-parse-first-line", f"-output-directory={build}",
               "doc.tex"]
        try:
            proc = subprocess.run(cmd, cwd=build, stdin=subprocess.DEVNULL, env=env,
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            raise LatexError(f"pdflatex did not finish on {tex} within {timeout:g} s") from err
        built_pdf, built_log = Path(build) / "doc.pdf", Path(build) / "doc.log"
        log = tex.with_suffix(".log")
        failed = proc.returncode != 0 or not built_pdf.exists()
        if built_log.exists() and (failed or keep_log):  # walk 7: keep_log=False
            with atomic_path(log, suffix=".log", user=True) as tmp:
                shutil.copyfile(built_log, tmp)
        if failed:
            first = ""
            if built_log.exists():
                lines = built_log.read_text(errors="replace").splitlines()
                first = next((ln for ln in lines if ln.startswith("!")), "")
            raise LatexError(f"pdflatex failed on {tex} (exit {proc.returncode})"
                             + (f": {first}" if first else "") + f"; see {log}")
        pdf = tex.with_suffix(".pdf")
        with atomic_path(pdf, suffix=".pdf", user=True) as tmp:
            shutil.copyfile(built_pdf, tmp)
    if not keep_log:
        _drop_stale_log(log)
    return pdf


def _check_tex_name(tex: Path) -> None:
    """Refuse a LaTeX file named like its own PDF or log (walk 7: ``-o doc.pdf --pdf``
    wrote the LaTeX source to doc.pdf, then replaced it with the PDF)."""
    if tex.suffix.lower() in (".pdf", ".log"):
        raise LatexError(f"{tex}: the PDF and the log are written next to the LaTeX file as "
                         f"{tex.stem}.pdf and {tex.stem}.log, so this name would be "
                         f"overwritten; name the LaTeX file {tex.stem}.tex")


def _drop_stale_log(log: Path) -> None:
    """After a successful compile, remove the log an earlier failed compile of the same
    file left (walk 7): only a file pdflatex wrote, recognised by its first line."""
    try:
        with open(log, "rb") as fh:
            first = fh.read(64)
    except OSError:
        return
    if first.startswith(b"This is pdfTeX"):
        with contextlib.suppress(OSError):
            os.unlink(log)


def _write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    atomic_write_text(path, text, user=True)


# -- the printer used for expanded expressions ------------------------------------------

class _DocPrinter(SafeNamesMixin, LatexPrinter):
    """SymPy's LaTeX printer with symnn's conventions (``H(z)`` for the step function)."""

    def _print_Heaviside(self, expr, exp=None):
        s = r"H\left(" + self._print(expr.args[0]) + r"\right)"
        return s if exp is None else f"{s}^{{{exp}}}"

    def _print_exp(self, expr, exp=None):
        # a long exponent is unreadable as a superscript: write exp(...) instead
        arg = self._print(expr.args[0])
        if _width(arg) <= 16:
            return self._print_ExpBase(expr, exp)
        s = r"\exp\left(" + arg + r"\right)"
        return s if exp is None else f"{s}^{{{exp}}}"


_PARAM_NAME = re.compile(r"([A-Za-z]+)(\d+)_(\d+(?:_\d+)*)\Z")


def _param_tex(declared, syms) -> dict:
    """LaTeX names of parameter symbols: ``W1_12`` → ``W^{(1)}_{12}``."""
    if isinstance(declared, Model):
        return {}
    out = {}
    for s in syms:
        m = _PARAM_NAME.match(s.name)
        if not m:
            continue
        base, layer, idx = m.groups()
        idx = idx.replace("_", ",")
        out[s] = f"{base}^{{({layer})}}_{{{idx}}}"
    return out


def _cse_prefix(exprs) -> str:
    names = set()
    for e in exprs:
        names |= {s.name for s in e.free_symbols if not isinstance(s, sp.Dummy)}
    for p in ("u", "v", "q", "c", "k", "t"):
        pat = re.compile(rf"{p}(_?\d+)?(_.*)?\Z")
        if not any(pat.match(n) for n in names):
            return p
    return "tmp"  # pragma: no cover - every candidate taken


def _width(tex: str) -> float:
    return width(tex)


def _rows(lhs: str, expr, printer, width_limit: float = LINE_WIDTH) -> list[str]:
    """Align rows for ``lhs = expr``, broken across lines when too wide
    (:func:`symnn.printing._breaking.break_row`)."""
    return break_row(lhs, printer.doprint(expr), width_limit)


def _broken(rows: list[str]) -> list[str]:
    """Break the too-wide rows of an ``align*`` block (rows ``lhs &= rhs``)."""
    out = []
    for row in rows:
        if " &= " in row and not row.startswith("&"):
            lhs, rhs = row.split(" &= ", 1)
            out.extend(break_row(lhs, rhs, LINE_WIDTH))
        else:
            out.append(row)
    return out


def _cse_rows(declared, labelled: list[tuple[str, sp.Expr]], param_syms) -> list[str]:
    """Rows naming shared subexpressions, then ``label = reduced expression`` rows."""
    exprs = [e for _, e in labelled]
    # name with Dummies first: the expressions are DAGs with heavy sharing, and walking
    # them as trees (free_symbols) is exponential in depth; the reduced forms are small
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(cls=sp.Dummy), order="none")
    prefix = _cse_prefix([v for _, v in repl] + list(reduced))
    gen = sp.numbered_symbols(prefix, start=1, real=True)
    rename = {d: next(gen) for d, _ in repl}
    repl = [(rename[d], v.xreplace(rename)) for d, v in repl]
    reduced = [e.xreplace(rename) for e in reduced]
    names = _param_tex(declared, param_syms)
    printer = _DocPrinter({"symbol_names": names})
    rows = []
    for sym, value in repl:
        rows.extend(_rows(printer.doprint(sym), value, printer))
    for (label, _), e in zip(labelled, reduced):
        rows.extend(_rows(label, e, printer))
    return rows


# -- building the document --------------------------------------------------------------

def _default_title(declared) -> str:
    if isinstance(declared, Model):
        return f"Derivatives: model {declared.name}"
    widths = [declared.n_inputs] + [la.n_out for la, _, _ in flat_layers(declared)
                                    if isinstance(la, Dense)]
    return f"Backpropagation: network {declared.name} ({'-'.join(map(str, widths))})"


def _act_label(layer) -> list:
    """Table cell for an activation layer: its name, and the definition if custom."""
    if isinstance(layer, Softmax):
        return [("text", "softmax")]
    act = layer.activation
    if act.key and act.key[0] == "lambda":
        z = sp.Symbol("z", real=True)
        body = latex(act.apply(z))
        return [("text", f"{act.name} (custom) "), ("math", f"{_fn_tex(act)}(z) = {body}")]
    return [("text", act.name)]


def _fn_tex(act) -> str:
    return activation_tex(act)


def _enclosing_blocks(flat) -> list:
    """For each entry of ``flat_layers``: the kind of the innermost block around it
    (``"residual block"``, ``"graph"``) or None.  A block is listed after its inner layers,
    one level shallower, so a backward walk with a stack finds it."""
    out: list = [None] * len(flat)
    stack: list = []  # (depth of the block, its kind)
    for i in range(len(flat) - 1, -1, -1):
        layer, _l, depth = flat[i]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        out[i] = stack[-1][1] if stack else None
        if hasattr(layer, "numbered"):
            kind = "graph" if type(layer).__name__ == "Graph" else "residual block"
            stack.append((depth, kind))
    return out


def _architecture(declared) -> list:
    blocks: list = [_Heading(2, "Architecture")]
    if isinstance(declared, Model):
        inputs = ", ".join(latex(s) for s in declared.inputs)
        params = ", ".join(latex(s) for s in declared.params)
        out_cell = _act_label(declared.output) if declared.output is not None else [
            ("text", "identity")]
        rows = [[[("text", "1")], [("text", "custom")],
                 [("math", rf"{declared.n_inputs} \to {declared.n_outputs}")],
                 out_cell, [("text", str(declared.n_params))]]]
        blocks.append(_Table(["Layer", "Type", "Shape", "Output", "Parameters"], rows,
                             "llccr"))
        blocks.append(_Para([("text", "Inputs "), ("math", inputs),
                             ("text", "; parameters "), ("math", rf"\theta = ({params})"),
                             ("text", ".")]))
    else:
        rows = []
        dense_rows = []
        flat = flat_layers(declared)
        within = _enclosing_blocks(flat)
        for i, (layer, l, _depth) in enumerate(flat):
            if isinstance(layer, Dense):
                n = layer.n_out * layer.n_in + (layer.n_out if layer.bias else 0)
                shape = rf"W^{{({l})}} \in \mathbb{{R}}^{{{layer.n_out} \times {layer.n_in}}}"
                kind = "dense" if layer.bias else "dense (no bias)"
                if within[i] is not None:
                    kind += f" (in a {within[i]})"
                dense_rows.append([[("text", str(l))], [("text", kind)], [("math", shape)],
                                   [], [("text", str(n))]])
            elif hasattr(layer, "table_row"):  # a layer that describes itself (Conv1D, pools)
                number, kind, shape, n = layer.table_row(l)
                dense_rows.append([[("text", number)], [("text", kind)], [("math", shape)], [],
                                   [("text", n)]])
            elif dense_rows and not (isinstance(layer, Act) and layer.activation.identity):
                cell = dense_rows[-1][3]
                if cell:
                    cell.append(("text", ", then "))
                cell.extend(_act_label(layer) if isinstance(layer, (Act, Softmax))
                            else [("text", "identity, then + skip" if not cell else "+ skip")])
        for r in dense_rows:
            if not r[3]:
                r[3] = [("text", "identity")]
            rows.append(r)
        rows.append([[("text", "")], [("text", "total")], [("text", "")], [("text", "")],
                     [("text", str(declared.n_params))]])
        blocks.append(_Table(["Layer", "Type", "Shape", "Activation", "Parameters"], rows,
                             "llccr"))
        io = f"{_count(declared.n_inputs, 'input')}, {_count(declared.n_outputs, 'output')}."
        blocks.append(_Para([("text", io)]))
    loss = declared.loss
    parts: list = [("text", f"Loss: {loss.name}, "), ("math", loss.tex),
                   ("text", " per sample; the batch loss is the mean over the batch")]
    for pen in declared.penalties:
        parts += _penalty_parts(declared, pen)
    parts.append(("text", "."))
    blocks.append(_Para(parts))
    return blocks


def _count(n: int, noun: str) -> str:
    """``1 output``, ``2 outputs``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _penalty_parts(declared, pen) -> list:
    """The header's words for one penalty, naming the parameters it covers.

    ``λ(‖W⁽¹⁾‖² + ‖W⁽²⁾‖²) on the weights W⁽¹⁾, W⁽²⁾ (biases are not penalised)``: a
    network's default penalty covers its weight matrices only, and the header says so.
    """
    from symnn.derive import derive

    lam = latex(sp.nsimplify(pen.lam)) if float(pen.lam) == float(sp.nsimplify(pen.lam)) \
        else latex(sp.Float(pen.lam, 4))
    targets = [(param, idx) for p, param, idx in derive(declared).meta.get("penalties", ())
               if p is pen]
    if isinstance(declared, Model):
        names = [str(s) for s in declared.params]
        chosen = [declared.params[i] for i in (targets[0][1] if targets and targets[0][1]
                                               is not None else range(len(names)))]
        every = len(chosen) == len(names)
        terms = [latex(s) for s in chosen]
        if every:
            norm = r"\lVert\theta\rVert_2^2" if pen.kind == "l2" else r"\lVert\theta\rVert_1"
            where = "all parameters"
        else:
            norm = r"\left(%s\right)" % " + ".join(
                (f"{t}^{{2}}" if pen.kind == "l2" else rf"\lvert {t}\rvert") for t in terms)
            where = "the parameters " + ", ".join(str(s) for s in chosen)
        return [("text", f", plus an {pen.kind.upper()} penalty "), ("math", rf"{lam}\,{norm}"),
                ("text", f" on {where}")]
    texs = [param.tex for param, _ in targets]
    one = (r"\lVert %s\rVert_2^2" if pen.kind == "l2" else r"\lVert %s\rVert_1")
    norm = " + ".join(one % t for t in texs)
    if len(texs) > 1:
        norm = r"\left(%s\right)" % norm
    math = ", ".join(texs)
    note = ""
    if pen.params is None:
        note = " (the weight matrices; biases are not penalised)"
    return [("text", f", plus an {pen.kind.upper()} penalty "), ("math", rf"{lam}\,{norm}"),
            ("text", " on "), ("math", math), ("text", note)]


def _optimizer(optimizer) -> list:
    if optimizer is None:
        return []
    blocks: list = [_Heading(2, "Optimizer")]
    if isinstance(optimizer, Mapping):
        name = str(optimizer.get("name", "optimizer"))
        rows = [[[("text", str(k))], [("text", _fmt(v))]]
                for k, v in optimizer.items() if k != "name"]
        note = (f"{name} (hyperparameters from the spec; its update rule prints when the "
                "optimizer object is given).")
        blocks.append(_Para([("text", note)]))
        if rows:
            blocks.append(_Table(["Hyperparameter", "Value"], rows, "lr"))
        return blocks
    if isinstance(optimizer, str):
        blocks.append(_Para([("text", f"{optimizer}.")]))
        return blocks
    name = getattr(optimizer, "name", None) or type(optimizer).__name__
    tex = None
    try:
        if callable(getattr(optimizer, "latex", None)):
            tex = optimizer.latex()
        elif callable(getattr(optimizer, "equations", None)):
            eqs = optimizer.equations()
            if callable(getattr(eqs, "latex", None)):
                tex = eqs.latex()
    except NotImplementedError:
        tex = None
    if not isinstance(tex, str) or not tex.strip():
        blocks.append(_Para([("text", f"{name} (no update rule available to print).")]))
        return blocks
    shown = repr(optimizer)
    if "\n" in shown or " object at 0x" in shown or len(shown) > 90:
        shown = str(name)
    blocks.append(_Para([("text", f"{shown}: the update rule.")]))
    blocks.append(_raw_math(tex.strip()))
    return blocks


def _raw_math(tex: str) -> _Raw:
    """A display-math block given as LaTeX, wrapped for each format."""
    body = tex
    if body.startswith("$$") and body.endswith("$$"):
        body = body[2:-2].strip()
    m = re.match(r"\\begin\{(align\*?|aligned|equation\*?|gather\*?)\}(.*)\\end\{\1\}\Z",
                 body, re.DOTALL)
    inner = m.group(2).strip() if m else body
    if m and m.group(1).startswith("equation"):
        latex, md = rf"\[ {inner} \]", f"$$\n{inner}\n$$"
    elif m or "&" in inner or r"\\" in inner:
        latex = "\\begin{align*}\n" + inner + "\n\\end{align*}"
        md = "$$\n\\begin{aligned}\n" + inner + "\n\\end{aligned}\n$$"
    else:
        latex, md = rf"\[ {inner} \]", f"$$\n{inner}\n$$"
    return _Raw(latex, md)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _expanded_gradient(declared, limit) -> list:
    lim = EXPANDED_LIMIT if limit is None else limit
    if declared.n_params > lim:
        raise SizeLimitError(
            f"the expanded gradient of a network with {declared.n_params} parameters is too "
            f"long for a document (limit {lim}; limit= raises it); print the matrix form "
            "without expanded=True")
    grad = declared.gradient(limit=max(lim, declared.n_params))
    names = _param_tex(declared, grad)
    printer = _DocPrinter({"symbol_names": names})
    labelled = [(r"\frac{\partial L}{\partial " + printer.doprint(s) + "}", e)
                for s, e in grad.items()]
    blocks: list = [_Heading(2, "Expanded gradient")]
    blocks.append(_Para(_sample_note(declared) + [
        ("text", " Shared subexpressions are named first.")]))
    blocks.append(_Math(_cse_rows(declared, labelled, list(grad))))
    return blocks


def _listing(base: str, n: int) -> str:
    if n <= 3:
        return ", ".join(f"{base}_{{{i}}}" for i in range(1, n + 1))
    return f"{base}_{{1}}, \\dots, {base}_{{{n}}}"


def _sample_note(declared) -> list:
    if isinstance(declared, Model):
        xs = ", ".join(latex(s) for s in declared.inputs)
    else:
        xs = _listing("x", declared.n_inputs)
    return [("text", "For one sample (inputs "), ("math", xs), ("text", ", targets "),
            ("math", _listing("y", declared.n_outputs)), ("text", "), so "),
            ("math", r"L = \ell"), ("text", " plus any penalty.")]


def _hessian(declared, limit) -> list:
    lim = HESSIAN_LIMIT if limit is None else limit
    P = declared.n_params
    if P > lim:
        raise SizeLimitError(
            f"the Hessian of a network with {P} parameters has {P * (P + 1) // 2} distinct "
            f"entries, too many for a document (limit {lim} parameters; limit= raises it); "
            "use net.compile() for numeric Hessians")
    H = declared.hessian(limit=max(P, lim))
    syms = _flat_param_symbols(declared)
    names = _param_tex(declared, syms)
    printer = _DocPrinter({"symbol_names": names})
    tex = [printer.doprint(s) for s in syms]
    labelled, zeros = [], []
    for i in range(P):
        for j in range(i, P):
            e = H[i, j]
            if e == 0:
                zeros.append((i, j))
                continue
            if i == j:
                sq = f"{tex[i]}^{{2}}" if tex[i].isalpha() else rf"\left({tex[i]}\right)^{{2}}"
                lab = r"\frac{\partial^2 L}{\partial " + sq + "}"
            else:
                lab = rf"\frac{{\partial^2 L}}{{\partial {tex[i]} \, \partial {tex[j]}}}"
            labelled.append((lab, e))
    blocks: list = [_Heading(2, "Hessian")]
    total = P * (P + 1) // 2
    blocks.append(_Para(_sample_note(declared) + [
        ("text", (f" The Hessian is symmetric; its upper triangle has {total} entries, "
                  f"{len(zeros)} of them identically zero (not listed)."))]))
    if labelled:
        blocks.append(_Math(_cse_rows(declared, labelled, syms)))
    return blocks


def _flat_param_symbols(declared) -> list:
    from symnn.derive.expanded import param_symbols

    syms = param_symbols(declared)
    out = []
    for name, _shape in declared.param_shapes:
        out.extend(syms[name].ravel().tolist())
    return out


def _document(declared, optimizer, expanded, hessian, title, limit) -> list:
    eqs = declared.equations()
    blocks: list = []
    blocks.extend(_architecture(declared))
    for sec_title, rows in eqs.sections:
        if not rows:
            continue
        blocks.append(_Heading(2, sec_title))
        blocks.append(_Math(_broken([e.latex() for e in rows])))
    if eqs.notes_tex:
        blocks.append(_Raw("\n\n".join(eqs.notes_tex), "\n\n".join(eqs.notes_tex)))
    blocks.extend(_optimizer(optimizer))
    if expanded:
        blocks.extend(_expanded_gradient(declared, limit))
    if hessian:
        blocks.extend(_hessian(declared, limit))
    return blocks
