"""Hostile input to the layers of issue 13 (Conv1D, AvgPool1D, MaxPool1D, Flatten, Dropout,
LayerNorm, RNN, GRU, SelfAttention, Residual, Graph): Python declarations, spec files,
model files (truncated, or edited with the checksum recomputed), the command line, and the
compiled kernels given inputs of the wrong shape, dtype or values.

Every case states its outcome (tests/_hostile_layers_cases.py): the symnn error class and a
fragment of its message — always a ``SymnnError`` subclass, never a raw NumPy, SymPy or
Numba exception — or that the input is handled correctly.  All the cases run in one
subprocess (a 4 GiB address-space limit and a per-case alarm guard the huge ones), so the
file costs one interpreter start and a few small compiles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import _hostile_layers_cases as C  # noqa: E402

if sys.platform == "win32":  # rlimits, alarms: POSIX
    pytest.skip("the hostile-layer corpus needs a POSIX system", allow_module_level=True)

RUNNER = textwrap.dedent(r"""
    import json, resource, sys, warnings
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    warnings.simplefilter("ignore")
    sys.path.insert(0, sys.argv[1])
    import _hostile_layers_cases as C
    json.dump(C.run_all(sys.argv[2]), open(sys.argv[3], "w"))
""")

IDS = [c[0] for c in C.CASES]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile-layers")
    rfile = d / "results.json"
    before = set(os.listdir(d))
    proc = subprocess.run([sys.executable, "-c", RUNNER, os.path.dirname(__file__), str(d),
                           str(rfile)], capture_output=True, text=True, timeout=600, cwd=d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(rfile) as fh:
        results = json.load(fh)
    return d, before, results


def test_ids_are_unique_and_the_corpus_is_large():
    assert len(IDS) == len(set(IDS))
    assert len(IDS) >= 150


@pytest.mark.parametrize("cid", IDS)
def test_hostile_layer_case(outcomes, cid):
    _, _, results = outcomes
    _, expected, fragment, _ = next(c for c in C.CASES if c[0] == cid)
    r = results[cid]
    if expected == "ok":
        assert r["error"] is None, r
        return
    if expected == "exit 1":  # the command line: a one-line symnn error, no traceback
        assert r["error"] is None, r
        assert r["code"] == 1, r
        assert fragment in r["err"], r["err"]
        assert "Traceback" not in r["err"], r["err"]
        return
    assert r["error"] == expected, r
    assert "SymnnError" in r["bases"], r
    assert fragment in r["message"], (fragment, r["message"])


def test_no_half_written_files(outcomes):
    """Failed loads and declarations write nothing: only the files the cases made."""
    d, _, _ = outcomes
    left = [n for n in os.listdir(d) if not (n.endswith((".npz", ".toml", ".json", ".csv"))
                                             or n.startswith("kernel"))]
    assert left == [], left
