"""Code generation: derived programs → the Python source of batched Numba kernels.

:func:`generate` turns the programs of one network or model (:func:`symnn.derive.derive`
and its Hessian-vector, Gauss-Newton and input-Jacobian extensions) into the text of one
Python module with one ``numba.njit`` function per entry point:

====================  ==========================================  =========================
entry                 signature                                   result
====================  ==========================================  =========================
``<name>_predict``    ``(params, X, out)``                        ``out`` ← ŷ, ``(B, n_out)``
``<name>_loss``       ``(params, X, Y)``                          returns ``L``
``<name>_loss_grad``  ``(params, X, Y, grad)``                    returns ``L``; ``grad`` ← ∇L
``<name>_hvp``        ``(params, V, X, Y, out)``                  ``out[k]`` ← H V[k]
``<name>_gnvp``       ``(params, V, X, Y, out)``                  ``out[k]`` ← G V[k]
``<name>_jacobian``   ``(params, X, out)``                        ``out`` ← ∂ŷ/∂x, ``(B, n_out, n_in)``
====================  ==========================================  =========================

``params`` is the flat parameter vector θ (its layout: ``GeneratedModule.layout``), ``X``
and ``Y`` are C-contiguous ``(B, n)`` arrays of the kernel's dtype; checking them is the
caller's job (:mod:`symnn.codegen.model`).

How each op becomes code is one emitter per op type (the table :data:`EMITTERS`):

* ``Affine``, ``MatTVec``, ``OuterMean`` call small helpers of the generated module that use
  BLAS (``np.dot`` in nopython mode) above a size threshold and plain loops below it (a BLAS
  call costs about a microsecond: a batch of one should not pay it);
* chains of ``Map`` ops are fused first (:func:`symnn.derive.simplify.fuse_maps`), then each
  ``Map`` is one loop whose body is printed by :class:`~symnn.codegen.printer.KernelPrinter`
  after :func:`sympy.cse`; a Map body that recomputes the value of an earlier Map
  (``tanh(z1)`` in a tangent when ``a1 = tanh(z1)`` exists) reads that value instead;
* ``Softmax`` and ``LogSumExp`` subtract the row maximum (and share one pass when they read
  the same logits);
* every array is a view of one preallocated work buffer, or of the caller's output (the
  gradient is written straight into ``grad`` in θ layout).

Second order, forward-over-reverse, many directions at once.  The Hessian-vector program
is split into the ops that do not depend on the tangent ``v`` (forward and backward pass,
computed once) and the tangent ops, which run for ``K`` directions together: a tangent
per-sample value is a ``(B, K, n)`` array, a tangent parameter a ``(K, *shape)`` array.
Each product with a weight matrix then stays one BLAS call over ``B·K`` rows, so the full
Hessian is ``P`` Hessian-vector products computed as one batch (``V = I``).  The input
Jacobian is the same machinery with ``K = n_in`` input tangents.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from symnn.codegen.printer import FALLBACK_HELPERS, KernelPrinter, fastmath_available
from symnn.derive import gnvp_program, hvp_program, input_jvp_program
from symnn.derive import program as P
from symnn.derive.simplify import fuse_maps
from symnn.errors import CompileError

__all__ = ["generate", "GeneratedModule", "Kernel", "EMITTERS", "BLAS_THRESHOLDS"]

#: Below these sizes the helpers use plain loops instead of a BLAS call (measured on a
#: 2-core AVX2 machine, see ``benchmarks/bench_kernels.py``): ``nt`` (``A Wᵀ``, an Affine
#: op) by multiply-adds, ``tn`` (``Uᵀ V``, OuterMean) and ``nn`` (``G W``, MatTVec) by
#: rows of the batch.
BLAS_THRESHOLDS = {"nt_madds": 2048, "tn_rows": 4, "nn_rows": 2}

_RESERVED = {
    "params", "grad", "V", "X", "Y", "out", "B", "K", "work", "np", "math", "njit", "i", "k",
    "j", "q", "r", "c", "_o", "_f", "inv_B", "acc", "m", "s", "e", "Lsum", "prange",
}


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
        ``(line number, op description)`` of the comment opening each op's code, used to
        name the op when Numba fails to compile a kernel.
    tangent_sizes : dict
        ``{kind: (floats per direction per sample, floats per direction)}`` of the tangent
        work buffer, to bound the number of directions computed at once.
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
# storage of values inside one kernel
# ------------------------------------------------------------------------------------------


@dataclass
class Slot:
    """Where a value lives in a kernel.

    ``mode`` is ``sample`` ``(B, n)``, ``sampleK`` ``(B, K, n)``, ``param`` (own shape),
    ``paramK`` ``(K, size)``, ``total`` (a scalar local) or ``totalK`` ``(K,)``.
    ``name`` is the array of the natural shape, ``flat`` a flat view (``(K, size)`` for
    ``paramK``), ``rows`` a 2-D ``(rows, n)`` view for per-sample values.
    """

    var: P.Var
    mode: str
    name: str
    flat: str = ""
    rows: str = ""

    @property
    def n(self) -> int:
        return self.var.size

    @property
    def is_k(self) -> bool:
        return self.mode.endswith("K")


def _ident(name: str) -> str:
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit() or keyword.iskeyword(text) or text in _RESERVED:
        text = "v_" + text
    return text


# ------------------------------------------------------------------------------------------
# helpers emitted at the top of every generated module
# ------------------------------------------------------------------------------------------

_PRELUDE = '''
@njit(cache=True, error_model="numpy", fastmath=False)
def _mm_nt(A, W, b, out):
    """out = A Wᵀ (+ b on every row).  A: (m, n), W: (p, n), b: (p,) or None, out: (m, p)."""
    m, n = A.shape
    p = W.shape[0]
    if m * n * p >= {nt_madds}:
        np.dot(A, W.T, out)
        if b is not None:
            for r in range(m):
                for c in range(p):
                    out[r, c] += b[c]
    else:
        for r in range(m):
            for c in range(p):
                acc = _f(0.0)
                for l in range(n):
                    acc += A[r, l] * W[c, l]
                if b is not None:
                    acc += b[c]
                out[r, c] = acc


@njit(cache=True, error_model="numpy", fastmath=False)
def _mm_tn(U, Vm, scale, out):
    """out = scale · Uᵀ Vm.  U: (m, p), Vm: (m, n), out: (p, n) — a batch mean of outer products."""
    m, p = U.shape
    n = Vm.shape[1]
    if m > {tn_rows}:
        np.dot(U.T, Vm, out)
        for r in range(p):
            for c in range(n):
                out[r, c] *= scale
    else:
        for r in range(p):
            d = U[0, r] * scale
            for c in range(n):
                out[r, c] = d * Vm[0, c]
        for s in range(1, m):
            for r in range(p):
                d = U[s, r] * scale
                for c in range(n):
                    out[r, c] += d * Vm[s, c]


@njit(cache=True, error_model="numpy", fastmath=False)
def _mm_nn(G, W, out):
    """out = G W.  G: (m, p), W: (p, n), out: (m, n) — the adjoint of a linear map."""
    m, p = G.shape
    n = W.shape[1]
    if m > {nn_rows}:
        np.dot(G, W, out)
    else:
        for s in range(m):
            d = G[s, 0]
            for c in range(n):
                out[s, c] = d * W[0, c]
            for r in range(1, p):
                d = G[s, r]
                for c in range(n):
                    out[s, c] += d * W[r, c]
'''


# ------------------------------------------------------------------------------------------
# one kernel
# ------------------------------------------------------------------------------------------


class _KernelWriter:
    """Writes one entry function: storage, op code, epilogue."""

    def __init__(self, gen: "_Generator", kind: str, fname: str):
        self.gen = gen
        self.kind = kind
        self.fname = fname
        self.lines: list[str] = []
        self.slots: dict[P.Var, Slot] = {}
        self.kvars: set[P.Var] = set()
        self.printer = KernelPrinter(gen.dtype, gen.fast)
        self.names: set[str] = set()
        self.op_lines: list[tuple[int, str]] = []
        self.sizes = {"B": 0, "BK": 0, "K": 0, "one": 0}
        self.values: dict[sp.Expr, sp.Symbol] = {}  # Map bodies already computed
        self.uses_inv_b = False

    # -- small utilities -------------------------------------------------------------------
    def w(self, text: str = "", indent: int = 1) -> None:
        self.lines.append("    " * indent + text if text else "")

    def lit(self, v: float) -> str:
        return self.printer.literal(v)

    def fresh(self, base: str) -> str:
        name = _ident(base)
        cand = name
        i = 2
        while cand in self.names:
            cand = f"{name}_{i}"
            i += 1
        self.names.add(cand)
        return cand

    def slot(self, v: P.Var) -> Slot:
        try:
            return self.slots[v]
        except KeyError:
            raise CompileError(
                f"kernel {self.fname}: value {v.name!r} is read before it is computed"
            ) from None

    # -- storage -----------------------------------------------------------------------
    def alloc(self, v: P.Var, k: bool, region: str | None = None) -> Slot:
        """Allocate ``v`` in the work buffer (code goes to ``self.alloc_lines``)."""
        n = v.size
        name = self.fresh(v.name)
        if v.per_sample:
            if k:
                flat = self.fresh(v.name + "_f")
                self._take(flat, "BK", n)
                self.alloc_lines.append(f"{name} = {flat}.reshape((B, K, {n}))")
                rows = self.fresh(v.name + "_r")
                self.alloc_lines.append(f"{rows} = {flat}.reshape((B * K, {n}))")
                return Slot(v, "sampleK", name, flat, rows)
            flat = self.fresh(v.name + "_f")
            self._take(flat, "B", n)
            self.alloc_lines.append(f"{name} = {flat}.reshape((B, {n}))")
            return Slot(v, "sample", name, flat, name)
        if v.kind == "total":
            if k:
                self._take(name, "K", 1)
                return Slot(v, "totalK", name, name)
            return Slot(v, "total", name, name)
        # param-shaped
        if k:
            flat = self.fresh(v.name + "_f")
            self._take(flat, "K", n)
            self.alloc_lines.append(f"{flat} = {flat}.reshape((K, {n}))")
            shape = ", ".join(str(s) for s in v.shape)
            self.alloc_lines.append(f"{name} = {flat}.reshape((K, {shape}))")
            return Slot(v, "paramK", name, flat)
        flat = self.fresh(v.name + "_f")
        self._take(flat, "one", n)
        self.alloc_lines.append(f"{name} = {flat}.reshape({_shape(v.shape)})")
        return Slot(v, "param", name, flat)

    def _take(self, name: str, unit: str, n: int) -> None:
        size = {"B": f"B * {n}", "BK": f"B * K * {n}", "K": f"K * {n}", "one": f"{n}"}[unit]
        self.alloc_lines.append(f"{name} = work[_o:_o + {size}]")
        self.alloc_lines.append(f"_o += {size}")
        self.sizes[unit] += n

    def temp(self, base: str, shape_expr: str) -> str:
        """A scratch array from the work buffer (size given as an expression)."""
        name = self.fresh(base)
        self.alloc_lines.append(f"{name} = work[_o:_o + {shape_expr}]")
        self.alloc_lines.append(f"_o += {shape_expr}")
        self.extra_sizes.append(shape_expr)
        return name

    # -- element access for Map bodies ---------------------------------------------------------
    def access(self, a: P.Arg, loop: str, comp: int | None) -> str:
        """Text reading argument ``a`` inside a Map loop.

        ``loop`` is ``flat`` (index ``q``), ``row`` (indices ``i``, ``k``; component ``comp``)
        or ``elem`` (indices ``i``, ``k``, ``j``).
        """
        s = self.slot(a.var)
        if s.mode == "total":
            return s.name
        if s.mode == "totalK":
            return f"{s.name}[k]"
        if s.mode == "param":
            return f"{s.flat}[{a.index if a.index is not None else 0}]"
        if s.mode == "paramK":
            return f"{s.flat}[k, {a.index if a.index is not None else 0}]"
        if loop == "flat":
            return f"{s.flat}[q]"
        if a.index is not None:
            c = str(a.index)
        elif s.n == 1:
            c = "0"
        elif loop == "elem":
            c = "j"
        else:
            c = str(comp)
        if s.mode == "sampleK":
            return f"{s.name}[i, k, {c}]"
        return f"{s.name}[i, {c}]"

    # -- driver ----------------------------------------------------------------------------
    def write(self, base_ops, k_ops, seeds: dict, outputs: dict, header: list[str],
              epilogue, args: tuple[str, ...], doc: str, fixed: dict) -> Kernel:
        """Emit the function.

        ``seeds``: ``{Var: Slot}`` of values given on entry (inputs, views of arguments);
        ``fixed``: ``{Var: Slot}`` of op outputs that must be written to a given place.
        """
        self.alloc_lines: list[str] = []
        self.extra_sizes: list[str] = []
        self.body: list[str] = []
        self.slots.update(seeds)
        for s in seeds.values():
            self.names.update({s.name, s.flat, s.rows} - {""})
        for v in self.kvars_seed:
            self.kvars.add(v)
        # plan storage and K-ness
        for op in list(base_ops) + list(k_ops):
            is_k = any(v in self.kvars for v in op.inputs)
            if is_k:
                self.kvars.add(op.out)
            if op.out in fixed:
                self.slots[op.out] = fixed[op.out]
            elif op.out not in self.slots:
                self.slots[op.out] = self.alloc(op.out, is_k)
        pairs = _softmax_lse_pairs(list(base_ops) + list(k_ops))
        # emit
        out_lines = self.body
        done: set = set()
        for op in list(base_ops) + list(k_ops):
            if op in done:
                continue
            desc = _describe(op)
            out_lines.append(("op", desc))
            try:
                if op in pairs:
                    other = pairs[op]
                    self._emit_softmax_lse(op, other)
                    done.add(other)
                else:
                    emitter = EMITTERS.get(type(op))
                    if emitter is None:
                        raise CompileError(
                            f"no code generation rule for {type(op).__name__}; add one to "
                            "symnn.codegen.numba_gen.EMITTERS"
                        )
                    emitter(self, op)
            except CompileError as err:
                raise CompileError(f"kernel {self.fname}, op {desc}: {err}") from err
            except Exception as err:
                raise CompileError(
                    f"kernel {self.fname}: generating code for op {desc} failed: "
                    f"{type(err).__name__}: {err}"
                ) from err
        # assemble
        lines = [
            '@njit(cache=True, error_model="numpy", fastmath=False)',
            f"def {self.fname}({', '.join(args)}):",
            f'    """{doc}"""',
        ]
        for h in header:
            lines.append("    " + h)
        if self.uses_inv_b:
            lines.append("    inv_B = _f(1.0) / _f(B)")
        total = []
        for unit, expr in (("B", "B * {}"), ("BK", "B * K * {}"), ("K", "K * {}"),
                           ("one", "{}")):
            if self.sizes[unit]:
                total.append(expr.format(self.sizes[unit]))
        total += self.extra_sizes
        lines.append(f"    work = np.empty({' + '.join(total) or '0'}, _f)")
        lines.append("    _o = 0")
        for ln in self.alloc_lines:
            lines.append("    " + ln)
        self.op_starts = []
        for item in out_lines:
            if isinstance(item, tuple):
                self.op_starts.append((len(lines), item[1]))
                lines.append(f"    # {item[1]}")
            else:
                lines.append(item)
        for ln in epilogue(self):
            lines.append("    " + ln if ln else "")
        self.text = lines
        return Kernel(self.kind, self.fname, args, doc)

    # body line
    def b(self, text: str, indent: int = 1) -> None:
        self.body.append("    " * indent + text)

    # -- Map ---------------------------------------------------------------------------------
    def canonical(self, op: P.Map) -> tuple[list[sp.Expr], dict]:
        """Map bodies in canonical symbols (one per value/component read)."""
        subs, args = {}, {}
        for a in op.args:
            s = a.var
            cname = s.name if a.index is None else f"{s.name}__{a.index}"
            sym = sp.Symbol(cname, real=True)
            subs[a.symbol] = sym
            args[sym] = a
        exprs = []
        for e in op.exprs:
            e = sp.sympify(e).xreplace(subs)
            if e.has(sp.DiracDelta):
                e = e.replace(sp.DiracDelta, lambda *x: sp.S.Zero)
            exprs.append(e)
        return exprs, args

    def reuse_values(self, exprs, args, out: P.Var):
        """Replace subexpressions equal to the body of an earlier Map by that Map's value."""
        if not self.values:
            return exprs, args
        repl = {}
        for body, (sym, var) in self.values.items():
            if var.size in (out.size, 1):
                repl[body] = sym
        if not repl:
            return exprs, args
        new = [e.xreplace(repl) for e in exprs]
        if new == exprs:
            return exprs, args
        args = dict(args)
        for body, (sym, var) in self.values.items():
            if any(e.has(sym) for e in new):
                args[sym] = P.Arg(sym, var, None)
        used = set().union(*(e.free_symbols for e in new))
        args = {s: a for s, a in args.items() if s in used}
        return new, args

    def remember(self, op: P.Map, exprs, args) -> None:
        if len(exprs) != 1 or op.out in self.kvars:
            return
        e = exprs[0]
        if e.is_Symbol or e.is_number or not e.free_symbols:
            return
        for a in args.values():
            if a.index is not None or (a.var.per_sample and a.var.size not in (op.out.size, 1)):
                return
            if not a.var.per_sample and a.var.kind != "total":
                return
        self.values.setdefault(e, (sp.Symbol(op.out.name, real=True), op.out))

    def emit_map(self, op: P.Map) -> None:
        out = self.slot(op.out)
        exprs, args = self.canonical(op)
        exprs, args = self.reuse_values(exprs, args, op.out)
        n = op.out.size
        single = len(exprs) == 1
        if not single and len(exprs) != n:
            raise CompileError(f"Map {op.out.name} has {len(exprs)} bodies for {n} components")
        for a in args.values():
            if a.var.per_sample and a.index is None and a.var.size not in (n, 1):
                raise CompileError(
                    f"Map {op.out.name}: elementwise argument {a.var.name} has size "
                    f"{a.var.size}, the output has {n}"
                )
            if a.index is not None and a.var.per_sample and a.index >= a.var.size:
                raise CompileError(f"Map {op.out.name}: index {a.index} out of {a.var.name}")
        is_k = out.is_k
        slots = [self.slot(a.var) for a in args.values()]
        flat_ok = single and n > 0 and all(
            (not s.var.per_sample and s.mode in ("total", "param"))
            or (s.var.per_sample and a.index is None and s.n == n and s.is_k == is_k)
            for s, a in zip(slots, args.values())
        )
        if single and n == 1:
            flat_ok = flat_ok  # a flat loop over B (or B·K) rows
        if flat_ok:
            loop = "flat"
        elif single and n > 1:
            loop = "elem"
        else:
            loop = "row"
        # printable names for every argument
        if loop == "row":
            comps = range(n)
            bodies = [exprs[0] if single else exprs[c] for c in comps]
            names = []
            for c in comps:
                names.append({sym: sp.Symbol(self.access(a, loop, c), real=True)
                              for sym, a in args.items()})
            bodies = [e.xreplace(names[c]) for c, e in enumerate(bodies)]
        else:
            sub = {sym: sp.Symbol(self.access(a, loop, None), real=True)
                   for sym, a in args.items()}
            bodies = [exprs[0].xreplace(sub)]
        repl, reduced = sp.cse(bodies, symbols=sp.numbered_symbols("c"), order="none")
        pr = self.printer
        ind = 1
        if loop == "flat":
            size = f"B * K * {n}" if is_k else f"B * {n}"
            if n == 1:
                size = "B * K" if is_k else "B"
            self.b(f"for q in range({size}):", ind)
            ind += 1
            target = [f"{out.flat}[q]"]
        else:
            self.b("for i in range(B):", ind)
            ind += 1
            if is_k:
                self.b("for k in range(K):", ind)
                ind += 1
            if loop == "elem":
                self.b(f"for j in range({n}):", ind)
                ind += 1
                target = [f"{out.name}[i, k, j]" if is_k else f"{out.name}[i, j]"]
            else:
                target = [f"{out.name}[i, k, {c}]" if is_k else f"{out.name}[i, {c}]"
                          for c in range(n)]
        for sym, e in repl:
            self.b(f"{sym} = {pr.doprint(e)}", ind)
        for t, e in zip(target, reduced):
            self.b(f"{t} = {pr.doprint(e)}", ind)
        self.remember(op, exprs, args)

    # -- Softmax / LogSumExp ------------------------------------------------------------------
    def _rowloop(self, slots, ind=1):
        """Open loops over rows; returns (indent, row-index text per slot)."""
        any_k = any(s.is_k for s in slots)
        self.b("for i in range(B):", ind)
        ind += 1
        if any_k:
            self.b("for k in range(K):", ind)
            ind += 1
        return ind, any_k

    def _row(self, s: Slot, comp: str, any_k: bool) -> str:
        if s.is_k:
            return f"{s.name}[i, k, {comp}]"
        return f"{s.name}[i, {comp}]"

    def _emit_softmax_lse(self, op, other) -> None:
        sm = op if isinstance(op, P.Softmax) else other
        lse = other if sm is op else op
        self._softmax_like(sm.z, self.slot(sm.out), self.slot(lse.out))

    def _softmax_like(self, zv: P.Var, p: Slot | None, lse: Slot | None) -> None:
        z = self.slot(zv)
        n = zv.size
        slots = [z] + [s for s in (p, lse) if s is not None]
        ind, any_k = self._rowloop(slots)
        r = lambda s, c: self._row(s, c, any_k)  # noqa: E731
        self.b(f"m = {r(z, '0')}", ind)
        self.b(f"for j in range(1, {n}):", ind)
        self.b(f"m = max(m, {r(z, 'j')})", ind + 1)
        self.b(f"acc = {self.lit(0.0)}", ind)
        self.b(f"for j in range({n}):", ind)
        ex = self.printer._call("exp", sp.Symbol(f"{r(z, 'j')} - m"))
        if p is not None:
            self.b(f"e = {ex}", ind + 1)
            self.b(f"{r(p, 'j')} = e", ind + 1)
            self.b("acc += e", ind + 1)
            self.b(f"inv = {self.lit(1.0)} / acc", ind)
            self.b(f"for j in range({n}):", ind)
            self.b(f"{r(p, 'j')} *= inv", ind + 1)
        else:
            self.b(f"acc += {ex}", ind + 1)
        if lse is not None:
            self.b(f"{r(lse, '0')} = m + {self.printer._call('log', sp.Symbol('acc'))}", ind)

    def emit_softmax(self, op: P.Softmax) -> None:
        self._softmax_like(op.z, self.slot(op.out), None)

    def emit_lse(self, op: P.LogSumExp) -> None:
        self._softmax_like(op.z, None, self.slot(op.out))

    # -- reductions over components -------------------------------------------------------------
    def emit_dot(self, op: P.Dot) -> None:
        u, v, o = self.slot(op.u), self.slot(op.v), self.slot(op.out)
        n = max(op.u.size, op.v.size)
        ind, any_k = self._rowloop([u, v, o])
        cu = "j" if op.u.size > 1 else "0"
        cv = "j" if op.v.size > 1 else "0"
        self.b(f"acc = {self.lit(0.0)}", ind)
        self.b(f"for j in range({n}):", ind)
        self.b(f"acc += {self._row(u, cu, any_k)} * {self._row(v, cv, any_k)}", ind + 1)
        self.b(f"{self._row(o, '0', any_k)} = acc", ind)

    def emit_sumcomp(self, op: P.SumComp) -> None:
        u, o = self.slot(op.u), self.slot(op.out)
        ind, any_k = self._rowloop([u, o])
        if op.u.size == 1:
            self.b(f"{self._row(o, '0', any_k)} = {self._row(u, '0', any_k)}", ind)
            return
        self.b(f"acc = {self._row(u, '0', any_k)}", ind)
        self.b(f"for j in range(1, {op.u.size}):", ind)
        self.b(f"acc += {self._row(u, 'j', any_k)}", ind + 1)
        self.b(f"{self._row(o, '0', any_k)} = acc", ind)

    # -- batch means -------------------------------------------------------------------------
    def emit_batchmean(self, op: P.BatchMean) -> None:
        u, o = self.slot(op.u), self.slot(op.out)
        n = op.u.size
        if o.mode == "total":
            self.b(f"acc = {self.lit(0.0)}")
            if u.is_k:
                raise CompileError("a batch mean of a tangent value must have a tangent output")
            self.b(f"for i in range(B * {n}):" if n > 1 else "for i in range(B):")
            self.b(f"acc += {u.flat}[i]", 2)
            self.b(f"{o.name} = acc / _f(B)")
            return
        if o.mode == "totalK":
            self.b("for k in range(K):")
            self.b(f"{o.name}[k] = {self.lit(0.0)}", 2)
            self.b("for i in range(B):")
            self.b("for k in range(K):", 2)
            self.b(f"{o.name}[k] += {u.name}[i, k, 0]", 3)
            self.b("for k in range(K):")
            self.b(f"{o.name}[k] /= _f(B)", 2)
            return
        if o.var.size != n:
            raise CompileError(f"batch mean of {op.u.name} (size {n}) into {op.out.name} "
                               f"(size {o.var.size})")
        self.uses_inv_b = True
        if o.mode == "param":
            self.b(f"for j in range({n}):")
            self.b(f"{o.flat}[j] = {u.name}[0, j]", 2)
            self.b("for i in range(1, B):")
            self.b(f"for j in range({n}):", 2)
            self.b(f"{o.flat}[j] += {u.name}[i, j]", 3)
            self.b(f"for j in range({n}):")
            self.b(f"{o.flat}[j] *= inv_B", 2)
            return
        # paramK from sampleK (or a base sample broadcast over K)
        src = f"{u.name}[i, k, j]" if u.is_k else f"{u.name}[i, j]"
        self.b("for k in range(K):")
        self.b(f"for j in range({n}):", 2)
        self.b(f"{o.flat}[k, j] = {self.lit(0.0)}", 3)
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for j in range({n}):", 3)
        self.b(f"{o.flat}[k, j] += {src}", 4)
        self.b("for k in range(K):")
        self.b(f"for j in range({n}):", 2)
        self.b(f"{o.flat}[k, j] *= inv_B", 3)

    def emit_outermean(self, op: P.OuterMean) -> None:
        u, v, o = self.slot(op.u), self.slot(op.v), self.slot(op.out)
        nu, nv = op.u.size, op.v.size
        self.uses_inv_b = True
        if not u.is_k and not v.is_k:
            self.b(f"_mm_tn({u.rows}, {v.rows}, inv_B, {o.name}.reshape(({nu}, {nv})))")
            return
        if u.is_k and not v.is_k:
            # Σ_i u[i,k,:] v[i,:]ᵀ for all k at once: (B, K·nu)ᵀ (B, nv) → (K·nu, nv)
            self.b(f"_mm_tn({u.flat}.reshape((B, K * {nu})), {v.rows}, inv_B, "
                   f"{o.flat}.reshape((K * {nu}, {nv})))")
            return
        if v.is_k and not u.is_k:
            t = self.temp(f"{op.out.name}_t", f"K * {nu * nv}")
            self.b(f"_mm_tn({u.rows}, {v.flat}.reshape((B, K * {nv})), inv_B, "
                   f"{t}.reshape(({nu}, K * {nv})))")
            self.b(f"{t}2 = {t}.reshape(({nu}, K, {nv}))")
            self.b("for k in range(K):")
            self.b(f"for r in range({nu}):", 2)
            self.b(f"for c in range({nv}):", 3)
            self.b(f"{o.flat}[k, r * {nv} + c] = {t}2[r, k, c]", 4)
            return
        self.b(f"{o.flat}[:, :] = {self.lit(0.0)}")
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for r in range({nu}):", 3)
        self.b(f"d = {u.name}[i, k, r] * inv_B", 4)
        self.b(f"for c in range({nv}):", 4)
        self.b(f"{o.flat}[k, r * {nv} + c] += d * {v.name}[i, k, c]", 5)

    # -- linear maps -------------------------------------------------------------------------
    def emit_affine(self, op: P.Affine) -> None:
        W, a, o = self.slot(op.W), self.slot(op.a), self.slot(op.out)
        bb = self.slot(op.b) if op.b is not None else None
        n_out, n_in = op.W.shape
        if a.var in self.gen.identity_tangents and not W.is_k:
            # a = the identity input tangent: (W ẋ)[i, k, :] = W[:, k]
            self.b("for i in range(B):")
            self.b(f"for k in range({n_in}):", 2)
            self.b(f"for j in range({n_out}):", 3)
            bias = ""
            if bb is not None:
                bias = f" + {bb.flat}[j]" if not bb.is_k else f" + {bb.flat}[k, j]"
            self.b(f"{o.name}[i, k, j] = {W.name}[j, k]{bias}", 4)
            return
        if not W.is_k and not o.is_k:
            b_txt = bb.name if bb is not None else "None"
            self.b(f"_mm_nt({a.rows}, {W.name}, {b_txt}, {o.rows})")
            return
        if not W.is_k and a.is_k:
            b_txt = bb.name if (bb is not None and not bb.is_k) else "None"
            self.b(f"_mm_nt({a.rows}, {W.name}, {b_txt}, {o.rows})")
            if bb is not None and bb.is_k:
                self._add_bias_k(o, bb, n_out)
            return
        if W.is_k and not a.is_k:
            # a (B, n_in) times every W_k: one product with the stacked (K·n_out, n_in)
            self.b(f"_mm_nt({a.rows}, {W.flat}.reshape((K * {n_out}, {n_in})), None, "
                   f"{o.flat}.reshape((B, K * {n_out})))")
            if bb is not None:
                if bb.is_k:
                    self._add_bias_k(o, bb, n_out)
                else:
                    self._add_bias(o, bb, n_out)
            return
        # the remaining cases: loops
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for j in range({n_out}):", 3)
        self.b(f"acc = {self.lit(0.0)}", 4)
        self.b(f"for l in range({n_in}):", 4)
        wt = f"{W.name}[k, j, l]" if W.is_k else f"{W.name}[j, l]"
        at = f"{a.name}[i, k, l]" if a.is_k else f"{a.name}[i, l]"
        self.b(f"acc += {wt} * {at}", 5)
        if bb is not None:
            self.b(f"acc += {bb.flat}[k, j]" if bb.is_k else f"acc += {bb.flat}[j]", 4)
        self.b(f"{o.name}[i, k, j] = acc", 4)

    def _add_bias_k(self, o: Slot, bb: Slot, n: int) -> None:
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for j in range({n}):", 3)
        self.b(f"{o.name}[i, k, j] += {bb.flat}[k, j]", 4)

    def _add_bias(self, o: Slot, bb: Slot, n: int) -> None:
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for j in range({n}):", 3)
        self.b(f"{o.name}[i, k, j] += {bb.flat}[j]", 4)

    def emit_mattvec(self, op: P.MatTVec) -> None:
        W, g, o = self.slot(op.W), self.slot(op.g), self.slot(op.out)
        n_out, n_in = op.W.shape
        if not W.is_k:
            self.b(f"_mm_nn({g.rows}, {W.name}, {o.rows})")
            return
        if not g.is_k:
            # g (B, n_out) times every W_k: one product with [W_1 | … | W_K] (n_out, K·n_in)
            t = self.temp(f"{op.W.name}_h", f"K * {n_out * n_in}")
            self.b(f"{t}2 = {t}.reshape(({n_out}, K, {n_in}))")
            self.b("for k in range(K):")
            self.b(f"for r in range({n_out}):", 2)
            self.b(f"for c in range({n_in}):", 3)
            self.b(f"{t}2[r, k, c] = {W.name}[k, r, c]", 4)
            self.b(f"_mm_nn({g.rows}, {t}.reshape(({n_out}, K * {n_in})), "
                   f"{o.flat}.reshape((B, K * {n_in})))")
            return
        self.b("for i in range(B):")
        self.b("for k in range(K):", 2)
        self.b(f"for c in range({n_in}):", 3)
        self.b(f"{o.name}[i, k, c] = {self.lit(0.0)}", 4)
        self.b(f"for r in range({n_out}):", 3)
        self.b(f"d = {g.name}[i, k, r]", 4)
        self.b(f"for c in range({n_in}):", 4)
        self.b(f"{o.name}[i, k, c] += d * {W.name}[k, r, c]", 5)

    # -- sums and penalties --------------------------------------------------------------------
    def emit_add(self, op: P.Add) -> None:
        o = self.slot(op.out)
        terms = [self.slot(t) for t in op.terms]
        if o.mode == "total":
            self.b(f"{o.name} = " + " + ".join(t.name for t in terms))
            return
        n = op.out.size
        if o.mode == "totalK":
            parts = [f"{t.name}[k]" if t.is_k else t.name for t in terms]
            self.b("for k in range(K):")
            self.b(f"{o.name}[k] = " + " + ".join(parts), 2)
            return
        if o.mode == "param":
            parts = [f"{t.flat}[{'j' if t.var.size > 1 else '0'}]" for t in terms]
            self.b(f"for j in range({n}):")
            self.b(f"{o.flat}[j] = " + " + ".join(parts), 2)
            return
        if o.mode == "paramK":
            parts = []
            for t in terms:
                c = "j" if t.var.size > 1 else "0"
                parts.append(f"{t.flat}[k, {c}]" if t.is_k else f"{t.flat}[{c}]")
            self.b("for k in range(K):")
            self.b(f"for j in range({n}):", 2)
            self.b(f"{o.flat}[k, j] = " + " + ".join(parts), 3)
            return
        # per-sample sums
        ind, any_k = self._rowloop([o] + terms)
        parts = [self._row(t, "j" if t.var.size > 1 else "0", any_k) for t in terms]
        self.b(f"for j in range({n}):", ind)
        self.b(f"{self._row(o, 'j', any_k)} = " + " + ".join(parts), ind + 1)

    def emit_penalty(self, op: P.Penalty) -> None:
        p, o = self.slot(op.param), self.slot(op.out)
        coef = self.lit(float(op.coef))
        idx = list(range(op.param.size)) if op.indices is None else list(op.indices)
        size = op.param.size
        if not op.grad:
            if p.is_k:
                raise CompileError("the value of a penalty has no tangent in these kernels")
            self.b(f"acc = {self.lit(0.0)}")
            term = "e * e" if op.kind == "l2" else "abs(e)"
            if op.indices is None:
                self.b(f"for j in range({size}):")
                self.b(f"e = {p.flat}[j]", 2)
                self.b(f"acc += {term}", 2)
            else:
                for j in idx:
                    self.b(f"e = {p.flat}[{j}]")
                    self.b(f"acc += {term}")
            self.b(f"{o.name} = {coef} * acc")
            return
        if op.kind == "l2":
            c2 = self.lit(2.0 * float(op.coef))
            rule = lambda e: f"{c2} * {e}"  # noqa: E731
        else:
            zero, one, mone = self.lit(0.0), self.lit(1.0), self.lit(-1.0)
            rule = lambda e: (f"{coef} * ({one} if {e} > {zero} else "  # noqa: E731
                              f"({mone} if {e} < {zero} else {zero}))")
        zero = self.lit(0.0)
        if o.is_k:
            self.b("for k in range(K):")
            src = (lambda j: f"{p.flat}[k, {j}]") if p.is_k else (lambda j: f"{p.flat}[{j}]")
            if op.indices is None:
                self.b(f"for j in range({size}):", 2)
                self.b(f"{o.flat}[k, j] = {rule(src('j'))}", 3)
            else:
                self.b(f"for j in range({size}):", 2)
                self.b(f"{o.flat}[k, j] = {zero}", 3)
                for j in idx:
                    self.b(f"{o.flat}[k, {j}] = {rule(src(str(j)))}", 2)
            return
        if op.indices is None:
            self.b(f"for j in range({size}):")
            self.b(f"{o.flat}[j] = {rule(p.flat + '[j]')}", 2)
        else:
            self.b(f"for j in range({size}):")
            self.b(f"{o.flat}[j] = {zero}", 2)
            for j in idx:
                self.b(f"{o.flat}[{j}] = {rule(f'{p.flat}[{j}]')}")


#: Code generation rules, one per op type.
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


def _shape(shape) -> str:
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _describe(op: P.Op) -> str:
    if isinstance(op, P.Map):
        subs = {a.symbol: sp.Symbol(a.var.name if a.index is None else f"{a.var.name}[{a.index}]")
                for a in op.args}
        bodies = [str(sp.sympify(e).xreplace(subs)) for e in op.exprs]
        text = f"{op.out.name} = " + (bodies[0] if len(bodies) == 1 else "[" + "; ".join(bodies) + "]")
    elif isinstance(op, P.Affine):
        text = f"{op.out.name} = {op.W.name} {op.a.name}" + (f" + {op.b.name}" if op.b else "")
    elif isinstance(op, P.MatTVec):
        text = f"{op.out.name} = {op.W.name}ᵀ {op.g.name}"
    elif isinstance(op, P.OuterMean):
        text = f"{op.out.name} = mean over the batch of {op.u.name} {op.v.name}ᵀ"
    elif isinstance(op, P.BatchMean):
        text = f"{op.out.name} = mean over the batch of {op.u.name}"
    elif isinstance(op, P.Penalty):
        what = "gradient of " if op.grad else ""
        text = f"{op.out.name} = {what}{op.kind.upper()} penalty {op.coef} on {op.param.name}"
    else:
        text = f"{op.out.name} = {type(op).__name__}({', '.join(v.name for v in op.inputs)})"
    text = text.replace("\n", " ")
    return text if len(text) <= 110 else text[:107] + "..."


def _softmax_lse_pairs(ops) -> dict:
    """Softmax and LogSumExp of the same logits: computed in one pass (at the first)."""
    first: dict = {}
    pairs: dict = {}
    for op in ops:
        if isinstance(op, (P.Softmax, P.LogSumExp)):
            prev = first.get(op.z)
            if prev is not None and type(prev) is not type(op) and prev not in pairs:
                pairs[prev] = op
            elif prev is None:
                first[op.z] = op
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
        prog = derived.program
        self.params = derived.params
        self.layout = []
        off = 0
        for p in self.params:
            self.layout.append((p.name, tuple(p.shape), off))
            off += p.size
        self.n_params = off
        self.x = prog.inputs["x"]
        self.y = prog.inputs["y"]
        self.name = _ident(getattr(derived.declared, "name", "net"))

    # seeds common to every kernel
    def param_seeds(self, w: _KernelWriter, arg: str = "params") -> tuple[dict, list[str]]:
        seeds, header = {}, []
        for (name, shape, off), p in zip(self.layout, self.params):
            flat = w.fresh(p.name + "_f")
            nm = w.fresh(p.name)
            header.append(f"{flat} = {arg}[{off}:{off + p.size}]")
            header.append(f"{nm} = {flat}.reshape({_shape(shape)})")
            seeds[p] = Slot(p, "param", nm, flat)
        return seeds, header

    def io_seeds(self, w: _KernelWriter, with_y: bool) -> tuple[dict, list[str]]:
        seeds, header = {}, ["B = X.shape[0]"]
        n = self.x.size
        w.names.update({"X", "Y"})
        header.append(f"X_f = X.reshape(B * {n})")
        seeds[self.x] = Slot(self.x, "sample", "X", "X_f", "X")
        if with_y:
            header.append(f"Y_f = Y.reshape(B * {self.y.size})")
            seeds[self.y] = Slot(self.y, "sample", "Y", "Y_f", "Y")
        w.names.update({"X_f", "Y_f"})
        return seeds, header

    def prune(self, ops, outputs):
        prog = P.Program(list(ops), {}, {})
        return prog.needed(outputs).ops

    def base_kernel(self, kind: str) -> tuple[_KernelWriter, Kernel]:
        prog = self.d.program
        fname = f"{self.name}_{ {'loss_and_grad': 'loss_grad'}.get(kind, kind) }".replace(" ", "")
        w = _KernelWriter(self, kind, fname)
        w.kvars_seed = set()
        pred = prog.outputs["prediction"]
        L = prog.outputs["loss"]
        grads = [prog.outputs["grad:" + p.name] for p in self.params]
        if kind == "predict":
            outs = [pred]
        elif kind == "loss":
            outs = [L]
        else:
            outs = [L] + grads
        ops = self.prune(prog.ops, outs)
        ops = fuse_maps(ops, set(outs))
        uses_y = any(self.y in op.inputs for op in ops)
        seeds, header = self.param_seeds(w)
        s2, h2 = self.io_seeds(w, uses_y)
        seeds.update(s2)
        header = h2 + header
        fixed = {}
        if kind == "predict":
            fixed[pred] = Slot(pred, "sample", "out", "out_f", "out")
            w.names.update({"out", "out_f"})
            header.append(f"out_f = out.reshape(B * {pred.size})")
            args = ("params", "X", "out")
            doc = f"Prediction of {self.name!r}: out (B, {pred.size}) ← ŷ(X; params)."
            epi = lambda w: []  # noqa: E731
            if pred in seeds:  # the prediction is an input (cannot happen for a network)
                raise CompileError("the prediction is the input itself")
        elif kind == "loss":
            args = ("params", "X", "Y")
            doc = f"Batch loss L of {self.name!r}."
            epi = lambda w: [f"return {w.slot(L).name}"]  # noqa: E731
        else:
            for (name, shape, off), p, g in zip(self.layout, self.params, grads):
                flat = w.fresh("g" + p.name + "_f")
                nm = w.fresh("g" + p.name)
                header.append(f"{flat} = grad[{off}:{off + p.size}]")
                header.append(f"{nm} = {flat}.reshape({_shape(shape)})")
                if g in seeds or g in fixed:
                    # a gradient that is an input or shared: copy at the end
                    continue
                fixed[g] = Slot(g, "param", nm, flat)
            args = ("params", "X", "Y", "grad")
            doc = (f"Loss and gradient of {self.name!r}: returns L, writes ∂L/∂params into "
                   "grad (θ layout).")

            def epi(w, grads=grads):
                lines = []
                for (name, shape, off), g in zip(self.layout, grads):
                    s = w.slot(g)
                    if fixed.get(g) is not s:
                        lines.append(f"grad[{off}:{off + g.size}] = {s.flat}")
                lines.append(f"return {w.slot(L).name}")
                return lines

        kern = w.write(ops, [], seeds, {}, header, epi, args, doc, fixed)
        return w, kern

    def tangent_kernel(self, kind: str) -> tuple[_KernelWriter, Kernel]:
        d = self.d
        prog = d.program
        fname = f"{self.name}_{kind}"
        w = _KernelWriter(self, kind, fname)
        if kind in ("hvp", "gnvp"):
            extra, tangents, outs = (hvp_program if kind == "hvp" else gnvp_program)(d)
            out_vars = [outs[p.name] for p in self.params]
            seeds_t = list(tangents.values())
        else:  # jacobian
            extra, x_dot, pred_dot = input_jvp_program(d)
            out_vars = [pred_dot] if pred_dot is not None else []
            seeds_t = [x_dot]
            self.identity_tangents = {x_dot}
        ops = self.prune(list(prog.ops) + list(extra), out_vars)
        kset = set(seeds_t)
        base, kops = [], []
        for op in ops:
            if any(v in kset for v in op.inputs):
                kset.add(op.out)
                kops.append(op)
            else:
                base.append(op)
        need_from_base = {v for op in kops for v in op.inputs} | set(out_vars)
        base = fuse_maps(base, need_from_base)
        kops = fuse_maps(kops, set(out_vars))
        uses_y = any(self.y in op.inputs for op in base + kops)
        w.kvars_seed = set(seeds_t)
        seeds, header = self.param_seeds(w)
        s2, h2 = self.io_seeds(w, uses_y)
        seeds.update(s2)
        header = h2 + header
        if kind in ("hvp", "gnvp"):
            header.insert(1, "K = V.shape[0]")
            w.names.update({"V", "out"})
            copy = []
            for (name, shape, off), p in zip(self.layout, self.params):
                t = tangents[p]
                flat = w.fresh(t.name + "_f")
                nm = w.fresh(t.name)
                seeds[t] = Slot(t, "paramK", nm, flat)
                w.sizes["K"] += t.size
                copy.append((flat, nm, off, t))
            args = ("params", "V", "X", "Y", "out")
            doc = (f"{'Hessian' if kind == 'hvp' else 'Gauss-Newton'}-vector products of "
                   f"{self.name!r}: out[k] ← {'H' if kind == 'hvp' else 'G'} V[k] for the K "
                   "rows of V (θ layout).")

            def epi(w):
                lines = []
                for (name, shape, off), p, ov in zip(self.layout, self.params, out_vars):
                    s = w.slot(ov)
                    size = p.size
                    lines.append("for k in range(K):")
                    src = f"{s.flat}[k, j]" if s.is_k else f"{s.flat}[j]"
                    lines.append(f"    for j in range({size}):")
                    lines.append(f"        out[k, {off} + j] = {src}")
                return lines

            # the copies of the tangent directions come first in the body
            pre = []
            for flat, nm, off, t in copy:
                pre.append(f"{flat} = work[_o:_o + K * {t.size}].reshape((K, {t.size}))")
                pre.append(f"_o += K * {t.size}")
                pre.append(f"{nm} = {flat}.reshape((K, {', '.join(str(s) for s in t.shape)}))")
                pre.append("for k in range(K):")
                pre.append(f"    for j in range({t.size}):")
                pre.append(f"        {flat}[k, j] = V[k, {off} + j]")
            w._pre_alloc = pre
        else:
            n_in, n_out = self.x.size, d.meta["prediction"].size
            header.insert(1, f"K = {n_in}")
            w.names.update({"out"})
            xs = w.fresh("x_dot")
            xf = w.fresh("x_dot_f")
            seeds[x_dot] = Slot(x_dot, "sampleK", xs, xf, w.fresh("x_dot_r"))
            w.sizes["BK"] += n_in
            pre = [
                f"{xf} = work[_o:_o + B * K * {n_in}]",
                f"_o += B * K * {n_in}",
                f"{xs} = {xf}.reshape((B, K, {n_in}))",
                f"{seeds[x_dot].rows} = {xf}.reshape((B * K, {n_in}))",
                f"{xf}[:] = {w.lit(0.0)}",
                "for i in range(B):",
                "    for k in range(K):",
                f"        {xs}[i, k, k] = {w.lit(1.0)}",
            ]
            w._pre_alloc = pre
            args = ("params", "X", "out")
            doc = (f"Input Jacobian of {self.name!r}: out[i] ← ∂ŷ/∂x at sample i, "
                   f"(B, {n_out}, {n_in}).")

            def epi(w):
                if not out_vars:
                    return ["out[:] = " + w.lit(0.0)]
                s = w.slot(out_vars[0])
                src = f"{s.name}[i, k, j]" if s.is_k else w.lit(0.0)
                return ["for i in range(B):", "    for k in range(K):",
                        f"        for j in range({n_out}):",
                        f"            out[i, j, k] = {src}"]

        kern = w.write(base, kops, seeds, {}, header, epi, args, doc, {})
        self.identity_tangents = set()
        # splice the tangent-direction copies right after the work buffer is carved
        text = w.text
        at = next(i for i, ln in enumerate(text) if ln.strip() == "_o = 0") + 1
        text[at:at] = ["    " + ln for ln in w._pre_alloc]
        w.op_starts = [(ln + len(w._pre_alloc) if ln >= at else ln, t) for ln, t in w.op_starts]
        per_sample = w.sizes["BK"]
        w.tangent_size = (per_sample, w.sizes["K"])
        return w, kern

    def module(self, declared) -> GeneratedModule:
        writers = []
        kernels = {}
        for kind in ("predict", "loss", "loss_and_grad"):
            w, k = self.base_kernel(kind)
            writers.append(w)
            kernels[kind] = k
        tangent_sizes = {}
        for kind in ("hvp", "gnvp", "jacobian"):
            w, k = self.tangent_kernel(kind)
            writers.append(w)
            kernels[kind] = k
            tangent_sizes[kind] = w.tangent_size
        used = set()
        for w in writers:
            used |= w.printer.used
        fm = sorted(u for u in used if u.startswith("fm_"))
        head = [
            f"# symnn generated kernels — {type(declared).__name__.lower()} {self.name!r}",
            f"#   {_oneline(repr(declared))}",
            f"#   dtype {self.dtype}; {self.n_params} parameters; elementary functions from "
            + ("symnn.codegen.fastmath" if self.fast else "math"),
            "#   Generated from the derived program by symnn.codegen.numba_gen; do not edit.",
            "#   θ layout: " + ", ".join(f"{n}{list(s)}@{o}" for n, s, o in self.layout),
            "import math",
            "",
            "import numpy as np",
            "from numba import njit",
        ]
        if fm:
            head.append(f"from symnn.codegen.fastmath import {', '.join(fm)}")
        head += ["", f"_f = np.{self.dtype}", ""]
        lines = head + _PRELUDE.format(**BLAS_THRESHOLDS).split("\n")
        if not self.fast:
            lines += FALLBACK_HELPERS.split("\n")
        op_lines = []
        for w in writers:
            lines += ["", ""]
            base = len(lines)
            lines += w.text
            op_lines += [(base + ln + 1, f"{w.fname}: {t}") for ln, t in w.op_starts]
        source = "\n".join(lines) + "\n"
        return GeneratedModule(
            source=source,
            kernels=kernels,
            layout=self.layout,
            n_params=self.n_params,
            n_inputs=self.x.size,
            n_outputs=self.d.meta["prediction"].size,
            dtype=self.dtype,
            fast=self.fast,
            op_lines=op_lines,
            tangent_sizes=tangent_sizes,
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
    """
    if fast is None:
        fast = fastmath_available()
    gen = _Generator(derived, dtype, fast)
    return gen.module(derived.declared)
