"""The loss conventions of docs/losses.md, each against a hand-written NumPy formula.

The network's forward pass is written out in NumPy here too (``_forward``), so the
expected loss depends on nothing symnn computes.  Every loss is checked on the compiled
kernel and on ``model.reference``.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.special import expit, log_softmax, logsumexp, softmax

import symnn

RTOL = 1e-12


def _data(net, B=5, seed=0, target="normal"):
    rng = np.random.default_rng(seed)
    n_in, n_out = net.n_inputs, net.n_outputs
    X = rng.normal(size=(B, n_in))
    if target == "prob":
        Y = rng.random((B, n_out)) + 0.05
        Y /= Y.sum(axis=1, keepdims=True)
    elif target == "unit":
        Y = rng.random((B, n_out))
    else:
        Y = 2.0 * rng.normal(size=(B, n_out))
    P = net.n_params
    theta = rng.normal(size=P)
    return X, Y, theta


def _unflatten(net, theta):
    out, o = {}, 0
    for name, shape in net.param_shapes:
        size = int(np.prod(shape))
        out[name] = theta[o:o + size].reshape(shape)
        o += size
    return out


def _forward(net, theta, X):
    """``(z, ŷ)`` for ``mlp([n0, n1, n2], activation="tanh", output=…)``, in NumPy."""
    p = _unflatten(net, theta)
    h = np.tanh(X @ p["W1"].T + p["b1"])
    z = h @ p["W2"].T + p["b2"]
    out = net.layers[-1]
    name = getattr(out, "name", None) if not isinstance(out, symnn.Dense) else None
    if name == "sigmoid":
        return z, expit(z)
    if name == "softmax":
        return z, softmax(z, axis=1)
    return z, z


def _both(net, theta, X, Y):
    model = net.compile()
    return model.loss(theta, X, Y), model.reference.loss(theta, X, Y)


def _net(loss, output=None, n_out=3, penalties=()):
    return symnn.mlp([2, 3, n_out], activation="tanh", output=output, loss=loss,
                     penalties=list(penalties), name=f"conv_{loss}_{output}")


def test_mse_is_the_mean_over_outputs_and_samples():
    net = _net("mse")
    X, Y, th = _data(net)
    _, yhat = _forward(net, th, X)
    want = np.mean(np.mean((yhat - Y) ** 2, axis=1))
    for got in _both(net, th, X, Y):
        assert got == pytest.approx(want, rel=RTOL)


def test_mae_is_the_mean_absolute_error():
    net = _net("mae")
    X, Y, th = _data(net)
    _, yhat = _forward(net, th, X)
    want = np.mean(np.abs(yhat - Y))
    for got in _both(net, th, X, Y):
        assert got == pytest.approx(want, rel=RTOL)


def test_huber_has_delta_one_and_both_pieces():
    net = _net("huber")
    X, Y, th = _data(net, B=8)
    _, yhat = _forward(net, th, X)
    r = yhat - Y
    assert (np.abs(r) <= 1).any() and (np.abs(r) > 1).any()   # both pieces are exercised
    h = np.where(np.abs(r) <= 1.0, r**2 / 2, np.abs(r) - 0.5)
    want = np.mean(np.mean(h, axis=1))
    for got in _both(net, th, X, Y):
        assert got == pytest.approx(want, rel=RTOL)


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_bce_is_the_mean_over_outputs(output):
    net = _net("bce", output)
    X, Y, th = _data(net, target="unit")
    _, p = _forward(net, th, X)
    want = np.mean(-np.mean(Y * np.log(p) + (1 - Y) * np.log(1 - p), axis=1))
    for got in _both(net, th, X, Y):
        assert got == pytest.approx(want, rel=RTOL)


def test_softmax_cross_entropy_is_the_sum_over_classes():
    net = _net("cross_entropy", "softmax")
    X, Y, th = _data(net, target="prob")
    z, _ = _forward(net, th, X)
    want = np.mean(-np.sum(Y * log_softmax(z, axis=1), axis=1))
    # = LSE(z) − y·z per sample
    assert want == pytest.approx(np.mean(logsumexp(z, axis=1) - np.sum(Y * z, axis=1)), rel=1e-13)
    for got in _both(net, th, X, Y):
        assert got == pytest.approx(want, rel=RTOL)


def test_cross_entropy_takes_integer_class_labels_as_one_hot_rows():
    net = _net("cross_entropy", "softmax")
    X, _, th = _data(net)
    labels = np.array([0, 2, 1, 1, 0])
    z, _ = _forward(net, th, X)
    want = np.mean(-log_softmax(z, axis=1)[np.arange(5), labels])
    for got in _both(net, th, X, labels):
        assert got == pytest.approx(want, rel=RTOL)


def test_sigmoid_cross_entropy_is_minus_y_log_sigma():
    net = _net("cross_entropy", "sigmoid")
    X, Y, th = _data(net, target="prob")
    _, p = _forward(net, th, X)
    want = np.mean(-np.sum(Y * np.log(p), axis=1))
    for got in _both(net, th, X, Y):
        assert got == pytest.approx(want, rel=RTOL)


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_kl_is_kl_of_target_from_prediction(output):
    net = _net("kl", output)
    X, Y, th = _data(net, target="prob")
    Y[0] = [0.0, 0.25, 0.75]                        # 0 log 0 = 0
    _, p = _forward(net, th, X)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(Y > 0, Y * np.log(Y / p), 0.0)
    want = np.mean(np.sum(terms, axis=1))
    reverse = np.mean(np.sum(p * np.log(p / np.where(Y > 0, Y, 1.0)), axis=1))
    assert abs(want - reverse) > 1e-3                # the direction is distinguishable
    for got in _both(net, th, X, Y):
        assert got == pytest.approx(want, rel=RTOL)


def test_kl_of_the_prediction_itself_is_zero():
    net = _net("kl", "softmax")
    X, _, th = _data(net)
    _, p = _forward(net, th, X)
    for got in _both(net, th, X, p / p.sum(axis=1, keepdims=True)):
        assert abs(got) < 1e-12


def test_the_batch_loss_is_the_mean_of_the_sample_losses():
    net = _net("mse")
    X, Y, th = _data(net, B=4)
    model = net.compile()
    each = [model.loss(th, X[i:i + 1], Y[i:i + 1]) for i in range(4)]
    assert model.loss(th, X, Y) == pytest.approx(np.mean(each), rel=RTOL)
    assert model.loss(th, np.repeat(X[:1], 3, axis=0), np.repeat(Y[:1], 3, axis=0)) == \
        pytest.approx(each[0], rel=RTOL)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_penalties_cover_every_weight_matrix_and_no_bias(kind):
    lam = 0.3
    pen = symnn.L1(lam) if kind == "l1" else symnn.L2(lam)
    net = _net("mse", penalties=[pen])
    X, Y, th = _data(net)
    _, yhat = _forward(net, th, X)
    p = _unflatten(net, th)
    f = np.abs if kind == "l1" else np.square
    want = np.mean((yhat - Y) ** 2) + lam * (f(p["W1"]).sum() + f(p["W2"]).sum())
    for got in _both(net, th, X, Y):
        assert got == pytest.approx(want, rel=RTOL)
    model = net.compile()
    _, g = model.loss_and_grad(th, X, Y)
    _, g0 = symnn.mlp([2, 3, 3], activation="tanh", loss="mse",
                      name="conv_mse_None").compile().loss_and_grad(th, X, Y)
    dR = lam * (np.sign(th) if kind == "l1" else 2 * th)   # no factor ½ in L2
    mask = np.concatenate([np.full(int(np.prod(s)), n.startswith("W"))
                           for n, s in net.param_shapes])
    np.testing.assert_allclose(g - g0, np.where(mask, dR, 0.0), rtol=1e-10, atol=1e-13)


def test_a_penalty_names_its_parameters():
    net = _net("mse", penalties=[symnn.L2(0.5, params=["W1"])])
    X, Y, th = _data(net)
    _, yhat = _forward(net, th, X)
    want = np.mean((yhat - Y) ** 2) + 0.5 * np.sum(_unflatten(net, th)["W1"] ** 2)
    for got in _both(net, th, X, Y):
        assert got == pytest.approx(want, rel=RTOL)


def test_a_model_penalty_covers_every_parameter_by_default():
    x, a, b = sp.symbols("x a b", real=True)
    m = symnn.Model(a * sp.exp(-b * x), inputs=[x], params=[a, b], loss="mse",
                    penalties=[symnn.L2(0.2)], name="conv_model_pen")
    X = np.array([[0.5], [1.5]])
    Y = np.array([1.0, 0.2])
    th = np.array([1.3, 0.7])
    want = np.mean((th[0] * np.exp(-th[1] * X[:, 0]) - Y) ** 2) + 0.2 * np.sum(th**2)
    model = m.compile()
    for got in (model.loss(th, X, Y), model.reference.loss(th, X, Y)):
        assert got == pytest.approx(want, rel=RTOL)


@pytest.mark.parametrize("loss", ["bce", "cross_entropy", "kl"])
@pytest.mark.parametrize("output", [None, "tanh", "relu"])
def test_a_logarithmic_loss_needs_a_sigmoid_or_softmax_output(loss, output):
    with pytest.raises(symnn.DeclarationError, match="sigmoid|softmax"):
        _net(loss, output)
