"""Where the B = 2048 gradient of the 64-128-128-10 tanh / softmax-CE MLP spends its time,
and what the BLAS it runs on costs (issue 16).

Sections (float64, one thread, process CPU time so that other load on a shared machine
inflates nothing but its own share):

* ``steps`` — the generated ``loss_and_grad`` kernel cut at its comment lines into steps
  (each product, each elementwise pass), each step compiled alone and run many times on the
  kernel's own work buffer: CPU time per call, share of the kernel's time, and GFLOP/s
  for the products (2·m·n·k flops);
* ``kernel`` — the whole kernel (CPU time), alternating with JAX's gradient (CPU time, XLA on
  one thread) in a JAX interpreter (``--jax-python``; ``benchmarks/_blas_jax.py serve``):
  medians and the median per-round ratio;
* ``--coretypes A,B,...`` — the ``kernel`` section again in child processes with
  ``OPENBLAS_CORETYPE`` set to each value (``unset`` removes it): what the environment's
  pin costs.  For this benchmark only; tests and CI never change the variable;
* ``--jax-breakdown`` — JAX's side (``benchmarks/_blas_jax.py`` under ``--jax-python``):
  its HLO's dots and fusions, the CPU time of its gradient and of each product alone.

Both product paths of :mod:`symnn.codegen.numba.gemm` are timed in every section
(``set_gemm("blas")`` and ``set_gemm("tiles")``, alternating round by round).

Run: ``python benchmarks/bench_blas.py [--batch 2048 256 32] [--rounds 9]
[--jax-python /tmp/jaxenv-speed/bin/python] [--coretypes unset,SkylakeX,Zen]
[--jax-breakdown] [--no-steps]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SIZES = [64, 128, 128, 10]


def cpu_time(fn, reps: int = 9, min_time: float = 0.05) -> float:
    """Median process CPU seconds per call of ``fn`` (calls grouped to ``min_time``)."""
    fn()
    n = 1
    while True:
        t0 = time.process_time()
        for _ in range(n):
            fn()
        if time.process_time() - t0 >= min_time:
            break
        n *= 2
    out = []
    for _ in range(reps):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        out.append((time.process_time() - t0) / n)
    return statistics.median(out)


def _model():
    import symnn

    net = symnn.mlp(SIZES, activation="tanh", output="softmax", loss="cross_entropy",
                    name="bench_mlp")
    return net.compile()


def _problem(B: int):
    import peers

    theta, X, Y = peers.random_problem(SIZES, B, loss="ce", seed=B)
    _, g_ref = peers.numpy_loss_and_grad(theta, X, Y, SIZES, loss="ce")
    return theta, X, Y, g_ref


_FLOPS = {  # a runtime product's call → (m, k, n) from its arguments
    "_mm_nt": lambda a: (a[2], a[3], a[6]),   # (A, oa, m, n, W, ow, p, ...): m × n × p
    "_mm_tn": lambda a: (a[3], a[2], a[6]),   # (U, ou, m, p, V, ov, n, ...): p × m × n
    "_mm_nn": lambda a: (a[2], a[3], a[6]),   # (G, og, m, p, W, ow, n, ...): m × p × n
}


def kernel_steps(source: str, fn_name: str):
    """The kernel ``fn_name`` of a generated module's ``source`` cut into (preamble,
    [(comment, lines)]) at its ``    # ...`` comment lines (the final ``return`` dropped)."""
    start = source.index(f"def {fn_name}(")
    end = source.find("\n@njit", start)
    body = source[start:end if end > 0 else None].splitlines()[1:]
    pre, steps = [], []
    for line in body:
        if line.strip().startswith('"""') or line.strip().startswith("return"):
            continue
        m = re.match(r"    # (.*)$", line)
        if m:
            steps.append((m.group(1), []))
        elif steps:
            steps[-1][1].append(line)
        else:
            pre.append(line)
    return pre, steps


def step_breakdown(B: int, reps: int = 7) -> list[dict]:
    """Each step of the generated gradient kernel compiled alone and timed (CPU)."""
    model = _model()
    gen = model.generated
    src = gen.source.replace("cache=True", "cache=False")
    name = next(n for n in re.findall(r"def (\w+_loss_grad)\(", src))
    ns: dict = {}
    exec(compile(src, "<generated>", "exec"), ns)  # noqa: S102 - our own generated code
    pre, steps = kernel_steps(src, name)
    theta, X, Y, g_ref = _problem(B)
    Xf, Yf = X.reshape(-1), Y.reshape(-1)
    work = np.empty(gen.work_size("loss_and_grad", B))
    grad = np.empty(model.n_params)
    kern = model.kernels["loss_and_grad"]
    kern(theta, Xf, Yf, grad, work)  # the work buffer now holds every intermediate
    assert np.max(np.abs(grad - g_ref)) <= 1e-10 * np.max(np.abs(g_ref))
    total = cpu_time(lambda: kern(theta, Xf, Yf, grad, work), reps)
    rows = []
    for i, (comment, lines) in enumerate(steps):
        fname = f"_step{i}"
        code = [f"def {fname}(params, X, Y, grad, work_in, R):", *pre,
                "    L = 0.0", "    for _rep in range(R):"]
        code += ["    " + ln for ln in lines] or ["        pass"]
        code += ["    return L"]
        exec(compile("\n".join(code), f"<step {i}>", "exec"), ns)  # noqa: S102
        step = ns["njit"](error_model="numpy")(ns[fname])
        R = 16
        t = cpu_time(lambda: step(theta, Xf, Yf, grad, work, R), reps) / R
        row = {"step": comment, "seconds": t, "share": t / total}
        call = re.search(r"(_mm_\w\w)\(([^)]*)\)", "\n".join(lines))
        if call:
            args = [a.strip() for a in call.group(2).split(",")]
            mkn = tuple(int(eval(a, {"B": B, "K": 1})) for a in _FLOPS[call.group(1)](args))  # noqa: S307
            row.update(kind=call.group(1)[4:], mkn=mkn, gflops=2 * np.prod(mkn) / t / 1e9)
        rows.append(row)
    rows.append({"step": "whole kernel", "seconds": total, "share": 1.0})
    return rows


def print_steps(rows: list[dict], B: int) -> None:
    print(f"\nsteps of the generated loss_and_grad kernel, B = {B} (CPU time per call)")
    print(f"{'step':44s}{'µs':>10s}{'share':>8s}  {'product (m×k×n)':>18s}{'GFLOP/s':>9s}")
    gemm = other = 0.0
    for r in rows:
        prod = ""
        if "mkn" in r:
            prod = f"{r['kind']} {'×'.join(map(str, r['mkn']))}"
            gemm += r["seconds"]
        elif r["step"] != "whole kernel":
            other += r["seconds"]
        gf = f"{r['gflops']:9.1f}" if "gflops" in r else ""
        print(f"{r['step'][:44]:44s}{r['seconds'] * 1e6:10.1f}{r['share']:8.1%}  {prod:>18s}{gf}")
    total = rows[-1]["seconds"]
    print(f"{'sum: products':44s}{gemm * 1e6:10.1f}{gemm / total:8.1%}")
    print(f"{'sum: everything else':44s}{other * 1e6:10.1f}{other / total:8.1%}")


class JaxCpu:
    """``benchmarks/_blas_jax.py serve`` under a JAX interpreter: CPU-time samples."""

    def __init__(self, python: str) -> None:
        self.proc = subprocess.Popen([python, str(HERE / "_blas_jax.py"), "serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=str(HERE))
        hello = self.proc.stdout.readline()
        if not hello.startswith("ready"):
            raise RuntimeError(f"JAX server did not start: {hello!r}")

    def sample(self, B: int) -> float:
        self.proc.stdin.write(f"{B}\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "seconds" not in answer:
            raise RuntimeError(answer.get("error"))
        return answer["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def kernel_vs_jax(B: int, rounds: int, jax_python: str | None, modes=("blas", "tiles")) -> dict:
    """The whole kernel's CPU time under each :func:`set_gemm` mode, alternating with JAX's
    gradient (CPU time too, in a JAX interpreter) round by round."""
    import threadpoolctl

    from symnn.codegen.numba.gemm import host_has_avx512, set_gemm

    model = _model()
    theta, X, Y, g_ref = _problem(B)
    Xf, Yf = X.reshape(-1), Y.reshape(-1)
    work = np.empty(model.generated.work_size("loss_and_grad", B))
    grad = np.empty(model.n_params)
    kern = model.kernels["loss_and_grad"]
    arch = sorted({i.get("architecture", "?") for i in threadpoolctl.threadpool_info()
                   if i.get("internal_api") == "openblas"})
    res = {"coretype": os.environ.get("OPENBLAS_CORETYPE", "unset"), "openblas": arch,
           "avx512": host_has_avx512(), "B": B, "rel_err": {}, "jax": []}
    for mode in modes:
        set_gemm(mode)
        kern(theta, Xf, Yf, grad, work)
        res["rel_err"][mode] = float(np.max(np.abs(grad - g_ref)) / np.max(np.abs(g_ref)))
        res[mode] = []
    remote = JaxCpu(jax_python) if jax_python else None
    try:
        for _ in range(rounds):
            for mode in modes:
                set_gemm(mode)
                res[mode].append(cpu_time(lambda: kern(theta, Xf, Yf, grad, work), 1, 0.05))
            if remote is not None:
                res["jax"].append(remote.sample(B))
    finally:
        set_gemm("auto")
        if remote is not None:
            remote.close()
    return res


def summarize(res: dict, modes=("blas", "tiles")) -> str:
    line = (f"B={res['B']} OPENBLAS_CORETYPE={res['coretype']} (OpenBLAS kernels "
            f"{','.join(res['openblas'])}; AVX-512F {res['avx512']}):")
    for mode in modes:
        s = statistics.median(res[mode])
        line += f"\n    symnn gemm={mode:5s} {s * 1e3:7.3f} ms (rel err {res['rel_err'][mode]:.1e})"
        if res["jax"]:
            ratio = statistics.median(a / b for a, b in zip(res[mode], res["jax"]))
            line += f"  symnn/JAX {ratio:4.2f}"
    if res["jax"]:
        line += f"\n    JAX              {statistics.median(res['jax']) * 1e3:7.3f} ms"
    return line


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[2048])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--jax-python", default=None)
    p.add_argument("--coretypes", default="", help="comma list; 'unset' removes the variable")
    p.add_argument("--jax-breakdown", action="store_true")
    p.add_argument("--no-steps", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = _parse(argv)
    if args.child:  # one coretype's kernel section, as JSON
        for B in args.batch:
            print(json.dumps(kernel_vs_jax(B, args.rounds, args.jax_python)))
        return
    os.system("uptime")  # noqa: S605 - the load, for the record
    if not args.no_steps:
        from symnn.codegen.numba.gemm import set_gemm

        for mode in ("blas", "tiles"):
            set_gemm(mode)
            print(f"\n[gemm={mode}]", end="")
            print_steps(step_breakdown(args.batch[0]), args.batch[0])
        set_gemm("auto")
    print()
    for B in args.batch:
        print(summarize(kernel_vs_jax(B, args.rounds, args.jax_python)))
    for ct in filter(None, args.coretypes.split(",")):
        env = dict(os.environ)
        env.pop("OPENBLAS_CORETYPE", None)
        if ct != "unset":
            env["OPENBLAS_CORETYPE"] = ct
        cmd = [sys.executable, __file__, "--child", "--rounds", str(args.rounds), "--batch",
               *map(str, args.batch)]
        if args.jax_python:
            cmd += ["--jax-python", args.jax_python]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        for line in out.stdout.strip().splitlines():
            if line.startswith("{"):
                print(summarize(json.loads(line)))
    if args.jax_breakdown and args.jax_python:
        _print_jax(args.jax_python, args.batch[0])
    os.system("uptime")  # noqa: S605


def _print_jax(python: str, B: int) -> None:
    out = subprocess.run([python, str(HERE / "_blas_jax.py"), str(B)],
                         capture_output=True, text=True, check=True, cwd=str(HERE))
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nJAX {res['jax']}, B={B}: gradient {res['grad_cpu_s'] * 1e3:.2f} ms CPU; "
          f"{res['n_fusions']} fusions {res['fusion_kinds']}; HLO dots (shape, operands, dims):")
    for d in res["dots_in_hlo"]:
        print("   ", d)
    print("  each product alone, jitted (CPU µs):")
    for name, t in res["dot_cpu_s"].items():
        print(f"    {name:16s}{t * 1e6:9.1f}")


if __name__ == "__main__":
    main()
