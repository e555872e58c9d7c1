"""JAX timed in another interpreter (a venv that has JAX), paired with this process's runs.

``bench_kernels.py --jax-python PATH`` starts this file under ``PATH`` as a small server:
it reads one request per line (``grad B repeat min_time``), draws the same problem as the
parent (``peers.random_problem(..., seed=B)``), checks JAX's gradient against the NumPy
peer and answers one JSON line: ``{"seconds": median}`` or ``{"error": ...}``.  The parent
alternates its own samples with the server's (:class:`JaxRemote.paired`), so that both
see the same load on a shared machine.

The server imports only NumPy, JAX and the benchmark's peer modules (no symnn, no Numba).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


class JaxRemote:
    """A JAX server process; ``time_grad(B, ...)`` → median seconds of one loss+gradient."""

    def __init__(self, python: str, sizes, threads: int | None = None) -> None:
        env = dict(os.environ)
        if threads == 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                " intra_op_parallelism_threads=1").strip()
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), ",".join(map(str, sizes))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(HERE))
        hello = self.proc.stdout.readline()
        if not hello.startswith("ready"):
            self.close()
            raise RuntimeError(f"JAX server did not start: {hello!r}")
        self.version = hello.split()[1] if len(hello.split()) > 1 else "?"

    def time_grad(self, B: int, repeat: int, min_time: float) -> float | str:
        self.proc.stdin.write(f"grad {B} {repeat} {min_time}\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer.get("seconds", answer.get("error"))

    def paired(self, own, B: int, rounds: int, min_time: float) -> tuple[float, float | str]:
        """``rounds`` alternating samples of ``own`` (a thunk) and of JAX at batch ``B``:
        the medians ``(own, jax)``."""
        from _timing import median_time

        mine, theirs = [], []
        for _ in range(rounds):
            mine.append(median_time(own, repeat=1, min_time=min_time))
            t = self.time_grad(B, 1, min_time)
            if isinstance(t, str):
                return statistics.median(mine), t
            theirs.append(t)
        return statistics.median(mine), statistics.median(theirs)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _serve(sizes) -> None:  # runs in the JAX interpreter
    sys.path.insert(0, str(HERE))
    import numpy as np
    from _peers_common import random_problem
    from _peers_jax import _jax, _make_jax_cached, to_jax
    from _peers_numpy import numpy_loss_and_grad
    from _timing import median_time

    jax = _jax()
    fn = _make_jax_cached("loss_and_grad", tuple(sizes), "ce")
    problems = {}
    print("ready", jax.__version__, flush=True)
    for line in sys.stdin:
        _, B, repeat, min_time = line.split()
        B = int(B)
        if B not in problems:
            theta, X, Y = random_problem(sizes, B, loss="ce", seed=B)
            _, g_ref = numpy_loss_and_grad(theta, X, Y, sizes, loss="ce")
            args = to_jax(theta, X, Y)
            g = np.asarray(fn(*args)[1])
            err = float(np.max(np.abs(g - g_ref)) / max(np.max(np.abs(g_ref)), 1e-300))
            problems[B] = (args, err)
        args, err = problems[B]
        if not err <= 1e-10:
            print(json.dumps({"error": f"WRONG (rel err {err:.1e})"}), flush=True)
            continue
        t = median_time(lambda: fn(*args)[1].block_until_ready(), repeat=int(repeat),
                        min_time=float(min_time))
        print(json.dumps({"seconds": t}), flush=True)


if __name__ == "__main__":
    _serve([int(s) for s in sys.argv[1].split(",")])
