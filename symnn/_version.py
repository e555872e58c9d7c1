"""The package's version, where every stage can read it (``symnn.__version__``)."""

__version__ = "0.1.0"
