"""Generate ``docs/api.md``, the API reference, from the docstrings.

    python docs/gen_api.py           # rewrite docs/api.md
    python docs/gen_api.py --check   # exit 1 if docs/api.md is out of date

Every public name (a module's ``__all__``) is listed by stage with its signature and its
docstring; numpydoc sections (Parameters, Returns, Raises, Attributes …) become Markdown
lists, and the Examples sections are left out (they run as doctests).  The command-line
interface is documented from its argparse parser.  ``tests/test_docs.py`` fails when the
committed page differs from what this script writes, so the reference cannot drift from the
code.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import pathlib
import re
import sys
from contextlib import redirect_stdout

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "api.md"

# (section title, module, names: None = the module's __all__, what the section is about)
SECTIONS = [
    ("Declare", "symnn", "declare",
     "Networks, layers, activations, losses, penalties and custom models (`import symnn`)."),
    ("Functions", "symnn.functions", None,
     "The one registry of the scalar functions symnn knows: its own SymPy functions "
     "(a new `ActivationFunction` subclass registers itself) and the SymPy builtins."),
    ("Layers", "symnn.declare.layers", ["ParamSpec", "param_specs", "param_roles"],
     "The layer protocol: parameters with roles, forward ops, initialisation, saved form, "
     "Lipschitz contribution."),
    ("Derive and print", "symnn.printing.equations", None,
     "`net.equations()` returns `Equations`; the derived program is "
     "`symnn.derive.derive(net).program` (`print` shows one line per op)."),
    ("Export", "symnn.printing.document", None,
     "Standalone LaTeX and Markdown documents of a derivation."),
    ("Compile", "symnn.codegen.model", ["CompiledModel"],
     "`net.compile(dtype=\"float64\", cache=True, cache_dir=None)` returns a "
     "`CompiledModel`; the cache directory defaults to `$SYMNN_CACHE_DIR`."),
    ("Check", "symnn.check", None, "Finite-difference checks of compiled derivatives."),
    ("Train", "symnn.train", None, "The training loop, optimizers, schedules, save and load."),
    ("Analysis", "symnn.analysis", None,
     "Hessian spectra, critical points, conditioning, Lipschitz bounds, gradient flow; "
     "per-sample gradients, diagonal GGN and Hessian, K-FAC factors, curvature operators, "
     "Hutchinson traces and spectral densities."),
    ("Distributed", "symnn.distributed", None,
     "Data-parallel exact derivatives, second-order fits and sweeps on Dask."),
    ("Plots", "symnn.plots", None, "Figures (needs matplotlib)."),
    ("scikit-learn estimators", "symnn.sklearn", None,
     "`fit` / `predict` / `score` estimators (needs scikit-learn)."),
    ("Spec files", "symnn.spec", None, "TOML spec files and the whitelist expression parser."),
    ("Errors", "symnn.errors", None,
     "Every deliberate error is a `SymnnError`; each subclass is also the built-in "
     "exception it refines."),
]

_SECTION_RE = re.compile(r"^(?P<title>[A-Z][A-Za-z ]+)\n-{3,}\n", re.M)
_LIST_SECTIONS = {"Parameters", "Returns", "Yields", "Raises", "Attributes",
                  "Other Parameters", "Warns"}


def _clean(text: str) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _docstring_md(doc: str | None) -> str:
    """numpydoc → Markdown: sections as bold headings, parameter lists as lists, no Examples."""
    if not doc:
        return "*(no docstring)*\n"
    doc = inspect.cleandoc(doc)
    parts = _SECTION_RE.split(doc)
    out = [_prose(parts[0])]
    for title, body in zip(parts[1::2], parts[2::2]):
        title = title.strip()
        if title == "Examples":
            continue
        out.append(f"**{title}**\n")
        out.append(_items(body) if title in _LIST_SECTIONS else _prose(body))
    return "\n".join(p for p in out if p.strip()) + "\n"


def _prose(text: str) -> str:
    text = inspect.cleandoc(text) if text.strip() else ""
    lines, block = [], False
    for ln in text.splitlines():
        if ln.startswith(">>>") and not block:
            lines.append("```pycon")
            block = True
        elif block and not ln.startswith((">>>", "...")) and not ln.strip():
            lines.append("```")
            block = False
        elif ln.startswith("    ") and not block:
            ln = ln.strip()  # no accidental code blocks
        lines.append(ln)
    if block:
        lines.append("```")
    return "\n".join(lines).strip() + "\n"


def _items(body: str) -> str:
    items: list[list[str]] = []
    for ln in body.splitlines():
        if not ln.strip():
            continue
        if not ln.startswith(" "):
            items.append([ln.strip(), ""])
        elif items:
            items[-1][1] = (items[-1][1] + " " + ln.strip()).strip()
        else:
            items.append(["", ln.strip()])
    out = []
    for head, desc in items:
        name, _, kind = head.partition(" : ")
        label = f"`{name}`" + (f" ({kind})" if kind else "") if name else ""
        out.append(f"- {label}" + (f": {desc}" if desc and label else desc))
    return "\n".join(out) + "\n"


def _signature(obj, name: str) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = "(...)"
    return _clean(f"{name}{sig}")


def _summary(doc: str | None) -> str:
    if not doc:
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def _members(cls) -> list[tuple[str, object]]:
    """Public methods and properties, including those inherited from symnn's own bases."""
    out, seen = [], set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("symnn"):
            continue
        for name, value in _own_members(klass):
            if name not in seen:
                seen.add(name)
                out.append((name, value))
    return out


def _own_members(cls) -> list[tuple[str, object]]:
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in ("__call__",):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            out.append((name, value))
    return out


def _entry(qual: str, obj) -> str:
    out = []
    if inspect.isclass(obj):
        kind = "exception" if issubclass(obj, BaseException) else "class"
        bases = [b.__name__ for b in obj.__bases__ if b is not object]
        head = f"### {kind} `{qual}`" + (f" ({', '.join(bases)})" if bases else "")
        out.append(head + "\n")
        if not issubclass(obj, BaseException):
            out.append("```py\n" + _signature(obj, qual.rsplit(".", 1)[-1]) + "\n```\n")
        out.append(_docstring_md(obj.__doc__))
        members = _members(obj)
        if members and not issubclass(obj, BaseException):
            lines = []
            for name, value in members:
                if isinstance(value, property):
                    lines.append(f"- `{name}` (property): {_summary(value.__doc__)}".rstrip(": "))
                else:
                    lines.append(f"- `{_signature(value, name)}`: {_summary(value.__doc__)}"
                                 .rstrip(": "))
            out.append("**Members**\n\n" + "\n".join(lines) + "\n")
    elif callable(obj):
        out.append(f"### `{qual}`\n")
        out.append("```py\n" + _signature(obj, qual.rsplit(".", 1)[-1]) + "\n```\n")
        out.append(_docstring_md(obj.__doc__))
    else:
        text = repr(obj)
        if len(text) > 200:
            text = f"{type(obj).__name__} of {len(obj)} entries" if hasattr(obj, "__len__") \
                else type(obj).__name__
        out.append(f"### `{qual}`\n\n`{_clean(text)}`\n")
    return "\n".join(out)


def _names(module, names):
    if names == "declare":
        return [n for n in module.__all__ if getattr(getattr(module, n), "__module__", "")
                .startswith("symnn.declare")]
    return list(names if names is not None else getattr(module, "__all__", []))


def _cli() -> str:
    from symnn.cli import build_parser

    parser = build_parser()
    parser.prog = "symnn"
    buf = io.StringIO()
    with redirect_stdout(buf):
        parser.print_help()
    out = ["## The `symnn` command\n", "```text\n" + buf.getvalue().rstrip() + "\n```\n"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sub.prog = f"symnn {name}"
                text = sub.format_help().rstrip()
                out.append(f"### `symnn {name}`\n\n```text\n{text}\n```\n")
    return "\n".join(out)


def render() -> str:
    """The text of ``docs/api.md``."""
    old_columns = None
    import os

    old_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width
    try:
        out = ["# API reference\n",
               "Generated from the docstrings by `python docs/gen_api.py`; do not edit by hand "
               "(`tests/test_docs.py` checks that this page matches the code).  Examples in "
               "the docstrings run as doctests: `pytest --doctest-modules symnn`.\n"]
        out.append("Stages: " + ", ".join(f"[{t}](#{_anchor(t)})" for t, *_ in SECTIONS)
                   + ", [the `symnn` command](#the-symnn-command).\n")
        for title, modname, names, about in SECTIONS:
            module = importlib.import_module(modname)
            out.append(f"## {title}\n")
            out.append(f"Module `{modname}`. {about}\n")
            for name in _names(module, names):
                obj = getattr(module, name)
                out.append(_entry(f"{modname}.{name}", obj))
        out.append(_cli())
        return "\n".join(out).rstrip() + "\n"
    finally:
        if old_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_columns


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if api.md is out of date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print("wrote", TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
