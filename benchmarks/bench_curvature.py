"""Curvature benchmark: diag GGN, K-FAC factors and a 100-probe Hutchinson trace, symnn
beside BackPACK, curvlinops and PyTorch.

The ~26k-parameter 64-128-128-10 tanh/softmax-CE MLP at batch 256 (float64), in one run,
medians of repeats.  First table (issue 14's benchmark), each quantity by each library:

* exact diagonal of the GGN — ``symnn.analysis.diag_ggn``; BackPACK ``DiagGGNExact`` (one
  extended backward pass); curvlinops has no exact diagonal (only stochastic estimators),
  so its cell says so;
* K-FAC factors from the exact loss-Hessian square root ("KFLR", type-2) for the three
  Dense layers — ``kfac_factors(kind="kflr")``; BackPACK ``KFLR``; curvlinops
  ``KFACLinearOperator(fisher_type="type-2").compute_kronecker_factors()``;
* a 100-probe Hutchinson trace of the Hessian — ``hutchinson_trace``; curvlinops
  ``hutchinson_trace(HessianLinearOperator, 100)``; BackPACK has no batched Hessian
  product: 100 calls of its ``hessianfree.hvp.hessian_vector_product`` (double backward).

Before timing, the script checks that every peer's value equals symnn's to 1e-9
(diagonals and factors entrywise, traces on the same probes).  Second table: the Hutchinson
trace against PyTorch's own batched HVPs:

* symnn — ``symnn.analysis.hutchinson_trace(model, θ, X, Y, probes=100)``: Rademacher
  probes through the batched exact HVP kernel (``block`` directions per call);
* PyTorch — the same 100 probes through ``torch.func.vmap`` of forward-over-reverse
  ``jvp(grad(loss))``, and through a Python loop of single HVPs;
* a 10-probe × 30-step spectral density (SLQ) by symnn, for scale.

Both sides use the very same probe vectors, so the two traces must agree to rounding; the
script checks that before it times anything.  PyTorch, BackPACK and curvlinops are
optional: their rows are skipped with a note when they are not installed (install the last
two with ``pip install --no-deps backpack-for-pytorch curvlinops-for-pytorch einops unfoldNd
einconv opt-einsum linear_operator``, keeping the installed torch).  PyTorch runs with
``_peers_torch.TORCH_THREADS`` (2) intra-op threads unless ``--threads N``; symnn's
kernels and its NumPy (with ``OPENBLAS_NUM_THREADS=1``) are single-threaded.

On a shared or small machine ``--threads 1`` gives steadier peer timings: two torch threads
competing with other load can make the peers several times slower than one thread.

Run: ``python benchmarks/bench_curvature.py [--quick] [--threads N]``
"""

from __future__ import annotations

import pathlib
import sys
import warnings

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _timing import median_time  # noqa: E402
from peers import peer_status, random_problem, set_torch_threads  # noqa: E402

import symnn  # noqa: E402
from symnn.analysis import (  # noqa: E402
    diag_ggn,
    hutchinson_trace,
    kfac_factors,
    spectral_density,
)
from symnn.analysis.stochastic import _rademacher  # noqa: E402

SIZES = [64, 128, 128, 10]
BATCH = 256
PROBES = 100


def _torch_traces(theta, X, Y, Z):
    """(vmapped, looped) callables returning PyTorch's Hutchinson trace over the probes Z."""
    import torch
    from _peers_torch import _torch_loss, to_torch
    from torch.func import grad, jvp, vmap

    tt, Xt, Yt, Zt = to_torch(theta, X, Y, Z)
    s = tuple(SIZES)

    def hvp(v):
        return jvp(grad(lambda th: _torch_loss(th, Xt, Yt, s, "ce")), (tt,), (v,))[1]

    batched = vmap(hvp)

    def vmapped():
        return float(torch.einsum("kp,kp->k", Zt, batched(Zt)).mean())

    def looped():
        return float(np.mean([float(z @ hvp(z)) for z in Zt]))

    return vmapped, looped


def _net(theta):
    """The MLP as a float64 ``nn.Sequential`` holding θ (symnn's flat layout: W1, b1, …)."""
    import torch
    from torch import nn

    layers, off = [], 0
    for i in range(len(SIZES) - 1):
        n_in, n_out = SIZES[i], SIZES[i + 1]
        lin = nn.Linear(n_in, n_out, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(theta[off:off + n_in * n_out].reshape(n_out, n_in)))
            lin.bias.copy_(torch.from_numpy(theta[off + n_in * n_out:off + (n_in + 1) * n_out]))
        off += (n_in + 1) * n_out
        layers += [lin, nn.Tanh()]
    return nn.Sequential(*layers[:-1])   # softmax is inside nn.CrossEntropyLoss


def _available(name: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # linear_operator's torch.jit.script notice
            __import__(name)
        return True
    except ImportError:
        return False


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _check(what: str, err: float) -> None:
    if not err < 1e-9:
        raise SystemExit(f"bench_curvature: {what} disagrees with symnn (relative error "
                         f"{err:.2e}); not timing it")


def _backpack_fns(theta, X, c, ours, Z):
    """BackPACK's (diag GGN, KFLR, Hutchinson loop) callables, each checked against symnn."""
    import torch
    from backpack import backpack, extend
    from backpack.extensions import KFLR, DiagGGNExact
    from backpack.hessianfree.hvp import hessian_vector_product
    from torch import nn

    Xt, ct = torch.from_numpy(X), torch.from_numpy(c)
    net, lossf = extend(_net(theta)), extend(nn.CrossEntropyLoss())
    params = list(net.parameters())

    def extended(ext):
        def run():
            net.zero_grad()
            with backpack(ext), warnings.catch_warnings():
                # "Full backward hook is firing …": no input needs a gradient here
                warnings.simplefilter("ignore", UserWarning)
                lossf(net(Xt), ct).backward()
        return run

    dggn, kflr = extended(DiagGGNExact()), extended(KFLR())
    plain = _net(theta)                       # no BackPACK hooks for double backward
    pparams = list(plain.parameters())
    Zt = torch.from_numpy(Z)
    shapes = [p.shape for p in pparams]
    sizes = [p.numel() for p in pparams]

    def trace():
        loss = nn.functional.cross_entropy(plain(Xt), ct)
        total = 0.0
        for z in Zt:
            v = [t.view(s) for t, s in zip(torch.split(z, sizes), shapes)]
            Hv = hessian_vector_product(loss, pparams, v)
            total += float(sum((a * b).sum() for a, b in zip(v, Hv)))
        return total / len(Zt)

    dggn()
    _check("BackPACK DiagGGNExact", _rel(torch.cat([p.diag_ggn_exact.reshape(-1)
                                                    for p in params]).numpy(), ours["diag"]))
    kflr()
    for lin, f in zip([m for m in net if isinstance(m, nn.Linear)], ours["kfac"].values()):
        G, A = (t.numpy() for t in lin.weight.kflr)
        _check("BackPACK KFLR", max(_rel(G, f.G), _rel(A, f.A[:-1, :-1])))
    _check("BackPACK HVP trace", abs(trace() - ours["trace"]) / abs(ours["trace"]))
    return dggn, kflr, trace


def _curvlinops_fns(theta, X, c, ours, Z):
    """curvlinops' (K-FAC factors, Hutchinson trace) callables, checked against symnn."""
    import torch
    from curvlinops import HessianLinearOperator, KFACLinearOperator
    from curvlinops import hutchinson_trace as cl_trace
    from torch import nn

    data = [(torch.from_numpy(X), torch.from_numpy(c))]
    net = _net(theta)
    params = list(net.parameters())

    def kfac():
        op = KFACLinearOperator(net, nn.CrossEntropyLoss(), params, data,
                                fisher_type="type-2", separate_weight_and_bias=False,
                                check_deterministic=False)
        op.compute_kronecker_factors()
        return op

    H = HessianLinearOperator(net, nn.CrossEntropyLoss(), params, data,
                              check_deterministic=False)

    def trace():
        return float(cl_trace(H, PROBES))

    state = kfac().state_dict()
    names = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    for n, f in zip(names, ours["kfac"].values()):
        _check("curvlinops KFAC", max(_rel(state["input_covariances"][n].numpy(), f.A),
                                      _rel(state["gradient_covariances"][n].numpy(), f.G)))
    same = float(np.einsum("pk,kp->", (H @ torch.from_numpy(Z.T)).numpy(), Z)) / len(Z)
    _check("curvlinops Hessian products", abs(same - ours["trace"]) / abs(ours["trace"]))
    return kfac, trace


def _peer_table(model, theta, X, Y, repeat: int) -> None:
    """Issue 14's table: diag GGN, KFLR factors, Hutchinson trace by symnn and the peers."""
    c = Y.argmax(axis=1)
    Z = _rademacher(np.random.default_rng(0), PROBES, model.n_params)   # symnn's probes
    ours = {"diag": diag_ggn(model, theta, X, Y),
            "kfac": kfac_factors(model, theta, X, Y, kind="kflr"),
            "trace": hutchinson_trace(model, theta, X, Y, probes=PROBES, seed=0).value}
    fns = {"symnn": (lambda: diag_ggn(model, theta, X, Y),
                     lambda: kfac_factors(model, theta, X, Y, kind="kflr"),
                     lambda: hutchinson_trace(model, theta, X, Y, probes=PROBES, seed=0))}
    notes = {}
    if _available("backpack"):
        fns["BackPACK"] = _backpack_fns(theta, X, c, ours, Z)
    else:
        notes["BackPACK"] = "not installed"
    if _available("curvlinops"):
        kfac, trace = _curvlinops_fns(theta, X, c, ours, Z)
        fns["curvlinops"] = (None, kfac, trace)
    else:
        notes["curvlinops"] = "not installed"
    what = ("diag GGN (exact)", "K-FAC factors (KFLR / type-2)",
            f"Hutchinson trace, {PROBES} probes")
    times = {lib: [None if f is None else median_time(f, repeat=repeat, number=1) for f in fs]
             for lib, fs in fns.items()}
    print(f"\nCurvature of the 64-128-128-10 tanh/softmax-CE MLP, batch {BATCH}, float64: "
          "median seconds (÷ symnn)")
    libs = list(times)
    print(f"{'':34s}" + "".join(f"{lib:>22s}" for lib in libs))
    for i, name in enumerate(what):
        cells = []
        for lib in libs:
            t, ref = times[lib][i], times["symnn"][i]
            cells.append("no exact diagonal" if t is None else f"{t:.4f} ({t / ref:.2f}×)")
        print(f"{name:34s}" + "".join(f"{cell:>22s}" for cell in cells))
    for lib, why in notes.items():
        print(f"{lib}: {why}; its column skipped")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    repeat = 3 if quick else 5
    if "--threads" in argv:            # torch intra-op threads (before torch is configured)
        set_torch_threads(int(argv[argv.index("--threads") + 1]))
    torch_ok = peer_status().get("torch") is None

    theta, X, Y = random_problem(SIZES, BATCH, loss="ce", seed=0)
    model = symnn.mlp(SIZES, activation="tanh", output="softmax",
                      loss="cross_entropy").compile()
    P = model.n_params
    est = hutchinson_trace(model, theta, X, Y, probes=PROBES, seed=0)
    rows = []
    for block in (32, PROBES):
        t = median_time(lambda b=block: hutchinson_trace(model, theta, X, Y, probes=PROBES,
                                                         seed=0, block=b),
                        repeat=repeat, number=1)
        rows.append((f"symnn hutchinson_trace, block={block}", t))
    print(f"{est}  (P={P}, batch {BATCH})")
    if torch_ok:
        Z = _rademacher(np.random.default_rng(0), PROBES, P)   # the probes symnn drew
        vmapped, looped = _torch_traces(theta, X, Y, Z)
        for name, fn in (("torch.func vmap(jvp(grad))", vmapped),
                         ("torch.func jvp(grad), loop", looped)):
            value = fn()
            assert abs(value - est.value) <= 1e-9 * max(1.0, abs(est.value)), (name, value)
            rows.append((name, median_time(fn, repeat=max(1, repeat - 2), number=1)))
    t_slq = median_time(lambda: spectral_density(model, theta, X, Y, probes=10, steps=30),
                        repeat=max(1, repeat - 2), number=1)

    ref = rows[0][1]
    print(f"\nHutchinson trace of the Hessian, {PROBES} probes, 64-128-128-10 MLP, batch "
          f"{BATCH}: median seconds" + ("" if torch_ok else
                                         " (PyTorch not installed: its rows skipped)"))
    print(f"{'':40s} {'seconds':>10s} {'÷ symnn':>10s}")
    for name, t in rows:
        print(f"{name:40s} {t:10.4f} {t / ref:10.2f}")
    print(f"\nsymnn spectral_density (10 probes × 30 Lanczos steps): {t_slq:.4f} s")
    _peer_table(model, theta, X, Y, repeat)


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
