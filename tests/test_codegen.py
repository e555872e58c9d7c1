"""The compiled kernels against their witnesses.

Three independent witnesses of every compiled derivative:

* the uncompiled NumPy interpreter of the same derived program (``model.reference``), to
  ~1e-12 relative in float64;
* central finite differences of the compiled loss (and of the compiled gradient, for
  Hessian-vector products);
* PyTorch autograd, where installed, from the same flat parameter layout.

Compilation dominates the cost, so every model is compiled once per module (fixtures)
and activations are covered by mixing them: each loss's network uses two different
hidden activations.  Kernels go to a temporary cache directory (``SYMNN_CACHE_DIR``).
"""

from __future__ import annotations

import inspect
import os
import re

import numpy as np
import pytest
import sympy as sp

import symnn  # noqa: E402
from symnn import Dense  # noqa: E402
from symnn import ops as P  # noqa: E402
from symnn.codegen import numba as numba_backend  # noqa: E402
from symnn.codegen.model import CompiledModel, ReferenceModel, compile_model  # noqa: E402
from symnn.codegen.numba import runtime  # noqa: E402
from symnn.codegen.printer import FUNCTIONS, KernelPrinter  # noqa: E402
from symnn.errors import CompileError, DataError, ShapeError  # noqa: E402

RTOL = 1e-12
_t = sp.Symbol("t")
CUBIC = sp.Lambda(_t, _t**3 / 3 + _t)


def _net(acts, n_out, out, loss, name, **kw):
    layers = [Dense(3, 4)]
    for a in acts:
        layers += [a, Dense(4, 4)]
    layers[-1] = Dense(4, n_out)
    if out:
        layers.append(out)
    return symnn.Network(layers, loss=loss, name=name, **kw)


def _custom_decay():
    x, a, b, c = sp.symbols("x a b c")
    return symnn.Model(a * sp.exp(-b * x) + c, inputs=[x], params=[a, b, c], loss="mse",
                       output="swish", penalties=[symnn.L2(0.1, params=["a"])], name="decay")


def _custom_softmax():
    x1, x2, p1, p2, p3, p4 = sp.symbols("x1 x2 p1 p2 p3 p4")
    return symnn.Model([p1 * x1 + p2 * sp.tanh(x2), p3 * x1 * x2 + p4], inputs=[x1, x2],
                       params=[p1, p2, p3, p4], loss="cross_entropy", output="softmax",
                       name="two_class")


#: name → (declaration factory, kind of targets).  Every activation and every loss appears
#: (swish as the output of a custom model, sigmoid also as the output under BCE).
CASES = {
    "mse": (lambda: _net(["sigmoid"], 2, None, "mse", "mse_net",
                         penalties=[symnn.L2(0.01)]), "real"),
    "mae": (lambda: _net(["relu", "leaky_relu"], 2, None, "mae", "mae_net"), "real"),
    "huber": (lambda: _net(["elu"], 2, None, "huber", "huber_net"), "real"),
    "bce": (lambda: _net(["gelu"], 2, "sigmoid", "bce", "bce_net"), "binary"),
    "cross_entropy": (lambda: _net(["tanh", CUBIC], 3, "softmax", "cross_entropy", "ce_net",
                                   penalties=[symnn.L1(0.001, params=["b1"])]), "labels"),
    "kl": (lambda: _net(["softplus"], 3, "softmax", "kl", "kl_net"), "probabilities"),
    "custom_decay": (_custom_decay, "real"),
    "custom_softmax": (_custom_softmax, "labels"),
}


def _targets(rng, kind, B, n_out):
    if kind == "labels":
        return rng.integers(0, n_out, B)
    if kind == "probabilities":
        return rng.dirichlet(np.ones(n_out), B)
    if kind == "binary":
        return rng.integers(0, 2, (B, n_out)).astype(float)
    return rng.standard_normal((B, n_out))


class Problem:
    def __init__(self, name):
        make, kind = CASES[name]
        self.name = name
        self.model = compile_model(make())
        self.ref = self.model.reference
        rng = np.random.default_rng(sum(map(ord, name)))
        m = self.model
        self.theta = m.init(seed=1) + 0.1 * rng.standard_normal(m.n_params)
        self.X = rng.standard_normal((7, m.n_inputs))
        self.y = _targets(rng, kind, 7, m.n_outputs)
        self.v = rng.standard_normal(m.n_params)
        self.V = rng.standard_normal((3, m.n_params))


_PROBLEMS: dict = {}


@pytest.fixture(scope="module", params=sorted(CASES))
def prob(request) -> Problem:
    if request.param not in _PROBLEMS:
        _PROBLEMS[request.param] = Problem(request.param)
    return _PROBLEMS[request.param]


def assert_close(a, b, rtol=RTOL, what=""):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    scale = max(np.max(np.abs(b)), 1e-300)
    err = np.max(np.abs(a - b)) / scale
    assert err <= rtol, f"{what}: relative difference {err:.2e} > {rtol:.0e}"


# ------------------------------------------------------------------------------------------
# compiled == reference (float64)
# ------------------------------------------------------------------------------------------


def test_predict_matches_reference(prob):
    out = prob.model.predict(prob.theta, prob.X)
    assert out.shape == (7, prob.model.n_outputs)
    assert_close(out, prob.ref.predict(prob.theta, prob.X), what="predict")


def test_loss_and_gradient_match_reference(prob):
    L, g = prob.model.loss_and_grad(prob.theta, prob.X, prob.y)
    Lr, gr = prob.ref.loss_and_grad(prob.theta, prob.X, prob.y)
    assert isinstance(L, float) and g.shape == (prob.model.n_params,)
    assert_close(L, Lr, what="loss")
    assert_close(g, gr, what="gradient")
    assert_close(prob.model.loss(prob.theta, prob.X, prob.y), Lr, what="loss kernel")


def test_hvp_and_gnvp_match_reference(prob):
    m, r = prob.model, prob.ref
    assert_close(m.hvp(prob.theta, prob.v, prob.X, prob.y),
                 r.hvp(prob.theta, prob.v, prob.X, prob.y), what="hvp")
    assert_close(m.gnvp(prob.theta, prob.v, prob.X, prob.y),
                 r.gnvp(prob.theta, prob.v, prob.X, prob.y), what="gnvp")
    # several directions in one call
    HV = m.hvp(prob.theta, prob.V, prob.X, prob.y)
    assert HV.shape == prob.V.shape
    assert_close(HV, r.hvp(prob.theta, prob.V, prob.X, prob.y), what="batched hvp")


def test_hessian_matches_reference_symmetric_and_consistent(prob):
    m = prob.model
    H = m.hessian(prob.theta, prob.X, prob.y)
    assert H.shape == (m.n_params, m.n_params)
    assert_close(H, prob.ref.hessian(prob.theta, prob.X, prob.y), what="hessian")
    np.testing.assert_array_equal(H, H.T)
    assert_close(m.hvp(prob.theta, prob.v, prob.X, prob.y), H @ prob.v, rtol=1e-11,
                 what="hvp vs H v")


def test_jacobian_matches_reference(prob):
    J = prob.model.jacobian(prob.theta, prob.X)
    assert J.shape == (7, prob.model.n_outputs, prob.model.n_inputs)
    assert_close(J, prob.ref.jacobian(prob.theta, prob.X), what="jacobian")


# ------------------------------------------------------------------------------------------
# finite differences (an independent witness: only the compiled loss/gradient are used)
# ------------------------------------------------------------------------------------------


def test_gradient_and_hvp_agree_with_central_differences(prob):
    m, th, X, y = prob.model, prob.theta, prob.X, prob.y
    rng = np.random.default_rng(7)
    g = m.loss_and_grad(th, X, y)[1]
    for _ in range(3):
        d = rng.standard_normal(m.n_params)
        d /= np.linalg.norm(d)
        h = 1e-6
        fd = (m.loss(th + h * d, X, y) - m.loss(th - h * d, X, y)) / (2 * h)
        assert abs(fd - g @ d) <= 1e-6 * max(1.0, abs(fd)), (fd, g @ d)
        h = 1e-5
        fd_hv = (m.loss_and_grad(th + h * d, X, y)[1]
                 - m.loss_and_grad(th - h * d, X, y)[1]) / (2 * h)
        hv = m.hvp(th, d, X, y)
        assert np.max(np.abs(fd_hv - hv)) <= 1e-5 * max(1.0, np.max(np.abs(hv)))


def test_jacobian_agrees_with_central_differences(prob):
    m, th, X = prob.model, prob.theta, prob.X
    J = m.jacobian(th, X)
    h = 1e-6
    for i in range(m.n_inputs):
        E = np.zeros_like(X)
        E[:, i] = h
        fd = (m.predict(th, X + E) - m.predict(th, X - E)) / (2 * h)
        np.testing.assert_allclose(J[:, :, i], fd, atol=1e-7)


# ------------------------------------------------------------------------------------------
# float32
# ------------------------------------------------------------------------------------------


def test_float32_agrees_with_float64_to_float32_precision():
    prob = _PROBLEMS.get("cross_entropy") or Problem("cross_entropy")
    _PROBLEMS["cross_entropy"] = prob
    m32 = compile_model(CASES["cross_entropy"][0](), dtype=np.float32)
    assert m32.dtype == np.float32 and "dtype float32" in m32.source
    th, X, y = prob.theta, prob.X, prob.y
    L32, g32 = m32.loss_and_grad(th, X, y)
    L64, g64 = prob.model.loss_and_grad(th, X, y)
    assert g32.dtype == np.float32
    assert_close(L32, L64, rtol=1e-5, what="float32 loss")
    assert_close(g32, g64, rtol=1e-5, what="float32 gradient")
    assert_close(m32.predict(th, X), prob.model.predict(th, X), rtol=1e-5, what="predict")


# ------------------------------------------------------------------------------------------
# the API around the kernels
# ------------------------------------------------------------------------------------------


def test_layout_init_flatten_unflatten(prob):
    m = prob.model
    decl = CASES[prob.name][0]()
    assert m.param_shapes == list(decl.param_shapes)
    assert m.n_params == decl.n_params
    th = m.init(seed=3)
    np.testing.assert_array_equal(th, m.init(seed=3))
    named = m.unflatten(th)
    assert list(named) == [n for n, _ in m.param_shapes]
    for name, shape in m.param_shapes:
        assert named[name].shape == shape
    np.testing.assert_array_equal(m.flatten(named), th)
    if prob.name.startswith("custom"):
        assert np.all(np.abs(th - 1) < 1)
    else:
        for name, shape in m.param_shapes:
            if name.startswith("b"):
                assert np.all(named[name] == 0)
            else:
                fan_out, fan_in = shape
                bound = np.sqrt(6 / (fan_in + fan_out))
                assert np.all(np.abs(named[name]) <= np.sqrt(6 / fan_in))
                if prob.name in ("mse", "kl"):  # sigmoid / softplus: Glorot
                    assert np.all(np.abs(named["W1"]) <= bound)


def test_network_compile_and_reference_types(prob):
    assert isinstance(prob.model, CompiledModel)
    assert isinstance(prob.model.reference, ReferenceModel)
    assert prob.model.dtype == np.float64


def test_generated_source_is_readable_and_inspectable():
    prob = _PROBLEMS.get("mse") or Problem("mse")
    _PROBLEMS["mse"] = prob
    m = prob.model
    src = m.source
    assert src.startswith("# symnn generated kernels — network 'mse_net'")
    for kind in ("predict", "loss", "loss_and_grad", "hvp", "gnvp", "jacobian"):
        fn = m.kernels[kind]
        assert fn.__name__.startswith("mse_net_")
        text = inspect.getsource(fn.py_func)
        assert text in src
    assert "def mse_net_loss_grad(params, X, Y, grad, work_in):" in src
    assert "# a1 = σ(z1)" in src
    assert 'fastmath=False' in src and 'error_model="numpy"' in src
    assert os.path.isfile(m.module.__file__)


def test_targets_forms(prob):
    m = prob.model
    if m.n_outputs == 1:
        pytest.skip("one output")
    if prob.name in ("cross_entropy", "custom_softmax"):
        labels = np.arange(7) % m.n_outputs
        onehot = np.eye(m.n_outputs)[labels]
        assert m.loss(prob.theta, prob.X, labels) == m.loss(prob.theta, prob.X, onehot)


def test_single_output_accepts_1d_targets():
    prob = _PROBLEMS.get("custom_decay") or Problem("custom_decay")
    _PROBLEMS["custom_decay"] = prob
    m, th, X = prob.model, prob.theta, prob.X
    y = prob.y.ravel()
    assert m.loss(th, X, y) == m.loss(th, X, y.reshape(-1, 1))


@pytest.mark.parametrize("B", [1, 2, 33])
def test_batch_sizes_around_blas_thresholds(B):
    prob = _PROBLEMS.get("cross_entropy") or Problem("cross_entropy")
    _PROBLEMS["cross_entropy"] = prob
    rng = np.random.default_rng(B)
    X = rng.standard_normal((B, 3))
    y = rng.integers(0, 3, B)
    L, g = prob.model.loss_and_grad(prob.theta, X, y)
    Lr, gr = prob.ref.loss_and_grad(prob.theta, X, y)
    assert_close(L, Lr)
    assert_close(g, gr)
    assert_close(prob.model.hvp(prob.theta, prob.v, X, y),
                 prob.ref.hvp(prob.theta, prob.v, X, y))


# ------------------------------------------------------------------------------------------
# bad inputs: symnn errors that say what and where
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ce():
    prob = _PROBLEMS.get("cross_entropy") or Problem("cross_entropy")
    _PROBLEMS["cross_entropy"] = prob
    return prob


def test_bad_X_shapes(ce):
    m, th = ce.model, ce.theta
    with pytest.raises(ShapeError, match=r"2-D of shape \(batch, 3\).*reshape"):
        m.predict(th, np.ones(3))
    with pytest.raises(ShapeError, match=r"4 features.*expected shape \(2, 3\)"):
        m.predict(th, np.ones((2, 4)))
    with pytest.raises(ShapeError, match="empty batch"):
        m.predict(th, np.ones((0, 3)))
    with pytest.raises(ShapeError):
        m.jacobian(th, np.ones((2, 3, 1)))


def test_bad_theta_and_directions(ce):
    m, X, y = ce.model, ce.X, ce.y
    with pytest.raises(ShapeError, match=rf"expected a flat vector of shape \({m.n_params},\)"):
        m.loss(np.ones(m.n_params + 1), X, y)
    with pytest.raises(ShapeError, match="theta"):
        m.loss(np.ones((1, m.n_params)), X, y)
    with pytest.raises(ShapeError, match=rf"\({m.n_params},\) or \(K, {m.n_params}\)"):
        m.hvp(ce.theta, np.ones(3), X, y)
    with pytest.raises(ShapeError):
        m.gnvp(ce.theta, np.ones((2, 2, m.n_params)), X, y)


def test_bad_targets(ce):
    m, th, X = ce.model, ce.theta, ce.X
    with pytest.raises(ShapeError, match=r"expected \(7, 3\)"):
        m.loss(th, X, np.ones((7, 2)))
    with pytest.raises(ShapeError, match="class labels for a batch of 7"):
        m.loss(th, X, np.zeros(6, dtype=int))
    with pytest.raises(DataError, match=r"y\[2\] = 5 is not a class label.*0\.\.2"):
        m.loss(th, X, np.array([0, 1, 5, 0, 1, 2, 0]))
    bad = np.full((7, 3), 0.5)
    with pytest.raises(DataError, match="row 0 of y sums to 1.5, not 1"):
        m.loss(th, X, bad)
    neg = np.eye(3)[np.arange(7) % 3] * 2 - np.eye(3)[(np.arange(7) + 1) % 3]
    with pytest.raises(DataError, match="negative"):
        m.loss(th, X, neg)


def test_non_finite_and_non_numeric_data(ce):
    m, th, y = ce.model, ce.theta, ce.y
    X = ce.X.copy()
    X[4, 2] = np.nan
    with pytest.raises(DataError, match="X contains nan at row 4, column 2"):
        m.loss_and_grad(th, X, y)
    Y = np.eye(3)[y].astype(float)
    Y[1, 0] = np.inf
    with pytest.raises(DataError, match="y contains inf at row 1, column 0"):
        m.loss(th, ce.X, Y)
    with pytest.raises(DataError, match="numeric"):
        m.predict(th, np.array([["a", "b", "c"]]))
    with pytest.raises(DataError, match="complex"):
        m.predict(th, np.ones((2, 3), dtype=complex))
    with pytest.raises(DataError, match="numeric"):
        m.predict(np.array(["x"] * m.n_params), ce.X)


def test_bad_dtype_and_flatten(ce):
    with pytest.raises(DataError, match="float64 or float32"):
        compile_model(CASES["kl"][0](), dtype="int32")
    m = ce.model
    named = m.unflatten(ce.theta)
    named.pop("b2")
    with pytest.raises(ShapeError, match="missing"):
        m.flatten(named)
    named = m.unflatten(ce.theta)
    named["W1"] = np.ones((2, 2))
    with pytest.raises(ShapeError, match="W1 has shape"):
        m.flatten(named)


def test_compile_errors_name_the_kernel_and_op(monkeypatch, ce):
    monkeypatch.delitem(numba_backend.EMITTERS, P.Softmax)
    net = symnn.mlp([2, 3], output="softmax", loss="cross_entropy", name="nosoftmax")
    with pytest.raises(CompileError, match=r"nosoftmax_predict.*a1 = Softmax\(z1\).*no code "
                                           r"generation rule for Softmax"):
        compile_model(net)


def test_numba_failures_become_compile_errors(ce):
    import numba

    m = compile_model(CASES["cross_entropy"][0]())

    @numba.njit
    def broken(params, X, out, work):
        return undefined_name(params)  # noqa: F821

    m.kernels = dict(m.kernels, predict=broken)
    with pytest.raises(CompileError, match="could not compile kernel ce_net_predict") as info:
        m.predict(ce.theta, ce.X)
    assert isinstance(info.value.__cause__, numba.core.errors.NumbaError)


# ------------------------------------------------------------------------------------------
# the printer's name table
# ------------------------------------------------------------------------------------------


def test_printer_covers_every_activation_and_loss_function():
    """Every function a Map body can hold prints to code that computes what the NumPy
    reference computes (evaluated here as plain Python)."""
    import math

    from symnn.codegen import fastmath, fastmath_extra
    from symnn.codegen.reference import numpy_function
    from symnn.declare.activations import elu, gelu, leaky_relu, relu, sigmoid, softplus, swish
    from symnn.declare.losses import xlogy

    z, y = sp.symbols("z y", real=True)
    anywhere = (-1.3, 0.0, 0.7, 2.5)
    positive = (0.3, 0.7, 2.5)
    cases = [(sigmoid(z), anywhere), (relu(z), anywhere), (softplus(z), anywhere),
             (leaky_relu(z, sp.Rational(1, 100)), anywhere), (elu(z, 1), anywhere),
             (gelu(z), anywhere), (swish(z), anywhere), (xlogy(y, z), positive),
             (xlogy(0, z), positive), (sp.Heaviside(z, 0), anywhere), (sp.Heaviside(z), anywhere),
             (sp.DiracDelta(z), anywhere), (sp.Abs(z), anywhere), (sp.sign(z), anywhere),
             (sp.erf(z), anywhere), (sp.exp(z), anywhere), (sp.log(z), positive),
             (sp.tanh(z), anywhere), (z**3 - z / 3, anywhere), (z**-2, positive),
             (sp.sqrt(z), positive), (sp.Piecewise((z, z > 0), (2 * z, True)), anywhere),
             (sp.Max(z, y), anywhere), (sp.log(1 + z), positive), (sp.pi * z / 2, anywhere)]
    ns = {"math": math, "np": np, "_sigmoid": runtime._sigmoid,
          "_softplus": runtime._softplus}
    ns.update({n: getattr(fastmath, n) for n in dir(fastmath) if n.startswith("fm_")})
    ns.update({n: getattr(fastmath_extra, n) for n in fastmath_extra.__all__})
    for e, zs in cases:
        for printer in (KernelPrinter(), KernelPrinter(fast=False)):
            code = printer.doprint(e)
            for zv in zs:
                got = eval(code, dict(ns, z=zv, y=0.6))  # noqa: S307 - our own printed code
                want = 0.0 if e.has(sp.DiracDelta) else numpy_function((z, y), e)(zv, 0.6)
                np.testing.assert_allclose(float(got), float(want), rtol=1e-13, atol=1e-15,
                                           err_msg=f"{e} printed as {code}")
        # float32 kernels: every literal is a float32 (_f = np.float32)
        code32 = re.sub(r"_f\(\(?-?[0-9.e+-]+\)?\)", "", KernelPrinter("float32").doprint(e))
        assert not re.search(r"\d\.\d", code32), code32
    assert KernelPrinter("float32").doprint(z / 2 + 1) == "_f(1.0) + z/_f(2.0)"
    assert {"exp", "log", "tanh", "erf", "sigmoid", "softplus"} <= set(FUNCTIONS)
    with pytest.raises(NotImplementedError, match="no rule for the function"):
        KernelPrinter().doprint(sp.Function("mystery")(z))


def test_stable_forms_do_not_overflow(ce):
    # extreme logits: softmax/log-sum-exp and the fused BCE stay finite
    m = ce.model
    X = np.array([[500.0, -500.0, 300.0]])
    th = ce.theta * 50
    L, g = m.loss_and_grad(th, X, np.array([1]))
    assert np.isfinite(L) and np.all(np.isfinite(g))
    assert np.all(np.isfinite(m.predict(th, X)))


# ------------------------------------------------------------------------------------------
# property-based: random batches and parameters (compiled code: deadline=None)
# ------------------------------------------------------------------------------------------

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    def given(**kw):
        return lambda f: pytest.mark.skip(reason="hypothesis not installed")(f)

    def settings(**kw):
        return lambda f: f

    class st:  # noqa: N801
        integers = floats = staticmethod(lambda *a, **k: None)


@settings(deadline=None, max_examples=15, derandomize=True)
@given(B=st.integers(1, 40), seed=st.integers(0, 2**16), scale=st.floats(0.1, 3.0))
def test_random_batches_match_reference_and_hessian_is_symmetric(B, seed, scale):
    prob = _PROBLEMS.get("huber") or Problem("huber")
    _PROBLEMS["huber"] = prob
    m = prob.model
    rng = np.random.default_rng(seed)
    th = scale * rng.standard_normal(m.n_params)
    X = rng.standard_normal((B, m.n_inputs))
    y = rng.standard_normal((B, m.n_outputs))
    L, g = m.loss_and_grad(th, X, y)
    Lr, gr = m.reference.loss_and_grad(th, X, y)
    assert_close(L, Lr, rtol=1e-11)
    assert_close(g, gr, rtol=1e-11)
    H = m.hessian(th, X, y)
    np.testing.assert_array_equal(H, H.T)


# ------------------------------------------------------------------------------------------
# an independent autodiff: PyTorch
# ------------------------------------------------------------------------------------------


def _torch_loss(torch, prob, theta):
    """The declared network of a test case written again, by hand, in PyTorch."""
    net = CASES[prob.name][0]()
    X, Y = torch.tensor(prob.X), torch.tensor(np.eye(3)[prob.y] if prob.y.ndim == 1
                                              else prob.y)
    named, off = {}, 0
    for name, shape in prob.model.param_shapes:
        n = int(np.prod(shape))
        named[name] = theta[off:off + n].reshape(shape)
        off += n
    A, l = X, 0
    for layer in net.layers:
        if isinstance(layer, Dense):
            l += 1
            A = A @ named[f"W{l}"].T + named[f"b{l}"]
        elif getattr(layer, "name", "") == "softmax":
            pass
        else:
            act = layer.activation.name
            A = {"sigmoid": torch.sigmoid, "tanh": torch.tanh,
                 "f": lambda t: t**3 / 3 + t}[act](A)
    if net.loss.name == "cross_entropy":
        loss = -(Y * torch.log_softmax(A, dim=1)).sum(dim=1).mean()
        loss = loss + 0.001 * named["b1"].abs().sum()
    else:
        loss = ((A - Y) ** 2).mean()
        loss = loss + 0.01 * sum((named[n] ** 2).sum() for n in named if n.startswith("W"))
    return loss


@pytest.mark.parametrize("name", ["cross_entropy", "mse"])
def test_gradient_and_hvp_agree_with_torch(name):
    """A tanh/softmax cross-entropy network and a sigmoid MSE network (with their L1 / L2
    penalties) against PyTorch autograd, from the same flat θ."""
    torch = pytest.importorskip("torch")
    prob = _PROBLEMS.get(name) or Problem(name)
    _PROBLEMS[name] = prob
    t = torch.tensor(prob.theta, dtype=torch.float64, requires_grad=True)
    loss = _torch_loss(torch, prob, t)
    (g,) = torch.autograd.grad(loss, t, create_graph=True)
    (hv,) = torch.autograd.grad(g @ torch.tensor(prob.v), t)
    L, grad = prob.model.loss_and_grad(prob.theta, prob.X, prob.y)
    assert_close(L, loss.item(), rtol=1e-13)
    assert_close(grad, g.detach().numpy(), rtol=1e-12)
    assert_close(prob.model.hvp(prob.theta, prob.v, prob.X, prob.y), hv.numpy(), rtol=1e-12)
