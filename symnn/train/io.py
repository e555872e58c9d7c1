"""Save and load trained models: ``.npz`` arrays plus JSON metadata, never pickle.

A model file is a NumPy ``.npz`` archive (``numpy.savez``) holding two arrays:

* ``theta`` — the flat parameter vector, in the model's dtype;
* ``meta`` — UTF-8 JSON as ``uint8`` bytes: the format name and version, the symnn
  version, the network's spec (:meth:`symnn.Network.spec`; for custom models and custom
  activations the expressions as a structured tree, below), the dtype and parameter
  layout, the training history, user metadata, and a SHA-256 over all of it and the bytes
  of ``theta``.

Loading never executes anything: the archive is read with ``allow_pickle=False``, the JSON
with :mod:`json`, and the network is rebuilt from plain data.  SymPy expressions (a custom
:class:`~symnn.Model`'s outputs, a custom activation's body) are stored as a tree of node
names and arguments, walked from the expression; on load each node is rebuilt by the SymPy
constructor a fixed whitelist (:data:`NODES`) names — no ``sympify``, ``eval`` or
``srepr`` parsing (:mod:`symnn.train.exprdata`; the spec part is
:mod:`symnn.train.modelspec`).  An expression that would not come back identical is refused at save
time.

A model trained on standardised inputs (``[data] standardize = true``) also stores its
preprocessing: two more arrays, ``x_mean`` and ``x_scale`` (float64, one entry per input),
covered by the checksum and validated on load; :meth:`SavedModel.predict` applies them.
Such a file has format version 2 (an older symnn refuses it rather than predicting from
unscaled inputs).

A model file is not trusted.  Before anything is decompressed or parsed, :func:`load`
checks that the path is a regular file (not a FIFO, a device or a symlink to one) of at
most :data:`MAX_MODEL_BYTES`, that the archive holds only the known members, each no
larger than its bound, and that every ``.npy`` header declares a plain numeric dtype and a
shape whose size matches the member's length — so a zip bomb, a sparse 8 GB file or a
header declaring 10¹⁵ elements is refused in milliseconds.  Numbers and expression trees
are bounded too (digits, exponents, depth, node and argument counts) *before* SymPy
evaluates anything.

Files are written atomically (a temporary file in the same directory, then
:func:`os.replace`), so a crash never leaves half a file under the final name.  A file that
is truncated, not a symnn model, modified (checksum mismatch), missing keys or holding
arrays of the wrong shape or dtype raises :class:`~symnn.errors.ModelFileError` saying
which.  The checksum detects damage and accidental edits; it is not a signature — anyone
who can write the file can recompute it.

Examples
--------
>>> import os, tempfile, numpy as np, symnn
>>> from symnn.train.io import save, load
>>> net = symnn.mlp([2, 3, 1], activation="tanh")
>>> theta = np.arange(13, dtype=float) / 10
>>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
>>> save(path, net, theta, metadata={"note": "demo"})
>>> declared, params, history = load(path)
>>> declared
Network([Dense(2, 3), 'tanh', Dense(3, 1)], loss='mse')
>>> bool(np.array_equal(params, theta)), load(path).metadata["note"]
(True, 'demo')
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import os
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from symnn._atomic import atomic_path
from symnn.errors import ArgumentError, ModelFileError, SymnnError

if TYPE_CHECKING:  # loaded lazily at run time (below); named here for ruff and type checkers
    from symnn.train.exprdata import NODES, expr_from_data, expr_to_data  # noqa: F401
    from symnn.train.history import History

# The expression trees, the history and the spec reader load on first use: reading and
# checking a file (load_compiled on a warm cache) needs neither SymPy nor the declarations.
_FROM_EXPRDATA = ("NODES", "expr_from_data", "expr_to_data")


def __getattr__(name: str) -> Any:
    """``NODES``, ``expr_to_data``, ``expr_from_data`` (:mod:`symnn.train.exprdata`)."""
    if name in _FROM_EXPRDATA:
        from symnn.train import exprdata

        return getattr(exprdata, name)
    raise AttributeError(f"module 'symnn.train.io' has no attribute {name!r}")

__all__ = ["save", "load", "load_compiled", "SavedModel", "expr_to_data", "expr_from_data", "NODES",
           "FORMAT", "FORMAT_VERSION"]

FORMAT = "symnn-model"
#: The newest format version this symnn reads (2: with a stored preprocessing step).
FORMAT_VERSION = 2

#: Largest model file read (bytes), largest ``meta`` member (bytes).
MAX_MODEL_BYTES = 512 << 20
MAX_META_BYTES = 16 << 20
#: The members a model file may hold.
MEMBERS = ("theta", "meta", "x_mean", "x_scale")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("symnn")
    except Exception:  # pragma: no cover - not installed as a distribution
        from symnn._version import __version__

        return __version__


# ------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------


def _digest(meta: dict, theta: np.ndarray, arrays: dict | None = None) -> str:
    body = {k: v for k, v in meta.items() if k != "sha256"}
    h = hashlib.sha256()
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    h.update(text.encode("utf-8"))
    h.update(theta.dtype.str.encode("ascii"))
    h.update(repr(theta.shape).encode("ascii"))
    h.update(np.ascontiguousarray(theta).tobytes())
    for name in ("x_mean", "x_scale"):  # version 1 files have neither
        if arrays and name in arrays:
            a = np.ascontiguousarray(arrays[name])
            h.update(f"{name}:{a.dtype.str}:{a.shape!r}".encode("ascii"))
            h.update(a.tobytes())
    return h.hexdigest()


def save(path: "str | os.PathLike", model: Any, theta, history: History | None = None,
         metadata: dict | None = None, scaler: Any = None) -> None:
    """Write a model file (atomically).

    Parameters
    ----------
    path : path
        Where to write (``.npz`` recommended; the name is used as given).
    model : CompiledModel, Network or Model
    theta : array, shape (P,)
        Stored in the compiled model's dtype (float64 for a declared network unless
        ``theta`` is float32).
    history : History, optional
        Also accepts a :class:`~symnn.train.FitResult`'s history.
    metadata : dict, optional
        JSON-able user data (strings, numbers, lists, dicts).
    scaler : symnn.data.Standardizer, optional
        The standardisation the inputs went through in training; stored as the arrays
        ``x_mean`` and ``x_scale`` and applied by :meth:`SavedModel.predict`.

    Raises
    ------
    ModelFileError
        When the model cannot be stored (an unregistered loss or activation, an expression
        node outside :data:`NODES`), ``metadata`` is not JSON-able, or the file cannot be
        written (the message names ``path``).
    ShapeError
        When ``theta`` does not fit the model.
    """

    # walk: a None path or a string model were raw TypeError / AttributeError
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise ArgumentError(f"save: expected the path of the model file (str or Path), got "
                            f"{type(path).__name__}")
    declared = getattr(model, "declared", model)
    if not hasattr(declared, "n_params") or not hasattr(declared, "param_shapes"):
        hint = ("; for a fitted symnn scikit-learn estimator est, save(path, est.model_, "
                "est.params_) (or pickle est)" if hasattr(model, "params_") else "")  # walk 6
        raise ArgumentError(f"save: model must be a compiled model, a Network or a Model, got "
                            f"{type(model).__name__}{hint}")
    theta, dt = _theta_to_save(model, declared, theta)
    if not np.all(np.isfinite(theta)):  # walk: it loaded, then every predict failed
        i = int(np.flatnonzero(~np.isfinite(theta))[0])
        raise ModelFileError(f"save: theta holds {theta[i]} at index {i}; a model file "
                             "stores finite parameters (after a diverged fit, save "
                             "err.params of the TrainingError: the last finite ones)")
    from symnn.train.history import History
    from symnn.train.modelspec import spec_of

    if history is not None and not isinstance(history, History):
        history = getattr(history, "history", history)
        if not isinstance(history, History):
            raise ArgumentError(f"save: history must be a symnn History, got {type(history)}")
    arrays = {"theta": theta}
    if scaler is not None:
        arrays["x_mean"], arrays["x_scale"] = _scaler_arrays(scaler, declared)
    meta = {
        "format": FORMAT,
        "format_version": 2 if scaler is not None else 1,
        "symnn_version": _version(),
        "spec": spec_of(declared),
        "dtype": dt.name,
        "n_params": int(declared.n_params),
        "param_shapes": [[n, list(s)] for n, s in declared.param_shapes],
        "history": history.to_dict() if history is not None else None,
        "metadata": metadata,
    }
    if scaler is not None:
        meta["preprocessing"] = {"kind": "standardize", "arrays": ["x_mean", "x_scale"]}
    text = _meta_text(meta, theta, arrays)
    blob = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    target = os.fspath(path)
    try:
        with atomic_path(target, user=True) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, meta=blob, **arrays)
    except OSError as err:
        raise ModelFileError(f"{target}: cannot write the model file: "
                             f"{err.strerror or err}") from err


def _dumps(meta: dict, theta: np.ndarray, arrays: dict) -> str:
    try:
        meta["sha256"] = _digest(meta, theta, arrays)
        return json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"save: metadata must be JSON-able (strings, finite numbers, "
                             f"lists, dicts): {err}") from err


def _meta_text(meta: dict, theta: np.ndarray, arrays: dict) -> str:
    """The ``meta`` member as JSON, no longer than :func:`load` reads (walk: a long fit's
    history — 80,000 epochs of XOR — made a file ``load`` refused): a history that does not
    fit keeps every k-th epoch (and the last), with a warning; metadata too big is refused
    before anything is written."""
    text = _dumps(meta, theta, arrays)
    hist = meta.get("history")
    records = hist.get("records", []) if isinstance(hist, dict) else []
    k = 1
    while len(text.encode("utf-8")) > MAX_META_BYTES and records and k < 2 * len(records):
        k *= 2
        kept = records[::k] + ([records[-1]] if (len(records) - 1) % k else [])
        meta["history"] = dict(hist, records=kept)
        text = _dumps(meta, theta, arrays)
    if len(text.encode("utf-8")) > MAX_META_BYTES:
        raise ModelFileError(f"save: the model's metadata is {len(text.encode('utf-8'))} bytes "
                             f"as JSON, more than the {MAX_META_BYTES} load reads "
                             "(symnn.train.io.MAX_META_BYTES); store less metadata")
    if k > 1:
        import warnings

        from symnn.errors import SymnnWarning

        warnings.warn(f"save: the training history ({len(records)} epochs) is too long for a "
                      f"model file; it keeps one epoch in {k} and the last "
                      f"({len(meta['history']['records'])} records); save the full History "
                      "elsewhere (History.to_dict) if you need every epoch", SymnnWarning,
                      stacklevel=3)
    return text


def _theta_to_save(model, declared, theta) -> tuple[np.ndarray, np.dtype]:
    """θ in the dtype it is stored in (the compiled model's; else float32 stays float32),
    its shape checked."""
    from symnn.errors import ShapeError

    if hasattr(model, "dtype") and hasattr(model, "kernels"):
        dt = np.dtype(model.dtype)
    else:
        arr = np.asarray(theta)
        dt = arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    theta = np.ascontiguousarray(np.asarray(theta), dtype=dt)
    if theta.ndim != 1 or theta.shape[0] != declared.n_params:
        raise ShapeError(f"save: theta has shape {theta.shape}; {declared!r} takes "
                         f"({declared.n_params},)")
    return theta, dt


def _scaler_arrays(scaler, declared) -> tuple[np.ndarray, np.ndarray]:
    from symnn.data import Standardizer

    if not isinstance(scaler, Standardizer):
        raise ModelFileError(f"save: scaler must be a symnn.data.Standardizer, got "
                             f"{type(scaler).__name__}")
    try:
        scaler = Standardizer.from_arrays(scaler.mean, scaler.scale, declared.n_inputs,
                                          "save: scaler")
    except SymnnError as err:
        raise ModelFileError(str(err)) from err
    return scaler.mean, scaler.scale


class SavedModel(tuple):
    """What :func:`load` returns: the tuple ``(declared, params, history)``.

    Attributes
    ----------
    declared : Network or Model
    params : ndarray, shape (P,)
    history : History or None
    metadata : dict or None
        The user metadata given to :func:`save`.
    dtype : numpy.dtype
    info : dict
        The file's format, symnn version and checksum.
    scaler : symnn.data.Standardizer or None
        The inputs' standardisation in training (applied by :meth:`predict`).
    """

    def __new__(cls, declared, params, history, metadata, dtype, info, scaler=None):
        self = super().__new__(cls, (declared, params, history))
        self.metadata = metadata
        self.dtype = dtype
        self.info = info
        self.scaler = scaler
        self._compiled = None
        return self

    @property
    def declared(self):
        return self[0]

    @property
    def params(self) -> np.ndarray:
        return self[1]

    @property
    def history(self) -> History | None:
        return self[2]

    def compile(self, **options):
        """Compile the network in the stored dtype."""
        return self.declared.compile(dtype=self.dtype, **options)

    def preprocess(self, X) -> np.ndarray:
        """``X`` (n_samples, n_inputs) as the network saw it in training (standardised
        with the stored mean and scale, when the model has them)."""
        from symnn.codegen._validate import _numeric  # walk 7: strings, dates, complex

        X = np.asarray(_numeric(X, "X"), dtype=np.float64)
        return X if self.scaler is None else self.scaler.transform(X)

    def predict(self, X) -> np.ndarray:
        """The outputs for raw inputs ``X`` (n_samples, n_inputs): the stored
        preprocessing, then the network at the stored parameters; shape
        (n_samples, n_outputs)."""
        if self._compiled is None:
            self._compiled = self.compile()
        out = self._compiled.predict(self.params, self.preprocess(X))
        return np.asarray(out).reshape(np.shape(X)[0], -1)


def _fail(target: str, message: str) -> ModelFileError:
    return ModelFileError(f"{target}: {message}")


def _read_npy(target: str, name: str, data: bytes, kinds: str) -> np.ndarray:
    """A ``.npy`` member from bytes: header checked against the length before anything is
    allocated; plain numeric dtypes of the given kinds only."""
    from numpy.lib import format as npf

    fp = _io.BytesIO(data)
    try:
        version = npf.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npf.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, SyntaxError, TypeError, EOFError, OverflowError) as err:
        raise _fail(target, f"the {name!r} array has a malformed header: {err}") from err
    if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None \
            or dtype.subdtype is not None:
        raise _fail(target, f"the {name!r} array has dtype {dtype}, which a symnn model file "
                            "never holds")
    count = 1
    for n in shape:
        count *= int(n)
    offset = fp.tell()
    if count * dtype.itemsize != len(data) - offset:
        raise _fail(target, f"the {name!r} array's header declares shape {shape} "
                            f"({count * dtype.itemsize} bytes) but the member holds "
                            f"{len(data) - offset} bytes")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C")


def _read_members(target: str) -> dict[str, np.ndarray]:
    from symnn.data import read_regular_file

    raw = read_regular_file(target, MAX_MODEL_BYTES, "model file", ModelFileError)
    try:
        zf = zipfile.ZipFile(_io.BytesIO(raw))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as err:
        raise _fail(target, f"not a symnn model file, or truncated/damaged: "
                            f"{type(err).__name__}: {err}") from err
    if len(infos) > len(MEMBERS):
        raise _fail(target, f"not a symnn model file: {len(infos)} members (a model file "
                            f"holds at most {len(MEMBERS)})")
    out: dict[str, np.ndarray] = {}
    with zf:
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name not in MEMBERS:
                raise _fail(target, f"not a symnn model file: unexpected member "
                                    f"{info.filename[:60]!r}")
            if name in out:
                raise _fail(target, f"the member {name!r} appears twice")
            limit = MAX_META_BYTES if name == "meta" else MAX_MODEL_BYTES
            if info.file_size > limit:
                raise _fail(target, f"the member {name!r} declares {info.file_size} bytes "
                                    f"uncompressed (limit {limit})")
            try:
                with zf.open(info) as fh:
                    data = fh.read(info.file_size + 1)
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError,
                    RuntimeError) as err:
                raise _fail(target, f"the member {name!r} is damaged: "
                                    f"{type(err).__name__}: {err}") from err
            if len(data) != info.file_size:
                raise _fail(target, f"the member {name!r} does not have its declared size")
            out[name] = _read_npy(target, name, data, "u" if name == "meta" else "f")
    missing = {"theta", "meta"} - set(out)
    if missing:
        raise _fail(target, f"not a complete symnn model file: missing array(s) "
                            f"{sorted(missing)} (found {sorted(out)})")
    return out


def _history(target: str, data: Any) -> History:
    """A History from stored data, every field type-checked (malformed is an error)."""
    from symnn.train.history import History

    def bad(why: str) -> ModelFileError:
        return _fail(target, f"the stored history is malformed: {why}")

    def number(v: Any) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    if not isinstance(data, dict) or "records" not in data or not set(data) <= {"records",
                                                                              "stop"}:
        raise bad("expected {\"records\": [...]}")
    stop = data.get("stop", {})
    if not isinstance(stop, dict) or not all(
            k in ("reason", "message") and isinstance(v, str) for k, v in stop.items()):
        raise bad("stop must be {\"reason\": str, \"message\": str}")
    records = data["records"]
    if not isinstance(records, list):
        raise bad("records is not a list")
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise bad(f"record {i} is not a table")
        if not isinstance(r.get("epoch"), int) or isinstance(r.get("epoch"), bool):
            raise bad(f"record {i} has no integer epoch")
        if "loss" not in r or not number(r["loss"]):
            raise bad(f"record {i} has no loss")
        gn = r.get("grad_norm", {})
        if not isinstance(gn, dict) or not all(
                isinstance(k, str) and number(v) for k, v in gn.items()):
            raise bad(f"record {i}: malformed grad_norm")
        for k, v in r.items():
            if k != "grad_norm" and not (number(v) or isinstance(v, (str, bool))):
                raise bad(f"record {i}: field {k[:40]!r} is not a number")
    try:
        return History.from_dict(data)
    except (TypeError, ValueError, AttributeError, KeyError) as err:
        raise bad(str(err)) from err


def load(path: "str | os.PathLike") -> SavedModel:
    """Read a model file written by :func:`save`.

    Returns
    -------
    SavedModel
        Unpacks as ``declared, params, history``; also ``.metadata``, ``.dtype``,
        ``.scaler``, ``.compile()`` and ``.predict(X)`` (with the stored preprocessing).

    Raises
    ------
    ModelFileError
        The path is not a regular file or too big; the file is truncated, not a symnn
        model, modified (checksum mismatch), missing keys, holds unexpected members or
        arrays whose headers do not match their size, or its arrays do not fit the stored
        network.
    """
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise ArgumentError(f"load: expected the path of a model file (str or Path), got "
                            f"{type(path).__name__}")
    target = os.fspath(path)
    arrays = _read_members(target)
    theta = arrays["theta"]
    meta, version = _read_meta(target, arrays["meta"])
    extra = _check_arrays(target, meta, version, theta, arrays)
    declared = _rebuild(target, meta, theta)
    scaler = None
    if extra:
        from symnn.data import Standardizer

        try:
            scaler = Standardizer.from_arrays(extra["x_mean"], extra["x_scale"],
                                              declared.n_inputs, "the stored standardizer")
        except SymnnError as err:
            raise _fail(target, str(err)) from err
    history = None
    if meta.get("history") is not None:
        history = _history(target, meta["history"])
    info = {k: meta.get(k) for k in ("format", "format_version", "symnn_version", "sha256")}
    theta = np.array(theta, copy=True)
    return SavedModel(declared, theta, history, meta.get("metadata"), theta.dtype, info,
                      scaler)


def load_compiled(path: "str | os.PathLike", *, cache_dir=None,
                  debug: bool | None = None,
                  aot: bool | None = None) -> tuple[Any, np.ndarray, Any]:
    """Read a model file and compile it: ``(model, params, scaler)``.

    The file is read and checked exactly as by :func:`load`.  When its kernels are in the
    cache (an earlier process compiled the same network in the same dtype with the same
    symnn), nothing is derived and neither SymPy nor the declaration stage is imported:
    the kernels are found under the stored spec's key in the declaration index
    (:mod:`symnn.codegen.declcache`), and ``model.declared`` is rebuilt from the file only
    when first asked for.  Otherwise the network is rebuilt and compiled as
    ``load(path).compile()`` would.

    ``aot``: ahead-of-time kernels (:mod:`symnn.codegen.aot`, an extension module in the
    cache that runs without Numba's compiler target, for the fastest start): None (the
    default) uses them when the cache has them, and when it has not, starts building them
    for later processes in a detached background process at the lowest CPU priority
    (once per model and dtype, only with a C compiler on ``PATH``; this process goes on
    through Numba, unslowed; ``SYMNN_AOT_BUILD=0`` turns this off:
    :mod:`symnn.codegen._aotauto`); True builds them now when the cache has not (a few
    seconds; silently skipped when that fails); False never uses them (``SYMNN_AOT=0``
    neither).

    Returns
    -------
    tuple
        ``model`` (a :class:`~symnn.codegen.model.CompiledModel` in the stored dtype),
        ``params`` (the stored θ) and ``scaler`` (the stored
        :class:`~symnn.data.Standardizer`, or None; the model does not apply it:
        ``model.predict(params, scaler.transform(X))``).

    Raises
    ------
    ModelFileError
        As :func:`load`, and when the cached kernels' parameter layout does not match the
        file's.

    Examples
    --------
    >>> import os, tempfile, numpy as np, symnn
    >>> net = symnn.mlp([2, 3, 1], activation="tanh")
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> save(path, net, np.arange(13, dtype=float) / 10)
    >>> model, params, scaler = load_compiled(path)
    >>> model.n_params, scaler is None
    (13, True)
    """
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise ArgumentError(f"load_compiled: expected the path of a model file (str or "
                            f"Path), got {type(path).__name__}")
    target = os.fspath(path)
    arrays = _read_members(target)
    theta = arrays["theta"]
    meta, version = _read_meta(target, arrays["meta"])
    extra = _check_arrays(target, meta, version, theta, arrays)
    from symnn.codegen.warm import compile_spec

    model = compile_spec(meta["spec"], meta["dtype"], lambda: _rebuild(target, meta, theta),
                         cache_dir=cache_dir, debug=debug, aot=aot)
    shapes = [[n, list(s)] for n, s in model.param_shapes]
    if shapes != meta["param_shapes"] or model.n_params != theta.shape[0]:
        raise _fail(target, f"the stored parameter layout {str(meta['param_shapes'])[:200]} "
                            f"does not match the compiled network's {shapes}")
    scaler = None
    if extra:
        from symnn.data import Standardizer

        try:
            scaler = Standardizer.from_arrays(extra["x_mean"], extra["x_scale"],
                                              model.n_inputs, "the stored standardizer")
        except SymnnError as err:
            raise _fail(target, str(err)) from err
    return model, np.array(theta, copy=True), scaler


def _read_meta(target: str, blob: np.ndarray) -> tuple[dict, int]:
    """The metadata (JSON) of a model file and its format version, with the keys checked."""
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise _fail(target, "the 'meta' array is malformed")
    try:
        meta = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _fail(target, f"the metadata is not valid JSON: "
                            f"{type(err).__name__}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = str(meta.get("format"))[:40] if isinstance(meta, dict) else None
        raise _fail(target, f"not a symnn model file (format {fmt!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION \
            or version < 1:
        raise _fail(target, f"format version {str(version)[:20]!r} is not one this symnn "
                            f"reads (1 to {FORMAT_VERSION}); upgrade symnn")
    for key in ("spec", "dtype", "n_params", "param_shapes", "sha256"):
        if key not in meta:
            raise _fail(target, f"the metadata lacks {key!r}")
    return meta, version


def _check_arrays(target: str, meta: dict, version: int, theta: np.ndarray,
                  arrays: dict) -> dict:
    """Check theta and the preprocessing arrays against the metadata and the checksum;
    returns the preprocessing arrays (empty when there are none)."""
    if meta["dtype"] not in ("float32", "float64") or theta.dtype != np.dtype(meta["dtype"]):
        raise _fail(target, f"theta has dtype {theta.dtype}, the metadata says "
                            f"{str(meta['dtype'])[:20]!r}")
    if theta.ndim != 1 or theta.shape[0] != meta["n_params"]:
        raise _fail(target, f"theta has shape {theta.shape}, the metadata says "
                            f"({str(meta['n_params'])[:20]},)")
    extra = {k: arrays[k] for k in ("x_mean", "x_scale") if k in arrays}
    pre = meta.get("preprocessing")
    if (pre is None) != (not extra):
        raise _fail(target, "the preprocessing arrays and the metadata disagree")
    if pre is not None and (version < 2 or pre != {"kind": "standardize",
                                                  "arrays": ["x_mean", "x_scale"]}
                            or set(extra) != {"x_mean", "x_scale"}):
        raise _fail(target, "malformed preprocessing step (symnn stores only "
                            "'standardize': x_mean and x_scale)")
    try:
        digest = _digest(meta, theta, extra)
    except (TypeError, ValueError, RecursionError) as err:
        raise _fail(target, f"the metadata is malformed: {err}") from err
    if digest != meta["sha256"]:
        raise _fail(target, "checksum mismatch — the file was damaged or modified after it "
                            f"was saved (stored SHA-256 {str(meta['sha256'])[:16]}…, "
                            f"computed {digest[:16]}…)")
    _check_finite(target, theta)  # walk, round 6
    return extra


def _check_finite(target: str, theta: np.ndarray) -> None:
    """A file with a NaN parameter loaded, then every predict failed with a message about
    the *data* (walk, round 6); save never writes one, so load refuses it."""
    bad = ~np.isfinite(theta)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise _fail(target, f"theta holds {theta[i]} at index {i}; symnn.save writes only "
                            "finite parameters, so this file was edited or written by another "
                            "tool: retrain and save the model again")


def _rebuild(target: str, meta: dict, theta: np.ndarray):
    """The declared network or model of the stored spec, its layout checked against theta."""
    from symnn.train.modelspec import declared_from_spec

    try:
        declared = declared_from_spec(meta["spec"])
    except ModelFileError as err:
        raise _fail(target, str(err)) from err
    except SymnnError as err:  # pragma: no cover - wrapped in declared_from_spec
        raise _fail(target, str(err)) from err
    except RecursionError as err:
        raise _fail(target, "the stored spec is nested too deeply") from err
    shapes = [[n, list(s)] for n, s in declared.param_shapes]
    if shapes != meta["param_shapes"] or declared.n_params != theta.shape[0]:
        raise _fail(target, f"the stored parameter layout {str(meta['param_shapes'])[:200]} "
                            f"does not match the rebuilt network's {shapes}")
    return declared
