"""The hostile cases of tests/test_hostile_layers.py: bad input to the layers of issue 13
(Conv1D, the pools, Flatten, Dropout, LayerNorm, RNN, GRU, SelfAttention, Residual,
Graph) through Python declarations, spec files, model files, the command line and the
compiled kernels.

:data:`CASES` holds ``(id, expected, fragment, run)``: ``expected`` is ``"ok"`` or the name
of the symnn error class the case must raise, ``fragment`` a piece of its message, ``run``
a function of the case folder.  Nothing here runs at import (the test module reads the ids;
one subprocess runs them all, see :func:`run_all`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np

import symnn
from symnn import (
    GRU,
    RNN,
    AvgPool1D,
    Conv1D,
    Dense,
    Dropout,
    Flatten,
    Graph,
    LayerNorm,
    MaxPool1D,
    Network,
    Residual,
    SelfAttention,
)

CASES: list[tuple[str, str, str, object]] = []


def case(cid: str, expected: str, fragment: str = ""):
    def add(fn):
        CASES.append((cid, expected, fragment, fn))
        return fn
    return add


def decl(cid: str, expected: str, fragment: str, build) -> None:
    """A Python declaration: ``build()`` makes it."""
    CASES.append((cid, expected, fragment, lambda d: build()))


# -- Python declarations --------------------------------------------------------------------
_SEQ = "reads a (channels, length) value, but layer 0"
DECLS = [
    # the layouts: a (T, d) sequence is not a (channels, length) value, and back
    ("layout-rnn-conv", "DeclarationError", _SEQ, lambda: Network(
        [RNN(2, 3, return_sequences=True, length=4), Conv1D(4, 2, 2), Flatten(), Dense(4, 1)])),
    ("layout-gru-pool", "DeclarationError", "reads a (channels, length) value", lambda: Network(
        [GRU(2, 4, return_sequences=True, length=4), AvgPool1D(2), Flatten(), Dense(4, 1)])),
    ("layout-att-pool", "DeclarationError", "no transpose layer", lambda: Network(
        [SelfAttention(4, 2, length=3), MaxPool1D(2), Flatten(), Dense(6, 1)])),
    ("layout-conv-rnn", "DeclarationError", "reads a (time, features) sequence, but layer 0",
     lambda: Network([Conv1D(1, 2, 3, length=6), RNN(4, 3), Dense(3, 1)])),
    ("layout-conv-att", "DeclarationError", "would run over the channels", lambda: Network(
        [Conv1D(1, 2, 3, length=6), SelfAttention(4, 2), Flatten(), Dense(8, 1)])),
    ("layout-conv-ln-rnn", "DeclarationError", "layer 2 (RNN(4, 3)) reads", lambda: Network(
        [Conv1D(1, 2, 3, length=6), LayerNorm(4), RNN(4, 3), Dense(3, 1)])),
    ("layout-lnstart-conv", "DeclarationError", "the network's input", lambda: Network(
        [LayerNorm(3, length=4), Conv1D(4, 1, 1), Flatten(), Dense(3, 1)])),
    ("layout-residual-att-conv", "DeclarationError", "axes would be swapped", lambda: Residual(
        [SelfAttention(4, 2), Conv1D(3, 3, 1)])),
    ("layout-rnn-drop-flatten-ok", "ok", "", lambda: Network(
        [RNN(2, 3, length=3, return_sequences=True), Dropout(0.2), Flatten(), Dense(9, 1)])),
    # mixes inside a Residual (once duplicate W<l>)
    ("res-dense-conv", "DeclarationError", "holds flat-vector layers", lambda: Residual(
        [Dense(4, 4), Conv1D(1, 1, 1)])),
    ("res-dense-rnn", "DeclarationError", "holds flat-vector layers", lambda: Residual(
        [Dense(4, 4), RNN(4, 4)])),
    ("res-dense-flatten", "DeclarationError", "holds flat-vector layers", lambda: Residual(
        [Dense(4, 4), Flatten()])),
    ("res-dense-pool", "DeclarationError", "holds flat-vector layers", lambda: Residual(
        [Dense(4, 4), MaxPool1D(2)])),
    ("res-ln-mismatch", "DeclarationError", "normalises rows of 5", lambda: Residual(
        [Dense(4, 4), LayerNorm(5)])),
    ("res-changes-size", "DeclarationError", "map n values to n", lambda: Residual(
        [Dense(3, 4)])),
    ("res-att-changes-shape", "DeclarationError", "needs the same shape", lambda: Network(
        [SelfAttention(4, 2, length=3), Residual([SelfAttention(4, 2),
                                                  RNN(4, 2, return_sequences=True)]),
         Flatten(), Dense(6, 1)])),
    ("res-empty", "DeclarationError", "no Dense layer", lambda: Residual([])),
    ("res-dropout-first", "DeclarationError", "before any Dense layer", lambda: Residual(
        [Dropout(0.5), Dense(3, 3)])),
    # Conv1D, pools, Flatten
    ("conv-kernel-long", "DeclarationError", "kernel (5) is longer", lambda: Conv1D(
        1, 2, 5, length=3)),
    ("conv-stride-0", "DeclarationError", "stride must be an integer ≥ 1", lambda: Conv1D(
        1, 2, 3, stride=0)),
    ("conv-padding-neg", "DeclarationError", "padding must be an integer ≥ 0", lambda: Conv1D(
        1, 2, 3, padding=-1)),
    ("conv-channels-float", "DeclarationError", "in_channels must be an integer", lambda: Conv1D(
        1.5, 2, 3)),
    ("conv-bias-str", "DeclarationError", "bias must be True or False", lambda: Conv1D(
        1, 2, 3, bias="no")),
    ("conv-channels-mismatch", "DeclarationError", "make in_channels = 2", lambda: Network(
        [Conv1D(1, 2, 1, length=4), Conv1D(3, 1, 1), Flatten(), Dense(4, 1)])),
    ("conv-huge-output", "SizeLimitError", "exceeds symnn's limit", lambda: Network(
        [Conv1D(1, 5000, 1, length=5000), MaxPool1D(5000), Flatten(), Dense(5000, 1)])),
    ("conv-channels-huge", "SizeLimitError", "out_channels", lambda: Conv1D(1, 2**30, 1)),
    ("att-dmodel-huge", "SizeLimitError", "d_model·d_k", lambda: SelfAttention(2**30, 1)),
    ("conv-no-flatten", "DeclarationError", "end with symnn.Flatten()", lambda: Network(
        [Conv1D(1, 1, 1, length=3)])),
    ("pool-0", "DeclarationError", "size must be an integer ≥ 1", lambda: AvgPool1D(0)),
    ("pool-nan", "DeclarationError", "size must be an integer ≥ 1", lambda: MaxPool1D(
        float("nan"))),
    ("pool-longer", "DeclarationError", "window (4) is longer", lambda: Network(
        [Conv1D(1, 1, 1, length=3), MaxPool1D(4), Flatten(), Dense(1, 1)])),
    ("pool-first", "DeclarationError", "needs a (channels, length) input", lambda: Network(
        [MaxPool1D(2), Flatten(), Dense(2, 1)])),
    ("flatten-twice", "DeclarationError", "gives a flat vector of 3", lambda: Network(
        [Conv1D(1, 1, 1, length=3), Flatten(), Flatten(), Dense(3, 1)])),
    ("flatten-after-dense", "DeclarationError", "needs a (channels, length) input",
     lambda: Network([Dense(2, 3), Flatten(), Dense(3, 1)])),
    # RNN, GRU
    ("rnn-T-0", "DeclarationError", "length (T) must be an integer ≥ 1", lambda: RNN(
        2, 3, length=0)),
    ("rnn-T-limit", "DeclarationError", "MAX_UNROLLED_STEPS", lambda: RNN(2, 3, length=10**5,
                                                                           unroll=True)),
    ("rnn-looped-T-limit", "DeclarationError", "MAX_LOOPED_STEPS",
     lambda: RNN(2, 3, length=2**21)),
    ("rnn-activation-unknown", "UnknownNameError", "unknown activation 'nope'", lambda: RNN(
        2, 3, activation="nope")),
    ("rnn-return-str", "DeclarationError", "return_sequences must be True or False",
     lambda: RNN(2, 3, return_sequences="yes")),
    ("rnn-truncate-0", "DeclarationError", "truncate must be an integer ≥ 1", lambda: RNN(
        2, 3, truncate=0)),
    ("rnn-n-in-mismatch", "DeclarationError", "make n_in = 3", lambda: Network(
        [RNN(2, 3, return_sequences=True, length=3), RNN(4, 3), Dense(3, 1)])),
    ("rnn-after-last-state", "DeclarationError", "return_sequences=True", lambda: Network(
        [RNN(2, 3, length=3), RNN(3, 3), Dense(3, 1)])),
    ("rnn-after-dense", "DeclarationError", "starts with a Conv1D or a sequence layer",
     lambda: Network([Dense(2, 6), RNN(2, 3, length=3), Dense(3, 1)])),
    ("rnn-seq-into-dense", "DeclarationError", "gives a (time, features) sequence of shape "
     "(3, 3); insert symnn.Flatten()", lambda: Network(
        [RNN(2, 3, length=3, return_sequences=True), Dense(9, 1)])),
    ("gru-activation", "DeclarationError", "activation= is not an option", lambda: GRU(
        2, 3, activation="relu")),
    ("gru-hidden-0", "DeclarationError", "n_hidden must be an integer ≥ 1", lambda: GRU(2, 0)),
    # SelfAttention
    ("att-dk-0", "DeclarationError", "d_k must be an integer ≥ 1", lambda: SelfAttention(4, 0)),
    ("att-T-0", "DeclarationError", "length must be an integer ≥ 1", lambda: SelfAttention(
        4, 2, length=0)),
    ("att-dmodel-mismatch", "DeclarationError", "make d_model = 4", lambda: Network(
        [SelfAttention(4, 2, length=3), SelfAttention(5, 2), Flatten(), Dense(12, 1)])),
    ("att-huge-T", "SizeLimitError", "T×T attention scores", lambda: Network(
        [SelfAttention(2, 1, length=10**6), Flatten(), Dense(2 * 10**6, 1)])),
    ("att-huge-T-inferred", "DeclarationError", "no input length fits", lambda: Network(
        [SelfAttention(1, 1), Flatten(), Dense(5000, 1)])),
    ("att-causal-str", "DeclarationError", "causal must be True or False", lambda: SelfAttention(
        4, 2, causal="yes")),
    # Dropout
    ("drop-neg", "DeclarationError", "0 ≤ p < 1", lambda: Dropout(-0.1)),
    ("drop-one", "DeclarationError", "would drop every unit", lambda: Dropout(1.0)),
    ("drop-nan", "DeclarationError", "0 ≤ p < 1", lambda: Dropout(float("nan"))),
    ("drop-str", "DeclarationError", "p must be a number", lambda: Dropout("0.5")),
    ("drop-first", "DeclarationError", "comes before any layer with parameters",
     lambda: Network([Dropout(0.5), Dense(2, 1)])),
    ("drop-last", "DeclarationError", "is the last layer", lambda: Network(
        [Dense(2, 1), Dropout(0.5)])),
    # LayerNorm
    ("ln-mismatch", "DeclarationError", "make n = 3", lambda: Network(
        [Dense(2, 3), LayerNorm(4), Dense(4, 1)])),
    ("ln-eps-0", "DeclarationError", "eps must be a finite number > 0", lambda: LayerNorm(
        3, eps=0)),
    ("ln-eps-nan", "DeclarationError", "eps must be a finite number > 0", lambda: LayerNorm(
        3, eps=float("nan"))),
    ("ln-length-mismatch", "DeclarationError", "declared for sequences of length 4",
     lambda: Network([RNN(2, 3, length=3, return_sequences=True), LayerNorm(3, length=4),
                      Flatten(), Dense(9, 1)])),
    # Graph
    ("graph-cycle", "DeclarationError", "form a cycle", lambda: Graph(
        {"a": (Dense(2, 2), "b"), "b": ("tanh", "a")}, output="b")),
    ("graph-self-loop", "DeclarationError", "form a cycle", lambda: Graph(
        {"a": ("add", "a", "in")}, output="a")),
    ("graph-unknown-node", "DeclarationError", "which is not a node", lambda: Graph(
        {"a": (Dense(2, 2), "zz")}, output="a")),
    ("graph-unused-node", "DeclarationError", "computed but never used", lambda: Graph(
        {"a": (Dense(2, 2), "in"), "b": (Dense(2, 2), "in")}, output="a")),
    ("graph-two-outputs", "DeclarationError", "is not a node of the graph", lambda: Graph(
        {"a": (Dense(2, 2), "in")}, output=["a", "a"])),
    ("graph-no-output", "DeclarationError", "name the output node", lambda: Graph(
        {"a": (Dense(2, 2), "in")})),
    ("graph-conv-node", "DeclarationError", "cannot be a graph node", lambda: Graph(
        {"a": (Conv1D(1, 1, 1), "in")}, output="a")),
    ("graph-rnn-node", "DeclarationError", "cannot be a graph node", lambda: Graph(
        {"a": (RNN(2, 2), "in")}, output="a")),
    ("graph-width-mismatch", "DeclarationError", "add of 'h' (8 values)", lambda: Graph(
        {"h": (Dense(4, 8), "in"), "s": ("add", "h", "in")}, output="s")),
]
for _cid, _exp, _frag, _build in DECLS:
    decl(f"decl-{_cid}", _exp, _frag, _build)


@case("decl-names-unique-in-blocks", "ok")
def _names(d):
    """Parameter names stay unique through nested blocks of several kinds."""
    net = Network([Dense(2, 3), Residual([Dense(3, 3), Residual([Dense(3, 3), LayerNorm(3)])]),
                   Graph({"h": (Dense(3, 3), "in"), "r": (Residual([Dense(3, 3), LayerNorm(3)]),
                                                          "h"), "s": ("add", "r", "in")},
                         output="s"), Dense(3, 1)])
    names = [n for n, _ in net.param_shapes]
    assert len(names) == len(set(names)), names
    return {"names": names}


# -- spec files -----------------------------------------------------------------------------

def _spec(layers: str, loss: str = "mse") -> str:
    return f'[network]\nloss = "{loss}"\nlayers = [{layers}]\n'


_CONV = "{conv1d = [1, 2, 3], length = 8}"
_REST = '{flatten = true}, {dense = [12, 1]}'
SPECS = [
    ("conv-ok", "ok", "", f"{_CONV}, {{activation = \"relu\"}}, {_REST}"),
    ("conv-str-channels", "SpecError", "conv1d: expected [in_channels",
     '{conv1d = ["1", 2, 3], length = 8}, ' + _REST),
    ("conv-two-sizes", "SpecError", "conv1d: expected [in_channels",
     '{conv1d = [1, 2], length = 8}, ' + _REST),
    ("conv-stride-str", "SpecError", "conv1d stride", '{conv1d = [1, 2, 3], stride = "2", '
     'length = 8}, ' + _REST),
    ("conv-padding-neg", "SpecError", "conv1d padding", '{conv1d = [1, 2, 3], padding = -1, '
     'length = 8}, ' + _REST),
    ("conv-length-huge", "SpecError", "conv1d length", '{conv1d = [1, 2, 3], '
     'length = 99999999999999999}, ' + _REST),
    ("conv-bias-str", "SpecError", "conv1d bias", '{conv1d = [1, 2, 3], bias = "no", '
     'length = 8}, ' + _REST),
    ("conv-unknown-key", "SpecError", "unknown key 'dilation'", '{conv1d = [1, 2, 3], '
     'dilation = 2, length = 8}, ' + _REST),
    ("conv-kernel-long", "SpecError", "kernel (9) is longer", '{conv1d = [1, 2, 9], '
     'length = 8}, ' + _REST),
    ("pool-str", "SpecError", "max_pool1d: expected an integer from 1 to 1000000, got '2'",
     f'{_CONV}, {{max_pool1d = "2"}}, {{flatten = true}}, {{dense = [6, 1]}}'),
    ("pool-0", "SpecError", "avg_pool1d: expected an integer",
     f'{_CONV}, {{avg_pool1d = 0}}, {{flatten = true}}, {{dense = [6, 1]}}'),
    ("pool-extra-key", "SpecError", "unexpected keys ['stride']",
     f'{_CONV}, {{avg_pool1d = 2, stride = 2}}, {{flatten = true}}, {{dense = [6, 1]}}'),
    ("flatten-false", "SpecError", "flatten: expected true",
     f'{_CONV}, {{flatten = false}}, {{dense = [12, 1]}}'),
    ("two-kinds", "SpecError", "names one layer",
     '{conv1d = [1, 2, 3], flatten = true, length = 8}, {dense = [12, 1]}'),
    ("empty-table", "SpecError", "rnn, gru, self_attention, dropout, layer_norm",
     '{dense = [2, 3]}, {}, {dense = [3, 1]}'),
    ("rnn-T-0", "SpecError", "rnn length", '{rnn = [2, 3], length = 0}, {dense = [3, 1]}'),
    ("rnn-T-big", "SpecError", "expected an integer from 1 to 1000000",
     '{rnn = [2, 3], length = 4000000}, {dense = [3, 1]}'),
    ("gru-T-big", "SpecError", "MAX_UNROLLED_STEPS",
     '{gru = [2, 3], length = 100000, unroll = true}, {dense = [3, 1]}'),
    ("rnn-nonlinearity-int", "SpecError", "rnn nonlinearity",
     '{rnn = [2, 3], length = 4, nonlinearity = 3}, {dense = [3, 1]}'),
    ("rnn-activation-key", "SpecError", "given as nonlinearity",
     '{rnn = [2, 3], length = 4, activation = "relu"}, {dense = [3, 1]}'),
    ("rnn-softmax", "SpecError", "softmax is a layer of its own",
     '{rnn = [2, 3], length = 4, nonlinearity = "softmax"}, {dense = [3, 1]}'),
    ("rnn-return-str", "SpecError", "rnn return_sequences",
     '{rnn = [2, 3], length = 4, return_sequences = "yes"}, {dense = [3, 1]}'),
    ("gru-nonlinearity", "SpecError", "a gru has no nonlinearity",
     '{gru = [2, 3], length = 4, nonlinearity = "relu"}, {dense = [3, 1]}'),
    ("gru-three-sizes", "SpecError", "gru: expected [n_in, n_hidden]",
     '{gru = [2, 3, 4], length = 4}, {dense = [3, 1]}'),
    ("rnn-then-conv", "SpecError", "the axes would be swapped",
     '{rnn = [2, 3], length = 4, return_sequences = true}, {conv1d = [4, 2, 2]}, '
     '{flatten = true}, {dense = [4, 1]}'),
    ("att-dk-0", "SpecError", "self_attention: expected [d_model, d_k]",
     '{self_attention = [4, 0], length = 3}, {flatten = true}, {dense = [12, 1]}'),
    ("att-causal-str", "SpecError", "self_attention causal",
     '{self_attention = [4, 2], causal = "yes", length = 3}, {flatten = true}, '
     '{dense = [12, 1]}'),
    ("att-causal-alone", "SpecError", "causal belongs to a self_attention layer",
     '{causal = true}, {flatten = true}, {dense = [12, 1]}'),
    ("att-T-huge", "SpecError", "T×T attention scores",
     '{self_attention = [2, 1], length = 5000}, {flatten = true}, {dense = [10000, 1]}'),
    ("att-heads", "SpecError", "unknown key 'heads'",
     '{self_attention = [4, 2], heads = 2, length = 3}, {flatten = true}, {dense = [12, 1]}'),
    ("drop-one", "SpecError", "would drop every unit",
     '{dense = [2, 3]}, {dropout = 1.0}, {dense = [3, 1]}'),
    ("drop-nan", "SpecError", "0 ≤ p < 1", '{dense = [2, 3]}, {dropout = nan}, {dense = [3, 1]}'),
    ("drop-str", "SpecError", "p must be a number",
     '{dense = [2, 3]}, {dropout = "0.5"}, {dense = [3, 1]}'),
    ("drop-bool", "SpecError", "p must be a number",
     '{dense = [2, 3]}, {dropout = true}, {dense = [3, 1]}'),
    ("ln-ok", "ok", "", '{dense = [2, 3]}, {layer_norm = 3}, {dense = [3, 1]}'),
    ("ln-mismatch", "SpecError", "make n = 3",
     '{dense = [2, 3]}, {layer_norm = 4}, {dense = [4, 1]}'),
    ("ln-eps-0", "SpecError", "eps", '{dense = [2, 3]}, {layer_norm = 3, eps = 0}, '
     '{dense = [3, 1]}'),
    ("ln-misspelt", "SpecError", "did you mean 'layer_norm'",
     '{dense = [2, 3]}, {layernorm = 3}, {dense = [3, 1]}'),
    ("res-conv", "SpecError", "holds flat-vector layers",
     '{dense = [2, 3]}, {residual = [{dense = [3, 3]}, {conv1d = [1, 1, 1]}]}, '
     '{dense = [3, 1]}'),
    ("res-change", "SpecError", "map n values to n",
     '{dense = [2, 3]}, {residual = [{dense = [3, 4]}]}, {dense = [4, 1]}'),
    ("res-empty", "SpecError", "non-empty list", '{dense = [2, 3]}, {residual = []}, '
     '{dense = [3, 1]}'),
    ("res-deep", "SpecError", "nests at most", '{dense = [2, 3]}, ' + '{residual = [' * 60
     + '{dense = [3, 3]}' + ']}' * 60 + ', {dense = [3, 1]}'),
]
_G = ('{dense = [2, 3]}, {graph = {nodes = [%s], output = %s}}, {dense = [3, 1]}')
_H = '{name = "h", inputs = ["%s"], layer = {dense = [3, 3]}}'
SPECS += [
    ("graph-ok", "ok", "", _G % (_H % "in" + ', {name = "s", inputs = ["h", "in"], op = "add"}',
                                 '"s"')),
    ("graph-cycle", "SpecError", "form a cycle",
     _G % (_H % "s" + ', {name = "s", inputs = ["h", "in"], op = "add"}', '"s"')),
    ("graph-unknown", "SpecError", "not a node of the graph", _G % (_H % "zz", '"h"')),
    ("graph-unused", "SpecError", "computed but never used",
     _G % (_H % "in" + ', {name = "u", inputs = ["in"], layer = {dense = [3, 3]}}', '"h"')),
    ("graph-two-outputs", "SpecError", "is not a node of the graph",
     _G % (_H % "in", '["h", "h"]')),
    ("graph-op-sub", "SpecError", "expected add, mul or concat",
     _G % (_H % "in" + ', {name = "s", inputs = ["h", "in"], op = "sub"}', '"s"')),
    ("graph-rnn-node", "SpecError", "cannot be a graph node",
     _G % ('{name = "h", inputs = ["in"], layer = {rnn = [3, 3]}}', '"h"')),
]
for _cid, _exp, _frag, _layers in SPECS:
    CASES.append((f"spec-{_cid}", _exp, _frag,
                  lambda d, _t=_spec(_layers): symnn.spec.loads_spec(_t, name="h.toml")))


# -- compiled kernels: inputs of the wrong shape or kind -----------------------------------
NETS = {
    "conv": (lambda: Network([Conv1D(1, 2, 3, length=6), "relu", MaxPool1D(2), Flatten(),
                              Dense(4, 1)]), (1, 6)),
    "rnn": (lambda: Network([RNN(2, 3, length=4, return_sequences=True), Flatten(),
                             Dense(12, 1)]), (4, 2)),
    "att": (lambda: Network([SelfAttention(2, 2, length=3), LayerNorm(2), Flatten(),
                             Dense(6, 1)]), (3, 2)),
    "res": (lambda: Network([Dense(3, 4), Dropout(0.3), Residual([Dense(4, 4), LayerNorm(4)]),
                             Dense(4, 1)]), (3,)),
    "graph": (lambda: Network([Dense(3, 4), Graph({"h": (Dense(4, 4), "in"), "a": ("tanh", "h"),
                                                   "s": ("add", "a", "in")}, output="s"),
                               Dense(4, 1)]), (3,)),
}
_COMPILED: dict = {}


def _model(kind: str):
    if kind not in _COMPILED:
        build, shape = NETS[kind]
        m = build().compile()
        rng = np.random.default_rng(0)
        _COMPILED[kind] = (m, m.init(seed=0), rng.standard_normal((4, *shape)),
                           rng.standard_normal((4, 1)))
    return _COMPILED[kind]


def _same(a, b) -> None:
    assert np.array_equal(a, b), (a, b)


def _kernel(kind: str, what: str):
    def run(d):
        m, th, X, y = _model(kind)
        Xn = X.copy()
        Xn.flat[3] = np.nan
        calls = {
            "ok": lambda: m.predict(th, X),
            "rows-flat": lambda: m.predict(th, X.reshape(len(X), -1)),
            "swapped": lambda: m.predict(th, np.swapaxes(X, 1, 2)),
            "too-long": lambda: m.predict(th, np.concatenate([X, X], axis=-1)),
            "2d-of-3d": lambda: m.predict(th, X[:, 0, :]),
            "3d-of-2d": lambda: m.predict(th, X[:, None, :]),
            "4d": lambda: m.predict(th, X[:, None]),
            "float32": lambda: m.predict(th, X.astype(np.float32)),
            "nan": lambda: m.predict(th, Xn),
            "empty": lambda: m.predict(th, X[:0]),
            "text": lambda: m.predict(th, np.full(X.shape, "a")),
            "theta-short": lambda: m.predict(th[:-1], X),
            "fit-nan": lambda: symnn.fit(m, Xn, y, epochs=1),
            "fit-y-rows": lambda: symnn.fit(m, X, y[:3], epochs=1),
            "grad-y-3d": lambda: m.loss_and_grad(th, X, y[:, None]),
            "grad-float32": lambda: _same(m.loss_and_grad(th, X.astype(np.float32), y)[1],
                                          m.loss_and_grad(th, X.astype(np.float32)
                                                          .astype(np.float64), y)[1]),
            # Dropout masks (B, mask_width) of 0s and 1s
            "mask-ok": lambda: m.predict(th, X, mask=np.ones((len(X), m.mask_width))),
            "mask-wide": lambda: m.predict(th, X, mask=np.ones((len(X), m.mask_width + 1))),
            "mask-rows": lambda: m.predict(th, X, mask=np.ones((3, m.mask_width))),
            "mask-half": lambda: m.predict(th, X, mask=np.full((len(X), m.mask_width), 0.5)),
            "mask-nan": lambda: m.loss(th, X, y, mask=np.full((len(X), m.mask_width), np.nan)),
            "mask-text": lambda: m.predict(th, X, mask="ones"),
            "mask-none-to-mask": lambda: m.predict(th, X, mask=np.ones((len(X), 3))),
            "mask-hvp-wide": lambda: m.hvp(th, th, X, y, mask=np.ones((len(X), m.mask_width
                                                                        + 1))),
        }
        out = calls[what]()
        if what == "float32":  # the same values as float64 input, to the last bit
            assert np.array_equal(out, m.predict(th, X.astype(np.float32).astype(np.float64)))
        return {}
    return run


_SHAPE = "ShapeError"
for _k, _kind_cases in {
    "conv": [("ok", "ok", ""), ("rows-flat", "ok", ""), ("swapped", _SHAPE, "(1, 6)"),
             ("too-long", _SHAPE, "samples of shape (1, 12)"), ("4d", _SHAPE, "4-D"),
             ("float32", "ok", ""), ("nan", "DataError", "X contains nan"),
             ("empty", _SHAPE, "empty batch"), ("text", "DataError", "must be numeric"),
             ("theta-short", _SHAPE, "theta has shape"), ("fit-nan", "DataError", "nan"),
             ("fit-y-rows", _SHAPE, "y has shape (3, 1)"), ("grad-float32", "ok", "")],
    "rnn": [("ok", "ok", ""), ("rows-flat", "ok", ""), ("swapped", _SHAPE, "(4, 2)"),
            ("2d-of-3d", _SHAPE, "the model takes 8"), ("4d", _SHAPE, "4-D"),
            ("float32", "ok", ""), ("nan", "DataError", "X contains nan"),
            ("grad-y-3d", _SHAPE, "y has shape (4, 1, 1)"),
            ("mask-none-to-mask", "ArgumentError", "has no Dropout layer")],
    "att": [("ok", "ok", ""), ("swapped", _SHAPE, "(3, 2)"), ("2d-of-3d", _SHAPE, "takes 6"),
            ("nan", "DataError", "X contains nan"), ("fit-nan", "DataError", "nan"),
            ("float32", "ok", "")],
    "graph": [("ok", "ok", ""), ("3d-of-2d", _SHAPE, ""), ("nan", "DataError", "nan")],
    "res": [("ok", "ok", ""), ("3d-of-2d", _SHAPE, ""), ("float32", "ok", ""),
            ("nan", "DataError", "X contains nan"), ("grad-float32", "ok", ""),
            ("mask-ok", "ok", ""), ("mask-wide", _SHAPE, "mask must have shape (B, 4)"),
            ("mask-rows", _SHAPE, "got (3, 4)"), ("mask-half", "DataError", "= 0.5 ("),
            ("mask-nan", "DataError", "0 (dropped) or 1 (kept)"),
            ("mask-text", "DataError", "must be numeric"),
            ("mask-hvp-wide", _SHAPE, "mask must have shape")],
}.items():
    for _w, _exp, _frag in _kind_cases:
        CASES.append((f"kernel-{_k}-{_w}", _exp, _frag, _kernel(_k, _w)))


# -- model files: truncated and edited, for each new layer ----------------------------------

def _saved(d: str, kind: str) -> str:
    from symnn.train import io as sio

    path = os.path.join(d, f"{kind}.npz")
    if not os.path.exists(path):
        m, th, _, _ = _model(kind)
        sio.save(path, m, th)
    return path


def _edited(d: str, kind: str, label: str, edit) -> str:
    """The saved model file of ``kind`` with its stored layers edited and the checksum
    recomputed (a checksum is no signature: an edited file must still be refused)."""
    from symnn.train import io as sio

    with np.load(_saved(d, kind)) as z:
        meta = json.loads(z["meta"].tobytes())
        arrays = {n: z[n] for n in z.files if n != "meta"}
    edit(meta["spec"]["layers"])
    meta["sha256"] = sio._digest(meta, arrays["theta"], {})
    path = os.path.join(d, f"{kind}-{label}.npz")
    with open(path, "wb") as fh:
        np.savez(fh, meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8),
                 **arrays)
    return path


def _load_case(kind: str, label: str, edit):
    def run(d):
        from symnn.train import io as sio

        if edit is None:
            src = _saved(d, kind)
            data = open(src, "rb").read()
            path = os.path.join(d, f"{kind}-{label}.npz")
            with open(path, "wb") as fh:
                fh.write(data[: len(data) * 2 // 3])
        else:
            path = _edited(d, kind, label, edit)
        _, _, X, _ = _model(kind)
        return {"shape": list(sio.load(path).predict(X).shape)}
    return run


def _set(j: int, key: str, value):
    return lambda layers: layers[j].update({key: value})


_MF = "ModelFileError"
FILES = [
    ("conv", "truncated", _MF, "truncated/damaged", None),
    ("conv", "conv-none", _MF, "conv1d: expected", _set(0, "conv1d", None)),
    ("conv", "conv-neg", _MF, "conv1d: expected", _set(0, "conv1d", [-1, 2, 3])),
    ("conv", "conv-huge", _MF, "conv1d: expected", _set(0, "conv1d", [10**9, 2, 3])),
    ("conv", "conv-float", _MF, "conv1d: expected", _set(0, "conv1d", [1.0, 2.0, 3.0])),
    ("conv", "conv-stride-0", _MF, "conv1d stride", _set(0, "stride", 0)),
    ("conv", "conv-extra", _MF, "unexpected keys ['zzz']", _set(0, "zzz", 1)),
    ("conv", "conv-length-str", _MF, "conv1d length", _set(0, "length", "4")),
    ("conv", "pool-str", _MF, "max_pool1d: expected", _set(2, "max_pool1d", "x")),
    ("conv", "pool-dict", _MF, "max_pool1d: expected", _set(2, "max_pool1d", {"a": 1})),
    ("conv", "flatten-dropped", _MF, "", lambda ls: ls.pop(3)),
    ("conv", "reversed", _MF, "does not describe a valid model", lambda ls: ls.reverse()),
    ("conv", "dense-extra-key", _MF, "dense: unexpected keys", _set(4, "length", 0)),
    ("rnn", "truncated", _MF, "truncated/damaged", None),
    ("rnn", "rnn-length-0", _MF, "rnn length", _set(0, "length", 0)),
    ("rnn", "rnn-return-str", _MF, "rnn return_sequences", _set(0, "return_sequences", "x")),
    ("rnn", "rnn-last-state", _MF, "", _set(0, "return_sequences", False)),
    ("rnn", "rnn-extra", _MF, "unexpected keys ['zzz']", _set(0, "zzz", 1)),
    ("rnn", "rnn-to-gru", _MF, "parameter layout", lambda ls: ls.__setitem__(
        0, {"gru": ls[0]["rnn"], "length": 4, "return_sequences": True})),
    ("rnn", "rnn-duplicated", _MF, "make n_in = 3", lambda ls: ls.insert(0, dict(ls[0]))),
    ("att", "truncated", _MF, "truncated/damaged", None),
    ("att", "att-dk-0", _MF, "self_attention: expected", _set(0, "self_attention", [2, 0])),
    ("att", "att-length-none", "ok", "", _set(0, "length", None)),  # (inferred again)
    ("att", "att-causal-str", _MF, "self_attention causal", _set(0, "causal", "x")),
    ("att", "ln-str", _MF, "layer_norm: expected", _set(1, "layer_norm", "x")),
    ("att", "ln-eps-neg", _MF, "layer_norm eps", _set(1, "eps", -1)),
    ("att", "layer-list", _MF, "malformed layer", lambda ls: ls.__setitem__(0, [1, 2])),
    ("res", "truncated", _MF, "truncated/damaged", None),
    ("res", "drop-one", _MF, "would drop every unit", _set(1, "dropout", 1.0)),
    ("res", "drop-str", _MF, "p must be a number", _set(1, "dropout", "x")),
    ("res", "res-empty", _MF, "", _set(2, "residual", [])),
    ("res", "res-conv", _MF, "holds flat-vector layers", lambda ls: ls[2]["residual"].append(
        {"conv1d": [1, 1, 1]})),
    ("res", "res-str", _MF, "", _set(2, "residual", "x")),
]
_NODES = lambda ls: ls[1]["graph"]["nodes"]  # noqa: E731 - h (Dense), a (tanh), s (add)
FILES += [
    ("graph", "truncated", _MF, "truncated/damaged", None),
    ("graph", "unknown-input", _MF, "which is not a node", lambda ls: _NODES(ls)[0].update(
        {"inputs": ["zz"]})),
    ("graph", "cycle", _MF, "form a cycle", lambda ls: _NODES(ls)[0].update(
        {"inputs": ["s"]})),
    ("graph", "op-sub", _MF, "expected add, mul or concat", lambda ls: _NODES(ls)[2].update(
        {"op": "sub"})),
    ("graph", "output-unknown", _MF, "is not a node of the graph", lambda ls: ls[1][
        "graph"].update({"output": "q"})),
    ("graph", "output-list", _MF, "is not a node of the graph", lambda ls: ls[1][
        "graph"].update({"output": ["s", "a"]})),
    ("graph", "unused-node", _MF, "computed but never used", lambda ls: _NODES(ls).append(
        {"name": "u", "inputs": ["in"], "layer": {"dense": [4, 4]}})),
    ("graph", "too-many-nodes", _MF, "at most 1000", lambda ls: ls[1]["graph"].update(
        {"nodes": [{"name": f"n{i}", "inputs": ["in"], "op": "add"} for i in range(1001)]})),
    ("graph", "node-rnn", _MF, "cannot be a graph node", lambda ls: _NODES(ls)[0].update(
        {"layer": {"rnn": [4, 4]}})),
    ("graph", "nodes-dict", _MF, "", lambda ls: ls[1]["graph"].update({"nodes": {"h": 1}})),
    ("graph", "twice-named", _MF, "appears twice", lambda ls: _NODES(ls)[1].update(
        {"name": "h"})),
]
for _k, _label, _exp, _frag, _edit in FILES:
    CASES.append((f"file-{_k}-{_label}", _exp, _frag, _load_case(_k, _label, _edit)))


# -- the command line ---------------------------------------------------------------------

def _cli(text: str):
    def run(d):
        from symnn.cli import main

        path = os.path.join(d, f"cli-{abs(hash(text)) % 10**8}.toml")
        with open(path, "w") as fh:
            fh.write(text)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["derive", path])
        return {"code": code, "err": err.getvalue()}
    return run


CLI = [
    ("rnn-then-conv", "the axes would be swapped", _spec(
        '{rnn = [2, 3], length = 4, return_sequences = true}, {conv1d = [4, 2, 2]}, '
        '{flatten = true}, {dense = [4, 1]}')),
    ("gru-nonlinearity", "unexpected keys", _spec(
        '{gru = [2, 3], length = 4, nonlinearity = "relu"}, {dense = [3, 1]}')),
    ("att-T-huge", "T×T attention scores", _spec(
        '{self_attention = [2, 1], length = 5000}, {flatten = true}, {dense = [10000, 1]}')),
    ("res-conv", "holds flat-vector layers", _spec(
        '{dense = [2, 3]}, {residual = [{dense = [3, 3]}, {conv1d = [1, 1, 1]}]}, '
        '{dense = [3, 1]}')),
]
for _cid, _frag, _text in CLI:
    CASES.append((f"cli-{_cid}", "exit 1", _frag, _cli(_text)))


# -- round 5 (walk): tests/_hostile_walk_cases.py, run in this same subprocess ------------
import _hostile_walk_cases  # noqa: E402 - the tests folder is on sys.path (driver, runner)

CASES += _hostile_walk_cases.CASES


def run_all(d: str) -> dict:
    """Run every case in this process; ``{id: outcome}``."""
    import signal
    import time

    def alarm(*_):
        raise TimeoutError("the case ran past its alarm")

    signal.signal(signal.SIGALRM, alarm)
    results = {}
    for cid, _, _, fn in CASES:
        t = time.perf_counter()
        signal.alarm(180)  # walk 6: a cold conv compile took 60 s at load 11 (a hang guard)
        try:
            r = fn(d) or {}
            r = dict(r) if isinstance(r, dict) else {}
            r["error"] = None
        except BaseException as e:  # every outcome is recorded
            r = {"error": type(e).__name__, "bases": [b.__name__ for b in type(e).__mro__],
                 "message": str(e)}
        finally:
            signal.alarm(0)
        r["seconds"] = time.perf_counter() - t
        results[cid] = r
    return results
