"""The program IR and its ops: one kit per family of operations.

:mod:`symnn.ops.ir` holds the values (:class:`Var`, :class:`Arg`), the op base class,
the :class:`Program` and the :class:`Builder`.  Each kit declares its ops' dataclasses and,
next to each, the op's rules for every back end, entered in the tables of
:mod:`symnn.ops.registry` (``VJP``, ``JVP``, ``NUMPY``, ``SYMPY``, ``EQUATION``, ``TEXT``,
``DESCRIBE``, keyed by op class):

=====================================  ==================================================
:mod:`symnn.ops.linear`                ``Affine``, ``MatTVec``, ``OuterMean``
:mod:`symnn.ops.elementwise`           ``Map``
:mod:`symnn.ops.softmax`               ``Softmax``, ``LogSumExp``
:mod:`symnn.ops.reduce`                ``Dot``, ``SumComp``, ``BatchMean``, ``Add``
:mod:`symnn.ops.penalty`               ``Penalty``
:mod:`symnn.ops.conv`                  ``Conv1D``, ``ConvT1D``, ``ConvWMean``
:mod:`symnn.ops.pool`                  ``ChannelMean``, ``ChannelBcast``, ``AvgPool``,
                                       ``AvgPoolT``, ``MaxGather``, ``MaxScatter``
:mod:`symnn.ops.norm`                  ``NormStandardize``, ``NormStandardizeT``,
                                       ``NormStandardizeTDot``, ``NormScaleShift``,
                                       ``NormColMean``
:mod:`symnn.ops.recurrent`             ``RecRow``, ``RecRowT``, ``RecStack``, ``RecStop``
:mod:`symnn.ops.attention`             ``AttnMatMul``, ``AttnSoftmax``, ``AttnSoftmaxT``,
                                       ``AttnRowDot``, ``AttnRowScale``
:mod:`symnn.ops.scan`                  ``SeqAffine``, ``SeqOuter``, ``SeqSum``, ``SeqBcast``,
                                       ``SeqShift``, ``RNNSeq``, ``LinRec``
:mod:`symnn.ops.scan_gru`              ``GRUSeq``, ``GateRec``
=====================================  ==================================================

A new op is one new kit module (its dataclass and a ``register(...)`` call) imported here;
``missing()`` lists the tables it has no rule in.

Examples
--------
>>> from symnn import ops as P
>>> b = P.Builder()
>>> x = b.prog.inputs["x"] = P.Var("x", "input", (2,))
>>> s = b.prog.outputs["s"] = b.emit(P.SumComp(P.Var("s", "sample", (1,)), x))
>>> print(b.prog)
inputs:  x[2]
s[1] = sum(x)
outputs: s
>>> P.describe(b.prog.ops[0])
's = sum of the components of x'
"""

from __future__ import annotations

# -- self-attention (attn) --
from symnn.ops.attention import (  # noqa: E402
    AttnMatMul,
    AttnRowDot,
    AttnRowScale,
    AttnSoftmax,
    AttnSoftmaxT,
    MatDims,
    RowDims,
)
from symnn.ops.concat import Concat, Slice  # graphs (symnn.Graph, issue 13)
from symnn.ops.conv import Conv1D, ConvT1D, ConvWMean, Geom, Pool
from symnn.ops.elementwise import Map
from symnn.ops.ir import Arg, Builder, Op, Program, Var, superscript, sym
from symnn.ops.linear import Affine, MatTVec, OuterMean
from symnn.ops.norm import (  # layer normalisation
    NormColMean,
    NormScaleShift,
    NormStandardize,
    NormStandardizeT,
    NormStandardizeTDot,
)
from symnn.ops.penalty import Penalty
from symnn.ops.pool import AvgPool, AvgPoolT, ChannelBcast, ChannelMean, MaxGather, MaxScatter
from symnn.ops.recurrent import RecRow, RecRowT, RecStack, RecStop
from symnn.ops.reduce import Add, BatchMean, Dot, SumComp
from symnn.ops.registry import (
    DESCRIBE,
    EQUATION,
    JVP,
    NUMPY,
    SYMPY,
    TABLES,
    TEXT,
    VJP,
    describe,
    missing,
    register,
    rule,
)
from symnn.ops.softmax import LogSumExp, Softmax

# -- sequence ops looped over time (scan) --
from symnn.ops.scan import (  # noqa: E402
    LinRec,
    RNNSeq,
    SeqAffine,
    SeqBcast,
    SeqOuter,
    SeqShift,
    SeqSum,
)

# -- a GRU looped over time (scan_gru) --
from symnn.ops.scan_gru import GateRec, GRUSeq  # noqa: E402

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
    "Conv1D",
    "ConvT1D",
    "ConvWMean",
    "Geom",
    "Pool",
    "ChannelMean",
    "ChannelBcast",
    "AvgPool",
    "AvgPoolT",
    "MaxGather",
    "MaxScatter",
    "RecRow",
    "RecRowT",
    "RecStack",
    "RecStop",
    "Program",
    "superscript",
    "sym",
    "Builder",
    "VJP",
    "JVP",
    "NUMPY",
    "SYMPY",
    "EQUATION",
    "TEXT",
    "DESCRIBE",
    "TABLES",
    "register",
    "rule",
    "missing",
    "describe",
    # graphs
    "Concat",
    "Slice",
    # layer normalisation
    "NormStandardize",
    "NormStandardizeT",
    "NormStandardizeTDot",
    "NormScaleShift",
    "NormColMean",
    # -- self-attention (attn) --
    "AttnMatMul",
    "AttnSoftmax",
    "AttnSoftmaxT",
    "AttnRowDot",
    "AttnRowScale",
    "MatDims",
    "RowDims",
    # -- sequence ops looped over time (scan) --
    "SeqAffine",
    "SeqOuter",
    "SeqSum",
    "SeqBcast",
    "SeqShift",
    "RNNSeq",
    "LinRec",
    # -- a GRU looped over time (scan_gru) --
    "GRUSeq",
    "GateRec",
]
