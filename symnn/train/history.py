"""The training history: one record per epoch (first-order) or iteration (second-order).

Each record holds

* ``epoch`` — 1, 2, … (0 is never recorded: the history starts after the first epoch);
* ``loss`` — first-order: the mean mini-batch loss over the epoch (each batch loss at the
  parameters that batch saw, weighted by batch size, as scikit-learn's ``loss_curve_``);
  second-order: the full-batch loss at the parameters after the iteration;
* ``val_loss`` — the loss on the validation data at the end of the epoch (``None``
  without validation data);
* ``grad_norm`` — per parameter array (``W1``, ``b1``, …): first-order, the mean over the
  epoch's mini-batches of ‖∂L_batch/∂W‖₂; second-order, the norm of the full-batch
  gradient at the start of the iteration.  Vanishing or exploding gradients show here
  layer by layer;
* ``time`` — wall time of the epoch in seconds (checks and validation included);
* ``steps`` — updates made in the epoch; ``lr`` — the learning rate at its last step
  (first-order, when known).

After :func:`~symnn.train.fit` the history also says why training stopped:
``history.stop_reason`` (``"completed"``, ``"early_stopping"``, ``"converged"``, …) and
``history.stop_message`` ("early stopping fired at epoch 23: …; parameters of epoch 20
restored").

Examples
--------
>>> h = History()
>>> _ = h.append(epoch=1, loss=0.5, val_loss=None, grad_norm={"W1": 1.0}, time=0.01)
>>> _ = h.append(epoch=2, loss=0.25, val_loss=None, grad_norm={"W1": 0.5}, time=0.01)
>>> h.loss
array([0.5 , 0.25])
>>> h.grad_norms["W1"]
array([1. , 0.5])
>>> History.from_dict(h.to_dict()).loss.tolist()
[0.5, 0.25]
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from symnn.printing.html import history_html

__all__ = ["History"]


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class History:
    """Per-epoch training records (see the module docs for the fields)."""

    def __init__(self, records: list[dict] | None = None, stop_reason: str | None = None,
                 stop_message: str = "") -> None:
        self.records: list[dict] = list(records or [])
        #: Why training stopped (set by ``fit``; None before it ends).
        self.stop_reason: str | None = stop_reason
        #: The same in words, as the progress output printed it.
        self.stop_message: str = stop_message

    def append(self, *, epoch: int, loss: float, val_loss: float | None,
               grad_norm: dict[str, float], time: float, steps: int = 0,
               lr: float | None = None, **extra: Any) -> dict:
        """Add the record of one epoch; returns it."""
        rec = {"epoch": int(epoch), "loss": float(loss),
               "val_loss": None if val_loss is None else float(val_loss),
               "grad_norm": {k: float(v) for k, v in grad_norm.items()},
               "time": float(time), "steps": int(steps),
               "lr": None if lr is None else float(lr)}
        rec.update(extra)
        self.records.append(rec)
        return rec

    def _repr_html_(self) -> str:
        """Jupyter: the epochs as a table."""
        return history_html(self)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records)

    def __getitem__(self, i: int) -> dict:
        return self.records[i]

    def _column(self, key: str) -> np.ndarray:
        return np.array([np.nan if r.get(key) is None else r[key] for r in self.records],
                        dtype=np.float64)

    @property
    def epoch(self) -> np.ndarray:
        return np.array([r["epoch"] for r in self.records], dtype=np.int64)

    @property
    def loss(self) -> np.ndarray:
        """Training loss per epoch, shape ``(n_epochs,)``."""
        return self._column("loss")

    @property
    def val_loss(self) -> np.ndarray:
        """Validation loss per epoch (NaN where there was none)."""
        return self._column("val_loss")

    @property
    def time(self) -> np.ndarray:
        """Wall time per epoch in seconds."""
        return self._column("time")

    @property
    def grad_norms(self) -> dict[str, np.ndarray]:
        """``{parameter array name: gradient norm per epoch}``."""
        names: list[str] = []
        for r in self.records:
            for k in r["grad_norm"]:
                if k not in names:
                    names.append(k)
        return {k: np.array([r["grad_norm"].get(k, np.nan) for r in self.records])
                for k in names}

    def best(self, key: str = "val_loss") -> int | None:
        """Index of the record with the lowest ``key`` (``None`` if it was never recorded)."""
        col = self._column(key)
        if not len(col) or np.all(np.isnan(col)):
            return None
        return int(np.nanargmin(col))

    def table(self, every: int = 1) -> str:
        """A plain-text table of the records (every ``every``-th row, and the last)."""
        names = list(self.grad_norms)
        head = f"{'epoch':>6} {'loss':>12} {'val_loss':>12} {'time_s':>8}"
        head += "".join(f" {'|g_' + n + '|':>10}" for n in names)
        rows = [head]
        for i, r in enumerate(self.records):
            if i % every and i != len(self.records) - 1:
                continue
            v = "" if r["val_loss"] is None else f"{r['val_loss']:.6g}"
            row = f"{r['epoch']:>6} {r['loss']:>12.6g} {v:>12} {r['time']:>8.3f}"
            row += "".join(f" {r['grad_norm'].get(n, float('nan')):>10.3g}" for n in names)
            rows.append(row)
        return "\n".join(rows)

    def to_dict(self) -> dict:
        """Plain JSON-able data (non-finite numbers become ``None``)."""
        out = []
        for r in self.records:
            rec = {}
            for k, v in r.items():
                if k == "grad_norm":
                    rec[k] = {n: _num(x) for n, x in v.items()}
                elif isinstance(v, float):
                    rec[k] = _num(v)
                else:
                    rec[k] = v
            out.append(rec)
        data: dict = {"records": out}
        if self.stop_reason is not None:
            data["stop"] = {"reason": str(self.stop_reason), "message": str(self.stop_message)}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """Rebuild from :meth:`to_dict` (``None`` losses come back as NaN)."""
        recs = []
        for r in data.get("records", []):
            rec = dict(r)
            rec["loss"] = float("nan") if rec.get("loss") is None else float(rec["loss"])
            rec["grad_norm"] = {k: float("nan") if v is None else float(v)
                                for k, v in dict(rec.get("grad_norm", {})).items()}
            recs.append(rec)
        stop = data.get("stop") if isinstance(data.get("stop"), dict) else {}
        reason = stop.get("reason")
        return cls(recs, reason if isinstance(reason, str) else None,
                   stop.get("message", "") if isinstance(stop.get("message"), str) else "")

    def __repr__(self) -> str:
        if not self.records:
            return "History(0 epochs)"
        last = self.records[-1]
        v = "" if last["val_loss"] is None else f", val_loss {last['val_loss']:.6g}"
        why = "" if self.stop_reason is None else f", {self.stop_reason}"
        return f"History({len(self)} epochs, last loss {last['loss']:.6g}{v}{why})"
