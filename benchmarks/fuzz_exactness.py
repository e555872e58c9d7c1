"""Long differential fuzzing: compiled kernels = ``model.reference`` = PyTorch autograd.

Runs the Hypothesis strategies of ``tests/strategies.py`` (networks and custom models over
the whole declaration space) for as long as asked, checks every kernel of every case with
``tests/_exactness.py`` and writes a JSON summary: the number of cases (checked, rejected
at declaration, out of the loss's domain), the largest relative error per kernel and
witness pair, the output × loss pairings accepted and rejected, and every failure with a
one-line repro (run it from the repository root).

    python benchmarks/fuzz_exactness.py --minutes 30 --seed 1 --out summary.json

``--float32`` also compiles every case in float32 and compares it with float64 at the
tolerance stated in ``symnn/codegen/model.py``.  Set ``SYMNN_CACHE_DIR`` to keep the
generated kernels out of your own cache.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from _exactness import HAVE_TORCH, check_case  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hseed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from strategies import cases  # noqa: E402


class _TimeUp(BaseException):
    """Raised (not an Exception, so Hypothesis does not shrink it) when time is up."""


def _pairing(case) -> str:
    out = case.output
    if isinstance(out, tuple):
        out = "lambda"
    return f"{out or 'linear'}×{case.loss}"


def run(minutes: float, seed: int, float32: bool = False, torch_check: bool = True,
        log=print, verbose: bool = False) -> dict:
    stop = time.monotonic() + 60 * minutes
    start = time.monotonic()
    counts: Counter = Counter()
    worst: dict = defaultdict(float)
    pairings: dict = defaultdict(Counter)
    failures: list = []
    crashes: list = []
    slowest: list = []

    @hseed(seed)
    @settings(max_examples=10**7, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(cases(), st.integers(0, 2**31 - 1))
    def one(case, data_seed):
        if time.monotonic() > stop:
            raise _TimeUp
        t0 = time.monotonic()
        if verbose:
            log(f"case {case.declaration()} seed={data_seed}")
        res = check_case(case, data_seed, torch_check=torch_check, float32=float32)
        took = time.monotonic() - t0
        slowest.append((took, case.declaration()))
        slowest.sort(reverse=True)
        del slowest[5:]
        kind = f"{case.kind}s"
        pairings[_pairing(case)]["rejected" if res.rejected else "accepted"] += 1
        if res.rejected:
            counts[f"{kind}_rejected"] += 1
            return
        counts[f"{kind}_checked"] += 1
        if res.out_of_domain:
            counts["out_of_domain"] += 1
        for (kernel, pair), err in res.errors.items():
            key = f"{kernel} {pair}"
            worst[key] = max(worst[key], err) if math.isfinite(err) else math.inf
        if res.crash:
            crashes.append({"case": case.declaration(), "seed": data_seed,
                            "repro": case.repro(data_seed), "traceback": res.crash})
            log(f"CRASH {case.declaration()} seed={data_seed}\n{res.crash}")
        for f in res.failures:
            failures.append({"case": case.declaration(), "seed": data_seed, **f})
            log(f"DISAGREE {f['kernel']} {f['pair']} err={f['err']:.3g}: {f['repro']}")
        n = counts["networks_checked"] + counts["models_checked"]
        if n % 10 == 0:
            log(f"[{time.monotonic() - start:7.0f} s] {n} cases checked, "
                f"{len(failures)} disagreements, {len(crashes)} crashes")

    try:
        one()
    except _TimeUp:
        pass
    return {
        "seed": seed,
        "minutes": round((time.monotonic() - start) / 60, 2),
        "torch": HAVE_TORCH and torch_check,
        "float32": float32,
        "cases": dict(counts),
        "max_rel_err": {k: (v if math.isfinite(v) else "inf") for k, v in sorted(worst.items())},
        "pairings": {k: dict(v) for k, v in sorted(pairings.items())},
        "n_failures": len(failures),
        "failed_cases": len({(f["case"], f["seed"]) for f in failures}),
        "slowest_cases_s": [[round(t, 1), d] for t, d in slowest],
        "failures": failures,
        "crashes": crashes,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("--float32", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="log every case as it starts")
    args = ap.parse_args(argv)
    summary = run(args.minutes, args.seed, args.float32, not args.no_torch,
                  log=lambda text: print(text, flush=True), verbose=args.verbose)
    text = json.dumps(summary, indent=1, default=str)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    brief = {k: summary[k] for k in ("seed", "minutes", "cases", "n_failures", "failed_cases")}
    brief["crashes"] = len(summary["crashes"])
    print(json.dumps(brief, indent=1))
    return 0 if not summary["failures"] and not summary["crashes"] else 1


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    raise SystemExit(main())
