"""Compiled models: the public face of the generated kernels.

``compile_model(net)`` (also ``net.compile()``) derives the network's programs, generates
the kernel module (:mod:`symnn.codegen.numba`), loads it through the on-disk cache
(:mod:`symnn.codegen.cache`) and wraps the kernels in a :class:`CompiledModel` whose
methods check their arguments and return NumPy arrays.  ``model.reference`` is a
:class:`ReferenceModel` with the same methods computed by the uncompiled NumPy interpreter
(:func:`symnn.codegen.reference.evaluate`) — an independent witness of every result.

Parameters travel as one flat vector θ.  For a :class:`~symnn.Network` its layout is
``W1`` (shape ``(n1, n0)``, row-major), ``b1``, ``W2``, ``b2``, …; for a custom
:class:`~symnn.Model` it is the single vector ``theta`` in the order of ``params``.
``model.param_shapes`` lists it; ``unflatten`` / ``flatten`` convert.

Shapes: ``X`` is ``(B, n_in)``; targets ``y`` are ``(B, n_out)``, or ``(B,)`` when
``n_out == 1``; for ``cross_entropy`` / ``kl`` losses a 1-D integer ``y`` holds class labels
(one-hot encoded here) and probability rows must sum to 1.

Accuracy: float64 kernels agree with the reference to about 1e-12 relative; float32 kernels
compute in float32 (BLAS ``sgemm``) and agree with float64 to about 1e-4 relative for
well-scaled problems (loss and gradient), a few 1e-3 for second derivatives.

Examples
--------
>>> import numpy as np, symnn
>>> net = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse")
>>> model = net.compile()
>>> theta = model.init(seed=0)
>>> X = np.array([[0.0, 1.0], [1.0, 0.0]]); y = np.array([1.0, 0.0])
>>> L, g = model.loss_and_grad(theta, X, y)
>>> bool(np.isclose(L, model.reference.loss(theta, X, y)))
True
>>> g.shape
(9,)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from symnn._later import later
from symnn._threads import single_threaded_if_small
from symnn.codegen import _fastpath, _fusedcheck, _fusedentry, _masks, declcache
from symnn.codegen import _guard, _rowsplit, _sigint
from symnn.codegen._numbacache import _from_numba_cache, _purge_numba_cache
from symnn.codegen import _validate as V
from symnn.codegen.cache import load_module, module_key
from symnn.codegen.hessian_blocks import hessian_rows
from symnn.codegen.numba.module import GeneratedModule
from symnn.codegen.aot import guard_ok
from symnn.codegen.numba.cacheload import blocks_called, load_cached, prepare_blocks
from symnn.codegen.numba.runtime import prepare_runtime
from symnn.errors import CompileError, ShapeError

# The declaration, derivation and code-generation stages load on first use: a model whose
# kernels come from the declaration index (:mod:`symnn.codegen.declcache`) needs none of
# them until it is asked for its derived programs, its reference or a dense Hessian.


def derive(declared):
    """:func:`symnn.derive.derive` (imported on first use)."""
    from symnn.derive import derive as _derive

    return _derive(declared)


def check_dense(*args, **kwargs):
    """:func:`symnn.declare.limits.check_dense` (imported on first use)."""
    from symnn.declare.limits import check_dense as _check_dense

    return _check_dense(*args, **kwargs)

__all__ = ["CompiledModel", "ReferenceModel", "compile_model"]

#: What to use instead of a dense Hessian too large to hold.
_HESSIAN_ALTERNATIVE = ("Use model.hvp(theta, v, X, y) for Hessian-vector products, or "
                        "symnn.analysis.hessian_spectrum(..., k=…) for extreme eigenvalues.")

#: Upper bound on the work memory of one batched Hessian call (bytes).
HESSIAN_MEMORY = 256 * 2**20


class _Base:
    """What compiled and reference models share: layout, checks, initialisation."""

    def __init__(self, declared, derived, dtype: np.dtype, layout: dict | None = None) -> None:
        self.declared = declared
        if derived is not None:
            self.derived = derived
            layout = _layout(derived)
        self.dtype = np.dtype(dtype)
        self.param_shapes: list[tuple[str, tuple[int, ...]]] = list(layout["param_shapes"])
        self._offsets = []
        off = 0
        for _, shape in self.param_shapes:
            size = int(np.prod(shape, dtype=np.int64)) if shape else 1
            self._offsets.append((off, size))
            off += size
        self.n_params = off
        self.n_inputs = layout["n_inputs"]
        self.n_outputs = layout["n_outputs"]
        info = declared_info(declared, self.n_inputs) if declared is not None else \
            layout["declared"]
        self.name = info["name"]
        #: one sample's shape: (n_inputs,), or (channels, length) before a Conv1D
        self.input_shape = tuple(info["input_shape"])
        self.loss_name = info["loss_name"]
        self._probabilities = bool(info["probabilities"])
        #: columns of a Dropout mask (0: no Dropout layer; see symnn.codegen._masks)
        self.mask_width = int(layout.get("mask_width", 0))

    # -- layout --------------------------------------------------------------------------
    def unflatten(self, theta) -> dict[str, np.ndarray]:
        """Named parameter arrays (views of ``theta`` when it is contiguous of this dtype)."""
        theta = V.as_theta(theta, self.n_params, self.dtype, finite=False)
        return {name: theta[o:o + n].reshape(shape)
                for (name, shape), (o, n) in zip(self.param_shapes, self._offsets)}

    def flatten(self, params: dict[str, Any]) -> np.ndarray:
        """The flat θ from named arrays (every parameter must be given, with its shape)."""
        names = [n for n, _ in self.param_shapes]
        if not isinstance(params, Mapping):  # walk 7: a list said "unknown [1, 2]"
            raise ShapeError(f"flatten: expected a dict {{name: array}} of the parameters "
                             f"{names}, got {type(params).__name__}")
        missing = [n for n in names if n not in params]
        extra = [n for n in params if n not in names]
        if missing or extra:
            raise ShapeError(
                f"flatten: parameters {names} expected; missing {missing}, unknown {extra}"
            )
        theta = np.empty(self.n_params, self.dtype)
        for (name, shape), (o, n) in zip(self.param_shapes, self._offsets):
            arr = V._numeric(params[name], name)
            if arr.shape != tuple(shape):
                raise ShapeError(f"flatten: {name} has shape {arr.shape}, expected {shape}")
            theta[o:o + n] = arr.reshape(-1)
        return theta

    def init(self, seed: int = 0) -> np.ndarray:
        """Initial parameters θ.

        Networks: every ``W`` Glorot-uniform, ``U(±sqrt(6 / (fan_in + fan_out)))``, when the
        layer is followed by tanh, sigmoid, softplus, softmax, the identity or a custom
        activation; He-uniform, ``U(±sqrt(6 / fan_in))``, before ReLU, leaky ReLU, ELU,
        GELU and swish; biases 0.  Custom models: ``1 + 0.1·N(0, 1)`` for every parameter
        (ones, slightly perturbed so that symmetric parameters start apart).
        """
        rng = np.random.default_rng(V.as_seed(seed))
        theta = np.zeros(self.n_params, np.float64)
        from symnn.declare.model import Model

        if isinstance(self.declared, Model):
            theta[:] = 1.0 + 0.1 * rng.standard_normal(self.n_params)
            return theta.astype(self.dtype)
        from symnn.declare.layers import initial_parameters

        values = initial_parameters(self.declared, rng)  # each layer draws its own
        for (name, _), (o, n) in zip(self.param_shapes, self._offsets):
            theta[o:o + n] = np.ravel(values[name])
        return theta.astype(self.dtype)

    # -- argument checks ---------------------------------------------------------------------
    def _theta(self, theta, what="theta"):
        return V.as_theta(theta, self.n_params, self.dtype, what)

    def _X(self, X):
        return V.as_inputs(X, self.input_shape, self.dtype)

    def _Y(self, y, batch):
        return V.as_targets(y, batch, self.n_outputs, self.dtype, self._probabilities,
                            self.loss_name)

    def _args(self, theta, X, y, mask) -> tuple[int, tuple]:
        """``(B, (θ, X flat, *mask, y flat))`` for a kernel: the common case in a few
        comparisons and one compiled scan (:mod:`symnn.codegen._fastpath`), else the full
        checks (which convert, or raise)."""
        fast = _fastpath.ready_args(self, theta, X, y, mask)
        if fast is not None:
            return fast
        return self._checked_args(theta, X, y, mask)

    def _checked_args(self, theta, X, y, mask) -> tuple[int, tuple]:
        """:meth:`_args` by the full checks of :mod:`symnn.codegen._validate` (convert, or
        raise)."""
        theta = self._theta(theta)
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        return X.shape[0], (theta, X.reshape(-1), *self._M(mask, X), Y.reshape(-1))

    def _M(self, mask, X) -> tuple:
        """The kernels' mask argument: ``()`` without Dropout, else ``(M flat,)``."""
        if mask is None and not self.mask_width:
            return ()
        return _masks.kernel_masks(self, mask, X.shape[0])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, n_params={self.n_params}, "
                f"dtype={self.dtype.name})")


def _layout(derived) -> dict:
    """What a model's layout needs of its derived programs (plain data, so that the
    declaration index can store it: :mod:`symnn.codegen.declcache`)."""
    return {"param_shapes": [(p.name, tuple(p.shape)) for p in derived.params],
            "n_inputs": int(derived.x.size), "n_outputs": int(derived.meta["prediction"].size),
            "mask_width": int(_masks.mask_width(derived))}


def declared_info(declared, n_inputs: int) -> dict:
    """What a model reads of its declaration at construction (plain data, stored by the
    declaration index so that a model loaded from a file needs no declaration)."""
    return {"name": declared.name,
            "input_shape": [int(n) for n in getattr(declared, "input_shape", (n_inputs,))],
            "loss_name": declared.loss.name,
            "probabilities": bool(declared.loss.probabilities)}


class _ThreadBuffers(threading.local):
    """The work buffers of one model, one set per thread: attribute ``kind`` of this
    object is the buffer of kernel ``kind`` in the calling thread (gone with the thread).

    >>> import threading
    >>> bufs = _ThreadBuffers()
    >>> bufs.hvp = np.zeros(3)
    >>> seen = []
    >>> t = threading.Thread(target=lambda: seen.append(getattr(bufs, "hvp", None)))
    >>> t.start(); t.join()
    >>> seen, bufs.hvp.shape
    ([None], (3,))
    """


class CompiledModel(_Base):
    """A network or custom model compiled to Numba kernels.

    Attributes
    ----------
    n_params : int
    param_shapes : list of (str, tuple)
        Names and shapes in the flat layout of θ.
    dtype : numpy.dtype
    source : str
        The generated module text.
    module : module
        The imported kernel module (a real file in the cache directory, so
        ``inspect.getsource(model.kernels["loss_and_grad"])`` works).
    kernels : dict
        ``{kind: numba dispatcher}`` for ``predict``, ``loss``, ``loss_and_grad``, ``hvp``,
        ``gnvp``, ``jacobian`` (signatures in :mod:`symnn.codegen.numba`).
    reference : ReferenceModel
        The same methods computed by the uncompiled NumPy interpreter.
    """

    _aot: dict = {}  # {kind: ahead-of-time kernel}, set by symnn.codegen.aot.attach
    _entry_lg = _fusedentry.stub_lg  # entry: replaced by the compiled entry when built

    def __init__(self, declared, derived, generated: GeneratedModule, module, dtype,
                 debug: bool = False, layout: dict | None = None, rebuild=None) -> None:
        self._derived = None
        self._rebuild = rebuild  # () -> the declaration, when it is not given
        super().__init__(declared, derived, dtype, layout)
        self.debug = bool(debug)
        self.generated = generated
        self.source = generated.source
        self.module = module
        self.kernels = {kind: getattr(module, k.name) for kind, k in generated.kernels.items()}
        self._reference: ReferenceModel | None = None
        self._ready: set = set()  # kinds whose kernel is loaded, or whose runtime is prepared
        self._buffers = _ThreadBuffers()
        self._repaired: set = set()

    @property
    def declared(self):
        """The declared network or model (rebuilt on first use for a model loaded by
        :func:`symnn.load_compiled` from cached kernels)."""
        if self._declared is None and self._rebuild is not None:
            self._declared = self._rebuild()
        return self._declared

    @declared.setter
    def declared(self, value) -> None:
        self._declared = value

    @property
    def derived(self):
        """The derived programs (:func:`symnn.derive.derive`); derived on first use when the
        kernels came from the declaration index (:mod:`symnn.codegen.declcache`)."""
        if self._derived is None:
            self._derived = derive(self.declared)
        return self._derived

    @derived.setter
    def derived(self, value) -> None:
        self._derived = value

    @property
    def reference(self) -> "ReferenceModel":
        if self._reference is None:
            self._reference = ReferenceModel(self.declared, self.dtype)
        return self._reference

    def kernel_source(self, kind: str = "loss_and_grad") -> str:
        """The generated source of one kernel (its decorator and function), e.g.
        ``print(model.kernel_source("loss_and_grad"))``; kinds as in :attr:`kernels`."""
        if kind not in self.generated.kernels:
            raise KeyError(f"no kernel {kind!r}; kernels: {sorted(self.generated.kernels)}")
        name = self.generated.kernels[kind].name
        lines = self.source.splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.startswith(f"def {name}("))
        end = start + 1
        while start > 0 and lines[start - 1].startswith("@"):
            start -= 1
        while end < len(lines) and not lines[end].startswith(("def ", "@")):
            end += 1
        return "\n".join(lines[start:end]).rstrip() + "\n"

    def _work(self, kind: str, B: int, K: int = 1) -> np.ndarray:
        """The reusable work buffer of a kernel, grown when a call needs more.

        Kernels release the GIL (``nogil=True``), so threads calling one model run at once:
        each thread has its own buffers (:class:`_ThreadBuffers`), freed with the thread.
        Reusing a buffer spares allocating (and first-touching) it on every call."""
        need = self.generated.work_size(kind, B, K)
        bufs = self._buffers
        if type(bufs) is dict:  # a copy whose buffers were reset with ``model._buffers = {}``
            bufs = self._buffers = _ThreadBuffers()
        buf = getattr(bufs, kind, None)
        if buf is None or buf.shape[0] < need:
            buf = V.work_buffer(need, self.dtype, self.name, kind, B)  # walk 6: no raw OOM
            setattr(bufs, kind, buf)
        return buf

    def _call(self, kind: str, *args):
        if kind in self._ready and not self.debug and not self._aot:
            try:  # the common call: a loaded kernel, no poisoning, no AOT module (issue 16)
                return self.kernels[kind](*args)
            except Exception as err:
                return self._failed(kind, err, args)
        fn = self.kernels[kind]
        if self.debug:
            _poison(self.generated.kernels[kind].args, args)
        aot = self._aot.get(kind)  # an ahead-of-time kernel (symnn.codegen.aot): no Numba
        if aot is not None and guard_ok(args, self.dtype):
            return aot(*args)
        try:
            if kind not in self._ready:
                # the blocks this kernel calls, then the kernel from Numba's cache; the
                # whole runtime only when it must be compiled (symnn.codegen.numba.cacheload);
                # a Ctrl-C meanwhile comes after (round 8: llvmlite's __del__ dropped one)
                with _sigint.deferred():
                    prepare_blocks(self.dtype.name, blocks_called(fn))
                    if not load_cached(fn, args):
                        prepare_runtime(self.dtype.name)
                self._ready.add(kind)
            return fn(*args)
        except Exception as err:
            return self._failed(kind, err, args)

    def _failed(self, kind: str, err: Exception, args: tuple):
        """A kernel call raised ``err``: a CompileError naming the op for Numba's errors; a
        retry after deleting Numba's damaged cache files; else ``err`` itself."""
        from numba.core.errors import NumbaError

        if isinstance(err, NumbaError):
            raise _compile_error(self, kind, err) from err
        if not _from_numba_cache(err) or kind in self._repaired:
            raise err
        # Numba's own cache files for this module are damaged: delete them, recompile
        self._repaired.add(kind)
        _purge_numba_cache(self.module)
        return self._call(kind, *args)

    # -- training (the next stage: symnn.train, reached through symnn._later) -------------------
    def fit(self, X, y, optimizer="adam", **options):
        """Train this model: ``symnn.train.fit(self, X, y, optimizer, **options)``.

        Returns a :class:`symnn.train.FitResult` (``.params``, ``.history``).
        """
        return later("fit")(self, X, y, optimizer, **options)

    # -- first order -------------------------------------------------------------------------
    def predict(self, theta, X, mask=None) -> np.ndarray:
        """The model's output ŷ for each row of ``X``: shape ``(B, n_out)``.

        ``mask``: a Dropout mask ``(B, mask_width)`` of 0s and 1s (networks with Dropout;
        see :mod:`symnn.codegen._masks`), in every method; None (the default) drops
        nothing: the expected network."""
        theta = self._theta(theta)
        X = self._X(X)
        out = np.empty((X.shape[0], self.n_outputs), self.dtype)
        self._call("predict", theta, X.reshape(-1), *self._M(mask, X), out.reshape(-1),
                   self._work("predict", X.shape[0]))
        return out

    def loss(self, theta, X, y, mask=None) -> float:
        """The batch loss L (mean over samples, plus penalties)."""
        done = _fusedcheck.loss(self, theta, X, y, mask)  # b1: θ checked in the kernel's reads
        if done is not None:
            return done
        fast = _fastpath.ready_args(self, theta, X, y, mask)  # (inlined _args: issue 16)
        B, args = fast if fast is not None else self._checked_args(theta, X, y, mask)
        if B >= 2 * _rowsplit.CHUNK:
            return _rowsplit.run(self, "loss", args, B, False)[0]
        return float(self._call("loss", *args, self._work("loss", B)))

    def loss_and_grad(self, theta, X, y, mask=None) -> tuple[float, np.ndarray]:
        """``(L, ∂L/∂θ)``; the gradient has θ's flat layout."""
        try:  # entry: shape checks, kernel, after-check in one compiled call (issue 16)
            L, g, ok = self._entry_lg(theta, X, y) if mask is None else _fusedentry.NO
        except Exception:  # (TypeError: arguments outside the entry's one signature)
            L, g, ok = _fusedentry.fallback_lg(self, theta, X, y)
        if ok:
            return L, g
        fast = _fastpath.ready_args(self, theta, X, y, mask)  # (inlined _args: issue 16)
        B, args = fast if fast is not None else self._checked_args(theta, X, y, mask)
        if B >= 2 * _rowsplit.CHUNK:  # in chunks of rows, on several threads (issue 16)
            return _rowsplit.run(self, "loss_and_grad", args, B, True)
        grad = np.empty(self.n_params, self.dtype)
        L = self._call("loss_and_grad", *args, grad, self._work("loss_and_grad", B))
        return float(L), grad

    # -- second order ------------------------------------------------------------------------
    def _products(self, kind, theta, v, X, y, mask=None):
        fast = _fastpath.ready_args(self, theta, X, y, mask)
        if fast is None:
            theta = self._theta(theta)
        Vm, single = V.as_directions(v, self.n_params, self.dtype)
        if fast is None:
            X = self._X(X)
            Y = self._Y(y, X.shape[0])
            fast = X.shape[0], (theta, X.reshape(-1), *self._M(mask, X), Y.reshape(-1))
        B, (theta, *rest) = fast
        out = np.empty_like(Vm)
        self._call(kind, theta, Vm.reshape(-1), *rest, out.reshape(-1),
                   self._work(kind, B, Vm.shape[0]))
        _guard.check_products(self, out, kind)  # softmax × bce: no silent NaN (round 5)
        return out[0] if single else out

    def hvp(self, theta, v, X, y, mask=None) -> np.ndarray:
        """Exact Hessian-vector product ``H v`` (forward-over-reverse).

        ``v`` of shape ``(P,)`` gives ``(P,)``; ``(K, P)`` gives the K products ``(K, P)``
        computed in one batched call.
        """
        return self._products("hvp", theta, v, X, y, mask)

    def gnvp(self, theta, v, X, y, mask=None) -> np.ndarray:
        """Gauss-Newton-vector product ``Jᵀ H_ℓ J v`` (shapes as :meth:`hvp`)."""
        return self._products("gnvp", theta, v, X, y, mask)

    def hessian(self, theta, X, y, mask=None) -> np.ndarray:
        """The exact Hessian ``(P, P)`` of the batch loss: P Hessian-vector products with the
        unit vectors, computed as batched calls (as many directions at once as fit in
        :data:`HESSIAN_MEMORY`) — the rows of a first ``Dense`` layer from per-sample products
        instead (:mod:`symnn.codegen.hessian_blocks`) —, then symmetrised (it is symmetric
        up to rounding).  Up to
        :data:`symnn._threads.SMALL_PARAMS` parameters the calls run on one BLAS thread."""
        theta = self._theta(theta)
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        P = self.n_params
        check_dense(P, P, self.dtype.itemsize, "the Hessian", _HESSIAN_ALTERNATIVE)
        with single_threaded_if_small(P):  # skinny products: threads cost more than they save
            H = hessian_rows(self, theta, X, Y, self._M(mask, X), HESSIAN_MEMORY)
        H = np.add(H, H.T)  # (not H += H.T: the overlap costs NumPy a copy)
        H *= 0.5
        _guard.check_products(self, H, "hessian")  # round 5, exact
        return H

    def jacobian(self, theta, X, mask=None) -> np.ndarray:
        """``∂ŷ/∂x`` for each sample: shape ``(B, n_out, n_in)``."""
        theta = self._theta(theta)
        X = self._X(X)
        out = np.empty((X.shape[0], self.n_outputs, self.n_inputs), self.dtype)
        self._call("jacobian", theta, X.reshape(-1), *self._M(mask, X), out.reshape(-1),
                   self._work("jacobian", X.shape[0], self.n_inputs))
        return out


#: Arguments a kernel writes (its results and scratch space): poisoned in debug mode.
_WRITTEN_ARGS = frozenset({"out", "grad", "work"})


def poison_enabled() -> bool:
    """True when ``$SYMNN_POISON`` asks for poisoned buffers (``1``, ``true``, ``yes``, ``on``)."""
    import os

    return os.environ.get("SYMNN_POISON", "").strip().lower() in ("1", "true", "yes", "on")


def _poison(names, args) -> None:
    """Fill every buffer the kernel writes (``out``, ``grad``, ``work``) with NaN, so that a
    value read before the kernel wrote it shows up as NaN instead of a plausible number
    left over from an earlier call.  (A kernel given too small a work buffer allocates its
    own, NaN-filled too; see :mod:`symnn.codegen.numba`.)"""
    for name, a in zip(names, args):
        if name in _WRITTEN_ARGS and isinstance(a, np.ndarray):
            a.fill(np.nan)


def _compile_error(model: CompiledModel, kind: str, err: Exception) -> CompileError:
    """Name the kernel and, from the source line in Numba's message, the op."""
    import re

    kname = model.generated.kernels[kind].name
    op = None
    for m in re.finditer(r"line (\d+)", str(err)):
        line = int(m.group(1)) - 1  # the cache file has one checksum line before the source
        found = model.generated.op_at(line)
        if found is not None and found.startswith(kname + ":"):
            op = found.split(":", 1)[1].strip()
    where = f", op {op}" if op else ""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return CompileError(
        f"Numba could not compile kernel {kname} of {model.name!r}{where}: {first} "
        f"(the generated source is model.source)"
    )


class ReferenceModel(_Base):
    """The uncompiled witness: every method of :class:`CompiledModel`, computed by
    interpreting the derived program with NumPy (:func:`symnn.codegen.reference.evaluate`).
    Slow; meant for checking."""

    def __init__(self, declared, dtype=np.float64) -> None:
        super().__init__(declared, derive(declared), dtype)
        self.program = self.derived.program

    def _env(self, theta, X, Y=None, mask=None) -> dict:
        prog = self.program
        env = {prog.inputs["x"]: X.astype(np.float64)}
        env.update(_masks.mask_env(self, mask, X.shape[0]))
        if Y is not None:
            env[prog.inputs["y"]] = Y.astype(np.float64)
        else:
            env[prog.inputs["y"]] = np.zeros((X.shape[0], self.n_outputs))
        for p, (o, n) in zip(self.derived.params, self._offsets):
            env[p] = theta[o:o + n].astype(np.float64).reshape(p.shape)
        return env

    def _run(self, ops, env):
        from symnn.codegen.reference import evaluate

        return evaluate(ops, env)

    def predict(self, theta, X, mask=None) -> np.ndarray:
        theta, X = self._theta(theta), self._X(X)
        env = self._run(self.program.ops, self._env(theta, X, None, mask))
        return np.asarray(env[self.program.outputs["prediction"]], self.dtype).reshape(
            X.shape[0], self.n_outputs)

    def loss(self, theta, X, y, mask=None) -> float:
        theta, X = self._theta(theta), self._X(X)
        Y = self._Y(y, X.shape[0])
        env = self._run(self.program.ops, self._env(theta, X, Y, mask))
        return float(env[self.program.outputs["loss"]])

    def loss_and_grad(self, theta, X, y, mask=None) -> tuple[float, np.ndarray]:
        theta, X = self._theta(theta), self._X(X)
        Y = self._Y(y, X.shape[0])
        env = self._run(self.program.ops, self._env(theta, X, Y, mask))
        grad = np.concatenate([np.ravel(env[self.program.outputs["grad:" + p.name]])
                               for p in self.derived.params])
        return float(env[self.program.outputs["loss"]]), grad.astype(self.dtype)

    def _product(self, which, theta, v, X, y, mask=None):
        theta, X = self._theta(theta), self._X(X)
        Y = self._Y(y, X.shape[0])
        Vm, single = V.as_directions(v, self.n_params, self.dtype)
        from symnn.derive import gnvp_program, hvp_program

        extra, tangents, outs = (hvp_program if which == "hvp" else gnvp_program)(self.derived)
        ops = list(self.program.ops) + list(extra)
        base = self._env(theta, X, Y, mask)
        res = np.empty((Vm.shape[0], self.n_params), self.dtype)
        for k in range(Vm.shape[0]):
            env = dict(base)
            for p, (o, n) in zip(self.derived.params, self._offsets):
                env[tangents[p]] = Vm[k, o:o + n].astype(np.float64).reshape(p.shape)
            with _guard.quiet(self):
                env = self._run(ops, env)
            res[k] = np.concatenate([np.ravel(env[outs[p.name]]) for p in self.derived.params])
        _guard.check_products(self, res, which)  # softmax × bce: no silent NaN (round 5)
        return res[0] if single else res

    def hvp(self, theta, v, X, y, mask=None) -> np.ndarray:
        return self._product("hvp", theta, v, X, y, mask)

    def gnvp(self, theta, v, X, y, mask=None) -> np.ndarray:
        return self._product("gnvp", theta, v, X, y, mask)

    def hessian(self, theta, X, y, mask=None) -> np.ndarray:
        check_dense(self.n_params, self.n_params, 8, "the Hessian", _HESSIAN_ALTERNATIVE)
        return self._product("hvp", theta, np.eye(self.n_params), X, y, mask)

    def jacobian(self, theta, X, mask=None) -> np.ndarray:
        theta, X = self._theta(theta), self._X(X)
        from symnn.derive import input_jvp_program

        extra, x_dot, pred_dot = input_jvp_program(self.derived)
        ops = list(self.program.ops) + list(extra)
        base = self._env(theta, X, None, mask)
        B = X.shape[0]
        J = np.zeros((B, self.n_outputs, self.n_inputs), self.dtype)
        if pred_dot is None:  # the prediction does not depend on the inputs
            return J
        for i in range(self.n_inputs):
            env = dict(base)
            xd = np.zeros((B, self.n_inputs))
            xd[:, i] = 1.0
            env[x_dot] = xd
            env = self._run(ops, env)
            J[:, :, i] = np.asarray(env[pred_dot]).reshape(B, self.n_outputs)
        return J


def compile_model(declared, dtype: Any = "float64", cache: bool = True,
                  cache_dir=None, debug: bool | None = None) -> CompiledModel:
    """Derive, generate and compile the kernels of a network or custom model.

    Parameters
    ----------
    declared : Network or Model
    dtype : "float64", "float32", numpy.float64 or numpy.float32
    cache : bool
        Keep the generated module (and Numba's machine code) on disk so that later
        processes start warm.  False compiles in memory.
    cache_dir : path, optional
        Overrides ``$SYMNN_CACHE_DIR`` / ``~/.cache/symnn``.
    debug : bool, optional
        Poisoned buffers: before every kernel call, fill the buffers the kernel writes
        (``out``, ``grad``, the work buffer) with NaN, so that generated code reading a
        value it never wrote gives NaN instead of a plausible leftover.  Results of correct
        code do not change; each call pays one pass over its buffers.  Default: on when
        the environment variable ``SYMNN_POISON`` is ``1`` (the test suite sets it).

    Returns
    -------
    CompiledModel
        Kernels compile on their first call (a few seconds for the first, far less once
        cached).

    Raises
    ------
    CompileError
        When code cannot be generated or compiled; the message names the kernel and op.
    DataError
        For a dtype other than float64 / float32.
    """
    dt = V.as_dtype(dtype)
    dkey = declcache.declaration_key(declared, dt.name) if cache else None
    hit = declcache.lookup(dkey, cache_dir)
    if hit is not None:  # every kernel is in the cache: nothing to derive or generate
        key, generated, layout = hit
        derived = None
    else:
        from symnn.codegen.numba.kernels import generate

        derived = derive(declared)
        generated = generate(derived, dt.name)
        key = module_key(derived.program.fingerprint(), generated.source, dt.name)
        layout = dict(_layout(derived), declared=declared_info(declared, derived.x.size))
    try:
        module = load_module(generated.source, key, cache_dir=cache_dir, use_cache=cache)
    except SyntaxError as err:  # pragma: no cover - the generator emits valid Python
        raise CompileError(
            f"the generated kernels of {declared.name!r} are not valid Python: {err}"
        ) from err
    if hit is None and dkey is not None and getattr(module, "__file__", "").endswith(".py"):
        declcache.store(dkey, key, generated, layout, cache_dir)
    if debug is None:
        debug = poison_enabled()
    model = CompiledModel(declared, derived, generated, module, dt, debug=debug, layout=layout)
    model._module_key = key
    return model
