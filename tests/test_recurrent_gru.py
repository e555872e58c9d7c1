"""GRU under the microscope (issue 13): the NumPy cell and its Jacobians against finite
differences and ``torch.nn.GRUCell``; the recurrent Jacobians along a trajectory against
the derived program's cotangents; fixed points under a constant input; the Lipschitz bound;
the printed backpropagation through time against the program's gradients."""

from __future__ import annotations

import numpy as np
import pytest
from _exactness import HAVE_TORCH

import symnn
from symnn.analysis import fixed_points, lipschitz_bound, recurrent_jacobians, time_gradient_flow
from symnn.analysis.gru import GRUCell
from symnn.analysis.persample import evaluate_program


def _params(H, N, seed, scale=1.0, l=1):
    rng = np.random.default_rng(seed)
    p = {}
    for w in "Wb":
        for s in "ih":
            for g in "rzn":
                shape = ((H, N) if s == "i" else (H, H)) if w == "W" else (H,)
                p[f"{w}_{s}{g}{l}"] = scale * rng.normal(size=shape)
    return p


def _fd(f, v, eps=1e-6):
    cols = []
    for i in range(v.size):
        e = np.zeros_like(v)
        e[i] = eps
        cols.append((f(v + e) - f(v - e)) / (2 * eps))
    return np.array(cols).T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cell_jacobians_match_central_differences(seed):
    H, N = 3, 2
    cell = GRUCell.from_params(_params(H, N, seed, 1.5), 1)
    rng = np.random.default_rng(seed + 10)
    x, h = rng.normal(size=N), rng.uniform(-1, 1, H)
    Jh, Jx = cell.jacobians(x, h)
    assert np.allclose(Jh, _fd(lambda v: cell(x, v), h), atol=1e-8)
    assert np.allclose(Jx, _fd(lambda v: cell(v, h), x), atol=1e-8)


@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch is not installed")
def test_cell_is_torch_gru_cell_and_its_jacobian_is_autograd():
    import torch

    H, N = 3, 2
    p = _params(H, N, 4)
    t = torch.nn.GRUCell(N, H).double()
    with torch.no_grad():
        for name, s in (("weight_ih", "W_i"), ("weight_hh", "W_h"), ("bias_ih", "b_i"),
                        ("bias_hh", "b_h")):
            getattr(t, name).copy_(torch.tensor(np.concatenate([p[f"{s}{g}1"] for g in "rzn"])))
    cell = GRUCell.from_params(p, 1)
    rng = np.random.default_rng(5)
    x, h = rng.normal(size=N), rng.uniform(-1, 1, H)
    want = t(torch.tensor(x)[None], torch.tensor(h)[None]).detach().numpy()[0]
    assert np.allclose(cell(x, h), want, rtol=1e-14, atol=1e-15)
    Jh = torch.autograd.functional.jacobian(lambda v: t(torch.tensor(x)[None], v[None])[0],
                                            torch.tensor(h)).numpy()
    assert np.allclose(cell.jacobians(x, h)[0], Jh, rtol=1e-12, atol=1e-14)


@pytest.fixture(scope="module")
def gru_net():
    net = symnn.Network([symnn.GRU(2, 3, length=6), symnn.Dense(3, 1)], loss="mse",
                        name="gru6")
    return net, net.compile().reference


def test_recurrent_jacobians_carry_the_programs_cotangents_back(gru_net):
    """∂ℓ/∂hₜ = Jₜ₊₁ᵀ ∂ℓ/∂hₜ₊₁ with the cell's Jacobians at the program's own states; and
    the states the NumPy cell computes are the program's."""
    net, ref = gru_net
    rng = np.random.default_rng(0)
    th = ref.init(0) + 0.5 * rng.normal(size=ref.init(0).size)
    X, y = rng.normal(size=(1, 6, 2)), np.ones((1, 1))
    flow = time_gradient_flow(ref, th, X, y)
    J, rho = recurrent_jacobians(ref, th, X[0])
    assert J.shape == (6, 3, 3) and rho.shape == (6,)
    ev = evaluate_program(ref, th, X, y)
    by = {op.out.name: op.out for op in ev.derived.forward_ops}
    cell, h = GRUCell.from_params(ref.unflatten(th), 1), np.zeros(3)
    for t in range(1, 7):
        h = cell(X[0, t - 1], h)
        assert np.allclose(h, np.asarray(ev.env[by[f"h1_{t}"]])[0], rtol=1e-13, atol=1e-15)
    g = np.asarray(ev.env[ev.derived.cotangent[by["h1_6"]]])[0]
    norms = [np.linalg.norm(g)]
    for t in range(5, 0, -1):
        g = J[t].T @ g
        norms.append(np.linalg.norm(g))
    assert np.allclose(flow.norms, norms[::-1], rtol=1e-10)
    assert np.allclose(rho, [max(abs(np.linalg.eigvals(j))) for j in J])


@pytest.mark.parametrize("seed,stable", [(2, True), (3, False)])
def test_fixed_points_of_a_gru_under_a_constant_input(gru_net, seed, stable):
    """h* = cell(x, h*), its eigenvalues those of the finite-difference Jacobian, and the
    verdict borne out by iterating the cell from a point nearby."""
    net, ref = gru_net
    params = _params(3, 2, seed, 1.0)
    x = np.array([0.3, -0.8])
    fps = fixed_points(net, params, x=x, starts=16)
    cell = GRUCell.from_params(params, 1)
    for p in fps:
        assert np.linalg.norm(cell(x, p.h) - p.h) < 1e-10
        assert np.allclose(np.sort_complex(p.eigenvalues),
                           np.sort_complex(np.linalg.eigvals(_fd(lambda v: cell(x, v), p.h))),
                           atol=1e-7)
    p = fps[0]
    assert p.stable == stable
    h = p.h + 1e-4
    for _ in range(300):
        h = cell(x, h)
    assert (np.linalg.norm(h - p.h) < 1e-8) == stable
    with pytest.raises(symnn.AnalysisError, match="2 input features"):
        fixed_points(net, params, x=np.zeros(3))


def test_rnn_fixed_points_take_a_constant_input():
    net = symnn.Network([symnn.RNN(1, 1, length=2), symnn.Dense(1, 1)], loss="mse")
    params = {"W_hh1": np.array([[2.0]]), "W_xh1": np.array([[1.0]]), "b1": np.array([0.0])}
    fps = fixed_points(net, params, x=np.array([0.5]), starts=12)
    for p in fps:
        assert abs(np.tanh(2 * p.h[0] + 0.5) - p.h[0]) < 1e-12
    assert len(fps) == 3 and sum(p.stable for p in fps) == 2


@pytest.mark.parametrize("seed", [0, 1])
def test_lipschitz_bound_of_a_gru_holds_per_step_and_end_to_end(seed):
    """a ≥ ‖∂hₜ/∂hₜ₋₁‖, c ≥ ‖∂hₜ/∂xₜ‖ anywhere on the state box, and the network's bound
    is above its empirical input-Jacobian norm."""
    from symnn.analysis import derivative_bound
    from symnn.declare.recurrent_bounds import gru_lipschitz

    g = symnn.GRU(2, 3, length=4)
    params = _params(3, 2, seed, 2.0)
    (f,) = gru_lipschitz(g, params, 1, derivative_bound)
    a = float(f.note.split("a = ")[1].split()[0])
    c = float(f.note.split("c = ")[1].split(",")[0])
    cell = GRUCell.from_params(params, 1)
    rng = np.random.default_rng(seed)
    worst_h = worst_x = 0.0
    for _ in range(300):
        Jh, Jx = cell.jacobians(3 * rng.normal(size=2), rng.uniform(-1, 1, 3))
        worst_h = max(worst_h, np.linalg.norm(Jh, 2))
        worst_x = max(worst_x, np.linalg.norm(Jx, 2))
    assert worst_h <= a * (1 + 1e-4) and worst_x <= c * (1 + 1e-4)
    assert np.isclose(f.value, c * np.sqrt(sum(a ** (2 * j) for j in range(4))), rtol=1e-3)
    net = symnn.Network([g, symnn.Dense(3, 1)], loss="mse")
    m = net.compile().reference
    th = m.flatten({**params, "W2": rng.normal(size=(1, 3)), "b2": np.zeros(1)})
    rep = lipschitz_bound(m, th, rng.normal(size=(10, 4, 2)))
    assert rep.empirical <= rep.bound


# ----------------------------------------------------------------------------------------
# printing: the GRU's backpropagation through time, derived from the traced cell


def _ev(e, env):
    """Evaluate a printed rhs (scalar bodies elementwise, matrix expressions as such)."""
    import sympy as sp

    if isinstance(e, (sp.Symbol, sp.MatrixSymbol)):
        return env[e.name]
    if e.is_Number:
        return float(e)
    if isinstance(e, sp.OneMatrix):
        return np.ones(e.shape, float)
    if isinstance(e, sp.Transpose):
        return _ev(e.arg, env).T
    if isinstance(e, (sp.Add, sp.MatAdd)):
        return sum(_ev(a, env) for a in e.args)
    if isinstance(e, sp.MatMul):  # (a Mul too)
        out = None
        for a in e.args:
            v = _ev(a, env)
            out = v if out is None else (out * v if np.ndim(v) == 0 or np.ndim(out) == 0
                                         else out @ v)
        return out
    if isinstance(e, (sp.Mul, sp.HadamardProduct)):
        out = 1.0
        for a in e.args:
            out = out * _ev(a, env)
        return out
    if isinstance(e, (sp.Pow, sp.HadamardPower)):
        return _ev(e.args[0], env) ** int(e.args[1])
    raise AssertionError(f"unexpected node {type(e).__name__}: {e}")


def test_printed_gru_bptt_is_the_programs_gradient(gru_net):
    """Run the printed recursion (δh, δn, δu, δr) backwards along a trajectory with the
    program's own forward values: every δhₜ is the program's cotangent of hₜ, and the
    printed sums over t are the gradient of every GRU parameter.  A line with the update
    gate's factor dropped fails the same comparison."""
    import sympy as sp

    net, ref = gru_net
    eq = net.equations()
    rng = np.random.default_rng(3)
    th = ref.init(0) + 0.4 * rng.normal(size=ref.init(0).size)
    X, y = rng.normal(size=(1, 6, 2)), np.array([[0.7]])
    ev = evaluate_program(ref, th, X, y)
    by = {op.out.name: op.out for op in ev.derived.forward_ops}
    val = lambda n: np.asarray(ev.env[by[n]], float)[0][:, None]  # noqa: E731
    params = {k: np.asarray(v, float) for k, v in ref.unflatten(th).items()}
    params = {k: (v[:, None] if v.ndim == 1 else v) for k, v in params.items()}
    T, H = 6, 3
    cots = {t: np.asarray(ev.env[ev.derived.cotangent[by[f"h1_{t}"]]], float)[0][:, None]
            for t in range(1, T + 1)}
    names = ["bptt_dh1"] + [f"bptt_d{g}1" for g in "nur"] + [
        f"bptt_g{n}" for n in params if n.endswith("1")]

    def run(rhs):
        """(max relative error of δhₜ against the program, the printed gradient sums)."""
        d = {t: {k: np.zeros((H, 1)) for k in ("δh", "δr", "δu", "δn", "u", "r")}
             for t in range(1, T + 2)}
        for t in range(1, T + 1):
            d[t].update({k: val(f"{k}1_{t}") for k in ("r", "u", "n", "cn")})
        grads, worst = {}, 0.0
        for t in range(T, 0, -1):
            env = {f"{k}1[t+1]": v for k, v in d[t + 1].items()}
            env.update({f"{k}1[t]": v for k, v in d[t].items()})
            env.update(params, g1=cots[T] if t == T else np.zeros((H, 1)),
                       **{"x1[t]": X[0, t - 1][:, None], "h1[t-1]": val(f"h1_{t - 1}")})
            d[t]["δh"] = env["δh1[t]"] = _ev(rhs["bptt_dh1"], env)
            for g in "nur":
                d[t][f"δ{g}"] = env[f"δ{g}1[t]"] = _ev(rhs[f"bptt_d{g}1"], env)
            worst = max(worst, np.abs(d[t]["δh"] - cots[t]).max() / np.abs(cots[t]).max())
            for name in rhs:
                if name.startswith("bptt_g"):
                    grads[name[6:]] = grads.get(name[6:], 0) + _ev(rhs[name], env)
        return worst, grads

    rhs = {n: eq.rhs(n) for n in names}
    worst, grads = run(rhs)
    assert worst < 1e-10
    _, want = ref.loss_and_grad(th, X, y)
    want = ref.unflatten(want)
    assert len(grads) == 12
    for name, g in grads.items():
        assert np.allclose(g.reshape(want[name].shape), want[name], rtol=1e-10, atol=1e-14), name
    u, n, dh = (sp.Symbol(f"{k}1[t]") for k in ("u", "n", "δh"))
    assert sp.expand(rhs["bptt_dn1"] - dh * (1 - u) * (1 - n ** 2)) == 0
    wrong = dict(rhs, bptt_dn1=dh * (1 - n ** 2))           # (1 − uₜ) dropped
    assert run(wrong)[0] > 1e-3


def test_printed_gru_bptt_lines_read_as_in_a_textbook():
    import sympy as sp

    net = symnn.Network([symnn.GRU(1, 2, length=3, truncate=1), symnn.Dense(2, 1)],
                        loss="mse")
    eq = net.equations()
    assert eq.line("bptt_dn1") == "δn⁽¹⁾ₜ = δh⁽¹⁾ₜ ⊙ (1 − u⁽¹⁾ₜ) ⊙ (1 − (n⁽¹⁾ₜ)²)"
    assert eq.line("bptt_gW_hn1") == "∂L/∂W_hn⁽¹⁾ = ⟨Σₜ (r⁽¹⁾ₜ ⊙ δn⁽¹⁾ₜ) h⁽¹⁾ₜ₋₁ᵀ⟩"
    assert eq.line("bptt_gW_iz1") == "∂L/∂W_iz⁽¹⁾ = ⟨Σₜ δu⁽¹⁾ₜ x⁽¹⁾ₜᵀ⟩"
    line = eq.line("bptt_dh1")
    assert "u⁽¹⁾ₜ₊₁ ⊙ δh⁽¹⁾ₜ₊₁" in line and "W_hn⁽¹⁾ᵀ (r⁽¹⁾ₜ₊₁ ⊙ δn⁽¹⁾ₜ₊₁)" in line
    assert "dropped at t ∈ [1, 2]" in line
    r, dn = (sp.MatrixSymbol(n, 2, 1) for n in ("r1[t]", "δn1[t]"))
    assert eq.rhs("bptt_gb_hn1") == sp.HadamardProduct(r, dn)
    assert eq.rhs("bptt_gW_hn1") == sp.HadamardProduct(r, dn) * sp.MatrixSymbol(
        "h1[t-1]", 2, 1).T
    u, n, dh = (sp.Symbol(f"{k}1[t]") for k in ("u", "n", "δh"))
    assert sp.expand(eq.rhs("bptt_dn1") - dh * (1 - u) * (1 - n ** 2)) == 0


def test_latex_document_with_a_gru_compiles(tmp_path):
    import shutil

    from symnn.printing.document import compile_pdf, export_latex

    net = symnn.Network([symnn.GRU(1, 2, length=2), symnn.Dense(2, 1)], loss="mse")
    tex = export_latex(net, tmp_path / "gru.tex")
    assert r"\delta h^{(1)}_{t} &= \frac{\partial \ell}{\partial h^{(1)}_{t}}" in tex
    assert r"{W_{hn}^{(1)}}^{\top} \left({r}^{(1)}_{t+1} \odot {\delta n}^{(1)}_{t+1}\right)" \
        in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not on PATH")
    assert compile_pdf(tmp_path / "gru.tex").is_file()
