"""The flow stays one-way: declare → derive → print → compile → train.

Module-level imports of each stage may name only earlier stages (convenience methods that
reach later stages import inside the function, at call time).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "symnn"

# ``errors`` and ``_atomic`` (file writes) depend on nothing and serve every stage; so does
# ``functions`` (the function registry: SymPy, NumPy and ``errors`` only).
_BASE = {"errors", "_atomic", "functions"}
ALLOWED = {
    "ops": _BASE | {"ops"},
    "declare": _BASE | {"ops", "declare"},
    "derive": _BASE | {"ops", "declare", "derive"},
    "printing": _BASE | {"ops", "declare", "derive", "printing"},
    "codegen": _BASE | {"ops", "declare", "derive", "codegen"},
}
FORBIDDEN_THIRD_PARTY = {"ops": {"numba"}, "declare": {"numba"}, "derive": {"numba"},
                         "printing": {"numba"}}


def _module_imports(path: pathlib.Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:  # module level only
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module == "symnn" and node.level == 0:
            for a in node.names:  # ``from symnn import ops``: the stage is the name imported
                yield "symnn." + a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_stage_imports_only_earlier_stages(stage):
    for path in sorted((PKG / stage).glob("*.py")):
        for mod in _module_imports(path):
            parts = mod.split(".")
            if parts[0] == "symnn":
                assert len(parts) > 1 and parts[1] in ALLOWED[stage], (
                    f"{path.relative_to(PKG.parent)} imports {mod} at module level")
            assert parts[0] not in FORBIDDEN_THIRD_PARTY.get(stage, set()), (
                f"{path.relative_to(PKG.parent)} imports {mod}")
