"""Dropout (issue 13): the mask is an input of the derived program, so every derivative is
exact for a fixed mask.  Witnesses at a fixed random mask: the compiled kernels against the
NumPy reference and PyTorch autograd (``a·m/(1−p)`` by hand in torch, ``tests/
_torch_ref.py``) to 1e-9 relative, and against finite differences; ``mask=None`` against
the network without its Dropout layers (exactly); the kernels of networks without Dropout
unchanged; hostile ``p`` and masks refused with clear errors; training reproducible by
seed; spec and model files."""

from __future__ import annotations

import numpy as np
import pytest
from _exactness import HAVE_TORCH, check_case, rel_err
from strategies import NetCase, case_data, case_mask

import symnn
from symnn.check import gnvcheck, gradcheck, hesscheck
from symnn.codegen.numba import generate
from symnn.codegen.numba import kernels as kernels_mod
from symnn.derive import derive
from symnn.errors import (
    ArgumentError,
    DataError,
    DeclarationError,
    ModelFileError,
    ShapeError,
    SpecError,
)
from symnn.train.dropout import FixedMask, draw_masks


def _d(n_in, n_out, bias=True):
    return ("dense", n_in, n_out, bias)


#: Networks with Dropout in the places it can stand: after an activation, stacked with a
#: skip connection (and inside one), before a softmax output, on a convolution's
#: (channels, length) output.
CASES = [
    NetCase((_d(3, 4), "tanh", ("dropout", 0.5), _d(4, 3), "sigmoid", ("dropout", 0.25),
             _d(3, 2)), "mse", (("l2", 0.1),)),
    NetCase((_d(2, 4), "relu", ("dropout", 0.9),
             ("residual", (_d(4, 4), ("dropout", 0.5), "tanh")), _d(4, 3), "softmax"),
            "cross_entropy"),
    NetCase((_d(2, 3), "elu", ("dropout", 0.0), _d(3, 2), "sigmoid"), "bce",
            (("l1", 0.05),)),
    NetCase((("conv", 1, 2, 3, 1, 0, 6), "tanh", ("dropout", 0.5), ("flatten",), _d(8, 1)),
            "huber"),
]


@pytest.fixture(scope="module")
def mlp_case():
    """A small network with two Dropout layers, compiled once, and a batch at a mask."""
    net = CASES[0].build()
    model = net.compile()
    X, Y, th, v, V = case_data(net, 5, batch=6)
    mask = case_mask(model, 5, 6)
    assert 0 < mask.sum() < mask.size  # some units dropped, some kept
    return net, model, X, Y, th, v, V, mask


# ----------------------------------------------------------------------------------------
# the three witnesses at a fixed mask


@pytest.mark.parametrize("i, seed, f32", [(0, 1, True), (0, 7, False), (1, 7, False),
                                          (2, 7, False), (3, 7, False)])
def test_compiled_reference_and_torch_agree_at_a_fixed_mask(i, seed, f32):
    """predict, jacobian, loss, gradient, HVP (one and two directions), GN product and
    Hessian: compiled = reference = torch to 1e-9 relative (tests/_exactness.py); float32
    kernels within the stated tolerance of float64 (one row)."""
    res = check_case(CASES[i], seed, float32=f32)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert not res.out_of_domain
    if HAVE_TORCH:
        assert ("hessian", "compiled~torch") in res.errors
    assert res.ok, res.failures


def test_finite_differences_agree_at_a_fixed_mask(mlp_case):
    net, model, X, Y, th, v, V, mask = mlp_case
    fixed = FixedMask(model, mask)
    assert gradcheck(fixed, th, X, Y, n_directions=4, coordinates="auto")
    assert hesscheck(fixed, th, X, Y, n_directions=3)
    assert gnvcheck(fixed, th, X, Y, n_directions=2, max_blocks=8)
    # the Hessian column by column from central differences of the gradient
    H = model.hessian(th, X, Y, mask=mask)
    h = 1e-5
    Hfd = np.empty_like(H)
    for j in range(th.size):
        e = np.zeros_like(th)
        e[j] = h
        gp = model.loss_and_grad(th + e, X, Y, mask=mask)[1]
        gm = model.loss_and_grad(th - e, X, Y, mask=mask)[1]
        Hfd[:, j] = (gp - gm) / (2 * h)
    assert rel_err(H, Hfd) < 1e-6
    assert rel_err(H, model.reference.hessian(th, X, Y, mask=mask)) < 1e-9


def test_a_mask_redrawn_at_every_call_fails_the_gradient_check(mlp_case):
    """The checks must see one function: a model that draws a new mask per evaluation
    (what a fixed mask prevents) disagrees with its own finite differences."""
    net, model, X, Y, th, v, V, mask = mlp_case
    rng = np.random.default_rng(0)

    class Redrawn:
        n_params, param_shapes, dtype = model.n_params, model.param_shapes, model.dtype

        def loss(self, t, X, y):
            return model.loss(t, X, y, mask=draw_masks(model, X.shape[0], rng))

        def loss_and_grad(self, t, X, y):
            return model.loss_and_grad(t, X, y, mask=draw_masks(model, X.shape[0], rng))

    # (kink detection off: it would excuse the jumps as non-smooth points; the fixed-mask
    # model passes the same strict check)
    assert not gradcheck(Redrawn(), th, X, Y, n_directions=4, coordinates=0,
                         detect_kinks=False)
    assert gradcheck(FixedMask(model, mask), th, X, Y, n_directions=4, coordinates=0,
                     detect_kinks=False)


def test_the_mask_matters_and_the_witness_sees_it(mlp_case):
    """Another mask gives other values (a witness blind to the mask would pass wrongly)."""
    net, model, X, Y, th, v, V, mask = mlp_case
    other = 1.0 - mask
    g = model.loss_and_grad(th, X, Y, mask=mask)[1]
    assert rel_err(g, model.loss_and_grad(th, X, Y, mask=other)[1]) > 1e-3
    if HAVE_TORCH:
        from _torch_ref import TorchCase

        t_same = TorchCase(CASES[0], net).results(th, X, Y, v, V, mask)
        t_other = TorchCase(CASES[0], net).results(th, X, Y, v, V, other)
        assert rel_err(g, t_same["grad"]) < 1e-9
        assert rel_err(g, t_other["grad"]) > 1e-3


def _small():
    """The network the training tests share (one compilation)."""
    return symnn.Network([symnn.Dense(2, 8), "tanh", symnn.Dropout(0.25), symnn.Dense(8, 1)])


def test_inverted_scaling_a_mask_of_ones_scales_by_one_over_one_minus_p():
    """All units kept: ã = a/(1 − p), the same as the next Dense layer's weights scaled."""
    m = _small().compile()
    m0 = symnn.Network([symnn.Dense(2, 8), "tanh", symnn.Dense(8, 1)]).compile()
    th = m.init(seed=3)
    X = np.random.default_rng(0).normal(size=(4, 2))
    scaled = th.copy()
    scaled[24:32] /= 1 - 0.25  # W2 (1, 8) sits after W1 (8, 2) and b1 (8,)
    got = m.predict(th, X, mask=np.ones((4, 8)))
    assert np.allclose(got, m0.predict(scaled, X), rtol=1e-13, atol=0)
    zero = m.predict(th, X, mask=np.zeros((4, 8)))  # every unit dropped: the bias alone
    assert np.allclose(zero, th[32], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------
# mask=None: the expected network, exactly the network without Dropout


def test_no_mask_is_exactly_the_network_without_dropout():
    layers = [symnn.Dense(3, 4), "relu", symnn.Dropout(0.3), symnn.Dense(4, 4), "tanh",
              symnn.Residual([symnn.Dense(4, 4), symnn.Dropout(0.1), "tanh"]),
              symnn.Dropout(0.25), symnn.Dense(4, 2), "softmax"]
    net = symnn.Network(layers, loss="cross_entropy", penalties=[symnn.L2(0.1)])
    plain = symnn.Network([la for la in layers if not isinstance(la, symnn.Dropout)],
                          loss="cross_entropy", penalties=[symnn.L2(0.1)])
    m, m0 = net.compile(), plain.compile()
    rng = np.random.default_rng(1)
    th = m.init(seed=0)
    for B in (3, 80):  # the loop paths and the BLAS paths
        X, y = rng.normal(size=(B, 3)), rng.integers(0, 2, B)
        V = rng.normal(size=(2, m.n_params))
        for a, b in ((m, m0), (m.reference, m0.reference)):
            assert a.loss(th, X, y) == b.loss(th, X, y)
            assert np.array_equal(a.loss_and_grad(th, X, y)[1], b.loss_and_grad(th, X, y)[1])
            assert np.array_equal(a.hvp(th, V, X, y), b.hvp(th, V, X, y))
            assert np.array_equal(a.gnvp(th, V, X, y), b.gnvp(th, V, X, y))
            assert np.array_equal(a.hessian(th, X, y), b.hessian(th, X, y))
            assert np.array_equal(a.jacobian(th, X), b.jacobian(th, X))
            assert np.array_equal(a.predict(th, X), b.predict(th, X))


# ----------------------------------------------------------------------------------------
# kernels: networks without Dropout generate what they generated before masks existed


def _sources(net):
    d = derive(net)
    return generate(d, "float64").source, generate(d, "float32").source


def test_networks_without_dropout_generate_byte_identical_kernels(monkeypatch):
    """The mask hooks are no-ops without Dropout: the source with them switched off is
    byte for byte the same, and no kernel takes M."""
    nets = [symnn.mlp([3, 5, 2], activation="tanh", output="softmax", loss="cross_entropy"),
            symnn.Network([symnn.Conv1D(1, 2, 3, length=6), "relu", symnn.Flatten(),
                           symnn.Dense(8, 1)], loss="mse")]
    with_hooks = [_sources(n) for n in nets]
    monkeypatch.setattr(kernels_mod, "seed_masks", lambda *a: None)
    monkeypatch.setattr(kernels_mod, "with_mask_arg", lambda d, args: args)
    fresh = [symnn.mlp([3, 5, 2], activation="tanh", output="softmax",
                       loss="cross_entropy"),
             symnn.Network([symnn.Conv1D(1, 2, 3, length=6), "relu", symnn.Flatten(),
                            symnn.Dense(8, 1)], loss="mse")]
    assert [_sources(n) for n in fresh] == with_hooks
    g = generate(derive(nets[0]))
    assert all("M" not in k.args for k in g.kernels.values())


def test_kernels_of_a_network_with_dropout_take_the_mask_after_X():
    g = generate(derive(CASES[0].build()))
    assert g.kernels["loss_and_grad"].args == ("params", "X", "M", "Y", "grad", "work")
    assert g.kernels["hvp"].args == ("params", "V", "X", "M", "Y", "out", "work")
    assert g.kernels["predict"].args == ("params", "X", "M", "out", "work")


# ----------------------------------------------------------------------------------------
# declarations, masks and their errors


def test_equations_print_inverted_dropout():
    net = symnn.Network([symnn.Dense(2, 3), "relu", symnn.Dropout(0.5), symnn.Dense(3, 1)])
    text = str(net.equations())
    assert "ã⁽¹⁾ = a⁽¹⁾ ⊙ m⁽¹⁾/(1 − 0.5)" in text
    assert "∇_a⁽¹⁾ℓ = ∇_ã⁽¹⁾ℓ ⊙ m⁽¹⁾/(1 − 0.5)" in text
    assert r"\tilde{a}^{(1)} &= a^{(1)} \odot \frac{m^{(1)}}{1 - 0.5}" in net.equations().latex()


@pytest.mark.parametrize("p", [-0.1, 1, 1.5, float("nan"), float("inf"), "0.5", None, True,
                               1j, [0.5]])
def test_hostile_p_is_a_declaration_error(p):
    with pytest.raises(DeclarationError, match="Dropout: p must"):
        symnn.Dropout(p)


def test_p_zero_keeps_the_mask_unscaled():
    """p = 0 is accepted (nothing is dropped in training: the masks drawn are all ones); a
    mask given by hand still applies, unscaled."""
    assert symnn.Dropout(0).p == 0.0 and symnn.Dropout(np.float32(0.5)).p == 0.5
    net = symnn.Network([symnn.Dense(2, 2), "tanh", symnn.Dropout(0), symnn.Dense(2, 1)])
    m = net.compile()
    th, X = m.init(seed=1), np.ones((3, 2))
    assert np.array_equal(m.predict(th, X, mask=np.ones((3, 2))), m.predict(th, X))
    assert not np.array_equal(m.predict(th, X, mask=np.zeros((3, 2))), m.predict(th, X))
    assert (draw_masks(m, 50, np.random.default_rng(0)) == 1).all()


def test_dropout_where_it_would_drop_outputs_or_inputs_is_refused():
    with pytest.raises(DeclarationError, match="last layer"):
        symnn.Network([symnn.Dense(2, 3), "sigmoid", symnn.Dropout(0.5)], loss="bce")
    with pytest.raises(DeclarationError, match="last layer"):
        symnn.Network([symnn.Dense(2, 3), symnn.Dropout(0.5), "identity"])
    with pytest.raises(DeclarationError, match="before any layer with parameters"):
        symnn.Network([symnn.Dropout(0.5), symnn.Dense(2, 3)])


def test_bad_masks_are_clear_errors(mlp_case):
    net, model, X, Y, th, v, V, mask = mlp_case
    with pytest.raises(ShapeError, match=r"mask must have shape \(B, 7\)"):
        model.loss(th, X, Y, mask=mask[:, :3])
    with pytest.raises(DataError, match="0 \\(dropped\\) or 1"):
        model.loss(th, X, Y, mask=mask * 2)
    with pytest.raises(DataError):
        model.loss(th, X, Y, mask=np.full_like(mask, np.nan))
    with pytest.raises(DataError):
        model.reference.loss(th, X, Y, mask=[["a"] * 7] * 6)
    plain = symnn.mlp([3, 2]).compile()
    with pytest.raises(ArgumentError, match="no Dropout layer"):
        plain.loss(plain.init(), X, Y, mask=mask)


# ----------------------------------------------------------------------------------------
# training


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2))
    return X, np.sin(X[:, 0]) + X[:, 1] ** 2 / 3


def test_fit_is_reproducible_by_seed_and_improves_the_loss():
    m = _small().compile()
    X, y = _data()
    kw = dict(epochs=15, batch_size=16, progress=False, check_every=5)
    r1 = m.fit(X, y, "adam", seed=3, **kw)
    r2 = m.fit(X, y, "adam", seed=3, **kw)
    r3 = m.fit(X, y, "adam", seed=4, **kw)
    assert np.array_equal(r1.params, r2.params)
    assert not np.array_equal(r1.params, r3.params)
    before = m.loss(m.init(seed=3), X, y)
    assert m.loss(r1.params, X, y) < 0.7 * before


def test_each_step_is_the_gradient_at_its_own_mask():
    """One SGD step of a fit equals θ − η ∇L(θ; its mask), the mask drawn as documented
    (from the fit's generator, after the epoch's permutation when it shuffles)."""
    m = _small().compile()
    X, y = _data()
    X, y = X[:8], y[:8]
    res = m.fit(X, y, symnn.SGD(lr=0.1), epochs=1, batch_size=None, seed=2, shuffle=False,
                progress=False, check_every=0)
    mask = draw_masks(m, 8, np.random.default_rng(2))  # (shuffle=False: no permutation)
    th = m.init(seed=2)
    want = th - 0.1 * m.loss_and_grad(th, X, y, mask=mask)[1]
    assert np.allclose(res.params, want, rtol=1e-12, atol=1e-15)
    no_drop = th - 0.1 * m.loss_and_grad(th, X, y)[1]
    assert not np.allclose(res.params, no_drop)


def test_fit_refuses_second_order_optimizers_and_the_epoch_kernel_with_reasons():
    m = _small().compile()
    X, y = _data()
    for opt in ("lbfgs", "newton", "levenberg_marquardt"):
        with pytest.raises(ArgumentError, match="second-order.*Dropout"):
            m.fit(X, y, opt, epochs=1, progress=False)
    with pytest.raises(ArgumentError, match="draws no Dropout masks"):
        m.fit(X, y, "adam", epochs=1, progress=False, engine="kernel")


# ----------------------------------------------------------------------------------------
# spec files and model files


def test_spec_and_model_files_round_trip(tmp_path):
    spec = symnn.loads_spec("""
[network]
layers = [{dense = [2, 4]}, {activation = "tanh"}, {dropout = 0.25},
          {residual = [{dense = [4, 4]}, {dropout = 0.5}]}, {dense = [4, 1]}]
loss = "mse"
""")
    net = spec.declared
    assert [repr(la) for la in net.layers][2] == "Dropout(0.25)"
    assert net.spec()["layers"][2] == {"dropout": 0.25}
    m = net.compile()
    th = m.init(seed=0)
    symnn.save(tmp_path / "m.json", m, th)
    back = symnn.load(tmp_path / "m.json")
    assert repr(back.declared) == repr(net)
    X = np.random.default_rng(0).normal(size=(3, 2))
    mask = np.ones((3, 8))
    mask[:, ::3] = 0
    again = back.declared.compile()
    assert np.array_equal(again.predict(back.params, X, mask=mask), m.predict(th, X, mask=mask))


@pytest.mark.parametrize("bad", ["1", "-0.1", "nan", '"x"', "true", "0.5, stride = 2"])
def test_hostile_dropout_in_a_spec_is_a_spec_error(bad):
    with pytest.raises(SpecError, match="dropout|Dropout"):
        symnn.loads_spec("[network]\nlayers = [{dense = [2, 4]}, {dropout = %s}, "
                         "{dense = [4, 1]}]\n" % bad)


def test_hostile_dropout_in_a_model_file_is_a_model_file_error():
    from symnn.train.modelspec import declared_from_spec

    good = symnn.Network([symnn.Dense(2, 3), "tanh", symnn.Dropout(0.5),
                          symnn.Dense(3, 1)]).spec()
    assert repr(declared_from_spec(good).layers[2]) == "Dropout(0.5)"
    for bad in (1.0, "0.5", None, {"p": 0.5}):
        data = dict(good, layers=list(good["layers"]))
        data["layers"][2] = {"dropout": bad}
        with pytest.raises(ModelFileError, match="Dropout|dropout"):
            declared_from_spec(data)


# ----------------------------------------------------------------------------------------
# the other readers of the derived program: expanded forms, per-sample analysis


def test_expanded_forms_carry_the_mask_symbols():
    import sympy as sp

    net = symnn.Network([symnn.Dense(1, 1), "tanh", symnn.Dropout(0.5), symnn.Dense(1, 1)])
    L = net.loss_expr()
    m1 = sp.Symbol("m1_1", real=True)
    assert m1 in L.free_symbols
    assert str(L) == "(2*W2_11*m1_1*tanh(W1_11*x1 + b1_1) + b2_1 - y1)**2"
    g = net.gradient()
    model = net.compile()
    th = np.array([0.3, -0.2, 0.7, 0.1])  # W1, b1, W2, b2
    x, y = 0.9, -0.4
    for mv in (0, 1):
        sub = {sp.Symbol(n, real=True): v for n, v in
               zip(("W1_11", "b1_1", "W2_11", "b2_1", "x1", "y1"), (*th, x, y))}
        sub[m1] = mv
        want = model.loss_and_grad(th, [[x]], [y], mask=[[mv]])[1]
        got = [float(g[sp.Symbol(n, real=True)].xreplace(sub))
               for n in ("W1_11", "b1_1", "W2_11", "b2_1")]
        assert np.allclose(got, want, rtol=1e-12, atol=1e-15)


def test_per_sample_analysis_reads_the_expected_network(mlp_case):
    from symnn.analysis import per_sample_gradients

    net, model, X, Y, th, v, V, mask = mlp_case
    G = per_sample_gradients(model, th, X, Y)  # each row: one sample's loss, penalties in
    assert np.allclose(G.mean(axis=0), model.loss_and_grad(th, X, Y)[1], rtol=1e-10)
    assert np.allclose(G[0], model.loss_and_grad(th, X[:1], Y[:1])[1], rtol=1e-10)
    assert not np.allclose(G.mean(axis=0), model.loss_and_grad(th, X, Y, mask=mask)[1])
