"""JAX timed in another interpreter (a venv that has JAX), paired with this process's runs.

``bench_kernels.py --jax-python PATH`` starts this file under ``PATH`` as a small server:
it reads one request per line (``KIND B repeat min_time``, KIND one of ``grad``, ``hessian``,
``eig`` — the dense Hessian's eigenvalues), draws the same problem as the parent
(``peers.random_problem(..., seed=B)``), checks JAX's answer against the NumPy peer and
answers one JSON line: ``{"seconds": median}`` or ``{"error": ...}``.  The second argument
of the server is the loss (``ce`` or ``mse``; ``bench_hessian.py`` uses ``mse``).  The parent
alternates its own samples with the server's (:class:`JaxRemote.paired`), so that both
see the same load on a shared machine; each side runs untimed for :data:`WARM` seconds
before each of its samples, which last at least as long.

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


#: Seconds each side runs untimed before its sample, and the shortest sample (lead, round
#: 8): a thread pool parked since its last call (XLA's) pays its wake-up in the first calls,
#: and BLAS threads of the other process still spin for a while after their last call
#: (OpenBLAS's default timeout is 2^28 cycles, about 0.1 s); with 20 ms samples JAX's B = 2048
#: gradient read 2.6 to 4.7 ms depending on what symnn had just run, 2.6–2.8 ms alone.
WARM = 0.2


def _warm(call) -> None:
    """Run ``call`` for :data:`WARM` seconds, untimed."""
    import time

    end = time.perf_counter() + WARM
    while time.perf_counter() < end:
        call()


class JaxRemote:
    """A JAX server process; ``time_grad(B, ...)`` → median seconds of one loss+gradient."""

    def __init__(self, python: str, sizes, threads: int | None = None,
                 loss: str = "ce") -> None:
        env = dict(os.environ)
        if threads == 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                " intra_op_parallelism_threads=1").strip()
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), ",".join(map(str, sizes)), loss],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(HERE))
        hello = self.proc.stdout.readline()
        if not hello.startswith("ready"):
            self.close()
            raise RuntimeError(f"JAX server did not start: {hello!r}")
        self.version = hello.split()[1] if len(hello.split()) > 1 else "?"

    def time_grad(self, B: int, repeat: int, min_time: float, kind: str = "grad"
                  ) -> float | str:
        self.proc.stdin.write(f"{kind} {B} {repeat} {min_time}\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer.get("seconds", answer.get("error"))

    def paired(self, own, B: int, rounds: int, min_time: float, kind: str = "grad"
               ) -> tuple[float, float | str]:
        """``rounds`` alternating samples of ``own`` (a thunk) and of JAX at batch ``B``:
        the medians ``(own, jax)``."""
        from _timing import median_time

        mine, theirs = [], []
        for _ in range(rounds):
            _warm(own)
            mine.append(median_time(own, repeat=1, min_time=max(min_time, WARM)))
            t = self.time_grad(B, 1, min_time, kind)
            if isinstance(t, str):
                return statistics.median(mine), t
            theirs.append(t)
        return statistics.median(mine), statistics.median(theirs)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _serve(sizes, loss: str = "ce") -> None:  # runs in the JAX interpreter
    sys.path.insert(0, str(HERE))
    import numpy as np
    from _peers_common import random_problem
    from _peers_jax import _jax, _make_jax_cached, to_jax
    from _peers_numpy import numpy_hessian, numpy_loss_and_grad
    from _timing import median_time

    jax = _jax()
    fns = {"grad": _make_jax_cached("loss_and_grad", tuple(sizes), loss),
           "hessian": _make_jax_cached("hessian", tuple(sizes), loss)}

    def eig(theta, X, Y):  # every eigenvalue of the dense Hessian, as symnn's spectrum
        return jax.numpy.linalg.eigvalsh(fns["hessian"](theta, X, Y))

    fns["eig"] = jax.jit(eig)

    def reference(kind, theta, X, Y):
        if kind == "grad":
            return numpy_loss_and_grad(theta, X, Y, sizes, loss=loss)[1]
        H = numpy_hessian(theta, X, Y, sizes, loss=loss)
        return H if kind == "hessian" else np.linalg.eigvalsh(H)

    def answer(kind, args):
        out = fns[kind](*args)
        return out[1] if kind == "grad" else out

    problems = {}
    print("ready", jax.__version__, flush=True)
    for line in sys.stdin:
        kind, B, repeat, min_time = line.split()
        B = int(B)
        if (kind, B) not in problems:
            theta, X, Y = random_problem(sizes, B, loss=loss, seed=B)
            ref = reference(kind, theta, X, Y)
            args = to_jax(theta, X, Y)
            got = np.asarray(answer(kind, args))
            err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300))
            problems[kind, B] = (args, err)
        args, err = problems[kind, B]
        if not err <= 1e-10:
            print(json.dumps({"error": f"WRONG (rel err {err:.1e})"}), flush=True)
            continue
        call = (lambda k=kind, a=args: answer(k, a).block_until_ready())
        _warm(call)
        t = median_time(call, repeat=int(repeat), min_time=max(float(min_time), WARM))
        print(json.dumps({"seconds": t}), flush=True)


if __name__ == "__main__":
    _serve([int(s) for s in sys.argv[1].split(",")], *(sys.argv[2:3] or ["ce"]))
