"""The exceptions symnn raises.

Every error symnn raises on bad input derives from :class:`SymnnError` *and* from the
built-in exception it refines, so ``except ValueError`` keeps working for callers who do
not know symnn.  Messages say what went wrong, where (layer, argument, file and key) and
what to do instead.
"""

from __future__ import annotations

__all__ = [
    "SymnnError",
    "SymnnWarning",
    "ArgumentError",
    "ShapeError",
    "UnknownNameError",
    "DeclarationError",
    "SizeLimitError",
    "DerivationError",
    "CompileError",
    "DataError",
    "CheckError",
    "TrainingError",
    "SpecError",
    "ModelFileError",
    "LatexError",
    "AnalysisError",
]


class SymnnError(Exception):
    """Base class of every error symnn raises on purpose."""


class SymnnWarning(UserWarning):
    """A warning from symnn (e.g. the kernel cache is unusable and kernels compile in memory)."""


class ArgumentError(SymnnError, TypeError, ValueError):
    """An argument has the wrong type or an invalid value (``None`` for a path, a float
    for a seed, ``epochs=-1``, …); also a ``ValueError``, as scikit-learn expects."""


class ShapeError(SymnnError, ValueError):
    """An array, layer or parameter vector has the wrong shape."""


class UnknownNameError(SymnnError, ValueError):
    """A name (activation, loss, optimizer, ...) is not one symnn knows."""


class DeclarationError(SymnnError, ValueError):
    """A network or model declaration is inconsistent."""


class SizeLimitError(SymnnError, ValueError):
    """An expanded symbolic form would be too large to be useful."""


class DerivationError(SymnnError, ValueError):
    """A derivative rule is missing or cannot be applied."""


class CompileError(SymnnError, RuntimeError):
    """Generating or compiling a numeric kernel failed."""


class DataError(SymnnError, ValueError):
    """Input data are unusable (NaN, inf, wrong dtype)."""


class CheckError(SymnnError, AssertionError):
    """A finite-difference check of a derivative failed."""


class TrainingError(SymnnError, RuntimeError):
    """Training stopped: the loss diverged or a check failed.

    The last good parameters are kept in :attr:`params`.
    """

    def __init__(self, message: str, params=None, history=None) -> None:
        super().__init__(message)
        self.params = params
        self.history = history


class SpecError(SymnnError, ValueError):
    """A spec file is malformed or asks for something not allowed."""


class ModelFileError(SymnnError, ValueError):
    """A saved model file is damaged, tampered with or does not match."""


class LatexError(SymnnError, RuntimeError):
    """``pdflatex`` is missing or failed on a document."""


class AnalysisError(SymnnError, ValueError):
    """An analysis request that cannot be answered as asked."""
