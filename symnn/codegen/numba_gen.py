"""Code generation: derived programs → the Python source of batched Numba kernels.

:func:`generate` turns the programs of one network or model (:func:`symnn.derive.derive`
and its Hessian-vector, Gauss-Newton and input-Jacobian extensions) into the text of one
Python module with one ``numba.njit`` function per entry point, named after the network:

=====================  ===========================  =======================================
entry                  arguments                    effect
=====================  ===========================  =======================================
``<name>_predict``     ``params, X, out``           ``out`` ← ŷ ``(B, n_out)``
``<name>_loss``        ``params, X, Y``             returns the batch loss L
``<name>_loss_grad``   ``params, X, Y, grad``       returns L; ``grad`` ← ∂L/∂θ
``<name>_hvp``         ``params, V, X, Y, out``     ``out[k]`` ← H ``V[k]`` for K directions
``<name>_gnvp``        ``params, V, X, Y, out``     ``out[k]`` ← G ``V[k]`` (Gauss-Newton)
``<name>_jacobian``    ``params, X, out``           ``out`` ← ∂ŷ/∂x ``(B, n_out, n_in)``
=====================  ===========================  =======================================

Every argument is a flat, C-contiguous 1-D array of the kernel's dtype (``X`` is the
``(B, n_in)`` batch flattened row by row, ``V`` the ``(K, P)`` directions, and so on); the
batch size ``B`` and the number of directions ``K`` are read from the lengths.  Checking
and reshaping the caller's arrays is :mod:`symnn.codegen.model`'s job.

Why flat arrays: Numba's compile time grows with every array view, reshape and loop in a
function, and a helper called with literal constants is recompiled per call site.  So the
generated entry points hold only offset arithmetic, one loop per elementwise ``Map`` and
calls to a few runtime blocks (``_mm_nt`` …, defined below) that are compiled once per
dtype with fixed signatures (:func:`prepare_runtime`) and cached beside this file.
The helpers use BLAS (``np.dot`` in nopython mode) above a size threshold and plain loops
below it: a BLAS call costs about a microsecond, which a batch of one should not pay.

How each op becomes code is one rule per op type, in the table :data:`EMITTERS`:

* ``Affine`` / ``MatTVec`` / ``OuterMean`` — the matrix helpers ``_mm_nt`` / ``_mm_nn`` /
  ``_mm_tn``; the batch mean's ``1/B`` is folded into the product;
* ``Map`` — chains are fused first (:func:`symnn.derive.simplify.fuse_maps`), then each is
  one loop whose body :class:`~symnn.codegen.printer.KernelPrinter` prints after
  :func:`sympy.cse`; a body that recomputes an earlier Map's value (``tanh(z1)`` in a
  tangent when ``a1 = tanh(z1)`` exists) reads that value instead;
* ``Softmax`` / ``LogSumExp`` — max-shifted, sharing one pass when they read the same logits;
* the gradient is written straight into ``grad`` (θ layout); everything else lives in one
  preallocated work buffer.

Second order, forward-over-reverse, many directions at once: the Hessian-vector program is
split into the ops that do not depend on the direction (forward and backward pass, computed
once) and the tangent ops, computed for ``K`` directions together — a tangent per-sample
value is laid out ``(B, K, n)``, a tangent parameter ``(K, *shape)``.  Every product with a
weight matrix then stays one BLAS call over ``B·K`` rows, and the full Hessian is P
Hessian-vector products in one batch (``V = I``).  The input Jacobian is the same
machinery with ``K = n_in`` input tangents.
"""

from __future__ import annotations

import functools
import hashlib
import keyword
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import sympy as sp

from symnn.codegen.printer import KernelPrinter, fastmath_available
from symnn.derive import gnvp_program, hvp_program, input_jvp_program
from symnn.derive import program as P
from symnn.derive.simplify import fuse_maps
from symnn.errors import CompileError

__all__ = ["generate", "GeneratedModule", "Kernel", "EMITTERS", "BLAS_THRESHOLDS",
           "prepare_runtime", "runtime_fingerprint"]

if fastmath_available():
    from symnn.codegen import fastmath as fm
else:  # pragma: no cover - fastmath ships with symnn
    fm = None

#: Sizes from which the matrix helpers call BLAS instead of looping (measured on a 2-core
#: AVX2 machine, see ``benchmarks/bench_kernels.py``): ``nt`` (``A Wᵀ``, the Affine op) by
#: multiply-adds, ``tn`` (``Uᵀ V``, OuterMean) and ``nn`` (``G W``, MatTVec) by rows.
BLAS_THRESHOLDS = {"nt_madds": 2048, "tn_rows": 5, "nn_rows": 3}

_RESERVED = {
    "params", "grad", "V", "X", "Y", "out", "B", "K", "work", "np", "math", "njit", "i", "k",
    "j", "q", "r", "c", "l", "_f", "inv_B", "acc", "m", "e", "d", "prange", "fm", "True",
}

# ------------------------------------------------------------------------------------------
# runtime blocks: the helpers the generated kernels call
# ------------------------------------------------------------------------------------------
#
# They take flat arrays plus offsets and sizes, so that each compiles once per dtype, with
# one fixed signature (:func:`prepare_runtime`), for every kernel of every model, and is
# cached by Numba beside this file.  (A Numba function called with literal constants would
# otherwise be recompiled for every call site.)  Accumulators are float64 in both dtypes.

_NT_MADDS = BLAS_THRESHOLDS["nt_madds"]
_TN_ROWS = BLAS_THRESHOLDS["tn_rows"]
_NN_ROWS = BLAS_THRESHOLDS["nn_rows"]
_exp = fm.fm_exp if fm is not None else math.exp
_log = fm.fm_log if fm is not None else math.log
_RUNTIME: dict = {}


def _runtime(fn):
    """Register a runtime block (compiled lazily, for fixed signatures)."""
    disp = numba.njit(cache=True, error_model="numpy", fastmath=False)(fn)
    _RUNTIME[fn.__name__] = disp
    return disp


@_runtime
def _mm_nt(A, oa, m, n, W, ow, p, b, ob, hasb, out, oo):
    """out[oo:] (m, p) = A[oa:] (m, n) · W[ow:] (p, n)ᵀ, plus b[ob:] (p,) on every row if hasb."""
    if m * n * p >= _NT_MADDS:
        np.dot(A[oa:oa + m * n].reshape((m, n)), W[ow:ow + p * n].reshape((p, n)).T,
               out[oo:oo + m * p].reshape((m, p)))
        if hasb:
            for r in range(m):
                for c in range(p):
                    out[oo + r * p + c] += b[ob + c]
    else:
        for r in range(m):
            for c in range(p):
                acc = b[ob + c] if hasb else 0.0
                for l in range(n):
                    acc += A[oa + r * n + l] * W[ow + c * n + l]
                out[oo + r * p + c] = acc


@_runtime
def _mm_tn(U, ou, m, p, Vm, ov, n, scale, out, oo):
    """out[oo:] (p, n) = scale · U[ou:] (m, p)ᵀ · Vm[ov:] (m, n): a batch mean of outer products."""
    if m >= _TN_ROWS:
        np.dot(U[ou:ou + m * p].reshape((m, p)).T, Vm[ov:ov + m * n].reshape((m, n)),
               out[oo:oo + p * n].reshape((p, n)))
        for r in range(p * n):
            out[oo + r] *= scale
    else:
        for r in range(p):
            d = U[ou + r] * scale
            for c in range(n):
                out[oo + r * n + c] = d * Vm[ov + c]
        for s in range(1, m):
            for r in range(p):
                d = U[ou + s * p + r] * scale
                for c in range(n):
                    out[oo + r * n + c] += d * Vm[ov + s * n + c]


@_runtime
def _mm_nn(G, og, m, p, W, ow, n, out, oo):
    """out[oo:] (m, n) = G[og:] (m, p) · W[ow:] (p, n): the adjoint of a linear map."""
    if m >= _NN_ROWS:
        np.dot(G[og:og + m * p].reshape((m, p)), W[ow:ow + p * n].reshape((p, n)),
               out[oo:oo + m * n].reshape((m, n)))
    else:
        for s in range(m):
            d = G[og + s * p]
            for c in range(n):
                out[oo + s * n + c] = d * W[ow + c]
            for r in range(1, p):
                d = G[og + s * p + r]
                for c in range(n):
                    out[oo + s * n + c] += d * W[ow + r * n + c]


@_runtime
def _colmean(U, ou, m, n, scale, out, oo):
    """out[oo:] (n,) = scale · Σ_r U[ou:] (m, n)[r]: the batch mean of a per-sample value."""
    for c in range(n):
        out[oo + c] = U[ou + c]
    for r in range(1, m):
        for c in range(n):
            out[oo + c] += U[ou + r * n + c]
    for c in range(n):
        out[oo + c] *= scale


@_runtime
def _total(U, ou, n):
    """Σ U[ou:ou + n]."""
    acc = 0.0
    for r in range(n):
        acc += U[ou + r]
    return acc


@_runtime
def _softmax_lse(Z, oz, R, n, Pm, op, Lm, ol, what):
    """Per row of Z[oz:] (R, n): what & 1 → Pm[op:] ← softmax, what & 2 → Lm[ol:] ← log Σ exp.

    Both subtract the row maximum first, so neither overflows."""
    for r in range(R):
        o = oz + r * n
        mx = Z[o]
        for c in range(1, n):
            mx = max(mx, Z[o + c])
        acc = 0.0
        if what & 1:
            for c in range(n):
                e = _exp(Z[o + c] - mx)
                Pm[op + r * n + c] = e
                acc += e
            inv = 1.0 / acc
            for c in range(n):
                Pm[op + r * n + c] *= inv
        else:
            for c in range(n):
                acc += _exp(Z[o + c] - mx)
        if what & 2:
            Lm[ol + r] = mx + _log(acc)


@_runtime
def _rowdot(U, ou, uk, Vv, ov, vk, B, K, n, out, oo):
    """out[oo + i·K + k] = U-row · V-row for every sample i and direction k.

    A row of a tangent value (uk = 1) is (i, k); of an ordinary value (uk = 0) just i."""
    for i in range(B):
        for k in range(K):
            a = ou + ((i * K + k) * n if uk else i * n)
            b = ov + ((i * K + k) * n if vk else i * n)
            acc = 0.0
            for c in range(n):
                acc += U[a + c] * Vv[b + c]
            out[oo + i * K + k] = acc


@_runtime
def _rowsum(U, ou, R, n, out, oo):
    """out[oo + r] = Σ_c U[ou:] (R, n)[r, c]."""
    for r in range(R):
        acc = 0.0
        for c in range(n):
            acc += U[ou + r * n + c]
        out[oo + r] = acc


@_runtime
def _add_rows(out, oo, B, K, n, b, ob, bk):
    """out[oo:] (B, K, n) += b[ob:], which is (K, n) if bk else (n,)."""
    for i in range(B):
        for k in range(K):
            o = oo + (i * K + k) * n
            ob2 = ob + k * n if bk else ob
            for c in range(n):
                out[o + c] += b[ob2 + c]


@_runtime
def _swap01(src, os, a, b, c, dst, od):
    """dst[od:] (b, a, c) ← src[os:] (a, b, c) with the first two axes swapped."""
    for i in range(a):
        for j in range(b):
            for l in range(c):
                dst[od + (j * a + i) * c + l] = src[os + (i * b + j) * c + l]


@_runtime
def _copy_rows(src, os, ss, dst, od, ds, R, n):
    """dst[od + r·ds + c] ← src[os + r·ss + c] for R rows of n (ss = 0 repeats one row)."""
    for r in range(R):
        for c in range(n):
            dst[od + r * ds + c] = src[os + r * ss + c]


@_runtime
def _add2(a, oa, b, ob, out, oo, n):
    """out[oo:oo + n] = a[oa:] + b[ob:]."""
    for c in range(n):
        out[oo + c] = a[oa + c] + b[ob + c]


@_runtime
def _penalty_grad(t, ot, st, n, l1, coef, out, oo, R):
    """out[oo:] (R, n) ← 2 coef t (L2) or coef sign(t) (L1) for R rows of t[ot:] (stride st)."""
    for r in range(R):
        for c in range(n):
            x = t[ot + r * st + c]
            if l1:
                out[oo + r * n + c] = coef * (1.0 if x > 0 else (-1.0 if x < 0 else 0.0))
            else:
                out[oo + r * n + c] = 2.0 * coef * x


#: Argument types of the runtime blocks: ``a`` a flat array, ``i`` int64, ``s`` a scalar
#: of the dtype; the leading letter is the result (``v`` for none).
_SIGNATURES = {
    "_mm_nt": "v:aiiiaiiaiiai",
    "_mm_tn": "v:aiiiaiisai",
    "_mm_nn": "v:aiiiaiiai",
    "_colmean": "v:aiiisai",
    "_total": "s:aii",
    "_softmax_lse": "v:aiiiaiaii",
    "_rowdot": "v:aiiaiiiiiai",
    "_rowsum": "v:aiiiai",
    "_add_rows": "v:aiiiiaii",
    "_swap01": "v:aiiiiai",
    "_copy_rows": "v:aiiaiiii",
    "_add2": "v:aiaiaii",
    "_penalty_grad": "v:aiiiisaii",
}

_PREPARED: set = set()


@numba.njit(inline="always", error_model="numpy", fastmath=False, cache=True)
def _sigmoid(x):
    """1 / (1 + exp(-x)) without overflow (used when symnn.codegen.fastmath is missing)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(inline="always", error_model="numpy", fastmath=False, cache=True)
def _softplus(x):
    """max(x, 0) + log1p(exp(-|x|)): log(1 + exp(x)) without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@functools.lru_cache(maxsize=None)
def runtime_fingerprint() -> str:
    """SHA-256 of the code the generated kernels call or inline (this file, fastmath).

    It goes into every generated module's header, so that a change to the runtime blocks
    gives new module names: Numba's cache of a kernel does not notice when a function it
    inlined changes."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("numba_gen.py", "fastmath.py"):
        try:
            h.update((here / name).read_bytes())
        except OSError:
            h.update(name.encode())
    return h.hexdigest()


def prepare_runtime(dtype: str) -> None:
    """Compile (or load from Numba's cache) the runtime blocks for ``dtype``, then freeze
    them so that calls with literal arguments convert instead of specialising."""
    dtype = np.dtype(dtype).name
    if dtype in _PREPARED:
        return
    A, S = f"{dtype}[::1]", dtype
    for name, spec in _SIGNATURES.items():
        disp = _RUNTIME[name]
        res, args = spec.split(":") if spec else ("s", "s")
        conv = {"a": A, "i": "int64", "s": S, "v": "void"}
        sig = f"{conv[res]}({', '.join(conv[c] for c in args)})"
        disp.disable_compile(False)
        disp.compile(sig)
        disp.disable_compile(True)
        _no_inline(disp)
    _PREPARED.add(dtype)


def _no_inline(disp) -> None:
    """Keep LLVM from inlining a runtime block into every kernel that calls it.

    Numba links a callee's IR into each caller and LLVM then inlines it at every call
    site: a kernel with 25 calls re-optimised 25 copies, and compile time was dominated by
    it.  Marked ``noinline``, each block is linked (and optimised) once per kernel; a call
    costs a few nanoseconds next to the loops and BLAS calls inside.
    """
    for cres in disp.overloads.values():
        try:
            module = cres.library._get_module_for_linking()
            fn = module.get_function(cres.fndesc.mangled_name)
        except Exception:  # a Numba without these internals: inlining is only slower
            continue
        if "noinline" not in {str(a) for a in fn.attributes}:
            fn.add_function_attribute("noinline")
            fn.add_function_attribute("optsize")


@dataclass
class Kernel:
    """One entry point of a generated module."""

    kind: str
    name: str
    args: tuple[str, ...]
    doc: str = ""


@dataclass
class GeneratedModule:
    """The generated source and what it contains.

    Attributes
    ----------
    source : str
        The module text.
    kernels : dict
        ``{kind: Kernel}`` for ``predict``, ``loss``, ``loss_and_grad``, ``hvp``, ``gnvp``,
        ``jacobian``.
    layout : list of (str, tuple, int)
        ``(parameter name, shape, offset in θ)`` in flat order.
    n_params, n_inputs, n_outputs : int
    dtype : str
    fast : bool
        Whether the vectorisable :mod:`symnn.codegen.fastmath` functions are used.
    op_lines : list of (int, str)
        ``(line number in source, "kernel: op")`` of the comment opening each op's code,
        so that a Numba error can name the op.
    tangent_sizes : dict
        ``{kind: (floats per sample per direction, floats per direction)}`` of the work
        buffer of the tangent kernels, to bound how many directions run at once.
    """

    source: str
    kernels: dict[str, Kernel]
    layout: list[tuple[str, tuple[int, ...], int]]
    n_params: int
    n_inputs: int
    n_outputs: int
    dtype: str
    fast: bool
    op_lines: list[tuple[int, str]] = field(default_factory=list)
    tangent_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def op_at(self, line: int) -> str | None:
        """The op whose code contains source line ``line`` (1-based), if any."""
        best = None
        for ln, text in self.op_lines:
            if ln <= line:
                best = text
        return best


# ------------------------------------------------------------------------------------------
# where values live
# ------------------------------------------------------------------------------------------


@dataclass
class Slot:
    """Where a value lives inside one kernel: ``arr[off + …]``.

    ``mode``: ``sample`` ``(B, n)``, ``sampleK`` ``(B, K, n)``, ``param`` (its shape, flat),
    ``paramK`` ``(K, size)``, ``total`` (a scalar local named ``arr``) or ``totalK`` ``(K,)``.
    ``off`` is an int literal or the name of a local holding the offset.
    """

    var: P.Var
    mode: str
    arr: str
    off: str = "0"

    @property
    def n(self) -> int:
        return self.var.size

    @property
    def is_k(self) -> bool:
        return self.mode.endswith("K")

    def at(self, index: str) -> str:
        """``arr[off + index]`` with trivial offsets folded."""
        return f"{self.arr}[{_plus(self.off, index)}]"


def _plus(a: str, b: str) -> str:
    if a == "0":
        return b
    if b == "0":
        return a
    if a.isdigit() and b.isdigit():
        return str(int(a) + int(b))
    return f"{a} + {b}"


def _ident(name: str) -> str:
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit() or keyword.iskeyword(text) or text in _RESERVED:
        text = "v_" + text
    return text


# ------------------------------------------------------------------------------------------
# one kernel
# ------------------------------------------------------------------------------------------


class _KernelWriter:
    """Writes one entry function: storage plan, one block of code per op, epilogue."""

    def __init__(self, gen: "_Generator", kind: str, fname: str):
        self.gen = gen
        self.kind = kind
        self.fname = fname
        self.slots: dict[P.Var, Slot] = {}
        self.kvars: set[P.Var] = set()
        self.printer = KernelPrinter(gen.dtype, gen.fast)
        self.names: set[str] = set(_RESERVED)
        self.units = {"B": 0, "BK": 0, "K": 0, "one": 0}
        self.offsets: list[str] = []  # "o_z1 = …" lines
        self.body: list = []  # lines and ("op", description) markers
        self.values: dict[sp.Expr, tuple[sp.Symbol, P.Var]] = {}
        self.uses_inv_b = False
        self.pre: list[str] = []  # code run before the ops (copies of directions …)

    # -- utilities -------------------------------------------------------------------------
    def lit(self, v: float) -> str:
        return self.printer.literal(v)

    def fresh(self, base: str) -> str:
        name = _ident(base)
        cand, i = name, 2
        while cand in self.names:
            cand = f"{name}_{i}"
            i += 1
        self.names.add(cand)
        return cand

    def slot(self, v: P.Var) -> Slot:
        try:
            return self.slots[v]
        except KeyError:
            raise CompileError(f"value {v.name!r} is read before it is computed") from None

    def b(self, text: str, indent: int = 1) -> None:
        self.body.append("    " * indent + text)

    def carve(self, name: str, unit: str, n: int) -> str:
        """Reserve ``n`` floats per unit (B, B·K, K or one) of the work buffer."""
        size = {"B": f"B * {n}", "BK": f"B * K * {n}", "K": f"K * {n}", "one": f"{n}"}[unit]
        off = self.fresh("o_" + name)
        self.offsets.append((off, size))
        self.units[unit] += n
        return off

    def alloc(self, v: P.Var, k: bool) -> Slot:
        if v.kind == "total" and not k:
            return Slot(v, "total", self.fresh(v.name))
        if v.per_sample:
            unit, mode = ("BK", "sampleK") if k else ("B", "sample")
        elif v.kind == "total":
            unit, mode = "K", "totalK"
        else:
            unit, mode = ("K", "paramK") if k else ("one", "param")
        return Slot(v, mode, "work", self.carve(v.name, unit, v.size))

    # -- driver ----------------------------------------------------------------------------
    def write(self, ops, seeds: dict, fixed: dict, header: list[str], epilogue, args, doc):
        """Plan storage for ``ops``, emit their code; returns the function's lines."""
        self.slots.update(seeds)
        for op in ops:
            if any(v in self.kvars for v in op.inputs):
                self.kvars.add(op.out)
            if op.out in fixed:
                self.slots[op.out] = fixed[op.out]
            elif op.out not in self.slots:
                self.slots[op.out] = self.alloc(op.out, op.out in self.kvars)
        pairs = _softmax_lse_pairs(ops)
        skip = set()
        for op in ops:
            if op in skip:
                continue
            desc = _describe(op)
            self.body.append(("op", desc))
            try:
                if op in pairs:
                    skip.add(pairs[op])
                    self.emit_softmax_pair(op, pairs[op])
                else:
                    rule = EMITTERS.get(type(op))
                    if rule is None:
                        raise CompileError(
                            f"no code generation rule for {type(op).__name__}; add one to "
                            "symnn.codegen.numba_gen.EMITTERS"
                        )
                    rule(self, op)
            except CompileError as err:
                raise CompileError(f"kernel {self.fname}, op {desc}: {err}") from err
            except Exception as err:
                raise CompileError(
                    f"kernel {self.fname}: generating the code of op {desc} failed: "
                    f"{type(err).__name__}: {err}"
                ) from err
        lines = [
            '@njit(cache=True, error_model="numpy", fastmath=False)',
            f"def {self.fname}({', '.join(args)}):",
            f'    """{doc}"""',
        ]
        lines += ["    " + h for h in header]
        if self.uses_inv_b:
            lines.append("    inv_B = _f(1.0) / _f(B)")
        prev = "0"
        for off, size in self.offsets:
            lines.append(f"    {off} = {prev}")
            prev = f"{off} + {size}"
        total = prev if self.offsets else "0"
        lines.append(f"    work = np.empty({total}, _f)")
        lines += ["    " + ln for ln in self.pre]
        self.op_starts = []
        for item in self.body:
            if isinstance(item, tuple):
                self.op_starts.append((len(lines), item[1]))
                lines.append(f"    # {item[1]}")
            else:
                lines.append(item)
        lines += ["    " + ln for ln in epilogue(self)]
        return lines

    # -- Map -------------------------------------------------------------------------------
    def canonical(self, op: P.Map):
        """Bodies in canonical symbols (one per value or fixed component read)."""
        subs, args = {}, {}
        for a in op.args:
            cname = a.var.name if a.index is None else f"{a.var.name}__{a.index}"
            sym = sp.Symbol(cname, real=True)
            subs[a.symbol] = sym
            args[sym] = a
        exprs = []
        for e in op.exprs:
            e = sp.sympify(e).xreplace(subs)
            if e.has(sp.DiracDelta):  # subgradient convention: the derivative of a step is 0
                e = e.replace(sp.DiracDelta, lambda *x: sp.S.Zero)
            exprs.append(e)
        return exprs, args

    def reuse_values(self, exprs, args, out: P.Var):
        """Read earlier Maps' values where a body recomputes them (``tanh(z1)`` → ``a1``)."""
        repl = {body: sym for body, (sym, var) in self.values.items()
                if var.size in (out.size, 1)}
        if not repl:
            return exprs, args
        new = [e.xreplace(repl) for e in exprs]
        if new == exprs:
            return exprs, args
        args = dict(args)
        for body, (sym, var) in self.values.items():
            args.setdefault(sym, P.Arg(sym, var, None))
        used = set().union(*(e.free_symbols for e in new))
        return new, {s: a for s, a in args.items() if s in used}

    def remember(self, op: P.Map, exprs, args) -> None:
        if len(exprs) != 1 or op.out in self.kvars:
            return
        e = exprs[0]
        if e.is_Symbol or not e.free_symbols:
            return
        for a in args.values():
            if a.index is not None or not (a.var.per_sample or a.var.kind == "total"):
                return
            if a.var.per_sample and a.var.size not in (op.out.size, 1):
                return
        self.values.setdefault(e, (sp.Symbol(op.out.name, real=True), op.out))

    def access(self, a: P.Arg, loop: str, comp) -> str:
        """Text reading argument ``a`` inside a Map loop.

        ``loop``: ``flat`` (index ``q`` runs over the whole value), ``elem`` (indices
        ``i``, ``k``, ``j``) or ``row`` (``i``, ``k``; component ``comp``)."""
        s = self.slot(a.var)
        idx = a.index if a.index is not None else 0
        if s.mode == "total":
            return s.arr
        if s.mode == "totalK":
            return s.at("k")
        if s.mode == "param":
            return s.at(str(idx))
        if s.mode == "paramK":
            return s.at(f"k * {s.n} + {idx}" if idx else f"k * {s.n}")
        if loop == "flat":
            return s.at("q")
        if a.index is not None:
            c = str(a.index)
        elif s.n == 1:
            c = "0"
        else:
            c = "j" if loop == "elem" else str(comp)
        row = f"(i * K + k) * {s.n}" if s.is_k else f"i * {s.n}"
        if s.n == 1:
            row = "i * K + k" if s.is_k else "i"
        return s.at(row if c == "0" else f"{row} + {c}")

    def emit_map(self, op: P.Map) -> None:
        out = self.slot(op.out)
        exprs, args = self.canonical(op)
        exprs, args = self.reuse_values(exprs, args, op.out)
        n = op.out.size
        single = len(exprs) == 1
        if not single and len(exprs) != n:
            raise CompileError(f"{len(exprs)} bodies for {n} components")
        for a in args.values():
            if a.var.per_sample and a.index is None and a.var.size not in (n, 1):
                raise CompileError(
                    f"elementwise argument {a.var.name} has size {a.var.size}, the output {n}"
                )
        is_k = out.is_k
        flat = single and all(
            (self.slot(a.var).mode in ("total", "param"))
            or (a.var.per_sample and a.index is None and a.var.size == n
                and self.slot(a.var).is_k == is_k)
            for a in args.values()
        )
        loop = "flat" if flat else ("elem" if single and n > 1 else "row")
        if loop == "row":
            bodies = []
            for c in range(n):
                sub = {s: sp.Symbol(self.access(a, loop, c), real=True) for s, a in args.items()}
                bodies.append((exprs[0] if single else exprs[c]).xreplace(sub))
        else:
            sub = {s: sp.Symbol(self.access(a, loop, None), real=True) for s, a in args.items()}
            bodies = [exprs[0].xreplace(sub)]
        repl, reduced = sp.cse(bodies, symbols=sp.numbered_symbols("c"), order="none")
        ind = 1
        if loop == "flat":
            size = {(False, True): "B", (True, True): "B * K"}.get(
                (is_k, n == 1), f"B * K * {n}" if is_k else f"B * {n}")
            self.b(f"for q in range({size}):")
            ind = 2
            targets = [out.at("q")]
        else:
            self.b("for i in range(B):")
            ind = 2
            if is_k:
                self.b("for k in range(K):", 2)
                ind = 3
            row = f"(i * K + k) * {n}" if is_k else f"i * {n}"
            if loop == "elem":
                self.b(f"for j in range({n}):", ind)
                ind += 1
                targets = [out.at(f"{row} + j")]
            else:
                targets = [out.at(f"{row} + {c}" if c else row) for c in range(n)]
        pr = self.printer
        for sym, e in repl:
            self.b(f"{sym} = {pr.doprint(e)}", ind)
        for t, e in zip(targets, reduced):
            self.b(f"{t} = {pr.doprint(e)}", ind)
        self.remember(op, exprs, args)

    # -- per-row ops ----------------------------------------------------------------------
    def rows(self, s: Slot) -> str:
        return "B * K" if s.is_k else "B"

    def emit_softmax_pair(self, op, other) -> None:
        sm = op if isinstance(op, P.Softmax) else other
        lse = other if sm is op else op
        self._softmax(sm.z, self.slot(sm.out), self.slot(lse.out))

    def _softmax(self, z: P.Var, p: Slot | None, lse: Slot | None) -> None:
        zs = self.slot(z)
        for s in (p, lse):
            if s is not None and s.is_k != zs.is_k:
                raise CompileError("softmax of a value and its output differ in directions")
        what = (1 if p is not None else 0) | (2 if lse is not None else 0)
        pa, po = (p.arr, p.off) if p is not None else (zs.arr, "0")
        la, lo = (lse.arr, lse.off) if lse is not None else (zs.arr, "0")
        self.b(f"_softmax_lse({zs.arr}, {zs.off}, {self.rows(zs)}, {z.size}, {pa}, {po}, "
               f"{la}, {lo}, {what})")

    def emit_softmax(self, op: P.Softmax) -> None:
        self._softmax(op.z, self.slot(op.out), None)

    def emit_lse(self, op: P.LogSumExp) -> None:
        self._softmax(op.z, None, self.slot(op.out))

    def emit_dot(self, op: P.Dot) -> None:
        u, v, o = self.slot(op.u), self.slot(op.v), self.slot(op.out)
        if op.u.size != op.v.size:
            raise CompileError(f"Dot of sizes {op.u.size} and {op.v.size}")
        K = "K" if o.is_k else "1"
        self.b(f"_rowdot({u.arr}, {u.off}, {int(u.is_k)}, {v.arr}, {v.off}, {int(v.is_k)}, "
               f"B, {K}, {op.u.size}, {o.arr}, {o.off})")

    def emit_sumcomp(self, op: P.SumComp) -> None:
        u, o = self.slot(op.u), self.slot(op.out)
        self.b(f"_rowsum({u.arr}, {u.off}, {self.rows(u)}, {op.u.size}, {o.arr}, {o.off})")

    # -- batch means ------------------------------------------------------------------------
    def emit_batchmean(self, op: P.BatchMean) -> None:
        u, o = self.slot(op.u), self.slot(op.out)
        n = op.u.size
        if o.mode == "total":
            self.b(f"{o.arr} = _total({u.arr}, {u.off}, B * {n}) / _f(B)"
                   if n > 1 else f"{o.arr} = _total({u.arr}, {u.off}, B) / _f(B)")
            return
        if u.is_k != o.is_k:
            raise CompileError("a batch mean of an ordinary value into a tangent")
        if o.var.size != n:
            raise CompileError(f"batch mean of size {n} into {op.out.name} of size {o.var.size}")
        self.uses_inv_b = True
        cols = f"K * {n}" if u.is_k else str(n)
        if n == 1 and u.is_k:
            cols = "K"
        self.b(f"_colmean({u.arr}, {u.off}, B, {cols}, inv_B, {o.arr}, {o.off})")

    def emit_outermean(self, op: P.OuterMean) -> None:
        u, v, o = self.slot(op.u), self.slot(op.v), self.slot(op.out)
        nu, nv = op.u.size, op.v.size
        self.uses_inv_b = True
        if not u.is_k and not v.is_k:
            self.b(f"_mm_tn({u.arr}, {u.off}, B, {nu}, {v.arr}, {v.off}, {nv}, inv_B, "
                   f"{o.arr}, {o.off})")
        elif u.is_k and not v.is_k:
            # (B, K·nu)ᵀ (B, nv) is (K·nu, nv): every direction's mean outer product at once
            self.b(f"_mm_tn({u.arr}, {u.off}, B, K * {nu}, {v.arr}, {v.off}, {nv}, inv_B, "
                   f"{o.arr}, {o.off})")
        elif v.is_k and not u.is_k:
            t = self.carve(op.out.name + "_t", "K", nu * nv)
            self.b(f"_mm_tn({u.arr}, {u.off}, B, {nu}, {v.arr}, {v.off}, K * {nv}, inv_B, "
                   f"work, {t})")
            self.b(f"_swap01(work, {t}, {nu}, K, {nv}, {o.arr}, {o.off})")
        else:
            self.b(f"for q in range(K * {nu * nv}):")
            self.b(f"{o.at('q')} = {self.lit(0.0)}", 2)
            self.b("for i in range(B):")
            self.b("for k in range(K):", 2)
            self.b(f"for r in range({nu}):", 3)
            self.b(f"d = {u.at(f'(i * K + k) * {nu} + r')} * inv_B", 4)
            self.b(f"for c in range({nv}):", 4)
            self.b(f"{o.at(f'(k * {nu} + r) * {nv} + c')} += "
                   f"d * {v.at(f'(i * K + k) * {nv} + c')}", 5)

    # -- linear maps -------------------------------------------------------------------------
    def emit_affine(self, op: P.Affine) -> None:
        W, a, o = self.slot(op.W), self.slot(op.a), self.slot(op.out)
        bb = self.slot(op.b) if op.b is not None else None
        n_out, n_in = op.W.shape
        if op.a in self.gen.identity_tangents and not W.is_k:
            # a is the identity input tangent: (W ẋ)[i, k, :] = W[:, k]
            self.b("for i in range(B):")
            self.b(f"for k in range({n_in}):", 2)
            self.b(f"for j in range({n_out}):", 3)
            self.b(f"{o.at(f'(i * K + k) * {n_out} + j')} = {W.at(f'j * {n_in} + k')}", 4)
            if bb is not None:
                self.b(f"_add_rows({o.arr}, {o.off}, B, K, {n_out}, {bb.arr}, {bb.off}, "
                       f"{int(bb.is_k)})")
            return
        hasb = bb is not None and (not bb.is_k or not o.is_k)
        barg = f"{bb.arr}, {bb.off}, 1" if hasb else f"{W.arr}, 0, 0"
        if not W.is_k and not (o.is_k and not a.is_k):
            rows = "B * K" if a.is_k else "B"
            self.b(f"_mm_nt({a.arr}, {a.off}, {rows}, {n_in}, {W.arr}, {W.off}, {n_out}, "
                   f"{barg}, {o.arr}, {o.off})")
            if bb is not None and bb.is_k:
                self.b(f"_add_rows({o.arr}, {o.off}, B, K, {n_out}, {bb.arr}, {bb.off}, 1)")
            return
        if W.is_k and not a.is_k:
            # a (B, n_in) times the stacked (K·n_out, n_in) directions: (B, K·n_out) at once
            self.b(f"_mm_nt({a.arr}, {a.off}, B, {n_in}, {W.arr}, {W.off}, K * {n_out}, "
                   f"{W.arr}, 0, 0, {o.arr}, {o.off})")
            if bb is not None:
                self.b(f"_add_rows({o.arr}, {o.off}, B, K, {n_out}, {bb.arr}, {bb.off}, "
                       f"{int(bb.is_k)})")
            return
        # the rest (a direction in both factors, or only in the bias): loops
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for j in range({n_out}):", 3)
        self.b(f"acc = {self.lit(0.0)}", 4)
        self.b(f"for l in range({n_in}):", 4)
        wt = W.at(f"(k * {n_out} + j) * {n_in} + l") if W.is_k else W.at(f"j * {n_in} + l")
        at = a.at(f"(i * K + k) * {n_in} + l") if a.is_k else a.at(f"i * {n_in} + l")
        self.b(f"acc += {wt} * {at}", 5)
        if bb is not None:
            self.b(f"acc += {bb.at(f'k * {n_out} + j') if bb.is_k else bb.at('j')}", 4)
        self.b(f"{o.at(f'(i * K + k) * {n_out} + j')} = acc", 4)

    def emit_mattvec(self, op: P.MatTVec) -> None:
        W, g, o = self.slot(op.W), self.slot(op.g), self.slot(op.out)
        n_out, n_in = op.W.shape
        if not W.is_k:
            rows = "B * K" if g.is_k else "B"
            if o.is_k and not g.is_k:
                raise CompileError("inconsistent directions in MatTVec")
            self.b(f"_mm_nn({g.arr}, {g.off}, {rows}, {n_out}, {W.arr}, {W.off}, {n_in}, "
                   f"{o.arr}, {o.off})")
            return
        if not g.is_k:
            # g (B, n_out) times [W_1 | … | W_K] (n_out, K·n_in): every direction at once
            t = self.carve(op.W.name + "_h", "K", n_out * n_in)
            self.b(f"_swap01({W.arr}, {W.off}, K, {n_out}, {n_in}, work, {t})")
            self.b(f"_mm_nn({g.arr}, {g.off}, B, {n_out}, work, {t}, K * {n_in}, "
                   f"{o.arr}, {o.off})")
            return
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for c in range({n_in}):", 3)
        self.b(f"acc = {self.lit(0.0)}", 4)
        self.b(f"for r in range({n_out}):", 4)
        self.b(f"acc += {g.at(f'(i * K + k) * {n_out} + r')} * "
               f"{W.at(f'(k * {n_out} + r) * {n_in} + c')}", 5)
        self.b(f"{o.at(f'(i * K + k) * {n_in} + c')} = acc", 4)

    # -- sums and penalties ---------------------------------------------------------------------
    def emit_add(self, op: P.Add) -> None:
        o = self.slot(op.out)
        terms = [self.slot(t) for t in op.terms]
        if o.mode == "total":
            self.b(f"{o.arr} = " + " + ".join(t.arr for t in terms))
            return
        n = op.out.size
        size = {"paramK": f"K * {n}", "totalK": "K", "param": str(n)}.get(
            o.mode, f"{self.rows(o)} * {n}")
        same = all(t.n == n and t.is_k == o.is_k for t in terms)
        if same and len(terms) >= 2:
            first, second = terms[0], terms[1]
            self.b(f"_add2({first.arr}, {first.off}, {second.arr}, {second.off}, "
                   f"{o.arr}, {o.off}, {size})")
            for t in terms[2:]:
                self.b(f"_add2({o.arr}, {o.off}, {t.arr}, {t.off}, {o.arr}, {o.off}, {size})")
            return
        if same:
            t = terms[0]
            self.b(f"_copy_rows({t.arr}, {t.off}, 0, {o.arr}, {o.off}, 0, 1, {size})")
            return
        # mixed sizes (size-1 terms broadcast) or directions: a loop
        if o.mode in ("param", "paramK", "totalK"):
            self.b("for k in range(K):" if o.is_k else "for k in range(1):")
            self.b(f"for j in range({n}):", 2)
            parts = []
            for t in terms:
                c = "j" if t.n > 1 else "0"
                if t.is_k:
                    parts.append(t.at(f"k * {t.n} + {c}"))
                else:
                    parts.append(t.at(c))
            tgt = o.at(f"k * {n} + j") if o.is_k else o.at("j")
            self.b(f"{tgt} = " + " + ".join(parts), 3)
            return
        self.b("for i in range(B):")
        self.b("for k in range(K):" if o.is_k else "for k in range(1):", 2)
        self.b(f"for j in range({n}):", 3)
        parts = []
        for t in terms:
            c = " + j" if t.n > 1 else ""
            parts.append(t.at(f"(i * K + k) * {t.n}{c}" if t.is_k else f"i * {t.n}{c}"))
        tgt = o.at(f"(i * K + k) * {n} + j" if o.is_k else f"i * {n} + j")
        self.b(f"{tgt} = " + " + ".join(parts), 4)

    def emit_penalty(self, op: P.Penalty) -> None:
        p, o = self.slot(op.param), self.slot(op.out)
        size = op.param.size
        coef = self.lit(float(op.coef))
        l1 = int(op.kind == "l1")
        if not op.grad:
            if p.is_k:
                raise CompileError("the value of a penalty has no tangent here")
            idx = range(size) if op.indices is None else op.indices
            self.b(f"acc = {self.lit(0.0)}")
            if op.indices is None:
                self.b(f"for j in range({size}):")
                self.b(f"acc += {'abs(' + p.at('j') + ')' if l1 else p.at('j') + ' * ' + p.at('j')}", 2)
            else:
                for j in idx:
                    e = p.at(str(j))
                    self.b(f"acc += {'abs(' + e + ')' if l1 else e + ' * ' + e}")
            self.b(f"{o.arr} = {coef} * acc")
            return
        R = "K" if o.is_k else "1"
        st = str(size) if p.is_k else "0"
        if op.indices is None:
            self.b(f"_penalty_grad({p.arr}, {p.off}, {st}, {size}, {l1}, {coef}, "
                   f"{o.arr}, {o.off}, {R})")
            return
        self.b(f"for q in range({R} * {size}):")
        self.b(f"{o.at('q')} = {self.lit(0.0)}", 2)
        for j in op.indices:
            self.b(f"_penalty_grad({p.arr}, {_plus(p.off, str(j))}, {st}, 1, {l1}, {coef}, "
                   f"{o.arr}, {_plus(o.off, str(j))}, {R})")
            if R != "1":
                raise CompileError("a penalty on some components of a tangent")


#: Code generation rules, one per op type (see the module docstring).
EMITTERS = {
    P.Affine: _KernelWriter.emit_affine,
    P.MatTVec: _KernelWriter.emit_mattvec,
    P.Map: _KernelWriter.emit_map,
    P.Softmax: _KernelWriter.emit_softmax,
    P.LogSumExp: _KernelWriter.emit_lse,
    P.Dot: _KernelWriter.emit_dot,
    P.SumComp: _KernelWriter.emit_sumcomp,
    P.BatchMean: _KernelWriter.emit_batchmean,
    P.OuterMean: _KernelWriter.emit_outermean,
    P.Add: _KernelWriter.emit_add,
    P.Penalty: _KernelWriter.emit_penalty,
}


def _describe(op: P.Op) -> str:
    """A one-line comment for the op's code."""
    if isinstance(op, P.Map):
        subs = {a.symbol: sp.Symbol(a.var.name if a.index is None else f"{a.var.name}[{a.index}]")
                for a in op.args}
        bodies = [str(sp.sympify(e).xreplace(subs)) for e in op.exprs]
        text = f"{op.out.name} = " + (bodies[0] if len(bodies) == 1
                                      else "[" + "; ".join(bodies) + "]")
    elif isinstance(op, P.Affine):
        text = f"{op.out.name} = {op.W.name} {op.a.name}" + (f" + {op.b.name}" if op.b else "")
    elif isinstance(op, P.MatTVec):
        text = f"{op.out.name} = {op.W.name}ᵀ {op.g.name}"
    elif isinstance(op, P.OuterMean):
        text = f"{op.out.name} = batch mean of {op.u.name} {op.v.name}ᵀ"
    elif isinstance(op, P.BatchMean):
        text = f"{op.out.name} = batch mean of {op.u.name}"
    elif isinstance(op, P.Penalty):
        what = "gradient of the " if op.grad else ""
        text = f"{op.out.name} = {what}{op.kind.upper()} penalty {op.coef} on {op.param.name}"
    elif isinstance(op, P.Dot):
        text = f"{op.out.name} = {op.u.name} · {op.v.name}"
    elif isinstance(op, P.SumComp):
        text = f"{op.out.name} = sum of the components of {op.u.name}"
    else:
        text = f"{op.out.name} = {type(op).__name__}({', '.join(v.name for v in op.inputs)})"
    text = " ".join(text.split())
    return text if len(text) <= 100 else text[:97] + "..."


def _softmax_lse_pairs(ops) -> dict:
    """A Softmax and a LogSumExp of the same logits share one pass (at the first)."""
    first: dict = {}
    pairs: dict = {}
    for op in ops:
        if isinstance(op, (P.Softmax, P.LogSumExp)):
            prev = first.get(op.z)
            if prev is None:
                first[op.z] = op
            elif type(prev) is not type(op) and prev not in pairs:
                pairs[prev] = op
    return pairs


# ------------------------------------------------------------------------------------------
# the module
# ------------------------------------------------------------------------------------------


class _Generator:
    def __init__(self, derived, dtype: str, fast: bool):
        self.d = derived
        self.dtype = np.dtype(dtype).name
        self.fast = fast
        self.identity_tangents: set = set()
        self.params = derived.params
        self.layout = []
        off = 0
        for p in self.params:
            self.layout.append((p.name, tuple(p.shape), off))
            off += p.size
        self.n_params = off
        self.x = derived.x
        self.y = derived.y
        self.pred = derived.meta["prediction"]
        self.name = _ident(getattr(derived.declared, "name", "net"))

    def seeds(self, w: _KernelWriter, with_y: bool, params_arr: str = "params") -> dict:
        seeds = {self.x: Slot(self.x, "sample", "X")}
        if with_y:
            seeds[self.y] = Slot(self.y, "sample", "Y")
        for (name, shape, off), p in zip(self.layout, self.params):
            seeds[p] = Slot(p, "param", params_arr, str(off))
        return seeds

    @staticmethod
    def prune(ops, outputs):
        return P.Program(list(ops), {}, {}).needed(outputs).ops

    # -- first-order kernels -----------------------------------------------------------------
    def base_kernel(self, kind: str):
        prog = self.d.program
        fname = f"{self.name}_{'loss_grad' if kind == 'loss_and_grad' else kind}"
        w = _KernelWriter(self, kind, fname)
        L = prog.outputs["loss"]
        grads = [prog.outputs["grad:" + p.name] for p in self.params]
        outs = {"predict": [self.pred], "loss": [L]}.get(kind, [L] + grads)
        ops = fuse_maps(self.prune(prog.ops, outs), set(outs))
        uses_y = any(self.y in op.inputs for op in ops)
        seeds = self.seeds(w, uses_y)
        header = [f"B = X.shape[0] // {self.x.size}"]
        fixed = {}
        if kind == "predict":
            if self.pred in seeds:
                raise CompileError("the prediction is the input itself")
            fixed[self.pred] = Slot(self.pred, "sample", "out")
            args = ("params", "X", "out")
            doc = f"Prediction of {self.name!r}: out (B·{self.pred.size},) ← ŷ(X; params)."

            def epilogue(w):
                return []
        elif kind == "loss":
            args = ("params", "X", "Y")
            doc = f"The batch loss L of {self.name!r}."

            def epilogue(w):
                return [f"return {w.slot(L).arr}"]
        else:
            taken = set()
            for (name, shape, off), g in zip(self.layout, grads):
                if g not in seeds and g not in taken:
                    fixed[g] = Slot(g, "param", "grad", str(off))
                    taken.add(g)
            args = ("params", "X", "Y", "grad")
            doc = (f"Loss and gradient of {self.name!r}: returns L and writes ∂L/∂params "
                   "into grad (θ layout).")

            def epilogue(w):
                lines = []
                for (name, shape, off), g in zip(self.layout, grads):
                    s = w.slot(g)
                    if not (s.arr == "grad" and s.off == str(off)):
                        lines.append(f"_copy_rows({s.arr}, {s.off}, 0, grad, {off}, 0, 1, "
                                     f"{g.size})")
                lines.append(f"return {w.slot(L).arr}")
                return lines

        lines = w.write(ops, seeds, fixed, header, epilogue, args, doc)
        return w, Kernel(kind, fname, args, doc), lines

    # -- tangent kernels -------------------------------------------------------------------
    def tangent_kernel(self, kind: str):
        d = self.d
        fname = f"{self.name}_{kind}"
        w = _KernelWriter(self, kind, fname)
        if kind in ("hvp", "gnvp"):
            extra, tangents, outs = (hvp_program if kind == "hvp" else gnvp_program)(d)
            out_vars = [outs[p.name] for p in self.params]
            seeds_t = list(tangents.values())
        else:
            extra, x_dot, pred_dot = input_jvp_program(d)
            out_vars = [pred_dot] if pred_dot is not None else []
            seeds_t = [x_dot]
        ops = self.prune(list(d.program.ops) + list(extra), out_vars)
        kset = set(seeds_t)
        base, kops = [], []
        for op in ops:
            if any(v in kset for v in op.inputs):
                kset.add(op.out)
                kops.append(op)
            else:
                base.append(op)
        need = {v for op in kops for v in op.inputs} | set(out_vars)
        ops = fuse_maps(base, need) + fuse_maps(kops, set(out_vars))
        uses_y = any(self.y in op.inputs for op in ops)
        seeds = self.seeds(w, uses_y)
        w.kvars = set(seeds_t)
        P_ = self.n_params
        if kind in ("hvp", "gnvp"):
            header = [f"B = X.shape[0] // {self.x.size}", f"K = V.shape[0] // {P_}"]
            for (name, shape, off), p in zip(self.layout, self.params):
                t = tangents[p]
                o = w.carve(t.name, "K", t.size)
                seeds[t] = Slot(t, "paramK", "work", o)
                w.pre.append(f"_copy_rows(V, {off}, {P_}, work, {o}, {t.size}, K, {t.size})")
            args = ("params", "V", "X", "Y", "out")
            what = "Hessian" if kind == "hvp" else "Gauss-Newton"
            doc = (f"{what}-vector products of {self.name!r}: out[k] ← "
                   f"{'H' if kind == 'hvp' else 'G'} V[k] for the K directions in V "
                   f"(K·{P_},), θ layout.")

            def epilogue(w):
                lines = []
                for (name, shape, off), ov in zip(self.layout, out_vars):
                    s = w.slot(ov)
                    ss = str(ov.size) if s.is_k else "0"
                    lines.append(f"_copy_rows({s.arr}, {s.off}, {ss}, out, {off}, {P_}, K, "
                                 f"{ov.size})")
                return lines
        else:
            n_in, n_out = self.x.size, self.pred.size
            self.identity_tangents = {x_dot}
            header = [f"B = X.shape[0] // {n_in}", f"K = {n_in}"]
            o = w.carve("x_dot", "BK", n_in)
            seeds[x_dot] = Slot(x_dot, "sampleK", "work", o)
            w.pre += [
                f"for q in range(B * K * {n_in}):",
                f"    work[{o} + q] = {w.lit(0.0)}",
                "for i in range(B):",
                "    for k in range(K):",
                f"        work[{o} + (i * K + k) * {n_in} + k] = {w.lit(1.0)}",
            ]
            args = ("params", "X", "out")
            doc = (f"Input Jacobian of {self.name!r}: out[i] ← ∂ŷ/∂x at sample i, "
                   f"(B·{n_out}·{n_in},).")

            def epilogue(w):
                if not out_vars:
                    return ["for q in range(out.shape[0]):", f"    out[q] = {w.lit(0.0)}"]
                s = w.slot(out_vars[0])
                if not s.is_k:
                    raise CompileError("the prediction does not depend on the input")
                return ["for i in range(B):",
                        f"    _swap01({s.arr}, {_plus(s.off, f'i * K * {n_out}')}, K, "
                        f"{n_out}, 1, out, i * {n_out * n_in})"]

        lines = w.write(ops, seeds, {}, header, epilogue, args, doc)
        self.identity_tangents = set()
        w.tangent_size = (w.units["BK"], w.units["K"])
        return w, Kernel(kind, fname, args, doc), lines

    def module(self) -> GeneratedModule:
        parts, kernels, sizes = [], {}, {}
        for kind in ("predict", "loss", "loss_and_grad"):
            parts.append(self.base_kernel(kind))
        for kind in ("hvp", "gnvp", "jacobian"):
            w, k, lines = self.tangent_kernel(kind)
            parts.append((w, k, lines))
            sizes[kind] = w.tangent_size
        used = set()
        for w, k, _ in parts:
            used |= w.printer.used
            kernels[k.kind] = k
        text = "\n".join(ln for _, _, lines in parts for ln in lines)
        blocks = sorted(n for n in _RUNTIME if re.search(rf"\b{n}\(", text))
        blocks += sorted(u for u in used if u in ("_sigmoid", "_softplus"))
        fmn = sorted(u for u in used if u.startswith("fm_"))
        decl = self.d.declared
        lines = [
            f"# symnn generated kernels — {type(decl).__name__.lower()} {self.name!r}",
            f"#   {_oneline(repr(decl))}",
            f"#   dtype {self.dtype}; {self.n_params} parameters; elementary functions from "
            + ("symnn.codegen.fastmath" if self.fast else "math"),
            "#   θ layout: " + ", ".join(f"{n}{list(s)}@{o}" for n, s, o in self.layout),
            "#   Generated by symnn.codegen.numba_gen from the derived program; do not edit.",
            f"#   runtime {runtime_fingerprint()[:16]}",
            "import math",
            "",
            "import numpy as np",
            "from numba import njit",
        ]
        if fmn:
            lines.append(f"from symnn.codegen.fastmath import {', '.join(fmn)}")
        if blocks:
            lines.append(f"from symnn.codegen.numba_gen import {', '.join(blocks)}")
        lines += ["", f"_f = np.{self.dtype}"]
        op_lines = []
        for w, k, text in parts:
            lines += ["", ""]
            base = len(lines)
            lines += text
            op_lines += [(base + ln + 1, f"{w.fname}: {t}") for ln, t in w.op_starts]
        return GeneratedModule(
            source="\n".join(lines) + "\n",
            kernels=kernels,
            layout=self.layout,
            n_params=self.n_params,
            n_inputs=self.x.size,
            n_outputs=self.pred.size,
            dtype=self.dtype,
            fast=self.fast,
            op_lines=op_lines,
            tangent_sizes=sizes,
        )


def _oneline(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 150 else text[:147] + "..."


def generate(derived, dtype: str = "float64", fast: bool | None = None) -> GeneratedModule:
    """Generate the kernel module of a derived network or model.

    Parameters
    ----------
    derived : Derived
        From :func:`symnn.derive.derive`.
    dtype : {"float64", "float32"}
    fast : bool, optional
        Use :mod:`symnn.codegen.fastmath` (default: when it is importable).

    Returns
    -------
    GeneratedModule

    Raises
    ------
    CompileError
        When an op has no code generation rule or its code cannot be generated; the
        message names the kernel and the op.

    Examples
    --------
    >>> import symnn
    >>> from symnn.derive import derive
    >>> g = generate(derive(symnn.mlp([2, 2, 1], activation="sigmoid", loss="mse")))
    >>> g.kernels["loss_and_grad"].name
    'mlp_loss_grad'
    """
    if fast is None:
        fast = fastmath_available()
    return _Generator(derived, dtype, fast).module()
