"""The package's shape: one-way stages, no import cycles, small files and functions.

Every module of ``symnn/`` is read with :mod:`ast` (nothing is imported), and every import
it makes is collected — at module level or inside a function, ``import a.b``,
``from a import b`` (resolved to the submodule ``a.b`` when that is a module) and relative
imports alike.  Then:

* **(a) no cycle** among the modules;
* **(b) imports only go down** the stages of :data:`STAGES` (declare → derive → print →
  compile → train, with the convenience methods attached at the top); printing and
  compiling stay apart (:data:`APART`), and nothing below the compiled stage imports Numba
  (:data:`COMPILED_ONLY`);
* **(c)** no module over :data:`MAX_MODULE_LINES` lines;
* **(d)** no function over :data:`MAX_FUNCTION_LINES` lines (``def`` line to last line,
  docstring included);
* **(e)** every function's McCabe complexity below :data:`MAX_COMPLEXITY` — counted as
  ``ruff check --select C901`` counts it (the same number for every function of the
  package): 1, plus one per ``if`` / ``elif``, loop, ``except`` handler, ``else`` of a
  ``try``, ``case`` and nested function; a nested function counts in its own right too.

``python tests/test_architecture.py`` prints every violation of these rules (a quick
list to work from); each rule is its own test, which names every offender.
"""

from __future__ import annotations

import ast
import pathlib
import sys
from dataclasses import dataclass, field

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "symnn"

MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80
MAX_COMPLEXITY = 15  # every function's complexity must be < 15 (ruff: max-complexity=14)

#: The stage of each part of the package: a module may import from its own stage or a lower
#: one, never from a higher one.  The longest matching prefix decides ("symnn.train.io" →
#: "symnn.train").  The stages are issue 12's plan (functions → ops → declare → derive →
#: print → compile → train → front ends); where the plan left a part open, what it imports
#: decides, and the comment says why.
STAGES: dict[str, int] = {
    # 0 — the base: errors, atomic files, the version, the registry of later methods
    "symnn.errors": 0,
    "symnn._atomic": 0,
    "symnn._later": 0,  # where the top level registers what the convenience methods do
    "symnn._version": 0,
    "symnn.data": 0,  # reading data files, standardising: NumPy only (train.io, spec, cli use it)
    "symnn._threads": 0,  # BLAS threads by problem size (codegen's Hessian, analysis' eigvalsh)
    # 1 — the registry of scalar functions (names, TeX, kernel and NumPy spellings)
    "symnn.functions": 1,
    "symnn._numpy_forms": 1,  # the NumPy forms lambdify imports (kept by symnn.functions)
    # 2 — the IR and its op kits
    "symnn.ops": 2,
    # 3 — what the user declares
    "symnn.declare": 3,
    # 4 — the derivation drivers
    "symnn.derive": 4,
    # 5 — printing the equations, and the analyses of a declared network (Hessian spectra,
    #     Lipschitz bounds, gradient flow: they read the declaration and NumPy arrays)
    "symnn.printing": 5,
    "symnn.analysis": 5,
    # 6 — compiled kernels
    "symnn.codegen": 6,
    # 7 — what runs models numerically: training and the finite-difference checks (fit
    #     checks the gradient before training, so check sits with train, not above it)
    "symnn.train": 7,
    "symnn.check": 7,
    "symnn._check_probes": 7,
    # 8 — the front ends, and the top-level package that attaches the convenience methods
    "symnn.plots": 8,
    "symnn.spec": 8,
    "symnn.sklearn": 8,
    "symnn.cli": 8,
    "symnn.distributed": 8,  # data-parallel derivatives and sweeps on Dask (optional extra)
    "symnn.__main__": 8,
    "symnn._api": 8,
    "symnn": 8,
}

#: Parts that must not import one another although their stages would allow it: the
#: equations are printed and the kernels compiled from the same derivation, side by side.
APART: list[tuple[str, str]] = [("symnn.codegen", "symnn.printing")]

#: Third-party packages that only the compiled stage and above may import: below
#: ``symnn.codegen`` nothing loads Numba (declaring, deriving and printing stay free of it).
COMPILED_ONLY = {"numba", "llvmlite"}


# ------------------------------------------------------------------------------------------
# reading the package
# ------------------------------------------------------------------------------------------


def module_files(package: pathlib.Path = PACKAGE) -> dict[str, pathlib.Path]:
    """``module name → file`` for every ``.py`` file under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: set[str]) -> str | None:
    """The module ``name`` names: itself, or its longest prefix that is a module."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: pathlib.Path, modules: set[str]) -> dict[str, int]:
    """``imported symnn module → line of the first import`` for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        target = _resolve(name, modules)
        if target is not None and target != module:
            found.setdefault(target, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                if node.module:
                    base.append(node.module)
                base_name = ".".join(base)
            else:
                base_name = node.module or ""
            for alias in node.names:
                sub = f"{base_name}.{alias.name}"
                add(sub if sub in modules else base_name, node.lineno)
    return found


def third_party_imports(path: pathlib.Path) -> dict[str, int]:
    """``top-level package → line`` for every non-relative import of another package."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.partition(".")[0]
            if top != "symnn":
                found.setdefault(top, node.lineno)
    return found


def import_graph(package: pathlib.Path = PACKAGE) -> dict[str, dict[str, int]]:
    """``module → {imported module → line}`` over every module of the package."""
    files = module_files(package)
    names = set(files)
    return {m: imports_of(m, p, names) for m, p in files.items()}


def _within(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def stage_of(module: str) -> int | None:
    key = _resolve(module, set(STAGES))
    return None if key is None else STAGES[key]


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle ``[m0, m1, …, m0]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt) and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import cycles as strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # recursion depth ≤ number of modules
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# ------------------------------------------------------------------------------------------
# size and complexity
# ------------------------------------------------------------------------------------------


def _complexity(stmts: list[ast.stmt]) -> int:
    """Decision points in ``stmts``, as ruff's C901 (mccabe) counts them."""
    n = 0
    for s in stmts:
        if isinstance(s, ast.If):
            n += 1 + _complexity(s.body) + _complexity(s.orelse)
        elif isinstance(s, (ast.For, ast.AsyncFor, ast.While)):
            n += 1 + _complexity(s.body) + _complexity(s.orelse)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            n += _complexity(s.body)
        elif isinstance(s, ast.Match):
            n += sum(1 + _complexity(c.body) for c in s.cases)
        elif isinstance(s, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            n += (_complexity(s.body) + bool(s.orelse) + _complexity(s.orelse)
                  + _complexity(s.finalbody)
                  + sum(1 + _complexity(h.body) for h in s.handlers))
        elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n += 1 + _complexity(s.body)
        elif isinstance(s, ast.ClassDef):
            n += _complexity(s.body)
    return n


def complexity(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """McCabe complexity of one function (nested functions included, as mccabe does)."""
    return 1 + _complexity(func.body)


@dataclass
class Report:
    cycles: list[list[str]] = field(default_factory=list)
    unstaged: list[str] = field(default_factory=list)
    upward: list[str] = field(default_factory=list)
    sideways: list[str] = field(default_factory=list)
    numba_early: list[str] = field(default_factory=list)
    long_modules: list[str] = field(default_factory=list)
    long_functions: list[str] = field(default_factory=list)
    complex_functions: list[str] = field(default_factory=list)


def _qualified(tree: ast.Module):
    """``(qualified name, function node)`` for every function and method in ``tree``."""
    todo: list[tuple[str, ast.AST]] = [("", tree)]
    while todo:
        prefix, node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield name, child
                todo.append((name + ".", child))
            else:
                todo.append((prefix, child))


def check_package(package: pathlib.Path = PACKAGE) -> Report:
    """Every violation of the five rules in ``package``."""
    rep = Report()
    root = package.parent
    graph = import_graph(package)
    rep.cycles = strongly_connected(graph)
    files = module_files(package)
    for module in sorted(graph):
        mine = stage_of(module)
        rel = files[module].relative_to(root)
        if mine is None:
            rep.unstaged.append(f"{module} ({rel}) has no stage in STAGES")
            continue
        for target, line in sorted(graph[module].items()):
            theirs = stage_of(target)
            if theirs is not None and theirs > mine:
                rep.upward.append(f"{rel}:{line}: {module} (stage {mine}) imports {target} "
                                  f"(stage {theirs})")
            for a, b in APART:
                if (_within(module, a) and _within(target, b)
                        or _within(module, b) and _within(target, a)):
                    rep.sideways.append(f"{rel}:{line}: {module} imports {target} ({a} and "
                                        f"{b} stay apart)")
        if mine < STAGES["symnn.codegen"]:
            for name, line in sorted(third_party_imports(files[module]).items()):
                if name in COMPILED_ONLY:
                    rep.numba_early.append(f"{rel}:{line}: {module} (stage {mine}) imports "
                                           f"{name}")
    for path in sorted(files.values()):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root)
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            rep.long_modules.append(f"{rel}: {lines} lines")
        tree = ast.parse(text, filename=str(path))
        for name, func in _qualified(tree):
            length = func.end_lineno - func.lineno + 1
            if length > MAX_FUNCTION_LINES:
                rep.long_functions.append(f"{rel}:{func.lineno}: {name} is {length} lines")
            c = complexity(func)
            if c >= MAX_COMPLEXITY:
                rep.complex_functions.append(f"{rel}:{func.lineno}: {name} has complexity {c}")
    return rep


@pytest.fixture(scope="module")
def report() -> Report:
    return check_package()


# ------------------------------------------------------------------------------------------
# the rules
# ------------------------------------------------------------------------------------------


def test_no_import_cycle(report):
    cycle = find_cycle(import_graph())
    if cycle is not None:
        pytest.fail("import cycle: " + " → ".join(cycle) + "\nall modules on cycles: "
                    + "; ".join(", ".join(c) for c in report.cycles), pytrace=False)


def _fail_listing(title: str, items: list[str]) -> None:
    if items:
        pytest.fail(f"{title} ({len(items)}):\n" + "\n".join(items), pytrace=False)


def test_every_module_has_a_stage(report):
    _fail_listing("modules with no stage in STAGES", report.unstaged)


def test_imports_only_go_down_the_stages(report):
    _fail_listing("imports from a lower stage to a higher one", report.upward)


def test_printing_and_compiling_stay_apart(report):
    _fail_listing("imports between parts that stay apart", report.sideways)


def test_nothing_below_the_compiled_stage_loads_numba(report):
    _fail_listing("Numba imported below symnn.codegen", report.numba_early)


def test_no_module_is_too_long(report):
    _fail_listing(f"modules over {MAX_MODULE_LINES} lines", report.long_modules)


def test_no_function_is_too_long(report):
    _fail_listing(f"functions over {MAX_FUNCTION_LINES} lines", report.long_functions)


def test_no_function_is_too_complex(report):
    _fail_listing(f"functions of complexity ≥ {MAX_COMPLEXITY}", report.complex_functions)


def test_every_later_name_is_provided():
    """Each ``later("name")`` of an early stage has an implementation registered by the top
    level (``symnn/_api.py``): a misspelt or forgotten name fails here, not in a user's
    ``net.compile()``."""
    from symnn import _later

    asked = {}
    for path in module_files().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "later" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                asked.setdefault(node.args[0].value, f"{path.relative_to(ROOT)}:{node.lineno}")
    assert {"derive", "equations_of", "compile_model", "fit"} <= set(asked)
    missing = {name: where for name, where in asked.items() if name not in _later._LATER}
    assert not missing, f"later() names nobody provides: {missing}"


# ------------------------------------------------------------------------------------------
# the checker itself can fail
# ------------------------------------------------------------------------------------------


def _package(tmp_path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    pkg = tmp_path / "symnn"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return pkg


def test_the_checker_sees_function_local_and_relative_imports(tmp_path):
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "declare/__init__.py": "",
        "declare/network.py": ("def f():\n    from symnn.derive import expanded\n"),
        "derive/__init__.py": "",
        "derive/expanded.py": "from ..declare import network\nfrom . import other\n",
        "derive/other.py": "import symnn.errors\nfrom symnn.derive.expanded import x\n",
    })
    graph = import_graph(pkg)
    assert graph["symnn.declare.network"] == {"symnn.derive.expanded": 2}
    assert graph["symnn.derive.expanded"] == {"symnn.declare.network": 1,
                                              "symnn.derive.other": 2}
    assert graph["symnn.derive.other"] == {"symnn.errors": 1, "symnn.derive.expanded": 2}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) == 3
    assert strongly_connected(graph) == [["symnn.declare.network", "symnn.derive.expanded",
                                          "symnn.derive.other"]]
    rep = check_package(pkg)
    assert rep.upward == ["symnn/declare/network.py:2: symnn.declare.network (stage 3) "
                          "imports symnn.derive.expanded (stage 4)"]
    pkg = _package(tmp_path / "b", {
        "__init__.py": "", "printing/__init__.py": "", "codegen/__init__.py": "",
        "printing/eq.py": "def f():\n    import numba.core\n",
        "codegen/kernel.py": "import numba\nfrom symnn.printing import eq\n",
    })
    rep = check_package(pkg)
    assert rep.numba_early == ["symnn/printing/eq.py:2: symnn.printing.eq (stage 5) imports "
                               "numba"]
    assert rep.sideways == ["symnn/codegen/kernel.py:2: symnn.codegen.kernel imports "
                            "symnn.printing.eq (symnn.codegen and symnn.printing stay apart)"]


def test_the_checker_measures_length_and_complexity(tmp_path):
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(14))
    body = "".join(f"    y = {i}\n" for i in range(80))
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "big.py": ("def branchy(x):\n" + branches + "    return -1\n\n\n"
                   "def long():\n" + body + "\n" * 700),
        "small.py": ("def ok(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n"
                                              for i in range(13)) + "    return -1\n"),
    })
    rep = check_package(pkg)
    assert rep.complex_functions == ["symnn/big.py:1: branchy has complexity 15"]
    assert [r.split(": ")[1] for r in rep.long_functions] == ["long is 81 lines"]
    assert len(rep.long_modules) == 1 and rep.long_modules[0].startswith("symnn/big.py")
    tree = ast.parse("def f(x):\n    try:\n        pass\n    except A:\n        pass\n"
                     "    except B:\n        pass\n    else:\n        pass\n"
                     "    def g():\n        while x:\n            pass\n"
                     "    return [y for y in x if y and x]\n")
    assert complexity(tree.body[0]) == 1 + 2 + 1 + 1 + 1


def main() -> int:
    rep = check_package()
    sections = [
        ("import cycles (strongly connected modules)",
         [", ".join(c) for c in rep.cycles]),
        ("modules without a stage", rep.unstaged),
        ("imports up the stages", rep.upward),
        ("imports between parts that stay apart", rep.sideways),
        ("Numba imported below symnn.codegen", rep.numba_early),
        (f"modules over {MAX_MODULE_LINES} lines", rep.long_modules),
        (f"functions over {MAX_FUNCTION_LINES} lines", rep.long_functions),
        (f"functions of complexity ≥ {MAX_COMPLEXITY}", rep.complex_functions),
    ]
    total = 0
    for title, items in sections:
        print(f"{title}: {len(items)}")
        for item in items:
            print(f"  {item}")
        total += len(items)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
