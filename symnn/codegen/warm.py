"""Compiled models straight from a stored spec: no SymPy, no derivation, when cached.

:func:`compile_spec` is what :func:`symnn.load_compiled` calls with a model file's spec.
Its kernels are looked up in the declaration index (:mod:`symnn.codegen.declcache`) under
the spec's own key; on a hit the :class:`~symnn.codegen.model.CompiledModel` is built from
the index entry alone and its declaration is rebuilt only when something asks for it
(``model.declared``, ``model.derived``, ``model.reference``, ``model.init``).  On a miss
the declaration is rebuilt, compiled as usual, and — when it is indexable — recorded under
the spec's key, so the next process starts warm.

Examples
--------
>>> import symnn
>>> net = symnn.mlp([2, 3, 1], activation="tanh")
>>> model = compile_spec(net.spec(), "float64", lambda: net)
>>> model.n_params
13
"""

from __future__ import annotations

from typing import Any, Callable

from symnn.codegen import _validate as V
from symnn.codegen import declcache
from symnn.codegen.cache import load_module
from symnn.codegen.model import CompiledModel, compile_model, poison_enabled

__all__ = ["compile_spec"]


def compile_spec(spec: Any, dtype: Any, rebuild: Callable[[], Any], *, cache_dir=None,
                 debug: bool | None = None, aot: bool | None = None) -> CompiledModel:
    """The compiled model of a stored spec.

    Parameters
    ----------
    spec : dict
        Plain data (a model file's ``spec``), already validated by its reader.
    dtype : "float64" or "float32"
    rebuild : callable
        Returns the declaration the spec describes (called on a miss, or on first use of
        ``model.declared`` after a hit).
    cache_dir : path, optional
    debug : bool, optional
        As :func:`~symnn.codegen.model.compile_model`.
    aot : bool, optional
        Ahead-of-time kernels (:mod:`symnn.codegen.aot`): None uses them when they are in
        the cache and else builds them in the background for later processes
        (:mod:`symnn.codegen._aotauto`), True builds them now when they are not, False
        never uses them.
    """
    dt = V.as_dtype(dtype)
    if debug is None:
        debug = poison_enabled()
    skey = declcache.spec_key(spec, dt.name)
    hit = declcache.lookup(skey, cache_dir)
    if hit is not None and isinstance(hit[2].get("declared"), dict):
        key, generated, layout = hit
        module = load_module(generated.source, key, cache_dir=cache_dir)
        if str(getattr(module, "__file__", "")).endswith(".py"):  # not compiled in memory
            model = CompiledModel(None, None, generated, module, dt, debug=debug,
                                  layout=layout, rebuild=rebuild)
            model._module_key = key
            _attach(model, cache_dir, aot)
            return model
    declared = rebuild()
    model = compile_model(declared, dtype=dt, cache_dir=cache_dir, debug=debug)
    if (skey is not None and declcache.declaration_key(declared, dt.name) is not None
            and str(getattr(model.module, "__file__", "")).endswith(".py")):
        layout = {"param_shapes": [[n, list(s)] for n, s in model.param_shapes],
                  "n_inputs": model.n_inputs, "n_outputs": model.n_outputs,
                  "declared": {"name": model.name, "input_shape": list(model.input_shape),
                               "loss_name": model.loss_name,
                               "probabilities": model._probabilities}}
        declcache.store(skey, model._module_key, model.generated, layout, cache_dir)
    _attach(model, cache_dir, aot)
    return model


def _attach(model: CompiledModel, cache_dir, aot: bool | None) -> None:
    """The model's ahead-of-time kernels, as ``aot`` says (only for a model whose kernels
    are a cached file: one compiled in memory has no stable key)."""
    if aot is False or not str(getattr(model.module, "__file__", "")).endswith(".py"):
        return
    from symnn.codegen import aot as A

    A.attach(model, cache_dir, build=None if aot is None else bool(aot))
