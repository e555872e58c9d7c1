"""docs/notebook.ipynb runs top to bottom in a Jupyter kernel (nbclient), and shows what a
notebook user expects: the equations as LaTeX, a compiled PDF (where pdflatex is
installed), training progress while it trains, the final loss, and the training curve."""

from __future__ import annotations

import pathlib
import re
import shutil

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "docs" / "notebook.ipynb"


def cell_with(nb, needle: str):
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    return cell


def stream(cell, name: str) -> str:
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.output_type == "stream" and o.get("name") == name)


def test_notebook_runs_and_shows_equations_and_progress(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "commit the notebook without outputs"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []

    # the equations cell renders as LaTeX
    eq = cell_with(nb, "net.equations()")
    latex = [o["data"]["text/latex"] for o in eq.outputs if "text/latex" in o.get("data", {})]
    assert latex and r"\delta^{(1)}" in latex[0] and r"\odot" in latex[0]

    # the document was written, and compiled where pdflatex is installed
    doc = cell_with(nb, "export_latex(")
    assert (tmp_path / "xor.tex").is_file()
    if shutil.which("pdflatex"):
        assert "wrote xor.pdf" in stream(doc, "stdout") and (tmp_path / "xor.pdf").is_file()

    # training shows progress (tqdm: a widget in Jupyter, else a bar on stderr) ...
    train = cell_with(nb, "fit(")
    widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                 for o in train.outputs)
    err = stream(train, "stderr")
    assert widget or re.search(r"3000/3000|epoch", err), train.outputs
    # ... and ends with the final loss of a trained XOR network
    m = re.search(r"final loss ([0-9.e+-]+)", stream(train, "stdout"))
    assert m and float(m.group(1)) < 0.05, stream(train, "stdout")

    # the training curve is drawn inline
    plot = cell_with(nb, "history_figure(")
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)
