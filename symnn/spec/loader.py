"""Spec files: a network or custom model, its optimizer, training and data, in TOML.

A spec file never executes code.  TOML is read by :mod:`tomllib`; every key is checked
against the keys its section allows; expressions (a custom model's outputs, a custom
activation's body) go through the whitelist parser :func:`symnn.spec.parse_expression`.
The format is documented in ``docs/spec-format.md``.

Examples
--------
>>> spec = loads_spec('''
... [network]
... layers = [2, 2, 1]
... activation = "sigmoid"
... output = "sigmoid"
... loss = "mse"
...
... [optimizer]
... name = "sgd"
... lr = 0.5
... ''', name="xor.toml")
>>> spec.declared
Network([Dense(2, 2), 'sigmoid', Dense(2, 1), 'sigmoid'], loss='mse')
>>> spec.optimizer
{'name': 'sgd', 'lr': 0.5}
>>> loads_spec('[network]\\nlayers = [2, 1]\\nactivaton = "tanh"\\n', name="bad.toml")
Traceback (most recent call last):
...
symnn.errors.SpecError: bad.toml: [network]: unknown key 'activaton' (did you mean \
'activation'?); allowed keys: activation, layers, loss, name, output, penalties
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp

from symnn.data import BUILTIN_DATA, read_regular_file, resolve_data_path
from symnn.declare.activations import ACTIVATIONS, Activation, get_activation
from symnn.declare.layers import DATA_READERS, Dense
from symnn.declare.losses import L1, L2, get_loss
from symnn.declare.model import Model
from symnn.declare.network import Network, mlp
from symnn.errors import ArgumentError, SpecError, SymnnError
from symnn.spec._notspec import not_toml_hint, refuse_model_file
from symnn.spec.blocks import graph_layer, residual_layer
from symnn.spec.parser import ALLOWED, CONSTANTS, parse_expression
from symnn.spec.schema import (
    FIELDS,
    LABEL_RE,
    LAYER_KINDS,
    MAX_LAYERS,
    MAX_WIDTH,
    NAME_RE,
    SECTION_KEYS,
    optimizer_options,
    short_int,
    type_name,
)
from symnn.spec.toml_writer import dumps_toml

__all__ = ["MAX_SPEC_BYTES", "SECTION_KEYS", "Spec", "load_spec", "loads_spec"]

#: Largest spec file read (bytes).
MAX_SPEC_BYTES = 1 << 20

@dataclass
class Spec:
    """A loaded spec: the declared network or model and the plain-data sections.

    Attributes
    ----------
    declared : Network or Model
        What ``[network]`` or ``[model]`` declares.
    kind : {"network", "model"}
    optimizer : dict or None
        ``[optimizer]`` as plain data (``{"name": "adam", "lr": 0.001}``) for the trainer.
    training, data : dict
        ``[training]`` and ``[data]`` as plain data (empty when absent).
    title, description : str or None
    path : pathlib.Path or None
        The file it was read from.
    source : dict
        The validated spec as plain data; :meth:`to_toml` writes it back.
    """

    declared: Network | Model
    kind: str
    optimizer: dict | None = None
    training: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    title: str | None = None
    description: str | None = None
    path: Path | None = None
    source: dict = field(default_factory=dict, repr=False)

    def to_toml(self) -> str:
        """The spec as TOML text that :func:`loads_spec` reads back to an equal spec.

        Examples
        --------
        >>> spec = loads_spec('[model]\\nexpr = "a*x"\\ninputs = ["x"]\\nparams = ["a"]\\n')
        >>> print(spec.to_toml())
        [model]
        expr = "a*x"
        inputs = ["x"]
        params = ["a"]
        <BLANKLINE>
        """
        return dumps_toml(self.source)

    def data_path(self, allow_outside: bool = False) -> Path | None:
        """``[data] source`` as a path relative to the spec file, when it names a file.

        Parameters
        ----------
        allow_outside : bool
            False (default): the path must stay inside the spec file's folder (no
            ``../..``, no absolute path or symlink elsewhere) — a spec file from someone
            else cannot make symnn read ``/etc/passwd``.

        Raises
        ------
        DataError
            When the path leaves the spec file's folder and ``allow_outside`` is False.
        """
        src = self.data.get("source")
        if not src or src.strip().lower() in BUILTIN_DATA:
            return None
        base = self.path.parent if self.path is not None else None
        where = f"{self.path or '<spec>'}: [data] source"
        return resolve_data_path(src, base, allow_outside, where=where)


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read a TOML spec file and build its network or model.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.toml`` file.

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        When the file cannot be read, is not valid TOML, has an unknown key, a value of the
        wrong type, an unknown activation or loss, or an expression outside the whitelist.
        The message names the file and the key.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "decay.toml").write_text(
    ...     '[model]\\nexpr = "a*exp(-b*x)"\\ninputs = ["x"]\\nparams = ["a", "b"]\\n')
    >>> load_spec(d / "decay.toml").declared
    Model(a*exp(-b*x), inputs=[x], params=[a, b], loss='mse')
    """
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise ArgumentError(f"load_spec: expected the path of a spec file (str or Path), got "
                            f"{type(path).__name__}")
    p = Path(path)
    # a regular file only (a FIFO would block the read for ever, /dev/zero never ends)
    try:
        raw = read_regular_file(p, MAX_SPEC_BYTES, "spec file", SpecError)
    except SpecError:
        refuse_model_file(p)  # walk: a model file gets its own message
        raise
    refuse_model_file(p, raw[:4])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(f"{p}: not UTF-8 text (byte {err.start}); save the spec as UTF-8") \
            from err
    # walk: a UTF-8 byte-order mark (Notepad writes one) was "malformed TOML … column 1"
    return loads_spec(text.removeprefix("\ufeff"), name=str(p), path=p)


def loads_spec(text: str, name: str = "<spec>", path: Path | None = None) -> Spec:
    """Build a :class:`Spec` from TOML text; ``name`` is used in error messages.

    Examples
    --------
    >>> loads_spec('[network]\\nlayers = [4, 8, 3]\\noutput = "softmax"\\n'
    ...            'loss = "cross_entropy"\\n').declared.n_params
    67
    """
    if not isinstance(text, str):
        raise ArgumentError(f"loads_spec: expected the spec as TOML text (a str), got "
                            f"{type(text).__name__}; use load_spec(path) for a file")
    text = text.removeprefix("\ufeff")  # walk 7: a BOM (as load_spec reads files)
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{name}: spec text longer than {MAX_SPEC_BYTES} characters")
    depth = _nesting(text)
    if depth > MAX_NESTING:
        raise SpecError(f"{name}: arrays or tables nested {depth} deep (a spec nests at most "
                        f"{MAX_NESTING})")
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as err:  # ValueError: a 5000-digit integer
        raise SpecError(f"{name}: malformed TOML: {err}{not_toml_hint(text)}") from err
    except RecursionError as err:
        raise SpecError(f"{name}: arrays or tables nested too deeply") from err
    return _Loader(name, path).build(doc)


#: Deepest nesting of arrays and inline tables accepted in a spec.
MAX_NESTING = 16


def _nesting(text: str) -> int:
    """The bracket nesting of TOML text, skipping strings and comments (an upper bound:
    multi-line strings are treated conservatively), checked before :mod:`tomllib`
    recurses into it."""
    depth = best = 0
    quote = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote is not None:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = None
            elif ch == "\n":
                quote = None  # single-line strings end here (multi-line: conservative)
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
        i += 1
    return best


# ----------------------------------------------------------------------------------------


class _Loader:
    def __init__(self, name: str, path: Path | None):
        self.name = name
        self.path = path

    def err(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.name}: {key}: {message}")

    def check_keys(self, table: dict, allowed: tuple[str, ...], key: str) -> None:
        for k in table:
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.err(key, f"unknown key {k!r}{hint}; allowed keys: "
                                    f"{', '.join(sorted(allowed))}")

    def table(self, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.err(key, f"expected a table, got {type_name(value)}")
        return value

    def build(self, doc: dict) -> Spec:
        self.check_keys(doc, SECTION_KEYS[""], "top level")
        has_net, has_model = "network" in doc, "model" in doc
        if has_net == has_model:
            raise self.err("top level", "declare exactly one of [network] or [model]"
                           + (" (both are present)" if has_net else ""))
        source: dict = {}
        title = description = None
        for k in ("title", "description"):
            if k in doc:
                if not isinstance(doc[k], str):
                    raise self.err(k, f"expected a string, got {type_name(doc[k])}")
                source[k] = doc[k]
        title, description = doc.get("title"), doc.get("description")
        if has_net:
            declared, section = self.network(self.table(doc["network"], "[network]"))
            source["network"] = section
        else:
            declared, section = self.model(self.table(doc["model"], "[model]"))
            source["model"] = section
        plain = {}
        for sec in ("optimizer", "training", "data"):
            if sec in doc:
                plain[sec] = self.plain(sec, self.table(doc[sec], f"[{sec}]"))
                source[sec] = plain[sec]
        if "optimizer" in plain:
            plain["optimizer"] = self.optimizer(plain["optimizer"])
        return Spec(
            declared=declared,
            kind="network" if has_net else "model",
            optimizer=plain.get("optimizer"),
            training=plain.get("training", {}),
            data=plain.get("data", {}),
            title=title,
            description=description,
            path=self.path,
            source=source,
        )

    # -- the optimizer ----------------------------------------------------------------
    def optimizer(self, t: dict) -> dict:
        """Check ``[optimizer]`` against the options the named optimizer has; returns the
        table the trainer gets (``momentum`` + ``nesterov = true`` becomes ``nesterov``)."""
        if "name" not in t:
            raise self.err("[optimizer]", "name the optimizer, e.g. name = \"adam\"")
        options = optimizer_options()
        key = re.sub(r"[\s\-]+", "_", t["name"].strip().lower())
        if key not in options:
            close = difflib.get_close_matches(key, list(options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.err("[optimizer] name", f"unknown optimizer {t['name']!r}{hint}; known "
                                               f"optimizers: {', '.join(sorted(options))}")
        allowed = options[key]
        for k in t:
            if k != "name" and k not in allowed:
                raise self.err(f"[optimizer] {k}",
                               f"optimizer {t['name']!r} has no option {k!r}; its options: "
                               f"{', '.join(sorted(allowed))}")
        out = dict(t)
        if out.get("nesterov") is False:
            del out["nesterov"]
        if out.pop("nesterov", False):
            out["name"] = "nesterov"
        try:
            from symnn.train.optimizers import get_optimizer

            get_optimizer(dict(out))
        except ImportError:  # pragma: no cover - symnn.train ships with symnn
            pass
        except SymnnError as err:
            raise self.err("[optimizer]", str(err)) from err
        return out

    # -- the declared object ----------------------------------------------------------
    def default_name(self, fallback: str) -> str:
        if self.path is None:
            return fallback
        stem = re.sub(r"\W", "_", self.path.stem, flags=re.ASCII)
        if not stem or not stem.isidentifier() or stem[0].isdigit():
            stem = f"{fallback}_{stem}" if stem else fallback
        return stem

    def name_of(self, table: dict, sec: str, fallback: str) -> str:
        if "name" not in table:
            return self.default_name(fallback)
        v = table["name"]
        if not isinstance(v, str) or not v.isidentifier() or not v.isascii():
            raise self.err(f"[{sec}] name", f"expected an identifier (letters, digits, _), "
                                            f"got {v!r}")
        return v

    def loss(self, table: dict, sec: str) -> str:
        v = table.get("loss", "mse")
        if not isinstance(v, str):
            raise self.err(f"[{sec}] loss", f"expected a loss name, got {type_name(v)}")
        try:
            get_loss(v)
        except SymnnError as err:
            from symnn.declare.losses import LOSSES

            message = str(err)
            if "did you mean" not in message:
                close = difflib.get_close_matches(v.strip().lower(), list(LOSSES), n=1,
                                                  cutoff=0.6)
                if not close:
                    squashed = {k.replace("_", ""): k for k in LOSSES}
                    close = [squashed[k] for k in difflib.get_close_matches(
                        v.strip().lower().replace("_", ""), list(squashed), n=1)]
                if close:
                    message = f"unknown loss {v!r} (did you mean {close[0]!r}?); known losses: " \
                              f"{', '.join(sorted(LOSSES))}"
            raise self.err(f"[{sec}] loss", message) from err
        return v

    def activation(self, value: Any, key: str, allow_softmax: bool = True):
        """(object for the declaration, plain data) of an activation given by name/table."""
        if isinstance(value, str):
            if value.lower() == "softmax":
                if not allow_softmax:
                    raise self.err(key, "softmax is only allowed as the output")
                return "softmax", value
            if value.lower() not in ACTIVATIONS:  # exact: no stray spaces or newlines
                close = difflib.get_close_matches(value.strip().lower(), list(ACTIVATIONS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.err(key, f"unknown activation {value!r}{hint}; known activations: "
                                    f"{', '.join(sorted(ACTIVATIONS))}"
                                    + (", softmax" if allow_softmax else "")
                                    + "; or a custom one: {expr = \"x/(1+abs(x))\", "
                                      "var = \"x\"}")
            return get_activation(value), value
        if isinstance(value, dict):
            self.check_keys(value, SECTION_KEYS["custom"], key)
            if "expr" not in value:
                raise self.err(key, "a custom activation needs expr = \"...\" (and var = "
                                    "\"x\", its variable)")
            var = value.get("var", "x")
            label = value.get("name", "f")
            self.symbol_name(var, f"{key}.var")
            if not isinstance(label, str) or not LABEL_RE.match(label):
                raise self.err(f"{key}.name", f"expected a name of letters and digits "
                                              f"(printed as the function's name), got {label!r}")
            sym = sp.Symbol(var, real=True)
            body = parse_expression(value["expr"], {var: sym}, where=f"{self.name}: {key}.expr")
            try:
                act = Activation.from_lambda(sp.Lambda(sym, body), name=label)
            except SymnnError as err:
                raise self.err(key, str(err)) from err
            plain = {"expr": value["expr"]}
            if "var" in value:
                plain["var"] = var
            if "name" in value:
                plain["name"] = label
            return act, plain
        raise self.err(key, f"expected an activation name or a table {{expr = \"...\", "
                            f"var = \"x\"}}, got {type_name(value)}")

    def penalties(self, value: Any, sec: str) -> tuple[list, dict]:
        key = f"[{sec}.penalties]"
        table = self.table(value, key)
        self.check_keys(table, SECTION_KEYS["penalties"], key)
        out, plain = [], {}
        for kind in ("l1", "l2"):
            if kind not in table:
                continue
            v = table[kind]
            params = None
            if isinstance(v, dict):
                self.check_keys(v, SECTION_KEYS["penalty"], f"{key} {kind}")
                if "lam" not in v:
                    raise self.err(f"{key} {kind}", "give the strength: lam = 0.001")
                lam = v["lam"]
                if "params" in v:
                    params = self.str_list(v["params"], f"{key} {kind}.params", allow_empty=False)
            else:
                lam = v
            lam = self.number(lam, f"{key} {kind}", lo=0.0)
            out.append((L1 if kind == "l1" else L2)(lam, params))
            plain[kind] = v
        return out, plain

    def network(self, t: dict) -> tuple[Network, dict]:
        self.check_keys(t, SECTION_KEYS["network"], "[network]")
        if "layers" not in t:
            raise self.err("[network]", "give the layers: layers = [n_in, n_hidden, n_out] "
                                        "or a list of {dense = [n_in, n_out]} and "
                                        "{activation = \"tanh\"} tables")
        plain: dict = {}
        name = self.name_of(t, "network", "net")
        if "name" in t:
            plain["name"] = name
        layers = t["layers"]
        if not isinstance(layers, list) or not layers:
            raise self.err("[network] layers",
                           f"expected a non-empty list, got {type_name(layers)}")
        loss = self.loss(t, "network")
        penalties, pen_plain = ([], {})
        if "penalties" in t:
            penalties, pen_plain = self.penalties(t["penalties"], "network")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in layers):
            builder = self.widths(t, layers, plain, loss, penalties, name)
        elif all(isinstance(v, dict) for v in layers):
            builder = self.tables(t, layers, plain, loss, penalties, name)
        else:
            raise self.err("[network] layers", "expected a list of widths ([8, 16, 3]) or a list "
                                               "of layer tables ({dense = [8, 16]}, "
                                               "{activation = \"tanh\"}), not a mixture")
        if "loss" in t:
            plain["loss"] = loss
        if "penalties" in t:
            plain["penalties"] = pen_plain
        try:
            return builder(), plain
        except SymnnError as err:
            raise self.err("[network]", str(err)) from err

    def widths(self, t: dict, layers: list, plain: dict, loss, penalties, name):
        """``layers = [n_in, n_hidden, …, n_out]`` with ``activation`` and ``output``: an mlp."""
        if len(layers) < 2:
            raise self.err("[network] layers", "list at least the input and output widths, "
                                               "e.g. [2, 1]")
        if len(layers) > MAX_LAYERS:
            raise self.err("[network] layers", f"{len(layers)} layers (at most {MAX_LAYERS})")
        for i, v in enumerate(layers):
            if not 1 <= v <= MAX_WIDTH:
                raise self.err(f"[network] layers[{i}]", f"widths must be from 1 to "
                                                       f"{MAX_WIDTH}, got {short_int(v)}")
        plain["layers"] = list(layers)
        act, act_plain = self.activation(t.get("activation", "tanh"),
                                         "[network] activation", allow_softmax=False)
        if "activation" in t:
            plain["activation"] = act_plain
        out = None
        if "output" in t:
            out, plain["output"] = self.activation(t["output"], "[network] output")

        def builder():
            return mlp(layers, activation=act, output=out, loss=loss,
                       penalties=penalties, name=name)
        return builder

    def tables(self, t: dict, layers: list, plain: dict, loss, penalties, name):
        """``layers = [{dense = [n_in, n_out]}, {activation = "tanh"}, …]``."""
        if len(layers) > 2 * MAX_LAYERS:
            raise self.err("[network] layers", f"{len(layers)} layer tables (at most "
                                               f"{2 * MAX_LAYERS})")
        for k in ("activation", "output"):
            if k in t:
                raise self.err(f"[network] {k}", "applies only when layers is a list of "
                                                 "widths; with layer tables write "
                                                 "{activation = \"...\"} entries")
        objs, plain_layers = [], []
        for i, item in enumerate(layers):
            obj, p = self.layer(item, f"[network] layers[{i}]")
            objs.append(obj)
            plain_layers.append(p)
        plain["layers"] = plain_layers

        def builder():
            return Network(objs, loss=loss, penalties=penalties, name=name)
        return builder

    def layer(self, item: dict, key: str):
        self.check_keys(item, SECTION_KEYS["layer"], key)
        if "graph" in item:  # symnn.Graph (issue 13)
            return graph_layer(self, item, key)
        for _, read in (r for r in DATA_READERS if set(item) & set(r[0])):
            obj, problem = read(item, MAX_WIDTH)  # Conv1D, pools, Flatten, LayerNorm …
            if problem:
                raise self.err(key, problem)
            return obj, obj.to_data()
        stray = [k for k in ("stride", "padding", "length", "eps") if k in item]
        if stray:  # (eps: a layer_norm's)
            raise self.err(f"{key}.{stray[0]}", f"{stray[0]} belongs to a "
                           f"{'layer_norm' if stray[0] == 'eps' else 'conv1d'} layer")
        if sum(k in item for k in LAYER_KINDS) != 1:
            kinds = ("dense", "activation", "residual", "graph") + tuple(
                k for r in DATA_READERS for k in r[0] if k != "causal")  # (hostile round)
            raise self.err(key, f"a layer table has exactly one of {', '.join(kinds)}")
        if "dense" in item:
            d = item["dense"]
            if (not isinstance(d, list) or len(d) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool)
                               and 1 <= v <= MAX_WIDTH for v in d)):
                raise self.err(f"{key}.dense", f"expected [n_in, n_out] of integers from 1 to "
                                               f"{MAX_WIDTH}, got {str(d)[:60]}")
            bias = item.get("bias", True)
            if not isinstance(bias, bool):
                raise self.err(f"{key}.bias", f"expected true or false, got {type_name(bias)}")
            plain = {"dense": list(d)}
            if "bias" in item:
                plain["bias"] = bias
            return Dense(d[0], d[1], bias=bias), plain
        if "bias" in item:
            raise self.err(f"{key}.bias", "bias belongs to a dense layer")
        if "residual" in item:
            return self.residual(item["residual"], f"{key}.residual")
        obj, p = self.activation(item["activation"], f"{key}.activation")
        return obj, {"activation": p}

    def residual(self, items: Any, key: str):
        """A ``residual`` layer table (read in :mod:`symnn.spec.blocks`)."""
        return residual_layer(self, items, key)

    def model(self, t: dict) -> tuple[Model, dict]:
        self.check_keys(t, SECTION_KEYS["model"], "[model]")
        for k in ("expr", "inputs", "params"):
            if k not in t:
                raise self.err("[model]", f"missing key {k!r}; a model needs expr, inputs and "
                                          "params")
        plain: dict = {}
        name = self.name_of(t, "model", "model")
        if "name" in t:
            plain["name"] = name
        inputs = self.str_list(t["inputs"], "[model] inputs", allow_empty=False)
        params = self.str_list(t["params"], "[model] params", allow_empty=False)
        symbols: dict[str, sp.Symbol] = {}
        for key, names in (("inputs", inputs), ("params", params)):
            for i, n in enumerate(names):
                self.symbol_name(n, f"[model] {key}[{i}]")
                if n in symbols:
                    raise self.err(f"[model] {key}[{i}]", f"{n!r} is declared twice")
                symbols[n] = sp.Symbol(n, real=True)
        exprs_t = t["expr"]
        if isinstance(exprs_t, str):
            texts, keys = [exprs_t], ["[model] expr"]
        elif isinstance(exprs_t, list) and exprs_t and all(isinstance(e, str) for e in exprs_t):
            texts, keys = list(exprs_t), [f"[model] expr[{i}]" for i in range(len(exprs_t))]
        else:
            raise self.err("[model] expr", "expected an expression string or a non-empty list "
                                            f"of them, got {type_name(exprs_t)}")
        exprs = [parse_expression(s, symbols, where=f"{self.name}: {k}")
                 for s, k in zip(texts, keys)]
        plain["expr"] = exprs_t
        plain["inputs"] = inputs
        plain["params"] = params
        loss = self.loss(t, "model")
        out = None
        if "output" in t:
            out, plain["output"] = self.activation(t["output"], "[model] output")
        if "loss" in t:
            plain["loss"] = loss
        penalties: list = []
        if "penalties" in t:
            penalties, plain["penalties"] = self.penalties(t["penalties"], "model")
        try:
            m = Model(exprs if len(exprs) > 1 else exprs[0],
                      inputs=[symbols[n] for n in inputs], params=[symbols[n] for n in params],
                      loss=loss, output=out, penalties=penalties, name=name)
        except SymnnError as err:
            raise self.err("[model]", str(err)) from err
        return m, plain

    # -- values -----------------------------------------------------------------------
    def symbol_name(self, n: Any, key: str) -> None:
        if not isinstance(n, str) or not NAME_RE.match(n) or "__" in n or n.endswith("_"):
            raise self.err(key, f"expected a symbol name (a letter, then letters, digits or "
                                f"single underscores), got {n!r}")
        if n in ALLOWED or n in CONSTANTS:
            what = "function" if n in ALLOWED else "constant"
            raise self.err(key, f"{n!r} is reserved for the {what} of that name; choose another "
                                "symbol name")

    def str_list(self, v: Any, key: str, allow_empty: bool = True) -> list[str]:
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise self.err(key, f"expected a list of strings, got {type_name(v)}")
        if not v and not allow_empty:
            raise self.err(key, "the list is empty")
        return list(v)

    def number(self, v: Any, key: str, lo: float | None = None, hi: float | None = None,
               closed_lo: bool = True) -> float | int:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.err(key, f"expected a number, got {type_name(v)}")
        if not math.isfinite(v):
            raise self.err(key, f"expected a finite number, got {v}")
        if lo is not None and (v < lo or (v == lo and not closed_lo)):
            raise self.err(key, f"must be {'≥' if closed_lo else '>'} {lo:g}, got {v}")
        if hi is not None and v > hi:
            raise self.err(key, f"must be ≤ {hi:g}, got {v}")
        return v

    def plain(self, sec: str, t: dict) -> dict:
        self.check_keys(t, SECTION_KEYS[sec], f"[{sec}]")
        fields = FIELDS[sec]
        for k, v in t.items():
            self.value(fields[k], f"[{sec}] {k}", v)
        return dict(t)

    def value(self, kind: tuple, key: str, v: Any) -> None:
        """Check one value of a plain-data section against its kind (see ``FIELDS``)."""
        if kind[0] == "str":
            if not isinstance(v, str) or not v:
                raise self.err(key, f"expected a non-empty string, got {type_name(v)}")
        elif kind[0] == "bool":
            if not isinstance(v, bool):
                raise self.err(key, f"expected true or false, got {type_name(v)}")
        elif kind[0] == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.err(key, f"expected an integer, got {type_name(v)}")
            if v < kind[1]:
                raise self.err(key, f"must be ≥ {kind[1]}, got {short_int(v)}")
            if kind[2] is not None and v > kind[2]:
                raise self.err(key, f"must be ≤ {kind[2]}, got {short_int(v)}")
        elif kind[0] == "num":
            closed = kind[3] if len(kind) > 3 else True
            self.number(v, key, kind[1], kind[2], closed_lo=closed)
        elif kind[0] == "choice":
            if v not in kind[1:]:
                raise self.err(key, f"expected one of {', '.join(map(repr, kind[1:]))}, "
                                    f"got {v!r}")
        elif kind[0] == "target":
            ok = (isinstance(v, (str, int)) and not isinstance(v, bool)) or (
                isinstance(v, list) and v and all(
                    isinstance(s, (str, int)) and not isinstance(s, bool) for s in v))
            if not ok:
                raise self.err(key, "expected a column name or index, or a list of them, "
                                    f"got {type_name(v)}")
