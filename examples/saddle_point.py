"""The Hessian spectrum of a small network at a saddle point and at a minimum.

A 2-2-1 tanh network fitted to data made by a 2-2-1 tanh "teacher" network.  At the origin (all weights zero, output
bias = mean target) the gradient vanishes exactly, yet the Hessian is indefinite: a saddle.
symnn classifies it from the exact Hessian, shows the negative eigenvalue, and steps along
its eigenvector (the escape direction) to a lower loss; from there L-BFGS reaches a minimum,
whose spectrum has no negative eigenvalue.  The same is checked with Lanczos (extreme
eigenvalues from exact Hessian-vector products, no Hessian formed).

Run: ``python examples/saddle_point.py [--fast] [--plot out.png]``
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.optimize

import symnn
from symnn.analysis import critical_point, hessian_spectrum


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="smaller data (used by the tests)")
    ap.add_argument("--plot", metavar="OUT.png", help="save both spectra as a plot")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    n = 40 if args.fast else 200
    X = rng.normal(size=(n, 2))
    W1t, b1t = np.array([[1.5, -1.0], [0.5, 2.0]]), np.array([0.3, -0.2])
    W2t, b2t = np.array([[1.2, -0.8]]), np.array([0.4])
    y = np.tanh(X @ W1t.T + b1t) @ W2t.T + b2t + 0.01 * rng.normal(size=(n, 1))

    net = symnn.mlp([2, 2, 1], activation="tanh", loss="mse")
    model = net.compile()
    saddle = model.flatten({"W1": np.zeros((2, 2)), "b1": np.zeros(2),
                            "W2": np.zeros((1, 2)), "b2": np.array([y.mean()])})
    cp = critical_point(model, saddle, X, y)
    print("At the origin:", cp)
    print("  eigenvalues:", np.array2string(cp.eigenvalues, precision=4))

    # escape: a small step along the negative-curvature direction (plus a tiny random
    # perturbation that breaks the symmetry between the two hidden units), then L-BFGS
    start = saddle + 0.1 * cp.escape_direction + 1e-3 * rng.normal(size=saddle.size)
    print(f"  loss {model.loss(saddle, X, y):.6f} → {model.loss(start, X, y):.6f} after "
          "a step of 0.1 along the escape direction")
    res = scipy.optimize.minimize(lambda t: model.loss_and_grad(t, X, y), start, jac=True,
                                  method="L-BFGS-B", options={"gtol": 1e-12, "maxiter": 2000})
    # polish with Newton's method on the exact Hessian (trust region)
    res = scipy.optimize.minimize(lambda t: model.loss_and_grad(t, X, y), res.x, jac=True,
                                  hess=lambda t: model.hessian(t, X, y), method="trust-exact",
                                  options={"gtol": 1e-12})
    cm = critical_point(model, res.x, X, y, tol=1e-8)
    print("After L-BFGS and exact Newton:", cm)
    print("  eigenvalues:", np.array2string(cm.eigenvalues, precision=4))
    lz = hessian_spectrum(model, res.x, X, y, k=2, tol=1e-12)
    print(f"  Lanczos extremes {lz} vs dense {cm.eigenvalues[[0, -1]]}")
    if args.plot:
        import matplotlib

        from symnn.plots import plot_spectrum

        matplotlib.use("Agg")
        plot_spectrum(np.concatenate([cp.eigenvalues, cm.eigenvalues]), args.plot,
                      title="Hessian eigenvalues: saddle (first 9) and minimum (last 9)")
        print("saved", args.plot)
    return {"saddle": cp, "minimum": cm, "lanczos": lz}


if __name__ == "__main__":
    main()
