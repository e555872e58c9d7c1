"""Plots (matplotlib, an optional dependency): training curves, Hessian spectra, gradient
flow.  Each function writes a PNG (or any format matplotlib knows by the extension) and
returns the path.

Examples
--------
>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "spectrum.png")
>>> plot_spectrum(np.array([-0.5, 0.1, 2.0]), path)  # doctest: +ELLIPSIS
'...spectrum.png'
"""

from __future__ import annotations

import os

import numpy as np

from symnn._atomic import atomic_path
from symnn.errors import SymnnError

__all__ = ["plot_history", "plot_spectrum", "plot_gradient_flow"]


def _plt():
    try:
        import matplotlib
    except ImportError as err:
        raise SymnnError("plots need matplotlib: pip install matplotlib") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    """Write atomically: a temporary file in the same folder, then rename."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1] or ".png"
    try:
        with atomic_path(path, suffix=ext) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        _plt().close(fig)
    return path


def plot_history(history, path: str, title: str = "training") -> str:
    """Training (and validation) loss per epoch, log scale."""
    plt = _plt()
    loss = np.asarray(history.loss, float)
    if loss.size == 0:
        raise SymnnError("the history has no epochs to plot")
    fig, ax = plt.subplots(figsize=(6, 4))
    ep = np.arange(1, loss.size + 1)
    ax.plot(ep, loss, label="training loss")
    val = getattr(history, "val_loss", None)
    if val is not None and np.any(np.isfinite(np.asarray(val, float))):
        ax.plot(ep, np.asarray(val, float), label="validation loss")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_spectrum(eigenvalues, path: str, title: str = "Hessian spectrum") -> str:
    """Eigenvalues as a stem plot (symmetric log scale), negatives in red."""
    plt = _plt()
    ev = np.sort(np.asarray(eigenvalues, float))
    fig, ax = plt.subplots(figsize=(6, 4))
    idx = np.arange(ev.size)
    neg = ev < 0
    ax.scatter(idx[~neg], ev[~neg], s=12, label="λ ≥ 0")
    ax.scatter(idx[neg], ev[neg], s=12, color="red", label="λ < 0")
    ax.axhline(0, color="gray", lw=0.5)
    lin = max(np.min(np.abs(ev[ev != 0])) if np.any(ev != 0) else 1e-12, 1e-12)
    ax.set_yscale("symlog", linthresh=lin)
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_gradient_flow(flows: dict, path: str, title: str = "gradient flow") -> str:
    """Per-layer gradient norms over training, one panel per run.

    ``flows`` maps a run label to a :class:`symnn.analysis.flow.GradientFlow`.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(flows), figsize=(5 * len(flows), 4), squeeze=False)
    for ax, (label, flow) in zip(axes[0], flows.items()):
        for j, name in enumerate(flow.names):
            ax.plot(np.arange(1, flow.norms.shape[0] + 1), flow.norms[:, j], label=name)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("‖∂L/∂W‖")
        ax.set_title(f"{label}: {flow.verdict}")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)
