"""The rule structure of a first-order optimizer, memoised (issue 16: ``fit``'s fixed cost).

:meth:`symnn.train.Optimizer.structure` names the compiled update's code: the optimizer's
type, its state, its hyperparameter symbols and the SymPy ``srepr`` of every rule.  Building
it re-derives the rules (a few milliseconds of SymPy), and :func:`symnn.train.fit` needs it
twice per call (the compiled update's key and the compiled epoch's key).

The memo is keyed by what determines the rules: the optimizer's class, its state symbols
and a snapshot of its attribute values (its schedule's too, by class and values).  Changing
an attribute (``opt.clip_norm = 1.0``) changes the key, so the structure is derived afresh.
Only symnn's own optimizer and schedule classes are memoised — their rules are a function of
exactly those values; a user's subclass (whose rules may read anything) is derived every
time, as before.

Examples
--------
>>> from symnn.train import Adam
>>> a, b = Adam(lr=0.1), Adam(lr=0.2)
>>> structure(a) == structure(b) == derive(a)   # values travel at run time, not in code
True
>>> structure(Adam(lr=0.1, clip_norm=1.0)) == structure(a)
False
"""

from __future__ import annotations

from typing import Any

import sympy as sp

__all__ = ["structure", "derive", "memo_key"]

#: The modules whose classes' rules depend only on their attribute values.
_OWN = ("symnn.train.optimizers", "symnn.train.schedules")
#: Most structures remembered (a sweep over many learning rates makes one entry each).
_MAX = 256
_MEMO: dict = {}


class _Unkeyable(Exception):
    """An attribute value the memo cannot snapshot (the structure is then derived)."""


def _snapshot(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    if isinstance(value, tuple) and depth < 4:
        return tuple(_snapshot(v, depth + 1) for v in value)
    if type(value).__module__ in _OWN and depth < 4:
        return (type(value), tuple(sorted((k, _snapshot(v, depth + 1))
                                          for k, v in vars(value).items())))
    raise _Unkeyable


def memo_key(opt: Any) -> tuple | None:
    """The memo key of ``opt``, or None when its structure must be derived each time."""
    if type(opt).__module__ not in _OWN:
        return None
    try:
        state = tuple((s.prev.name, s.new.name) for s in opt.state)
        return _snapshot(opt) + (state,)
    except (_Unkeyable, AttributeError, TypeError):
        return None


def derive(opt: Any) -> str:
    """The structure text, derived from the rules (no memo)."""
    parts = [type(opt).__name__, ",".join(s.prev.name for s in opt.state),
             ",".join(h.symbol.name for h in opt.hypers())]
    for r in opt.rules():
        parts.append(f"{r.target.name}:{r.kind}:{sp.srepr(r.evaluated())}")
    return "\n".join(parts)


def structure(opt: Any) -> str:
    """:func:`derive` of ``opt``, memoised by :func:`memo_key`."""
    key = memo_key(opt)
    if key is None:
        return derive(opt)
    try:
        hit = _MEMO.get(key)
    except TypeError:  # an unhashable value slipped into the snapshot
        return derive(opt)
    if hit is None:
        hit = derive(opt)
        if len(_MEMO) >= _MAX:
            _MEMO.clear()
        _MEMO[key] = hit
    return hit
