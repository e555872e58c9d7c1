"""Checks of the arrays handed to compiled (and reference) models.

Every check raises a symnn error that says which argument is wrong, what shape or value it
has, and what was expected — never a NumPy or Numba traceback from inside a kernel.
Conversions happen here too, so the kernels can assume writable, aligned, C-contiguous
arrays of the model's dtype in native byte order: float16, big-endian (``'>f8'``),
integer and boolean arrays are converted; read-only and memory-mapped arrays
(``np.load(..., mmap_mode="r")``) are copied (Numba types a read-only array apart and the
kernels are compiled for writable ones).  Finiteness is checked *after* the cast, so a
float32 model refuses 1e39 (finite in float64, infinite in float32) with a
:class:`~symnn.errors.DataError` naming the argument and the index, instead of returning
inf or NaN.
"""

from __future__ import annotations

import os

import numba
import numpy as np

from symnn.errors import ArgumentError, DataError, ShapeError, SizeLimitError

__all__ = ["as_theta", "as_directions", "as_inputs", "as_targets", "as_dtype", "as_seed"]


def as_dtype(dtype) -> np.dtype:
    """``"float64"``, ``np.float64``, ``"float32"`` … → a NumPy dtype (else DataError)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise DataError(f"dtype must be float64 or float32, got {dtype!r}") from err
    if dt.byteorder not in ("=", "|"):
        dt = dt.newbyteorder("=")  # '>f8' names float64 too: the kernels use native order
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise DataError(f"dtype must be float64 or float32, got {dt.name}")
    return dt


def as_seed(seed, what: str = "seed"):
    """A seed for :func:`numpy.random.default_rng`: a non-negative integer, ``None`` (fresh
    entropy) or a ``numpy.random.Generator`` / ``SeedSequence``; else ArgumentError or
    DataError."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ArgumentError(
            f"{what} must be a non-negative integer (or None), got {type(seed).__name__} "
            f"{seed!r}"
        )
    if seed < 0:
        raise DataError(f"{what} must be a non-negative integer, got {seed}")
    return int(seed)


def _numeric(a, what: str) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except Exception as err:  # ragged lists and the like
        raise DataError(f"{what} must be a numeric array: {err}") from err
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise DataError(
            f"{what} must be numeric (integer or floating point), got an array of dtype "
            f"{arr.dtype}" + (" (complex numbers are not supported)" if kind == "c" else "")
        )
    return arr


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _nonfinite(a):
    """True when the flat array holds a NaN or an infinity (x · 0 is NaN exactly then, and
    ±0 otherwise).

    ``reassoc`` only lets the sum of the zeros vectorise; NaN and inf still propagate (no
    ``nnan``/``nsz`` flag, so the product is not folded to 0).  One multiply with a memory
    operand and one add per element: about a third faster than ``x - x`` (issue 16)."""
    s = 0.0
    for i in range(a.size):
        s += a[i] * 0.0
    return s != 0.0


@numba.njit(cache=True, error_model="numpy")
def _bad_probability_row(a, n, tol):
    """-1 when every row of the flat (rows, n) array is finite, non-negative and sums to 1
    within ``tol``; else the first bad row."""
    for r in range(a.size // n):
        s = 0.0
        for c in range(n):
            x = a[r * n + c]
            if not x >= 0:  # negative or NaN
                return r
            s += x
        if not abs(s - 1.0) <= tol:  # also catches inf
            return r
    return -1


@numba.njit(cache=True, error_model="numpy")
def _one_hot(labels, n, out):
    """out (flat, rows of n) ← one-hot rows of the labels; returns -1, or the position of
    the first label outside 0..n-1 (out is then incomplete)."""
    for r in range(labels.size):
        k = labels[r]
        if k < 0 or k >= n:
            return r
        for c in range(n):
            out[r * n + c] = 0.0
        out[r * n + k] = 1.0
    return -1


def _where(index, ndim: int) -> str:
    if ndim == 2:
        return f"row {index[0]}, column {index[1]}"
    if ndim == 1:
        return f"index {index[0]}"
    return f"index {tuple(int(i) for i in index)}"


def _finite(arr: np.ndarray, what: str, original: np.ndarray | None = None) -> None:
    """DataError when ``arr`` (already in the model's dtype) holds NaN or ±inf.

    ``original`` is the array before the cast: where its value was finite, the message says
    that the cast overflowed (a float32 model given 1e39)."""
    if arr.dtype.kind != "f" or not _nonfinite(arr.reshape(-1)):
        return
    bad = np.argwhere(~np.isfinite(arr))[0]
    value = arr[tuple(bad)]
    where = _where(bad, arr.ndim)
    if original is not None and original.shape == arr.shape:
        before = original[tuple(bad)]
        if np.isfinite(before):
            raise DataError(
                f"{what} holds {float(before):.6g} at {where}, which overflows the model's "
                f"{arr.dtype.name} (largest finite value {np.finfo(arr.dtype).max:.4g}); "
                "rescale it, or compile the model with dtype='float64'"
            )
    raise DataError(
        f"{what} contains {value} at {where}; remove or impute non-finite values first"
    )


def _cast(arr: np.ndarray, dtype, what: str = "an input") -> np.ndarray:
    """``arr`` as a writable, aligned, C-contiguous array of ``dtype`` in native byte
    order: no copy when it is one already; a copy when it is read-only or memory-mapped."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow: reported by _finite
            return np.require(arr, dtype=dtype, requirements=["C", "A", "W"])
    except MemoryError as err:  # walk: a broadcast or strided view of 10⁹ rows
        need = arr.size * np.dtype(dtype).itemsize
        raise SizeLimitError(
            f"{what} of shape {arr.shape} needs {need / 2**30:.1f} GiB as a contiguous "
            f"{np.dtype(dtype).name} array (the kernels read it so), more memory than this "
            "process can have; pass the rows in smaller batches") from err


def work_buffer(need: int, dtype, name: str, kind: str, B: int) -> np.ndarray:
    """A kernel's work buffer of ``need`` values, refused before it is allocated when it
    exceeds this machine's memory (walk, round 6: a batch of 10⁴ rows through a layer of 4·10⁶
    units raised NumPy's raw MemoryError for 596 GiB; below the refusal a failed allocation is
    the same SizeLimitError).

    >>> work_buffer(4, "float64", "net", "predict", 2).shape
    (4,)
    """
    nbytes = int(need) * np.dtype(dtype).itemsize
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        memory = None
    if memory is None or nbytes <= memory:
        try:
            return np.empty(max(int(need), 1), dtype)
        except MemoryError:
            memory = None  # the process's own limit (ulimit -v, a container) refused it
    rows = int(B * memory / (2 * nbytes)) if memory else B // 4
    limit = (f"this machine's memory ({memory / 2**30:.1f} GiB)" if memory
             else "this process can allocate")
    todo = (f"pass fewer rows at a time (about {rows:,})" if rows >= 1 else
            "even one row does not fit: use narrower layers")
    raise SizeLimitError(
        f"{name}: the {kind} kernel needs a work buffer of {int(need):,} values "
        f"({nbytes / 2**30:.1f} GiB) for a batch of {B} rows, more than {limit}; {todo}")


def _ready(a, dtype, ndim) -> bool:
    """Already a writable C-contiguous array of the dtype and rank (the common case: no
    copies)."""
    if type(a) is not np.ndarray:
        return False
    flags = a.flags
    return (a.dtype == dtype and a.ndim == ndim and flags.c_contiguous and flags.writeable
            and flags.aligned)


def as_theta(theta, n_params: int, dtype: np.dtype, what: str = "theta",
             finite: bool = True) -> np.ndarray:
    """A flat parameter vector of length ``n_params`` in the model's dtype; NaN or ±inf
    (also after the cast to float32) is a DataError unless ``finite=False``."""
    if _ready(theta, dtype, 1) and theta.shape[0] == n_params:
        if finite:
            _finite(theta, what)
        return theta
    arr = _numeric(theta, what)
    if arr.ndim != 1 or arr.shape[0] != n_params:
        raise ShapeError(
            f"{what} has shape {arr.shape}; expected a flat vector of shape ({n_params},) "
            "(use model.flatten(...) to build one from named arrays)"
        )
    out = _cast(arr, dtype, what)
    if finite:
        _finite(out, what, arr)
    return out


def as_directions(v, n_params: int, dtype: np.dtype, what: str = "v") -> tuple[np.ndarray, bool]:
    """Tangent direction(s): ``(P,)`` or ``(K, P)`` → ``((K, P) array, was 1-D)``; finite."""
    arr = _numeric(v, what)
    if arr.ndim == 1 and arr.shape[0] == n_params:
        out = _cast(arr, dtype, what)
        _finite(out, what, arr)
        return out.reshape(1, n_params), True
    if arr.ndim == 2 and arr.shape[1] == n_params and arr.shape[0] >= 1:
        out = _cast(arr, dtype, what)
        _finite(out, what, arr)
        return out, False
    raise ShapeError(
        f"{what} has shape {arr.shape}; expected ({n_params},) or (K, {n_params}) with "
        f"K >= 1 directions"
    )


def as_inputs(X, n_inputs, dtype: np.dtype, what: str = "X") -> np.ndarray:
    """A ``(B, n_inputs)`` batch, finite, C-contiguous, in the model's dtype.

    ``n_inputs`` is the width, or the shape of one sample: ``(channels, length)`` for a
    network that starts with a Conv1D, whose ``X`` may be ``(B, channels, length)`` (its
    rows are flattened, row-major) or already ``(B, channels·length)``.
    """
    shape = tuple(n_inputs) if isinstance(n_inputs, (tuple, list)) else (n_inputs,)
    n_inputs = int(np.prod(shape))
    if _ready(X, dtype, 2) and X.shape[1] == n_inputs and X.shape[0] > 0:
        _finite(X, what)
        return X
    arr = _numeric(X, what)
    if len(shape) > 1 and arr.ndim == len(shape) + 1:
        if arr.shape[1:] != shape:
            raise ShapeError(
                f"{what} has samples of shape {arr.shape[1:]}; the model takes (channels, "
                f"length) = {shape}: expected shape ({arr.shape[0]}, "
                f"{', '.join(map(str, shape))})")
        arr = arr.reshape(arr.shape[0], n_inputs)
    if arr.ndim != 2:
        hint = ""
        if arr.ndim == 1:
            hint = (f"; for one sample use {what}.reshape(1, -1), for a single feature "
                    f"{what}.reshape(-1, 1)")
        want = f"2-D of shape (batch, {n_inputs})" if len(shape) == 1 else \
            f"of shape (batch, {', '.join(map(str, shape))}) or 2-D (batch, {n_inputs})"
        raise ShapeError(
            f"{what} must be {want}, got {arr.ndim}-D shape {arr.shape}{hint}"
        )
    if arr.shape[1] != n_inputs:
        raise ShapeError(
            f"{what} has {arr.shape[1]} features (shape {arr.shape}); the model takes "
            f"{n_inputs}: expected shape ({arr.shape[0]}, {n_inputs})"
        )
    if arr.shape[0] == 0:
        raise ShapeError(f"{what} is an empty batch (shape {arr.shape}); give at least one row")
    out = _cast(arr, dtype, what)
    _finite(out, what, arr)
    return out


def as_targets(y, batch: int, n_outputs: int, dtype: np.dtype, probabilities: bool,
               loss: str = "", what: str = "y") -> np.ndarray:
    """Targets as a ``(B, n_outputs)`` array.

    ``(B,)`` is accepted when ``n_outputs == 1``.  For probability losses
    (``cross_entropy``, ``kl``) a 1-D integer array holds class labels, one-hot encoded
    here; rows of a 2-D target must be non-negative and sum to 1.
    """
    arr = _numeric(y, what)
    if probabilities and arr.ndim == 1 and arr.dtype.kind in "biu" and n_outputs > 1:
        if arr.shape[0] != batch:
            raise ShapeError(
                f"{what} holds {arr.shape[0]} class labels for a batch of {batch} rows"
            )
        out = np.empty((batch, n_outputs), dtype=dtype)
        bad = _one_hot(_cast(arr, np.int64), n_outputs, out.reshape(-1))
        if bad >= 0:
            raise DataError(
                f"{what}[{bad}] = {arr[bad]} is not a class label of this model: labels "
                f"must be integers in 0..{n_outputs - 1}"
            )
        return out
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape != (batch, n_outputs):
        alt = f" or ({batch},)" if n_outputs == 1 else ""
        if probabilities and n_outputs > 1:
            alt = f" or ({batch},) integer class labels"
        raise ShapeError(
            f"{what} has shape {arr.shape}; expected ({batch}, {n_outputs}){alt} to match "
            f"{batch} rows of X and the model's {n_outputs} outputs"
        )
    out = _cast(arr, dtype, what)
    if probabilities:
        tol = (1e-6 if dtype == np.float64 else 1e-4) * max(1, n_outputs)
        r = _bad_probability_row(out.reshape(-1), n_outputs, tol)
        if r >= 0:
            _finite(out, what, arr)
            neg = np.flatnonzero(out[r] < 0)
            if neg.size:
                c = int(neg[0])
                raise DataError(
                    f"{what}[{r}, {c}] = {out[r, c]} is negative; the {loss or 'probability'} "
                    "loss needs probability rows (non-negative, summing to 1)"
                )
            raise DataError(
                f"row {r} of {what} sums to {float(out[r].sum()):.6g}, not 1; the "
                f"{loss or 'probability'} loss needs probability rows (or pass 1-D integer "
                "class labels)"
            )
    else:
        _finite(out, what, arr)
    return out
