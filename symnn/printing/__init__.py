"""Printing: equations as Unicode text, LaTeX and Markdown."""
from symnn.printing.equations import Equation, Equations, equations_of

__all__ = ["Equation", "Equations", "equations_of"]
