"""The per-step program of a network whose RNN layers loop over time.

The per-sample analyses (per-sample gradients, diagonal GGN, Fisher, K-FAC) read each
parameter's gradient as a batch mean of per-sample factors, one per time step for a
recurrent weight.  An RNN looped over time (:mod:`symnn.ops.scan`) sums its steps inside
one op, so these analyses interpret the same declaration written unrolled: the parameters,
their layout and every number are the same (the looped and unrolled programs agree to
rounding, ``tests/test_scan.py``), only the program lists the steps.  An RNN longer than
the unrolled limit stays looped, and the analyses that need the steps say so.
"""

from __future__ import annotations

from dataclasses import replace

__all__ = ["unrolled_twin"]


def _unrolled_layer(layer):
    from symnn.declare.recurrent import GRU, MAX_UNROLLED_STEPS, RNN

    if (isinstance(layer, (RNN, GRU)) and layer.looped and layer.length is not None
            and layer.length <= MAX_UNROLLED_STEPS):
        return replace(layer, unroll=True)  # walk: a GRU too (unroll=None kept T > 16 looped)
    return layer


def unrolled_twin(derived):
    """``derived``, or the derivation of its declaration with every looped RNN unrolled.

    Returned only when the twin has the same parameters (names, shapes, order); the twin
    is kept on the derivation so it is derived once.

    Examples
    --------
    >>> import symnn
    >>> from symnn.derive import derive
    >>> net = symnn.Network([symnn.RNN(2, 3, length=20), symnn.Dense(3, 1)])
    >>> d = derive(net)
    >>> twin = unrolled_twin(d)
    >>> twin is d, [p.name for p in twin.params] == [p.name for p in d.params]
    (False, True)
    """
    from symnn.declare.network import Network
    from symnn.derive import derive

    cached = getattr(derived, "_unrolled_twin", None)
    if cached is not None:
        return cached
    declared = derived.declared
    twin = derived
    if isinstance(declared, Network):
        layers = [_unrolled_layer(la) for la in declared.layers]
        if any(a is not b for a, b in zip(layers, declared.layers)):
            d = derive(Network(layers, loss=declared.loss, penalties=declared.penalties,
                               name=declared.name))
            if ([(p.name, p.shape) for p in d.params]
                    == [(p.name, p.shape) for p in derived.params]):
                twin = d
    try:
        derived._unrolled_twin = twin
    except AttributeError:  # pragma: no cover - a derivation without a __dict__
        pass
    return twin
