"""Plots read like a paper's figures: what is drawn, where the legend is, which ticks.

The figures are built by the ``*_figure`` functions, drawn on the Agg canvas, and their
artists inspected: colours and legend entries by eigenvalue class, tick positions, and
the bounding boxes of every text (no label, title, tick label or legend overlaps another,
and no legend covers data).
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from symnn.analysis.flow import GradientFlow  # noqa: E402
from symnn.plots import (  # noqa: E402
    gradient_flow_figure,
    history_figure,
    plot_gradient_flow,
    plot_history,
    plot_spectrum,
    spectrum_figure,
)


def drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def texts(fig):
    """Every visible, non-empty text of the figure: titles, axis labels, the tick labels
    inside the view, legend entries and legend titles."""
    out = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        out += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            out += [t.label1 for t in axis.get_major_ticks() if lo <= t.get_loc() <= hi]
    for lg in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
        out += list(lg.get_texts()) + [lg.get_title()]
    unique = {id(t): t for t in out}
    return [t for t in unique.values() if t.get_visible() and t.get_text().strip()]


def assert_no_overlapping_text(fig):
    renderer = drawn(fig)
    boxes = [(t.get_text(), t.get_window_extent(renderer).shrunk(0.98, 0.9)) for t in texts(fig)]
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        assert not ba.overlaps(bb), f"{a!r} overlaps {b!r}"


def legend_texts(fig):
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def test_spectrum_rounding_noise_is_zero_not_negative():
    """Issue 11, item 6: −5.8e-16 beside 2.0 is a zero, not negative curvature."""
    fig = spectrum_figure(np.array([-5.8e-16, 1e-3, 0.1, 2.0]))
    labels = legend_texts(fig)
    assert labels == [r"$\lambda > 0$ (3)", r"$\lambda \approx 0$ (1)"]
    assert not any("<" in t for t in labels)
    ax = fig.axes[0]
    # ticks: 0 and a few decades, only on the side that has data
    ticks = ax.yaxis.get_majorticklocs()
    assert 0.0 in ticks and all(t >= 0 for t in ticks) and len(ticks) <= 6
    assert 1e-12 not in ticks
    # integer indices from 1
    xt = ax.xaxis.get_majorticklocs()
    assert list(xt) == [1, 2, 3, 4]
    assert_no_overlapping_text(fig)
    # the legend is outside the axes: it covers no data
    renderer = drawn(fig)
    assert not fig.legends[0].get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def test_spectrum_negative_and_panels():
    fig = spectrum_figure({"saddle": [-1.3, -0.2, 0.0, 2e-17, 0.5, 1.8],
                           "minimum": [0.01, 0.3, 1.0, 2.5, 3.0, 7.0]}, rtol=1e-9)
    assert legend_texts(fig)[:3] == [r"$\lambda > 0$ (8)", r"$\lambda \approx 0$ (2)",
                                     r"$\lambda < 0$ (2)"]
    left, right = fig.axes[:2]
    assert left.get_shared_y_axes().joined(left, right)
    ticks = left.yaxis.get_majorticklocs()
    assert min(ticks) < 0 < max(ticks) and len(ticks) <= 9
    # negative values in the negative colour, zeros drawn at zero
    colours = {tuple(np.round(line.get_color() if isinstance(line.get_color(), tuple)
                              else __import__("matplotlib").colors.to_rgba(line.get_color()), 3))
               for line in left.lines if line.get_marker() == "v"}
    assert len(colours) == 1
    zeros = [line for line in left.lines if line.get_marker() == "s"]
    assert zeros and np.all(zeros[0].get_ydata() == 0)
    assert_no_overlapping_text(fig)


def test_spectrum_refuses_nothing_or_nan(tmp_path):
    from symnn.errors import SymnnError

    with pytest.raises(SymnnError, match="no eigenvalues"):
        plot_spectrum([], tmp_path / "x.png")
    with pytest.raises(SymnnError, match="NaN"):
        plot_spectrum([1.0, np.nan], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def flow(names, scale, epochs=5, verdict="healthy"):
    rng = np.random.default_rng(0)
    norms = np.outer(np.ones(epochs), scale) * rng.uniform(0.8, 1.2, size=(epochs, len(names)))
    return GradientFlow(list(names), norms, float(norms[-1, 0] / norms[-1, -1]), verdict)


def test_gradient_flow_panels_do_not_overlap_and_every_layer_is_in_the_legend():
    names = [f"W{i}" for i in range(1, 10)]
    flows = {"sigmoid": flow(names, 10.0 ** -np.arange(9)[::-1], verdict="vanishing"),
             "tanh": flow(names, np.ones(9)),
             "a longer run label": flow(names, np.ones(9), epochs=40)}
    fig = gradient_flow_figure(flows, title="three runs")
    assert legend_texts(fig)[-9:] == [f"$W^{{({i})}}$" for i in range(1, 10)]
    a, b, c = fig.axes[:3]
    assert a.get_shared_y_axes().joined(a, c)
    assert [ax.get_title() for ax in (a, b, c)] == [
        "sigmoid: vanishing", "tanh: healthy", "a longer run label: healthy"]
    assert_no_overlapping_text(fig)
    renderer = drawn(fig)
    for ax in (a, b, c):
        assert not fig.legends[0].get_window_extent(renderer).overlaps(
            ax.get_window_extent(renderer))
    assert all(float(t).is_integer() for t in c.xaxis.get_majorticklocs())


def test_gradient_flow_single_point_is_a_bar_chart():
    fig = gradient_flow_figure(flow(["W1", "W2", "W3"], [1e-3, 1e-2, 1.0], epochs=1))
    ax = fig.axes[0]
    assert len(ax.patches) == 3 and ax.get_xlabel() == "layer"


class _History:
    def __init__(self, loss, val=None):
        self.loss = loss
        self.val_loss = val


def test_history_plot(tmp_path):
    fig = history_figure(_History([1.0, 0.5, 0.2, 0.1], [1.1, 0.6, None, 0.2]))
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["training", "validation"]
    assert ax.get_yscale() == "log" and list(ax.xaxis.get_majorticklocs()) == [1, 2, 3, 4]
    assert_no_overlapping_text(fig)
    path = plot_history(_History([1.0, 0.5]), tmp_path / "h.png")
    assert png_size(path)[0] > 300


def png_size(path):
    with open(path, "rb") as fh:
        data = fh.read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_files_are_written_atomically(tmp_path):
    out = plot_gradient_flow({"r": flow(["W1", "W2"], [1.0, 2.0])}, tmp_path / "g.png")
    assert png_size(out)[0] > 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png"]


def test_figures_stay_out_of_pyplot():
    """Library figures are not registered with pyplot: nothing left open, nothing shown
    twice in a notebook."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    spectrum_figure([1.0, 2.0])
    gradient_flow_figure(flow(["W1", "W2"], [1.0, 2.0]))
    history_figure(_History([1.0, 0.5]))
    assert plt.get_fignums() == before
