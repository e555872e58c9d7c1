"""Training networks with :class:`~symnn.Dropout`: the masks ``fit`` draws, and why only
first-order optimizers train them.

* **Masks.**  A first-order fit draws a fresh Bernoulli(1 − p) mask for every mini-batch
  (each Dropout layer's columns with its own ``p``) from the fit's random generator — the
  one seeded with ``seed=`` that also shuffles — so the same seed gives the same masks and
  the same parameters.  Each step is then the exact gradient of the loss *for its mask*.
* **The epoch kernel.**  The fused epoch kernel (:mod:`symnn.train.epoch_kernel`) calls the
  loss-and-gradient kernel without masks, so a network with Dropout trains in the Python
  loop around ``model.loss_and_grad(..., mask=...)`` (``engine="auto"``; ``engine="kernel"``
  is refused with this reason).  The update step is the same compiled one.
* **Checks.**  The finite-difference checks during training (``check_every``) hold one
  mask fixed for every evaluation a check makes (:class:`FixedMask`, drawn from the fit's
  seed and the epoch), so the analytic derivatives and the differences are of the same
  function.
* **Validation loss and prediction** use no mask (``m = 1``: the expected network).
* **Second-order optimizers are refused** (:func:`check_optimizer`).  Newton, Newton-CG,
  Levenberg-Marquardt, L-BFGS and K-FAC minimise one deterministic full-batch loss: line
  searches compare losses and L-BFGS pairs gradients across iterations, which a mask
  redrawn at each evaluation makes inconsistent, while one mask fixed for the whole fit
  trains a single thinned network — neither is dropout.  A fit refuses rather than silently
  do either; train with a first-order optimizer, or without the Dropout layer.

Examples
--------
>>> import numpy as np, symnn
>>> net = symnn.Network([symnn.Dense(2, 3), "tanh", symnn.Dropout(0.5),
...                      symnn.Dense(3, 1)], loss="mse")
>>> model = net.compile()
>>> draw_masks(model, 2, np.random.default_rng(0))
array([[1., 0., 0.],
       [0., 1., 1.]])
>>> draw_masks(symnn.mlp([2, 1]).compile(), 2, np.random.default_rng(0)) is None
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from symnn.errors import ArgumentError

__all__ = ["has_dropout", "draw_masks", "FixedMask", "check_model", "check_optimizer"]


def has_dropout(model) -> bool:
    """True when ``model`` (a compiled or reference model) takes Dropout masks."""
    return int(getattr(model, "mask_width", 0) or 0) > 0


def check_model(model, seed: int, epoch: int, batch: int):
    """What a training check at ``epoch`` runs on: ``model`` itself, or, with Dropout,
    ``model`` with one mask for the ``batch`` check samples bound (:class:`FixedMask`),
    drawn from the fit's seed and the epoch (the same fit checks the same masks)."""
    if not has_dropout(model):
        return model
    rng = np.random.default_rng([int(seed), 104729, int(epoch)])
    return FixedMask(model, draw_masks(model, batch, rng))


def draw_masks(model, batch: int, rng: np.random.Generator) -> np.ndarray | None:
    """A Bernoulli(1 − p) mask ``(batch, model.mask_width)`` (None without Dropout): each
    Dropout layer's columns drawn with its own ``p``, in the order of ``M``."""
    if not has_dropout(model):
        return None
    cols = [(rng.random((batch, m.size)) >= p).astype(np.float64)
            for m, p in model.derived.meta["masks"]]
    return np.concatenate(cols, axis=1)


class FixedMask:
    """``model`` with one mask bound: ``loss``, ``loss_and_grad``, ``hvp``, ``gnvp``,
    ``hessian`` and ``reference`` pass ``mask`` (for the ``B`` rows they were drawn for);
    everything else is the model's own.  What a finite-difference check of a network with
    Dropout runs on, so that every evaluation sees the same function."""

    def __init__(self, model, mask: np.ndarray) -> None:
        self._model = model
        self._mask = mask

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    @property
    def reference(self):
        ref = getattr(self._model, "reference", None)
        return None if ref is None else FixedMask(ref, self._mask)

    def loss(self, theta, X, y):
        return self._model.loss(theta, X, y, mask=self._mask)

    def loss_and_grad(self, theta, X, y):
        return self._model.loss_and_grad(theta, X, y, mask=self._mask)

    def hvp(self, theta, v, X, y):
        return self._model.hvp(theta, v, X, y, mask=self._mask)

    def gnvp(self, theta, v, X, y):
        return self._model.gnvp(theta, v, X, y, mask=self._mask)

    def hessian(self, theta, X, y):
        return self._model.hessian(theta, X, y, mask=self._mask)

    def _env(self, theta, X, Y=None, mask=None):
        """A reference model's inputs at the bound mask (``gnvcheck`` evaluates the
        reference's programs on them)."""
        return self._model._env(theta, X, Y, self._mask)


def check_optimizer(model, opt, second_order: bool) -> None:
    """ArgumentError when ``opt`` is a second-order optimizer (``second_order``) and
    ``model`` has Dropout (see the module docstring for why)."""
    if has_dropout(model) and second_order:
        raise ArgumentError(
            f"fit: {type(opt).__name__} is a second-order, full-batch optimizer, and "
            f"{model.name!r} has Dropout: its line searches and curvature estimates need one "
            "fixed loss, which a dropout mask redrawn at every evaluation is not (and one mask "
            "fixed for the whole fit would train a single thinned network, not dropout). "
            "Train it with a first-order optimizer (SGD, Momentum, Adam, …), or remove the "
            "Dropout layers (mask=None computes that network)")
