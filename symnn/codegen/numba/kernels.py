"""Kernel assembly: the entry functions of one network or model, and the module text.

:class:`_Generator` prepares each kernel's ops (pruning, Map fusion, the split of a tangent
program into its direction-free part and its tangent part), its seeds (where the inputs
live), its header and epilogue, and lets a :class:`~symnn.codegen.numba.writer.KernelWriter`
write the ops; :meth:`_Generator.module` joins the kernels under one header that imports
the runtime blocks they call from :mod:`symnn.codegen.numba.runtime`.
"""

from __future__ import annotations

import re

import numpy as np

from symnn import ops as P
from symnn.codegen.numba import (  # noqa: F401 - each fills EMITTERS with its family's rules
    emit_attention,  # noqa: F401,E402 - self-attention
    emit_concat,
    emit_conv,
    emit_elementwise,
    emit_linear,
    emit_norm,
    emit_penalty,
    emit_recurrent,
    emit_reduce,
    emit_scan,  # noqa: F401 - sequence ops looped over time
    emit_scan_gru,  # noqa: F401 - a GRU looped over time
    emit_softmax,
)
from symnn.codegen.numba.masks import seed_masks, with_mask_arg
from symnn.codegen.numba.module import GeneratedModule, Kernel
from symnn.codegen.numba.passes import drop_dirac, sum_values
from symnn.codegen.numba.runtime import runtime_fingerprint, runtime_names
from symnn.codegen.numba.share_calls import share_calls  # hvp, round 7
from symnn.codegen.numba.slots import Slot, ident, plus
from symnn.codegen.numba.writer import KernelWriter
from symnn.codegen.printer import fastmath_available
from symnn.derive import gnvp_program, hvp_program, input_jvp_program
from symnn.derive.simplify import fuse_maps
from symnn.errors import CompileError

__all__ = ["generate"]

#: The kernel helpers of :mod:`symnn.codegen.fastmath_extra` (imported from there).
_FM_EXTRA = frozenset({"fm_erfc", "fm_ndtr", "fm_sech2"})


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
        self.name = ident(getattr(derived.declared, "name", "net"))

    def seeds(self, with_y: bool) -> dict:
        seeds = {self.x: Slot(self.x, "sample", "X")}
        if with_y:
            seeds[self.y] = Slot(self.y, "sample", "Y")
        for (_name, _shape, off), p in zip(self.layout, self.params):
            seeds[p] = Slot(p, "param", "params", str(off))
        return seeds

    @staticmethod
    def prune(ops, outputs):
        return P.Program(drop_dirac(ops), {}, {}).needed(outputs).ops

    # -- first-order kernels -----------------------------------------------------------------
    def base_kernel(self, kind: str):
        prog = self.d.program
        fname = f"{self.name}_{'loss_grad' if kind == 'loss_and_grad' else kind}"
        w = KernelWriter(self, kind, fname)
        L = prog.outputs["loss"]
        grads = [prog.outputs["grad:" + p.name] for p in self.params]
        outs = {"predict": [self.pred], "loss": [L]}.get(kind, [L] + grads)
        ops = self.prune(prog.ops, outs)
        ops = fuse_maps(ops, set(outs) | sum_values(ops))
        seeds = self.seeds(any(self.y in op.inputs for op in ops))
        header = [f"B = X.shape[0] // {self.x.size}"]
        fixed = {}
        if kind == "predict":
            if self.pred in seeds:
                raise CompileError("the prediction is the input itself")
            fixed[self.pred] = Slot(self.pred, "sample", "out")
            args = ("params", "X", "out", "work")
            doc = f"Prediction of {self.name!r}: out (B·{self.pred.size},) ← ŷ(X; params)."

            def epilogue(w):
                return []
        elif kind == "loss":
            args = ("params", "X", "Y", "work")
            doc = f"The batch loss L of {self.name!r}."

            def epilogue(w):
                return [f"return {w.slot(L).arr}"]
        else:
            for (_name, _shape, off), g in zip(self.layout, grads):
                if g not in seeds and g not in fixed:
                    fixed[g] = Slot(g, "param", "grad", str(off))
            args = ("params", "X", "Y", "grad", "work")
            doc = (f"Loss and gradient of {self.name!r}: returns L and writes ∂L/∂params "
                   "into grad (θ layout).")

            def epilogue(w):
                lines = []
                for (_name, _shape, off), g in zip(self.layout, grads):
                    s = w.slot(g)
                    if not (s.arr == "grad" and s.off == str(off)):
                        lines.append(f"_copy_rows({s.arr}, {s.off}, 0, grad, {off}, 0, 1, "
                                     f"{g.size})")
                lines.append(f"return {w.slot(L).arr}")
                return lines

        seed_masks(self.d, w, ops, seeds)  # Dropout masks (nothing without Dropout)
        args = with_mask_arg(self.d, args)
        lines = w.write(ops, seeds, fixed, header, epilogue, args, doc)
        return w, Kernel(kind, fname, args, doc), lines


    # -- tangent kernels -------------------------------------------------------------------
    def tangent_kernel(self, kind: str):
        fname = f"{self.name}_{kind}"
        w = KernelWriter(self, kind, fname)
        if kind in ("hvp", "gnvp"):
            extra, tangents, outs = (hvp_program if kind == "hvp" else gnvp_program)(self.d)
            out_vars = [outs[p.name] for p in self.params]
            seeds_t = list(tangents.values())
        else:
            extra, x_dot, pred_dot = input_jvp_program(self.d)
            out_vars = [pred_dot] if pred_dot is not None else []
            seeds_t = [x_dot]
        ops, kset = self.tangent_ops(extra, seeds_t, out_vars)
        seeds = self.seeds(any(self.y in op.inputs for op in ops))
        w.kvars = set(seeds_t)
        if kind in ("hvp", "gnvp"):
            fixed, header, epilogue, args, doc = self.products_setup(
                w, kind, tangents, out_vars, kset, seeds)
        else:
            fixed, header, epilogue, args, doc = self.jacobian_setup(w, x_dot, out_vars, seeds)
        seed_masks(self.d, w, ops, seeds)  # Dropout masks (nothing without Dropout)
        args = with_mask_arg(self.d, args)
        lines = w.write(ops, seeds, fixed, header, epilogue, args, doc)
        self.identity_tangents = set()
        return w, Kernel(kind, fname, args, doc), lines

    def tangent_ops(self, extra, seeds_t, out_vars):
        """The pruned ops of a tangent program, the direction-free ones (forward and backward
        pass, computed once) first, each part fused on its own; and the tangent values."""
        ops = self.prune(list(self.d.program.ops) + list(extra), out_vars)
        kset = set(seeds_t)
        base, kops = [], []
        for op in ops:
            if any(v in kset for v in op.inputs):
                kset.add(op.out)
                kops.append(op)
            else:
                base.append(op)
        need = {v for op in kops for v in op.inputs} | set(out_vars)
        ops = (fuse_maps(base, need | sum_values(base))
               + fuse_maps(kops, set(out_vars) | sum_values(kops)))
        ops = share_calls(ops, kset)  # hvp, round 7: sech²(z) once, not in every Map
        return ops, kset

    def products_setup(self, w: KernelWriter, kind: str, tangents, out_vars, kset, seeds):
        """Hessian- or Gauss-Newton-vector products: the directions V unpacked into tangent
        parameters, the products packed into ``out`` (θ layout) at the end."""
        P_ = self.n_params
        fixed = {}
        header = [f"B = X.shape[0] // {self.x.size}", f"K = V.shape[0] // {P_}"]
        first = None
        for (_name, _shape, _off), p in zip(self.layout, self.params):
            t = tangents[p]
            o = w.carve(t.name, "K", t.size)
            first = first or o
            seeds[t] = Slot(t, "paramK", "work", o)
        w.pre.append(f"_blocks(V, 0, K, {P_}, _LAYOUT, work, {first}, 1)")
        # the products, one block per parameter in θ order, packed into out at the end
        packed = (len(set(out_vars)) == len(out_vars)
                  and all(v in kset and v not in seeds for v in out_vars))
        out_first = None
        if packed:
            for v in out_vars:
                s = Slot(v, "paramK", "work", w.carve(v.name, "K", v.size))
                fixed[v] = s
                out_first = out_first or s.off
        args = ("params", "V", "X", "Y", "out", "work")
        what = "Hessian" if kind == "hvp" else "Gauss-Newton"
        doc = (f"{what}-vector products of {self.name!r}: out[k] ← "
               f"{'H' if kind == 'hvp' else 'G'} V[k] for the K directions in V "
               f"(K·{P_},), θ layout.")

        def epilogue(w):
            if packed:
                return [f"_blocks(work, {out_first}, K, {P_}, _LAYOUT, out, 0, 0)"]
            lines = []
            for (_name, _shape, off), ov in zip(self.layout, out_vars):
                s = w.slot(ov)
                ss = str(ov.size) if s.is_k else "0"
                lines.append(f"_copy_rows({s.arr}, {s.off}, {ss}, out, {off}, {P_}, K, "
                             f"{ov.size})")
            return lines

        return fixed, header, epilogue, args, doc

    def jacobian_setup(self, w: KernelWriter, x_dot, out_vars, seeds):
        """The input Jacobian: K = n_in identity input tangents, the result transposed into
        ``out`` (B, n_out, n_in) at the end."""
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
        args = ("params", "X", "out", "work")
        doc = (f"Input Jacobian of {self.name!r}: out[i] ← ∂ŷ/∂x at sample i, "
               f"(B·{n_out}·{n_in},).")

        def epilogue(w):
            if not out_vars:
                return ["for q in range(out.shape[0]):", f"    out[q] = {w.lit(0.0)}"]
            s = w.slot(out_vars[0])
            if not s.is_k:
                raise CompileError("the prediction does not depend on the input")
            return ["for i in range(B):",
                    f"    _swap01({s.arr}, {plus(s.off, f'i * K * {n_out}')}, K, "
                    f"{n_out}, 1, out, i * {n_out * n_in}, 0)"]

        return {}, header, epilogue, args, doc

    # -- the module ----------------------------------------------------------------------------
    def module(self) -> GeneratedModule:
        parts, kernels, work = [], {}, {}
        for kind in ("predict", "loss", "loss_and_grad"):
            parts.append(self.base_kernel(kind))
        for kind in ("hvp", "gnvp", "jacobian"):
            parts.append(self.tangent_kernel(kind))
        used = set()
        for w, k, _ in parts:
            u = w.work_units
            work[k.kind] = (u["B"], u["BK"], u["K"], u["one"])
            used |= w.printer.used
            kernels[k.kind] = k
        lines = self.head("\n".join(ln for _, _, lines in parts for ln in lines), used)
        op_lines = []
        for w, _k, text in parts:
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
            work=work,
        )

    def head(self, text: str, used: set) -> list[str]:
        """The module's header comment, imports (the runtime blocks and functions ``text``
        calls) and constants."""
        blocks = sorted(n for n in runtime_names() if re.search(rf"\b{n}\(", text))
        blocks += sorted(u for u in used if u in ("_sigmoid", "_softplus"))
        fmn = sorted(u for u in used if u.startswith("fm_") and u not in _FM_EXTRA)
        fme = sorted(u for u in used if u in _FM_EXTRA)  # round 6 (exact)
        decl = self.d.declared
        layout = ", ".join(f"{o}, {int(np.prod(s, dtype=np.int64))}" for n, s, o in self.layout)
        lines = [
            f"# symnn generated kernels — {type(decl).__name__.lower()} {self.name!r}",
            f"#   {_oneline(repr(decl))}",
            f"#   dtype {self.dtype}; {self.n_params} parameters; elementary functions from "
            + ("symnn.codegen.fastmath" if self.fast else "math"),
            "#   θ layout: " + ", ".join(f"{n}{list(s)}@{o}" for n, s, o in self.layout),
            "#   Generated by symnn.codegen.numba from the derived program; do not edit.",
            f"#   runtime {runtime_fingerprint()[:16]}",
            "import math",
            "",
            "import numpy as np",
            "from numba import njit",
        ]
        if fmn:
            lines.append(f"from symnn.codegen.fastmath import {', '.join(fmn)}")
        if fme:
            lines.append(f"from symnn.codegen.fastmath_extra import {', '.join(fme)}")
        if blocks:
            lines.append(f"from symnn.codegen.numba.runtime import {', '.join(blocks)}")
        return lines + [
            "",
            f"_f = np.{self.dtype}",
            "_u = np.uint64  # unsigned indices: no negative-index test, so loops vectorise",
            "#: (offset, size) in θ of every parameter",
            f"_LAYOUT = np.array([{layout}], dtype=np.int64)",
        ]


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
