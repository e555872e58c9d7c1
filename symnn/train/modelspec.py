"""Networks and custom models as the plain-data spec a model file stores, and back.

Rebuilding runs no code: layers, activations and losses are looked up by name in symnn's
registries, expressions come back through :func:`~symnn.train.exprdata.expr_from_data`.
"""

from __future__ import annotations

import re
from typing import Any

import sympy as sp

from symnn.errors import ModelFileError, SymnnError
from symnn.train.exprdata import expr_from_data, expr_to_data, roundtrip

__all__ = ["spec_of", "declared_from_spec"]

_LABEL_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")


_VAR = sp.Symbol("t", real=True)


def _activation_data(act, where: str) -> dict:
    from symnn.declare.activations import ACTIVATIONS

    if act.key and act.key[0] == "lambda":
        return {"activation": act.name, "custom": roundtrip(act.apply(_VAR), where)}
    if ACTIVATIONS.get(act.name) is not act:
        raise ModelFileError(f"{where}: activation {act.name!r} is not a registered one and "
                             "not a sympy.Lambda; symnn cannot store it")
    return {"activation": act.name}


def _layer_data(layer, where: str) -> dict:
    """One layer's stored form: an activation checked, a block's inner layers in turn."""
    from symnn.declare.blocks import Residual
    from symnn.declare.layers import Act

    if isinstance(layer, Act):
        return _activation_data(layer.activation, where)
    if isinstance(layer, Residual):
        return {"residual": [_layer_data(inner, f"{where}, inner layer {j}")
                             for j, inner in enumerate(layer.layers)]}
    if hasattr(layer, "data_with"):  # symnn.Graph: each node's layer checked in turn
        return layer.data_with(lambda inner, name: _layer_data(inner, f"{where}, node {name!r}"))
    return layer.to_data()


def _check_loss(declared) -> None:
    from symnn.declare.losses import LOSSES

    if LOSSES.get(declared.loss.name) is not declared.loss:
        raise ModelFileError(f"loss {declared.loss.name!r} is not a registered loss; symnn "
                             "cannot store it")


def spec_of(declared) -> dict:
    """The plain-data spec stored in a model file (networks and custom models)."""
    from symnn.declare.layers import Act, Softmax
    from symnn.declare.model import Model
    from symnn.declare.network import Network

    _check_loss(declared)
    pens = [{"kind": p.kind, "lam": p.lam, "params": list(p.params) if p.params else None}
            for p in declared.penalties]
    if isinstance(declared, Network):
        spec = declared.spec()
        # each layer's own plain form; an activation's is checked (registered, or a
        # Lambda whose body is stored as an expression tree)
        spec["layers"] = [_layer_data(layer, f"layer {i}")
                          for i, layer in enumerate(declared.layers)]
        spec["penalties"] = pens
        return spec
    if isinstance(declared, Model):
        out = None
        if isinstance(declared.output, Softmax):
            out = {"activation": "softmax"}
        elif isinstance(declared.output, Act):
            out = _activation_data(declared.output.activation, "model output")
        return {
            "kind": "model",
            "name": declared.name,
            "exprs": [roundtrip(e, f"model output {i}") for i, e in enumerate(declared.exprs)],
            "inputs": [expr_to_data(s) for s in declared.inputs],
            "params": [expr_to_data(s) for s in declared.params],
            "loss": declared.loss.name,
            "output": out,
            "penalties": pens,
        }
    raise ModelFileError(f"cannot save a {type(declared).__name__}: expected a Network, a "
                         "Model or a compiled model")


def _dense_from(data: dict, where: str):
    from symnn.declare.layers import Dense

    d = data["dense"]
    if (not isinstance(d, list) or len(d) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in d)):
        raise ModelFileError(f"{where}: malformed dense sizes {str(d)[:80]!r}")
    if not all(1 <= v <= 1 << 20 for v in d):
        raise ModelFileError(f"{where}: dense sizes {d} out of range (1 to {1 << 20})")
    if not isinstance(data.get("bias", True), bool):
        raise ModelFileError(f"{where}: malformed bias flag")
    if set(data) - {"dense", "bias"}:  # (hostile round: they were ignored)
        raise ModelFileError(f"{where}: dense: unexpected keys "
                             f"{sorted(map(str, set(data) - {'dense', 'bias'}))[:5]}")
    return Dense(d[0], d[1], data.get("bias", True))


def _custom_from(name: str, stored: Any, where: str):
    """A custom activation from its stored expression tree (variable ``t``), checked."""
    from symnn.declare.activations import Activation
    from symnn.declare.model import constant_problem, derivative_problem

    body = expr_from_data(stored)
    if not isinstance(body, sp.Expr):
        raise ModelFileError(f"{where}: the custom activation body is not an expression")
    if body.free_symbols - {_VAR}:
        raise ModelFileError(f"{where}: the custom activation body uses symbols other "
                             f"than its variable")
    problem = constant_problem(body) or derivative_problem(body)
    if problem:
        raise ModelFileError(f"{where}: {problem}")
    return Activation.from_lambda(sp.Lambda(_VAR, body), name=name)


#: Deepest nesting of blocks (a Residual inside a Residual …) a model file may hold.
MAX_BLOCK_DEPTH = 16


def _residual_from(data: dict, where: str, depth: int):
    from symnn.declare.blocks import Residual

    inner = data["residual"]
    if not isinstance(inner, list) or not inner or len(inner) > 1000:
        raise ModelFileError(f"{where}: malformed residual block {str(inner)[:80]!r}")
    if depth >= MAX_BLOCK_DEPTH:
        raise ModelFileError(f"{where}: blocks nested deeper than {MAX_BLOCK_DEPTH}")
    return Residual([_layer_from(d, f"{where}, inner layer {j}", depth + 1)
                     for j, d in enumerate(inner)])


def _graph_from(data: dict, where: str, depth: int):
    """A symnn.Graph (issue 13) from its stored form, each node's layer read in turn."""
    from symnn.declare.graph import graph_from_data
    from symnn.errors import DeclarationError

    if depth >= MAX_BLOCK_DEPTH:
        raise ModelFileError(f"{where}: blocks nested deeper than {MAX_BLOCK_DEPTH}")
    try:
        return graph_from_data(data["graph"], lambda it, at: _layer_from(it, at, depth + 1),
                               f"{where}, graph")
    except DeclarationError as err:
        raise ModelFileError(f"{where}: {err}") from err


def _layer_from(data: Any, where: str, depth: int = 0):
    if not isinstance(data, dict):
        raise ModelFileError(f"{where}: malformed layer {str(data)[:80]!r}")
    if "dense" in data:
        return _dense_from(data, where)
    if "residual" in data:
        return _residual_from(data, where, depth)
    if "graph" in data:
        return _graph_from(data, where, depth)
    from symnn.declare.layers import DATA_READERS  # Conv1D, pools, Flatten, LayerNorm …

    for _, read in (r for r in DATA_READERS if set(data) & set(r[0])):
        layer, problem = read(data, 1 << 20)
        if problem:
            raise ModelFileError(f"{where}: {problem}")
        return layer
    name = data.get("activation")
    if not isinstance(name, str):
        raise ModelFileError(f"{where}: malformed layer {str(data)[:80]!r}")
    if "custom" not in data:
        from symnn.declare.activations import ACTIVATIONS

        if name.lower() not in ACTIVATIONS and name.lower() != "softmax":
            raise ModelFileError(f"{where}: unknown activation {name[:40]!r}")
        return name
    if not _LABEL_RE.match(name) or len(name) > 40:
        raise ModelFileError(f"{where}: custom activation name {name[:40]!r} is not a name of "
                             "letters and digits (as a spec file requires)")
    if data["custom"] is True:
        raise ModelFileError(f"{where}: custom activation {name!r} was stored without its "
                             "expression")
    return _custom_from(name, data["custom"], where)


def declared_from_spec(spec: Any):
    """Rebuild a Network or Model from :func:`spec_of` data (no code is executed)."""
    from symnn.declare.losses import L1, L2
    from symnn.declare.model import Model
    from symnn.declare.network import Network

    if not isinstance(spec, dict):
        raise ModelFileError("the stored spec is not a table")
    try:
        pens = []
        for p in spec.get("penalties") or []:
            if not isinstance(p, dict):
                raise ModelFileError("malformed penalty")
            maker = {"l1": L1, "l2": L2}.get(p.get("kind"))
            if maker is None:
                raise ModelFileError(f"unknown penalty {p!r}")
            pens.append(maker(p["lam"], p.get("params")))
        kind = spec.get("kind")
        # walk: keys nothing reads were ignored (an edited file's "activation" at the top)
        extra = set(spec) - {"kind", "name", "loss", "penalties", "layers", "exprs", "inputs",
                             "params", "output"}
        if extra:
            raise ModelFileError(f"the stored spec has unexpected keys "
                                 f"{sorted(map(str, extra))[:5]}")
        if kind == "network":
            layers = spec.get("layers")
            if not isinstance(layers, list):
                raise ModelFileError("the stored network has no list of layers")
            if len(layers) > 1000:
                raise ModelFileError(f"the stored network has {len(layers)} layers (limit 1000)")
            return Network([_layer_from(d, f"layer {i}") for i, d in enumerate(layers)],
                           loss=spec.get("loss"), penalties=pens, name=spec.get("name", "net"))
        if kind == "model":
            exprs = [expr_from_data(e) for e in spec.get("exprs", [])]
            inputs = [expr_from_data(s) for s in spec.get("inputs", [])]
            params = [expr_from_data(s) for s in spec.get("params", [])]
            out = spec.get("output")
            output = None if out is None else _layer_from(out, "model output")
            return Model(exprs, inputs=inputs, params=params, loss=spec.get("loss"),
                         output=output, penalties=pens, name=spec.get("name", "model"))
        raise ModelFileError(f"unknown model kind {kind!r} in the stored spec")
    except ModelFileError:
        raise
    except (SymnnError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise ModelFileError(f"the stored spec does not describe a valid model: {err}") from err
