"""The convenience methods' implementations, registered from the top of the package.

``net.gradient()``, ``net.equations()``, ``net.compile()`` (:class:`symnn.Network`,
:class:`symnn.Model`) and ``model.fit()`` (:class:`~symnn.codegen.model.CompiledModel`)
are methods of early stages that later stages carry out.  The early classes call
:func:`symnn._later.later`; this module — imported by ``symnn/__init__.py``, the one place
that sits above every stage — registers what each name does.  Each implementation imports
its stage when first called, so ``import symnn`` loads neither Numba nor the trainer.

Examples
--------
>>> import symnn
>>> net = symnn.mlp([1, 1], loss="mse")
>>> net.loss_expr() == expanded_loss(net)
True
"""

from __future__ import annotations

from typing import Any

from symnn._later import provide

__all__ = ["derive", "expanded_gradient", "expanded_loss", "expanded_hessian",
           "expanded_jacobian", "equations_of", "declared_html", "compile_model", "fit",
           "fit_over_workers"]


# -- derive (Declared.program, .gradient, .loss_expr, .hessian, .jacobian) -----------------
@provide("derive")
def derive(declared):
    """:func:`symnn.derive.derive`."""
    from symnn.derive import derive

    return derive(declared)


@provide("expanded_gradient")
def expanded_gradient(declared, **options):
    """:func:`symnn.derive.expanded.expanded_gradient`."""
    from symnn.derive.expanded import expanded_gradient

    return expanded_gradient(declared, **options)


@provide("expanded_loss")
def expanded_loss(declared, **options):
    """:func:`symnn.derive.expanded.expanded_loss`."""
    from symnn.derive.expanded import expanded_loss

    return expanded_loss(declared, **options)


@provide("expanded_hessian")
def expanded_hessian(declared, **options):
    """:func:`symnn.derive.expanded.expanded_hessian`."""
    from symnn.derive.expanded import expanded_hessian

    return expanded_hessian(declared, **options)


@provide("expanded_jacobian")
def expanded_jacobian(declared, **options):
    """:func:`symnn.derive.expanded.expanded_jacobian`."""
    from symnn.derive.expanded import expanded_jacobian

    return expanded_jacobian(declared, **options)


# -- print (Declared.equations, Declared._repr_html_) ---------------------------------------
@provide("equations_of")
def equations_of(declared):
    """:func:`symnn.printing.equations.equations_of`."""
    from symnn.printing.equations import equations_of

    return equations_of(declared)


@provide("declared_html")
def declared_html(declared) -> str:
    """:func:`symnn.printing.html.declared_html`."""
    from symnn.printing.html import declared_html

    return declared_html(declared)


# -- compile (Declared.compile) ------------------------------------------------------------
@provide("compile_model")
def compile_model(declared, dtype: Any = "float64", **options):
    """:func:`symnn.codegen.model.compile_model`."""
    from symnn.codegen.model import compile_model

    return compile_model(declared, dtype=dtype, **options)


# -- train (CompiledModel.fit) -------------------------------------------------------------
@provide("fit")
def fit(model, X, y, optimizer: Any = "adam", **options):
    """:func:`symnn.train.fit`."""
    from symnn.train.loop import check_option_names, fit

    check_option_names(options)  # walk 7
    return fit(model, X, y, optimizer, **options)


# -- distributed (symnn.train.fit(..., client=…)) -------------------------------------------
@provide("fit_over_workers")
def fit_over_workers(model, X, y, opt, **options):
    """:func:`symnn.distributed.training.fit_over_workers`."""
    from symnn.distributed.training import fit_over_workers

    return fit_over_workers(model, X, y, opt, **options)
