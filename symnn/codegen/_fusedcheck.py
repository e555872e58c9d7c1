"""θ's finiteness checked through the kernel's own reads of it, at small batches (issue 16).

A compiled model's ``loss`` / ``loss_and_grad`` refuse a θ holding NaN or ±inf with a
:class:`~symnn.errors.DataError`.  Scanning all of θ on every call reads it once more than
the kernel does: for the 26,122 parameters of a 64-128-128-10 MLP about 1 µs, a sixth of a
gradient at B = 1.  At a batch of at most ``ROWS`` rows every dense product ``z = W a (+ b)``
of the kernel (the runtime's ``_mm_nt``) runs its loops, which multiply every entry of W
(and add every entry of b) into some entry of ``z``; in IEEE arithmetic a product with a NaN
or ±inf factor is NaN or ±inf (``0 · inf`` is NaN), and a sum with such a term is never
finite again.  So a finite ``z`` proves its W (and b) finite, whatever the inputs.  The
kernel's ``z`` stays in the work buffer (each value has its own storage there; an in-place
sum only adds further terms into it), so after the kernel :func:`_after_ok` checks, in one
compiled pass:

* the ``z`` of every such product (B × n_out values each),
* the parts of θ no such product covers (here the hidden biases, which the ``tanh`` loops
  add), and X and y as :func:`~symnn.codegen._fastpath.ready_args` does.

A failed check proves nothing by itself (finite weights can overflow ``z``): the caller then
takes the ordinary path, whose full checks raise the same error as ever, or, for a θ that is
finite after all, compute the same result again.  Which products a kernel has is read from
its generated source (:func:`plan`, once per model and kernel): only unconditional
``_mm_nt(…, B, n_in, params, W_off, n_out, params, b_off, hasb, acc, work, o_z)`` calls
with literal offsets count; a kernel whose source does not parse so, a batch of more than
``ROWS`` rows (BLAS computes the products there: some BLAS skip zero factors), a Dropout
mask, a model running ahead-of-time kernels (:mod:`symnn.codegen.aot`, whose checks are
compiled into its module; :func:`_after_ok` is not) or any argument the fast path would
convert goes the ordinary way.

Examples
--------
>>> import numpy as np, symnn
>>> model = symnn.mlp([3, 4, 2], activation="tanh", output="softmax",
...                   loss="cross_entropy").compile()
>>> p = plan(model, "loss_and_grad")
>>> p.theta_segments.reshape(-1, 2).tolist()   # b1: added by the tanh loop
[[12, 16]]
>>> theta = model.init(0); X = np.ones((1, 3)); y = np.array([[1.0, 0.0]])
>>> L, g = loss_and_grad(model, theta, X, y, None)
>>> bool(np.isfinite(L)) and g.shape == (theta.size,)
True
>>> theta[13] = np.inf                                  # a bias: found by the segment scan
>>> loss_and_grad(model, theta, X, y, None) is None     # the ordinary path raises
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numba
import numpy as np

from symnn.codegen._fastpath import _constants
from symnn.codegen._validate import _bad_probability_row, _nonfinite
from symnn.codegen.numba.runtime import BLAS_THRESHOLDS

__all__ = ["ROWS", "Plan", "plan", "loss_and_grad", "loss"]

#: Batches up to this many rows run every ``_mm_nt`` product in loops (the runtime's
#: threshold); larger ones scan θ before the kernel as before.
ROWS = BLAS_THRESHOLDS["nt_rows"]

_OFFSET = re.compile(r"^    (o_\w+) = (?:(0)|(o_\w+) \+ (?:B \* (\d+)|(\d+)))$")
_TOTAL = re.compile(r"^    work = _workspace\(work_in, (o_\w+) \+ (?:B \* (\d+)|(\d+))\)$")
_MM_NT = re.compile(r"^    _mm_nt\(([^()]*)\)$")


@dataclass
class Plan:
    """What one kernel's products cover: ``theta_segments`` (start, stop pairs, flat) of θ
    to scan; ``products`` ``(B coefficient, constant, width)`` of each covering ``z`` in
    the work buffer (offset ``coefficient · B + constant``, ``B · width`` values);
    ``total`` the work buffer's size as ``(B coefficient, constant)``."""

    theta_segments: np.ndarray
    products: tuple
    total: tuple
    by_rows: dict = field(default_factory=dict)

    def work_segments(self, B: int):
        """The (start, stop) pairs of the covering ``z`` for B rows and the buffer size."""
        got = self.by_rows.get(B)
        if got is None:
            segs = [(a * B + c, a * B + c + B * n) for a, c, n in self.products]
            got = self.by_rows[B] = (np.array(segs, np.int64).reshape(-1),
                                     self.total[0] * B + self.total[1])
        return got


def _offsets(lines):
    """``{o_name: (B coefficient, constant)}`` and the buffer total, or None."""
    offs: dict = {}
    sizes: dict = {}
    total = None
    for ln in lines:
        m = _OFFSET.match(ln)
        if m:
            name, zero, prev, nb, nc = m.groups()
            if zero:
                offs[name] = (0, 0)
            else:
                if prev not in offs:
                    return None
                a, c = offs[prev]
                offs[name] = (a + int(nb), c) if nb else (a, c + int(nc))
                sizes[prev] = (int(nb), 0) if nb else (0, int(nc))
            continue
        m = _TOTAL.match(ln)
        if m:
            last, nb, nc = m.groups()
            if last not in offs:
                return None
            a, c = offs[last]
            sizes[last] = (int(nb), 0) if nb else (0, int(nc))
            total = (a + int(nb), c) if nb else (a, c + int(nc))
    if total is None:
        return None
    return offs, sizes, total


def _covered(args, offs, sizes):
    """``((W start, stop), (b start, stop) or None, (a, c, width))`` of one ``_mm_nt``
    call's arguments, or None when it is not a covering product."""
    if len(args) != 13 or args[2] != "B" or args[4] != "params" or args[7] != "params":
        return None
    if args[11] != "work" or args[12] not in offs or args[9] not in ("0", "1"):
        return None
    if not all(args[i].isdigit() for i in (3, 5, 6, 8)):
        return None
    n_in, w0, n_out, b0 = (int(args[i]) for i in (3, 5, 6, 8))
    if n_in < 1 or n_out < 1 or sizes.get(args[12]) != (n_out, 0):
        return None  # the z slot must be exactly B × n_out
    bias = (b0, b0 + n_out) if args[9] == "1" else None
    a, c = offs[args[12]]
    return (w0, w0 + n_out * n_in), bias, (a, c, n_out)


def build_plan(source: str, n_params: int) -> Plan | None:
    """The :class:`Plan` of one kernel's generated source (see the module's docstring), or
    None when no product covers any of θ."""
    lines = source.splitlines()
    parsed = _offsets(lines)
    if parsed is None:
        return None
    offs, sizes, total = parsed
    covered = np.zeros(n_params, bool)
    products = []
    for ln in lines:
        if ln.startswith("    return"):
            break  # (only what every call runs: the products before the first return)
        m = _MM_NT.match(ln)
        if not m:
            continue
        got = _covered([a.strip() for a in m.group(1).split(",")], offs, sizes)
        if got is None:
            continue
        (w0, w1), bias, prod = got
        if w1 > n_params or (bias is not None and bias[1] > n_params):
            continue
        covered[w0:w1] = True
        if bias is not None:
            covered[bias[0]:bias[1]] = True
        products.append(prod)
    if not products:
        return None
    step = np.diff(np.concatenate(([0], (~covered).astype(np.int8), [0])))
    starts, stops = np.flatnonzero(step == 1), np.flatnonzero(step == -1)
    segs = np.stack([starts, stops], axis=1).reshape(-1).astype(np.int64)
    return Plan(segs, tuple(products), total)


def plan(model, kind: str) -> Plan | None:
    """The model's :class:`Plan` for kernel ``kind`` (``"loss"``, ``"loss_and_grad"``),
    built once and kept on the model; None: no fused check for this kernel."""
    plans = model.__dict__.get("_fused_plans")
    if plans is None:
        plans = model._fused_plans = {}
    if kind not in plans:
        try:
            src = model.kernel_source(kind)
        except (KeyError, AttributeError, StopIteration):
            src = None
        plans[kind] = build_plan(src, model.n_params) if src else None
    return plans[kind]


@numba.njit(cache=True, error_model="numpy")
def _after_ok(theta, tsegs, work, wsegs, x, y, n_out, tol, probabilities):
    """True when the kernel's covering products and the rest of θ are finite, x is finite
    and y is finite (``probabilities``: rows non-negative summing to 1 within ``tol``)."""
    for i in range(0, tsegs.size, 2):
        if _nonfinite(theta[tsegs[i]:tsegs[i + 1]]):
            return False
    for i in range(0, wsegs.size, 2):
        if _nonfinite(work[wsegs[i]:wsegs[i + 1]]):
            return False
    if _nonfinite(x):
        return False
    if probabilities:
        return _bad_probability_row(y, n_out, tol) < 0
    return not _nonfinite(y)


def _ready(model, kind, theta, X, y, mask):
    """``(plan, B, X flat, y flat, constants)`` when the call can take the fused check."""
    if mask is not None or model.mask_width or model._aot:  # (AOT: its own compiled checks)
        return None
    dt, shape, width, tol, n_out, probabilities = _constants(model)
    if (type(theta) is not np.ndarray or type(X) is not np.ndarray
            or type(y) is not np.ndarray or theta.dtype is not dt or X.dtype is not dt
            or y.dtype is not dt):
        return None
    xs = X.shape
    if (theta.shape != shape or len(xs) != 2 or xs[1] != width or not 0 < xs[0] <= ROWS
            or not (theta.flags.carray and X.flags.carray and y.flags.carray)):
        return None
    ys = y.shape
    if ys != (xs[0], n_out) and (ys != (xs[0],) or n_out != 1):
        return None
    p = plan(model, kind)
    if p is None:
        return None
    return p, xs[0], X.reshape(-1), y.reshape(-1), (n_out, tol, probabilities)


def _fused(model, kind, theta, X, y, mask, with_grad):
    """``(L,)`` or ``(L, grad)`` from the ``kind`` kernel with θ checked through its reads,
    or None (the ordinary path)."""
    got = _ready(model, kind, theta, X, y, mask)
    if got is None:
        return None
    p, B, Xf, Yf, (n_out, tol, probabilities) = got
    wsegs, total = p.work_segments(B)
    work = model._work(kind, B)
    if work.shape[0] < total:
        return None
    out = (np.empty(model.n_params, model.dtype),) if with_grad else ()
    L = model._call(kind, theta, Xf, Yf, *out, work)
    if not _after_ok(theta, p.theta_segments, work, wsegs, Xf, Yf, n_out, tol, probabilities):
        return None
    return (float(L), *out)


def loss_and_grad(model, theta, X, y, mask):
    """``(L, ∂L/∂θ)`` with θ checked through the kernel's reads, or None: take the ordinary
    path (a call this does not handle, or a value check that failed: the ordinary path
    raises the error, or computes the same result when θ is finite after all)."""
    return _fused(model, "loss_and_grad", theta, X, y, mask, True)


def loss(model, theta, X, y, mask):
    """The batch loss with θ checked through the kernel's reads, or None (see
    :func:`loss_and_grad`)."""
    done = _fused(model, "loss", theta, X, y, mask, False)
    return None if done is None else done[0]
