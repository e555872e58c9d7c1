"""Spec files: the layer tables of blocks — ``residual`` (:class:`~symnn.Residual`) and
``graph`` (:class:`~symnn.Graph`), read with the loader's own layer reader for their inner
layers (so a block holds anything a ``layers`` list may).

Examples
--------
>>> from symnn.spec import loads_spec
>>> spec = loads_spec('''
... [network]
... loss = "mse"
... layers = [
...   {graph = {output = "c", nodes = [
...       {name = "h", layer = {dense = [2, 4]}, inputs = ["in"]},
...       {name = "a", layer = {activation = "tanh"}, inputs = ["h"]},
...       {name = "c", op = "concat", inputs = ["a", "in"]}]}},
...   {dense = [6, 1]}]
... ''')
>>> spec.declared.layers[0]
Graph({'h': (Dense(2, 4), 'in'), 'a': ('tanh', 'h'), 'c': ('concat', 'a', 'in')}, output='c')
"""

from __future__ import annotations

from typing import Any

from symnn.declare.blocks import Residual
from symnn.declare.graph import graph_from_data
from symnn.errors import SpecError, SymnnError
from symnn.spec.schema import MAX_LAYERS, type_name

__all__ = ["residual_layer", "graph_layer"]


def residual_layer(loader, items: Any, key: str):
    """``{residual = [{dense = [n, m]}, {activation = "tanh"}, {dense = [m, n]}]}``: the
    skip connection y = x + f(x) around the listed layers (n → n)."""
    if not isinstance(items, list) or not items:
        raise loader.err(key, f"expected a non-empty list of layer tables, got "
                              f"{type_name(items)}")
    if len(items) > 2 * MAX_LAYERS:
        raise loader.err(key, f"{len(items)} layer tables (at most {2 * MAX_LAYERS})")
    objs, plain = [], []
    for j, item in enumerate(items):
        if not isinstance(item, dict):
            raise loader.err(f"{key}[{j}]", f"expected a layer table, got {type_name(item)}")
        obj, p = loader.layer(item, f"{key}[{j}]")
        objs.append(obj)
        plain.append(p)
    try:
        block = Residual(objs)
    except SymnnError as err:
        raise loader.err(key, str(err)) from err
    return block, {"residual": plain}


def graph_layer(loader, item: dict, key: str):
    """``{graph = {nodes = [{name = "h", layer = {dense = [4, 8]}, inputs = ["in"]},
    {name = "s", op = "add", inputs = ["h", "in"]}, …], output = "s"}}`` (issue 13)."""
    if len(item) != 1:
        other = next(k for k in item if k != "graph")
        raise loader.err(f"{key}.{other}", "a graph layer table has only the key graph")

    def node_layer(it: Any, at: str):
        if not isinstance(it, dict):
            raise loader.err(f"{key}.{at}", f"expected a layer table, got {type_name(it)}")
        return loader.layer(it, f"{key}.{at}")[0]

    try:
        block = graph_from_data(item["graph"], node_layer, "graph")
    except SpecError:
        raise
    except SymnnError as err:
        raise loader.err(key, str(err)) from err
    return block, block.to_data()
