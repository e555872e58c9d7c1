"""LaTeX and Markdown documents: they say what they should, and the LaTeX compiles.

Each document is compiled with ``pdflatex -interaction=nonstopmode -halt-on-error`` in a
temporary directory; the test asserts exit status 0, a PDF, and no ``!`` error line in the
log.  Without pdflatex on PATH the compile tests skip, saying so (CI installs it).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import subprocess

import pytest
import sympy as sp

import symnn
from symnn.errors import SizeLimitError
from symnn.printing.document import (
    LatexError,
    compile_pdf,
    expanded_gradient_latex,
    export_latex,
    export_markdown,
    tex_escape,
)

PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(
    PDFLATEX is None,
    reason="pdflatex is not on PATH (apt-get install texlive-latex-base "
           "texlive-latex-recommended latexmk)")


def compile_tex(tex: str, directory, name: str = "doc") -> str:
    """Compile ``tex`` with pdflatex in ``directory``; returns the log after asserting."""
    src = directory / f"{name}.tex"
    src.write_text(tex, encoding="utf-8")
    proc = subprocess.run(
        [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", src.name],
        cwd=directory, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
    log = (directory / f"{name}.log").read_text(errors="replace")
    errors = [ln for ln in log.splitlines() if ln.startswith("!")]
    assert proc.returncode == 0, f"pdflatex exit {proc.returncode}: {errors}\n{log[-3000:]}"
    assert (directory / f"{name}.pdf").is_file()
    assert errors == [], errors
    overfull = [float(w) for w in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]
    assert all(w <= 1.0 for w in overfull), f"lines wider than the page: {overfull} pt"
    return log


def xor_net():
    return symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse")


def classifier():
    return symnn.mlp([4, 8, 8, 3], activation="relu", output="softmax", loss="cross_entropy",
                     penalties=[symnn.L2(1e-3)])


def decay_model():
    x, a, b, w = sp.symbols("x a b w", real=True)
    return symnn.Model(a * sp.exp(-b * x) * sp.cos(w * x), inputs=[x], params=[a, b, w])


def every_activation_net():
    """One dense layer per registered activation, a custom Lambda, softmax + KL, L1."""
    z = sp.Symbol("z", real=True)
    acts = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
            "swish", sp.Lambda(z, z / (1 + sp.Abs(z)))]
    layers: list = []
    for act in acts:
        layers += [symnn.Dense(1, 1), act]
    layers += [symnn.Dense(1, 2), "softmax"]
    return symnn.Network(layers, loss="kl", penalties=[symnn.L1(0.01, ["W1"])],
                         name="every_activation")


TITLE = "A title with under_scores, 50% & σ"


@functools.cache
def document(kind: str) -> str:
    """The LaTeX documents compiled below, built once per test session."""
    make, options = {
        "xor": (xor_net, {"expanded": True, "hessian": True}),
        "classifier": (classifier, {"optimizer": {"name": "adam", "lr": 1e-3}}),
        "custom_model": (decay_model, {"expanded": True, "hessian": True}),
        "every_activation": (every_activation_net, {"expanded": True}),
    }[kind]
    return export_latex(make(), title=TITLE, **options)


def math_blocks(tex: str) -> list[str]:
    return re.findall(r"\\begin\{align\*\}(.*?)\\end\{align\*\}", tex, flags=re.DOTALL)


# -- content -------------------------------------------------------------------------------

def test_xor_document_content():
    tex = export_latex(xor_net(), expanded=True, hessian=True, title="XOR: a 2-2-1 net")
    assert tex.splitlines()[1] == r"\documentclass[11pt]{article}"
    for pkg in ("amsmath", "amssymb", "geometry"):
        assert rf"\usepackage{{{pkg}}}" in tex or rf"]{{{pkg}}}" in tex
    for heading in ("Architecture", "Forward pass", "Loss", "Backward pass", "Gradients",
                    "Expanded gradient", "Hessian"):
        assert rf"\section*{{{heading}}}" in tex
    assert r"\begin{tabular}" in tex and r"\mathbb{R}^{2 \times 2}" in tex
    assert r"\delta^{(1)} &= \nabla_{a^{(1)}}\ell \odot \sigma'\left(z^{(1)}\right)" in tex
    # every parameter has its expanded derivative; the Hessian has the 45 upper entries
    for p in ("W^{(1)}_{11}", "W^{(1)}_{22}", "b^{(1)}_{2}", "W^{(2)}_{12}", "b^{(2)}_{1}"):
        assert rf"\frac{{\partial L}}{{\partial {p}}} &= " in tex
    n_hess = len(re.findall(r"\\frac\{\\partial\^2 L\}", tex))
    assert n_hess + int(re.search(r"(\d+) of them identically zero", tex).group(1)) == 45
    assert r"\frac{\partial^2 L}{\partial \left(W^{(1)}_{11}\right)^{2}}" in tex
    assert "XOR: a 2-2-1 net" in tex
    # shared subexpressions are named and used
    assert re.search(r"^u_\{1\} &= ", tex, flags=re.MULTILINE)
    assert tex.isascii()


def test_expanded_gradient_is_the_derived_gradient():
    """The printed (cse) form, substituted back, equals net.gradient() exactly."""
    net = xor_net()
    block = expanded_gradient_latex(net)
    rows = block.splitlines()[1:-1]
    assert len([r for r in rows if r.startswith(r"\frac")]) == net.n_params
    assert all(r.endswith(r" \\") for r in rows[:-1])


def test_long_sums_are_broken_across_lines():
    net = symnn.mlp([8, 2, 2], activation="relu", output="softmax", loss="cross_entropy")
    tex = export_latex(net, expanded=True)
    cont = [ln for ln in tex.splitlines() if ln.startswith((r"&\quad", r"&\qquad"))]
    assert cont, "an 8-term affine sum should break"
    for ln in cont:
        assert re.match(r"&\\q?quad (\{\} [+-] )?\S", ln)
    # \left ... \right never span rows; \bigl( ... \bigr) may
    for block in math_blocks(tex):
        for row in block.split(r"\\" + "\n"):
            assert row.count(r"\left") == row.count(r"\right"), row
        assert block.count(r"\bigl(") == block.count(r"\bigr)")


def test_classifier_document_content():
    tex = export_latex(classifier(), optimizer={"name": "adam", "lr": 1e-3, "beta1": 0.9})
    assert r"\operatorname{softmax}" in tex and r"\operatorname{LSE}" in tex
    assert r"\frac{1}{1000}" in tex  # the L2 strength
    assert "Hyperparameter" in tex and "beta1" in tex and "Expanded gradient" not in tex
    assert "cross\\_entropy" in tex  # underscores in text are escaped


def test_model_document_content():
    tex = export_latex(decay_model(), expanded=True, hessian=True)
    assert r"\theta = (a, b, w)" in tex
    assert r"\frac{\partial L}{\partial w} &= " in tex
    assert r"\frac{\partial^2 L}{\partial a \, \partial b} &= " in tex
    assert r"\frac{\partial^2 L}{\partial w^{2}} &= " in tex


def test_every_activation_prints_its_own_notation():
    tex = document("every_activation")
    for name in (r"\sigma", r"\tanh", r"\operatorname{ReLU}", r"\operatorname{LeakyReLU}",
                 r"\operatorname{ELU}", r"\operatorname{softplus}", r"\operatorname{GELU}",
                 r"\operatorname{swish}", r"\operatorname{softmax}", r"\begin{cases}",
                 r"H\left(", r"\Phi\left(", r"\operatorname{sign}"):  # Φ: GELU' (erfc form)
        assert name in tex, name
    assert "leaky\\_relu" in tex and "f (custom)" in tex


class _RuleOptimizer:
    name = "SGD"

    def equations(self):
        class Eqs:
            def latex(self):
                return "\\begin{align*}\n\\theta_{t} &= \\theta_{t-1} - \\eta g_{t}\n\\end{align*}"
        return Eqs()


class _LatexOptimizer:
    name = "Heavy ball"

    def latex(self):
        return r"v_t = \mu v_{t-1} - \eta g_t"


def test_optimizer_update_rule_is_printed_when_available():
    tex = export_latex(xor_net(), optimizer=_RuleOptimizer())
    assert r"\theta_{t} &= \theta_{t-1} - \eta g_{t}" in tex
    tex = export_latex(xor_net(), optimizer=_LatexOptimizer())
    assert r"\[ v_t = \mu v_{t-1} - \eta g_t \]" in tex
    md = export_markdown(xor_net(), optimizer=_RuleOptimizer())
    assert "$$\n\\begin{aligned}\n\\theta_{t} &= \\theta_{t-1} - \\eta g_{t}\n" in md
    # anything else is named and skipped
    tex = export_latex(xor_net(), optimizer=object())
    assert "no update rule available" in tex


def test_trainer_optimizer_objects_print_if_present():
    from symnn.train import optimizers
    opt = optimizers.get_optimizer({"name": "adam", "lr": 1e-3})
    tex = export_latex(xor_net(), optimizer=opt)
    assert r"\section*{Optimizer}" in tex and r"\hat{m}_{t}" in tex


def test_size_limits():
    big = symnn.mlp([16, 16, 4])
    with pytest.raises(SizeLimitError, match="limit 200"):
        export_latex(big, expanded=True)
    with pytest.raises(SizeLimitError, match="limit 40 parameters"):
        export_latex(big, hessian=True)
    export_latex(big)  # the matrix form has no limit


def test_markdown_structure():
    md = export_markdown(xor_net(), expanded=True, hessian=True,
                         optimizer={"name": "sgd", "lr": 0.5}, title="XOR *net*")
    lines = md.splitlines()
    assert lines[0] == r"# XOR \*net\*"
    headings = [ln for ln in lines if ln.startswith("## ")]
    assert headings == ["## Architecture", "## Forward pass", "## Loss", "## Backward pass",
                        "## Gradients", "## Optimizer", "## Expanded gradient", "## Hessian"]
    # display math: balanced $$ fences, each an aligned block
    fences = [i for i, ln in enumerate(lines) if ln == "$$"]
    assert fences and len(fences) % 2 == 0
    for start, end in zip(fences[::2], fences[1::2]):
        assert lines[start + 1] == r"\begin{aligned}" and lines[end - 1] == r"\end{aligned}"
    # the architecture table: header, alignment row, one row per dense layer, total
    i = lines.index("| Layer | Type | Shape | Activation | Parameters |")
    assert lines[i + 1] == "| :--- | :--- | :---: | :---: | ---: |"
    assert lines[i + 2].startswith("| 1 | dense | $W^{(1)}")
    assert lines[i + 4] == "|  | total |  |  | 9 |"
    assert r"\frac{\partial L}{\partial W^{(1)}_{11}} &= " in md
    assert "\\begin{align*}" not in md and "\\documentclass" not in md


def test_written_atomically(tmp_path):
    target = tmp_path / "xor.tex"
    text = export_latex(xor_net(), target)
    assert target.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xor.tex"]  # no temp left
    mode = stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    md = tmp_path / "xor.md"
    assert export_markdown(xor_net(), md) == md.read_text(encoding="utf-8")
    with pytest.raises(OSError):
        export_latex(xor_net(), tmp_path / "missing" / "x.tex")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xor.md", "xor.tex"]


def test_text_escaping():
    assert tex_escape("a_b & 100% $#{}~^\\") == (
        r"a\_b \& 100\% \$\#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}")
    assert tex_escape("σ→λ café ☃").isascii()


# -- compiling ------------------------------------------------------------------------------

@needs_pdflatex
@pytest.mark.parametrize("kind", ["xor", "classifier", "custom_model", "every_activation"])
def test_documents_compile(kind, tmp_path):
    log = compile_tex(document(kind), tmp_path)
    assert "Output written on doc.pdf" in log


@needs_pdflatex
def test_wide_expanded_hessian_fits_the_page(tmp_path):
    """Issue 11, item 5: this document had a row 266 pt wider than the text."""
    net = symnn.mlp([2, 3, 3, 2], "tanh", "softmax", "cross_entropy")
    tex = export_latex(net, expanded=True, hessian=True)
    assert r"\bigl(" in tex and r"&\qquad {} + " in tex  # nested groups were opened
    compile_tex(tex, tmp_path)  # asserts no Overfull \hbox over 1 pt


def test_rows_are_broken_to_the_width():
    from symnn.printing._breaking import break_row, width

    rhs = r"x_{1} \left(" + " + ".join(rf"W_{{{i}}} \left(a_{{{i}}} - b_{{{i}}}\right)"
                                       for i in range(30)) + r"\right)"
    rows = break_row(r"\frac{\partial L}{\partial w}", rhs, 60)
    assert len(rows) > 3 and all(width(r) <= 64 for r in rows)
    joined = " ".join(r.split("&", 1)[1].lstrip("=").replace(r"\quad", "")
                      .replace(r"\qquad", "").replace("{}", "") for r in rows)
    assert joined.count(r"\bigl(") == joined.count(r"\bigr)") == 1
    flat = re.sub(r"\s+", "", joined.replace(r"\bigl(", r"\left(").replace(r"\bigr)", r"\right)"))
    assert flat == re.sub(r"\s+", "", rhs)  # the same expression, only broken
    short = break_row("y", "a + b", 60)
    assert short == ["y &= a + b"]


@needs_pdflatex
def test_optimizer_rule_and_odd_titles_compile(tmp_path):
    tex = export_latex(decay_model(), optimizer=_RuleOptimizer(),
                       title="#1 {weird} $title$ ~ ^ \\ | < > ∂L/∂θ ☃")
    compile_tex(tex, tmp_path)


@needs_pdflatex
def test_compile_pdf_helper(tmp_path):
    tex = tmp_path / "x.tex"
    export_latex(xor_net(), tex)
    pdf = compile_pdf(tex)
    assert pdf == tex.with_suffix(".pdf") and pdf.stat().st_size > 1000
    bad = tmp_path / "bad.tex"
    bad.write_text("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}")
    with pytest.raises(LatexError, match="Undefined control sequence"):
        compile_pdf(bad)


def test_compile_pdf_without_pdflatex(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LatexError, match="pdflatex is not installed"):
        compile_pdf(tmp_path / "x.tex")
