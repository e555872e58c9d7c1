"""A custom SymPy model fitted to data: the damped oscillator x(t) = A e^{-γt} cos(ωt + φ).

Any SymPy expression f(x; θ) becomes a model: symnn derives its gradient and Hessian
exactly, prints them in the user's own symbols, and fits it with Levenberg–Marquardt on the
exact Jacobian.

Run: ``python examples/custom_model.py [--fast]``
"""

from __future__ import annotations

import argparse

import numpy as np
import sympy as sp

import symnn
from symnn.train import LevenbergMarquardt, fit


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="fewer points (used by the tests)")
    args = ap.parse_args(argv)
    t, A, g, w, phi = sp.symbols("t A gamma omega phi")
    model_expr = A * sp.exp(-g * t) * sp.cos(w * t + phi)
    osc = symnn.Model(model_expr, inputs=[t], params=[A, g, w, phi], loss="mse",
                      name="oscillator")
    print(osc.equations())

    rng = np.random.default_rng(0)
    T = np.linspace(0, 6, 60 if args.fast else 400)[:, None]
    truth = np.array([2.0, 0.4, 3.0, 0.5])
    Y = truth[0] * np.exp(-truth[1] * T) * np.cos(truth[2] * T + truth[3])
    Y = Y + 0.02 * rng.normal(size=Y.shape)

    model = osc.compile()
    theta0 = np.array([1.0, 0.1, 2.8, 0.0])  # a rough guess of the frequency is needed
    res = fit(model, T, Y, optimizer=LevenbergMarquardt(), epochs=100, theta0=theta0,
              progress=False)
    names = [str(s) for s in osc.params]
    print("\nfitted:", {n: round(float(v), 4) for n, v in zip(names, res.params)})
    print("truth: ", dict(zip(names, truth.tolist())))
    print(f"iterations: {len(res.history)}, final loss {res.history.loss[-1]:.3e}")
    return {"params": res.params, "truth": truth, "loss": float(res.history.loss[-1])}


if __name__ == "__main__":
    main()
