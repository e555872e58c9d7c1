"""Vanishing gradients: a deep sigmoid network against deep tanh and ReLU networks.

Each backward step through a sigmoid layer multiplies the signal by at most
sup|σ'| = 1/4 (derived by ``symnn.analysis.derivative_bound``), so in an 8-layer sigmoid
net the first layer's gradient is orders of magnitude below the last layer's; tanh
(sup|tanh'| = 1) and ReLU keep it alive.  The per-layer gradient norms are recorded by
``fit`` in the history and compared by ``symnn.analysis.gradient_flow``.

Run: ``python examples/gradient_flow.py [--fast] [--plot out.png]``
"""

from __future__ import annotations

import argparse

import numpy as np

import symnn
from symnn.analysis import derivative_bound, gradient_flow
from symnn.declare.activations import ACTIVATIONS
from symnn.train import SGD, fit


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="fewer epochs (used by the tests)")
    ap.add_argument("--plot", metavar="OUT.png", help="save the gradient-flow plot")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(256, 8))
    y = np.sin(X[:, :2].sum(axis=1, keepdims=True))
    depth, width = (6, 12) if args.fast else (8, 16)
    flows = {}
    for act in ("sigmoid", "tanh", "relu"):
        net = symnn.mlp([8] + [width] * depth + [1], activation=act, loss="mse", name=f"deep_{act}")
        res = fit(net.compile(), X, y, optimizer=SGD(lr=0.05), epochs=3 if args.fast else 20,
                  batch_size=32, seed=0, progress=False,
                  engine="python" if args.fast else "auto")  # --fast: no fused kernel to compile
        flows[act] = gradient_flow(res.history)
        bound = derivative_bound(ACTIVATIONS[act])
        print(f"{act:8s} sup|f'| = {bound}:  {flows[act]}")
    if args.plot:
        from symnn.plots import plot_gradient_flow

        plot_gradient_flow(flows, args.plot, title=f"{depth} hidden layers of {width}")
        print("saved", args.plot)
    return flows


if __name__ == "__main__":
    main()
