"""``python -m symnn``: the ``symnn`` command line (see :mod:`symnn.cli`)."""

from symnn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
