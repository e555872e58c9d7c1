"""What a spec file may say: the keys of each section, the kinds and bounds of their values,
and the options each optimizer accepts."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SECTION_KEYS", "FIELDS", "NAME_RE", "LABEL_RE", "MAX_WIDTH", "MAX_INT_SETTING",
           "MAX_LAYERS", "LAYER_KINDS", "optimizer_options", "short_int", "type_name"]

#: The keys each section allows.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "": ("title", "description", "network", "model", "optimizer", "training", "data"),
    "network": ("name", "layers", "activation", "output", "loss", "penalties"),
    "model": ("name", "expr", "inputs", "params", "output", "loss", "penalties"),
    "penalties": ("l1", "l2"),
    "penalty": ("lam", "params"),
    "layer": ("dense", "bias", "activation", "residual", "conv1d", "stride", "padding",
              "length", "avg_pool1d", "max_pool1d", "flatten",
              "graph",  # graph: symnn.Graph (issue 13)
              "dropout",  # (issue 13: dropout)
              "layer_norm", "eps",  # LayerNorm
              "rnn", "gru", "nonlinearity", "return_sequences", "truncate",  # recurrent
              "self_attention", "causal",  # (self-attention: issue 13)
              "unroll"),  # an RNN looped over time (scan)
    "custom": ("expr", "var", "name"),
    "optimizer": ("name", "lr", "momentum", "nesterov", "beta1", "beta2", "eps", "rho",
                  "weight_decay", "damping", "memory", "max_iter", "tol", "clip"),
    "training": ("epochs", "batch_size", "seed", "shuffle", "check_every", "dtype",
                 "validation_split", "patience", "verbose"),
    "data": ("source", "target", "header", "delimiter", "one_hot", "standardize",
             "test_size"),
}

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
LABEL_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")

#: The keys of which a layer table has exactly one (``residual``: a list of layer tables).
LAYER_KINDS = ("dense", "activation", "residual")

#: Widest layer a spec may declare, and the bounds of its integer settings (a spec from
#: elsewhere must not make symnn allocate terabytes or loop for ever).
MAX_WIDTH = 1_000_000
MAX_INT_SETTING = 10_000_000
MAX_LAYERS = 1000

# value kinds of the plain-data sections: (type check, description)
_INT_MIN1 = ("int", 1, MAX_INT_SETTING)
FIELDS: dict[str, dict[str, tuple]] = {
    "optimizer": {
        "name": ("str",), "lr": ("num", 0.0, None, False), "momentum": ("num", 0.0, 1.0),
        "nesterov": ("bool",), "beta1": ("num", 0.0, 1.0), "beta2": ("num", 0.0, 1.0),
        "eps": ("num", 0.0, None, False), "rho": ("num", 0.0, 1.0),
        "weight_decay": ("num", 0.0, None), "damping": ("num", 0.0, None),
        "memory": _INT_MIN1, "max_iter": _INT_MIN1, "tol": ("num", 0.0, None),
        "clip": ("num", 0.0, None, False),
    },
    "training": {
        "epochs": _INT_MIN1, "batch_size": _INT_MIN1, "seed": ("int", 0, 2**63 - 1),
        "shuffle": ("bool",), "check_every": ("int", 0, MAX_INT_SETTING),
        "dtype": ("choice", "float64", "float32"), "validation_split": ("num", 0.0, 1.0),
        "patience": _INT_MIN1, "verbose": ("bool",),
    },
    "data": {
        "source": ("str",), "target": ("target",), "header": ("bool",),
        "delimiter": ("str",), "one_hot": ("bool",), "standardize": ("bool",),
        "test_size": ("num", 0.0, 1.0),
    },
}


_OPTION_KEYS: dict[str, tuple[str, ...]] | None = None


def optimizer_options() -> dict[str, tuple[str, ...]]:
    """Optimizer name → the ``[optimizer]`` keys it accepts (from the constructors'
    signatures, so the table cannot drift from :mod:`symnn.train.optimizers`).

    Examples
    --------
    >>> optimizer_options()["adam"]
    ('beta1', 'beta2', 'clip', 'eps', 'lr', 'weight_decay')
    >>> "nesterov" in optimizer_options()["momentum"], "nesterov" in optimizer_options()["adam"]
    (True, False)
    """
    global _OPTION_KEYS
    if _OPTION_KEYS is not None:
        return _OPTION_KEYS
    import inspect

    from symnn.train import optimizers as O
    from symnn.train import second_order as so
    from symnn.train.kfac import KFAC

    spec_to_kw = {"lr": "lr", "momentum": "momentum", "beta1": "beta1", "beta2": "beta2",
                  "eps": "eps", "rho": "rho", "weight_decay": "weight_decay",
                  "damping": "damping", "memory": "memory", "max_iter": "max_iter",
                  "tol": "tol", "clip": "clip_norm"}
    classes = {"sgd": O.SGD, "momentum": O.Momentum, "nesterov": O.Nesterov,
               "adagrad": O.Adagrad, "rmsprop": O.RMSProp, "adam": O.Adam, "lbfgs": so.LBFGS,
               "l_bfgs": so.LBFGS, "newton_cg": so.NewtonCG, "trust_ncg": so.NewtonCG,
               "newton": so.Newton, "lm": so.LevenbergMarquardt,
               "levenberg_marquardt": so.LevenbergMarquardt, "kfac": KFAC}
    table = {}
    for name, cls in classes.items():
        kws = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters
            kws |= {p for p in params if p != "self"}
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                break
        keys = {k for k, kw in spec_to_kw.items() if kw in kws}
        if name in ("sgd", "momentum", "nesterov"):
            keys |= {"momentum", "nesterov"}
        table[name] = tuple(sorted(keys))
    _OPTION_KEYS = table
    return table


def short_int(v: int) -> str:
    text = str(v) if v.bit_length() < 200 else f"an integer of {len(str(v))} digits"
    return text


def type_name(v: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
             list: "an array", dict: "a table"}
    return names.get(type(v), type(v).__name__)
