"""One compiled call for ``loss_and_grad`` at small batches: checks, kernel, after-check (issue 16).

At B = 1 the gradient kernel of a small MLP takes about 6 µs; the Python around it (type
and shape tests, the work buffer, the gradient array, the compiled after-check of
:mod:`symnn.codegen._fusedcheck`) took about 2 µs more.  A model called often at B ≤
:data:`~symnn.codegen._fusedcheck.ROWS` gets an *entry*: a Numba function generated for
that model, compiled for exactly one signature (θ, X, y and the gradient C-contiguous,
writable, aligned arrays of the model's dtype; y of one rank), which in one call

* checks the shapes the fast path checks (θ's size, X's width, 1 ≤ B ≤ ROWS, y's shape),
* allocates the work buffer and fills the gradient array it is given (both NaN-filled
  first for a ``debug`` model, as the poisoned call does),
* runs the model's own ``loss_and_grad`` kernel (linked in: the very same machine code's
  products, so the same bits), and
* runs :func:`~symnn.codegen._fusedcheck._after_ok` on the kernel's covering products, the
  rest of θ, X and y,

and returns ``(L, ok)``; the model's ``_entry_lg`` allocates the gradient, calls it and
returns ``(L, grad, ok)``.  Dispatch itself is the type check: the entry is compiled for
one signature with compilation then switched off, so any other argument (a list, another
dtype, a strided or read-only array, another rank) makes Numba raise ``TypeError`` before
anything runs, and :meth:`CompiledModel.loss_and_grad` takes the path it took before
(:func:`fallback_lg`, then the full checks).  ``ok`` False (a shape that does not fit, or a
value check that failed) sends it there too: the full checks then raise the same
:class:`~symnn.errors.DataError` as ever, or compute the same result for a θ that was
finite after all.  So the entry adds no error of its own and never decides an error: it
only returns results whose every check passed.

**No Python runs inside the entry**, so a Ctrl-C lands before or after it, never in it.  It
returns no array on purpose: Numba boxes a returned array by calling a Python function
(``numba.core.serialize._numba_unpickle``, for the array's type) from the compiled code; a
SIGINT that arrived just before made its ``KeyboardInterrupt`` rise in that function, the
compiled code carried on, CPython turned the result into a ``SystemError`` ("returned a
result with an exception set"), and ``loss_and_grad``'s ``except Exception`` (there for the
dispatch ``TypeError``) ran the old path: the interrupt was lost, and a training loop ran to
its last epoch (test_cli's Ctrl-C test, 2 CI runs of 4, round 7; 3 of 40 runs of
``scripts/ctrl_c_repro.py``, round 8).  The gradient allocated in Python costs less than that
boxing did.

Building one costs a compile of about a second (the kernel is linked into it); its machine
code goes to Numba's cache beside the kernel module (about 30 ms to load in a later
process).  So a model builds it only on its :data:`BUILD_AFTER`-th fast call at a small
batch (the test suite's models never get there, a training loop or a benchmark does), or
when asked (:func:`build`).  No entry for: AOT models (:mod:`symnn.codegen.aot`, their own
compiled path), Dropout models, kernels compiled in memory (no cache directory), a
kernel not called yet (its runtime blocks are prepared on the first call), kernels whose
products :func:`~symnn.codegen._fusedcheck.plan` does not cover.

Examples
--------
>>> import numpy as np, symnn
>>> model = symnn.mlp([3, 4, 2], activation="tanh", output="softmax",
...                   loss="cross_entropy").compile()
>>> theta = model.init(0); X = np.ones((1, 3)); y = np.array([[1.0, 0.0]])
>>> before = model.loss_and_grad(theta, X, y)
>>> build(model)                                  # (else on the BUILD_AFTER-th call)
True
>>> L, g, ok = model._entry_lg(theta, X, y)
>>> ok and L == before[0] and np.array_equal(g, before[1])
True
>>> theta[13] = np.nan
>>> model._entry_lg(theta, X, y)[2]               # the full checks will raise
False
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import numpy as np

from symnn.codegen import _fusedcheck, _sigint
from symnn.codegen._fastpath import _constants
from symnn.codegen.cache import load_module, module_key
from symnn.errors import SymnnWarning

__all__ = ["BUILD_AFTER", "NO", "build", "entry_source", "fallback_lg", "stub_lg"]

#: A model builds its entry on this many-th ``loss_and_grad`` call that took the fused
#: small-batch path (:mod:`symnn.codegen._fusedcheck`).
#: None: never built automatically (call :func:`build`).  (Off in round 7 while a Ctrl-C
#: in a training loop was lost once the entry existed: the entry then returned an array,
#: whose boxing ran Python code; see the module's docstring.)
BUILD_AFTER: int | None = 1000

#: "Not done here": what a declining entry path returns.
NO = (0.0, None, False)

_TEMPLATE = '''\
# symnn loss_and_grad entry of {module} (symnn.codegen._fusedentry); checks {checks}
import numpy as np
from numba import njit
from symnn.codegen._fusedcheck import _after_ok
from {module} import {kernel} as _kernel

_TSEGS = np.array({tsegs}, dtype=np.int64)
_WSEGS = np.array({wsegs}, dtype=np.int64)  # row B - 1: the covering products' z at B rows


@njit(["({dt}[::1], {dt}[:, ::1], {ytype}, {dt}[::1])"], cache=True, nogil=True,
      error_model="numpy")
def entry(theta, X, y, grad):
    B = X.shape[0]
    if (theta.shape[0] != {n_params} or grad.shape[0] != {n_params}
            or X.shape[1] != {width} or B < 1 or B > {rows} or {yshape}):
        return 0.0, False
    work = np.empty({total_a} * B + {total_c}, np.{dt})
{poison}
    Xf = X.reshape(-1)
    yf = y.reshape(-1)
    L = _kernel(theta, Xf, yf, grad, work)
    ok = _after_ok(theta, _TSEGS, work, _WSEGS[B - 1], Xf, yf, {n_out}, {tol!r}, {prob})
    return np.float64(L), ok
'''

_CHECKS: list = []


def _checks_stamp() -> str:
    """A hash of the sources the entry links (the after-check and its helpers): Numba's
    cache keys an entry on its own file only, so their text goes into that file."""
    if not _CHECKS:
        here = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for name in ("_fusedcheck.py", "_validate.py", "_fusedentry.py"):
            h.update((here / name).read_bytes())
        _CHECKS.append(h.hexdigest()[:16])
    return _CHECKS[0]


def _plan_fits(model, p) -> bool:
    """The plan's work-buffer size is the model's own, at every small batch."""
    a, c = p.total
    return all(a * B + c == model.generated.work_size("loss_and_grad", B)
               for B in range(1, _fusedcheck.ROWS + 1))


def entry_source(model, y_ndim: int = 2) -> str | None:
    """The Python source of ``model``'s entry for targets of rank ``y_ndim``, or None when
    the model gets none (see the module's docstring)."""
    module = model.module
    if "loss_and_grad" not in model._ready:  # (its runtime blocks are prepared on first call)
        return None
    if model._aot or model.mask_width or not str(getattr(module, "__file__", "")).endswith(
            ".py") or sys.modules.get(module.__name__) is not module:
        return None
    p = _fusedcheck.plan(model, "loss_and_grad")
    if p is None or not _plan_fits(model, p):
        return None
    _dt, _shape, width, tol, n_out, probabilities = _constants(model)
    if y_ndim == 2:
        ytype, yshape = "{dt}[:, ::1]", f"y.shape[0] != B or y.shape[1] != {n_out}"
    elif y_ndim == 1 and n_out == 1:
        ytype, yshape = "{dt}[::1]", "y.shape[0] != B"
    else:
        return None
    wsegs = [[v for a, c, n in p.products for v in (a * B + c, a * B + c + B * n)]
             for B in range(1, _fusedcheck.ROWS + 1)]
    dt = model.dtype.name
    poison = "    work[:] = np.nan\n    grad[:] = np.nan" if model.debug else "    pass"
    return _TEMPLATE.format(
        module=module.__name__, kernel=model.generated.kernels["loss_and_grad"].name,
        checks=_checks_stamp(), tsegs=p.theta_segments.tolist(), dt=dt,
        ytype=ytype.format(dt=dt), n_params=model.n_params, width=width,
        rows=_fusedcheck.ROWS, yshape=yshape, wsegs=wsegs, total_a=p.total[0],
        total_c=p.total[1], poison=poison,
        n_out=n_out, tol=float(tol), prob=bool(probabilities))


def build(model, y_ndim: int = 2, source: str | None = None) -> bool:
    """Compile (or load from Numba's cache) ``model``'s entry and install it (in Python,
    around the compiled function) as ``model._entry_lg``; False when the model gets none.
    ``source``: the entry's text (tests use it to check that a broken entry is caught)."""
    if source is None:
        source = entry_source(model, y_ndim)
    if source is None:
        return False
    key = module_key("loss_and_grad entry", source, model.dtype.name)
    with _sigint.deferred():  # (Numba's compiler swallowed a Ctrl-C: see _sigint)
        try:
            with warnings.catch_warnings():  # (an unusable cache directory: in memory)
                warnings.simplefilter("ignore", SymnnWarning)
                fn = load_module(source, key, Path(model.module.__file__).parent).entry
            fn.disable_compile()  # one signature: any other argument types raise TypeError
        except Exception:  # noqa: BLE001 - an optimisation only: the model keeps its path
            return False
    model._entry_lg = _entry_lg(fn, model.n_params, model.dtype)
    return True


def _entry_lg(fn, n_params: int, dtype):
    """``(theta, X, y) -> (L, grad, ok)`` around the compiled entry ``fn`` (also its
    ``dispatcher`` attribute): the gradient is allocated here, in Python, so that ``fn``
    returns no array (see the module's docstring: boxing one runs Python code)."""
    def entry_lg(theta, X, y):
        grad = np.empty(n_params, dtype)
        L, ok = fn(theta, X, y, grad)
        return L, grad, ok

    entry_lg.dispatcher = fn
    return entry_lg


def fallback_lg(model, theta, X, y):
    """``(L, grad, True)`` from the fused small-batch path of :mod:`._fusedcheck`, or
    :data:`NO`: the caller runs the full checks."""
    done = _fusedcheck.loss_and_grad(model, theta, X, y, None)
    if done is None:
        return NO
    return done[0], done[1], True


def stub_lg(model, theta, X, y):
    """A model's ``_entry_lg`` until it has an entry: :func:`fallback_lg`, counting the
    calls it serves; the :data:`BUILD_AFTER`-th builds the entry (once, built or not)."""
    done = _fusedcheck.loss_and_grad(model, theta, X, y, None)
    if done is None:
        return NO
    n = model.__dict__.get("_entry_calls", 0) + 1
    model._entry_calls = n
    if n == BUILD_AFTER:
        build(model, y.ndim)
    return done[0], done[1], True
