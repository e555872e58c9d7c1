"""Spec files (TOML) and the whitelist expression parser.

``load_spec(path)`` reads a network or custom-model spec without executing anything from it;
``parse_expression(text, symbols)`` turns expression text into SymPy through a whitelist
tokenizer and parser (never ``eval`` / ``sympify``).  See ``docs/spec-format.md``.

Examples
--------
>>> import symnn.spec
>>> symnn.spec.loads_spec('[network]\\nlayers = [2, 2, 1]\\n').declared
Network([Dense(2, 2), 'tanh', Dense(2, 1)], loss='mse')
"""

from symnn.spec.loader import BUILTIN_DATA, SECTION_KEYS, Spec, dumps_toml, load_spec, loads_spec
from symnn.spec.parser import ALLOWED, CONSTANTS, Function, parse_expression

__all__ = [
    "ALLOWED",
    "BUILTIN_DATA",
    "CONSTANTS",
    "SECTION_KEYS",
    "Function",
    "Spec",
    "dumps_toml",
    "load_spec",
    "loads_spec",
    "parse_expression",
]
