"""Universal approximation: one hidden layer of tanh units learns sin(x) on [−π, π].

The error shrinks as the layer widens, as the theorem promises.

Run: ``python examples/sin_approximation.py [--fast]``
"""

from __future__ import annotations

import argparse

import numpy as np

import symnn
from symnn.train import LBFGS, fit


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="fewer widths (used by the tests)")
    args = ap.parse_args(argv)
    X = np.linspace(-np.pi, np.pi, 200)[:, None]
    y = np.sin(X)
    Xt = np.linspace(-np.pi, np.pi, 1001)[:, None]
    errors = {}
    for width in ((1, 4) if args.fast else (1, 2, 4, 8, 16)):
        net = symnn.mlp([1, width, 1], activation="tanh", loss="mse", name=f"sin{width}")
        model = net.compile()
        res = fit(model, X, y, optimizer=LBFGS(), epochs=2000, seed=0, progress=False)
        err = float(np.max(np.abs(model.predict(res.params, Xt) - np.sin(Xt))))
        errors[width] = err
        print(f"{width:3d} hidden units: max |f(x) − sin x| on [−π, π] = {err:.2e}")
    return errors


if __name__ == "__main__":
    main()
