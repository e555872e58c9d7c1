"""Training: symbolic optimizers, the compiled epoch, second-order methods, save/load.

* :mod:`~symnn.train.optimizers` — ``SGD``, ``Momentum``, ``Nesterov``, ``Adagrad``,
  ``RMSProp``, ``Adam``: update rules declared as SymPy equations (``opt.equations()``
  prints them), compiled by :mod:`~symnn.train.epoch_kernel`;
* :mod:`~symnn.train.schedules` — ``StepDecay``, ``ExponentialDecay``, ``CosineDecay``,
  ``InverseScaling``: η_t as a SymPy expression of the step t;
* :mod:`~symnn.train.second_order` — ``Newton``, ``LevenbergMarquardt``, ``LBFGS``,
  ``NewtonCG``; :mod:`~symnn.train.kfac` — ``KFAC`` (Kronecker-factored natural gradient);
* :func:`fit` (:mod:`~symnn.train.loop`) → :class:`FitResult` with ``params`` and
  ``history`` (:class:`~symnn.train.history.History`); first-order epochs run in
  :mod:`~symnn.train.first_order`, and every optimizer reports to a
  :class:`~symnn.train.session.Session`;
* :func:`save` / :func:`load` (:mod:`~symnn.train.io`) — ``.npz`` + JSON, no pickle,
  written atomically, checksummed.

Examples
--------
>>> import numpy as np, symnn
>>> from symnn.train import fit, Adam
>>> model = symnn.mlp([2, 4, 1], activation="tanh").compile()
>>> X = np.random.default_rng(0).normal(size=(32, 2)); y = X.sum(axis=1)
>>> res = fit(model, X, y, Adam(lr=0.05), epochs=20, batch_size=8, progress=False)
>>> len(res.history)
20
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

#: Public names and the module that defines each, loaded on first use (PEP 562), so that
#: reading a model file (:mod:`symnn.train.io`) does not load the optimizers (nor SymPy).
_LAZY = {
    "History": "history", "SavedModel": "io", "load": "io", "save": "io",
    "load_compiled": "io", "KFAC": "kfac", "fit": "loop",
    **{n: "optimizers" for n in ("SGD", "Adagrad", "Adam", "Momentum", "Nesterov",
                                 "Optimizer", "RMSProp", "Rule", "get_optimizer")},
    **{n: "schedules" for n in ("Constant", "CosineDecay", "ExponentialDecay",
                                "InverseScaling", "Schedule", "StepDecay")},
    **{n: "second_order" for n in ("LBFGS", "LevenbergMarquardt", "Newton", "NewtonCG",
                                   "SecondOrder")},
    **{n: "session" for n in ("EpochInfo", "FitResult", "TrainingCheckError",
                              "TrainingInterrupted")},
}

__all__ = [
    "fit", "FitResult", "EpochInfo", "TrainingCheckError", "TrainingInterrupted", "History",
    "save", "load", "SavedModel", "load_compiled",
    "Optimizer", "Rule", "SGD", "Momentum", "Nesterov", "Adagrad", "RMSProp", "Adam",
    "get_optimizer", "Schedule", "Constant", "StepDecay", "ExponentialDecay", "CosineDecay",
    "InverseScaling", "SecondOrder", "Newton", "LevenbergMarquardt", "LBFGS", "NewtonCG",
    "KFAC",
]



def __getattr__(name: str) -> Any:
    """Load a public name, or a submodule, on first use (PEP 562)."""
    where = _LAZY.get(name)
    if where is None:
        if not name.startswith("__") and importlib.util.find_spec(f"symnn.train.{name}"):
            return importlib.import_module(f"symnn.train.{name}")
        raise AttributeError(f"module 'symnn.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"symnn.train.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
