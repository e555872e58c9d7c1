r"""Graphs: blocks whose layers are not a chain.

:class:`Graph` declares a small directed acyclic graph of named nodes over one input.
Each node is a layer applied to one named value, or a combinator of two:

* ``(layer, "src")`` — a ``Dense`` layer, an activation name (``"tanh"``), ``"softmax"``,
  a ``sympy.Lambda`` activation or a block (``Residual``, another ``Graph``) applied to
  the value ``src``;
* ``("add", "u", "v")`` — ``u + v``; ``("mul", "u", "v")`` — ``u ⊙ v`` (elementwise);
  ``("concat", "u", "v")`` — ``[u; v]`` (``"multiply"`` and ``"concatenate"`` are the
  same).

The graph's input is named ``"in"`` (``input=`` to rename it) and ``output=`` names the
node whose value the block gives.  Like :class:`~symnn.Residual` it is one item of
:class:`~symnn.Network`: its Dense layers are numbered in the network's flat order (in
the graph's topological order, the order of declaration where the edges allow), so the
parameters stay ``W<l>``, ``b<l>``; a Dense node's value prints as ``z⁽ˡ⁾``, every other
node's as its name.  A value read by two nodes gets the sum of both cotangents in the
backward pass (the reverse driver adds them, and the printed equations show the sum).

Examples
--------
>>> import symnn
>>> g = Graph({"h1": (Dense(4, 8), "in"), "a1": ("tanh", "h1"),
...            "h2": (Dense(4, 8), "in"), "s": ("add", "a1", "h2"),
...            "c": ("concat", "a1", "s")}, output="c")
>>> g.n_in, g.n_out, g.n_dense
(4, 16, 2)
>>> [p.name for p in g.parameters(2)]
['W1', 'b1', 'W2', 'b2']
>>> net = symnn.Network([g, symnn.Dense(16, 1)], loss="mse")
>>> net.n_params
97
>>> Graph({"h": (Dense(4, 8), "in"), "s": ("add", "h", "in")}, output="s")
Traceback (most recent call last):
...
symnn.errors.DeclarationError: Graph node 's': add of 'h' (8 values) and 'in' (4 values); ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from symnn import ops as P
from symnn.declare._calls import refuse_bad_calls
from symnn.declare.blocks import dense_count, layer_data
from symnn.declare.layers import (
    Act,
    Dense,
    Factor,
    ParamSpec,
    Softmax,
    as_layer,
    register_layer,
)
from symnn.errors import DeclarationError

__all__ = ["Graph", "COMBINATORS", "graph_from_data"]

#: The two-input combinators, by the names a node may give them.
COMBINATORS = {"add": "add", "mul": "mul", "multiply": "mul", "concat": "concat",
               "concatenate": "concat"}


@dataclass(frozen=True)
class _Node:
    name: str
    op: str  # "layer", "add", "mul" or "concat"
    layer: Any
    inputs: tuple[str, ...]


def _parse_node(name, spec, where: str) -> _Node:
    if not isinstance(name, str) or not name.isidentifier():
        raise DeclarationError(f"{where}: node names must be identifiers (letters, digits, "
                               f"_), got {name!r}")
    own = f"Graph node {name!r}"
    if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
        raise DeclarationError(f"{own}: give (layer, 'input') or (combinator, 'u', 'v'), "
                               f"e.g. (Dense(4, 8), 'in') or ('add', 'a', 'b'); got {spec!r}")
    head, srcs = spec[0], tuple(spec[1:])
    for s in srcs:
        if not isinstance(s, str):
            raise DeclarationError(f"{own}: inputs are node names (strings), got {s!r}")
    key = head.strip().lower() if isinstance(head, str) else None
    if key in COMBINATORS:
        if len(srcs) != 2:
            raise DeclarationError(f"{own}: {key} combines two values, e.g. "
                                   f"({key!r}, 'u', 'v'); got {len(srcs)}")
        return _Node(name, COMBINATORS[key], None, srcs)
    if len(srcs) != 1:
        raise DeclarationError(f"{own}: a layer reads one value, e.g. (Dense(4, 8), 'in'); "
                               f"got {len(srcs)} inputs (combinators: add, mul, concat)")
    layer = as_layer(head, where=own)
    if not (isinstance(layer, (Act, Softmax)) or dense_count(layer)):
        raise DeclarationError(f"{own}: {layer!r} cannot be a graph node; nodes are Dense "
                               "layers, activations, softmax or blocks (Residual, Graph) on "
                               "flat vectors")
    return _Node(name, "layer", layer, srcs)


def _toposort(nodes: list[_Node], inp: str) -> list[_Node]:
    """The nodes in dependency order, declaration order where free; DeclarationError on an
    unknown name or a cycle."""
    names = {n.name for n in nodes}
    for n in nodes:
        for s in n.inputs:
            if s != inp and s not in names:
                raise DeclarationError(
                    f"Graph node {n.name!r} reads {s!r}, which is not a node of the graph "
                    f"(nodes: {', '.join(sorted(names))}; the graph's input is {inp!r})")
    done: set[str] = {inp}
    order: list[_Node] = []
    left = list(nodes)
    while left:
        ready = next((n for n in left if all(s in done for s in n.inputs)), None)
        if ready is None:
            raise DeclarationError(f"Graph: the nodes {_cycle(left, done)} form a cycle; a "
                                   "graph block must be acyclic")
        order.append(ready)
        done.add(ready.name)
        left.remove(ready)
    return order


def _cycle(left: list[_Node], done: set) -> str:
    """One cycle among the nodes not yet ordered, as 'a' → 'b' → 'a'."""
    by = {n.name: n for n in left}
    path, cur = [], left[0].name
    while cur not in path:
        path.append(cur)
        cur = next(s for s in by[cur].inputs if s not in done)
    path = path[path.index(cur):] + [cur]
    return " → ".join(repr(p) for p in path)


def _width_of(node: _Node, widths: dict) -> int:
    own = f"Graph node {node.name!r}"
    if node.op == "layer":
        layer, w = node.layer, widths[node.inputs[0]]
        if isinstance(layer, Softmax) and w == 1:
            raise DeclarationError(f"{own}: softmax of a single value is the constant 1; "
                                   "give it ≥ 2 values")
        if isinstance(layer, (Act, Softmax)):
            return w
        if layer.n_in != w:
            raise DeclarationError(f"{own}: {_short(layer)} takes {layer.n_in} inputs but "
                                   f"{node.inputs[0]!r} gives {w}; make n_in = {w}")
        return layer.n_out
    u, v = node.inputs
    if node.op == "concat":
        return widths[u] + widths[v]
    if widths[u] != widths[v]:
        raise DeclarationError(f"{own}: {node.op} of {u!r} ({widths[u]} values) and {v!r} "
                               f"({widths[v]} values); both sides of {node.op} need the "
                               "same width")
    return widths[u]


def _short(layer) -> str:
    if isinstance(layer, Dense):
        return f"Dense({layer.n_in}, {layer.n_out})"
    if isinstance(layer, (Act, Softmax)):
        return repr(layer.name)
    return repr(layer)


def _input_width(order: list[_Node], inp: str, n_in) -> int:
    if n_in is not None:
        if isinstance(n_in, bool) or not isinstance(n_in, int) or n_in < 1:
            raise DeclarationError(f"Graph: n_in must be a positive integer, got {n_in!r}")
        return n_in
    seen = {n.layer.n_in for n in order
            if n.op == "layer" and dense_count(n.layer) and n.inputs[0] == inp}
    if len(seen) == 1:
        return seen.pop()
    if not seen:
        raise DeclarationError(f"Graph: no Dense node reads the input {inp!r}, so its width "
                               "is not known; give n_in=")
    raise DeclarationError(f"Graph: the Dense nodes reading {inp!r} take different widths "
                           f"{sorted(seen)}; make their n_in agree")


def _check_used(order: list[_Node], inp: str, output) -> None:
    names = [n.name for n in order]
    if output is None:
        raise DeclarationError("Graph: name the output node, e.g. "
                               f"Graph({{...}}, output={names[-1]!r})")
    if output not in names:
        raise DeclarationError(f"Graph: the output {output!r} is not a node of the graph "
                               f"(nodes: {', '.join(names)})")
    read = {s for n in order for s in n.inputs}
    for n in order:
        if n.name != output and n.name not in read:
            raise DeclarationError(f"Graph node {n.name!r} is computed but never used (no "
                                   f"node reads it and it is not the output {output!r}); "
                                   "remove it or read it")
    if inp not in read:
        raise DeclarationError(f"Graph: no node reads the input {inp!r}")


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True, repr=False)
class Graph:
    """A directed acyclic graph of named nodes, one block of a :class:`~symnn.Network`.

    ``nodes`` maps each name to ``(layer, "src")`` or ``(combinator, "u", "v")`` (see the
    module docstring); ``output`` names the node the block gives; ``input`` is the name of
    the block's input (``"in"``); ``n_in`` its width (read from the Dense nodes reading the
    input unless given).

    Examples
    --------
    >>> import symnn
    >>> g = symnn.Graph({"h": (symnn.Dense(2, 3), "in"), "a": ("tanh", "h"),
    ...                  "y": ("concat", "a", "in")}, output="y")
    >>> (g.n_in, g.n_out), [p.name for p in g.parameters(1)]
    ((2, 5), ['W1', 'b1'])
    >>> print(symnn.Network([g, symnn.Dense(5, 1)]).equations())  # doctest: +ELLIPSIS
    Network(...
    Forward pass:
      z⁽¹⁾ = W⁽¹⁾ x + b⁽¹⁾
      a = tanh(z⁽¹⁾)
      y = [a; x]
      z⁽²⁾ = W⁽²⁾ y + b⁽²⁾
    ...
    """

    nodes: Any
    output: str | None = None
    input: str = "in"
    n_in: int | None = None

    name = "graph"

    def __post_init__(self) -> None:
        if not hasattr(self.nodes, "items") or not self.nodes:
            raise DeclarationError("Graph: give the nodes as a non-empty dict, e.g. "
                                   "{'h': (Dense(4, 8), 'in'), 'a': ('tanh', 'h')}")
        if not isinstance(self.input, str) or not self.input.isidentifier():
            raise DeclarationError(f"Graph: input must be an identifier, got {self.input!r}")
        parsed = [_parse_node(k, v, "Graph") for k, v in self.nodes.items()]
        if any(n.name == self.input for n in parsed):
            raise DeclarationError(f"Graph: {self.input!r} names the graph's input; give "
                                   "the node another name")
        order = _toposort(parsed, self.input)
        _check_used(order, self.input, self.output)
        widths = {self.input: _input_width(order, self.input, self.n_in)}
        for n in order:
            widths[n.name] = _width_of(n, widths)
        if not any(n.op == "layer" and dense_count(n.layer) for n in order):
            raise DeclarationError("Graph: the graph has no Dense node; declare at least one")
        object.__setattr__(self, "nodes", tuple((n.name, (n.layer if n.op == "layer"
                                                          else n.op,) + n.inputs)
                                                for n in parsed))
        object.__setattr__(self, "n_in", widths[self.input])
        object.__setattr__(self, "_order", tuple(order))
        object.__setattr__(self, "_widths", tuple(widths.items()))

    def __repr__(self) -> str:
        items = ", ".join(f"{k!r}: ({_short(v[0]) if not isinstance(v[0], str) else repr(v[0])}"
                          f", {', '.join(map(repr, v[1:]))})" for k, v in self.nodes)
        extra = "" if self.input == "in" else f", input={self.input!r}"
        return f"Graph({{{items}}}, output={self.output!r}{extra})"

    @property
    def n_out(self) -> int:
        """The width of the output node's value."""
        return dict(self._widths)[self.output]

    @property
    def n_dense(self) -> int:
        """The number of Dense layers inside (counted in the network's numbering)."""
        return sum(dense_count(n.layer) for n in self._order if n.op == "layer")

    def width(self, name: str) -> int:
        """The width of a node's value (or of the input)."""
        return dict(self._widths)[name]

    def numbered(self, l: int) -> list[tuple[Any, int]]:
        """(layer node's layer, its Dense number) in topological order, for the block
        numbered ``l`` (its last Dense layer)."""
        out, k = [], l - self.n_dense
        for n in self._order:
            if n.op == "layer":
                k += dense_count(n.layer)
                out.append((n.layer, k))
        return out

    def _numbers(self, l: int) -> dict[str, int]:
        it = iter(self.numbered(l))
        return {n.name: next(it)[1] for n in self._order if n.op == "layer"}

    @property
    def stacked_after(self) -> int:
        """How many ``a`` values of its last Dense layer the block defines (those of a
        block holding that layer; the graph's own nodes are named after themselves)."""
        last = [n.layer for n in self._order if n.op == "layer" and dense_count(n.layer)][-1]
        return getattr(last, "stacked_after", 0)

    # -- the layer protocol ---------------------------------------------------------------
    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        """The layer nodes' parameters, in topological order."""
        return tuple(p for layer, k in self.numbered(l) for p in layer.parameters(k))

    def forward(self, b, l: int, a_prev, k: int = 0):
        """Each node's ops in topological order; the value of ``output``."""
        vals = {self.input: a_prev}
        nums = self._numbers(l)
        for n in self._order:
            args = [vals[s] for s in n.inputs]
            if n.op == "layer" and dense_count(n.layer):
                vals[n.name] = n.layer.forward(b, nums[n.name], args[0], 0)
                continue
            out = _node_var(b, n.name, self.width(n.name))
            vals[n.name] = _emit_node(b, n, out, args)
        return vals[self.output]

    def initial_values(self, l: int, rng: np.random.Generator,
                       following: str = "identity") -> dict[str, np.ndarray]:
        """Each layer node's initial arrays, a Dense node told the activation after it
        when that is its only reader (the output node: ``following``)."""
        readers: dict[str, list[_Node]] = {}
        for n in self._order:
            for s in n.inputs:
                readers.setdefault(s, []).append(n)
        nums = self._numbers(l)
        out: dict[str, np.ndarray] = {}
        for n in self._order:
            if n.op != "layer":
                continue
            r = readers.get(n.name, [])
            after = (following if n.name == self.output and not r
                     else r[0].layer.name if len(r) == 1 and r[0].op == "layer"
                     and isinstance(r[0].layer, (Act, Softmax)) else "identity")
            out.update(n.layer.initial_values(nums[n.name], rng, after))
        return out

    def table_row(self, l) -> tuple[str, str, str, str]:
        """(number, kind, TeX shape, parameter count): a document's row for the graph (its
        Dense layers have rows of their own)."""
        nums = self._numbers(l)
        parts = []
        for n in self._order:
            head = (f"dense {nums[n.name]}" if n.op == "layer" and isinstance(n.layer, Dense)
                    else _short(n.layer).strip("'") if n.op == "layer" else n.op)
            parts.append(f"{n.name} = {head}({', '.join(n.inputs)})")
        return "", "graph: " + ", ".join(parts), r"%d \to %d" % (self.n_in, self.n_out), "0"

    def data_with(self, layer_form: Callable[[Any, str], dict]) -> dict:
        """The plain-data form with each layer node written by ``layer_form(layer, name)``."""
        nodes = []
        for name, spec in self.nodes:
            if isinstance(spec[0], str):
                nodes.append({"name": name, "op": spec[0], "inputs": list(spec[1:])})
            else:
                nodes.append({"name": name, "layer": layer_form(spec[0], name),
                              "inputs": list(spec[1:])})
        out: dict = {"nodes": nodes, "output": self.output}
        if self.input != "in":
            out["input"] = self.input
        return {"graph": out}

    def to_data(self) -> dict:
        """``{"graph": {"nodes": [{"name", "layer" or "op", "inputs"}, …], "output"}}``."""
        return self.data_with(lambda layer, name: layer_data(layer))

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """A bound through the graph: a layer multiplies its input's bound by its factors,
        ``add`` sums the two bounds, ``concat`` takes √(L_u² + L_v²), and ``mul`` (not
        globally Lipschitz) gives ∞."""
        nums = self._numbers(l)
        lip = {self.input: 1.0}
        for n in self._order:
            if n.op == "layer":
                f = 1.0
                for fac in n.layer.lipschitz(arrays, nums[n.name], bound):
                    f *= fac.value
                lip[n.name] = f * lip[n.inputs[0]]
            else:
                u, v = (lip[s] for s in n.inputs)
                lip[n.name] = (u + v if n.op == "add" else math.hypot(u, v)
                               if n.op == "concat" else math.inf)
        return [Factor("graph", lip[self.output],
                       "through the graph (add: sum, concat: √(L₁² + L₂²), mul: ∞)",
                       r"L_{\mathrm{graph}}")]


def _node_var(b, name: str, size: int) -> P.Var:
    """The value of a graph node: printed as its name, named uniquely in the program."""
    taken = set(b.prog.inputs) | {o.out.name for o in b.prog.ops}
    cand, i = f"g_{name}", 2
    while cand in taken:
        cand, i = f"g_{name}_{i}", i + 1
    tex = name if len(name) == 1 else r"\mathrm{%s}" % name.replace("_", r"\_")
    return P.Var(cand, "sample", (size,), tex=tex, text=name)


def _emit_node(b, n: _Node, out: P.Var, args: list) -> P.Var:
    """The ops of one node that is not a Dense layer."""
    if n.op == "concat":
        return b.emit(P.Concat(out, tuple(args), tuple(a.size for a in args)))
    if n.op in ("add", "mul"):
        u, v = args
        su, sv = P.sym(u), P.sym(v)
        body = (su + sv if n.op == "add" else su * sv)
        uniq = [u] if u == v else [u, v]
        return b.emit(P.Map(out, (body,), tuple(P.Arg(P.sym(a), a) for a in uniq),
                            role="skip" if n.op == "add" else ""))
    layer = n.layer
    if isinstance(layer, Softmax):
        return b.emit(P.Softmax(out, args[0]))
    act = layer.activation
    body = act.apply(P.sym(args[0])) if not act.identity else P.sym(args[0])
    return b.map_elementwise(out, body, [args[0]], role="act", label=(act,))


register_layer(Graph)


def graph_from_data(data: Any, layer_from: Callable[[Any, str], Any], where: str) -> Graph:
    """A :class:`Graph` from its plain-data form (``data``: the value of the ``graph``
    key), each node's layer read by ``layer_from(item, where)``; DeclarationError when
    malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise DeclarationError(f"{where}: expected {{nodes = [...], output = \"...\"}}")
    stray = sorted(set(data) - {"nodes", "output", "input"})
    if stray:
        raise DeclarationError(f"{where}: unknown key {stray[0]!r} (nodes, output, input)")
    if len(data["nodes"]) > 1000:
        raise DeclarationError(f"{where}: {len(data['nodes'])} nodes (at most 1000)")
    nodes: dict = {}
    for j, item in enumerate(data["nodes"]):
        at = f"{where}.nodes[{j}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise DeclarationError(f"{at}: expected a table with name, inputs and layer or op")
        if sorted(set(item) - {"name", "inputs", "layer", "op"}) or ("layer" in item) == (
                "op" in item):
            raise DeclarationError(f"{at}: a node has name, inputs and exactly one of layer "
                                   "or op")
        ins = item.get("inputs")
        if not isinstance(ins, list) or not all(isinstance(s, str) for s in ins):
            raise DeclarationError(f"{at}.inputs: expected a list of node names")
        if item["name"] in nodes:
            raise DeclarationError(f"{at}: the node name {item['name']!r} appears twice")
        head = item["op"] if "op" in item else layer_from(item["layer"], f"{at}.layer")
        if "op" in item and item["op"] not in COMBINATORS:
            raise DeclarationError(f"{at}.op: expected add, mul or concat, got "
                                   f"{str(item['op'])[:40]!r}")
        nodes[item["name"]] = (head, *ins)
    return Graph(nodes, output=data.get("output"), input=data.get("input", "in"))
