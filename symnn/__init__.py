"""symnn — exact symbolic derivatives of neural networks, printed and compiled.

The flow is one-way: declare (``Network``, ``mlp``, ``Model``) → derive (``net.program()``,
``net.gradient()``, ``net.hessian()``) → print (``net.equations()``) → compile
(``net.compile()``) → check and train.

Examples
--------
>>> import symnn
>>> net = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse")
>>> print(net.equations().line("delta1"))
δ⁽¹⁾ = ∇_a⁽¹⁾ℓ ⊙ σ'(z⁽¹⁾)
"""

from symnn.check import CheckReport, gradcheck, hesscheck
from symnn.codegen.cache import SymnnWarning
from symnn.declare.activations import Activation
from symnn.declare.layers import Dense, Softmax
from symnn.declare.losses import L1, L2, Loss
from symnn.declare.model import Model
from symnn.declare.network import Network, mlp
from symnn.errors import (
    CheckError,
    CompileError,
    DataError,
    DeclarationError,
    DerivationError,
    ModelFileError,
    ShapeError,
    SizeLimitError,
    SpecError,
    SymnnError,
    TrainingError,
    UnknownNameError,
)
from symnn.printing.equations import Equations

__version__ = "0.1.0"

__all__ = [
    "Activation", "Dense", "Softmax", "L1", "L2", "Loss", "Model", "Network", "mlp",
    "Equations", "CheckReport", "gradcheck", "hesscheck",
    "SymnnError", "ShapeError", "UnknownNameError", "DeclarationError", "SizeLimitError",
    "DerivationError", "CompileError", "DataError", "CheckError", "TrainingError",
    "SpecError", "ModelFileError", "SymnnWarning", "__version__",
]
