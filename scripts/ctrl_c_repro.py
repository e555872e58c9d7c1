"""Ctrl-C to ``symnn train`` at random times: how many are lost (not part of the test suite).

Starts ``symnn train`` (a 2-8-1 network on xor, adam, batch 1, 10⁶ epochs, ``--engine
python``: the loop around ``model.loss_and_grad``) ``--runs`` times, waits for its
"compiling the derived program" line, sleeps a random delay in ``[--min, --max]`` seconds,
sends SIGINT, and counts the children that did not exit 130 within ``--wait`` seconds (a
lost Ctrl-C: the child trains on).  In the child the compiled ``loss_and_grad`` entry
(:mod:`symnn.codegen._fusedentry`) is built on the ``--build-after``-th call, and each
run's line says when it was built relative to the signal.  ``--cold`` deletes the entry's
Numba cache files before each run, so that its build compiles (about a second) and a
signal can land in it.  Run from the repository root, with a cache directory of its own:

    SYMNN_CACHE_DIR=/tmp/ctrlc-cache python scripts/ctrl_c_repro.py --runs 40

(The first run compiles the kernels; warm them with one short ``symnn train`` first, or
read the first run's line accordingly.)  Round 8 (a loaded 2-core machine): 3 of 40 lost at
delays 0.5–5 s before the fix (the entry returned an array, whose boxing ran Python code),
and about 1 in 20 at 0.2–0.6 s (while the kernels load from Numba's cache, before
:mod:`symnn.codegen._sigint`); 0 of 40, 0 of 30 and 0 of 20 (``--cold``) after.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SPEC = ('[network]\nlayers = [2, 8, 1]\n[optimizer]\nname = "adam"\nlr = 0.001\n'
        '[training]\nepochs = 1000000\nbatch_size = 1\n[data]\nsource = "xor"\n')

#: the child: ``symnn train`` with BUILD_AFTER set, saying on stderr when the entry is built
CHILD = """
import sys, time
import symnn.codegen._fusedentry as fe
fe.BUILD_AFTER = int(sys.argv[1])
build = fe.build
def logged(model, *a, **k):
    print("ctrl_c_repro: build start", file=sys.stderr, flush=True)
    done = build(model, *a, **k)
    print("ctrl_c_repro: build end", file=sys.stderr, flush=True)
    return done
fe.build = logged
from symnn.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _reader(stream, sink) -> None:
    for line in stream:
        sink(line)


def one_run(args, spec: str, out: str) -> tuple:
    """(return code or "TIMEOUT", delay, where the build was, stderr) of one child."""
    if args.cold:
        subprocess.run(["find", os.environ.get("SYMNN_CACHE_DIR", "."), "-name",
                        "*.entry-*", "-delete"], check=False)
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(args.build_after), "train", spec,
                          "-o", out, "--engine", "python"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, PYTHONIOENCODING="utf-8"))
    lines: queue.Queue = queue.Queue()
    err: list = []
    threading.Thread(target=_reader, args=(p.stdout, lines.put), daemon=True).start()
    threading.Thread(target=_reader, args=(p.stderr, lambda s: err.append((time.monotonic(), s))),
                     daemon=True).start()
    line = ""
    while not line.startswith("compiling the derived program"):
        line = lines.get(timeout=300)
    delay = random.uniform(args.min, args.max)
    time.sleep(delay)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=args.wait)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        rc = "TIMEOUT"
    time.sleep(0.2)  # (the reader threads finish)
    start = [t - sent for t, s in err if "build start" in s]
    end = [t - sent for t, s in err if "build end" in s]
    where = ("no build" if not start else f"build {start[0]:+.2f} s .. "
             + (f"{end[0]:+.2f} s" if end else "interrupted") + " from the signal")
    return rc, delay, where, "".join(s for _, s in err)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--build-after", type=int, default=1000)
    ap.add_argument("--min", type=float, default=0.5)
    ap.add_argument("--max", type=float, default=5.0)
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for exit 130")
    ap.add_argument("--cold", action="store_true", help="the entry's Numba cache deleted")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ctrl-c-repro-")
    spec = os.path.join(tmp, "long.toml")
    with open(spec, "w", encoding="utf-8") as f:
        f.write(SPEC)
    lost = 0
    try:
        for i in range(args.runs):
            rc, delay, where, err = one_run(args, spec, os.path.join(tmp, "long.npz"))
            ok = rc == 130
            lost += not ok
            saved = "saved the last good parameters" in err
            print(f"{i:3d} delay {delay:.2f} s: rc {rc} {'ok' if ok else 'LOST'}; {where}"
                  + ("" if saved else "; before training (nothing to save)"), flush=True)
            if not ok:
                print("    stderr tail: " + err[-1500:].replace("\n", "\n    "), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"lost {lost} of {args.runs}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
