"""The structure of the Numba backend (``symnn.codegen.numba``): every op has a code
generation rule, the runtime fingerprint covers only the code generated kernels import,
and generated modules import their helpers from ``symnn.codegen.numba.runtime`` only."""

from __future__ import annotations

import ast
import hashlib
import shutil
from pathlib import Path

import pytest
import sympy as sp

import symnn
from symnn import ops as P
from symnn.codegen import numba as backend
from symnn.codegen.numba import runtime
from symnn.derive import derive

PACKAGE = Path(backend.__file__).resolve().parent
CODEGEN = PACKAGE.parent


def _op_classes() -> set[type]:
    """Every op class a program can hold: the Op subclasses exported by the program module
    and all their subclasses defined in symnn."""
    found = {v for v in vars(P).values()
             if isinstance(v, type) and issubclass(v, P.Op) and v is not P.Op}
    todo = [P.Op]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("symnn."):
                found.add(sub)
            todo.append(sub)
    return found


def test_every_op_class_has_an_emitter():
    ops = _op_classes()
    assert {P.Affine, P.MatTVec, P.Map, P.Softmax, P.LogSumExp, P.Dot, P.SumComp,
            P.BatchMean, P.OuterMean, P.Add, P.Penalty} <= ops
    missing = sorted(c.__name__ for c in ops if c not in backend.EMITTERS)
    assert not missing, f"op classes without a code generation rule: {missing}"
    for cls, rule in backend.EMITTERS.items():
        assert callable(rule), cls


def test_emits_registers_a_rule(monkeypatch):
    class Fake(P.Op):
        pass

    monkeypatch.delitem(backend.EMITTERS, Fake, raising=False)

    @backend.emits(Fake)
    def emit_fake(w, op):
        pass

    try:
        assert backend.EMITTERS[Fake] is emit_fake
    finally:
        del backend.EMITTERS[Fake]


def _hash(files) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def test_runtime_fingerprint_hashes_only_the_imported_runtime():
    # exactly the bytes of runtime.py and fastmath.py, the two modules kernels import, and
    # of the modules runtime.py takes blocks from (the BLAS call, the convolutions' blocks)
    assert runtime.RUNTIME_FILES == ("numba/runtime.py", "fastmath.py", "numba/_blas.py",
                                     "numba/runtime_conv.py", "numba/gemm.py",
                                     "fastmath_extra.py")
    want = _hash([PACKAGE / "runtime.py", CODEGEN / "fastmath.py", PACKAGE / "_blas.py",
                  PACKAGE / "runtime_conv.py", PACKAGE / "gemm.py",
                  CODEGEN / "fastmath_extra.py"])
    assert backend.runtime_fingerprint() == want
    assert runtime.runtime_fingerprint.__wrapped__() == want


def test_runtime_fingerprint_ignores_the_code_generator(tmp_path, monkeypatch):
    """A copy of the backend with every non-runtime file edited has the same fingerprint;
    an edit of runtime.py changes it."""
    copy = tmp_path / "codegen"
    shutil.copytree(PACKAGE, copy / "numba", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CODEGEN / "fastmath.py", copy / "fastmath.py")
    shutil.copy(CODEGEN / "fastmath_extra.py", copy / "fastmath_extra.py")
    shutil.copy(CODEGEN / "model.py", copy / "model.py")
    monkeypatch.setattr(runtime, "__file__", str(copy / "numba" / "runtime.py"))
    fingerprint = runtime.runtime_fingerprint.__wrapped__
    before = fingerprint()
    assert before == backend.runtime_fingerprint()
    runtime_files = {"runtime.py", "_blas.py", "runtime_conv.py", "gemm.py"}
    others = [f for f in (copy / "numba").glob("*.py") if f.name not in runtime_files]
    assert {f.name for f in others} >= {"writer.py", "kernels.py", "passes.py", "slots.py",
                                        "emit_elementwise.py", "__init__.py"}
    for f in others + [copy / "model.py"]:
        f.write_text(f.read_text() + "\n# a comment: not part of the runtime\n")
    assert fingerprint() == before
    rt = copy / "numba" / "runtime.py"
    rt.write_text(rt.read_text() + "\n# the runtime changed\n")
    assert fingerprint() != before
    before = fingerprint()
    rc = copy / "numba" / "runtime_conv.py"
    rc.write_text(rc.read_text() + "\n# the convolutions' blocks changed\n")
    assert fingerprint() != before


def _imports(source: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found.setdefault(node.module, set()).update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                found.setdefault(a.name, set())
    return found


x1, x2, a, b = sp.symbols("x1 x2 a b")
DECLS = [
    symnn.Network([symnn.Dense(2, 8), "tanh", symnn.Dense(8, 1)], loss="mse"),
    symnn.Network([symnn.Dense(3, 4), "sigmoid", symnn.Dense(4, 3), "softmax"],
                  loss="cross_entropy", penalties=[symnn.L2(0.01), symnn.L1(0.1, ["W1"])]),
    symnn.Model(a * sp.exp(-b * x1) + sp.tanh(x2), inputs=[x1, x2], params=[a, b],
                loss="mse", name="custom"),
]


@pytest.mark.parametrize("decl", DECLS, ids=["mse", "softmax_penalties", "model"])
@pytest.mark.parametrize("fast", [True, False])
def test_generated_modules_import_the_runtime_only(decl, fast):
    g = backend.generate(derive(decl), "float64", fast=fast)
    imports = _imports(g.source)
    assert set(imports) <= {"math", "numpy", "numba", "symnn.codegen.fastmath",
                            "symnn.codegen.fastmath_extra", "symnn.codegen.numba.runtime"}
    names = imports["symnn.codegen.numba.runtime"]
    assert names and names <= set(runtime.runtime_names()) | {"_sigmoid", "_softplus"}
    for name in names:
        assert hasattr(runtime, name)
    assert ("symnn.codegen.fastmath" in imports) == (fast and "fm_" in g.source)
    assert "from symnn.codegen.numba.runtime import " in g.source
    assert f"runtime {backend.runtime_fingerprint()[:16]}" in g.source


def test_compiled_kernels_call_the_runtime_module():
    model = DECLS[0].compile()
    mod = model.kernels["loss_and_grad"].py_func.__globals__
    assert mod["_mm_nt"] is runtime._mm_nt
    assert "_mm_nt(" in model.kernel_source("loss_and_grad")
