"""Make the figures shown in the docs (``docs/img/*.png``) from real runs.

    python docs/gen_figures.py            # writes docs/img/
    python docs/gen_figures.py --out DIR  # writes elsewhere (the tests do this)

Each figure comes from one of the examples, run with ``--fast``:

- ``spectrum.png``: the Hessian spectra of ``examples/saddle_point.py`` at the saddle (the
  origin) and at the minimum L-BFGS and Newton reach from it;
- ``gradient_flow.png``: per-layer gradient norms of deep sigmoid, tanh and ReLU networks
  from ``examples/gradient_flow.py``;
- ``history.png``: training and validation loss of a small regression network.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _example(name: str):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def spectrum(out: pathlib.Path) -> str:
    from symnn.plots import plot_spectrum

    with contextlib.redirect_stdout(io.StringIO()):
        res = _example("saddle_point").main(["--fast"])
    return plot_spectrum({"saddle (all weights 0)": res["saddle"].eigenvalues,
                          "minimum": res["minimum"].eigenvalues},
                         out / "spectrum.png", title="Hessian eigenvalues, 2-2-1 tanh network")


def gradient_flow(out: pathlib.Path) -> str:
    from symnn.plots import plot_gradient_flow

    with contextlib.redirect_stdout(io.StringIO()):
        flows = _example("gradient_flow").main(["--fast"])
    return plot_gradient_flow(flows, out / "gradient_flow.png",
                              title="Gradient norms by layer, 6 hidden layers of 12")


def history(out: pathlib.Path) -> str:
    import symnn
    from symnn.plots import plot_history
    from symnn.train import Adam, fit

    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(240, 1))
    y = np.sin(X) + 0.05 * rng.normal(size=X.shape)
    model = symnn.mlp([1, 16, 1], activation="tanh", loss="mse").compile()
    res = fit(model, X[:200], y[:200], optimizer=Adam(lr=0.01), epochs=60, batch_size=20,
              seed=0, validation=(X[200:], y[200:]), progress=False)
    return plot_history(res.history, out / "history.png", title="sin(x), 1-16-1 tanh, Adam")


def main(argv=None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return [spectrum(out), gradient_flow(out), history(out)]


if __name__ == "__main__":
    for path in main():
        print("wrote", path)
