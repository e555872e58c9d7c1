"""Curvature benchmark: a 100-probe Hutchinson trace of the Hessian, symnn beside PyTorch.

The ~26k-parameter 64-128-128-10 tanh/softmax-CE MLP at batch 256 (float64), in one run,
medians of repeats:

* symnn — ``symnn.analysis.hutchinson_trace(model, θ, X, Y, probes=100)``: Rademacher
  probes through the batched exact HVP kernel (``block`` directions per call);
* PyTorch — the same 100 probes through ``torch.func.vmap`` of forward-over-reverse
  ``jvp(grad(loss))``, and through a Python loop of single HVPs;
* a 10-probe × 30-step spectral density (SLQ) by symnn, for scale.

Both sides use the very same probe vectors, so the two traces must agree to rounding; the
script checks that before it times anything.  PyTorch is optional: its columns are skipped
with a note when it is not installed.

Run: ``python benchmarks/bench_curvature.py [--quick]``
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _timing import median_time  # noqa: E402
from peers import peer_status, random_problem  # noqa: E402

import symnn  # noqa: E402
from symnn.analysis import hutchinson_trace, spectral_density  # noqa: E402
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


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    repeat = 3 if quick else 5
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


if __name__ == "__main__":
    main()
