"""Digits classification: a 64-128-128-10 tanh/softmax network trained with Adam, beside
scikit-learn's MLPClassifier on the same split and settings.

Run: ``python examples/digits.py [--fast]``  (needs scikit-learn for the data)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symnn
from symnn.train import Adam, fit


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="fewer epochs (used by the tests)")
    args = ap.parse_args(argv)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, labels = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, labels, test_size=0.25, random_state=0,
                                          stratify=labels)
    epochs = 4 if args.fast else 60
    net = symnn.mlp([64, 128, 128, 10], activation="tanh", output="softmax",
                    loss="cross_entropy", name="digits")
    model = net.compile()
    t = time.perf_counter()
    res = fit(model, Xtr, ytr, optimizer=Adam(lr=1e-3), epochs=epochs, batch_size=32, seed=0,
              progress=False)
    t_symnn = time.perf_counter() - t
    acc = float(np.mean(model.predict(res.params, Xte).argmax(axis=1) == yte))

    import warnings

    from sklearn.exceptions import ConvergenceWarning

    clf = MLPClassifier(hidden_layer_sizes=(128, 128), activation="tanh", solver="adam",
                        alpha=0.0, batch_size=32, learning_rate_init=1e-3, max_iter=epochs,
                        shuffle=True, random_state=0, tol=0.0, n_iter_no_change=epochs + 1)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Xtr, ytr)
    t_sk = time.perf_counter() - t
    acc_sk = float(clf.score(Xte, yte))
    print(f"symnn:        test accuracy {acc:.4f}  ({epochs} epochs, {t_symnn:.2f} s incl. "
          "first-call compile)")
    print(f"scikit-learn: test accuracy {acc_sk:.4f}  ({epochs} epochs, {t_sk:.2f} s)")
    return {"symnn": acc, "sklearn": acc_sk}


if __name__ == "__main__":
    main()
