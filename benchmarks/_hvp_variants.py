"""Variants of a generated MLP module's gradient and HVP kernels, for ``bench_hvp.py --floor``.

Built from ``model.generated.source`` by text edits and compiled with Numba (no cache):

* ``full_grad`` / ``full_hvp`` — the generated kernels as they are;
* ``gemm_grad`` / ``gemm_hvp`` — the same with every statement that is not a matrix product
  (``_mm_nt``, ``_mm_nn``, ``_mm_tn``, ``_outer_k``, ``_adjoint_k``) removed: the products'
  own time inside the kernel (values are garbage; BLAS time does not depend on them);
* ``fused_hvp`` — the second hidden layer's three pairs of tangent products (``V₂ a₁ + W₂ ȧ₁``,
  ``δ̇₂ a₁ᵀ + δ₂ ȧ₁ᵀ``, ``V₂ᵀ δ₂ + W₂ᵀ δ̇₂``) each replaced by ONE ``?gemm`` over adjacent
  blocks (contraction 2·128, or 2·B for the weight tangent) plus the packing of ``[V₂ | W₂]``
  and ``[W₂ ; V₂]``: the GEMM fusion of issue 16, timed without writing its codegen.  The
  fused products read scratch blocks that no Map writes, so its values are NOT the HVP —
  timing only (the Maps that would write ``[a₁ | ȧ₁]`` adjacently cost the same either way).

Only meant for the 64-128-128-10 tanh MLP of the benchmark (the edits match its comments).
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path

_GEMM = ("_mm_nt(", "_mm_nn(", "_mm_tn(", "_outer_k(", "_adjoint_k(")


def _function(source: str, name: str) -> str:
    m = re.search(r"@njit\([^)]*\)\ndef " + re.escape(name) + r"\(.*?(?=\n@njit|\Z)",
                  source, re.S)
    if m is None:
        raise SystemExit(f"no kernel {name} in the generated source")
    return m.group(0)


def _gemm_only(fn: str) -> str:
    """``fn`` with every top-level statement but the products (and offsets) removed."""
    out, skip = [], False
    for line in fn.split("\n"):
        top = line.startswith("    ") and not line.startswith("     ")
        if top:
            st = line.strip()
            skip = (st.startswith("for ") or st.startswith("L =")
                    or (st.startswith("_") and not st.startswith(_GEMM)))
            if st.startswith("return"):
                out.append("    return 0.0")
                continue
        if not skip:
            out.append(line)
    return "\n".join(out)


def _dest(call: str) -> str:
    """The output offset (last ``work, o_x`` pair) of a runtime call line."""
    return re.findall(r"work, (o_\w+)\)", call)[-1]


def _fused(fn: str) -> str:
    """The HVP kernel with the layer-2 tangent product pairs fused (see the module doc)."""
    fn = fn.replace("work = _workspace(work_in, ", "o_end = (")
    fn = re.sub(r"(    o_end = \(.*\n)",
                r"\1    o_F = o_end\n    o_H = o_F + 32768\n    o_D = o_H + B * 256\n"
                r"    o_S = o_D + B * 256\n    work = _workspace(work_in, o_S + 32768)\n", fn)
    pair = r"    # \w+ = {a}\n(    _\w+\(.*\n)    # \w+ = {b}\n(    _\w+\(.*\n)"
    fwd = re.search(pair.format(a=r"vW2 a1 \+ vb2", b=r"W2 a1_dot\w+"), fn)
    dw = re.search(pair.format(a=r"batch mean of delta2_dot\w+ a1ᵀ",
                               b=r"batch mean of delta2 a1_dot\w+ᵀ"), fn)
    adj = re.search(pair.format(a=r"vW2ᵀ delta2", b=r"W2ᵀ delta2_dot\w+"), fn)
    if not (fwd and dw and adj):
        raise SystemExit("the generated HVP does not have the expected layer-2 products")
    new_fwd = ("    for j in range(128):\n        for l in range(128):\n"
               "            work[o_F + j * 256 + l] = work[o_vW2 + j * 128 + l]\n"
               "            work[o_F + j * 256 + 128 + l] = params[8320 + j * 128 + l]\n"
               "    _gemm(0, 1, B, 128, 256, 1.0, work, o_H, 256, work, o_F, 256, 0.0, work, "
               f"{_dest(fwd.group(2))}, 128)\n")
    new_dw = ("    _gemm(1, 0, 128, 128, 2 * B, inv_B, work, o_D, 128, work, o_H, 128, 0.0, "
              f"work, {_dest(dw.group(1))}, 128)\n")
    new_adj = ("    for q in range(16384):\n        work[o_S + q] = params[8320 + q]\n"
               "        work[o_S + 16384 + q] = work[o_vW2 + q]\n"
               "    _gemm(0, 0, B, 128, 256, 1.0, work, o_D, 256, work, o_S, 128, 0.0, work, "
               f"{_dest(adj.group(2))}, 128)\n")
    for m, new in sorted(((fwd, new_fwd), (dw, new_dw), (adj, new_adj)),
                         key=lambda t: -t[0].start()):
        fn = fn[:m.start()] + new + fn[m.end():]
    return fn


def build(source: str, name: str):
    """A module holding full_grad, gemm_grad, full_hvp, gemm_hvp, fused_hvp."""
    head = source[:source.index("@njit")] + "from symnn.codegen.numba._blas import _gemm\n"
    grad, hvp = _function(source, f"{name}_loss_grad"), _function(source, f"{name}_hvp")

    def rename(fn, old, new):
        return fn.replace(f"def {old}(", f"def {new}(", 1)

    parts = [rename(grad, f"{name}_loss_grad", "full_grad"),
             rename(_gemm_only(grad), f"{name}_loss_grad", "gemm_grad"),
             rename(hvp, f"{name}_hvp", "full_hvp"),
             rename(_gemm_only(hvp), f"{name}_hvp", "gemm_hvp"),
             rename(_fused(hvp), f"{name}_hvp", "fused_hvp")]
    code = (head + "\n\n".join(parts)).replace("cache=True", "cache=False")
    path = Path(tempfile.mkdtemp(prefix="bench_hvp_")) / "hvp_variants.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("hvp_variants", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
