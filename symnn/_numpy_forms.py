"""The NumPy form of each of symnn's own SymPy functions, under the function's own name.

:func:`symnn.functions._rebuild` keeps this module's namespace equal to
:data:`symnn.functions.NUMPY_IMPLS`.  ``SymnnFunction._numpycode`` prints a call such as
``sigmoid(z)`` and registers this module as where the name comes from, so a plain
``sympy.lambdify(args, expr)`` of an expanded form imports it itself, while a ``modules``
mapping that names the function (a torch witness, say) still takes precedence.

Examples
--------
>>> import sympy as sp, symnn
>>> z = sp.Symbol("z", real=True)
>>> float(sp.lambdify([z], symnn.functions.sigmoid(z))(0.0))
0.5
"""
