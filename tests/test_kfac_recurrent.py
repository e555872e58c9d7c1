"""K-FAC factors of recurrent layers (symnn.analysis.kfac_factors on RNN and GRU): a weight
shared over the unrolled steps, the conventions ``conv="expand"`` / ``"reduce"`` of
Eschenhagen et al. 2023 (as for Conv1D).

Witnesses: an RNN's forward and backward pass written out by hand in NumPy (the per-step
inputs ``a_t`` and pre-activation cotangents ``g_t``) and the factors computed from them;
``T = 1`` against the equivalent Dense network; the exact Gauss-Newton blocks from
``model.gnvp`` (one sample and one step: ``G ⊗ A`` is exact; every ``T``: ``G_reduce`` is the
bias's exact block, since the bias's gradient is ``Σ_t g_t``); and a short K-FAC fit.
"""

from __future__ import annotations

import numpy as np
import pytest

import symnn
from symnn.analysis import kfac_error, kfac_factors

RTOL = 1e-9
B, T, NI, NH, M = 4, 3, 2, 3, 2

_MODELS: dict = {}


def _model(kind, T=T):
    key = (kind, T)
    if key not in _MODELS:
        cls = symnn.RNN if kind == "rnn" else symnn.GRU
        _MODELS[key] = symnn.Network([cls(NI, NH, length=T), symnn.Dense(NH, M)],
                                     loss="mse").compile()
    return _MODELS[key]


def _case(kind, T=T, B=B, seed=0):
    m = _model(kind, T)
    rng = np.random.default_rng(seed)
    theta = m.init(seed) + 0.4 * rng.normal(size=m.n_params)
    X = rng.normal(size=(B, T * NI))
    y = rng.normal(size=(B, M))
    return m, theta, X, y


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _unpack(theta, T):
    """W_xh, W_hh, b, W2, b2 from the flat layout (the declared order)."""
    sizes = [(NH, NI), (NH, NH), (NH,), (M, NH), (M,)]
    out, off = [], 0
    for s in sizes:
        n = int(np.prod(s))
        out.append(theta[off:off + n].reshape(s))
        off += n
    return out


def _hand_rnn(theta, X, T):
    """Per-step inputs ``x_t`` ``(B, T, NI)``, ``h_{t−1}`` ``(B, T−1, NH)`` (steps 2 … T)
    and, per column ``c`` of the mse loss Hessian's square root (``√(2/M) e_c``), the
    pre-activation cotangents ``g_t`` ``(B, M, T, NH)``: BPTT by hand."""
    Wx, Wh, b, W2, _ = _unpack(theta, T)
    xs = X.reshape(len(X), T, NI)
    h = np.zeros((len(X), NH))
    hs = []
    for t in range(T):
        h = np.tanh(xs[:, t] @ Wx.T + (h @ Wh.T if t else 0) + b)
        hs.append(h)
    hs = np.stack(hs, axis=1)
    g = np.zeros((len(X), M, T, NH))
    for c in range(M):
        dh = np.tile(np.sqrt(2.0 / M) * W2[c], (len(X), 1))
        for t in reversed(range(T)):
            g[:, c, t] = dh * (1 - hs[:, t] ** 2)
            dh = g[:, c, t] @ Wh
    return xs, hs[:, :-1], g


def _hand_factors(a, g, bias, conv):
    """A, G from per-step inputs ``a`` ``(B, R, n)`` and cotangents ``g`` ``(B, M, R, k)``:
    expand ``A = Σ_t ā ā / (B R)``, ``G = Σ_c Σ_t g gᵀ / B``; reduce ``A = ā̂ ā̂ᵀ / B``
    (``ā̂`` the mean over t), ``G = Σ_c ĝ ĝᵀ / B`` (``ĝ`` the sum over t)."""
    Bn, R = a.shape[:2]
    if bias:
        a = np.concatenate([a, np.ones((Bn, R, 1))], axis=2)
    A = np.zeros((a.shape[2],) * 2)
    G = np.zeros((g.shape[3],) * 2)
    for s in range(Bn):
        if conv == "expand":
            for t in range(R):
                A += np.outer(a[s, t], a[s, t]) / (Bn * R)
                for c in range(g.shape[1]):
                    G += np.outer(g[s, c, t], g[s, c, t]) / Bn
        else:
            am = a[s].mean(axis=0)
            A += np.outer(am, am) / Bn
            for c in range(g.shape[1]):
                gs = g[s, c].sum(axis=0)
                G += np.outer(gs, gs) / Bn
    return A, G


@pytest.mark.parametrize("conv", ["expand", "reduce"])
def test_rnn_factors_are_the_hand_bptt(conv):
    m, theta, X, y = _case("rnn")
    f = kfac_factors(m, theta, X, y, "kflr", conv=conv)
    assert list(f) == ["W_xh1", "W_hh1", "W2"]
    xs, hprev, g = _hand_rnn(theta, X, T)
    fx, fh = f["W_xh1"], f["W_hh1"]
    assert (fx.bias, fx.positions, fx.conv) == ("b1", T, conv)
    assert (fh.bias, fh.positions, fh.conv) == (None, T - 1, conv)
    A, G = _hand_factors(xs, g, True, conv)
    assert _rel(fx.A, A) < RTOL and _rel(fx.G, G) < RTOL
    A, G = _hand_factors(hprev, g[:, :, 1:], False, conv)  # W_hh acts from step 2 on
    assert _rel(fh.A, A) < RTOL and _rel(fh.G, G) < RTOL
    # the index: W_xh then the bias column, row by row
    W = np.arange(NH * NI).reshape(NH, NI)
    b0 = NH * NI + NH * NH
    want = np.concatenate([W, b0 + np.arange(NH)[:, None]], axis=1).ravel()
    assert np.array_equal(fx.index, want)


def test_the_conventions_differ_for_a_shared_weight():
    """Not the same numbers under another name: expand and reduce give different factors
    for T > 1 (and a hand factor with the steps dropped would not match)."""
    m, theta, X, y = _case("rnn")
    fe = kfac_factors(m, theta, X, y, conv="expand")["W_xh1"]
    fr = kfac_factors(m, theta, X, y, conv="reduce")["W_xh1"]
    assert _rel(fe.A, fr.A) > 1e-3 and _rel(fe.G, fr.G) > 1e-3
    xs, _, g = _hand_rnn(theta, X, T)
    A_last, _ = _hand_factors(xs[:, -1:], g[:, :, -1:], True, "expand")
    assert _rel(fe.A, A_last) > 1e-3


@pytest.mark.parametrize("conv", ["expand", "reduce"])
def test_one_step_is_the_dense_network(conv):
    m, theta, X, y = _case("rnn", T=1)
    Wx, _Wh, b, W2, b2 = _unpack(theta, 1)
    dense = symnn.Network([symnn.Dense(NI, NH), "tanh", symnn.Dense(NH, M)],
                          loss="mse").compile()
    th = np.concatenate([Wx.ravel(), b, W2.ravel(), b2])
    fr = kfac_factors(m, theta, X, y, conv=conv)
    fd = kfac_factors(dense, th, X, y, conv=conv)
    assert list(fr) == ["W_xh1", "W2"]          # W_hh acts on h₀ = 0 nowhere
    for a, d in (("W_xh1", "W1"), ("W2", "W2")):
        assert fr[a].conv is None and fr[a].positions == 1
        assert _rel(fr[a].A, fd[d].A) < RTOL and _rel(fr[a].G, fd[d].G) < RTOL


def test_one_step_one_sample_kflr_is_exact():
    m, theta, X, y = _case("rnn", T=1, B=1)
    err = kfac_error(m, theta, X, y, "kflr")
    assert max(err.values()) < RTOL


@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_errors_against_the_exact_block(kind):
    m, theta, X, y = _case(kind)
    err = kfac_error(m, theta, X, y, "kflr")
    assert all(np.isfinite(v) for v in err.values())
    assert err["W2"] < 1 and max(err.values()) > 1e-6   # an approximation, not exact


def _bias_blocks(m, theta, X, y, f):
    """The exact Gauss-Newton block of each bias next to ``G_reduce`` of its weight."""
    for name, fac in f.items():
        if fac.bias is None:
            continue
        bi = fac.index.reshape(fac.G.shape[0], -1)[:, -1]
        V = np.zeros((bi.size, m.n_params))
        V[np.arange(bi.size), bi] = 1
        block = np.asarray(m.gnvp(theta, V, X, y))[:, bi]
        yield name, block, fac.G


@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_reduce_G_is_the_bias_block(kind):
    """The bias's gradient is Σ_t g_t: its exact GGN block is G_reduce (and A_reduce's bias
    corner is 1), which checks the per-step cotangents for every T."""
    m, theta, X, y = _case(kind)
    f = kfac_factors(m, theta, X, y, "kflr", conv="reduce")
    names = [n for n, *_ in _bias_blocks(m, theta, X, y, f)]
    assert len(names) == (2 if kind == "rnn" else 7)
    for name, block, G in _bias_blocks(m, theta, X, y, f):
        assert _rel(G, block) < RTOL, name
        assert abs(f[name].A[-1, -1] - 1) < RTOL


def test_gru_input_factor_by_hand():
    """The GRU's input weights read x_t at every step: A_expand, A_reduce from X by hand."""
    m, theta, X, y = _case("gru")
    xs = X.reshape(B, T, NI)
    for conv in ("expand", "reduce"):
        f = kfac_factors(m, theta, X, y, conv=conv)
        assert len(f) == 7 and f["W_hr1"].bias == "b_hr1" and f["W_hr1"].positions == T
        A, _ = _hand_factors(xs, np.zeros((B, 1, T, 1)), True, conv)
        for g in "rzn":
            assert _rel(f["W_i" + g + "1"].A, A) < RTOL


def test_kfac_fits_an_rnn():
    from symnn.train import KFAC, fit

    m = _model("rnn")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(24, T * NI))
    y = np.stack([np.tanh(X[:, ::2].sum(axis=1)), X[:, -1]], axis=1) * 0.5
    res = fit(m, X, y, KFAC(), epochs=15, progress=False, seed=0)
    loss = res.history.loss
    assert np.isfinite(loss[-1]) and loss[-1] < 0.5 * loss[0]


def test_truncated_steps_and_the_bias_pairing():
    """truncate=2 of T=4: the gradient reaches steps 3 and 4 only, so W_xh, W_hh and b have
    the same two cotangents; b is still W_xh's bias (its affine op adds it), not W_hh's."""
    m = symnn.Network([symnn.RNN(NI, NH, length=4, truncate=2), symnn.Dense(NH, M)],
                      loss="mse").compile()
    rng = np.random.default_rng(5)
    theta, X, y = m.init(1), rng.normal(size=(B, 4 * NI)), rng.normal(size=(B, M))
    f = kfac_factors(m, theta, X, y)
    assert (f["W_xh1"].bias, f["W_hh1"].bias) == ("b1", None)
    assert f["W_xh1"].positions == f["W_hh1"].positions == 2
    A, _ = _hand_factors(X.reshape(B, 4, NI)[:, 2:], np.zeros((B, 1, 2, 1)), True, "expand")
    assert _rel(f["W_xh1"].A, A) < RTOL


def test_curvature_equations_refuse_a_recurrent_weight_by_name():
    from symnn.analysis import curvature_equations
    from symnn.errors import AnalysisError

    net = symnn.Network([symnn.RNN(NI, NH, length=T), symnn.Dense(NH, M)], loss="mse")
    with pytest.raises(AnalysisError, match="W_xh1, W_hh1 are applied at several steps"):
        curvature_equations(net)
    one = symnn.Network([symnn.RNN(NI, NH, length=1), symnn.Dense(NH, M)], loss="mse")
    assert "A⁽²⁾" in str(curvature_equations(one))   # one step: Dense formulas


def test_the_operator_is_the_block_diagonal_of_the_recurrent_factors():
    from symnn.analysis import kfac_operator

    m, theta, X, y = _case("rnn")
    f = kfac_factors(m, theta, X, y)
    dense = np.zeros((m.n_params, m.n_params))
    for fac in f.values():
        dense[np.ix_(fac.index, fac.index)] = fac.kron()
    v = np.random.default_rng(2).normal(size=m.n_params)
    assert _rel(kfac_operator(m, theta, X, y) @ v, dense @ v) < RTOL


def test_kfac_refuses_a_one_step_rnn_naming_w_hh():
    """T = 1: W_hh multiplies nothing, has no factors, and KFAC says so when fit starts."""
    from symnn.train import KFAC, fit

    m, _theta, X, y = _case("rnn", T=1, B=6)
    with pytest.raises(symnn.DeclarationError, match="W_hh1"):
        fit(m, X, y, KFAC(), epochs=1, progress=False)
