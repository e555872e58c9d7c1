"""What a user's call costs: symnn's public methods against the hand-written Numba kernel,
interleaved in one process (issue 16).

Cases (64-128-128-10 tanh / softmax-cross-entropy MLP, float64, one-hot targets):

* ``grad B=…`` — ``model.loss_and_grad(theta, X, Y)`` (the public method: argument checks,
  a fresh gradient array), the generated kernel called directly (``kernel``), and the
  hand-written Numba + BLAS kernel of ``peers.py`` (``hand``), at B = 1, 32, 256;
* ``hvp B=256`` — ``model.hvp(theta, v, X, Y)`` beside ``model.loss_and_grad`` (the target
  is HVP ≤ 2 × own gradient);
* ``epoch B=…`` — one Adam epoch over the 1797 digits (pixels / 16, fresh shuffle, L2 on the
  weights), mini-batches of 32 and 256: ``hand`` is a hand-written fused Numba epoch
  (:func:`_hand_epoch`: gather, the hand kernel's forward / backward on preallocated
  buffers, Adam in place; no allocation per batch), ``kernel`` symnn's compiled epoch
  (``EpochKernel.run``, what ``fit`` calls once per epoch), ``fit`` the public
  ``symnn.train.fit(..., epochs=5)`` per epoch (history, per-array gradient norms, the
  shuffle).  Needs scikit-learn for the data (else the case is skipped).

Each round times every candidate of a case once (back-to-back calls for a short
``min_time``), candidates in turn, so load drifts hit them alike; the table reports the
median over rounds of each candidate's time and of its per-round ratio to the reference
(``hand`` for the gradient, the public gradient for the HVP).  Every candidate is checked
against the NumPy peer first.

Run: ``python benchmarks/bench_callpath.py [--rounds N] [--threads N] [--cpu-time]
[--no-epoch | --epoch-only]`` (``--threads 1`` for steadier numbers on a shared machine: it sets BLAS and
Numba to N threads; ``--cpu-time`` times on the process's CPU clock, which a loaded
machine's descheduling does not inflate).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--min-time", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-epoch", action="store_true", help="skip the digits epochs")
    p.add_argument("--epoch-only", action="store_true",
                   help="only the digits epochs (skip the gradient and HVP cases)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time on the process's CPU clock (time.process_time) instead of the "
                        "wall clock: steadier on a loaded machine, meaningful with --threads 1")
    return p.parse_args(argv)


def _grad_case(model, B):
    import numpy as np
    import peers

    sizes = [64, 128, 128, 10]
    theta, X, Y = peers.random_problem(sizes, B, loss="ce", seed=B)
    _, g_ref = peers.numpy_loss_and_grad(theta, X, Y, sizes, loss="ce")
    hand = peers.make_numba_loss_and_grad(sizes, loss="ce")
    kern = model.kernels["loss_and_grad"]
    Xf, Yf = X.reshape(-1), Y.reshape(-1)
    work = np.empty(model.generated.work_size("loss_and_grad", B))

    def raw():
        g = np.empty(model.n_params)
        kern(theta, Xf, Yf, g, work)
        return g

    cands = {"hand": lambda: hand(theta, X, Y)[1],
             "public": lambda: model.loss_and_grad(theta, X, Y)[1],
             "kernel": raw}
    for name, f in cands.items():
        err = np.max(np.abs(f() - g_ref)) / np.max(np.abs(g_ref))
        assert err < 1e-10, (name, err)
    return cands


def _hvp_case(model, B=256):
    import numpy as np
    import peers

    sizes = [64, 128, 128, 10]
    theta, X, Y = peers.random_problem(sizes, B, loss="ce", seed=1)
    v = np.random.default_rng(2).standard_normal(theta.size)
    hv_ref = peers.numpy_hvp(theta, X, Y, sizes, v, loss="ce")
    err = np.max(np.abs(model.hvp(theta, v, X, Y) - hv_ref)) / np.max(np.abs(hv_ref))
    assert err < 1e-8, err
    return {"gradient": lambda: model.loss_and_grad(theta, X, Y),
            "hvp": lambda: model.hvp(theta, v, X, Y)}


def _hand_epoch_fn():
    """The hand-written fused epoch, compiled (peers' Numba forward / backward pieces)."""
    from _peers_numba import (_nb_delta_blas, _nb_delta_loops, _nb_forward, _nb_param_grad,
                              _output_ce)
    import numpy as np
    from numba import njit

    @njit(error_model="numpy")
    def epoch(theta, Mst, Vst, t, lam, X, Y, perm, bs, lr, b1, b2, eps, sizes, woff, aoff,
              end, work, grad, Xb, Yb):
        n, n_in = X.shape
        n_out = Y.shape[1]
        L = sizes.size - 1
        total = 0.0
        for start in range(0, n, bs):
            m = min(start + bs, n) - start
            Xm = Xb[:m]
            Ym = Yb[:m]
            for r in range(m):
                j = perm[start + r]
                for c in range(n_in):
                    Xm[r, c] = X[j, c]
                for c in range(n_out):
                    Ym[r, c] = Y[j, c]
            D = _nb_forward(theta, Xm, sizes, woff, aoff, work, m > 4)
            total += _output_ce(D, Ym) * m
            for l in range(L, 0, -1):
                no = sizes[l]
                ni = sizes[l - 1]
                o = woff[l]
                A = work[aoff[l - 1]:aoff[l - 1] + m * ni].reshape(m, ni) if l > 1 else Xm
                _nb_param_grad(D, A, grad[o:o + no * ni].reshape(no, ni),
                               grad[o + no * ni:o + no * (ni + 1)], m > 4)
                if l == 1:
                    break
                W = theta[o:o + no * ni].reshape(no, ni)
                if m > 4:
                    _nb_delta_blas(D, W, A, work[end:end + m * ni].reshape(m, ni))
                else:
                    _nb_delta_loops(D, W, A, work[end:end + ni])
                D = A
            t += 1
            c1 = lr / (1.0 - b1 ** t)
            c2 = 1.0 / (1.0 - b2 ** t)
            for q in range(theta.size):
                g = grad[q] + lam[q] * theta[q]
                mq = b1 * Mst[q] + (1.0 - b1) * g
                vq = b2 * Vst[q] + (1.0 - b2) * g * g
                Mst[q] = mq
                Vst[q] = vq
                theta[q] -= c1 * mq / (np.sqrt(vq * c2) + eps)
        return total, t

    return epoch


def _epoch_case(bs, X, y):
    import numpy as np
    from _peers_numba import _offsets

    import symnn
    from symnn.train import Adam, fit
    from symnn.train import epoch_kernel as ek
    from symnn.train.session import decay_vector, param_bounds

    sizes = np.array([64, 128, 128, 10], np.int64)
    model = symnn.mlp(list(sizes), activation="tanh", output="softmax",
                      loss="cross_entropy", name="digits").compile()
    opt = Adam(1e-3, weight_decay=1e-4 / bs, decay="weights")
    Y = np.eye(10)[y]
    P, n = model.n_params, X.shape[0]
    lam = decay_vector(model, opt)
    rng = np.random.default_rng(0)
    # symnn's compiled epoch, as fit calls it
    kern = ek.compile_epoch(model, opt)
    upd = ek.compile_update(opt, model.dtype)
    S, scal = upd.init_state(P)
    bufs = np.empty((2, P))
    bufs[:] = model.init(0)
    bounds = param_bounds(model)[1]
    # λ per parameter array, once per fit as fit does (a per-coordinate λ before issue 16)
    lam_arrays = ek.decay_per_array(lam, bounds) if hasattr(ek, "decay_per_array") else lam
    work = np.empty(ek.work_size(model, bs))
    state = {"cur": 0}

    def kernel():
        gn = np.zeros(bounds.size - 1)
        _, _, status, state["cur"] = kern.run(bufs, state["cur"], X, Y, rng.permutation(n),
                                              bs, lam_arrays, S, scal, upd.hp, bounds, gn,
                                              work)
        assert status == 0

    # the hand-written epoch
    hand_fn = _hand_epoch_fn()
    woff, aoff, end, nmax = _offsets(sizes, bs)
    hs = {"theta": model.init(0), "M": np.zeros(P), "V": np.zeros(P), "t": 0}
    hwork, hgrad = np.empty(end + bs * nmax), np.empty(P)
    Xb, Yb = np.empty((bs, 64)), np.empty((bs, 10))

    def hand():
        _, hs["t"] = hand_fn(hs["theta"], hs["M"], hs["V"], hs["t"], lam, X, Y,
                             rng.permutation(n), bs, 1e-3, 0.9, 0.999, 1e-8, sizes, woff,
                             aoff, end, hwork, hgrad, Xb, Yb)

    def public():
        fit(model, X, y, opt, epochs=5, batch_size=bs, seed=0, progress=False)

    return {"hand": hand, "kernel": kernel, "fit": public}, {"fit": 5}


def _digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    import numpy as np

    X, y = load_digits(return_X_y=True)
    return np.ascontiguousarray(X / 16.0), y.astype(np.int64)


def _seconds(f, min_time, clock):
    """Seconds per call of ``f``: back-to-back calls for at least ``min_time`` on ``clock``
    (after one untimed warm-up call)."""
    f()
    n, t0 = 0, clock()
    while True:
        f()
        n += 1
        t = clock() - t0
        if t >= min_time:
            return t / n


def run_case(cands, reference, rounds, min_time, per=None, clock=time.perf_counter):
    """{name: (median seconds, median per-round ratio to ``reference``)}; ``per[name]``
    divides that candidate's time (epochs per call)."""
    per = per or {}
    times = {k: [] for k in cands}
    for _ in range(rounds):
        for k, f in cands.items():
            times[k].append(_seconds(f, min_time, clock) / per.get(k, 1))
    out = {}
    for k, ts in times.items():
        ratios = [t / r for t, r in zip(ts, times[reference])]
        out[k] = (statistics.median(ts), statistics.median(ratios))
    return out


def main(argv=None) -> None:
    args = _parse(argv)
    if args.threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import _machine

    import symnn

    _machine.print_machine()
    print(f"symnn from {symnn.__file__}; {args.rounds} interleaved rounds")
    model = symnn.mlp([64, 128, 128, 10], activation="tanh", output="softmax",
                      loss="cross_entropy", name="bench_mlp").compile()
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(f"clock: {clock.__name__}")
    rows = [] if args.epoch_only else [
        (f"grad B={B}", run_case(_grad_case(model, B), "hand", args.rounds, args.min_time,
                                 clock=clock)) for B in (1, 32, 256)]
    if not args.epoch_only:
        rows.append(("hvp B=256", run_case(_hvp_case(model), "gradient", args.rounds,
                                           args.min_time, clock=clock)))
    data = None if args.no_epoch else _digits()
    for bs in () if data is None else (32, 256):
        cands, per = _epoch_case(bs, *data)
        for f in cands.values():
            f()  # compile / warm
        rows.append((f"epoch B={bs}", run_case(cands, "hand", max(3, args.rounds // 3),
                                               args.min_time, per, clock)))
    for label, res in rows:
        cells = "  ".join(f"{k} {t * 1e6:9.1f} µs ({r:.2f}x)" for k, (t, r) in res.items())
        print(f"{label:10s}  {cells}")
    print("ratios: median over rounds of time / time of the case's first column")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
