"""The README's example runs, and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _blocks(lang: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_example_runs_and_its_output_matches():
    code = "\n".join(_blocks("python"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    shown = _blocks("text")[0]
    printed = out.getvalue()
    for line in shown.splitlines():
        if line.strip() and line.strip() != "...":
            assert line in printed, f"README shows a line the example does not print: {line!r}"


def test_ci_runs_the_readme_test_command():
    cmd = next(b for b in _blocks("bash") if "pytest" in b).strip()
    assert cmd in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
