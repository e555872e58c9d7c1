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

from symnn.train.history import History
from symnn.train.io import SavedModel, load, save
from symnn.train.kfac import KFAC
from symnn.train.loop import fit
from symnn.train.optimizers import (
    SGD,
    Adagrad,
    Adam,
    Momentum,
    Nesterov,
    Optimizer,
    RMSProp,
    Rule,
    get_optimizer,
)
from symnn.train.schedules import (
    Constant,
    CosineDecay,
    ExponentialDecay,
    InverseScaling,
    Schedule,
    StepDecay,
)
from symnn.train.second_order import LBFGS, LevenbergMarquardt, Newton, NewtonCG, SecondOrder
from symnn.train.session import EpochInfo, FitResult, TrainingCheckError, TrainingInterrupted

__all__ = [
    "fit", "FitResult", "EpochInfo", "TrainingCheckError", "TrainingInterrupted", "History",
    "save", "load", "SavedModel",
    "Optimizer", "Rule", "SGD", "Momentum", "Nesterov", "Adagrad", "RMSProp", "Adam",
    "get_optimizer", "Schedule", "Constant", "StepDecay", "ExponentialDecay", "CosineDecay",
    "InverseScaling", "SecondOrder", "Newton", "LevenbergMarquardt", "LBFGS", "NewtonCG",
    "KFAC",
]

