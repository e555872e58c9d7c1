r"""Recurrent layers: :class:`RNN` (Elman) and :class:`GRU` (PyTorch's convention).

A layer reads a sequence ``(T, n_in)`` per sample — held flat in row-major ``(t, i)``
order, like a convolution's ``(channels, length)`` values (:mod:`symnn.declare.conv`) — and
gives the last hidden state ``h_T`` (``n_hidden`` values) or, with
``return_sequences=True``, every state ``(T, n_hidden)``.  A network starting with one takes
inputs ``X`` of shape ``(n, T, n_in)`` (or rows flattened, ``(n, T·n_in)``).

The derived program is the recurrence **unrolled over time**: step ``t`` reads row ``t`` of
the input (:class:`symnn.ops.RecRow`) and emits its affine and elementwise ops, every step
sharing the layer's parameter values, so gradients, Hessian-vector and Gauss-Newton
products, Hessians and Jacobians come from the ordinary drivers exactly (backpropagation
through time is reverse mode over the unrolled program).  Memory is linear in ``T``; the
program's size too, so ``T`` is limited (:data:`MAX_UNROLLED_STEPS`).  An :class:`RNN`
longer than :data:`UNROLL_UP_TO` steps (or declared with ``unroll=False``) is instead
**looped over time** (:mod:`symnn.ops.scan`): one op for the recurrence, one backward
recurrence op for BPTT, so neither the program nor the compile time grows with ``T``; the
numbers are the same.  A :class:`GRU` follows the same rule (:mod:`symnn.ops.scan_gru`).

Truncated BPTT, ``truncate=k``: the hidden state is detached (:class:`symnn.ops.RecStop`:
its value passes on, its gradient does not) where it enters step ``t + 1`` for every
``t = T − k, T − 2k, … ≥ 1``: the sequence is cut into chunks of ``k`` steps counted from
the end, and no gradient crosses a cut.  With ``return_sequences=False`` the loss's
gradient thus flows back exactly ``k`` steps from ``h_T``; an output ``h_t`` of a sequence
passes its gradient back to the start of its chunk (at most ``k`` steps).  The same as
``h = h.detach()`` after step ``T − k``, ``T − 2k``, … in a PyTorch loop.  ``k ≤ T``:
``truncate=T`` cuts nothing (the full BPTT); a ``k`` longer than the sequence is refused
(a DeclarationError, as a Conv1D kernel longer than its input), not taken as a no-op.  A
Hessian-vector product is then the exact derivative of the truncated gradient, a map whose
Jacobian is not symmetric: use ``hvp``; ``hessian`` (the compiled kernel symmetrises, the
NumPy reference stacks the products) is only the Hessian of the loss without truncation.
``gnvp`` uses the truncated Jacobian on both sides, ``J_trᵀ H_ℓ J_tr`` (symmetric, positive
semi-definite: the matrix ``diag_ggn`` and K-FAC describe, and PyTorch's with ``.detach()``).
Training (``symnn.train.fit``) runs no finite-difference checks on such a network — the
truncated gradient is not the loss's, so they would fail by design — and refuses an
explicit ``check_every=k``.

Examples
--------
>>> import symnn
>>> net = symnn.Network([symnn.RNN(2, 3, length=4), symnn.Dense(3, 1)], loss="mse")
>>> net.input_shape, net.n_inputs, [name for name, _ in net.param_shapes]
((4, 2), 8, ['W_xh1', 'W_hh1', 'b1', 'W2', 'b2'])
>>> symnn.GRU(2, 3, return_sequences=True)
GRU(2, 3, return_sequences=True)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import sympy as sp

from symnn import ops as P
from symnn.declare import layers
from symnn.declare._calls import refuse_bad_calls
from symnn.declare.activations import get_activation
from symnn.declare.layers import Factor, ParamSpec, _sup
from symnn.declare.limits import check_width
from symnn.declare.recurrent_bounds import gru_lipschitz  # issue 13
from symnn.errors import DeclarationError, SymnnError

__all__ = ["RNN", "GRU", "RECURRENT_TYPES", "MAX_UNROLLED_STEPS", "MAX_LOOPED_STEPS",
           "UNROLL_UP_TO"]

#: The longest sequence a recurrent layer is unrolled over (the derived program grows
#: linearly with T, and so does the kernels' compile time).
MAX_UNROLLED_STEPS = 512

#: The longest sequence of an RNN looped over time (``unroll=False``; its program does not
#: grow with T, its memory is linear in T).
MAX_LOOPED_STEPS = 1 << 20

#: An RNN with ``unroll=None`` (the default) is unrolled up to this many steps and looped
#: over time above it.
UNROLL_UP_TO = 16

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _int(owner: str, name: str, v, low: int) -> int:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise DeclarationError(f"{owner}: {name} must be an integer ≥ {low}, got {v!r}")
    return v


def _var(name: str, n: int, base_tex: str, base_text: str, l: int, t) -> P.Var:
    """The per-sample value ``<name>`` printed ``h⁽ˡ⁾ₜ`` / ``h^{(l)}_{t}``."""
    return P.Var(name, "sample", (n,), r"{{%s}^{(%d)}_{%s}}" % (base_tex, l, t),
                 base_text + _sup(f"({l})") + str(t).translate(_SUB))


class _Recurrent:
    """What RNN and GRU share: sizes, shape chaining, unrolling, truncation."""

    n_in: int
    n_hidden: int
    return_sequences: bool
    length: int | None
    truncate: int | None

    numbered_layer = True  #: takes a layer number ``l`` (its parameters are named by it)

    def __post_init__(self) -> None:
        own = type(self).__name__
        for name in ("n_in", "n_hidden"):
            object.__setattr__(self, name, _int(own, name, getattr(self, name), 1))
            check_width(getattr(self, name), own)
        if not isinstance(self.return_sequences, (bool, np.bool_)):
            raise DeclarationError(f"{own}: return_sequences must be True or False, got "
                                   f"{self.return_sequences!r}")
        object.__setattr__(self, "return_sequences", bool(self.return_sequences))
        for name in ("length", "truncate"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, _int(own, f"{name} (T)" if name == "length"
                                                    else name, v, 1))
        if self.length is not None and self.length > self._max_steps():
            if self._max_steps() == MAX_UNROLLED_STEPS:
                raise DeclarationError(
                    f"{own}: length {self.length} exceeds {MAX_UNROLLED_STEPS} "
                    "(symnn.declare.recurrent.MAX_UNROLLED_STEPS): the recurrence is "
                    "unrolled over time and the program grows with T; use shorter sequences"
                    + (" or RNN(..., unroll=False)" if own == "RNN" else ""))
            raise DeclarationError(f"{own}: length {self.length} exceeds {MAX_LOOPED_STEPS} "
                                   "(symnn.declare.recurrent.MAX_LOOPED_STEPS)")
        if self.length is not None:
            self._check_truncate(own, self.length)

    def _check_truncate(self, own: str, T: int) -> None:
        # walk: a cut longer than the sequence cuts nothing; refused like a Conv1D kernel
        # longer than its input (truncate = T is allowed: the full BPTT, every step back)
        if self.truncate is not None and self.truncate > T:
            raise DeclarationError(
                f"{own}: truncate={self.truncate} is longer than the sequences (length {T}); "
                f"truncate=k passes the gradient back k steps, at most T = {T}: drop "
                f"truncate= for full backpropagation through time, or give truncate ≤ {T}")

    def _max_steps(self) -> int:
        return MAX_UNROLLED_STEPS

    def _extra(self) -> str:
        return "".join(f", {n}={getattr(self, n)!r}" for n, d in
                       (("return_sequences", False), ("length", None), ("truncate", None))
                       if getattr(self, n) != d)

    @property
    def name(self) -> str:
        return repr(self)

    @property
    def in_shape(self):
        return None if self.length is None else (self.length, self.n_in)

    def shape_for(self, T: int) -> tuple[int, int]:
        """The input shape ``(T, n_in)`` of sequences of length ``T``."""
        return (T, self.n_in)

    def out_shape(self, in_shape, where: str):
        own = f"{where} ({self!r})"
        if in_shape is None or len(in_shape) != 2:
            raise DeclarationError(
                f"{own} reads a (time, features) sequence but the layer before it gives a "
                f"flat vector of {in_shape[0] if in_shape else '?'}; a recurrent layer starts "
                "the network or follows one with return_sequences=True")
        T, d = in_shape
        if d != self.n_in:
            raise DeclarationError(f"{own} takes {self.n_in} features per step but the layer "
                                   f"before it gives {d}; make n_in = {d}")
        if self.length is not None and self.length != T:
            raise DeclarationError(f"{own} is declared for sequences of length {self.length} "
                                   f"but the layer before it gives {T}; drop length= or make "
                                   f"it {T}")
        _int(own, "length (T)", T, 1)
        self._check_truncate(own, T)
        return (T, self.n_hidden) if self.return_sequences else (self.n_hidden,)

    def bound(self, in_shape):
        return replace(self, length=in_shape[0])

    def _steps(self) -> int:
        if self.length is None:
            raise DeclarationError(f"{self!r}: the sequence length is not known; declare it "
                                   "inside a Network, or give length=")
        return self.length

    def cuts(self) -> set[int]:
        """The steps ``t`` whose state is detached before step ``t + 1`` (truncated BPTT:
        ``T − k, T − 2k, … ≥ 1``)."""
        T, k = self._steps(), self.truncate
        return set() if k is None else set(range(T - k, 0, -k))

    def _params(self, b, l: int) -> dict:
        out = {}
        for spec in self.parameters(l):
            v = P.Var(spec.name, "param", spec.shape, spec.tex, spec.text)
            b.prog.inputs[v.name] = v
            out[spec.name[:-len(str(l))]] = v
        return out

    def _spec(self, l: int, base: str, sub: str, shape, role: str) -> ParamSpec:
        return ParamSpec(f"{base}_{sub}{l}", shape, role, r"%s_{%s}^{(%d)}" % (base, sub, l),
                         f"{base}_{sub}" + _sup(f"({l})"), l)

    def _unroll(self, b, l: int, x, step: Callable, h0):
        """Run ``step(b, t, x_t, h_prev) -> h_t`` over t = 1 … T; the layer's output."""
        T = self._steps()
        cuts = self.cuts()
        h, hs = h0, []
        for t in range(1, T + 1):
            xt = b.emit(P.RecRow(_var(f"x{l}_{t}", self.n_in, "x", "x", l, t), x, t - 1))
            h = step(b, t, xt, h)
            hs.append(h)
            if t in cuts:
                hs_ = _var(f"hs{l}_{t}", self.n_hidden, r"\bar h", "h̄", l, t)
                hs_ = P.Var(hs_.name, hs_.kind, hs_.shape, hs_.tex[:-1] + "{}}", hs_.text)
                h = b.emit(P.RecStop(hs_, h))  # ({} keeps the accent's group for a _s)
        if not self.return_sequences:
            return hs[-1]
        out = P.Var(f"H{l}", "sample", (T * self.n_hidden,), r"{H^{(%d)}}" % l,
                    "H" + _sup(f"({l})"))
        return b.emit(P.RecStack(out, tuple(hs)))

    @staticmethod
    def role_of(name: str) -> tuple[str, int] | None:
        """(role, l) of a parameter name a recurrent layer gives (``"W_hh2"`` → weight, 2)."""
        m = re.fullmatch(r"([Wb])_(xh|hh|ir|iz|in|hr|hz|hn)(\d+)", name)
        if m is None:
            return None
        return ("weight" if m.group(1) == "W" else "bias"), int(m.group(3))

    def initial_values(self, l: int, rng: np.random.Generator,
                       following: str = "identity") -> dict[str, np.ndarray]:
        """Every weight ``U(±1/√n_hidden)`` (PyTorch's initialisation of its recurrent
        layers); the biases 0."""
        a = 1.0 / math.sqrt(self.n_hidden)
        out = {}
        for spec in self.parameters(l):
            if spec.role == "weight":
                out[spec.name] = rng.uniform(-a, a, int(np.prod(spec.shape))).reshape(
                    spec.shape)
            else:
                out[spec.name] = np.zeros(spec.shape)
        return out

    def table_row(self, l) -> tuple[str, str, str, str]:
        """(number, kind, TeX shape, parameter count): a row of a document's table."""
        n = sum(int(np.prod(p.shape)) for p in self.parameters(l))
        kind = f"{type(self).__name__.lower()} (T = {self.length}" + (
            ", sequence out)" if self.return_sequences else ")")
        shape = r"%d \times %d \to %s" % (self.length, self.n_in, (
            r"%d \times %d" % (self.length, self.n_hidden) if self.return_sequences
            else str(self.n_hidden)))
        return str(l), kind, shape, str(n)

    def _data(self, key: str) -> dict:
        d: dict = {key: [self.n_in, self.n_hidden]}
        for name, default in (("return_sequences", False), ("length", None),
                              ("truncate", None)):
            if getattr(self, name) != default:
                d[name] = getattr(self, name)
        return d


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True)
class RNN(_Recurrent):
    r"""Elman recurrence ``z_t = W_xh x_t + W_hh h_{t−1} + b``, ``h_t = σ(z_t)``, ``h_0 = 0``
    (``σ`` = ``activation``, any registered activation name), as ``torch.nn.RNN`` with its
    two biases summed into ``b``.

    Parameters ``W_xh<l>`` ``(n_hidden, n_in)`` and ``W_hh<l>`` ``(n_hidden, n_hidden)``
    (role ``"weight"``), ``b<l>`` ``(n_hidden,)`` (role ``"bias"``), ``l`` the layer's
    number.  Output: ``h_T``, or every ``h_t`` with ``return_sequences=True``; ``length``:
    T (needed unless the network infers it), ``truncate``: truncated BPTT (module notes).

    ``unroll``: ``True`` writes the recurrence unrolled over time (one affine and one
    elementwise op per step: the printed equations show every step; T ≤
    :data:`MAX_UNROLLED_STEPS`); ``False`` loops over time (:mod:`symnn.ops.scan`: one
    ``RNNSeq`` op, whose reverse rule is one backward ``LinRec``, so the program and the
    compile time do not grow with T, memory is linear in T, T ≤ :data:`MAX_LOOPED_STEPS`);
    ``None`` (default): unrolled up to :data:`UNROLL_UP_TO` steps, looped above.  Both
    forms compute the same numbers.

    >>> RNN(3, 4, activation="relu", length=5)
    RNN(3, 4, activation='relu', length=5)
    >>> RNN(3, 4, length=100).looped, RNN(3, 4, length=5, unroll=False).looped
    (True, True)
    """

    n_in: int
    n_hidden: int
    activation: str = "tanh"
    return_sequences: bool = False
    length: int | None = None
    truncate: int | None = None
    unroll: bool | None = None

    def __post_init__(self) -> None:
        if self.unroll not in (None, True, False) or not isinstance(self.unroll,
                                                                     (bool, type(None))):
            raise DeclarationError(f"RNN: unroll must be True, False or None, got "
                                   f"{self.unroll!r}")
        _Recurrent.__post_init__(self)
        if isinstance(self.activation, str) and self.activation.lower() == "softmax":
            raise DeclarationError("RNN: activation must be an elementwise activation "
                                   "('tanh', 'relu', …); softmax is a layer of its own")
        act = get_activation(self.activation, "RNN activation")
        if not act.key or act.key[0] == "lambda":
            raise DeclarationError("RNN: activation must be a registered activation name "
                                   f"('tanh', 'relu', …), got {self.activation!r}")
        object.__setattr__(self, "activation", act.name)

    def _max_steps(self) -> int:
        return MAX_UNROLLED_STEPS if self.unroll else MAX_LOOPED_STEPS

    @property
    def looped(self) -> bool:
        """Whether the derived program loops over time (see ``unroll``)."""
        return self.unroll is False or (self.unroll is None and self.length is not None
                                        and self.length > UNROLL_UP_TO)

    def __repr__(self) -> str:
        act = "" if self.activation == "tanh" else f", activation={self.activation!r}"
        loop = "" if self.unroll is None else f", unroll={self.unroll!r}"
        return f"RNN({self.n_in}, {self.n_hidden}{act}{self._extra()}{loop})"

    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        """``W_xh<l>``, ``W_hh<l>`` and ``b<l>``."""
        H = self.n_hidden
        return (self._spec(l, "W", "xh", (H, self.n_in), "weight"),
                self._spec(l, "W", "hh", (H, H), "weight"),
                ParamSpec(f"b{l}", (H,), "bias", f"b^{{({l})}}", "b" + _sup(f"({l})"), l))

    def act(self):
        """The activation σ (an :class:`~symnn.Activation`)."""
        return get_activation(self.activation, "RNN activation")

    def forward(self, b, l: int, x, k: int = 0):
        """zₜ = W_xh xₜ + W_hh hₜ₋₁ + b, hₜ = σ(zₜ), unrolled over t = 1 … T."""
        p = self._params(b, l)
        act = self.act()
        H = self.n_hidden
        if self.looped:
            return self._forward_looped(b, l, x, p, act)

        def step(b, t, xt, h):
            z = _var(f"z{l}_{t}", H, "z", "z", l, t)
            if h is None:
                b.emit(P.Affine(z, p["W_xh"], xt, p["b"]))
            else:
                u = b.emit(P.Affine(_var(f"u{l}_{t}", H, "u", "u", l, t), p["W_xh"], xt,
                                    p["b"]))
                v = b.emit(P.Affine(_var(f"v{l}_{t}", H, "v", "v", l, t), p["W_hh"], h))
                b.map_elementwise(z, P.sym(u) + P.sym(v), [u, v])
            if act.identity:
                return z
            return b.map_elementwise(_var(f"h{l}_{t}", H, "h", "h", l, t),
                                     act.apply(P.sym(z)), [z], role="act", label=(act,))

        return self._unroll(b, l, x, step, None)

    def _forward_looped(self, b, l: int, x, p: dict, act):
        """``u = W_xh xₜ + b`` (every t), ``z = RNNSeq(u, W_hh)``, ``h = σ(z)``: no op per
        step (:mod:`symnn.ops.scan`)."""
        T, H = self._steps(), self.n_hidden

        def seq(name: str) -> P.Var:
            return P.Var(f"{name}{l}", "sample", (T * H,), r"{%s^{(%d)}}" % (name, l),
                         name + _sup(f"({l})"))

        u = b.emit(P.SeqAffine(seq("u"), p["W_xh"], x, p["b"], T))
        zs = sp.Symbol("z", real=True)
        z = b.emit(P.RNNSeq(seq("z"), u, p["W_hh"], T, act.apply(zs), zs,
                            self.truncate or 0))
        h = z if act.identity else b.map_elementwise(seq("h"), act.apply(P.sym(z)), [z],
                                                     role="act", label=(act,))
        if self.return_sequences:
            return h
        return b.emit(P.RecRow(_var(f"h{l}_{T}", H, "h", "h", l, T), h, T - 1))

    def to_data(self) -> dict:
        d = self._data("rnn")
        if self.activation != "tanh":
            d["nonlinearity"] = self.activation
        if self.unroll is not None:
            d["unroll"] = self.unroll
        return d

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """With ``c = s‖W_xh‖₂``, ``a = s‖W_hh‖₂`` (``s = sup|σ'|``): ``‖Δhₜ‖ ≤ a‖Δhₜ₋₁‖ +
        c‖Δxₜ‖``, so ``h_T`` is ``c·sqrt(Σ_{j<T} a^{2j})``-Lipschitz in the sequence
        (Cauchy–Schwarz) and the whole sequence ``c·Σ_{j<T} aʲ`` (Young's inequality)."""
        s = float(bound(self.act()))
        c = s * float(np.linalg.norm(np.asarray(arrays[f"W_xh{l}"], float), 2))
        a = s * float(np.linalg.norm(np.asarray(arrays[f"W_hh{l}"], float), 2))
        T = self._steps()
        if self.return_sequences:
            f, note = c * sum(a ** j for j in range(T)), "c·Σ_{j<T} aʲ"
        else:
            f, note = c * math.sqrt(sum(a ** (2 * j) for j in range(T))), "c·√(Σ_{j<T} a²ʲ)"
        return [Factor(repr(self), f, f"{note}, c = s‖W_xh‖₂ = {c:.4g}, a = s‖W_hh‖₂ = "
                       f"{a:.4g} (recurrence over T = {T})", r"L_{\mathrm{rnn}}^{(%d)}" % l)]


_GATES = ("r", "z", "n")


@refuse_bad_calls  # walk: a wrong call is a DeclarationError
@dataclass(frozen=True)
class GRU(_Recurrent):
    r"""Gated recurrent unit in ``torch.nn.GRU``'s convention (``h_0 = 0``)::

        rₜ = σ(W_ir xₜ + b_ir + W_hr hₜ₋₁ + b_hr)
        uₜ = σ(W_iz xₜ + b_iz + W_hz hₜ₋₁ + b_hz)
        nₜ = tanh(W_in xₜ + b_in + rₜ ⊙ (W_hn hₜ₋₁ + b_hn))
        hₜ = (1 − uₜ) ⊙ nₜ + uₜ ⊙ hₜ₋₁

    Parameters ``W_i{r,z,n}<l>`` ``(n_hidden, n_in)``, ``W_h{r,z,n}<l>`` ``(n_hidden,
    n_hidden)`` (role ``"weight"``) and the biases ``b_i{r,z,n}<l>``, ``b_h{r,z,n}<l>``
    (role ``"bias"``); PyTorch's ``weight_ih_l0`` is ``[W_ir; W_iz; W_in]`` stacked.
    ``activation`` is no option (the nonlinearities are fixed): giving one is refused with
    a DeclarationError that says so (use :class:`RNN` for another nonlinearity).

    ``unroll=False`` loops over time (:mod:`symnn.ops.scan_gru`: one ``GRUSeq`` op, whose
    reverse rule is one backward ``GateRec``; the program and the compile time do not grow
    with T, memory is linear in T, T ≤ :data:`MAX_LOOPED_STEPS`); ``True``: unrolled over
    time (T ≤ :data:`MAX_UNROLLED_STEPS`); ``None`` (default): unrolled up to
    :data:`UNROLL_UP_TO` steps, looped above, as :class:`RNN`.  Both forms compute the same
    numbers.

    >>> GRU(2, 3, length=50).looped, GRU(2, 3, length=5).looped
    (True, False)
    >>> [p.name for p in GRU(2, 3).parameters(1)][:4]
    ['W_ir1', 'W_iz1', 'W_in1', 'W_hr1']
    """

    n_in: int
    n_hidden: int
    return_sequences: bool = False
    length: int | None = None
    truncate: int | None = None
    #: not an option: refused with the reason (hostile round: it was a raw TypeError)
    activation: None = field(default=None, repr=False, compare=False)
    #: True: unrolled; False: looped (scan_gru); None: unrolled up to UNROLL_UP_TO steps
    unroll: bool | None = None

    def __post_init__(self) -> None:
        if self.unroll not in (None, True, False) or not isinstance(self.unroll,
                                                                     (bool, type(None))):
            raise DeclarationError(f"GRU: unroll must be True, False or None, got "
                                   f"{self.unroll!r}")
        if self.activation is not None:
            raise DeclarationError(
                f"GRU: activation= is not an option (got {self.activation!r}): the gates use "
                "sigmoid and the candidate tanh, as torch.nn.GRU; for another nonlinearity "
                "use RNN(n_in, n_hidden, activation=...)")
        _Recurrent.__post_init__(self)

    def __repr__(self) -> str:
        loop = "" if self.unroll is None else f", unroll={self.unroll!r}"
        return f"GRU({self.n_in}, {self.n_hidden}{self._extra()}{loop})"

    def _max_steps(self) -> int:
        return MAX_UNROLLED_STEPS if self.unroll else MAX_LOOPED_STEPS

    @property
    def looped(self) -> bool:
        """Whether the derived program loops over time (:mod:`symnn.ops.scan_gru`; see
        ``unroll``)."""
        return self.unroll is False or (self.unroll is None and self.length is not None
                                        and self.length > UNROLL_UP_TO)

    def parameters(self, l: int) -> tuple[ParamSpec, ...]:
        """The six weights, then the six biases."""
        H = self.n_hidden
        out = [self._spec(l, "W", "i" + g, (H, self.n_in), "weight") for g in _GATES]
        out += [self._spec(l, "W", "h" + g, (H, H), "weight") for g in _GATES]
        out += [self._spec(l, "b", s + g, (H,), "bias") for s in "ih" for g in _GATES]
        return tuple(out)

    def forward(self, b, l: int, x, k: int = 0):
        """The gates and the state, unrolled over t = 1 … T (class notes)."""
        p = self._params(b, l)
        H = self.n_hidden
        sig = get_activation("sigmoid")
        if self.looped:
            return self._forward_looped(b, l, x, p)
        h0 = b.emit(P.Map(_var(f"h{l}_0", H, "h", "h", l, 0), (sp.S.Zero,), ()))

        def step(b, t, xt, h):
            pre = {}
            for g in _GATES:
                pre["i" + g] = b.emit(P.Affine(_var(f"a{g}{l}_{t}", H, f"a_{g}", f"a_{g}", l, t),
                                               p["W_i" + g], xt, p["b_i" + g]))
                pre["h" + g] = b.emit(P.Affine(_var(f"c{g}{l}_{t}", H, f"c_{g}", f"c_{g}", l, t),
                                               p["W_h" + g], h, p["b_h" + g]))
            s = {k: P.sym(v) for k, v in pre.items()}
            r = b.map_elementwise(_var(f"r{l}_{t}", H, "r", "r", l, t),
                                  sig.apply(s["ir"] + s["hr"]), [pre["ir"], pre["hr"]])
            u = b.map_elementwise(_var(f"u{l}_{t}", H, "u", "u", l, t),
                                  sig.apply(s["iz"] + s["hz"]), [pre["iz"], pre["hz"]])
            n = b.map_elementwise(_var(f"n{l}_{t}", H, "n", "n", l, t),
                                  sp.tanh(s["in"] + P.sym(r) * s["hn"]),
                                  [pre["in"], r, pre["hn"]])
            return b.map_elementwise(_var(f"h{l}_{t}", H, "h", "h", l, t),
                                     (1 - P.sym(u)) * P.sym(n) + P.sym(u) * P.sym(h),
                                     [u, n, h])

        return self._unroll(b, l, x, step, h0)

    def _forward_looped(self, b, l: int, x, p: dict):
        """``a_g = W_ig xₜ + b_ig`` (every t), ``H = GRUSeq(a, W_h·, b_h·)``: no op per step
        (:mod:`symnn.ops.scan_gru`)."""
        T, H = self._steps(), self.n_hidden

        def seq(name: str) -> P.Var:
            return P.Var(f"{name}{l}", "sample", (T * H,), r"{%s^{(%d)}}" % (name, l),
                         name + _sup(f"({l})"))

        a = [b.emit(P.SeqAffine(seq("a_" + g), p["W_i" + g], x, p["b_i" + g], T))
             for g in _GATES]
        h = b.emit(P.GRUSeq(seq("h"), *a, *(p["W_h" + g] for g in _GATES),
                            *(p["b_h" + g] for g in _GATES), T, self.truncate or 0))
        if self.return_sequences:
            return h
        return b.emit(P.RecRow(_var(f"h{l}_{T}", H, "h", "h", l, T), h, T - 1))

    def to_data(self) -> dict:
        d = self._data("gru")
        if self.unroll is not None:
            d["unroll"] = self.unroll
        return d

    def lipschitz(self, arrays: dict, l: int, bound: Callable) -> list[Factor]:
        """The bound of :mod:`symnn.declare.recurrent_bounds` (issue 13)."""
        return gru_lipschitz(self, arrays, l, bound)


#: The layer classes of this module.
RECURRENT_TYPES: tuple[type, ...] = (RNN, GRU)

for _cls in RECURRENT_TYPES:
    layers.register_layer(_cls)


# ------------------------------------------------------------------------------------------
# plain data (spec files, model files): parsed, never evaluated
# ------------------------------------------------------------------------------------------

#: The keys of a layer table that name a recurrent layer, and their options.
DATA_KINDS = ("rnn", "gru")
DATA_OPTIONS = ("return_sequences", "length", "truncate", "nonlinearity", "unroll")


def layer_from_data(item: dict, high: int = 1 << 20):
    """``(layer, None)`` from a layer table with one of :data:`DATA_KINDS`, or ``(None,
    problem)`` saying what is wrong (the caller raises its own error with it).

    >>> layer_from_data({"rnn": [2, 4], "length": 5, "nonlinearity": "relu"})[0]
    RNN(2, 4, activation='relu', length=5)
    >>> layer_from_data({"gru": [2, 0]})[1]
    'gru: expected [n_in, n_hidden] of integers from 1 to 1048576, got [2, 0]'
    """
    kinds = [k for k in DATA_KINDS if k in item]
    if len(kinds) != 1:
        return None, f"a layer table names one layer; this one names {kinds or 'none'}"
    kind = kinds[0]
    allowed = DATA_OPTIONS if kind == "rnn" else DATA_OPTIONS[:3] + ("unroll",)
    extra = [k for k in item if k != kind and k not in allowed]
    if extra:
        hint = ("; an rnn's activation is given as nonlinearity = \"…\"" if kind == "rnn"
                and "activation" in extra else "; a gru has no nonlinearity (sigmoid gates, "
                "tanh candidate)" if "nonlinearity" in extra else "")
        return None, f"{kind}: unexpected keys {sorted(map(str, extra))}{hint}"
    v = item[kind]
    ok = lambda n, low: isinstance(n, int) and not isinstance(n, bool) and low <= n <= high  # noqa: E731
    if not isinstance(v, list) or len(v) != 2 or not all(ok(n, 1) for n in v):
        return None, (f"{kind}: expected [n_in, n_hidden] of integers from 1 to {high}, got "
                      f"{str(v)[:60]}")
    kw: dict = {}
    for name in ("length", "truncate"):
        x = item.get(name)
        if x is not None and not ok(x, 1):
            return None, f"{kind} {name}: expected an integer from 1 to {high}, got {x!r}"
        kw[name] = x
    ret = item.get("return_sequences", False)
    if not isinstance(ret, bool):
        return None, f"{kind} return_sequences: expected true or false"
    if "nonlinearity" in item:
        if not isinstance(item["nonlinearity"], str):
            return None, "rnn nonlinearity: expected an activation name"
        kw["activation"] = item["nonlinearity"]
    if "unroll" in item:
        if not isinstance(item["unroll"], bool):
            return None, f"{kind} unroll: expected true or false"
        kw["unroll"] = item["unroll"]
    try:
        cls = RNN if kind == "rnn" else GRU
        return cls(v[0], v[1], return_sequences=ret, **kw), None
    except DeclarationError as err:
        return None, str(err)
    except SymnnError as err:  # an unknown activation name
        return None, str(err)
