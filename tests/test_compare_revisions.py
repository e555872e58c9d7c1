"""``benchmarks/compare_revisions.py``: its parsing, summary and export (no timing)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import compare_revisions as cr  # noqa: E402


def test_parse_records_keeps_json_objects_only():
    out = ('peer skipped\n{"bench": "kernels", "symnn": "/x/symnn/__init__.py"}\n'
           '{"bench": "kernels", "case": "grad B=1 symnn", "seconds": 1e-05}\n'
           '{not json\n[1, 2]\n')
    recs = cr.parse_records(out)
    assert recs == [{"bench": "kernels", "symnn": "/x/symnn/__init__.py"},
                    {"bench": "kernels", "case": "grad B=1 symnn", "seconds": 1e-05}]


def test_summarise_medians_ratio_and_flags():
    rows = cr.summarise({"a": [1.0, 2.0, 3.0], "b": [1.0, 1.0], "only A": [1.0]},
                        {"a": [2.0, 2.1, 1.9], "b": [1.2, 1.2], "only B": [1.0]}, 0.05)
    by = {r["case"]: r for r in rows}
    assert by["a"]["a"] == 2.0 and by["a"]["b"] == 2.0 and by["a"]["ratio"] == 1.0
    assert not by["a"]["flag"] and by["a"]["spread_a"] == 1.0
    assert by["b"]["ratio"] == pytest.approx(1.2) and by["b"]["flag"]
    assert by["only A"]["ratio"] is None and by["only B"]["ratio"] is None
    assert [r["case"] for r in rows] == ["a", "b", "only A", "only B"]


def test_script_flags():
    args = cr.parse_args(["HEAD", "HEAD", "--quick"])
    assert cr.script_flags("kernels", args) == ["--symnn-only", "--quick", "--no-compile"]
    assert cr.script_flags("train", args) == ["--symnn-only", "--fast"]
    args = cr.parse_args(["A", "B", "--with-peers", "--compile", "--threads", "1"])
    assert cr.script_flags("kernels", args) == ["--threads", "1"]
    with pytest.raises(SystemExit):
        cr.parse_args(["A", "B", "--bench", "nope"])


def test_export_writes_the_tree_of_a_commit(tmp_path):
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                      check=False).returncode:
        pytest.skip("not a git checkout")
    dest = cr.export(ROOT, "HEAD", tmp_path / "A")
    assert (dest / "symnn" / "__init__.py").is_file()
    assert (dest / "pyproject.toml").is_file()
