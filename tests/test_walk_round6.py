"""walk, round 6: a new user's walk and hostile input — the fixes that are not batched into
the hostile subprocess (tests/_hostile_walk_cases.py): cheap, in-process checks."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import symnn

PKG = Path(symnn.__file__).resolve().parent


def test_runtime_blocks_are_cached_under_every_runtime_file():
    """Numba keys a cached function on its own file's content only: after an upgrade that
    changed gemm.py alone, runtime._mm_nn was loaded from the package's __pycache__ with
    the old product inside (even with a fresh SYMNN_CACHE_DIR).  The runtime blocks'
    cache stamp now carries the fingerprint of every runtime file."""
    from numba.core import caching

    from symnn.codegen import _validate
    from symnn.codegen.numba import _stamp, gemm, runtime, runtime_conv

    assert _stamp.FILES == runtime.RUNTIME_FILES
    assert _stamp.files_fingerprint() == runtime.runtime_fingerprint()
    for disp in (runtime._RUNTIME["_mm_nn"], runtime._RUNTIME["_conv_fwd"], gemm._gemm,
                 runtime_conv._im2col):
        locator = disp._cache._impl.locator
        assert getattr(locator, "_symnn_stamped", False), disp
        assert locator.get_source_stamp()[1] == _stamp.files_fingerprint()
    # a file that calls no other file's jitted code keeps Numba's own locator
    # (an ahead-of-time module loaded earlier in this process wraps these checks; the
    # wrapper keeps the dispatcher as _symnn_original)
    other = [getattr(d, "_symnn_original", d) for d in vars(_validate).values()]
    other = [d for d in other if hasattr(d, "_cache")]
    assert other and not any(getattr(d._cache._impl.locator, "_symnn_stamped", False)
                             for d in other)
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    n = len(impl._locator_classes)
    assert _stamp.install() and len(impl._locator_classes) == n  # once


def test_the_runtime_files_cover_everything_the_kernels_call():
    """Every symnn module a generated kernel imports, and everything those import in turn
    that holds jitted code (which Numba compiles into the kernel), is a runtime file."""
    from symnn.codegen.numba import runtime

    src = (PKG / "codegen" / "numba" / "kernels.py").read_text()
    todo = set(re.findall(r'"from (symnn[\w.]+) import', src))
    assert todo == {"symnn.codegen.fastmath", "symnn.codegen.fastmath_extra",
                    "symnn.codegen.numba.runtime"}
    covered = {(PKG / "codegen" / f).resolve() for f in runtime.RUNTIME_FILES}
    seen = set()
    while todo:
        name = todo.pop()
        seen.add(name)
        path = PKG.parent / (name.replace(".", "/") + ".py")
        text = path.read_text()
        if "njit" in text or "numba.extending" in text:
            assert path.resolve() in covered, name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("symnn"):
                mods = [node.module]
                if node.module == "symnn.codegen" or node.module.endswith(".numba"):
                    mods = [f"{node.module}.{a.name}" for a in node.names]
                todo |= {m for m in mods if m not in seen}
    assert "symnn.codegen.numba.gemm" in seen and "symnn.codegen.numba._blas" in seen


def test_no_inline_docstring_names_the_attributes_it_sets():
    from symnn.codegen.numba import runtime

    src = inspect.getsource(runtime._no_inline)
    doc = runtime._no_inline.__doc__
    attrs = set(re.findall(r'add_function_attribute\("(\w+)"\)', src))
    assert attrs == {"noinline", "optnone"}
    assert all(f"``{a}``" in doc for a in attrs) and "optsize" not in doc


def test_an_unusable_cache_directory_warns_at_the_callers_line(tmp_path):
    """A cache "directory" that is a file said "(File exists)", and the warning pointed at
    symnn/_api.py instead of the caller."""
    import warnings

    from symnn.codegen.cache import load_module, module_key

    path = tmp_path / "cache"
    path.write_text("not a directory")
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        mod = load_module("x = 1\n", module_key("fp", "x = 1\n", "float64"), cache_dir=path)
    assert mod.x == 1
    [w] = got
    assert "it is a file, not a directory" in str(w.message)
    assert w.filename == __file__


def test_a_work_buffer_beyond_memory_is_refused_before_it_is_allocated():
    import pytest

    from symnn.codegen._validate import work_buffer
    from symnn.errors import SizeLimitError

    with pytest.raises(SizeLimitError, match=r"needs a work buffer of .* pass fewer rows at a "
                                             r"time \(about [\d,]+\)"):
        work_buffer(10**13, "float64", "net", "predict", 10**8)
    with pytest.raises(SizeLimitError, match="even one row does not fit: use narrower layers"):
        work_buffer(10**13, "float64", "net", "loss_and_grad", 4)
    assert work_buffer(0, "float32", "net", "predict", 1).shape == (1,)
