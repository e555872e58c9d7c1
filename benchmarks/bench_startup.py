"""Warm start of a new process: declare (or load) a network, compile with every kernel
cached, compute the first gradient — symnn against JAX, whole processes, paired.

Each round starts one fresh ``python -c …`` process per workload, in alternating order
(``hyperfine``-style, without needing hyperfine), after warm-up runs that fill symnn's
kernel cache and JAX's persistent compilation cache.  Every process checks its gradient
against a value computed before timing (so a broken run cannot look fast) and prints
``ok``.  Reported: the median wall time of each workload and the ratio to JAX, and the
median CPU time (user + system) of its processes, which other programs' load disturbs less
than wall time.

Workloads (64-128-128-10 tanh/softmax cross-entropy MLP, B = 32, float64):

* ``symnn declare``: ``symnn.mlp(...)``, ``net.compile()``, ``model.loss_and_grad``;
* ``symnn load``: ``symnn.load(file)``, ``.compile()``, ``loss_and_grad``;
* ``symnn load_compiled``: ``symnn.load_compiled(file)``, ``loss_and_grad`` (no SymPy),
  with the ahead-of-time kernels (:mod:`symnn.codegen.aot`) that the preparation built
  (``load_compiled(file, aot=True)``; ``--no-aot`` skips that: then this is the next line;
  ``--auto-aot``: the preparation's plain ``load_compiled(file)`` starts the automatic
  background build, :mod:`symnn.codegen._aotauto`, and waits for it);
* ``symnn lc numba``: ``symnn.load_compiled(file, aot=False)``: the kernels through Numba;
* ``numba floor``: the hand-written Numba gradient of ``benchmarks/_peers_numba.py`` from
  Numba's cache — what any Numba-based library pays to start (NumPy, Numba, its target
  and SciPy's BLAS) and no more;
* ``base …``: the declare, load and load_compiled workloads of another symnn tree
  (``--baseline DIR``);
* ``jax``: the same network written in ``jax.numpy``, ``jax.jit(jax.value_and_grad(...))``
  with the persistent compilation cache on (``--jax-python`` names an interpreter that has
  JAX, when the running one has not).

Run: ``python benchmarks/bench_startup.py [--rounds 10] [--jax-python PATH]
[--baseline DIR] [--json]``; each workload's line also says which large packages (SymPy,
symnn.derive, the code generator, SciPy, JAX) its process had imported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETUP = """
import numpy as np
rng = np.random.default_rng(0)
X = rng.standard_normal((32, 64)); y = np.arange(32) % 10
"""

SYMNN_DECLARE = SETUP + """
import symnn
net = symnn.mlp([64, 128, 128, 10], activation="tanh", output="softmax", loss="cross_entropy")
model = net.compile()
theta = model.init(seed=0)
L, g = model.loss_and_grad(theta, X, y)
"""

SYMNN_LOAD = SETUP + """
import symnn
saved = symnn.load(PATH)
model = saved.compile()
L, g = model.loss_and_grad(saved.params, X, y)
"""

SYMNN_LOAD_COMPILED = SETUP + """
import symnn
model, params, _ = symnn.load_compiled(PATH)
L, g = model.loss_and_grad(params, X, y)
"""

SYMNN_LC_NUMBA = SETUP + """
import symnn
model, params, _ = symnn.load_compiled(PATH, aot=False)
L, g = model.loss_and_grad(params, X, y)
"""

NUMBA = SETUP + """
import sys
sys.path.insert(0, BENCH)
from _peers_numba import numba_loss_and_grad
theta = np.load(THETA)
L, g = numba_loss_and_grad(theta, X, np.eye(10)[y], [64, 128, 128, 10], loss="ce")
"""

JAX = SETUP + """
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_compilation_cache_dir", JAXCACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
import jax.numpy as jnp
sys_theta = np.load(THETA)
sizes = [64, 128, 128, 10]
params, o = [], 0
for a, b in zip(sizes[:-1], sizes[1:]):
    params.append((jnp.asarray(sys_theta[o:o + a * b].reshape(b, a)),
                   jnp.asarray(sys_theta[o + a * b:o + a * b + b]))); o += a * b + b
def loss(params, X, Y):
    h = X
    for i, (W, b) in enumerate(params):
        h = h @ W.T + b
        if i < len(params) - 1:
            h = jnp.tanh(h)
    return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(h), axis=1))
Y = np.eye(10)[y]
L, grads = jax.jit(jax.value_and_grad(loss))(params, X, Y)
g = np.concatenate([np.concatenate([np.ravel(W), np.ravel(b)]) for W, b in grads])
L = float(L)
"""

CHECK = """
ref = np.load(REF)
assert abs(L - float(ref[0])) <= 1e-10 * max(1, abs(float(ref[0]))), (L, ref[0])
assert np.allclose(g, ref[1:], rtol=1e-9, atol=1e-12)
import sys as _s
big = [m for m in ("sympy", "symnn.derive", "symnn.codegen.numba.kernels", "scipy",
                   "scipy.linalg", "numba", "jax")
       if m in _s.modules]
print("ok", *big)
"""


def _script(body: str, names: dict) -> str:
    head = "".join(f"{k} = {v!r}\n" for k, v in names.items())
    return head + body + CHECK


def _run(python: str, code: str, env: dict, path: str | None = None) -> tuple[float, str]:
    if path is not None:  # another symnn tree (--baseline)
        env = dict(env, PYTHONPATH=path + os.pathsep + env.get("PYTHONPATH", ""))
    cpu = _children_cpu()
    t = time.perf_counter()
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env,
                          cwd=path or str(ROOT), timeout=600)  # `-c` puts the cwd first
    dt = time.perf_counter() - t
    _run.cpu = _children_cpu() - cpu  # the process's user + system CPU seconds
    if proc.returncode != 0 or "ok" not in proc.stdout:
        raise SystemExit(f"a timed process failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return dt, proc.stdout.strip()


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (0 where unknown):
    less sensitive than wall time to other programs' load on a shared machine."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _has_jax(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import jax"], capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _prepare(work: Path, env: dict, aot: "bool | str" = True) -> dict:
    """The model file, θ, and the reference loss and gradient (computed once, here); with
    ``aot``, the model's ahead-of-time kernels are built into the cache."""
    code = SETUP + f"""
import symnn
net = symnn.mlp([64, 128, 128, 10], activation="tanh", output="softmax", loss="cross_entropy")
model = net.compile()
theta = model.init(seed=0)
symnn.save({str(work / 'net.npz')!r}, net, theta)
np.save({str(work / 'theta.npy')!r}, theta)
ref = model.reference
L, g = ref.loss_and_grad(theta, X, y)
np.save({str(work / 'ref.npy')!r}, np.concatenate([[L], g]))
if {aot!r} == "auto":  # a plain load starts the background build (issue 16): wait for it
    import glob, os, time
    symnn.load_compiled({str(work / 'net.npz')!r})
    cache = os.environ["SYMNN_CACHE_DIR"] + "/symnn-aot/"
    t0 = time.time()
    while glob.glob(cache + "*.building") and time.time() - t0 < 600:
        time.sleep(0.5)
    print("automatic ahead-of-time build:", "done" if glob.glob(cache + "*.json") else "NONE",
          f"after {{time.time() - t0:.1f}} s")
elif {aot!r}:
    m2 = symnn.load_compiled({str(work / 'net.npz')!r}, aot=True)[0]
    print("ahead-of-time kernels:", "built" if m2._aot else "NOT built (Numba path)")
"""
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=str(ROOT))
    return {"PATH": str(work / "net.npz"), "THETA": str(work / "theta.npy"),
            "BENCH": str(ROOT / "benchmarks"),
            "REF": str(work / "ref.npy"), "JAXCACHE": str(work / "jaxcache")}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--jax-python", default=None,
                    help="interpreter with JAX installed (default: this one)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/Numba/XLA threads")
    ap.add_argument("--baseline", default=None,
                    help="another symnn source tree (e.g. `git archive OLD | tar -x -C DIR`) "
                         "whose declare and load workloads run in the same rounds")
    ap.add_argument("--no-aot", action="store_true",
                    help="do not build the ahead-of-time kernels (symnn.codegen.aot; also "
                         "no automatic background build: SYMNN_AOT_BUILD=0)")
    ap.add_argument("--auto-aot", action="store_true",
                    help="no aot=True: the preparation's plain load_compiled starts the "
                         "automatic background build (symnn.codegen._aotauto), waited for")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="symnn-startup-"))
    env = dict(os.environ)
    env.setdefault("SYMNN_CACHE_DIR", str(work / "kernels"))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    n = str(args.threads)
    env.update(OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, NUMBA_NUM_THREADS=n,
               XLA_FLAGS=f"--xla_cpu_multi_thread_eigen={'true' if n != '1' else 'false'} "
                         f"intra_op_parallelism_threads={n}")
    try:
        if args.no_aot:
            env["SYMNN_AOT_BUILD"] = "0"
        names = _prepare(work, env, aot="auto" if args.auto_aot else not args.no_aot)
        work_loads = {"symnn declare": (sys.executable, _script(SYMNN_DECLARE, names), None),
                      "symnn load": (sys.executable, _script(SYMNN_LOAD, names), None),
                      "symnn load_compiled": (sys.executable,
                                              _script(SYMNN_LOAD_COMPILED, names), None),
                      "symnn lc numba": (sys.executable, _script(SYMNN_LC_NUMBA, names), None),
                      "numba floor": (sys.executable, _script(NUMBA, names), None)}
        if args.baseline:
            base = str(Path(args.baseline).resolve())
            work_loads["base declare"] = (sys.executable, _script(SYMNN_DECLARE, names), base)
            work_loads["base load"] = (sys.executable, _script(SYMNN_LOAD, names), base)
            work_loads["base load_compiled"] = (sys.executable,
                                                _script(SYMNN_LOAD_COMPILED, names), base)
        jax_py = args.jax_python or sys.executable
        if _has_jax(jax_py):
            work_loads["jax"] = (jax_py, _script(JAX, names), None)
        else:
            print(f"JAX is not importable by {jax_py}: timing symnn only "
                  "(pass --jax-python PATH)", file=sys.stderr)
        times: dict[str, list[float]] = {k: [] for k in work_loads}
        cpus: dict[str, list[float]] = {k: [] for k in work_loads}
        seen: dict[str, str] = {}
        for r in range(args.warmup + args.rounds):
            order = list(work_loads) if r % 2 == 0 else list(reversed(work_loads))
            for name in order:
                python, code, path = work_loads[name]
                dt, out = _run(python, code, env, path)
                seen[name] = out
                if r >= args.warmup:
                    times[name].append(dt)
                    cpus[name].append(_run.cpu)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    result = {"median_s": med, "median_cpu_s": cpu, "rounds": args.rounds,
              "threads": args.threads, "imported": seen}
    if "jax" in med:
        result["ratio_to_jax"] = {k: med[k] / med["jax"] for k in med}
        if cpu["jax"] > 0:
            result["cpu_ratio_to_jax"] = {k: cpu[k] / cpu["jax"] for k in cpu}
    if args.json:
        print(json.dumps(result, indent=1))
        return result
    print(f"new process, cached kernels, first gradient ({args.rounds} paired rounds, "
          f"{args.threads} thread(s), medians)")
    for k, v in med.items():
        ratio = f"  {v / med['jax']:.2f}× JAX" if "jax" in med else ""
        lo, hi = min(times[k]), max(times[k])
        print(f"  {k:<14} {v:.3f} s  (min {lo:.3f}, max {hi:.3f}){ratio}")
        if cpu[k] > 0:
            cratio = f"  {cpu[k] / cpu['jax']:.2f}× JAX" if cpu.get("jax") else ""
            print(f"  {'':<14} CPU (user + system) {cpu[k]:.3f} s{cratio}")
        print(f"  {'':<14} loaded: {seen[k][3:] or '-'}")
    return result


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
