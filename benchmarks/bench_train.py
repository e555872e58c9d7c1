"""Training speed on digits: milliseconds per epoch, symnn against its peers.

The network of the evidence: 64-128-128-10, tanh hidden layers, softmax cross-entropy,
Adam (lr 1e-3, β = (0.9, 0.999), ε = 1e-8), L2 ``alpha = 1e-4`` on the weights, every
epoch a fresh shuffle of all 1797 digits (pixels scaled to [0, 1]), mini-batches of 32 and
256.  Each contender trains for ``E`` epochs per sample (one process, warm: compilation
and first-call costs are paid before timing); the table shows the median over samples of
(wall time / E) and each row's ratio to symnn float64.

* ``symnn f64`` / ``symnn f32`` — :func:`symnn.train.fit` (one compiled call per epoch);
* ``sklearn`` — ``MLPClassifier(hidden_layer_sizes=(128, 128), activation="tanh",
  solver="adam", alpha=1e-4, batch_size=b, max_iter=E)`` (float64, NumPy);
* ``torch f64`` / ``torch f32`` — PyTorch eager: ``nn.Sequential`` of Linear/Tanh,
  ``CrossEntropyLoss``, ``optim.Adam(weight_decay=…)``, ``zero_grad`` / ``backward`` /
  ``step`` per batch (if torch is installed).

Run::

    python benchmarks/bench_train.py [--fast] [--threads N] [--symnn-only] [--json]

``--threads N`` pins BLAS / OpenMP / torch to N threads (set before NumPy loads); without
it the libraries' defaults apply.  ``--fast`` takes fewer, shorter samples.
``--symnn-only`` times the symnn rows only; ``--json`` prints, instead of the table, one
JSON line per case (``{"bench": "train", "case": "b=32 symnn f64", "seconds": ...}``,
seconds per epoch), which ``benchmarks/compare_revisions.py`` reads.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings


def _threads_from_argv(argv: list[str]) -> int | None:
    if "--threads" in argv:
        n = int(argv[argv.index("--threads") + 1])
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n)
        return n
    return None


THREADS = _threads_from_argv(sys.argv[1:])

import numpy as np  # noqa: E402

ALPHA = 1e-4
LR = 1e-3


def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return np.ascontiguousarray(X / 16.0), y.astype(np.int64)


def _median_per_epoch(run, epochs: int, samples: int) -> float:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        run(epochs)
        times.append((time.perf_counter() - t0) / epochs)
    return statistics.median(times)


def bench_symnn(X, y, batch: int, dtype: str, epochs: int, samples: int) -> float:
    import symnn
    from symnn.train import Adam, fit

    net = symnn.mlp([64, 128, 128, 10], activation="tanh", output="softmax",
                    loss="cross_entropy", name="digits")
    model = net.compile(dtype=dtype)
    opt = Adam(LR, weight_decay=ALPHA / batch, decay="weights")

    def run(e):
        fit(model, X, y, opt, epochs=e, batch_size=batch, seed=0, progress=False)

    run(1)  # compile, load from the cache
    return _median_per_epoch(run, epochs, samples)


def bench_sklearn(X, y, batch: int, epochs: int, samples: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    def run(e):
        clf = MLPClassifier(hidden_layer_sizes=(128, 128), activation="tanh", solver="adam",
                            alpha=ALPHA, batch_size=batch, learning_rate_init=LR, max_iter=e,
                            tol=0.0, n_iter_no_change=10**9, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)

    run(1)
    return _median_per_epoch(run, epochs, samples)


def bench_torch(X, y, batch: int, dtype: str, epochs: int, samples: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    if THREADS is not None:
        torch.set_num_threads(THREADS)
    tdt = torch.float64 if dtype == "float64" else torch.float32
    Xt = torch.tensor(X, dtype=tdt)
    yt = torch.tensor(y)
    n = Xt.shape[0]

    def run(e):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Tanh(),
                                    torch.nn.Linear(128, 128), torch.nn.Tanh(),
                                    torch.nn.Linear(128, 10)).to(tdt)
        decay = [p for name, p in model.named_parameters() if name.endswith("weight")]
        rest = [p for name, p in model.named_parameters() if not name.endswith("weight")]
        opt = torch.optim.Adam([{"params": decay, "weight_decay": ALPHA / batch},
                                {"params": rest, "weight_decay": 0.0}], lr=LR)
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(e):
            perm = torch.randperm(n)
            for start in range(0, n, batch):
                idx = perm[start:start + batch]
                opt.zero_grad()
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()

    run(1)
    return _median_per_epoch(run, epochs, samples)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    fast = "--fast" in argv
    as_json = "--json" in argv
    epochs, samples = (3, 3) if fast else (10, 5)
    X, y = digits()
    if as_json:
        import symnn

        print(json.dumps({"bench": "train", "symnn": symnn.__file__}), flush=True)
    else:
        print("symnn training benchmark: digits 1797×64, 64-128-128-10 tanh, softmax CE, "
              "Adam")
        print(f"  ms per epoch (median of {samples} samples of {epochs} epochs); "
              f"threads: {THREADS if THREADS is not None else 'library defaults'}; "
              f"{os.cpu_count()} CPUs")
    contenders = {
        "symnn f64": lambda b: bench_symnn(X, y, b, "float64", epochs, samples),
        "symnn f32": lambda b: bench_symnn(X, y, b, "float32", epochs, samples),
        "sklearn": lambda b: bench_sklearn(X, y, b, epochs, samples),
        "torch f64": lambda b: bench_torch(X, y, b, "float64", epochs, samples),
        "torch f32": lambda b: bench_torch(X, y, b, "float32", epochs, samples),
    }
    if "--symnn-only" in argv:
        contenders = {k: v for k, v in contenders.items() if k.startswith("symnn")}
    rows: dict[str, dict[int, float | None]] = {}
    for batch in (32, 256):
        for name, run in contenders.items():
            rows.setdefault(name, {})[batch] = run(batch)
    if as_json:
        for name, r in rows.items():
            for batch, t in r.items():
                print(json.dumps({"bench": "train", "case": f"b={batch} {name}",
                                  "seconds": t}), flush=True)
        return rows
    _print_table(rows)
    return rows


def _print_table(rows) -> None:
    ref = rows["symnn f64"]
    head = f"  {'':<10} {'b=32 ms':>9} {'ratio':>7} {'b=256 ms':>9} {'ratio':>7}"
    print(head)
    for name, r in rows.items():
        cells = []
        for batch in (32, 256):
            t = r[batch]
            if t is None:
                cells.append(f"{'—':>9} {'':>7}")
            else:
                cells.append(f"{1e3 * t:9.2f} {t / ref[batch]:6.2f}×")
        print(f"  {name:<10} " + " ".join(cells))
    print("  (ratio = time / symnn f64 time: above 1 means slower than symnn)")


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
