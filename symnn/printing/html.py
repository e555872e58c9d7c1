"""HTML for Jupyter: what a notebook shows for networks, histories and check reports.

Jupyter calls ``obj._repr_html_()`` when a cell's value is displayed.  The classes of the
other stages define that method as one line that calls a renderer here, so their modules
stay free of markup and every table looks the same.  The renderers read public attributes
only (duck typing): this module imports nothing from the later stages.

Examples
--------
>>> import symnn
>>> html = declared_html(symnn.mlp([2, 3, 1], "tanh"))
>>> "<table" in html and "W1" in html and "(3, 2)" in html
True
"""

from __future__ import annotations

import html as _html
import math
from typing import Any, Iterable, Sequence

__all__ = ["table", "preformatted", "declared_html", "history_html", "report_html"]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = "" if math.isnan(value) else f"{value:.6g}"
    else:
        text = "" if value is None else str(value)
    return _html.escape(text)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    """A plain HTML table (escaped cells; floats to 6 significant digits)."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{_html.escape(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{_html.escape(h)}</th>" for h in headers) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def preformatted(text: str) -> str:
    """``text`` in a ``<pre>`` block, escaped."""
    return f"<pre>{_html.escape(text)}</pre>"


def declared_html(declared) -> str:
    """A network or custom model: its parameters and shapes, loss and size."""
    rows = [(name, tuple(shape), math.prod(shape) if shape else 1)
            for name, shape in declared.param_shapes]
    loss = getattr(getattr(declared, "loss", None), "name", "")
    caption = f"{declared!r}: {declared.n_params} parameters" + (f", loss {loss}" if loss
                                                                  else "")
    return table(["parameter", "shape", "size"], rows, caption)


def history_html(history, head: int = 10, tail: int = 10) -> str:
    """A training history: epochs as rows (the first ``head`` and last ``tail``)."""
    records = list(history)
    keys = [k for k in ("epoch", "loss", "val_loss", "lr", "time") if any(
        r.get(k) is not None for r in records)]
    rows = [[r.get(k) for k in keys] for r in records]
    if len(rows) > head + tail:
        rows = rows[:head] + [["…"] * len(keys)] + rows[-tail:]
    stop = getattr(history, "stop_reason", None)
    caption = f"History: {len(records)} epochs" + (f", stopped: {stop}" if stop else "")
    return table(keys, rows, caption)


def report_html(report) -> str:
    """A check report: its text, with the verdict in bold."""
    text = str(report)
    first, _, rest = text.partition("\n")
    body = f"<b>{_html.escape(first)}</b>"
    if rest:
        body += "\n" + _html.escape(rest)
    return f"<pre>{body}</pre>"
