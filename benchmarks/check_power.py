"""The detection power of ``symnn.gradcheck`` (and ``gnvcheck`` / ``hesscheck``), measured.

For random networks, one gradient component is multiplied by ``1 + δ`` (a deliberately
wrong rule, wrong in one place) and the checker is asked whether the gradient is right.
Each trial draws a new θ, batch and component; the component is drawn uniformly over all
P coordinates, and the trials are binned by the component's magnitude ``|gᵢ| / max(1, |L|)``
(the finite difference's own resolution is ~1e-10·|L|, so tiny components can only be
checked to an absolute error).  ``δ = 0`` rows measure false failures on the correct kernel.
The same is done for ``gnvcheck`` (one component of ``G v`` wrong) and ``hesscheck`` (one
component of ``H v`` wrong) with ``--products``.

Usage::

    python benchmarks/check_power.py --trials 200            # gradcheck, ~2 minutes
    python benchmarks/check_power.py --trials 300 --stratified --max-blocks 64
    python benchmarks/check_power.py --trials 20 --products  # + hesscheck and gnvcheck
    python benchmarks/check_power.py --json power.json
    python benchmarks/check_power.py --fit-cost              # fit's default check, digits

The sampled-coordinate scheme symnn used before (``coordinates=50``) is measured alongside
(``--old``) for comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import symnn
from symnn.check import gnvcheck, gradcheck, hesscheck

NETS = {
    "tanh 16-24-4 softmax/CE (P=508)": dict(sizes=[16, 24, 4], activation="tanh",
                                             output="softmax", loss="cross_entropy"),
    "relu 10-20-12-2 mse (P=500)": dict(sizes=[10, 20, 12, 2], activation="relu",
                                         loss="mse"),
    "tanh 64-32-10 softmax/CE (P=2410)": dict(sizes=[64, 32, 10], activation="tanh",
                                               output="softmax", loss="cross_entropy"),
}
#: Magnitude bands of the wrong component, relative to max(1, |L|).
BINS = [(1e-3, np.inf, "|g_i| >= 1e-3"), (1e-5, 1e-3, "1e-5 <= |g_i| < 1e-3"),
        (1e-6, 1e-5, "1e-6 <= |g_i| < 1e-5"), (1e-7, 1e-6, "1e-7 <= |g_i| < 1e-6"),
        (1e-8, 1e-7, "1e-8 <= |g_i| < 1e-7"), (0.0, 1e-8, "|g_i| < 1e-8")]


class WrongGradient:
    """A model whose gradient (or product) is wrong by a factor 1 + δ in component k."""

    def __init__(self, model, k: int, delta: float, which: str = "grad") -> None:
        self.model, self.k, self.delta, self.which = model, k, delta, which
        self.n_params, self.param_shapes, self.dtype = (model.n_params, model.param_shapes,
                                                        model.dtype)
        self.reference = model.reference

    def loss(self, theta, X, y):
        return self.model.loss(theta, X, y)

    def loss_and_grad(self, theta, X, y):
        L, g = self.model.loss_and_grad(theta, X, y)
        if self.which == "grad":
            g = g.copy()
            g[self.k] *= 1 + self.delta
        return L, g

    def _wrong(self, out):
        if self.delta:
            out = out.copy()
            out[..., self.k] *= 1 + self.delta
        return out

    def hvp(self, theta, v, X, y):
        out = self.model.hvp(theta, v, X, y)
        return self._wrong(out) if self.which == "hvp" else out

    def gnvp(self, theta, v, X, y):
        out = self.model.gnvp(theta, v, X, y)
        return self._wrong(out) if self.which == "gnvp" else out


def data(model, spec, rng, batch=32):
    X = rng.normal(size=(batch, spec["sizes"][0]))
    if spec["loss"] == "cross_entropy":
        y = rng.integers(0, spec["sizes"][-1], size=batch)
    else:
        y = rng.normal(size=(batch, spec["sizes"][-1]))
    return X, y


def gradcheck_power(trials: int, deltas, old: bool, seed: int = 0,
                    max_blocks: int = 256, stratified: bool = False) -> dict:
    out = {}
    for name, spec in NETS.items():
        spec = dict(spec)
        model = symnn.mlp(spec.pop("sizes"), **spec).compile()
        spec = NETS[name]
        rng = np.random.default_rng(seed)
        cells = {}
        t0 = time.perf_counter()
        for delta in deltas:
            for t in range(trials):
                theta = model.init(int(rng.integers(1 << 30))) + 0.1 * rng.normal(
                    size=model.n_params)
                X, y = data(model, spec, rng)
                L, g = model.loss_and_grad(theta, X, y)
                mags = np.abs(g) / max(1.0, abs(L))
                if stratified:  # a band first (uniformly), then a component in it
                    lo, hi, label = BINS[t % len(BINS)]
                    idx = np.flatnonzero((mags >= lo) & (mags < hi))
                    if not idx.size:
                        continue
                    k = int(rng.choice(idx))
                else:
                    k = int(rng.integers(model.n_params))
                    label = next(b[2] for b in BINS if b[0] <= mags[k] < b[1])
                wrong = WrongGradient(model, k, delta)
                kw = dict(coordinates=50) if old else dict(max_blocks=max_blocks)
                rep = gradcheck(wrong, theta, X, y, seed=t, **kw)
                cell = cells.setdefault(f"δ={delta:g} {label}", [0, 0])
                cell[0] += int(not rep)
                cell[1] += 1
        out[name] = {"cells": cells, "seconds": time.perf_counter() - t0,
                     "n_params": model.n_params}
    return out


def product_power(trials: int, deltas, seed: int = 0) -> dict:
    out = {}
    for name, spec in list(NETS.items())[:2]:
        spec = dict(spec)
        model = symnn.mlp(spec.pop("sizes"), **spec).compile()
        spec = NETS[name]
        rng = np.random.default_rng(seed)
        for which, checker in (("hvp", hesscheck), ("gnvp", gnvcheck)):
            cells = {}
            for delta in deltas:
                for t in range(trials):
                    theta = model.init(int(rng.integers(1 << 30))) + 0.1 * rng.normal(
                        size=model.n_params)
                    X, y = data(model, spec, rng)
                    k = int(rng.integers(model.n_params))
                    rep = checker(WrongGradient(model, k, delta, which), theta, X, y, seed=t)
                    cell = cells.setdefault(f"δ={delta:g}", [0, 0])
                    cell[0] += int(not rep)
                    cell[1] += 1
            out[f"{which} {name}"] = {"cells": cells}
    return out


def fit_cost(epochs: int = 60, repeats: int = 3) -> dict:
    """The cost of fit's default check before training, on the digits fit of
    ``examples/digits.py`` (64-128-128-10 tanh/softmax, Adam, batch 32)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from symnn.train import Adam, fit
    from symnn.train.session import CHECK_BLOCKS, CHECK_SAMPLES

    X, labels = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, _, ytr, _ = train_test_split(X, labels, test_size=0.25, random_state=0,
                                      stratify=labels)
    model = symnn.mlp([64, 128, 128, 10], activation="tanh", output="softmax",
                      loss="cross_entropy", name="digits").compile()
    kw = dict(optimizer=Adam(lr=1e-3), epochs=epochs, batch_size=32, seed=0, progress=False)
    fit(model, Xtr, ytr, **dict(kw, epochs=1), check_every=0)  # compile the epoch kernel
    theta = model.init(0)
    Xc, Yc = Xtr[:CHECK_SAMPLES], ytr[:CHECK_SAMPLES]
    gradcheck(model, theta, Xc, Yc, n_directions=4, max_blocks=CHECK_BLOCKS)  # warm
    t_check, t_off, t_on = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        rep = gradcheck(model, theta, Xc, Yc, n_directions=4, max_blocks=CHECK_BLOCKS)
        t_check.append(time.perf_counter() - t)
        assert rep, str(rep)
        t = time.perf_counter()
        fit(model, Xtr, ytr, **kw, check_every=0)
        t_off.append(time.perf_counter() - t)
        t = time.perf_counter()
        fit(model, Xtr, ytr, **kw)
        t_on.append(time.perf_counter() - t)
    out = {"n_params": model.n_params, "epochs": epochs, "check_s": min(t_check),
           "fit_check_off_s": min(t_off), "fit_default_s": min(t_on),
           "probes": len(rep.probes)}
    out["check_fraction"] = out["check_s"] / out["fit_check_off_s"]
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--deltas", type=float, nargs="*", default=[0.0, 3e-5, 1e-4, 1e-3])
    ap.add_argument("--old", action="store_true", help="also measure coordinates=50")
    ap.add_argument("--max-blocks", type=int, default=256, help="gradcheck's max_blocks")
    ap.add_argument("--stratified", action="store_true",
                    help="draw the wrong component from each magnitude band in turn")
    ap.add_argument("--products", action="store_true", help="also hesscheck and gnvcheck")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--fit-cost", action="store_true",
                    help="only measure the cost of fit's default check on the digits fit")
    ap.add_argument("--epochs", type=int, default=60, help="epochs of the digits fit")
    args = ap.parse_args(argv)
    if args.fit_cost:
        res = fit_cost(args.epochs)
        print(f"digits fit, {res['n_params']} parameters, {res['epochs']} epochs: the check "
              f"before training ({res['probes']} probes) took {res['check_s']:.3f} s; the "
              f"fit took {res['fit_check_off_s']:.2f} s with check_every=0 and "
              f"{res['fit_default_s']:.2f} s by default: the check is "
              f"{100 * res['check_fraction']:.1f} % of the fit")
        return {"fit_cost": res}
    results = {f"gradcheck max_blocks={args.max_blocks}": gradcheck_power(
        args.trials, args.deltas, False, max_blocks=args.max_blocks,
        stratified=args.stratified)}
    if args.old:
        results["gradcheck coordinates=50"] = gradcheck_power(args.trials, args.deltas, True,
                                                              stratified=args.stratified)
    if args.products:
        results["products"] = product_power(max(1, args.trials // 10), args.deltas)
    for what, nets in results.items():
        print(f"== {what}")
        for name, res in nets.items():
            print(f"  {name}" + (f"  ({res['seconds']:.1f} s)" if "seconds" in res else ""))
            for cell, (hit, n) in sorted(res["cells"].items()):
                print(f"    {cell:<34} failed {hit:>4} / {n:<4}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    sys.exit(main() and 0)
