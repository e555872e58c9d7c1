"""Training data: the built-in data sets, CSV files, and the standardisation step.

Everything that reads a data file lives here, so its safety rules live in one place:

* only **regular files** are read (a FIFO, ``/dev/zero``, a directory or a symlink to
  one of them is refused before a byte is read), at most :data:`MAX_DATA_BYTES`;
* a data path written in a spec file is resolved **relative to the spec file** and may not
  leave the spec file's folder (``../../etc/passwd``, an absolute path, a symlink out)
  unless the caller allows it (``symnn train --allow-outside-data``);
* error messages name the file, line and column, never the file's *contents*.

The standardisation step (``[data] standardize = true``) is a :class:`Standardizer`: its
mean and scale are stored in a saved model and applied by its ``predict``.

Examples
--------
>>> import symnn
>>> X, y = load_data("xor", symnn.mlp([2, 2, 1]))
>>> X.shape, y.shape
((4, 2), (4, 1))
>>> s = Standardizer.fit([[1.0, 10.0], [3.0, 10.0]])
>>> s.mean, s.scale
(array([ 2., 10.]), array([1., 1.]))
>>> s.transform([[2.0, 11.0]])
array([[0., 1.]])
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from symnn.errors import DataError, SymnnError

__all__ = [
    "BUILTIN_DATA",
    "MAX_DATA_BYTES",
    "Dataset",
    "Standardizer",
    "load_data",
    "load_dataset",
    "load_features",
    "read_regular_file",
    "resolve_data_path",
]

#: Largest data file read (bytes).
MAX_DATA_BYTES = 256 << 20


# -- reading files safely -----------------------------------------------------------------

def read_regular_file(path: "str | os.PathLike[str]", max_bytes: int, what: str = "file",
                      error: type[SymnnError] = DataError) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``max_bytes``.

    The file is opened non-blocking (a FIFO does not hang the open) and checked with
    ``fstat`` on the open descriptor (no race between check and read).

    Raises
    ------
    error (DataError by default)
        Naming the path and the reason; never showing the file's contents.

    Examples
    --------
    >>> read_regular_file("/dev/zero", 10)
    Traceback (most recent call last):
    ...
    symnn.errors.DataError: /dev/zero: not a regular file (a character device); symnn reads a \
file only from a regular file
    """
    p = os.fspath(path)
    if not isinstance(p, str):
        raise error(f"{what}: expected a path, got {type(path).__name__}")
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise error(f"{p}: cannot read the {what}: {err.strerror or err}") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{p}: not a regular file ({_kind(st.st_mode)}); symnn reads a "
                        f"{what} only from a regular file")
        if st.st_size > max_bytes:
            raise error(f"{p}: the {what} is {st.st_size} bytes, more than the "
                        f"{max_bytes} symnn reads")
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as err:
        raise error(f"{p}: cannot read the {what}: {err.strerror or err}") from err
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > max_bytes:
        raise error(f"{p}: the {what} grew beyond {max_bytes} bytes while being read")
    return raw


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def resolve_data_path(source: str, base: "str | os.PathLike[str] | None",
                      allow_outside: bool = False, where: str = "[data] source") -> Path:
    """``source`` (from a spec file) resolved relative to the folder ``base``.

    Without ``allow_outside`` the resolved path (symlinks followed) must lie inside
    ``base``: a spec file from elsewhere cannot make symnn read ``/etc/passwd``.

    Raises
    ------
    DataError
        When the path leaves ``base``.

    Examples
    --------
    >>> resolve_data_path("../../etc/passwd", "/srv/specs")
    Traceback (most recent call last):
    ...
    symnn.errors.DataError: [data] source '../../etc/passwd' is outside the spec file's \
folder /srv/specs; move the data next to the spec, or allow it on the command line \
(symnn train --allow-outside-data)
    """
    if not isinstance(source, str) or not source or "\x00" in source:
        raise DataError(f"{where}: expected a file name, got {source!r}")
    folder = Path(base) if base is not None else Path.cwd()
    p = Path(source).expanduser() if allow_outside else Path(source)
    if not p.is_absolute():
        p = folder / p
    if allow_outside:
        return p
    real_base = os.path.realpath(folder)
    real = os.path.realpath(p)
    try:
        inside = os.path.commonpath([real_base, real]) == real_base
    except ValueError:  # different drives
        inside = False
    if not inside:
        raise DataError(f"{where} {source!r} is outside the spec file's folder "
                        f"{os.path.abspath(folder)}; "
                        "move the data next to the spec, or allow it on the command line "
                        "(symnn train --allow-outside-data)")
    return p


# -- preprocessing --------------------------------------------------------------------------

@dataclass(frozen=True)
class Standardizer:
    """``x ↦ (x − mean) / scale`` per input column (``[data] standardize = true``).

    Attributes
    ----------
    mean, scale : ndarray, shape (n_inputs,)
        Finite; ``scale > 0`` (a constant column keeps scale 1).
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X) -> "Standardizer":
        """The column means and standard deviations of ``X`` (n_samples, n_inputs)."""
        X = np.asarray(X, dtype=np.float64)
        sd = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(sd > 0, sd, 1.0))

    @classmethod
    def from_arrays(cls, mean, scale, n_inputs: int, where: str = "standardizer"
                    ) -> "Standardizer":
        """Validate stored arrays: float, shape ``(n_inputs,)``, finite, scale > 0."""
        out = []
        for name, a in (("mean", mean), ("scale", scale)):
            a = np.asarray(a)
            if a.dtype.kind != "f" or a.shape != (n_inputs,):
                raise DataError(f"{where}: {name} must be a float array of shape "
                                f"({n_inputs},), got {a.dtype} {a.shape}")
            a = np.array(a, dtype=np.float64)
            if not np.all(np.isfinite(a)):
                raise DataError(f"{where}: {name} holds non-finite values")
            out.append(a)
        if not np.all(out[1] > 0):
            raise DataError(f"{where}: scale must be positive")
        return cls(out[0], out[1])

    def transform(self, X) -> np.ndarray:
        """Standardised ``X`` (a new float64 array)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise DataError(f"standardize: expected X of shape (n, {self.mean.shape[0]}), "
                            f"got {X.shape}")
        return (X - self.mean) / self.scale

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Standardizer) and np.array_equal(self.mean, other.mean)
                and np.array_equal(self.scale, other.scale))

    __hash__ = None  # type: ignore[assignment]


# -- built-in data sets ---------------------------------------------------------------------

def _xor():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return X, np.array([0.0, 1.0, 1.0, 0.0]), True


def _sklearn(name: str):
    try:
        from sklearn import datasets
    except ImportError as err:
        raise DataError(f"the built-in data set {name!r} comes from scikit-learn, which is "
                        "not installed (pip install scikit-learn), or pass a CSV file") from err
    return getattr(datasets, f"load_{name}")()


def _digits():
    d = _sklearn("digits")
    return d.data / 16.0, d.target.astype(float), True


def _iris():
    d = _sklearn("iris")
    return np.asarray(d.data, dtype=float), d.target.astype(float), True


def _diabetes():
    d = _sklearn("diabetes")
    y = (d.target - d.target.mean()) / d.target.std()
    return np.asarray(d.data, dtype=float), y, False


class _Builtin(NamedTuple):
    load: Callable[[], tuple[np.ndarray, np.ndarray, bool]]
    doc: str


#: The built-in data sets (``[data] source``, ``--data``): name → loader and description.
BUILTIN_DATA: Mapping[str, _Builtin] = MappingProxyType({
    "xor": _Builtin(_xor, "4 samples × 2 inputs, labels 0/1"),
    "digits": _Builtin(_digits, "1797 × 64 pixels scaled to [0, 1], 10 classes "
                                "(scikit-learn)"),
    "iris": _Builtin(_iris, "150 × 4 raw measurements (cm), 3 classes (scikit-learn); use "
                            "[data] standardize = true"),
    "diabetes": _Builtin(_diabetes, "442 × 10 (as scikit-learn scales them), target "
                                    "standardised"),
})


# -- CSV ---------------------------------------------------------------------------------

def _csv_rows(path: str, opts: dict) -> list[list[str]]:
    delim = opts.get("delimiter", ",")
    if not isinstance(delim, str) or len(delim) != 1 or delim in "\r\n\"":
        raise DataError(f"{path}: [data] delimiter must be one character (not a quote or a "
                        f"newline), got {delim!r}")
    try:
        raw = read_regular_file(path, MAX_DATA_BYTES, "data file")
    except DataError as err:  # walk: "mnist" is no file and no built-in data set: say both
        if os.path.exists(path) or os.sep in path or "." in os.path.basename(path):
            raise
        raise DataError(f"{path}: no such file, and not a built-in data set (those are "
                        f"{', '.join(BUILTIN_DATA)})") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); save the data as UTF-8 "
                        "CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        return [r for r in reader if any(c.strip() for c in r)]
    except csv.Error as err:  # walk 7: say which line and why (a 10 MB field said "line ?")
        raise DataError(f"{path}, line {reader.line_num}: not a readable CSV file ({err}); "
                        "symnn reads CSV files of numbers") from None


def _numbers(path: str, rows: list[list[str]], first_line: int) -> np.ndarray:
    width = len(rows[0])
    data = np.empty((len(rows), width))
    for i, r in enumerate(rows):
        line = i + first_line
        if len(r) != width:
            raise DataError(f"{path}, line {line}: {len(r)} columns, expected {width}")
        for j, c in enumerate(r):
            try:
                data[i, j] = float(c)
            except ValueError:
                # the cell's text is not shown: a data file is not always the user's own
                hint = next((f"; is the delimiter {d!r}? set [data] delimiter = {d!r} in "
                             "the spec" for d in (";", "\t", "|") if d in c), "")
                if not c.strip():  # walk 6: Excel writes "1,2," rows
                    hint = "; an empty field (a trailing delimiter, or a missing value?)"
                raise DataError(f"{path}, line {line}, column {j + 1}: not a number "
                                f"({len(c.strip())} characters){hint}") from None
    if not np.all(np.isfinite(data)):  # walk 7: what the value is and what to do
        i, j = np.argwhere(~np.isfinite(data))[0]
        what = "nan" if np.isnan(data[i, j]) else "inf, or a number beyond ±1.8e308"
        raise DataError(f"{path}: data row {i + 1}, column {j + 1} is not finite ({what}); "
                        "remove or impute non-finite values first")
    return data


def _csv_table(path: str, opts: dict) -> tuple[np.ndarray, list[str] | None]:
    rows = _csv_rows(path, opts)
    if not rows:
        raise DataError(f"{path}: no data rows")
    header = None
    has_header = opts.get("header")
    if has_header is None:
        has_header = not all(_is_number(c) for c in rows[0])
    if has_header:
        header = [c.strip() for c in rows[0]]
        rows = rows[1:]
    if not rows:
        why = next((f" (taken as a header because its field {j + 1} is "
                    f"{'empty' if not c.strip() else 'not a number'})"
                    for j, c in enumerate(header) if not _is_number(c)), "")
        raise DataError(f"{path}: a header but no data rows{why}")  # walk 6: why a header
    return _numbers(path, rows, 2 if header else 1), header


def _csv(path: str, declared, opts: dict) -> tuple[np.ndarray, np.ndarray, bool]:
    data, header = _csv_table(path, opts)
    width = data.shape[1]
    n_in, n_out = declared.n_inputs, declared.n_outputs
    cols = _target_columns(path, header, width, opts.get("target"), n_in, n_out)
    if cols is None:
        raise DataError(f"{path}: {width} columns; expected {n_in} inputs followed by "
                        f"{n_out} target column(s) (or one class-label column), or name the "
                        "target with [data] target")
    feats = [j for j in range(width) if j not in cols]
    X = data[:, feats]
    y = data[:, cols]
    classes = False
    if len(cols) == 1:
        y = y[:, 0]
        classes = n_out > 1 and declared.loss.probabilities
    return X, y, classes


def _target_columns(path: str, header, width: int, target, n_in: int, n_out: int
                    ) -> list[int] | None:
    """The target columns of a table ``width`` columns wide: those ``target`` names, else
    the last ``n_out`` (when the table has ``n_in + n_out`` columns) or the last one (when
    it has ``n_in + 1``); None when the width fits neither."""
    if target is not None:
        return [_column(t, header, width, path) for t in (
            target if isinstance(target, list) else [target])]
    if n_out and width == n_in + n_out:
        return list(range(n_in, width))
    if width == n_in + 1:
        return [width - 1]
    return None


def _column(t, header, width, path) -> int:
    if isinstance(t, int):
        j = t if t >= 0 else width + t
        if not 0 <= j < width:
            raise DataError(f"{path}: target column {t} is out of range (0..{width - 1})")
        return j
    if header is None or t not in header:
        raise DataError(f"{path}: no column named {t!r}"
                        + (" (no header row)" if header is None else
                           f"; the header has {len(header)} columns"))
    return header.index(t)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- public loaders -------------------------------------------------------------------------

class Dataset(NamedTuple):
    """Inputs, targets and the preprocessing applied to the inputs (None when none)."""

    X: np.ndarray
    y: np.ndarray
    scaler: Standardizer | None


def load_dataset(source: str, declared, options: dict | None = None) -> Dataset:
    """Inputs, targets and the fitted :class:`Standardizer` (``[data] standardize``).

    ``source`` is a name in :data:`BUILTIN_DATA` or a CSV path (already resolved: see
    :func:`resolve_data_path` for paths written in a spec).  A CSV file has one row per
    sample, an optional header row, and the targets in the column(s) named by ``[data]
    target`` (default: the last column(s)).  Class labels become one-hot rows when the
    model has one output per class.

    Raises
    ------
    DataError
        When the file is not a regular file, too big, or the data do not fit the model
        (feature or target counts), hold non-numbers, or a built-in data set needs
        scikit-learn and it is missing.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"data source: expected a file name or one of "
                        f"{', '.join(BUILTIN_DATA)}, got {type(source).__name__}")
    source = os.fspath(source)
    opts = dict(options or {})
    key = source.strip().lower()
    if key in BUILTIN_DATA:
        X, y, classes = BUILTIN_DATA[key].load()
    else:
        X, y, classes = _csv(source, declared, opts)
    if X.shape[1] != declared.n_inputs:
        raise DataError(f"{source}: {X.shape[1]} input features, but {declared.name} takes "
                        f"{declared.n_inputs} inputs")
    scaler = None
    if opts.get("standardize"):
        scaler = Standardizer.fit(X)
        X = scaler.transform(X)
    y = _targets(source, y, classes or bool(opts.get("one_hot")), declared)
    return Dataset(np.ascontiguousarray(X, dtype=float), np.ascontiguousarray(y, dtype=float),
                   scaler)


def _targets(source: str, y: np.ndarray, classes: bool, declared) -> np.ndarray:
    """Targets as a (n_samples, n_outputs) array: a label column becomes one-hot rows (or
    a 0/1 column for a one-output model) when ``classes``."""
    n_out = declared.n_outputs
    if y.ndim == 1 and classes:
        labels = y.astype(np.int64)
        if not np.array_equal(labels, y) or labels.min() < 0:
            raise DataError(f"{source}: class labels must be integers ≥ 0")
        k = int(labels.max()) + 1
        if n_out == 1 and k <= 2:
            y = labels.astype(float).reshape(-1, 1)
        elif k > n_out:
            raise DataError(f"{source}: {k} classes, but {declared.name} has {n_out} "
                            "outputs; give it one output per class")
        else:
            y = np.eye(n_out)[labels]
    elif y.ndim == 1:
        y = y.reshape(-1, 1)
    if y.shape[1] != n_out:
        raise DataError(f"{source}: {y.shape[1]} target column(s), but {declared.name} has "
                        f"{n_out} outputs")
    return y


def load_data(source: str, declared, options: dict | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets for ``declared`` (:func:`load_dataset` without the scaler).

    Examples
    --------
    >>> import symnn
    >>> X, y = load_data("xor", symnn.mlp([2, 2, 1]))
    >>> X.shape, y.shape
    ((4, 2), (4, 1))
    """
    d = load_dataset(source, declared, options)
    return d.X, d.y


def load_features(source: str, n_inputs: int, n_outputs: int = 0,
                  options: dict | None = None) -> np.ndarray:
    """The input columns of a CSV file (or built-in data set) for prediction.

    A file with ``n_inputs`` columns is all inputs; with more, the target column(s) named by
    ``[data] target`` (default: the last ``n_outputs`` or the last one) are dropped.

    Examples
    --------
    >>> load_features("xor", 2).shape
    (4, 2)
    """
    source = os.fspath(source)
    opts = dict(options or {})
    key = source.strip().lower()
    if key in BUILTIN_DATA:
        X = BUILTIN_DATA[key].load()[0]
    else:
        data, header = _csv_table(source, opts)
        width = data.shape[1]
        cols: list[int] | None = []  # inputs only (the target column need not be there)
        if width != n_inputs:
            try:
                cols = _target_columns(source, header, width, opts.get("target"), n_inputs,
                                       n_outputs)
            except DataError as err:  # walk 7: "no column named 'y'" said nothing of inputs
                raise DataError(f"{err}; the model takes {n_inputs} input column(s) and "
                                f"this file has {width}: give the inputs only, or the inputs "
                                "and the target column(s) it was trained with") from None
        if cols is None:
            raise DataError(f"{source}: {width} columns; expected {n_inputs} input "
                            "columns (optionally followed by the target column(s))")
        X = data[:, [j for j in range(width) if j not in cols]]
    if X.shape[1] != n_inputs:
        raise DataError(f"{source}: {X.shape[1]} input features, but the model takes "
                        f"{n_inputs} inputs")
    return np.ascontiguousarray(X, dtype=float)


def describe_builtin() -> str:
    """One line per built-in data set (for help texts)."""
    return "\n".join(f"{k}: {v.doc}" for k, v in BUILTIN_DATA.items())
