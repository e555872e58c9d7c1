"""The full Hessian and its dense spectrum, symnn against JAX, paired (issue 16).

The 193-parameter 10-16-1 tanh / MSE network at B = 64 (``bench_peers_only.HESS_SIZES`` and
``HESS_BATCH``, the issue's workload):

* ``hessian`` — ``model.hessian(θ, X, Y)`` against ``jax.jit(jax.hessian(loss))``;
* ``spectrum`` — ``symnn.analysis.hessian_spectrum(model, θ, X, Y)`` (every eigenvalue of
  the dense exact Hessian) against ``jax.jit`` of ``eigvalsh(jax.hessian(loss))``.

JAX runs in another interpreter (``--jax-python``, a venv with JAX; the server of
``_jax_remote.py``), its samples alternating with symnn's so that both see the same load.
Both answers are checked against the NumPy peer (``numpy_hessian``) before timing.
``--threads N`` sets BLAS, Numba and XLA to N threads (symnn's dense Hessian splits its
work over Numba's thread count); run it once with 1 and once with 2.

Run: ``python benchmarks/bench_hessian.py --jax-python /path/to/venv/bin/python
[--threads 1] [--rounds 15] [--min-time 0.02]``
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jax-python", required=True)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--min-time", type=float, default=0.02)
    args = p.parse_args(argv)
    import bench_peers_only as bp

    if args.threads is not None:
        bp._limit_threads(args.threads)
        import numba  # the dense Hessian splits its work over Numba's thread count

        numba.set_num_threads(max(1, min(args.threads, numba.config.NUMBA_NUM_THREADS)))
    import _machine
    import numpy as np
    import peers
    from _jax_remote import JaxRemote

    import symnn
    from symnn.analysis import hessian_spectrum

    _machine.print_machine()
    sizes, B = bp.HESS_SIZES, bp.HESS_BATCH
    model = symnn.mlp(sizes, activation="tanh", loss="mse", name="bench_hess").compile()
    theta, X, Y = peers.random_problem(sizes, B, loss="mse", seed=B)
    H_ref = peers.numpy_hessian(theta, X, Y, sizes, loss="mse")
    ev_ref = np.linalg.eigvalsh(H_ref)
    scale = np.abs(H_ref).max()
    err_h = np.abs(model.hessian(theta, X, Y) - H_ref).max() / scale
    err_e = np.abs(hessian_spectrum(model, theta, X, Y) - ev_ref).max() / np.abs(ev_ref).max()
    if not (err_h < 1e-10 and err_e < 1e-10):
        raise SystemExit(f"symnn differs from the NumPy peer: Hessian {err_h:.1e}, "
                         f"eigenvalues {err_e:.1e}")
    remote = JaxRemote(args.jax_python, sizes, args.threads, loss="mse")
    print(f"P = {model.n_params}, B = {B}, JAX {remote.version}, threads {args.threads}, "
          f"{args.rounds} paired rounds")
    try:
        for kind, own in (("hessian", lambda: model.hessian(theta, X, Y)),
                          ("eig", lambda: hessian_spectrum(model, theta, X, Y))):
            mine, jax_t = remote.paired(own, B, args.rounds, args.min_time, kind)
            if isinstance(jax_t, str):
                print(f"{kind:8s} symnn {mine * 1e3:8.3f} ms   jax: {jax_t}")
                continue
            print(f"{kind:8s} symnn {mine * 1e3:8.3f} ms   jax {jax_t * 1e3:8.3f} ms   "
                  f"symnn / jax = {mine / jax_t:.2f}x")
    finally:
        remote.close()
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
