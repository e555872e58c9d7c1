"""Analysis benchmark: Hessian spectra with symnn's exact kernels beside JAX.

In one run (medians of repeats):

* the full spectrum of the 193-parameter 10-16-1 tanh/MSE net at batch 64 — symnn's dense
  exact Hessian + ``eigvalsh`` against ``jnp.linalg.eigvalsh(jax.hessian(loss))`` (jitted);
* the 20 extreme eigenvalues of a ~26k-parameter 64-128-128-10 tanh/softmax-CE MLP at
  batch 256 — Lanczos (``scipy.sparse.linalg.eigsh``) over symnn's exact Hessian-vector
  product against the same Lanczos over JAX's jitted ``jvp(grad)``.

JAX is optional; its column is skipped with a note when it is not installed.

Run: ``python benchmarks/bench_analysis.py [--quick]``
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import scipy.sparse.linalg as sla

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _timing import median_time  # noqa: E402
from peers import peer_status, random_problem  # noqa: E402

import symnn  # noqa: E402
from symnn.analysis import hessian_spectrum  # noqa: E402


def _lanczos(matvec, P, k, seed=0):
    op = sla.LinearOperator((P, P), matvec=matvec, dtype=float)
    v0 = np.random.default_rng(seed).normal(size=P)
    return np.sort(sla.eigsh(op, k=k, which="BE", v0=v0, tol=1e-8,
                             return_eigenvectors=False))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    repeat = 3 if quick else 5
    jax_ok = peer_status().get("jax") is None
    rows = []

    # 1. full spectrum, 193 parameters
    sizes = [10, 16, 1]
    theta, X, Y = random_problem(sizes, 64, loss="mse", seed=0)
    model = symnn.mlp(sizes, activation="tanh", loss="mse").compile()
    ev = hessian_spectrum(model, theta, X, Y)
    t_symnn = median_time(lambda: hessian_spectrum(model, theta, X, Y), repeat=repeat)
    row = {"work": "full spectrum, 10-16-1 (P=193), B=64", "symnn": t_symnn}
    if jax_ok:
        import jax
        import jax.numpy as jnp
        from peers import make_jax_hessian, to_jax

        hess = make_jax_hessian(sizes, loss="mse")
        tj, Xj, Yj = to_jax(theta, X, Y)
        eig = jax.jit(lambda t, x, y: jnp.linalg.eigvalsh(hess(t, x, y)))
        evj = np.asarray(eig(tj, Xj, Yj))
        assert np.allclose(np.sort(evj), ev, atol=1e-9 * np.max(np.abs(ev)))
        row["jax"] = median_time(lambda: eig(tj, Xj, Yj).block_until_ready(), repeat=repeat)
    rows.append(row)

    # 2. 20 extreme eigenvalues, ~26k parameters
    sizes = [64, 128, 128, 10]
    theta, X, Y = random_problem(sizes, 256, loss="ce", seed=0)
    model = symnn.mlp(sizes, activation="tanh", output="softmax",
                      loss="cross_entropy").compile()
    P = model.n_params
    k = 20
    ev = hessian_spectrum(model, theta, X, Y, k=k, tol=1e-8)
    t_symnn = median_time(lambda: hessian_spectrum(model, theta, X, Y, k=k, tol=1e-8),
                          repeat=max(1, repeat - 2), number=1)
    row = {"work": f"{k} extreme eigenvalues, 64-128-128-10 (P={P}), B=256", "symnn": t_symnn}
    if jax_ok:
        from peers import make_jax_hvp, to_jax

        hvp = make_jax_hvp(sizes, loss="ce")
        tj, Xj, Yj = to_jax(theta, X, Y)

        def mv(v):
            return np.asarray(hvp(tj, Xj, Yj, to_jax(np.ascontiguousarray(v))[0]))

        evj = _lanczos(mv, P, k)
        assert np.allclose(evj, ev, rtol=1e-6, atol=1e-8)
        row["jax"] = median_time(lambda: _lanczos(mv, P, k), repeat=max(1, repeat - 2),
                                 number=1)
    rows.append(row)

    print("Hessian spectra: median seconds per call" + ("" if jax_ok else
                                                        " (JAX not installed: column skipped)"))
    print(f"{'work':58s} {'symnn':>10s} {'jax':>10s} {'jax/symnn':>10s}")
    for r in rows:
        j = r.get("jax")
        print(f"{r['work']:58s} {r['symnn']:10.4f} "
              + (f"{j:10.4f} {j / r['symnn']:10.2f}" if j else f"{'-':>10s} {'-':>10s}"))


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
