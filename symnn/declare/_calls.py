"""A wrong call of a layer class — a missing or unknown argument, one too many — is a
:class:`~symnn.errors.DeclarationError` that shows the signature, not Python's bare
``TypeError`` (walk, round 5: ``Dense(2)``, ``Conv1D(1, 2)``, ``Dense(2, 3, x=1)``).

The wrapped ``__init__`` keeps its signature (``functools.wraps``), so ``help()``,
``inspect.signature`` and the generated API reference are unchanged.

>>> from dataclasses import dataclass
>>> @refuse_bad_calls
... @dataclass(frozen=True)
... class Layer:
...     n_in: int
...     n_out: int
>>> Layer(2)
Traceback (most recent call last):
...
symnn.errors.DeclarationError: Layer(2): missing a required argument: 'n_out'; call it as \
Layer(n_in, n_out)
"""

from __future__ import annotations

import functools
import inspect

from symnn.errors import DeclarationError

__all__ = ["refuse_bad_calls"]


def refuse_bad_calls(cls: type) -> type:
    """Wrap ``cls.__init__``: arguments that do not bind to its signature raise a
    DeclarationError naming the call and the signature."""
    init = cls.__init__
    sig = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        try:
            sig.bind(self, *args, **kwargs)
        except TypeError as err:
            given = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in
                                                          kwargs.items()])
            shown = ", ".join(q.name if q.default is inspect.Parameter.empty
                              else f"{q.name}={q.default!r}"
                              for q in list(sig.parameters.values())[1:])
            raise DeclarationError(f"{cls.__name__}({given}): {err}; call it as "
                                   f"{cls.__name__}({shown})") from None
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls
