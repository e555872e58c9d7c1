"""Two git revisions of symnn side by side: ``bench_kernels.py`` and ``bench_train.py``.

Each revision is exported (``git archive``, read-only for the repository) into a
temporary folder and every benchmark runs in a subprocess with ``PYTHONPATH`` pointing at
that export and its own fresh ``SYMNN_CACHE_DIR``.  The kernel caches are warmed first
(one unrecorded run per revision), then the revisions alternate for ``--rounds`` rounds —
A B, B A, A B, … — so that a drift of the machine's speed hits both alike.  The report
shows, per case, the median over rounds for A and B, the ratio B/A, and each side's
spread ((max − min) / median over rounds); a ratio outside ±``--threshold`` (5 %) is
flagged with ``*``.

By default both revisions are measured by the benchmark scripts of *this* checkout (the
same measuring code on both sides, and an old revision need not know ``--json``); with
``--scripts revision`` each revision runs its own.  The scripts time symnn only
(``--symnn-only``) unless ``--with-peers`` is given; compile timings (fresh processes,
slow) only with ``--compile``.

Usage::

    python benchmarks/compare_revisions.py OLD NEW [--rounds 5] [--quick]
        [--bench kernels,train] [--with-peers] [--compile] [--threads N]
        [--scripts current|revision] [--threshold 0.05] [--keep]

``--quick`` passes ``--quick`` / ``--fast`` to the scripts (fewer, shorter samples: a
smoke test, not a measurement).  ``OLD=NEW=HEAD`` should give ratios near 1; how far from
1 they stray is the noise of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: benchmark name → (script, its flag for fewer samples, its flags for a warm-up run)
BENCHES = {
    "kernels": ("bench_kernels.py", "--quick", ["--quick", "--no-compile"]),
    "train": ("bench_train.py", "--fast", ["--fast"]),
}


# -- revisions ----------------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         check=False)
    if out.returncode:
        raise SystemExit(f"compare_revisions: git {' '.join(args)} failed: "
                         f"{out.stderr.strip()}")
    return out.stdout.strip()


def export(repo: Path, commit: str, dest: Path) -> Path:
    """The tree of ``commit`` written into ``dest`` (``git archive``; the repository and
    its worktrees are not touched)."""
    dest.mkdir(parents=True)
    with subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit],
                          stdout=subprocess.PIPE) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            tar.extractall(dest, filter="data")
    if proc.returncode:
        raise SystemExit(f"compare_revisions: git archive {commit} failed")
    return dest


# -- running ------------------------------------------------------------------------------

class Side:
    """One revision: its export, its cache folder, its environment."""

    def __init__(self, label: str, rev: str, commit: str, root: Path, scripts: Path,
                 base_env: dict) -> None:
        self.label, self.rev, self.commit, self.root = label, rev, commit, root
        self.scripts = scripts
        self.cache = root.parent / f"cache-{label}"
        self.cache.mkdir()
        self.env = dict(base_env, PYTHONPATH=str(root), SYMNN_CACHE_DIR=str(self.cache))

    def run(self, bench: str, flags: list[str]) -> list[dict]:
        """Run one benchmark; its JSON records (the symnn it imported is checked)."""
        script = self.scripts(self) / BENCHES[bench][0]
        cmd = [sys.executable, str(script), "--json", *flags]
        out = subprocess.run(cmd, env=self.env, cwd=self.root, capture_output=True,
                             text=True, timeout=3600, check=False)
        if out.returncode:
            tail = "\n".join((out.stdout + out.stderr).splitlines()[-20:])
            raise SystemExit(f"compare_revisions: {bench} of {self.label} ({self.rev}) "
                             f"failed (exit {out.returncode}):\n{tail}")
        records = parse_records(out.stdout)
        where = next((r["symnn"] for r in records if "symnn" in r), None)
        if where is None or not Path(where).resolve().is_relative_to(self.root.resolve()):
            raise SystemExit(f"compare_revisions: {bench} of {self.label} imported symnn "
                             f"from {where}, not from the export {self.root}")
        return [r for r in records if "case" in r]


def parse_records(stdout: str) -> list[dict]:
    """The JSON objects among a benchmark's output lines (other lines are ignored)."""
    records = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def script_flags(bench: str, args) -> list[str]:
    flags = [] if args.with_peers else ["--symnn-only"]
    if args.quick:
        flags.append(BENCHES[bench][1])
    if bench == "kernels" and not args.compile:
        flags.append("--no-compile")
    if args.threads is not None:
        flags += ["--threads", str(args.threads)]
    return flags


def measure(sides: list[Side], benches: list[str], args) -> dict:
    """``{label: {case: [seconds per round]}}``, and notes of cases without a time."""
    times: dict[str, dict[str, list[float]]] = {s.label: {} for s in sides}
    notes: dict[str, dict[str, str]] = {s.label: {} for s in sides}
    for side in sides:  # warm the kernel caches (and Numba's) first; not recorded
        for bench in benches:
            print(f"warming {side.label} ({side.rev}): {bench}", flush=True)
            side.run(bench, BENCHES[bench][2] + ["--symnn-only"])
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            for bench in benches:
                t0 = time.perf_counter()
                for rec in side.run(bench, script_flags(bench, args)):
                    case = f"{bench}: {rec['case']}"
                    if isinstance(rec.get("seconds"), (int, float)):
                        times[side.label].setdefault(case, []).append(float(rec["seconds"]))
                    else:
                        notes[side.label][case] = str(rec.get("note", "no time"))
                print(f"round {r + 1}/{args.rounds}: {side.label} {bench} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"times": times, "notes": notes}


# -- the report -----------------------------------------------------------------------------

def summarise(times_a: dict[str, list[float]], times_b: dict[str, list[float]],
              threshold: float) -> list[dict]:
    """Per case: medians, ratio B/A, spreads and whether the ratio is outside
    ``1 ± threshold``."""
    rows = []
    for case in list(times_a) + [c for c in times_b if c not in times_a]:
        a, b = times_a.get(case, []), times_b.get(case, [])
        row = {"case": case, "a": _median(a), "b": _median(b), "spread_a": _spread(a),
               "spread_b": _spread(b), "ratio": None, "flag": False}
        if row["a"] and row["b"] is not None:
            row["ratio"] = row["b"] / row["a"]
            row["flag"] = abs(row["ratio"] - 1) > threshold
        rows.append(row)
    return rows


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _spread(xs: list[float]) -> float | None:
    m = _median(xs)
    return (max(xs) - min(xs)) / m if xs and m else None


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3f} {unit}"
    return f"{t / 1e-9:.1f} ns"


def _fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def print_report(rows: list[dict], notes: dict, sides: list[Side], args) -> None:
    a, b = sides
    print()
    print(f"A = {a.rev} ({a.commit[:10]})   B = {b.rev} ({b.commit[:10]})   "
          f"{args.rounds} rounds{' (quick)' if args.quick else ''}; medians over rounds; "
          f"* = B/A outside ±{100 * args.threshold:g}%")
    width = max([len(r["case"]) for r in rows] + [4])
    head = (f"{'case':<{width}}  {'A':>11} {'spread':>6}  {'B':>11} {'spread':>6}  "
            f"{'B/A':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3f}"
        print(f"{r['case']:<{width}}  {_fmt_time(r['a']):>11} {_fmt_pct(r['spread_a']):>6}  "
              f"{_fmt_time(r['b']):>11} {_fmt_pct(r['spread_b']):>6}  {ratio:>6}"
              f"{' *' if r['flag'] else ''}")
    for label, cases in notes.items():
        for case, note in cases.items():
            print(f"  {label} {case}: {note}")
    flagged = sum(r["flag"] for r in rows)
    print(f"{flagged} of {len(rows)} cases outside ±{100 * args.threshold:g}%"
          + (" (spreads above that mean the machine is too noisy to tell)" if flagged else ""))


# -- main -----------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old", metavar="OLD", help="revision A (a commit, branch, tag)")
    p.add_argument("new", metavar="NEW", help="revision B")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    p.add_argument("--bench", default="kernels,train",
                   help="comma-separated: kernels, train (default both)")
    p.add_argument("--with-peers", action="store_true", help="time the peers too")
    p.add_argument("--compile", action="store_true",
                   help="include bench_kernels' compile timings (fresh processes)")
    p.add_argument("--threads", type=int, help="passed on to the scripts")
    p.add_argument("--scripts", choices=("current", "revision"), default="current",
                   help="whose benchmark scripts measure each revision (default: this "
                        "checkout's)")
    p.add_argument("--threshold", type=float, default=0.05,
                   help="flag ratios outside 1 ± this (default 0.05)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args(argv)
    args.benches = [b.strip() for b in args.bench.split(",") if b.strip()]
    unknown = [b for b in args.benches if b not in BENCHES]
    if unknown or not args.benches or args.rounds < 1:
        p.error(f"--bench takes {', '.join(BENCHES)}; --rounds at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    repo = Path(git(HERE, "rev-parse", "--show-toplevel"))
    commits = [git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")
               for rev in (args.old, args.new)]
    tmp = Path(tempfile.mkdtemp(prefix="symnn-compare-"))
    try:
        def scripts(side: Side) -> Path:
            return HERE if args.scripts == "current" else side.root / "benchmarks"

        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",
                                                               "SYMNN_CACHE_DIR")}
        sides = [Side(label, rev, commit, export(repo, commit, tmp / label), scripts, env)
                 for label, rev, commit in zip("AB", (args.old, args.new), commits)]
        result = measure(sides, args.benches, args)
        rows = summarise(result["times"]["A"], result["times"]["B"], args.threshold)
        print_report(rows, result["notes"], sides, args)
    finally:
        if args.keep:
            print(f"(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    raise SystemExit(main())
