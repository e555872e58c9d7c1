"""walk, round 6: a new user's walk and hostile input — the fixes that are not batched into
the hostile subprocess (tests/_hostile_walk_cases.py): cheap, in-process checks."""

from __future__ import annotations

import ast
import inspect
import re
import shutil
from pathlib import Path

import symnn
from symnn.codegen import cache

PKG = Path(symnn.__file__).resolve().parent


def _copy_runtime(dst: Path) -> None:
    for pattern in cache.RUNTIME_FILES:
        for path in PKG.glob(pattern):
            target = dst / path.relative_to(PKG)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    (dst / "codegen" / "printer.py").write_text("# not runtime code\n")


def test_a_changed_runtime_file_changes_every_kernel_key(tmp_path, monkeypatch):
    """Numba keys a cached kernel on its own file only, so a symnn upgrade that changed
    gemm.py / _blas.py / fastmath.py / runtime*.py was served the old inlined code; the
    runtime files' contents are now part of the module key."""
    _copy_runtime(tmp_path)
    before = cache.runtime_fingerprint(tmp_path)
    (tmp_path / "codegen" / "printer.py").write_text("# an unrelated edit\n")
    cache._RUNTIME_FINGERPRINT.clear()
    assert cache.runtime_fingerprint(tmp_path) == before
    for rel in ("codegen/numba/gemm.py", "codegen/numba/_blas.py", "codegen/fastmath.py",
                "codegen/numba/runtime_conv.py", "codegen/numba/runtime.py"):
        path = tmp_path / rel
        path.write_bytes(path.read_bytes() + b"\n# upgraded\n")
        cache._RUNTIME_FINGERPRINT.clear()
        after = cache.runtime_fingerprint(tmp_path)
        assert after != before, rel
        before = after
    cache._RUNTIME_FINGERPRINT.clear()
    key = cache.module_key("fp", "x = 1\n", "float64")
    monkeypatch.setitem(cache._RUNTIME_FINGERPRINT, str(PKG), "0" * 64)
    assert cache.module_key("fp", "x = 1\n", "float64") != key


def test_the_runtime_files_cover_everything_the_kernels_call():
    """Every symnn module a generated kernel imports, and everything those import in turn
    (jitted code Numba compiles into the kernel), is in RUNTIME_FILES."""
    src = (PKG / "codegen" / "numba" / "kernels.py").read_text()
    todo = set(re.findall(r'"from (symnn[\w.]+) import', src))
    assert todo == {"symnn.codegen.fastmath", "symnn.codegen.numba.runtime"}
    covered = {p.resolve() for pat in cache.RUNTIME_FILES for p in PKG.glob(pat)}
    seen = set()
    while todo:
        name = todo.pop()
        seen.add(name)
        path = PKG.parent / (name.replace(".", "/") + ".py")
        if name == "symnn.errors":  # exceptions, never jitted
            continue
        assert path.resolve() in covered, name
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("symnn"):
                mods = [node.module]
                if node.module == "symnn.codegen" or node.module.endswith(".numba"):
                    mods = [f"{node.module}.{a.name}" for a in node.names]
                todo |= {m for m in mods if m not in seen}


def test_no_inline_docstring_names_the_attributes_it_sets():
    from symnn.codegen.numba import runtime

    src = inspect.getsource(runtime._no_inline)
    doc = runtime._no_inline.__doc__
    attrs = set(re.findall(r'add_function_attribute\("(\w+)"\)', src))
    assert attrs == {"noinline", "optnone"}
    assert all(f"``{a}``" in doc for a in attrs) and "optsize" not in doc
