"""Methods of an early stage that a later stage carries out.

Imports go one way, down the stages: declare → derive → print → compile → train.  Yet the
convenience methods sit on the early objects — ``net.gradient()`` on a declared network
(stage 3) is computed by :mod:`symnn.derive`, ``model.fit()`` on a compiled model
(stage 6) by :mod:`symnn.train`.  Such a method calls ``later(name)(…)``; the package's
top level, :mod:`symnn._api`, registers each name's implementation with :func:`provide`.
``symnn/__init__.py`` imports :mod:`symnn._api`, and Python runs a package's
``__init__`` before any of its modules, so the implementations are registered before any
early object can exist.

Examples
--------
>>> import symnn
>>> later("compile_model").__module__
'symnn._api'
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["later", "provide"]

_LATER: dict[str, Callable[..., Any]] = {}


def provide(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the implementation of ``later(name)``."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        _LATER[name] = func
        return func

    return register


def later(name: str) -> Callable[..., Any]:
    """The implementation a later stage registered under ``name``."""
    return _LATER[name]
