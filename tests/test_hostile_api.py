"""Bad and unusual input through the Python API: one clear error each, or the right result.

Kernel inputs of every kind go through every kernel of a compiled model (``predict``,
``loss``, ``loss_and_grad``, ``hvp``, ``gnvp``, ``hessian``, ``jacobian``):

* valid but unusual arrays — read-only, memory-mapped, float16, big-endian, integer,
  Fortran-ordered, strided, nested lists — give exactly the result of the same values as a
  plain C-contiguous float64 array;
* unusable ones — NaN/±inf (in X, θ, y or the direction v), values that overflow a float32
  model, complex, text, ragged or wrongly shaped arrays — raise the named symnn error with
  the argument (and index) in the message.

Declarations that no machine could hold or Numba could not compile are refused at once
(``SizeLimitError``); those that could hang or exhaust memory run in a subprocess with a
timeout and an address-space limit.  The scikit-learn estimators get their own bad input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn.errors import (
    ArgumentError,
    DataError,
    DeclarationError,
    ShapeError,
    SizeLimitError,
    SymnnError,
    TrainingError,
    UnknownNameError,
)

# ConvergenceWarning is part of the estimators' contract (as MLPClassifier's); the cases
# here train for a few epochs on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Stochastic Optimizer")

# -- the model and the kernels ------------------------------------------------------------


@pytest.fixture(scope="module")
def models():
    net = symnn.mlp([3, 4, 2], activation="tanh", loss="mse", name="hostile")
    return {"float64": net.compile(), "float32": net.compile(dtype="float32")}


def _data(model):
    rng = np.random.default_rng(0)
    theta = np.asarray(model.init(seed=1), np.float64)
    X = rng.uniform(-1, 1, (5, 3))
    y = rng.uniform(-1, 1, (5, 2))
    v = rng.standard_normal(model.n_params)
    return {"theta": theta, "X": X, "y": y, "v": v}


#: kernel → (arguments it takes, call)
KERNELS = {
    "predict": (("theta", "X"), lambda m, a: m.predict(a["theta"], a["X"])),
    "loss": (("theta", "X", "y"), lambda m, a: m.loss(a["theta"], a["X"], a["y"])),
    "loss_and_grad": (("theta", "X", "y"),
                      lambda m, a: m.loss_and_grad(a["theta"], a["X"], a["y"])[1]),
    "hvp": (("theta", "v", "X", "y"), lambda m, a: m.hvp(a["theta"], a["v"], a["X"], a["y"])),
    "gnvp": (("theta", "v", "X", "y"),
             lambda m, a: m.gnvp(a["theta"], a["v"], a["X"], a["y"])),
    "hessian": (("theta", "X", "y"), lambda m, a: m.hessian(a["theta"], a["X"], a["y"])),
    "jacobian": (("theta", "X"), lambda m, a: m.jacobian(a["theta"], a["X"])),
}


def _readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def _mmap(a, tmp_path_factory=None):
    folder = _mmap.folder
    path = os.path.join(folder, f"a{_mmap.count}.npy")
    _mmap.count += 1
    np.save(path, a)
    return np.load(path, mmap_mode="r")


_mmap.count = 0
_mmap.folder = ""


def _strided(a):
    big = np.zeros((2,) + a.shape)
    big[0] = a
    if a.ndim == 1:
        out = np.repeat(a, 2)[::2]
    else:
        out = np.repeat(a, 2, axis=1)[:, ::2]
    assert not out.flags.c_contiguous or a.size <= 1
    return out


#: valid, unusual: transform → applied to every array argument of a kernel
CONVERSIONS = {
    "read-only": _readonly,
    "memory-mapped": _mmap,
    "float16": lambda a: np.asarray(a, np.float16),
    "big-endian >f8": lambda a: np.asarray(a, ">f8"),
    "big-endian >f4": lambda a: np.asarray(a, ">f4"),
    "float32 into float64": lambda a: np.asarray(a, np.float32),
    "integer": lambda a: np.round(np.asarray(a) * 3).astype(np.int32),
    "Fortran order": lambda a: np.asfortranarray(a),
    "strided view": _strided,
    "nested lists": lambda a: np.asarray(a).tolist(),
}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("conversion", sorted(CONVERSIONS))
def test_unusual_valid_arrays_give_the_plain_result(models, kernel, conversion, tmp_path):
    """The result equals that of the converted values as a plain float64 array."""
    _mmap.folder = str(tmp_path)
    model = models["float64"]
    names, call = KERNELS[kernel]
    args = _data(model)
    convert = CONVERSIONS[conversion]
    odd = {k: (convert(v) if k in names else v) for k, v in args.items()}
    plain = {k: np.array(np.asarray(v), dtype=np.float64, order="C") for k, v in odd.items()}
    got = call(model, odd)
    want = call(model, plain)
    np.testing.assert_array_equal(got, want)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_read_only_arrays_in_the_float32_model(models, kernel):
    model = models["float32"]
    names, call = KERNELS[kernel]
    args = _data(model)
    odd = {k: _readonly(v) for k, v in args.items()}
    np.testing.assert_array_equal(call(model, odd), call(model, args))


def _set(value, index):
    def mutate(a):
        a = np.array(a, dtype=np.float64)
        a[index] = value
        return a
    return mutate


#: argument → [(label, mutation, error class, message fragment)]
BAD = {
    "X": [
        ("NaN", _set(np.nan, (1, 2)), DataError, "X contains nan at row 1, column 2"),
        ("+inf", _set(np.inf, (4, 0)), DataError, "X contains inf at row 4, column 0"),
        ("-inf", _set(-np.inf, (0, 1)), DataError, "X contains -inf at row 0, column 1"),
        ("complex", lambda a: np.asarray(a) + 1j, DataError, "complex"),
        ("text", lambda a: np.asarray(a).astype(str), DataError, "must be numeric"),
        ("ragged", lambda a: [[1.0, 2.0, 3.0], [1.0]], DataError, "X must be a numeric"),
        ("1-D", lambda a: np.asarray(a)[0], ShapeError, "reshape(1, -1)"),
        ("3-D", lambda a: np.asarray(a)[None], ShapeError, "must be 2-D"),
        ("wrong width", lambda a: np.asarray(a)[:, :2], ShapeError, "the model takes 3"),
        ("empty batch", lambda a: np.asarray(a)[:0], ShapeError, "empty batch"),
        ("object", lambda a: np.asarray(a, dtype=object), DataError, "dtype object"),
    ],
    "theta": [
        ("NaN", _set(np.nan, 3), DataError, "theta contains nan at index 3"),
        ("+inf", _set(np.inf, 0), DataError, "theta contains inf at index 0"),
        ("-inf", _set(-np.inf, 20), DataError, "theta contains -inf at index 20"),
        ("short", lambda a: np.asarray(a)[:-1], ShapeError, "expected a flat vector"),
        ("2-D", lambda a: np.asarray(a)[None], ShapeError, "expected a flat vector"),
        ("complex", lambda a: np.asarray(a) * 1j, DataError, "complex"),
    ],
    "y": [
        ("NaN", _set(np.nan, (2, 1)), DataError, "y contains nan at row 2, column 1"),
        ("inf", _set(np.inf, (0, 0)), DataError, "y contains inf at row 0, column 0"),
        ("rows", lambda a: np.asarray(a)[:3], ShapeError, "to match"),
        ("text", lambda a: np.asarray(a).astype(str), DataError, "must be numeric"),
    ],
    "v": [
        ("NaN", _set(np.nan, 5), DataError, "v contains nan at index 5"),
        ("inf", _set(np.inf, 7), DataError, "v contains inf at index 7"),
        ("wrong length", lambda a: np.asarray(a)[:4], ShapeError, "expected (26,)"),
        ("3-D", lambda a: np.asarray(a)[None, None], ShapeError, "expected (26,)"),
    ],
}

BAD_CASES = [(kernel, arg, *case) for kernel, (names, _) in sorted(KERNELS.items())
             for arg in names for case in BAD[arg]]


@pytest.mark.parametrize("kernel, arg, label, mutate, cls, fragment", BAD_CASES,
                         ids=[f"{k}-{a}-{lab}" for k, a, lab, *_ in BAD_CASES])
def test_unusable_arrays_raise_a_named_error(models, kernel, arg, label, mutate, cls,
                                             fragment):
    model = models["float64"]
    names, call = KERNELS[kernel]
    args = _data(model)
    args[arg] = mutate(args[arg])
    with pytest.raises(cls) as info:
        call(model, args)
    assert fragment in str(info.value)
    assert isinstance(info.value, SymnnError)


OVERFLOW = {"X": (1e39, (0, 1), "X holds 1e+39 at row 0, column 1"),
            "theta": (1e300, 2, "theta holds 1e+300 at index 2"),
            "y": (-1e39, (1, 0), "y holds -1e+39 at row 1, column 0"),
            "v": (1e39, 4, "v holds 1e+39 at index 4")}
OVERFLOW_CASES = [(kernel, arg) for kernel, (names, _) in sorted(KERNELS.items())
                  for arg in names]


@pytest.mark.parametrize("kernel, arg", OVERFLOW_CASES)
def test_values_that_overflow_float32_are_refused(models, kernel, arg):
    """Finite in float64, infinite in the float32 model: a DataError, never inf or NaN."""
    model = models["float32"]
    names, call = KERNELS[kernel]
    args = _data(model)
    value, index, fragment = OVERFLOW[arg]
    args[arg] = _set(value, index)(args[arg])
    with pytest.raises(DataError, match="overflows the model's float32") as info:
        call(model, args)
    assert fragment in str(info.value)
    assert "dtype='float64'" in str(info.value)


def test_unflatten_keeps_non_finite_parameters(models):
    """Inspecting diverged parameters is allowed: unflatten does not check finiteness."""
    model = models["float64"]
    theta = np.full(model.n_params, np.nan)
    assert np.isnan(model.unflatten(theta)["W1"]).all()


# -- class labels and probabilities --------------------------------------------------------

@pytest.fixture(scope="module")
def classifier():
    return symnn.mlp([2, 3, 3], "tanh", "softmax", "cross_entropy", name="hostile_ce").compile()


@pytest.mark.parametrize("labels, ok", [
    (np.array([0, 2, 1], dtype=">i8"), True),
    (np.array([0, 2, 1], dtype=np.uint8), True),
    (_readonly(np.array([0, 2, 1])), True),
    (np.array([0, 3, 1]), False),
    (np.array([0, -1, 1]), False),
])
def test_class_labels(classifier, labels, ok):
    X = np.array([[0.1, 0.2], [0.3, -0.4], [1.0, 0.5]])
    theta = classifier.init(0)
    if ok:
        want = classifier.loss(theta, X, np.array([0, 2, 1]))
        assert classifier.loss(theta, X, labels) == want
    else:
        with pytest.raises(DataError, match="is not a class label"):
            classifier.loss(theta, X, labels)


@pytest.mark.parametrize("Y, fragment", [
    ([[0.5, 0.5, 0.5]] * 3, "sums to 1.5"),
    ([[-0.5, 1.5, 0.0]] * 3, "is negative"),
    ([[np.nan, 1.0, 0.0]] * 3, "y contains nan at row 0, column 0"),
])
def test_probability_rows(classifier, Y, fragment):
    X = np.zeros((3, 2))
    with pytest.raises(DataError) as info:
        classifier.loss(classifier.init(0), X, np.array(Y))
    assert fragment in str(info.value)


# -- seeds ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed, cls, fragment", [
    ("x", ArgumentError, "seed must be a non-negative integer"),
    (1.5, ArgumentError, "got float 1.5"),
    (True, ArgumentError, "got bool"),
    (-1, DataError, "got -1"),
])
def test_bad_seeds(models, seed, cls, fragment):
    with pytest.raises(cls, match=fragment):
        models["float64"].init(seed=seed)


@pytest.mark.parametrize("seed", [0, np.int64(3), None, np.random.default_rng(1)])
def test_good_seeds(models, seed):
    assert models["float64"].init(seed=seed).shape == (26,)


# -- declarations and sizes --------------------------------------------------------------------

@pytest.mark.parametrize("sizes, fragment", [
    ([2] + [2] * 300 + [1], "301 dense layers exceed symnn's limit of 64"),
    ([2] + [2] * 64 + [1], "65 dense layers"),
    ([2, 2**63, 1], "exceeds symnn's limit of 16,777,216 units"),
    ([2, 2**24 + 1, 1], "width 16,777,217"),
    ([10**6, 10**6, 1], "parameters exceed symnn's limit of 1,073,741,824"),
    ([40_000, 40_000, 1], "GiB in float64"),
])
def test_sizes_are_refused_at_declaration(sizes, fragment):
    with pytest.raises(SizeLimitError) as info:
        symnn.mlp(sizes)
    assert fragment in str(info.value)
    assert "Use " in str(info.value)  # the alternative


@pytest.mark.parametrize("which", ["compiled", "reference"])
def test_a_dense_hessian_too_large_is_refused_before_allocation(which):
    model = symnn.mlp([200, 100, 1], name="wide").compile()  # 20,201 parameters
    if which == "reference":
        model = model.reference
    X = np.zeros((2, 200))
    with pytest.raises(SizeLimitError, match="model.hvp") as info:
        model.hessian(np.zeros(model.n_params), X, np.zeros(2))
    assert "(20,201, 20,201)" in str(info.value)


def test_numpy_integer_widths_declare():
    net = symnn.mlp(np.array([3, 4, 2]))
    assert net.param_shapes[0] == ("W1", (4, 3))
    assert type(net.layers[0].n_in) is int
    with pytest.raises(SizeLimitError):
        symnn.mlp(np.array([2, 2**40, 1]))


def test_largest_allowed_depth_declares():
    net = symnn.mlp([2] + [2] * 31 + [1])
    assert net.n_layers == 32


@pytest.mark.parametrize("call, cls, fragment", [
    (lambda n: n.gradient(batch_size=10**6), SizeLimitError, "batch_size × parameters"),
    (lambda n: n.gradient(batch_size=2000), SizeLimitError, "18,000 terms"),
    (lambda n: n.gradient(batch_size=2.5), ArgumentError, "batch_size must be an integer"),
    (lambda n: n.gradient(batch_size="2"), ArgumentError, "batch_size must be an integer"),
    (lambda n: n.gradient(batch_size=0), SizeLimitError, "batch_size must be ≥ 1"),
    (lambda n: n.hessian(batch_size=10**9), SizeLimitError, "the expanded Hessian"),
    (lambda n: n.loss_expr(batch_size=10**9), SizeLimitError, "the expanded loss"),
])
def test_expanded_forms_bound_the_batch(call, cls, fragment):
    with pytest.raises(cls) as info:
        call(symnn.mlp([2, 2, 1]))
    assert fragment in str(info.value)


@pytest.mark.parametrize("layers, cls, fragment", [
    ([symnn.Dense(2, 2), "tanhh", symnn.Dense(2, 1)], UnknownNameError, "unknown activation"),
    ([symnn.Dense(2, 2), print, symnn.Dense(2, 1)], DeclarationError, "expected a name"),
    ([symnn.Dense(2, 2), lambda t: t, symnn.Dense(2, 1)], DeclarationError, "expected a name"),
    ([symnn.Dense(2, 2), sp.atan2, symnn.Dense(2, 1)], DeclarationError, "one argument"),
    ([symnn.Dense(2, 2), sp.Max, symnn.Dense(2, 1)], DeclarationError, "not an expression"),
    ([], DeclarationError, "at least one Dense"),
    ("tanh", DeclarationError, "must be a list of layers"),
])
def test_bad_layers(layers, cls, fragment):
    with pytest.raises(cls, match=fragment):
        symnn.Network(layers)


@pytest.mark.parametrize("args, fragment", [
    ((0, 2), "positive integer"), ((2.5, 2), "positive integer"), ((True, 2), "positive"),
    ((2, -3), "positive integer"), (("2", 2), "positive integer"),
])
def test_bad_dense(args, fragment):
    with pytest.raises(DeclarationError, match=fragment):
        symnn.Dense(*args)


@pytest.mark.parametrize("fn", [sp.tanh, sp.sin, sp.exp, sp.atan, sp.sinh, sp.cos])
def test_sympy_functions_are_activations(fn):
    """``activation=sp.tanh`` (and any SymPy function of one argument) declares; the
    kernel agrees with the reference interpreter."""
    net = symnn.mlp([2, 2, 1], activation=fn, name=f"act_{fn.__name__}")
    X = np.array([[0.2, 0.7], [1.1, 0.4]])
    y = np.array([0.3, -0.2])
    model = net.compile()
    theta = model.init(0)
    _, g = model.loss_and_grad(theta, X, y)
    _, g_ref = model.reference.loss_and_grad(theta, X, y)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-13)
    if fn is sp.tanh:
        assert net.layers[1].activation is symnn.declare.activations.ACTIVATIONS["tanh"]


def test_sympy_function_activation_round_trips_through_spec():
    net = symnn.mlp([2, 2, 1], activation=sp.sqrt)
    assert net.layers[1].activation.name == "sqrt"
    layer = net.spec()["layers"][1]["activation"]
    assert layer["name"] == "sqrt" and "sqrt" in layer["expr"]


def test_gradient_accepts_names():
    g = symnn.mlp([2, 2, 1]).gradient()
    sym = sp.Symbol("W1_11", real=True)
    assert g["W1_11"] == g[sym]
    assert "b2_1" in g and g.get("b2_1") is not None
    with pytest.raises(KeyError, match="no symbol of that name"):
        g["W9_99"]
    assert g._repr_latex_().startswith("$\\begin{aligned}")


# -- in a subprocess: what could hang or exhaust memory ----------------------------------------

_SUBPROCESS = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
    import symnn
    cases = {
        "deep": lambda: symnn.mlp([2] + [2] * 300 + [1]).compile(),
        "7 TiB": lambda: symnn.mlp([10**6, 10**6, 1]).compile().init(),
        "2**63": lambda: symnn.mlp([2, 2**63, 1]).compile(),
        "batch": lambda: symnn.mlp([2, 2, 1]).gradient(batch_size=10**6),
        "hessian batch": lambda: symnn.mlp([2, 2, 1]).hessian(batch_size=10**6),
        "wide expanded": lambda: symnn.mlp([100, 100, 1]).gradient(),
    }
    out = {}
    for name, case in cases.items():
        try:
            case()
            out[name] = ["no error", ""]
        except Exception as err:
            out[name] = [type(err).__name__, str(err)]
    print(json.dumps(out))
""")


def test_huge_declarations_fail_fast_in_a_limited_process(tmp_path):
    """4 GiB of address space, 60 s: each case must be refused, not attempted."""
    env = dict(os.environ, SYMNN_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _SUBPROCESS], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    expect = {
        "deep": "dense layers exceed",
        "7 TiB": "parameters exceed",
        "2**63": "units per layer",
        "batch": "batch_size × parameters",
        "hessian batch": "batch_size × parameters",
        "wide expanded": "exceeds the limit of 5000",
    }
    for name, fragment in expect.items():
        cls, message = out[name]
        assert cls == "SizeLimitError", (name, cls, message)
        assert fragment in message, (name, message)


# -- scikit-learn --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sk():
    pytest.importorskip("sklearn")
    from symnn.sklearn import SymnnClassifier, SymnnRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    return SymnnClassifier, SymnnRegressor, X, y


@pytest.mark.parametrize("params, fragment", [
    (dict(hidden_layer_sizes=(0,)), "must be > 0"),
    (dict(hidden_layer_sizes=("a",)), "sequence of positive integers"),
    (dict(hidden_layer_sizes=(2**25,)), "units per layer"),
    (dict(hidden_layer_sizes=(2,) * 70), "dense layers exceed"),
    (dict(activation="softsign"), "activation must be one of"),
    (dict(solver="rprop"), "solver must be one of"),
    (dict(learning_rate="adaptive"), "'adaptive'"),
    (dict(max_iter=0), "max_iter must be an integer"),
    (dict(max_iter=2.5), "max_iter must be an integer"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(alpha=-1.0), "alpha must be ≥ 0"),
    (dict(validation_fraction=1.5), "validation_fraction"),
    (dict(batch_size=2.5), "batch_size must be 'auto'"),
    (dict(batch_size=0), "batch_size must be 'auto'"),
    (dict(dtype="float16"), "float64 or float32"),
])
def test_sklearn_bad_hyperparameters(sk, params, fragment):
    SymnnClassifier, _, X, y = sk
    with pytest.raises(ValueError) as info:
        SymnnClassifier(max_iter=params.pop("max_iter", 3), **params).fit(X, y)
    assert isinstance(info.value, SymnnError)
    assert fragment in str(info.value)


@pytest.mark.parametrize("convert", [
    _readonly, lambda a: np.asarray(a, ">f8"), lambda a: np.asarray(a, np.float32),
    np.asfortranarray, lambda a: np.asarray(a).tolist(),
])
def test_sklearn_unusual_valid_arrays(sk, convert):
    SymnnClassifier, SymnnRegressor, X, y = sk
    kw = dict(hidden_layer_sizes=(3,), max_iter=3, random_state=0)
    want = SymnnRegressor(**kw).fit(X, X[:, 0]).predict(X)
    got = SymnnRegressor(**kw).fit(convert(X), convert(X[:, 0])).predict(convert(X))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call, cls, fragment", [
    (lambda C, R, X, y: C().partial_fit(X, y), DataError, "classes must be passed"),
    (lambda C, R, X, y: C(max_iter=2).fit(X, np.zeros(len(y))), DataError, "2 classes"),
    (lambda C, R, X, y: R(max_iter=2).fit(X, X[:, 0], sample_weight=-np.ones(len(y))),
     DataError, "≥ 0"),
    (lambda C, R, X, y: R(max_iter=2).fit(X, X[:, 0], sample_weight=np.zeros(len(y))),
     ValueError, "non-zero"),
    (lambda C, R, X, y: R(max_iter=2).fit(X, X[:, 0], sample_weight=np.ones(2)),
     ValueError, "sample_weight"),
    (lambda C, R, X, y: R(max_iter=2).fit(np.where(X > 1, np.nan, X), X[:, 0]),
     ValueError, "NaN"),
    (lambda C, R, X, y: R(max_iter=2).fit(X, X[:, 0]).predict(X[:, :2]), ValueError,
     "features"),
    (lambda C, R, X, y: R().predict(X), ValueError, "not fitted"),
    (lambda C, R, X, y: R(max_iter=2).fit(X * 1e300, X[:, 0]), TrainingError, "not finite"),
])
def test_sklearn_bad_data(sk, call, cls, fragment):
    SymnnClassifier, SymnnRegressor, X, y = sk
    with pytest.raises(cls, match=fragment):
        call(SymnnClassifier, SymnnRegressor, X, y)
