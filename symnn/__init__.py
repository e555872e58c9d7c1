"""symnn — exact symbolic derivatives of neural networks, printed and compiled.

The flow is one-way: declare (``Network``, ``mlp``, ``Model``) → derive (``net.program()``,
``net.gradient()``, ``net.hessian()``) → print (``net.equations()``,
``symnn.export_latex``) → compile (``net.compile()``) → check (``symnn.gradcheck``) and
train (``symnn.fit`` with ``symnn.Adam()``, ``symnn.LBFGS()``, …; ``symnn.save`` /
``symnn.load``).

Imports only go down these stages.  This package sits above all of them: it attaches the
convenience methods of the early objects (``net.gradient()``, ``net.equations()``,
``net.compile()``, ``model.fit()``) to the stages that carry them out (:mod:`symnn._api`).
The declaration layer and the errors load with ``import symnn``; the later stages
(training, export, checks, analysis, scikit-learn) load on first use of their names, so
``import symnn`` stays fast.

Examples
--------
>>> import symnn
>>> net = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse")
>>> print(net.equations().line("delta1"))
δ⁽¹⁾ = ∇_a⁽¹⁾ℓ ⊙ σ'(z⁽¹⁾)
>>> symnn.Adam(lr=0.01).lr
0.01
"""

from __future__ import annotations

import importlib
from typing import Any

from symnn import _api  # noqa: F401  (registers what net.gradient(), .compile() … do)
from symnn._version import __version__
from symnn.declare.activations import Activation
from symnn.declare.attention import SelfAttention  # -- self-attention (attn) --
from symnn.declare.blocks import Residual
from symnn.declare.conv import AvgPool1D, Conv1D, Flatten, MaxPool1D
from symnn.declare.layers import Dense, Softmax
from symnn.declare.losses import L1, L2, Loss
from symnn.declare.model import Model
from symnn.declare.network import Network, mlp
from symnn.errors import (
    AnalysisError,
    ArgumentError,
    CheckError,
    CompileError,
    DataError,
    DeclarationError,
    DerivationError,
    LatexError,
    ModelFileError,
    ShapeError,
    SizeLimitError,
    SpecError,
    SymnnError,
    SymnnWarning,
    TrainingError,
    UnknownNameError,
)
from symnn.printing.equations import Equations

#: Names loaded on first use: ``name → module`` (the attribute has the same name there).
_LAZY = {
    # check
    "CheckReport": "symnn.check", "gradcheck": "symnn.check", "hesscheck": "symnn.check",
    "gnvcheck": "symnn.check",
    # compile
    "compile_model": "symnn.codegen.model", "CompiledModel": "symnn.codegen.model",
    # train
    "fit": "symnn.train", "FitResult": "symnn.train", "History": "symnn.train",
    "TrainingInterrupted": "symnn.train", "TrainingCheckError": "symnn.train",
    "save": "symnn.train", "load": "symnn.train", "SavedModel": "symnn.train",
    "Optimizer": "symnn.train", "get_optimizer": "symnn.train",
    "SGD": "symnn.train", "Momentum": "symnn.train", "Nesterov": "symnn.train",
    "Adagrad": "symnn.train", "RMSProp": "symnn.train", "Adam": "symnn.train",
    "SecondOrder": "symnn.train", "Newton": "symnn.train",
    "LevenbergMarquardt": "symnn.train", "LBFGS": "symnn.train", "NewtonCG": "symnn.train",
    "Schedule": "symnn.train", "Constant": "symnn.train", "StepDecay": "symnn.train",
    "ExponentialDecay": "symnn.train", "CosineDecay": "symnn.train",
    "InverseScaling": "symnn.train",
    # print / export
    "export_latex": "symnn.printing.document", "export_markdown": "symnn.printing.document",
    # spec files
    "load_spec": "symnn.spec", "loads_spec": "symnn.spec",
    # scikit-learn (needs scikit-learn installed)
    "SymnnClassifier": "symnn.sklearn", "SymnnRegressor": "symnn.sklearn",
}

__all__ = [
    "Activation", "Dense", "Softmax", "Residual", "L1", "L2", "Loss", "Model", "Network", "mlp",
    "Conv1D", "AvgPool1D", "MaxPool1D", "Flatten",
    "SelfAttention",  # -- self-attention (attn) --
    "Equations",
    "SymnnError", "ArgumentError", "ShapeError", "UnknownNameError", "DeclarationError",
    "SizeLimitError", "DerivationError", "CompileError", "DataError", "CheckError",
    "TrainingError", "SpecError", "ModelFileError", "LatexError", "AnalysisError",
    "SymnnWarning", "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Load a later stage's public name on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'symnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
