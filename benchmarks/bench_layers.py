"""Gradient time of symnn's Conv1D and RNN networks beside PyTorch (and JAX), in one process.

Workloads (loss + gradient with respect to every parameter, at B = 1, 32, 256 by default):

1. **conv**: input ``(1, L)`` (L = 128), ``Conv1D(1, C, k)`` → relu → ``Conv1D(C, C, k)`` →
   relu → ``Flatten`` → ``Dense(·, n_out)`` → softmax, cross-entropy (C = 16, k = 5,
   n_out = 4);
2. **rnn**: input ``(T, n_in)`` (T = 50 by default, issue 13's figure; ``--T`` to change it;
   n_in = 4), ``RNN(n_in, H)`` (tanh, H = 64, the last state) → ``Dense(H, n_out)``, MSE.

symnn unrolls the recurrence over time (:mod:`symnn.declare.recurrent`), so its derive +
generate + compile time grows with T: it is measured (``net.compile()`` + the first call,
into a fresh kernel cache unless ``--reuse-cache``) and printed before the tables.

Peers, run in this same process with the SAME weights (copied from symnn's θ):
``torch f64`` / ``torch f32`` — PyTorch eager (``torch.nn.Conv1d`` / ``torch.nn.RNN`` with
``bias_hh = 0`` / ``torch.nn.Linear``), ``loss.backward()`` and the gradients gathered into
one flat vector, as symnn returns; ``jax`` — ``jax.jit(jax.value_and_grad(loss))`` in
float64 (``jax_enable_x64``; ``benchmarks/_layers_jax.py``): in this process when JAX is
importable, else, with ``--jax-python PATH``, in a worker process of that interpreter (timed
there, one request per round, so the column is interleaved like the others), else skipped
with a message.
Every peer's gradient is checked against symnn's before it is timed (the relative error
``max|g − g_symnn| / max|g_symnn|`` is printed; float64 peers must agree to 1e-9, the
float32 peer to 1e-3); a peer that fails is reported ``WRONG`` and not timed.

Timing: every candidate's inner loop is calibrated first (``_timing.time_samples``), then
the ``--repeat`` rounds are interleaved (round r times every candidate once), so that load
from other processes falls on all columns alike; the medians are printed with the ratio
``symnn / peer`` (``> 1``: symnn slower).  ``symnn`` is the public method
``model.loss_and_grad(theta, X, Y)``.

Run: ``python benchmarks/bench_layers.py [--quick] [--tiny] [--T N] [--batches 1,32,256]
[--threads N] [--only conv|rnn] [--clock wall|cpu] [--jax-python PATH] [--json]``.
``--tiny`` shrinks every size (the smoke test in ``tests/test_bench_peers.py``); ``--json``
prints one JSON line per case (``{"bench": "layers", "case": ..., "seconds": ...}``; a
failed check has ``"seconds": null`` and a ``"note"``) instead of the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import format_seconds, print_environment, time_samples  # noqa: E402

import symnn  # noqa: E402

#: Tolerances of the gradient check, relative to max|g_symnn|.
TOL64, TOL32 = 1e-9, 1e-3


@dataclass(frozen=True)
class Sizes:
    """Sizes of both workloads."""

    L: int = 128        # conv input length
    C: int = 16         # conv channels
    k: int = 5          # conv kernel
    T: int = 50         # RNN sequence length
    n_in: int = 4       # RNN input width
    H: int = 64         # RNN hidden width
    n_out: int = 4      # outputs of the final Dense layer


TINY = Sizes(L=12, C=3, k=3, T=4, n_in=2, H=5, n_out=3)


# ------------------------------------------------------------------------------------------
# the networks, in symnn and in torch
# ------------------------------------------------------------------------------------------


def conv_net(s: Sizes) -> symnn.Network:
    """The Conv1D workload (softmax / cross-entropy)."""
    flat = s.C * (s.L - 2 * (s.k - 1))
    return symnn.Network([symnn.Conv1D(1, s.C, s.k, length=s.L), "relu",
                          symnn.Conv1D(s.C, s.C, s.k), "relu", symnn.Flatten(),
                          symnn.Dense(flat, s.n_out), "softmax"],
                         loss="cross_entropy", name=f"bench_conv_{s.L}_{s.C}_{s.k}")


def rnn_net(s: Sizes) -> symnn.Network:
    """The RNN workload (tanh recurrence, last state, linear output, MSE)."""
    return symnn.Network([symnn.RNN(s.n_in, s.H, length=s.T), symnn.Dense(s.H, s.n_out)],
                         loss="mse", name=f"bench_rnn_{s.T}_{s.n_in}_{s.H}")


def split_theta(net, theta: np.ndarray) -> dict[str, np.ndarray]:
    """symnn's flat θ as ``{name: array}`` in the declared shapes (row-major)."""
    out, off = {}, 0
    for name, shape in net.param_shapes:
        n = int(np.prod(shape))
        out[name] = theta[off:off + n].reshape(shape)
        off += n
    assert off == theta.size, (off, theta.size)
    return out


def problem(kind: str, s: Sizes, B: int, seed: int = 0):
    """Inputs ``X`` (symnn's shape) and targets ``Y`` (one-hot for conv, real for rnn)."""
    rng = np.random.default_rng(seed + B)
    if kind == "conv":
        X = rng.standard_normal((B, 1, s.L))
        Y = np.eye(s.n_out)[rng.integers(0, s.n_out, B)]
    else:
        X = rng.standard_normal((B, s.T, s.n_in))
        Y = rng.standard_normal((B, s.n_out))
    return X, Y


def torch_module(kind: str, s: Sizes, params: dict[str, np.ndarray], dtype):
    """A torch module computing the workload's logits / prediction, weights copied in."""
    import torch

    nn = torch.nn

    def t(a):
        return torch.tensor(np.ascontiguousarray(a), dtype=dtype)

    if kind == "conv":
        c1, c2 = nn.Conv1d(1, s.C, s.k, dtype=dtype), nn.Conv1d(s.C, s.C, s.k, dtype=dtype)
        lin = nn.Linear(s.C * (s.L - 2 * (s.k - 1)), s.n_out, dtype=dtype)
        mod = nn.Sequential(c1, nn.ReLU(), c2, nn.ReLU(), nn.Flatten(), lin)
        pairs = [(c1.weight, "W1"), (c1.bias, "b1"), (c2.weight, "W2"), (c2.bias, "b2"),
                 (lin.weight, "W3"), (lin.bias, "b3")]
    else:
        rnn = nn.RNN(s.n_in, s.H, nonlinearity="tanh", batch_first=True, dtype=dtype)
        lin = nn.Linear(s.H, s.n_out, dtype=dtype)
        mod = _RNNHead(rnn, lin)
        pairs = [(rnn.weight_ih_l0, "W_xh1"), (rnn.weight_hh_l0, "W_hh1"),
                 (rnn.bias_ih_l0, "b1"), (lin.weight, "W2"), (lin.bias, "b2")]
    with torch.no_grad():
        for p, name in pairs:
            p.copy_(t(params[name]))
        if kind == "rnn":  # symnn has one bias: torch's second is 0 and not a parameter
            rnn.bias_hh_l0.zero_()
            rnn.bias_hh_l0.requires_grad_(False)
    return mod, [p for p, _ in pairs]


def _rnn_head_class():
    import torch

    class RNNHead(torch.nn.Module):
        def __init__(self, rnn, lin):
            super().__init__()
            self.rnn, self.lin = rnn, lin

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.lin(out[:, -1])

    return RNNHead


def _RNNHead(rnn, lin):  # noqa: N802 - a class made on first use (torch imported lazily)
    return _rnn_head_class()(rnn, lin)


def torch_candidate(kind, s, params, X, Y, dtype):
    """``thunk() -> flat gradient (numpy, float64)`` of the torch peer in ``dtype``."""
    import torch

    mod, plist = torch_module(kind, s, params, dtype)
    Xt = torch.tensor(X, dtype=dtype)
    Yt = torch.tensor(Y, dtype=dtype)

    def loss():
        out = mod(Xt)
        if kind == "conv":
            return -(Yt * torch.log_softmax(out, dim=1)).sum(dim=1).mean()
        return ((out - Yt) ** 2).mean(dim=1).mean()

    def thunk():
        for p in plist:
            p.grad = None
        loss().backward()
        return torch.cat([p.grad.reshape(-1) for p in plist])

    return thunk, lambda: thunk().double().numpy()


def jax_candidate(kind, s, params, X, Y):
    """The JAX peer (float64, jit of value_and_grad) or ``None`` when JAX is absent."""
    try:
        import jax  # noqa: F401
    except ImportError:
        return None
    from _layers_jax import value_and_grad

    return value_and_grad(kind, s.H, params, X, Y)


class RemoteJax:
    """The JAX peer in another interpreter (``--jax-python PATH``): a worker running
    ``benchmarks/_layers_jax.py`` (JSON lines), timed inside the worker, one request per
    round (see :func:`interleaved`)."""

    def __init__(self, python: str):
        import subprocess

        self.dir = tempfile.mkdtemp(prefix="symnn-layers-jax-")
        self.proc = subprocess.Popen([python, str(HERE / "_layers_jax.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=str(HERE))

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the JAX worker ({self.proc.args[0]}) stopped")
        return json.loads(line)

    def candidate(self, kind, s, params, X, Y):
        """``(remote, grad)`` for :func:`case_row`: the worker set up for this case."""
        data, grad = Path(self.dir) / "case.npz", Path(self.dir) / "grad.npy"
        np.savez(data, X=X, Y=Y, **{f"p_{k}": v for k, v in params.items()})
        self.ask(op="setup", kind=kind, H=s.H, data=str(data), grad=str(grad))
        return self, lambda: np.load(grad)

    def calibrate(self, min_time: float) -> int:
        return int(self.ask(op="calibrate", min_time=min_time)["number"])

    def per_call(self, number: int, clock: str = "wall") -> float:
        return float(self.ask(op="time", number=number, clock=clock)["seconds"])

    def close(self) -> None:
        import shutil

        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# checking and interleaved timing
# ------------------------------------------------------------------------------------------


def rel_err(a, b) -> float:
    """``max|a − b| / max|b|``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


#: ``--clock``: wall time, or the process's CPU time (all its threads), which a loaded
#: machine's other processes do not inflate (single-threaded candidates: ``--threads 1``).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved(thunks: dict[str, Callable[[], object]], repeat: int,
                min_time: float, clock: str = "wall") -> dict[str, float]:
    """Median seconds per call of every thunk, the ``repeat`` rounds interleaved."""
    def calibrate(f):  # a RemoteJax times itself, in its own process
        return f.calibrate(min_time) if isinstance(f, RemoteJax) else time_samples(
            f, repeat=1, min_time=min_time)[1]

    def sample(f, number):
        if isinstance(f, RemoteJax):
            return [f.per_call(number, clock)]
        if clock == "wall":
            return time_samples(f, repeat=1, number=number)[0]
        t0 = CLOCKS[clock]()
        for _ in range(number):
            f()
        return [(CLOCKS[clock]() - t0) / number]

    numbers = {n: calibrate(f) for n, f in thunks.items()}
    samples: dict[str, list[float]] = {n: [] for n in thunks}
    for _ in range(repeat):
        for name, fn in thunks.items():
            samples[name].extend(sample(fn, numbers[name]))
    return {n: statistics.median(v) for n, v in samples.items()}


def case_row(kind, s, net, model, B, repeat, min_time, log, remote=None,
             clock: str = "wall") -> dict:
    """Check every peer at batch ``B``, then time the ones that agree: ``{column: seconds or
    note}`` plus ``errors`` ``{column: rel err}``."""
    theta = model.init(0)
    X, Y = problem(kind, s, B)
    L0, g_ref = model.loss_and_grad(theta, X, Y)
    params = split_theta(net, theta)
    cands: dict[str, tuple[Callable, Callable, float]] = {
        "symnn": (lambda: model.loss_and_grad(theta, X, Y),
                  lambda: model.loss_and_grad(theta, X, Y)[1], 0.0)}
    try:
        import torch
        for col, dt, tol in (("torch f64", torch.float64, TOL64),
                             ("torch f32", torch.float32, TOL32)):
            thunk, grad = torch_candidate(kind, s, params, X, Y, dt)
            cands[col] = (thunk, grad, tol)
    except ImportError:
        log("torch not importable: its columns are skipped")
    jx = (remote.candidate(kind, s, params, X, Y) if remote is not None
          else jax_candidate(kind, s, params, X, Y))
    if jx is not None:
        cands["jax"] = (*jx, TOL64)
    row: dict = {"errors": {}}
    ok = {}
    for col, (thunk, grad, tol) in cands.items():
        err = 0.0 if col == "symnn" else rel_err(grad(), g_ref)
        row["errors"][col] = err
        if err <= tol:
            ok[col] = thunk
        else:
            row[col] = f"WRONG (rel err {err:.1e})"
    row.update(interleaved(ok, repeat, min_time, clock))
    return row


def compile_model(kind, s, net, reuse_cache: bool):
    """``(model, seconds)``: derive + generate + compile + the first gradient call (B = 2),
    in a fresh kernel cache unless ``reuse_cache``."""
    X, Y = problem(kind, s, 2)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        model = net.compile() if reuse_cache else net.compile(cache_dir=d)
        model.loss_and_grad(model.init(0), X, Y)
        return model, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------

COLUMNS = ("symnn", "torch f64", "torch f32", "jax")
CLOCK_USED = ["wall"]  # what print_rows says it measured


def print_rows(title: str, rows: dict[str, dict], jax_note: str | None) -> None:
    """Medians, ``symnn / peer`` ratios and the check's relative errors."""
    cols = [c for c in COLUMNS if any(c in r for r in rows.values())]
    body = []
    for label, r in rows.items():
        cells = [label]
        for c in cols:
            v = r.get(c)
            if isinstance(v, float):
                sym = r.get("symnn")
                ratio = f" ({sym / v:.3g}x)" if c != "symnn" and isinstance(sym, float) else ""
                cells.append(format_seconds(v) + ratio)
            else:
                cells.append("-" if v is None else str(v))
        body.append(cells)
    header = [""] + cols
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    rule = "-" * (sum(widths) + 3 * (len(widths) - 1))
    print(f"\n{title}")
    print(f"(median {'CPU ' if CLOCK_USED[0] == 'cpu' else ''}time per loss+gradient call; "
          "(Nx) = symnn time / peer time, > 1: symnn slower)")
    print(rule)
    print(" | ".join(h.rjust(w) for h, w in zip(header, widths)))
    print(rule)
    for line in body:
        print(" | ".join(c.rjust(w) for c, w in zip(line, widths)))
    print(rule)
    for label, r in rows.items():
        errs = ", ".join(f"{c} {e:.1e}" for c, e in r["errors"].items() if c != "symnn")
        print(f"  {label}: gradient max rel diff vs symnn: {errs}")
    if jax_note:
        print(f"  {jax_note}")


def emit_json(kind: str, rows: dict[str, dict], compile_s: float) -> None:
    print(json.dumps({"bench": "layers", "case": f"{kind} compile", "seconds": compile_s}))
    for label, r in rows.items():
        for col in COLUMNS:
            if col not in r:
                continue
            v = r[col]
            rec = {"bench": "layers", "case": f"{kind} {label} {col}",
                   "seconds": v if isinstance(v, float) else None,
                   "rel_err": r["errors"].get(col)}
            if not isinstance(v, float):
                rec["note"] = str(v)
            print(json.dumps(rec), flush=True)


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 rounds of >= 5 ms each")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.02)
    p.add_argument("--T", type=int, default=None, help="RNN sequence length (default 50)")
    p.add_argument("--batches", default="1,32,256")
    p.add_argument("--only", choices=("conv", "rnn"), default=None)
    p.add_argument("--reuse-cache", action="store_true",
                   help="compile into the usual kernel cache (default: a fresh one)")
    p.add_argument("--threads", type=int, default=None,
                   help="limit BLAS/OpenMP pools (threadpoolctl), torch and XLA to N threads")
    p.add_argument("--json", action="store_true",
                   help="print one JSON line per case instead of the tables")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                   help="wall time (default) or the process's CPU time, which other "
                        "processes on a loaded machine do not inflate")
    p.add_argument("--jax-python", default=None, metavar="PATH",
                   help="an interpreter with JAX (and NumPy): the JAX column runs there, in a "
                        "worker (benchmarks/_layers_jax.py), when this one has no JAX")
    return p.parse_args(argv)


def _limit_threads(n: int, log) -> None:
    import os

    if n == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1")
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log("threadpoolctl not installed: BLAS thread count left unchanged")
        return
    _limit_threads.limiter = threadpool_limits(limits=n)


def _jax_peer(args, log) -> tuple:
    """``(RemoteJax or None, note or None)``: JAX in this process when importable, else in
    ``--jax-python``'s worker, else no JAX column (the note says why)."""
    try:
        import jax  # noqa: F401
        return None, None
    except ImportError:
        pass
    if args.jax_python:
        import subprocess

        probe = subprocess.run([args.jax_python, "-c",
                                "import jax, numpy; print(jax.__version__)"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            note = f"jax {probe.stdout.strip()}: timed in a worker process of {args.jax_python}"
            log(note)
            return RemoteJax(args.jax_python), note
        note = f"jax: not importable by {args.jax_python}, its column is skipped"
    else:
        note = ("jax: not importable in this environment, its column is skipped "
                "(--jax-python PATH runs it in another interpreter)")
    log(note)
    return None, note


def main(argv=None) -> dict:
    """Run the benchmark; returns ``{kind: {"compile": s, "rows": {...}}}``."""
    args = _parse(argv)
    log = (lambda *a: None) if args.json else print
    repeat, min_time = (3, 0.005) if args.quick else (args.repeat, args.min_time)
    if args.tiny:
        repeat, min_time = 2, 0.001
    s = TINY if args.tiny else Sizes()
    if args.T is not None:
        s = replace(s, T=args.T)
    batches = [int(b) for b in args.batches.split(",")]
    t_start = time.perf_counter()
    if args.threads is not None:
        _limit_threads(args.threads, log)
    remote, jax_note = _jax_peer(args, log)
    CLOCK_USED[0] = args.clock
    if args.json:
        print(json.dumps({"bench": "layers", "symnn": symnn.__file__}), flush=True)
    results = {}
    kinds = [args.only] if args.only else ["conv", "rnn"]
    for kind in kinds:
        net = conv_net(s) if kind == "conv" else rnn_net(s)
        model, compile_s = compile_model(kind, s, net, args.reuse_cache)
        what = (f"Conv1D net: input (1, {s.L}), 2 x Conv1D({s.C} ch, k={s.k}) + relu, Flatten, "
                f"Dense({s.n_out}), softmax/CE, {net.n_params} params" if kind == "conv" else
                f"RNN net: input (T={s.T}, {s.n_in}), RNN(H={s.H}, tanh), Dense({s.n_out}), "
                f"MSE, {net.n_params} params")
        log(f"\n{kind}: symnn derive + compile + first call"
            f"{' (kernel cache reused)' if args.reuse_cache else ' (fresh kernel cache)'}: "
            f"{compile_s:.2f} s")
        rows = {f"B={B}": case_row(kind, s, net, model, B, repeat, min_time, log, remote,
                                   args.clock) for B in batches}
        results[kind] = {"compile": compile_s, "rows": rows, "title": what}
        if args.json:
            emit_json(kind, rows, compile_s)
        else:
            print_rows(what, rows, jax_note)
    if remote is not None:
        remote.close()
    if not args.json:
        print()
        print_environment()
        print(f"\n(total benchmark wall time {time.perf_counter() - t_start:.0f} s)")
    return results


if __name__ == "__main__":
    main()
