"""Size limits checked at declaration, before anything is derived, compiled or allocated.

A declaration that no machine could hold, or that Numba could not compile, is refused
here at once with a :class:`~symnn.errors.SizeLimitError` that names the limit and the
alternative — not after minutes of compiling, not by asking NumPy for terabytes, not by an
``OverflowError`` when a generated module is imported.  Each limit is a module constant;
raise it (``symnn.declare.limits.MAX_DENSE_LAYERS = 64``) if you know what you are doing.

Why these numbers:

* :data:`MAX_WIDTH` (2²⁴ units per layer): widths enter the generated kernels as integer
  literals and index products; ≥ 2⁶³ overflowed Numba's int64 at import.
* :data:`MAX_PARAMS` (2³⁰ ≈ 1.07e9): θ alone is then 8 GiB in float64, and training holds
  several copies (gradient, optimizer state); beyond that this CPU trainer is the wrong tool.
* :data:`MAX_DENSE_LAYERS` (64): every layer adds loops to each kernel, and compile time
  grows faster than the depth — measured here on a loaded 2-core machine, a 60-layer
  2-wide tanh net took ~20 s to its first gradient and ~90 s more for its Hessian-vector
  kernel (both then equal to the reference to 1e-15).  Deeper nets once failed with Numba's
  ``RecursionError`` (its SSA pass walked back through every block for a reassigned
  ``work`` buffer; the kernels now define it once); 64 is the depth tested since.
* :data:`MAX_DENSE_BYTES` (2 GiB): a dense P × P Hessian is formed only when it fits; a
  40,000-parameter net would ask for 12.8 GB, where Hessian-vector products need none.
* :data:`MAX_EXPANDED_TERMS` (10⁴ = ``batch_size`` × parameters): the expanded symbolic
  gradient, loss or Hessian of a symbolic batch holds about that many terms (measured:
  a 9-parameter net took 3.8 s at batch 1,000 and 50 s at 11,000);
  ``net.gradient(batch_size=10**6)`` would never finish.

Examples
--------
>>> import symnn
>>> symnn.mlp([2] + [2] * 70 + [1])
Traceback (most recent call last):
...
symnn.errors.SizeLimitError: Network 'mlp': 71 dense layers exceed symnn's limit of 64 ...
"""

from __future__ import annotations

from numbers import Integral

from symnn.errors import ArgumentError, SizeLimitError

__all__ = [
    "MAX_WIDTH",
    "MAX_PARAMS",
    "MAX_DENSE_LAYERS",
    "MAX_EXPANDED_TERMS",
    "MAX_DENSE_BYTES",
    "check_width",
    "check_network",
    "check_expanded",
    "check_dense",
]

MAX_WIDTH = 2**24
MAX_PARAMS = 2**30
MAX_DENSE_LAYERS = 64
MAX_EXPANDED_TERMS = 10_000
MAX_DENSE_BYTES = 2**31


def check_width(n: int, where: str) -> None:
    """SizeLimitError when a layer width ``n`` exceeds :data:`MAX_WIDTH`."""
    if n > MAX_WIDTH:
        raise SizeLimitError(
            f"{where}: width {n:,} exceeds symnn's limit of {MAX_WIDTH:,} units per layer "
            "(symnn.declare.limits.MAX_WIDTH); the generated kernels index with 64-bit "
            "integers and a layer that wide could not be held in memory. Use narrower layers."
        )


def check_network(net, where: str = "Network") -> None:
    """SizeLimitError when a network is deeper than :data:`MAX_DENSE_LAYERS` or has more
    than :data:`MAX_PARAMS` parameters (checked from the shapes, before any allocation)."""
    depth = getattr(net, "n_layers", 0)
    if depth > MAX_DENSE_LAYERS:
        raise SizeLimitError(
            f"{where}: {depth} dense layers exceed symnn's limit of {MAX_DENSE_LAYERS} "
            "(symnn.declare.limits.MAX_DENSE_LAYERS): Numba's compile time grows faster than "
            "the depth (a 60-layer Hessian-vector kernel took ~90 s). Use fewer, wider "
            "layers."
        )
    total = net.n_params
    if total > MAX_PARAMS:
        gib = total * 8 / 2**30
        raise SizeLimitError(
            f"{where}: {total:,} parameters exceed symnn's limit of {MAX_PARAMS:,} "
            f"(symnn.declare.limits.MAX_PARAMS); θ alone would need {gib:,.0f} GiB in "
            "float64 and training keeps several copies. Use narrower layers."
        )


def check_expanded(declared, batch_size, what: str, per_param: int = 1) -> None:
    """Check ``batch_size`` of an expanded symbolic form (an integer ≥ 1, and
    ``batch_size × n_params × per_param`` within :data:`MAX_EXPANDED_TERMS`)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral):
        raise ArgumentError(
            f"{what}: batch_size must be an integer ≥ 1, got {batch_size!r}"
        )
    if batch_size < 1:
        raise SizeLimitError(f"{what}: batch_size must be ≥ 1, got {batch_size}")
    terms = int(batch_size) * int(declared.n_params) * per_param
    if terms > MAX_EXPANDED_TERMS:
        raise SizeLimitError(
            f"{what} over a symbolic batch of {batch_size:,} samples of a model with "
            f"{declared.n_params:,} parameters would hold about {terms:,} terms; the limit is "
            f"{MAX_EXPANDED_TERMS:,} (batch_size × parameters, "
            "symnn.declare.limits.MAX_EXPANDED_TERMS). The loss is a mean over samples, so "
            "batch_size=1 shows its form; use net.compile() for numbers on real batches."
        )


def check_dense(rows: int, cols: int, itemsize: int, what: str, alternative: str) -> None:
    """SizeLimitError, before allocating, when a ``rows × cols`` array of ``itemsize``-byte
    numbers would exceed :data:`MAX_DENSE_BYTES`."""
    nbytes = int(rows) * int(cols) * int(itemsize)
    if nbytes > MAX_DENSE_BYTES:
        raise SizeLimitError(
            f"{what} of shape ({rows:,}, {cols:,}) would need {nbytes / 2**30:,.1f} GiB; the "
            f"limit is {MAX_DENSE_BYTES / 2**30:g} GiB (symnn.declare.limits.MAX_DENSE_BYTES). "
            f"{alternative}"
        )
