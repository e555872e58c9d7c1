"""Networks: a sequence of layers and a loss.

This module imports nothing from the later stages: the convenience methods that derive,
print and compile (``gradient``, ``equations``, ``compile`` …) call the implementations the
package's top level registers (:mod:`symnn._later`, :mod:`symnn._api`).

Examples
--------
>>> import symnn
>>> net = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse")
>>> [name for name, _ in net.param_shapes]
['W1', 'b1', 'W2', 'b2']
>>> net.n_params
9
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from symnn._later import later
from symnn.declare import graph as _graph  # noqa: F401,I001 - registers the layer (as_layer)
from symnn.declare.activations import Activation
from symnn.declare.blocks import dense_count, layer_data
from symnn.declare.conv import CONV_TYPES, chain_shapes, shaped_layer
from symnn.declare.dropout import check_place as check_dropout  # (issue 13: dropout)
from symnn.declare.layers import Act, Dense, Softmax, as_layer, output_kind, param_specs
from symnn.declare.limits import check_network
from symnn.declare.losses import Loss, Penalty, check_output, get_loss
from symnn.declare.norm import LayerNorm  # noqa: F401 - registers the layer (as_layer)
from symnn.errors import DeclarationError

__all__ = ["Network", "mlp", "Declared"]


class Declared:
    """Shared front door of :class:`Network` and :class:`symnn.Model`.

    The methods derive, print and compile; each returns the object of the next stage.  They
    are carried out by the later stages, through :func:`symnn._later.later`: nothing here
    imports those stages.
    """

    name: str

    # -- derive ------------------------------------------------------------------------
    def program(self):
        """The derived forward + backward program (see :mod:`symnn.ops`)."""
        return later("derive")(self)

    def gradient(self, expanded: bool = True, batch_size: int = 1, limit: int | None = None):
        """Every ∂L/∂θᵢ as an exact SymPy expression (a mapping from parameter symbol).

        The expressions are in the input symbols ``x_i`` (``x_{s,i}`` for a batch), target
        symbols ``y_k`` and parameter symbols; the loss is the mean over ``batch_size``
        symbolic samples (default one sample).  Subexpressions are shared objects; use
        :func:`sympy.cse` on the values to print them with common subexpressions named.

        Raises
        ------
        SizeLimitError
            When the network has more parameters than ``limit`` (default 5,000); use
            :meth:`equations` (matrix form) or the compiled kernels instead.
        """
        if not expanded:
            return self.equations()
        return later("expanded_gradient")(self, batch_size=batch_size, limit=limit)

    def loss_expr(self, batch_size: int = 1):
        """The batch loss as one exact SymPy expression (for small networks)."""
        return later("expanded_loss")(self, batch_size=batch_size)

    def hessian(self, batch_size: int = 1, limit: int | None = None):
        """The exact Hessian of the loss as a ``sympy.Matrix`` (P × P), for small networks.

        Derived forward-over-reverse: one exact symbolic Hessian-vector product per column.

        Raises
        ------
        SizeLimitError
            When P exceeds ``limit`` (default 400).
        """
        return later("expanded_hessian")(self, batch_size=batch_size, limit=limit)

    def jacobian(self, limit: int | None = None):
        """The exact Jacobian ∂ŷ/∂x of the outputs w.r.t. the inputs, one sample (n_out × n_in)."""
        return later("expanded_jacobian")(self, limit=limit)

    def equations(self):
        """The forward and backprop equations in layer (matrix) form.

        Returns an :class:`symnn.printing.Equations` object: ``str()`` gives Unicode text,
        ``.latex()`` a LaTeX ``align*`` block, and Jupyter renders it.
        """
        return later("equations_of")(self)

    def compile(self, dtype: Any = "float64", **options):
        """Compile the derived programs into batched Numba kernels.

        Options go to :func:`symnn.codegen.model.compile_model`: ``cache=``, ``cache_dir=``
        and ``debug=True`` (poisoned buffers: every buffer a kernel writes is filled with
        NaN before each call, so a value read before it is written shows as NaN).
        """
        return later("compile_model")(self, dtype=dtype, **options)

    def _repr_html_(self) -> str:
        """Jupyter: a table of the parameters and their shapes."""
        return later("declared_html")(self)

    # -- parameter layout ---------------------------------------------------------------
    @property
    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        total = 0
        for _, shape in self.param_shapes:
            n = 1
            for s in shape:
                n *= s
            total += n
        return total


class Network(Declared):
    """A feed-forward network: a list of layers followed by a loss.

    Parameters
    ----------
    layers : sequence
        ``Dense`` layers, activation names (``"tanh"``), ``sympy.Lambda`` activations,
        ``Activation`` objects or ``"softmax"``.
    loss : str or Loss
        ``"mse"``, ``"mae"``, ``"huber"``, ``"bce"``, ``"cross_entropy"``, ``"kl"``.
    penalties : sequence of Penalty, optional
        ``symnn.L1(λ)`` / ``symnn.L2(λ)`` terms added to the batch loss.
    name : str
        Used to name generated kernels.

    Examples
    --------
    >>> import symnn
    >>> net = symnn.Network([symnn.Dense(3, 4), "tanh", symnn.Dense(4, 2), "softmax"],
    ...                     loss="cross_entropy")
    >>> net.n_inputs, net.n_outputs
    (3, 2)
    """

    def __init__(
        self,
        layers: Sequence[Any],
        loss: "str | Loss" = "mse",
        penalties: Sequence[Penalty] = (),
        name: str = "net",
    ) -> None:
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise DeclarationError("Network: layers must be a list of layers")
        self.layers = tuple(
            as_layer(item, where=f"layer {i}") for i, item in enumerate(layers)
        )
        self.loss = get_loss(loss, where="Network loss")
        self.name = _identifier(name)
        check_dropout(self.layers)  # (issue 13: dropout)
        self.input_shape: tuple[int, ...]
        if any(isinstance(la, CONV_TYPES) or shaped_layer(la)  # conv, sequence layers, norm
               or hasattr(la, "shape_for") for la in self.layers):
            self.layers, self.dense_index, self.input_shape, width = chain_shapes(self.layers)
            self.n_inputs = int(np.prod(self.input_shape))
            self.n_outputs = width
            self.n_layers = len(self.dense_index)
        else:
            self._chain_dense()
        check_network(self, f"Network {self.name!r}")
        _check_unique_names(self)  # (hostile round: mixed blocks once gave W2 twice)
        self.penalties = tuple(penalties)
        names = {n for n, _ in self.param_shapes}
        for pen in self.penalties:
            if not isinstance(pen, Penalty):
                raise DeclarationError(
                    f"penalties: expected symnn.L1(...) or symnn.L2(...), got {pen!r}"
                )
            for p in pen.params or ():
                if p not in names:
                    raise DeclarationError(
                        f"{pen.kind.upper()} penalty names parameter {p!r}, which this network "
                        f"does not have; its parameters are {sorted(names)}"
                    )
        if self.loss.probabilities and self.n_outputs < 2 and self.loss.name != "kl":
            raise DeclarationError(
                f"loss {self.loss.name!r} needs probability vectors of ≥ 2 classes; for one "
                "output use 'bce' with a sigmoid output"
            )
        last = next(la for la in reversed(self.layers)  # trailing identities change nothing
                    if not (isinstance(la, Act) and la.activation.identity))
        check_output(self.loss, output_kind(last), "Network")

    def _chain_dense(self) -> None:
        """Chain the Dense layers' widths (a network without convolutional layers)."""
        if not any(dense_count(la) for la in self.layers):
            raise DeclarationError("Network: declare at least one Dense layer")
        width = None
        # i → the number of the Dense layer i is (a block: of its last Dense layer)
        self.dense_index: dict[int, int] = {}
        count = 0
        for i, layer in enumerate(self.layers):
            if dense_count(layer):
                if width is not None and layer.n_in != width:
                    raise DeclarationError(
                        f"layer {i} ({_layer_repr(layer)}) takes {layer.n_in} "
                        f"inputs but the layer before it gives {width}; make n_in = {width}"
                    )
                count += dense_count(layer)
                self.dense_index[i] = count
                width = layer.n_out
            elif width is None:
                raise DeclarationError(
                    f"layer {i} ({getattr(layer, 'name', layer)}) comes before any Dense layer; "
                    "start the network with Dense(n_inputs, n_units)"
                )
            elif isinstance(layer, Softmax) and width == 1:
                raise DeclarationError(
                    f"layer {i} (softmax) normalises a single value: the softmax of one unit "
                    "is the constant 1, so nothing before it can be learned; use 'sigmoid' "
                    "for one output, or give the Dense layer before it ≥ 2 units"
                )
        first = next(la for la in self.layers if dense_count(la))
        self.n_inputs = first.n_in
        self.n_outputs = width
        self.n_layers = count
        self.input_shape = (self.n_inputs,)

    @property
    def output_layer(self):
        last = self.layers[-1]
        return last if not isinstance(last, Dense) else None

    @property
    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes in the flat layout: ``W1 (n1, n0), b1 (n1,), W2, b2, …`` (as
        each layer states its parameters, :func:`symnn.declare.layers.param_specs`)."""
        return [(p.name, p.shape) for p in param_specs(self)]

    def spec(self) -> dict:
        """A plain-data description (JSON/TOML-able) from which the network is rebuilt."""
        # each layer's own plain form (a custom Lambda: its body as spec-language text)
        layers = [layer_data(layer) for layer in self.layers]
        return {
            "kind": "network",
            "name": self.name,
            "layers": layers,
            "loss": self.loss.name,
            "penalties": [
                {"kind": p.kind, "lam": p.lam, "params": list(p.params) if p.params else None}
                for p in self.penalties
            ],
        }

    def __repr__(self) -> str:
        parts = [_layer_repr(layer) for layer in self.layers]
        return f"Network([{', '.join(parts)}], loss={self.loss.name!r})"


def mlp(
    sizes: Sequence[int],
    activation: "str | Activation | Any" = "tanh",
    output: "str | Activation | Any | None" = None,
    loss: "str | Loss" = "mse",
    penalties: Sequence[Penalty] = (),
    name: str = "mlp",
) -> Network:
    """A multilayer perceptron ``sizes = [n0, n1, …, nL]``.

    Hidden layers use ``activation``; the output layer uses ``output`` (``None`` or
    ``"identity"`` for a linear output, ``"softmax"``, ``"sigmoid"``, …).

    Examples
    --------
    >>> import symnn
    >>> symnn.mlp([4, 8, 3], activation="relu", output="softmax", loss="cross_entropy")
    Network([Dense(4, 8), 'relu', Dense(8, 3), 'softmax'], loss='cross_entropy')
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise DeclarationError(
            f"mlp: sizes must list at least an input and an output width, got {sizes!r}"
        )
    layers: list[Any] = []
    for i in range(len(sizes) - 1):
        layers.append(Dense(sizes[i], sizes[i + 1]))
        last = i == len(sizes) - 2
        act = output if last else activation
        if act is None or (isinstance(act, str) and act.lower() in ("identity", "linear")):
            continue
        layers.append(act)
    return Network(layers, loss=loss, penalties=penalties, name=name)


def _layer_repr(layer) -> str:
    if isinstance(layer, Dense):
        return f"Dense({layer.n_in}, {layer.n_out})"
    if isinstance(layer, (Act, Softmax)):
        return repr(layer.name)
    return repr(layer)


def _identifier(name: str) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise DeclarationError(f"name must be a Python identifier, got {name!r}")
    if len(name) > 100:  # walk 7: Numba's cache file name held it (OSError: name too long)
        raise DeclarationError(f"name is {len(name)} characters long; at most 100 (it names "
                               "the generated kernels and their cache files)")
    return name


# -- hostile round: parameter names are unique -----------------------------------------------
def _check_unique_names(net: "Network") -> None:
    """DeclarationError naming the parameter names two layers give (the flat layout, the
    model file and the printed equations need each name once)."""
    seen: dict[str, int] = {}
    for name, _ in net.param_shapes:
        seen[name] = seen.get(name, 0) + 1
    twice = sorted(n for n, k in seen.items() if k > 1)
    if twice:
        raise DeclarationError(
            f"Network: the parameter names {twice} are given by two layers; this mix of "
            "layers is not supported yet (report it), declare the layers outside the block")
# -- end of hostile round ----------------------------------------------------------------------
