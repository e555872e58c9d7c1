"""Plots (matplotlib, an optional dependency): training curves, Hessian spectra, gradient
flow, drawn as figures for a paper: one-column size, serif type, no box around the data,
legends beside or below the data and never on it, integer ticks where counts are plotted.

Each ``plot_*`` function writes a PNG (or any format matplotlib knows by the extension)
and returns the path; each ``*_figure`` function returns the matplotlib figure instead, for
a notebook or for further editing.

Examples
--------
>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "spectrum.png")
>>> plot_spectrum(np.array([-0.5, 0.1, 2.0]), path)  # doctest: +ELLIPSIS
'...spectrum.png'
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from symnn._atomic import atomic_path
from symnn.errors import SymnnError

__all__ = ["plot_history", "plot_spectrum", "plot_gradient_flow", "history_figure",
           "spectrum_figure", "gradient_flow_figure", "ZERO_RTOL"]
__all__ += ["plot_spectral_density", "spectral_density_figure"]

#: Eigenvalues with ``|λ| ≤ ZERO_RTOL · max|λ|`` are drawn as zero ("≈ 0"): a computed
#: eigenvalue carries a rounding error of about ``n · ε · max|λ|``, so ``-5.8e-16`` next
#: to ``2.0`` is a zero, not a direction of negative curvature.
ZERO_RTOL = 1e-9

#: Colours (Okabe–Ito, safe for colour-blind readers) of positive, ≈ 0 and negative values.
_POS, _ZERO, _NEG = "#0072B2", "#7f7f7f", "#D55E00"

_STYLE = {
    "font.family": "serif",
    "font.serif": ["STIXGeneral", "DejaVu Serif"],
    "mathtext.fontset": "stix",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.3,
    "legend.frameon": False,
    "savefig.dpi": 200,
}


def _figure(**kw):
    """A new matplotlib figure with an Agg canvas, outside pyplot's global state: nothing
    is shown or kept open behind the caller's back, and in Jupyter a returned figure
    displays once."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise SymnnError("plots need matplotlib: pip install matplotlib") from err
    fig = Figure(**kw)
    FigureCanvasAgg(fig)
    return fig


def _style():
    try:
        import matplotlib
    except ImportError as err:
        raise SymnnError("plots need matplotlib: pip install matplotlib") from err
    return matplotlib.rc_context(_STYLE)


def _save(fig, path) -> str:
    """Write atomically: a temporary file in the same folder, then rename."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1] or ".png"
    with atomic_path(path, suffix=ext, user=True) as tmp, _style():
        fig.savefig(tmp, bbox_inches="tight", pad_inches=0.03)
    return path


def _integer_ticks(axis, n: int | None = None) -> None:
    """Integer ticks only; every integer when there are at most 10 of them."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    if n is not None and n <= 10:
        axis.set_major_locator(FixedLocator(np.arange(1, n + 1)))
    else:
        axis.set_major_locator(MaxNLocator(integer=True, nbins="auto", min_n_ticks=2))


# -- training history --------------------------------------------------------------------

def history_figure(history, title: str = "training"):
    """The figure of :func:`plot_history`."""
    loss = np.asarray(history.loss, float)
    if loss.size == 0:
        raise SymnnError("the history has no epochs to plot")
    with _style():
        fig = _figure(figsize=(3.4, 2.4), layout="constrained")
        ax = fig.subplots()
        ep = np.arange(1, loss.size + 1)
        marker = "o" if loss.size <= 30 else None
        ax.plot(ep, loss, color=_POS, marker=marker, ms=3, label="training")
        val = getattr(history, "val_loss", None)
        if val is not None:
            val = np.asarray([np.nan if v is None else v for v in val], float)
            if np.any(np.isfinite(val)):
                ax.plot(ep, val, color=_NEG, ls="--", marker=marker, ms=3, label="validation")
        positive = loss[np.isfinite(loss)]
        if positive.size and np.all(positive > 0):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        _integer_ticks(ax.xaxis, loss.size)
        ax.set_title(title)
        ax.legend(loc="upper right")
    return fig


def plot_history(history, path, title: str = "training") -> str:
    """Training (and validation) loss per epoch, log scale.

    Parameters
    ----------
    history : History
        ``history.loss`` (and ``history.val_loss`` when present), one value per epoch.
    path : str or os.PathLike
    title : str
    """
    return _save(history_figure(history, title), path)


# -- Hessian spectrum ----------------------------------------------------------------------

def _classify(ev: np.ndarray, rtol: float):
    scale = float(np.max(np.abs(ev))) if ev.size else 0.0
    tol = rtol * scale
    zero = np.abs(ev) <= tol
    return ev > tol, zero, ev < -tol, tol


def _symlog_ticks(values: np.ndarray, linthresh: float, max_per_side: int = 4):
    """Tick positions for a symlog axis: 0 and a few decades on each side that has data."""
    ticks = [0.0]
    for sign in (1, -1):
        side = values[sign * values > linthresh * 0.999]
        if side.size == 0:
            continue
        lo = math.floor(math.log10(linthresh))
        hi = math.ceil(math.log10(float(np.max(np.abs(side)))))
        step = max(1, math.ceil((hi - lo) / max_per_side))
        ticks += [sign * 10.0 ** k for k in range(hi, lo - 1, -step)]
    return sorted(set(ticks))


def _tick_label(v: float, _pos=None) -> str:
    if v == 0:
        return "0"
    k = round(math.log10(abs(v)))
    sign = "-" if v < 0 else ""
    if k == 0:
        return f"${sign}1$"
    return f"${sign}10^{{{k}}}$"


def spectrum_figure(eigenvalues, title: str = "Hessian spectrum", *,
                    rtol: float = ZERO_RTOL):
    """The figure of :func:`plot_spectrum`."""
    panels = (dict(eigenvalues) if isinstance(eigenvalues, Mapping)
              else {"": eigenvalues})
    panels = {k: np.sort(np.asarray(v, float).ravel()) for k, v in panels.items()}
    if not panels or any(v.size == 0 for v in panels.values()):
        raise SymnnError("plot_spectrum: no eigenvalues to plot")
    if any(not np.all(np.isfinite(v)) for v in panels.values()):
        raise SymnnError("plot_spectrum: the eigenvalues contain NaN or inf")
    allv = np.concatenate(list(panels.values()))
    _, zero, _, tol = _classify(allv, rtol)
    significant = np.abs(allv[~zero])
    if significant.size:
        linthresh = 10.0 ** math.floor(math.log10(float(np.min(significant))))
    else:
        linthresh = 1.0
    ticks = _symlog_ticks(allv[~zero], linthresh)
    n = len(panels)
    with _style():
        fig = _figure(figsize=(3.4 if n == 1 else 2.6 * n, 2.5), layout="constrained")
        axes = fig.subplots(1, n, sharey=True, squeeze=False)
        counts = {"pos": 0, "zero": 0, "neg": 0}
        for ax, (label, ev) in zip(axes[0], panels.items()):
            _spectrum_panel(ax, ev, tol, counts, linthresh, ticks)
            if label:
                ax.set_title(label)
        axes[0][0].set_ylabel(r"eigenvalue $\lambda_i$")
        _spectrum_legend(fig, counts, rtol)
        fig.suptitle(title, fontsize=9)
    return fig


#: The three kinds of eigenvalue: key, colour, marker and legend text.
_SIGNS = (("pos", _POS, "o", r"$\lambda > 0$"), ("zero", _ZERO, "s", r"$\lambda \approx 0$"),
          ("neg", _NEG, "v", r"$\lambda < 0$"))


def _spectrum_panel(ax, ev: np.ndarray, tol: float, counts: dict, linthresh: float,
                    ticks) -> None:
    """One spectrum as stems by sign on a symlog axis; adds to ``counts``."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    z = np.abs(ev) <= tol
    masks = {"pos": ev > tol, "zero": z, "neg": ev < -tol}
    shown = np.where(z, 0.0, ev)
    idx = np.arange(1, ev.size + 1)
    for key, colour, marker, _ in _SIGNS:
        mask = masks[key]
        if not np.any(mask):
            continue
        counts[key] += int(mask.sum())
        ax.vlines(idx[mask], 0, shown[mask], color=colour, lw=1.0)
        ax.plot(idx[mask], shown[mask], ls="none", marker=marker, ms=4,
                color=colour, mec="white", mew=0.4, zorder=3)
    ax.axhline(0, color="black", lw=0.6, zorder=1)
    ax.set_yscale("symlog", linthresh=linthresh, linscale=0.6)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(_tick_label))
    ax.yaxis.set_minor_locator(NullLocator())
    _integer_ticks(ax.xaxis, ev.size)
    ax.set_xlim(0.3, ev.size + 0.7)
    ax.set_xlabel("index $i$ (ascending)")


def _spectrum_legend(fig, counts: dict, rtol: float) -> None:
    """One legend below the panels: the kinds drawn, with their counts."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="none", marker=marker, color=colour, ms=4,
                      label=f"{text} ({counts[key]})")
               for key, colour, marker, text in _SIGNS if counts[key]]
    note = rf"$|\lambda| \leq {_sci(rtol)}\,\max|\lambda|$ drawn as 0"
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles),
               title=note if counts["zero"] else None, title_fontsize=7)


def _sci(x: float) -> str:
    k = math.floor(math.log10(x))
    m = x / 10 ** k
    return f"10^{{{k}}}" if abs(m - 1) < 1e-12 else f"{m:g} \\cdot 10^{{{k}}}"


def plot_spectrum(eigenvalues, path, title: str = "Hessian spectrum", *,
                  rtol: float = ZERO_RTOL) -> str:
    """Eigenvalues as a stem plot on a symmetric log scale, by sign.

    Parameters
    ----------
    eigenvalues : array_like or mapping of str to array_like
        One spectrum, or several (``{"saddle": λ₁, "minimum": λ₂}``), drawn as panels
        side by side with a shared axis.
    path : str or os.PathLike
    title : str
    rtol : float
        Eigenvalues with ``|λ| ≤ rtol · max|λ|`` (over all panels) are rounding noise:
        drawn at 0, grey, and counted as "λ ≈ 0" (default :data:`ZERO_RTOL`).

    The axis is linear within the smallest significant decade and logarithmic beyond,
    with a few decades labelled on each side that has data.  Indices start at 1.
    """
    return _save(spectrum_figure(eigenvalues, title, rtol=rtol), path)


# -- gradient flow -------------------------------------------------------------------------

def _param_label(name: str) -> str:
    head = name.rstrip("0123456789")
    digits = name[len(head):]
    if head.isalpha() and digits:
        return f"${head}^{{({digits})}}$"
    return name


def gradient_flow_figure(flows, title: str = "gradient flow"):
    """The figure of :func:`plot_gradient_flow`."""
    if not isinstance(flows, Mapping):
        flows = {"": flows}
    if not flows:
        raise SymnnError("plot_gradient_flow: no runs to plot")
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    n = len(flows)
    names = max((list(f.names) for f in flows.values()), key=len)
    cmap = colormaps["viridis"]
    colours = {nm: cmap(i / max(len(names) - 1, 1) * 0.9) for i, nm in enumerate(names)}
    with _style():
        fig = _figure(figsize=(max(3.4, 2.4 * n), 2.6), layout="constrained")
        axes = fig.subplots(1, n, sharey=True, squeeze=False)
        for ax, (label, flow) in zip(axes[0], flows.items()):
            _flow_panel(ax, flow, colours)
            head = f"{label}: " if label else ""
            ax.set_title(f"{head}{flow.verdict}")
        axes[0][0].set_ylabel(r"$\|\partial L / \partial W^{(l)}\|_2$")
        handles = [Line2D([], [], color=colours[nm], label=_param_label(nm)) for nm in names]
        fig.legend(handles=handles, loc="outside right center", title="layer",
                   title_fontsize=8, ncol=1 if len(names) <= 10 else 2)
        fig.suptitle(title, fontsize=9)
    return fig


def _flow_panel(ax, flow, colours: dict) -> None:
    """One run: bars by layer (one point) or one line per layer over the epochs."""
    norms = np.asarray(flow.norms, float)
    if norms.ndim == 1:
        norms = norms[None, :]
    if norms.shape[0] == 1:  # one point: norms by layer
        x = np.arange(1, norms.shape[1] + 1)
        ax.bar(x, norms[0], color=[colours.get(nm, _POS) for nm in flow.names])
        ax.set_xticks(x, [_param_label(nm) for nm in flow.names])
        ax.set_xlabel("layer")
    else:
        ep = np.arange(1, norms.shape[0] + 1)
        for j, nm in enumerate(flow.names):
            ax.plot(ep, norms[:, j], color=colours.get(nm), label=_param_label(nm))
        ax.set_xlabel("epoch")
        _integer_ticks(ax.xaxis, norms.shape[0])
    if np.all(norms[np.isfinite(norms)] > 0):
        ax.set_yscale("log")


def plot_gradient_flow(flows, path, title: str = "gradient flow") -> str:
    """Per-layer gradient norms over training, one panel per run.

    Parameters
    ----------
    flows : mapping of str to GradientFlow, or one GradientFlow
        ``{run label: symnn.analysis.gradient_flow(history)}``.  Panels share the y axis
        so runs compare at a glance; layers are coloured from first (dark) to last
        (light), with one legend for all panels.
    path : str or os.PathLike
    title : str
    """
    return _save(gradient_flow_figure(flows, title), path)


# -- spectral density --------------------------------------------------------------------

def spectral_density_figure(density, title: str | None = None, *,
                            sigma: float | None = None, points: int = 600):
    """The figure of :func:`plot_spectral_density`."""
    if not (hasattr(density, "density") and hasattr(density, "nodes")):
        raise SymnnError(
            "plot_spectral_density: expected the result of symnn.analysis.spectral_density, "
            f"got {type(density).__name__}"
        )
    lam = np.concatenate([np.asarray(v, float).ravel() for v in density.nodes])
    if lam.size == 0 or not np.all(np.isfinite(lam)):
        raise SymnnError("plot_spectral_density: the density has no finite nodes to plot")
    s = density.default_sigma() if sigma is None else float(sigma)
    t = density.grid(points, s)
    phi = density.density(t, s)
    floor = float(phi.max()) * 1e-6
    matrix = getattr(density, "matrix", "hessian")
    name = {"hessian": "Hessian", "ggn": "Gauss-Newton"}.get(matrix, matrix)
    with _style():
        fig = _figure(figsize=(3.4, 2.5), layout="constrained")
        ax = fig.subplots()
        ax.fill_between(t, floor, np.maximum(phi, floor), color=_POS, alpha=0.25, lw=0)
        ax.plot(t, np.maximum(phi, floor), color=_POS,
                label=rf"SLQ, {density.probes} probes × {density.steps} steps, "
                      rf"$\sigma = {s:.2g}$")
        ax.axvline(0, color="black", lw=0.6, zorder=1)
        ax.set_yscale("log")
        ax.set_ylim(floor, float(phi.max()) * 3)
        ax.set_xlim(t[0], t[-1])
        ax.set_xlabel(r"eigenvalue $\lambda$")
        ax.set_ylabel("density")
        fig.legend(loc="outside lower center", ncol=1)
        ax.set_title(title if title is not None else
                     f"{name} spectral density ({density.n_params} parameters)")
    return fig


def plot_spectral_density(density, path, title: str | None = None, *,
                          sigma: float | None = None, points: int = 600) -> str:
    """A spectral density from stochastic Lanczos quadrature, Gaussian-smoothed, log scale.

    Parameters
    ----------
    density : SpectralDensity
        ``symnn.analysis.spectral_density(model, θ, X, y)``.
    path : str or os.PathLike
    title : str, optional
        Default: the matrix and its size.
    sigma : float, optional
        Smoothing width (default ``density.default_sigma()``: 1 % of the nodes' range).
    points : int
        Grid points.

    The density integrates to 1 (the fraction of eigenvalues per unit of λ); the log axis
    shows the small bulk beside the few outliers, down to 10⁻⁶ of the peak.
    """
    return _save(spectral_density_figure(density, title, sigma=sigma, points=points), path)
