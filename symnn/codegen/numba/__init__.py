"""Code generation: derived programs → the Python source of batched Numba kernels.

:func:`generate` turns the programs of one network or model (:func:`symnn.derive.derive`
and its Hessian-vector, Gauss-Newton and input-Jacobian extensions) into the text of one
Python module with one ``numba.njit`` function per entry point, named after the network:

=====================  ==================================  ================================
entry                  arguments                           effect
=====================  ==================================  ================================
``<name>_predict``     ``params, X, out, work``            ``out`` ← ŷ ``(B, n_out)``
``<name>_loss``        ``params, X, Y, work``              returns the batch loss L
``<name>_loss_grad``   ``params, X, Y, grad, work``        returns L; ``grad`` ← ∂L/∂θ
``<name>_hvp``         ``params, V, X, Y, out, work``      ``out[k]`` ← H ``V[k]``, K dirs
``<name>_gnvp``        ``params, V, X, Y, out, work``      ``out[k]`` ← G ``V[k]`` (Gauss-
                                                           Newton)
``<name>_jacobian``    ``params, X, out, work``            ``out`` ← ∂ŷ/∂x ``(B, n_out, n_in)``
=====================  ==================================  ================================

Every argument is a flat, C-contiguous 1-D array of the kernel's dtype (``X`` is the
``(B, n_in)`` batch flattened row by row, ``V`` the ``(K, P)`` directions, and so on); the
batch size ``B`` and the number of directions ``K`` are read from the lengths.  ``work`` is
a scratch buffer the caller keeps between calls (:meth:`GeneratedModule.work_size`; a
kernel given a shorter one allocates its own, filled with NaN so that a value read before
it is written shows).  Checking and reshaping the caller's arrays
is :mod:`symnn.codegen.model`'s job.

Why flat arrays and offsets: Numba's compile time grows with every array view, reshape and
loop in a function, and a function called with literal constants is recompiled per call
site.  So the generated entry points hold only offset arithmetic, one loop per elementwise
``Map`` and calls to the *runtime blocks* of :mod:`symnn.codegen.numba.runtime` (``_mm_nt``
…), the only module of this package they import, which are compiled once per dtype with
fixed signatures (:func:`prepare_runtime`), cached beside that file, and kept from being
inlined into every caller.  Indices are cast to unsigned (``_u``): Numba then
skips its negative-index test and LLVM vectorises the loops.  The matrix blocks call BLAS
``?gemm`` directly (alpha, beta and strides for free) above a size threshold
(:data:`BLAS_THRESHOLDS`) and loop below it: a BLAS call costs about a microsecond, which a
batch of one should not pay.

How each op becomes code is one rule per op type, in the table :data:`EMITTERS` (a free
function ``emit_x(w, op)`` registered with ``@emits(OpType)``, one module per op family):

* ``Affine`` / ``MatTVec`` / ``OuterMean`` — the matrix blocks; the batch mean's ``1/B`` is
  BLAS's alpha; an Affine's bias is added where its value is read when only Maps read it;
* ``Map`` — chains are fused first (:func:`symnn.derive.simplify.fuse_maps`), then each is
  one loop whose body :class:`~symnn.codegen.printer.KernelPrinter` prints after
  :func:`sympy.cse`; a body that recomputes an earlier Map's value (``tanh(z1)`` in a
  tangent when ``a1 = tanh(z1)`` exists) reads that value instead;
* sums of products (``ż = V a + W ȧ``) are computed in place: the second product adds into
  the first's buffer (BLAS ``beta = 1``) and the sum disappears
  (:func:`~symnn.codegen.numba.passes.sum_plan`);
* ``Softmax`` / ``LogSumExp`` — max-shifted, sharing one pass when they read the same logits;
* the gradient is written straight into ``grad`` (θ layout); everything else lives in the
  work buffer.

Second order, forward-over-reverse, many directions at once: the Hessian-vector program is
split into the ops that do not depend on the direction (forward and backward pass, computed
once) and the tangent ops, computed for ``K`` directions together — a tangent per-sample
value is laid out ``(B, K, n)``, a tangent parameter ``(K, *shape)``.  Every product with a
weight matrix then stays one BLAS call over ``B·K`` rows, and the full Hessian is P
Hessian-vector products in one batch (``V = I``).  The input Jacobian is the same
machinery with ``K = n_in`` input tangents.
"""

import importlib
from typing import Any

#: Public names and the module that defines each.  They load on first use (PEP 562): a
#: cached kernel module imports only :mod:`symnn.codegen.numba.runtime`, and loading it
#: must not import the code generator (nor SymPy through it).
_WHERE = {
    "generate": "kernels", "GeneratedModule": "module", "Kernel": "module",
    "BLAS_THRESHOLDS": "runtime", "prepare_runtime": "runtime",
    "runtime_fingerprint": "runtime", "EMITTERS": "writer", "emits": "writer",
}

#: The emitter modules; each fills EMITTERS with its family's rules when imported.
_EMITTER_MODULES = ("emit_concat", "emit_conv", "emit_elementwise", "emit_linear",
                    "emit_norm", "emit_penalty", "emit_recurrent", "emit_reduce",
                    "emit_softmax", "emit_attention",
                    "emit_scan",  # sequence ops looped over time
                    "emit_scan_gru")  # a GRU looped over time

__all__ = ["generate", "GeneratedModule", "Kernel", "EMITTERS", "emits", "BLAS_THRESHOLDS",
           "prepare_runtime", "runtime_fingerprint"]


def _load_emitters() -> None:
    for name in _EMITTER_MODULES:
        importlib.import_module(f"symnn.codegen.numba.{name}")


def __getattr__(name: str) -> Any:
    """Load a public name on first use; ``generate`` and ``EMITTERS`` come with every
    emitter registered."""
    where = _WHERE.get(name)
    if where is None:
        if name in _EMITTER_MODULES or name in ("kernels", "module", "runtime", "writer",
                                                "slots", "passes"):
            return importlib.import_module(f"symnn.codegen.numba.{name}")
        raise AttributeError(f"module 'symnn.codegen.numba' has no attribute {name!r}")
    if where in ("kernels", "writer"):
        _load_emitters()
    value = getattr(importlib.import_module(f"symnn.codegen.numba.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
