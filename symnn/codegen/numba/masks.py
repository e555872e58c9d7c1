"""Dropout masks in generated kernels: the extra argument ``M`` and where each mask lives.

A network with :class:`~symnn.Dropout` layers has one mask value per layer in its derived
program (kind ``"mask"``, ``derived.meta["masks"]``).  Its kernels take them side by side
as one more flat argument, ``M`` — the ``(B, W)`` scaled masks ``m / (1 − p)`` flattened
row by row, ``W`` the total mask width, the layers' columns in the order the forward pass
meets them (the models scale them: :mod:`symnn.codegen._masks`) — right after ``X``:

=====================  =================================
entry                  arguments (with Dropout)
=====================  =================================
``<name>_predict``     ``params, X, M, out, work``
``<name>_loss``        ``params, X, M, Y, work``
``<name>_loss_grad``   ``params, X, M, Y, grad, work``
``<name>_hvp/_gnvp``   ``params, V, X, M, Y, out, work``
``<name>_jacobian``    ``params, X, M, out, work``
=====================  =================================

Each mask's columns are copied from ``M`` into its own block of the work buffer before the
ops run (``_copy_rows``, B rows), so the ops read a mask like any per-sample value.  A
network without Dropout gets exactly the kernels it got before masks existed: every
function here returns its input unchanged when the program has no mask.
"""

from __future__ import annotations

__all__ = ["MASK_ARG", "masks_of", "mask_width", "with_mask_arg", "seed_masks"]

#: The kernel argument holding the masks.
MASK_ARG = "M"


def masks_of(derived) -> list:
    """The mask Vars of a derived program, in the order of their columns in ``M``."""
    return [m for m, _p in derived.meta.get("masks", ())]


def mask_width(derived) -> int:
    """Columns of ``M``: the total width of the network's masks (0 without Dropout)."""
    return sum(m.size for m in masks_of(derived))


def with_mask_arg(derived, args: tuple) -> tuple:
    """``args`` with ``M`` after ``X`` when the network has masks (else ``args`` itself)."""
    if not masks_of(derived) or "X" not in args:
        return args
    i = args.index("X") + 1
    return args[:i] + (MASK_ARG,) + args[i:]


def seed_masks(derived, w, ops, seeds: dict) -> None:
    """Give every mask that ``ops`` read a block of ``w``'s work buffer, filled from ``M``
    before the ops run (nothing without masks)."""
    from symnn.codegen.numba.slots import Slot  # (here: slots imports the IR, and SymPy)

    masks = masks_of(derived)
    if not masks:
        return
    used = {v for op in ops for v in op.inputs}
    width = mask_width(derived)
    col = 0
    for m in masks:
        if m in used:
            o = w.carve(m.name, "B", m.size)
            seeds[m] = Slot(m, "sample", "work", o)
            w.pre.append(f"_copy_rows({MASK_ARG}, {col}, {width}, work, {o}, {m.size}, B, "
                         f"{m.size})")
        col += m.size
