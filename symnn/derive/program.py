"""The derived program's IR — now :mod:`symnn.ops` (this module re-exports it).

Kept so that ``from symnn.derive import program as P`` keeps working until every importer
reads ``from symnn import ops as P``.
"""

from __future__ import annotations

from symnn.ops import (  # noqa: F401
    Add,
    Affine,
    Arg,
    BatchMean,
    Dot,
    LogSumExp,
    Map,
    MatTVec,
    Op,
    OuterMean,
    Penalty,
    Program,
    Softmax,
    SumComp,
    Var,
    superscript,
)

__all__ = [
    "Var",
    "Arg",
    "Op",
    "Affine",
    "MatTVec",
    "Map",
    "Softmax",
    "LogSumExp",
    "Dot",
    "SumComp",
    "BatchMean",
    "OuterMean",
    "Add",
    "Penalty",
    "Program",
]
