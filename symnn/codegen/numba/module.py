"""What code generation returns: :class:`GeneratedModule` and its :class:`Kernel` entries."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Kernel", "GeneratedModule"]


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
    work : dict
        ``{kind: (b, bk, k, c)}``: the kernel's work buffer holds ``b·B + bk·B·K + k·K + c``
        values (B samples, K directions); callers pass one that large (or any array: a
        kernel given too small a buffer allocates its own).
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
    work: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def tangent_sizes(self) -> dict[str, tuple[int, int]]:
        """``{kind: (floats per sample per direction, floats per direction)}`` of the work
        buffers of the tangent kernels (to bound how many directions run at once)."""
        return {k: (w[1], w[2]) for k, w in self.work.items() if k in ("hvp", "gnvp", "jacobian")}

    def work_size(self, kind: str, B: int, K: int = 1) -> int:
        """Length of the work buffer of kernel ``kind`` for B samples and K directions."""
        b, bk, k, c = self.work[kind]
        return b * B + bk * B * K + k * K + c

    def op_at(self, line: int) -> str | None:
        """The op whose code contains source line ``line`` (1-based), if any."""
        best = None
        for ln, text in self.op_lines:
            if ln <= line:
                best = text
        return best
