"""Docs that run: every ```python block of every page in docs/ executes, page by page."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python" in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_doc_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = page.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    ns: dict = {"__name__": "docs"}
    with contextlib.redirect_stdout(io.StringIO()):
        for i, block in enumerate(blocks):
            exec(compile(block, f"{page.name}[block {i}]", "exec"), ns)


def test_api_reference_is_generated_from_the_code():
    """docs/api.md is what docs/gen_api.py writes: regenerate it when the API changes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    gen_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_api)
    expected = gen_api.render()
    current = (DOCS / "api.md").read_text(encoding="utf-8")
    assert current == expected, "docs/api.md is out of date: run python docs/gen_api.py"
    for needle in ("expanded: 'bool' = False", "title: 'str | None' = None",
                   "limit: 'int | None' = None", "AnalysisError", "## Plots", "symnn.plots",
                   "symnn.sklearn.SymnnClassifier", "## The `symnn` command"):
        assert needle in current, needle


def test_docs_show_each_plot():
    """Every figure in docs/img is shown by a page that says what it shows."""
    images = sorted(p.name for p in (DOCS / "img").glob("*.png"))
    assert {"spectrum.png", "gradient_flow.png", "history.png"} <= set(images)
    pages = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    for name in images:
        assert f"](img/{name})" in pages, name


# -- walk (round 5): the TOML examples of the docs parse ---------------------------------
@pytest.mark.parametrize("page", sorted(p for p in DOCS.glob("*.md")
                                        if "```toml" in p.read_text(encoding="utf-8")),
                         ids=lambda p: p.name)
def test_doc_page_toml_examples_are_valid(page):
    """Every ```toml block is TOML, and one with a [network] or [model] is a valid spec
    (docs/spec-format.md's Dropout example had a stray ']')."""
    import tomllib

    from symnn.spec import loads_spec

    text = page.read_text(encoding="utf-8")
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", text, flags=re.S)):
        tomllib.loads(block)
        if re.search(r"^\[(network|model)\]", block, flags=re.M):
            loads_spec(block, name=f"{page.name}[toml block {i}]")
