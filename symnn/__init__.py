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
import importlib.util
from typing import Any

from symnn import _api  # noqa: F401  (registers what net.gradient(), .compile() … do)
from symnn._version import __version__
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

#: Names loaded on first use: ``name → module`` (the attribute has the same name there).
_LAZY = {
    # declare, print (SymPy loads with them: a process that only loads a model file whose
    # kernels are cached never imports it — symnn.load_compiled)
    "Activation": "symnn.declare.activations", "Residual": "symnn.declare.blocks",
    "AvgPool1D": "symnn.declare.conv", "Conv1D": "symnn.declare.conv",
    "Flatten": "symnn.declare.conv", "MaxPool1D": "symnn.declare.conv",
    "Dense": "symnn.declare.layers", "Softmax": "symnn.declare.layers",
    "L1": "symnn.declare.losses", "L2": "symnn.declare.losses", "Loss": "symnn.declare.losses",
    "Model": "symnn.declare.model", "Network": "symnn.declare.network",
    "mlp": "symnn.declare.network", "Equations": "symnn.printing.equations",
    "Dropout": "symnn.declare.dropout", "Graph": "symnn.declare.graph",
    "LayerNorm": "symnn.declare.norm", "RNN": "symnn.declare.recurrent",
    "GRU": "symnn.declare.recurrent", "SelfAttention": "symnn.declare.attention",
    # check
    "CheckReport": "symnn.check", "gradcheck": "symnn.check", "hesscheck": "symnn.check",
    "gnvcheck": "symnn.check",
    # compile
    "compile_model": "symnn.codegen.model", "CompiledModel": "symnn.codegen.model",
    # train
    "fit": "symnn.train", "FitResult": "symnn.train", "History": "symnn.train",
    "TrainingInterrupted": "symnn.train", "TrainingCheckError": "symnn.train",
    "save": "symnn.train", "load": "symnn.train", "SavedModel": "symnn.train",
    "load_compiled": "symnn.train",  # model file → compiled model, no SymPy when cached
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
    "Graph",
    "Dropout",  # (issue 13: dropout)
    "LayerNorm",
    "RNN", "GRU",
    "SelfAttention",  # -- self-attention (attn) --
    "Equations",
    "SymnnError", "ArgumentError", "ShapeError", "UnknownNameError", "DeclarationError",
    "SizeLimitError", "DerivationError", "CompileError", "DataError", "CheckError",
    "TrainingError", "SpecError", "ModelFileError", "LatexError", "AnalysisError",
    "SymnnWarning", "__version__",
    *(n for n in _LAZY if n not in ("Activation", "Dense", "Softmax", "Residual", "L1", "L2",
                                    "Loss", "Model", "Network", "mlp", "Conv1D", "AvgPool1D",
                                    "MaxPool1D", "Flatten", "Equations", "Graph", "Dropout",
                                    "LayerNorm", "RNN", "GRU", "SelfAttention")),
]


def __getattr__(name: str) -> Any:
    """Load a public name, or a subpackage (``symnn.functions``), on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        if not name.startswith("__") and importlib.util.find_spec(f"symnn.{name}") is not None:
            return importlib.import_module(f"symnn.{name}")
        raise AttributeError(f"module 'symnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
