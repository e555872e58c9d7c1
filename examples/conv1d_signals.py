"""A 1-D convolutional classifier of synthetic signals: sine vs square vs sawtooth waves
(random frequency, phase and amplitude, Gaussian noise), trained with Adam.

The network — Conv1D → ReLU → MaxPool1D → Conv1D → ReLU → AvgPool1D → Flatten → Dense →
softmax — is derived, printed and compiled by symnn like any other; its first layer's
equations are printed in the textbook form.

Run: ``python examples/conv1d_signals.py [--fast]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symnn
from symnn.train import Adam, fit

LENGTH = 48
CLASSES = ("sine", "square", "sawtooth")


def signals(n: int, rng: np.random.Generator, noise: float = 0.3):
    """``(X, labels)``: ``X`` of shape (n, 1, LENGTH), balanced classes."""
    labels = np.arange(n) % 3
    rng.shuffle(labels)
    t = np.arange(LENGTH) / LENGTH
    cycles = rng.uniform(1.5, 4.0, size=(n, 1))
    phase = rng.uniform(0, 1, size=(n, 1))
    amp = rng.uniform(0.7, 1.3, size=(n, 1))
    u = (cycles * t[None, :] + phase) % 1.0          # position within the period, in [0, 1)
    waves = np.stack([np.sin(2 * np.pi * u), np.where(u < 0.5, 1.0, -1.0), 2 * u - 1])
    X = amp * waves[labels, np.arange(n)] + noise * rng.standard_normal((n, LENGTH))
    return X[:, None, :], labels


def network() -> symnn.Network:
    return symnn.Network(
        [symnn.Conv1D(1, 4, 5, padding=2, length=LENGTH), "relu", symnn.MaxPool1D(2),
         symnn.Conv1D(4, 6, 5, stride=2, padding=2), "relu", symnn.AvgPool1D(4),
         symnn.Flatten(), symnn.Dense(18, 3), "softmax"],
        loss="cross_entropy", name="signals")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="fewer samples and epochs (tests)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    n_train = 900 if args.fast else 3000
    Xtr, ytr = signals(n_train, rng)
    Xte, yte = signals(600, rng)
    net = network()
    print(f"{net}\n{net.n_params} parameters, inputs of shape {net.input_shape}")
    eq = str(net.equations()).splitlines()
    print("\n".join(line for line in eq if "z⁽¹⁾[c,t]" in line or "[c′,u]" in line))
    model = net.compile()
    t0 = time.perf_counter()
    res = fit(model, Xtr, ytr, optimizer=Adam(lr=0.01), epochs=12 if args.fast else 30,
              batch_size=32, seed=0, progress=False)
    seconds = time.perf_counter() - t0
    acc = float(np.mean(model.predict(res.params, Xte).argmax(axis=1) == yte))
    print(f"test accuracy {acc:.4f} ({len(yte)} signals; training {seconds:.1f} s incl. "
          "first-call compile)")
    return {"accuracy": acc, "seconds": seconds}


if __name__ == "__main__":
    main()
