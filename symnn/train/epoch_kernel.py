"""Generated training code: the optimizer update and the whole mini-batch epoch, compiled.

Nothing numeric here is written by hand per optimizer.  :func:`update_source` prints the
SymPy rules of an optimizer (:meth:`symnn.train.Optimizer.rules`) into the Python source of
one ``numba.njit`` function::

    update(theta, g, lam, S, scal, hp, theta_out)

``theta`` (P,) the parameters θₜ₋₁, ``g`` (P,) the gradient, ``lam`` (P,) the weight decay
per coordinate, ``S`` (n_state, P) the optimizer's state vectors (updated in place),
``scal`` (1,) the step count t (incremented), ``hp`` the scalar hyperparameters in the order
of :meth:`Optimizer.hypers`, ``theta_out`` (P,) receives θₜ (it may be ``theta`` itself).
Scalar rules (η_t of a schedule, the clipping factor) and every scalar subexpression of the
elementwise rules (``1/(1 − β₁ᵗ)`` …) are computed once before the loop over parameters;
the loop body holds only elementwise work, so LLVM vectorises it.  Hyperparameter values
travel in ``hp`` at run time: one compiled update serves every learning rate.

:func:`epoch_source` wraps the update and the model's compiled loss-and-gradient kernel
(``<name>_loss_grad`` from :mod:`symnn.codegen.numba`, which takes its batch as flat
1-D arrays) into one ``epoch`` function: the
shuffled mini-batch loop — gather the batch, forward, backward, update — runs inside one
compiled call, so small networks pay no Python overhead per step.  Parameters live in two
buffers that alternate at each step, so when a loss comes out non-finite the parameters of
the last finite loss are still intact, at no cost per step.

Both release the GIL (``nogil=True``), as the model's kernels do: every buffer they
write — the parameter buffers, the optimizer state, the batch, the kernel's work buffer —
belongs to one call of :func:`symnn.train.fit`, so threads (a threaded Dask worker running
a sweep, a thread pool) train at once.

Both modules are written to the kernel cache (:mod:`symnn.codegen.cache`) under a
content-hashed name, so a second process starts warm.

Examples
--------
>>> import numpy as np
>>> from symnn.train.optimizers import SGD
>>> upd = compile_update(SGD(lr=0.5))
>>> theta = np.array([1.0, 2.0]); g = np.array([0.2, -0.4])
>>> upd.step(theta, g)
>>> theta
array([0.9, 2.2])
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from symnn.codegen.cache import load_module, module_key
from symnn.codegen.printer import KernelPrinter
from symnn.errors import ArgumentError, CompileError
from symnn.train.optimizers import GRAD, LAM, THETA, THETA_NEW, Optimizer, Rule
from symnn.train.schedules import T

__all__ = ["update_source", "compile_update", "CompiledUpdate", "epoch_source",
           "compile_epoch", "EpochKernel", "STATUS_OK", "STATUS_NONFINITE",
           "update_norms_source", "decay_per_array"]

#: ``stats[2]`` after an epoch: every loss was finite.
STATUS_OK = 0
#: ``stats[2]`` after an epoch: a mini-batch loss was NaN or ±inf; training stopped there.
STATUS_NONFINITE = 1

_HEAD = '@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)'


class _UpdatePrinter(KernelPrinter):
    """The kernel printer plus the functions schedules use (``floor``)."""

    def _print_floor(self, expr) -> str:
        return f"np.floor({self._print(expr.args[0])})"

    def _print_Symbol(self, expr) -> str:
        return self.code_names.get(expr, expr.name)


def _hoist(expr: sp.Expr, vector: set, emit) -> sp.Expr:
    """Replace every maximal scalar-only subtree of ``expr`` by a symbol computed once.

    ``emit(expr) -> Symbol`` records a scalar assignment before the loop.  The scalar
    factors of a product (terms of a sum) are grouped into one hoisted value.
    """
    if expr.is_Atom:
        return expr
    if not (expr.free_symbols & vector):
        return expr if expr.is_number else emit(expr)
    if expr.is_Mul or expr.is_Add:
        scal = [a for a in expr.args if not (a.free_symbols & vector)]
        vec = [_hoist(a, vector, emit) for a in expr.args if a.free_symbols & vector]
        if len(scal) == 1 and (scal[0].is_Atom or scal[0].is_number):
            head = scal
        elif scal:
            head = [emit(expr.func(*scal))]
        else:
            head = []
        return expr.func(*(head + vec))
    if expr.is_Pow and not (expr.exp.free_symbols & vector) and not expr.exp.is_number:
        return sp.Pow(_hoist(expr.base, vector, emit), emit(expr.exp))
    return expr.func(*[_hoist(a, vector, emit) for a in expr.args])


@dataclass
class _Plan:
    """The pieces of an update function, before printing."""

    pre: list = field(default_factory=list)  # (Symbol, Expr | ("norm",)) before the loop
    loads: list = field(default_factory=list)  # (Symbol, array text)
    body: list = field(default_factory=list)  # (Symbol, Expr) inside the loop
    stores: list = field(default_factory=list)  # (array text, Symbol)


def _plan(opt: Optimizer) -> tuple[_Plan, dict]:
    """The update's pieces and ``{symbol: name in the code}`` (``x_i`` for per-coordinate
    values inside the loop)."""
    rules: list[Rule] = opt.rules()
    code: dict[sp.Symbol, str] = {T: "t"}
    for h in opt.hypers():
        code[h.symbol] = h.symbol.name
    inputs = {THETA: "theta[i]", GRAD: "g[i]", LAM: "lam[i]"}
    for j, st in enumerate(opt.state):
        inputs[st.prev] = f"S[{j}, i]"
    vector = set(inputs) | {r.target for r in rules if r.kind == "vector"}
    plan = _Plan()
    vec_rules = _scalar_rules(rules, vector, plan, code)
    _loop_body(vec_rules, plan, code)
    used = set()
    for _, e in plan.body:
        used |= e.free_symbols
    for s, arr in inputs.items():
        if s in used:
            code[s] = s.name + "_i"
            plan.loads.append((s, arr))
    for j, st in enumerate(opt.state):
        plan.stores.append((f"S[{j}, i]", st.new))
    plan.stores.append(("theta_out[i]", THETA_NEW))
    names = list(code.values())
    if len(set(names)) != len(names):  # pragma: no cover - declared names are distinct
        raise CompileError(f"update of {opt!r}: two symbols print as the same name: {names}")
    return plan, code


def _scalar_rules(rules: list[Rule], vector: set, plan: _Plan, code: dict) -> list:
    """Put the norm and scalar rules, and every scalar subtree of the elementwise rules
    (hoisted, one symbol ``c<n>`` each), before the loop; returns the elementwise rules
    as ``[(target, hoisted expression)]``."""
    counter = [0]

    def emit(e: sp.Expr) -> sp.Symbol:
        for s, prev in plan.pre:
            if prev == e:
                return s
        s = sp.Symbol(f"c{counter[0]}")
        counter[0] += 1
        code[s] = s.name
        plan.pre.append((s, e))
        return s

    vec_rules = []
    for r in rules:
        if r.kind == "norm":
            code[r.target] = r.target.name
            plan.pre.append((r.target, ("norm",)))
        elif r.kind == "scalar":
            code[r.target] = r.target.name
            plan.pre.append((r.target, r.evaluated()))
        else:
            vec_rules.append((r.target, _hoist(r.evaluated(), vector, emit)))
    return vec_rules


def _loop_body(vec_rules: list, plan: _Plan, code: dict) -> None:
    """The elementwise rules after common subexpression elimination: the scalar common
    subexpressions before the loop, the rest inside it."""
    replacements, reduced = sp.cse([e for _, e in vec_rules],
                                   symbols=sp.numbered_symbols("x"), order="none")
    scalar_syms = set(code)
    body = []
    for s, e in replacements:
        if e.free_symbols <= scalar_syms:
            code[s] = s.name
            scalar_syms.add(s)
            plan.pre.append((s, e))
        else:
            code[s] = s.name + "_i"
            body.append((s, e))
    for (target, _), e in zip(vec_rules, reduced):
        code[target] = target.name + "_i"
        body.append((target, e))
    plan.body.extend(_in_dependency_order(body))


def _in_dependency_order(body: list) -> list:
    """The loop's assignments, each after every assignment it reads (else in their order).

    A common subexpression of two rules may read the target of an earlier rule (Nesterov
    with weight decay: ``x0 = −η·g̃`` reads ``g̃ = g + λθ``), so "subexpressions first, then
    the rules" can read a value before it is assigned."""
    targets = {s for s, _ in body}
    done: set = set()
    out, pending = [], list(body)
    while pending:
        for k, (s, e) in enumerate(pending):
            if not (e.free_symbols & targets) - done:
                break
        else:  # pragma: no cover - a cycle: rules never read their own target
            raise CompileError(f"update rules read each other in a cycle: {pending}")
        out.append(pending.pop(k))
        done.add(s)
    return out


def update_source(opt: Optimizer, dtype: str = "float64", fname: str = "update") -> str:
    """The Python source of the compiled update of ``opt`` (one ``@njit`` function).

    Examples
    --------
    >>> from symnn.train.optimizers import Adam
    >>> print(update_source(Adam()).split("for i in range(n):")[1])
    <BLANKLINE>
            g_i = g[i]
            m_i = S[0, i]
            theta_i = theta[i]
            v_i = S[1, i]
            m_new_i = c0*g_i + m_i*beta1
            v_new_i = c1*(g_i*g_i) + v_i*beta2
            mhat_i = c2*m_new_i
            vhat_i = c3*v_new_i
            theta_new_i = theta_i + c4*mhat_i/(epsilon + math.sqrt(vhat_i))
            S[0, i] = m_new_i
            S[1, i] = v_new_i
            theta_out[i] = theta_new_i
    <BLANKLINE>
    """
    doc = (f"The update of {opt!r}, generated from its SymPy rules by "
           "symnn.train.epoch_kernel; do not edit.")
    pre, body = _update_code(opt, dtype)
    lines = [_HEAD, f"def {fname}(theta, g, lam, S, scal, hp, theta_out):", f'    """{doc}"""']
    lines += pre + ["    for i in range(n):"] + body
    return "\n".join(lines) + "\n"


def update_norms_source(opt: Optimizer, dtype: str = "float64",
                        fname: str = "update_norms") -> str:
    """The source of the update fused with the history's per-array gradient norms.

    ``update_norms(theta, g, lam, S, scal, hp, theta_out, _bounds, _norms)`` makes the
    same update as :func:`update_source` (the same loop body, coordinate by coordinate, so
    θₜ and the state are bitwise those of ``update``) and, in the same pass over ``g``,
    adds to ``_norms[a]`` the Euclidean norm of ``g[_bounds[a]:_bounds[a + 1]]`` for each
    parameter array ``a`` (``_bounds`` must cover ``0:n``; the names start with ``_`` so
    no symbol of the rules, such as the clipping norm ``gnorm``, can shadow them).  Here
    ``lam`` holds one weight decay per *array* (``lam[a]``, shape ``(n_arrays,)``), as
    :func:`symnn.train.session.decay_vector` makes it: one stream less to read per step.  The sum of squares is
    reassociated (``_sq``: the norms are only reported, never trained on) so the loop
    still vectorises; the indices are unsigned (``_u``) so no negative-index test stops it.

    Examples
    --------
    >>> from symnn.train.optimizers import SGD
    >>> print(update_norms_source(SGD()).split("    for _a in")[1])
     range(_bounds.shape[0] - 1):
            _ss = 0.0
            for _q in range(_bounds[_a], _bounds[_a + 1]):
                i = _u(_q)
                g_i = g[i]
                theta_i = theta[i]
                theta_new_i = theta_i + c0*g_i
                theta_out[i] = theta_new_i
                _ss = _sq(_ss, g_i)
            _norms[_a] += math.sqrt(_ss)
    <BLANKLINE>
    """
    doc = (f"The update of {opt!r} with the per-array gradient norms, generated from its "
           "SymPy rules by symnn.train.epoch_kernel; do not edit.")
    pre, body = _update_code(opt, dtype)
    g_i = "g_i" if any(line.strip() == "g_i = g[i]" for line in body) else "g[i]"
    per_array = [line for line in body if line.strip() == "lam_i = lam[i]"]
    lines = [_HEAD,
             f"def {fname}(theta, g, lam, S, scal, hp, theta_out, _bounds, _norms):",
             f'    """{doc}"""']
    lines += pre
    lines += ["    for _a in range(_bounds.shape[0] - 1):",
              "        _ss = 0.0"]
    lines += ["        lam_i = lam[_a]" for _ in per_array]  # λ is one value per array
    lines += ["        for _q in range(_bounds[_a], _bounds[_a + 1]):",
              "            i = _u(_q)"]
    lines += ["    " + line for line in body if line not in per_array]
    lines += [f"            _ss = _sq(_ss, {g_i})",
              "        _norms[_a] += math.sqrt(_ss)"]
    return "\n".join(lines) + "\n"


def _update_code(opt: Optimizer, dtype: str) -> tuple[list[str], list[str]]:
    """The update's lines before the loop over coordinates (4 spaces in) and its loop body
    over coordinate ``i`` (8 spaces in)."""
    dtype = np.dtype(dtype).name
    plan, code = _plan(opt)
    pr = _UpdatePrinter(dtype=dtype, fast=False)
    pr.code_names = code
    one = pr.literal(1.0)
    lines = ["    n = theta.shape[0]",
             f"    t = scal[0] + {one}",
             "    scal[0] = t"]
    for k, h in enumerate(opt.hypers()):
        lines.append(f"    {code[h.symbol]} = hp[{k}]")
    for s, e in plan.pre:
        if isinstance(e, tuple):  # the Euclidean norm of the gradient, 4 partial sums
            lines += [
                "    acc0 = 0.0", "    acc1 = 0.0", "    acc2 = 0.0", "    acc3 = 0.0",
                "    n4 = n - n % 4",
                "    for r in range(0, n4, 4):",
                "        acc0 += float(g[r]) * float(g[r])",
                "        acc1 += float(g[r + 1]) * float(g[r + 1])",
                "        acc2 += float(g[r + 2]) * float(g[r + 2])",
                "        acc3 += float(g[r + 3]) * float(g[r + 3])",
                "    for r in range(n4, n):",
                "        acc0 += float(g[r]) * float(g[r])",
                f"    {code[s]} = _f(math.sqrt((acc0 + acc1) + (acc2 + acc3)))",
            ]
        else:
            lines.append(f"    {code[s]} = {pr.doprint(e)}")
    body = []
    for s, arr in sorted(plan.loads, key=lambda p: code[p[0]]):
        body.append(f"        {code[s]} = {arr}")
    for s, e in plan.body:
        body.append(f"        {code[s]} = {pr.doprint(e)}")
    for arr, s in plan.stores:
        body.append(f"        {arr} = {code[s]}")
    return lines, body


def _module_head(title: str, dtype: str) -> list[str]:
    return [
        f"# symnn generated training code — {title}",
        "# Generated from SymPy update rules by symnn.train.epoch_kernel; do not edit.",
        "import math",
        "",
        "import numpy as np",
        "from numba import njit",
        "",
        f"_f = np.{dtype}",
        "",
    ]


def _load(source: str, dtype: str, cache: bool, cache_dir) -> Any:
    key = module_key("symnn.train.epoch_kernel", source, dtype)
    return load_module(source, key, cache_dir=cache_dir, use_cache=cache)


def _prepare_runtime(dtype: str) -> None:
    """Compile or load the code generator's shared runtime blocks, as the model does before
    its first kernel call (the epoch calls the kernel without going through the model)."""
    from symnn.codegen.numba import prepare_runtime

    prepare_runtime(dtype)


# ------------------------------------------------------------------------------------------
# the update alone
# ------------------------------------------------------------------------------------------


@dataclass
class CompiledUpdate:
    """The compiled update of an optimizer, with its hyperparameters and state layout.

    Attributes
    ----------
    optimizer : Optimizer
    fn : numba dispatcher
        ``fn(theta, g, lam, S, scal, hp, theta_out)`` (see the module docs).
    hp : ndarray
        The hyperparameter values in the order ``fn`` reads them.
    source : str
    dtype : numpy.dtype
    """

    optimizer: Optimizer
    fn: Any
    hp: np.ndarray
    source: str
    dtype: np.dtype
    _state: dict = field(default_factory=dict, repr=False)
    #: ``fused(theta, g, lam, S, scal, hp, theta_out, bounds, gnorm)``: the same update
    #: plus the per-array gradient norms in the same pass, ``lam`` one value per array
    #: (:func:`update_norms_source`).
    fused: Any = field(default=None, repr=False)

    @property
    def n_state(self) -> int:
        return len(self.optimizer.state)

    def init_state(self, n_params: int) -> tuple[np.ndarray, np.ndarray]:
        """Fresh state ``(S, scal)``: every state vector at its start value, t = 0."""
        S = np.empty((self.n_state, n_params), self.dtype)
        for j, st in enumerate(self.optimizer.state):
            S[j] = st.init
        return S, np.zeros(1, self.dtype)

    def step(self, theta: np.ndarray, g: np.ndarray, lam: np.ndarray | None = None,
             S: np.ndarray | None = None, scal: np.ndarray | None = None) -> None:
        """One update of ``theta`` in place (state kept on this object unless given)."""
        P = theta.shape[0]
        if S is None or scal is None:
            if "S" not in self._state or self._state["S"].shape[1] != P:
                self._state["S"], self._state["scal"] = self.init_state(P)
            S, scal = self._state["S"], self._state["scal"]
        if lam is None:
            lam = np.full(P, self.optimizer.weight_decay, self.dtype)
        # into a fresh buffer, then copied: with theta_out aliasing theta the loop does not
        # vectorise (LLVM's alias check fails), ~6× slower for large θ
        out = np.empty_like(theta)
        self.fn(theta, g, lam, S, scal, self.hp, out)
        theta[...] = out


_UPDATES: dict = {}
#: generating and loading a module happens once per key, even when threads ask at once
_LOCK = threading.RLock()


def compile_update(opt: Optimizer, dtype: Any = "float64", cache: bool = True,
                   cache_dir=None) -> CompiledUpdate:
    """Generate and compile the update of ``opt`` (compiled once per rule structure)."""
    dt = np.dtype(dtype)
    key = (opt.structure(), dt.name, cache, str(cache_dir))
    mod = _UPDATES.get(key)
    if mod is None:
        with _LOCK:
            mod = _UPDATES.get(key)
            if mod is None:
                source = ("\n".join(_module_head(repr(opt), dt.name)) + _UPDATE_HELPERS
                          + update_source(opt, dt.name) + "\n\n"
                          + update_norms_source(opt, dt.name))
                mod = _load(source, dt.name, cache, cache_dir)
                _UPDATES[key] = mod
    hp = np.array([h.value for h in opt.hypers()], dt)
    return CompiledUpdate(opt, mod.update, hp, mod.__symnn_source__, dt,
                          fused=mod.update_norms)


#: What the fused update (:func:`update_norms_source`) calls: unsigned indices, and the
#: reassociated sum of squares of the norms (LLVM inlines it; its additions keep their
#: ``reassoc`` flag, so the loop vectorises while the update's own arithmetic stays strict).
_UPDATE_HELPERS = '''_u = np.uint64


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _sq(s, x):
    """s + x² in float64 (reassociable: only the reported gradient norms use it)."""
    return s + np.float64(x) * np.float64(x)


'''


# ------------------------------------------------------------------------------------------
# the epoch
# ------------------------------------------------------------------------------------------

_EPOCH = '''
@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def epoch(bufs, cur, X, Y, perm, batch_size, lam, S, scal, hp, bounds, gnorm, stats, work):
    """One epoch of mini-batch training, entirely compiled.

    bufs (2, P): two parameter buffers, the current one is bufs[cur]; X (n, n_in) and
    Y (n, n_out) the training data; perm (n,) the order of the samples this epoch;
    lam (n_arrays,) the weight decay of each parameter array; S, scal, hp as for update().  gnorm (n_arrays,) accumulates, per parameter array
    (bounds[a]:bounds[a + 1] of θ), the norm of each mini-batch gradient.  work: the
    model kernel's scratch buffer.
    On return stats = [Σ batch loss × batch size, steps done, status, current buffer];
    status 1 means a loss was not finite: bufs[current] then holds the parameters of the
    last finite loss (the update that led to the non-finite one is undone, at no cost:
    each update writes the other buffer), and that step was not applied.
    """
    n = perm.shape[0]
    P = bufs.shape[1]
    n_in = X.shape[1]
    n_out = Y.shape[1]
    grad = np.empty(P, _f)
    Xb = np.empty((batch_size, n_in), _f)
    Yb = np.empty((batch_size, n_out), _f)
    total = 0.0
    steps = 0
    status = 0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        m = stop - start
        if m != batch_size:
            Xb = np.empty((m, n_in), _f)
            Yb = np.empty((m, n_out), _f)
        for r in range(m):
            j = perm[start + r]
            for c in range(n_in):
                Xb[r, c] = X[j, c]
            for c in range(n_out):
                Yb[r, c] = Y[j, c]
        L = _loss_grad({CALL})
        if not np.isfinite(L):
            status = 1
            cur = 1 - cur
            break
        # θ of this step goes to the other buffer: bufs[cur] stays the last good θ
        update_norms(bufs[cur], grad, lam, S, scal, hp, bufs[1 - cur], bounds, gnorm)
        cur = 1 - cur
        total += float(L) * m
        steps += 1
    stats[0] = total
    stats[1] = steps
    stats[2] = status
    stats[3] = cur
'''


def epoch_source(model, opt: Optimizer) -> tuple[str, bool]:
    """The source of the epoch module of ``model`` trained by ``opt``.

    The module imports the model's loss-and-gradient kernel and the optimizer's compiled
    update (:func:`compile_update`) from their cached modules by name, so neither is
    compiled again for it.  Returns ``(source, linked)``; ``linked`` is False when either
    lives only in memory (no usable cache directory): the module then names them as
    globals set after import (``_loss_grad``, ``update``), and is compiled in memory too.
    """
    dtype = np.dtype(model.dtype).name
    kernel = model.kernels["loss_and_grad"]
    upd = compile_update(opt, dtype)
    kmod, umod = kernel.__module__, upd.fn.__module__
    linked = (sys.modules.get(kmod) is getattr(model, "module", None) is not None
              and umod in sys.modules and getattr(sys.modules[umod], "update", None) is upd.fn)
    head = _module_head(f"{opt!r} on {model.name!r} ({model.n_params} parameters)", dtype)
    if linked:
        head[-3:-3] = [f"from {kmod} import {kernel.__name__} as _loss_grad",
                       f"from {umod} import update, update_norms"]
    else:
        head[-1:-1] = ["_loss_grad = None  # the model's kernel, set after import",
                       "update = None  # the optimizer's update, set after import",
                       "update_norms = None  # the same, with the gradient norms"]
    call = ", ".join(_KERNEL_ARGS[a] for a in _kernel_args(model))
    return "\n".join(head) + _EPOCH.replace("{CALL}", call), linked


#: What the epoch passes for each argument of the model's loss-and-gradient kernel.
_KERNEL_ARGS = {"params": "bufs[cur]", "X": "Xb.reshape(-1)", "Y": "Yb.reshape(-1)",
                "grad": "grad", "work": "work"}


def _kernel_args(model) -> tuple[str, ...]:
    """The argument names of the model's ``loss_and_grad`` kernel (from its generator)."""
    gen = getattr(model, "generated", None)
    kern = getattr(gen, "kernels", {}).get("loss_and_grad") if gen is not None else None
    args = tuple(getattr(kern, "args", ("params", "X", "Y", "grad")))
    unknown = [a for a in args if a not in _KERNEL_ARGS]
    if unknown:
        raise CompileError(f"the loss-and-gradient kernel of {model.name!r} takes arguments "
                           f"{unknown} that the training epoch does not know how to pass")
    return args


def work_size(model, batch_size: int) -> int:
    """Length of the kernel's work buffer for one mini-batch (0 if it manages its own)."""
    gen = getattr(model, "generated", None)
    if gen is None or not hasattr(gen, "work_size") or "work" not in _kernel_args(model):
        return 0
    return int(gen.work_size("loss_and_grad", batch_size))


@dataclass
class EpochKernel:
    """A compiled epoch of ``model`` under the rule structure of an optimizer.

    Call :meth:`run` once per epoch.  ``fn`` is the njit ``epoch`` function (signature in
    the source), ``update`` the njit update on its own.
    """

    fn: Any
    update: Any
    source: str
    dtype: np.dtype

    def run(self, bufs, cur, X, Y, perm, batch_size, lam, S, scal, hp, bounds,
            gnorm, work) -> tuple[float, int, int, int]:
        """One epoch; returns ``(Σ loss × batch size, steps, status, current buffer)``.

        ``lam``: the weight decay per parameter array (``(n_arrays,)``, from
        :func:`decay_per_array`), or per coordinate (``(P,)``, constant on each array,
        converted here on every call)."""
        if lam.shape[0] != bounds.shape[0] - 1:
            lam = decay_per_array(lam, bounds)
        stats = np.zeros(4, np.float64)
        self.fn(bufs, cur, X, Y, perm, batch_size, lam, S, scal, hp, bounds, gnorm, stats,
                work)
        return float(stats[0]), int(stats[1]), int(stats[2]), int(stats[3])


def decay_per_array(lam: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """λ of each parameter array from the per-coordinate ``lam`` (what the epoch reads).

    Examples
    --------
    >>> decay_per_array(np.array([0.1, 0.1, 0.0]), np.array([0, 2, 3])).tolist()
    [0.1, 0.0]
    """
    sizes = np.diff(bounds)
    lam_a = np.zeros(sizes.shape[0], lam.dtype)
    if lam.shape == (bounds[-1],):
        lam_a[sizes > 0] = lam[bounds[:-1][sizes > 0]]
    if lam.shape != (bounds[-1],) or not np.array_equal(np.repeat(lam_a, sizes), lam):
        raise ArgumentError("the compiled epoch takes one weight decay per parameter array "
                            "(as symnn.train.session.decay_vector makes it); got a λ that "
                            "varies inside an array or does not match the parameter layout")
    return lam_a


_EPOCHS: dict = {}


def compile_epoch(model, opt: Optimizer, cache: bool = True, cache_dir=None) -> EpochKernel:
    """Generate and load the epoch kernel of ``model`` under ``opt`` (once per process per
    model kernel and rule structure; compiled by Numba on the first call)."""
    kernel = model.kernels["loss_and_grad"]
    key = (id(kernel), kernel.__module__, opt.structure(), np.dtype(model.dtype).name,
           cache, str(cache_dir))
    hit = _EPOCHS.get(key)
    if hit is not None and hit[0] is kernel:
        return hit[1]
    with _LOCK:
        hit = _EPOCHS.get(key)
        if hit is not None and hit[0] is kernel:
            return hit[1]
        return _new_epoch(model, opt, kernel, key, cache, cache_dir)


def _new_epoch(model, opt, kernel, key, cache: bool, cache_dir) -> EpochKernel:
    src, linked = epoch_source(model, opt)
    dtype = np.dtype(model.dtype).name
    _prepare_runtime(dtype)
    mod = _load(src, dtype, cache and linked, cache_dir)
    if not linked:
        mod._loss_grad = kernel
        upd = compile_update(opt, dtype)
        mod.update, mod.update_norms = upd.fn, upd.fused
    ek = EpochKernel(mod.epoch, mod.update, mod.__symnn_source__, np.dtype(dtype))
    _EPOCHS[key] = (kernel, ek)
    return ek
