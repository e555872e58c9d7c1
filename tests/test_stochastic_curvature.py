"""Matrix-free curvature: LinearOperator views, Hutchinson / Hutch++ traces and diagonals,
stochastic Lanczos quadrature — each against the dense exact matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla

import symnn
from symnn.analysis import (
    Estimate,
    SpectralDensity,
    ggn_operator,
    hessian_operator,
    hutchinson_diag,
    hutchinson_trace,
    spectral_density,
)
from symnn.analysis.stochastic import _rademacher
from symnn.errors import AnalysisError, ShapeError, SymnnError


@pytest.fixture(scope="module")
def clf():
    """A 26-parameter softmax classifier, its batch, θ, and the dense Hessian and GGN."""
    model = symnn.mlp([3, 4, 2], activation="tanh", output="softmax",
                      loss="cross_entropy").compile()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    Y = np.eye(2)[rng.integers(0, 2, 20)]
    theta = model.init(seed=1)
    H = model.hessian(theta, X, Y)
    G = np.array([model.gnvp(theta, e, X, Y) for e in np.eye(model.n_params)])
    return model, theta, X, Y, H, G


@pytest.fixture(scope="module")
def reg():
    """A 31-parameter regression net with one output and a batch of 4: its GGN has rank ≤ 4."""
    model = symnn.mlp([2, 6, 2, 1], activation="tanh", loss="mse").compile()
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(4, 2)), rng.normal(size=(4, 1))
    theta = model.init(seed=2)
    H = model.hessian(theta, X, y)
    G = np.array([model.gnvp(theta, e, X, y) for e in np.eye(model.n_params)])
    return model, theta, X, y, H, G


# -- operators -------------------------------------------------------------------------------

def test_operators_equal_the_dense_matrices(clf):
    model, theta, X, Y, H, G = clf
    P = model.n_params
    I = np.eye(P)
    for op, dense in ((hessian_operator(model, theta, X, Y), H),
                      (ggn_operator(model, theta, X, Y), G)):
        assert op.shape == (P, P) and op.dtype == model.dtype
        assert np.max(np.abs(op @ I - dense)) <= 1e-12            # matmat
        assert op.calls == 1                                       # …in one kernel call
        v = np.random.default_rng(5).normal(size=P)
        assert np.max(np.abs(op @ v - dense @ v)) <= 1e-12        # matvec
        assert np.max(np.abs(op.rmatvec(v) - dense.T @ v)) <= 1e-12
        assert op.T is op and op.H is op
    # the GGN is not the Hessian here (the σ″ terms differ), so the two checks are distinct
    assert np.max(np.abs(H - G)) > 1e-3
    assert np.all(np.linalg.eigvalsh(G) > -1e-12)                 # CE's GGN is PSD


def test_operator_works_with_scipy_eigsh(clf):
    model, theta, X, Y, H, _ = clf
    top = sla.eigsh(hessian_operator(model, theta, X, Y), k=2, which="LA", tol=1e-12,
                    return_eigenvectors=False, v0=np.ones(model.n_params))
    assert np.allclose(np.sort(top), np.linalg.eigvalsh(H)[-2:], rtol=1e-9)


# -- Hutchinson ------------------------------------------------------------------------------

def test_hutchinson_trace_is_within_its_standard_errors(clf):
    """Over 30 seeds the estimates are within 3 standard errors, and the z-scores spread like
    a standard normal: the reported standard error is neither too small nor too large.

    The samples zᵀAz of a PSD matrix are right-skewed, so the studentised mean has a heavier
    left tail than a normal (about 1 % beyond −3 at 60 probes for this GGN, measured over
    2000 seeds): one of 30 may fall beyond 3, none far beyond."""
    model, theta, X, Y, H, G = clf
    for matrix, dense in (("hessian", H), ("ggn", G)):
        exact = np.trace(dense)
        z = []
        for seed in range(30):
            est = hutchinson_trace(model, theta, X, Y, matrix=matrix, probes=60, seed=seed)
            assert isinstance(est, Estimate) and est.probes == 60
            z.append((est.value - exact) / est.stderr)
        z = np.array(z)
        assert np.sum(np.abs(z) >= 3) <= 1 and np.max(np.abs(z)) < 6, (matrix, z)
        spread = 1.4826 * np.median(np.abs(z - np.median(z)))        # robust σ of z
        assert 0.6 < spread < 1.5, (matrix, spread)
        assert 0.6 < np.std(z, ddof=1) < 2.0, (matrix, np.std(z, ddof=1))
        assert abs(np.median(z)) < 0.6, (matrix, np.median(z))
        # a wrong standard error fails: √probes too small or too large moves the spread
        assert not 0.6 < spread * np.sqrt(60) < 1.5 and not 0.6 < spread / np.sqrt(60) < 1.5


def test_hutchinson_probe_samples_are_exact_quadratic_forms(clf):
    """With one probe the estimate is zᵀHz exactly, for the Rademacher z of that seed."""
    model, theta, X, Y, H, _ = clf
    est = hutchinson_trace(model, theta, X, Y, probes=1, seed=7)
    z = _rademacher(np.random.default_rng(7), 1, model.n_params)[0]
    assert set(np.unique(z)) == {-1.0, 1.0}
    assert abs(est.value - z @ H @ z) <= 1e-12 * max(1.0, abs(est.value))
    assert np.isnan(est.stderr)                                    # one sample: no spread


def test_hutchinson_diag_converges_to_the_exact_diagonal(clf):
    model, theta, X, Y, H, G = clf
    for matrix, dense in (("hessian", H), ("ggn", G)):
        exact = np.diag(dense)
        few = hutchinson_diag(model, theta, X, Y, matrix=matrix, probes=50, seed=1)
        many = hutchinson_diag(model, theta, X, Y, matrix=matrix, probes=2000, seed=1)
        assert many.value.shape == (model.n_params,)
        err_few = np.linalg.norm(few.value - exact)
        err_many = np.linalg.norm(many.value - exact)
        assert err_many < err_few / 3                             # ~ √(2000/50) ≈ 6
        assert np.all(np.abs(many.value - exact) <= 4.5 * many.stderr + 1e-14)
        # the standard errors shrink like 1/√probes
        ratio = np.median(few.stderr / np.maximum(many.stderr, 1e-300))
        assert 4 < ratio < 9


def test_hutchplusplus_is_exact_when_the_sketch_spans_everything(clf):
    model, theta, X, Y, H, G = clf
    P = model.n_params
    t = hutchinson_trace(model, theta, X, Y, probes=3 * P + 2, method="hutch++")
    assert abs(t.value - np.trace(H)) <= 1e-11
    d = hutchinson_diag(model, theta, X, Y, matrix="ggn", probes=3 * P + 2, method="hutch++")
    assert np.max(np.abs(d.value - np.diag(G))) <= 1e-11


def test_hutchplusplus_beats_hutchinson_on_a_low_rank_matrix(reg):
    """The GGN of a one-output net on 4 samples has rank ≤ 4.  With 9 products Hutch++
    sketches 3 directions (fewer than the rank, so it still estimates a residual) and its
    error is far below plain Hutchinson's; with 12 it captures the range and is exact."""
    model, theta, X, y, _, G = reg
    ev = np.linalg.eigvalsh(G)
    assert np.sum(ev > 1e-10 * ev[-1]) == 4
    exact, exact_diag = np.trace(G), np.diag(G)
    errs = {"hutchinson": [], "hutch++": []}
    derrs = {"hutchinson": [], "hutch++": []}
    for seed in range(20):
        for method in errs:
            t = hutchinson_trace(model, theta, X, y, "ggn", probes=9, seed=seed, method=method)
            d = hutchinson_diag(model, theta, X, y, "ggn", probes=9, seed=seed, method=method)
            errs[method].append(t.value - exact)
            derrs[method].append(np.linalg.norm(d.value - exact_diag))
    rms = {m: np.sqrt(np.mean(np.square(e))) for m, e in errs.items()}
    assert 0 < rms["hutch++"] < 0.1 * rms["hutchinson"], rms
    assert np.mean(derrs["hutch++"]) < 0.5 * np.mean(derrs["hutchinson"])
    full = hutchinson_trace(model, theta, X, y, "ggn", probes=12, seed=0, method="hutch++")
    assert abs(full.value - exact) <= 1e-12 * exact


def test_hutchplusplus_standard_error_is_honest(clf):
    """Hutch++'s standard error (of its residual estimate, given the sketch) over 30 seeds:
    estimates within 3 of them, z-scores spread near 1."""
    model, theta, X, Y, H, _ = clf
    ests = [hutchinson_trace(model, theta, X, Y, probes=60, seed=seed, method="hutch++")
            for seed in range(30)]
    z = np.array([(e.value - np.trace(H)) / e.stderr for e in ests])
    assert np.sum(np.abs(z) >= 3) <= 1 and np.max(np.abs(z)) < 6, z
    assert 0.6 < 1.4826 * np.median(np.abs(z - np.median(z))) < 1.5
    assert 0.6 < np.std(z, ddof=1) < 2.0


# -- stochastic Lanczos quadrature -----------------------------------------------------------

def test_slq_moments_match_the_dense_spectrum(clf):
    model, theta, X, Y, H, G = clf
    P = model.n_params
    for matrix, dense in (("hessian", H), ("ggn", G)):
        sd = spectral_density(model, theta, X, Y, matrix=matrix, probes=40, steps=8, seed=0)
        assert isinstance(sd, SpectralDensity) and sd.probes == 40 and sd.matrix == matrix
        for k, m in enumerate(sd.moments(3)):
            exact = np.trace(np.linalg.matrix_power(dense, k)) / P
            if k == 0:
                assert abs(m.value - 1) <= 1e-12
            else:
                assert abs(m.value - exact) <= 3.5 * m.stderr, (matrix, k, m, exact)
        # each probe's quadrature is exact for these degrees: Σ w λᵏ = vᵀAᵏv
        V = _rademacher(np.random.default_rng(0), 40, P) / np.sqrt(P)
        for v, lam, w in zip(V, sd.nodes, sd.weights):
            for k in range(4):
                quad = np.sum(w * lam ** k)
                assert abs(quad - v @ np.linalg.matrix_power(dense, k) @ v) <= 1e-12


def test_slq_at_full_depth_gives_the_exact_eigenvalues(reg, clf):
    for model, theta, X, y, H, _ in (reg, clf):
        ev = np.linalg.eigvalsh(H)
        sd = spectral_density(model, theta, X, y, probes=3, steps=10 ** 6, seed=4)
        assert sd.steps == model.n_params
        tol = 1e-9 * np.max(np.abs(ev))
        for lam in sd.nodes:
            # every node is an eigenvalue, and every eigenvalue is a node (repeated ones —
            # the softmax's null space — once: Lanczos sees each eigenspace once)
            assert np.max(np.min(np.abs(lam[:, None] - ev[None, :]), axis=1)) <= tol
            assert np.max(np.min(np.abs(ev[:, None] - lam[None, :]), axis=1)) <= tol


def test_slq_density_is_a_smoothed_probability_density(clf):
    model, theta, X, Y, H, _ = clf
    sd = spectral_density(model, theta, X, Y, probes=5, steps=12)
    assert all(abs(np.sum(w) - 1) <= 1e-12 for w in sd.weights)
    t = sd.grid(4000)
    phi = sd.density(t)
    assert np.all(phi >= 0)
    assert abs(np.trapezoid(phi, t) - 1) <= 1e-6
    # Gaussian smoothing keeps the mean and adds σ² to the second moment
    s = sd.default_sigma()
    assert abs(np.trapezoid(t * phi, t) - sd.moment(1).value) <= 1e-6
    assert abs(np.trapezoid(t * t * phi, t) - (sd.moment(2).value + s * s)) <= 1e-6
    assert "spectral density of the 26×26 hessian" in str(sd)


# -- results and errors ----------------------------------------------------------------------

def test_results_are_frozen_and_readable(clf):
    model, theta, X, Y, _, _ = clf
    est = hutchinson_trace(model, theta, X, Y, probes=10)
    with pytest.raises(AttributeError):
        est.value = 0.0
    assert "trace of the hessian ≈" in str(est) and "10 probes" in str(est)
    d = hutchinson_diag(model, theta, X, Y, "ggn", probes=10, method="hutch++")
    assert "diagonal of the ggn: 26 entries" in str(d) and "Hutch++" in str(d)


@pytest.mark.parametrize("call", [
    lambda m, t, X, y: hutchinson_trace(m, t, X, y, probes=0),
    lambda m, t, X, y: hutchinson_trace(m, t, X, y, probes=-3),
    lambda m, t, X, y: hutchinson_trace(m, t, X, y, probes=2.5),
    lambda m, t, X, y: hutchinson_trace(m, t, X, y, probes=True),
    lambda m, t, X, y: hutchinson_trace(m, t, X, y, probes=2, method="hutch++"),
    lambda m, t, X, y: hutchinson_trace(m, t, X, y, method="girard"),
    lambda m, t, X, y: hutchinson_diag(m, t, X, y, matrix="fisher"),
    lambda m, t, X, y: hutchinson_diag(m, t, X, y, block=0),
    lambda m, t, X, y: spectral_density(m, t, X, y, probes=0),
    lambda m, t, X, y: spectral_density(m, t, X, y, steps=0),
    lambda m, t, X, y: spectral_density(m, t, X, y, matrix=None),
    lambda m, t, X, y: ggn_operator(m, t[:-1], X, y),
    lambda m, t, X, y: hessian_operator(m, t.reshape(2, -1), X, y),
    lambda m, t, X, y: spectral_density(m, t, X, y, steps=3).density(0.0, sigma=0),
])
def test_bad_arguments_get_symnn_errors(clf, call):
    model, theta, X, Y, _, _ = clf
    with pytest.raises(SymnnError) as info:
        call(model, theta, X, Y)
    assert isinstance(info.value, (AnalysisError, ShapeError))
    assert len(str(info.value)) > 30


# -- the plot --------------------------------------------------------------------------------

def test_spectral_density_figure(clf, tmp_path):
    pytest.importorskip("matplotlib")
    from symnn.plots import plot_spectral_density, spectral_density_figure

    model, theta, X, Y, H, _ = clf
    sd = spectral_density(model, theta, X, Y, probes=4, steps=10)
    fig = spectral_density_figure(sd)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    line = ax.lines[0]
    t, phi = line.get_xdata(), line.get_ydata()
    lam = np.concatenate(sd.nodes)
    assert t[0] < lam.min() and t[-1] > lam.max()          # every node inside the view
    assert np.allclose(phi, np.maximum(sd.density(t), phi.max() * 1e-6))
    assert "Hessian spectral density (26 parameters)" == ax.get_title()
    assert "4 probes × 10 steps" in fig.legends[0].get_texts()[0].get_text()
    # text never overlaps, and the legend sits outside the data
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in
             [ax.title, ax.xaxis.label, ax.yaxis.label] + list(fig.legends[0].get_texts())]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert not fig.legends[0].get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    path = plot_spectral_density(sd, tmp_path / "density.png", title="GGN", sigma=0.02)
    assert (tmp_path / "density.png").stat().st_size > 1000 and path.endswith("density.png")
    with pytest.raises(SymnnError, match="spectral_density"):
        spectral_density_figure(np.array([1.0, 2.0]))


# -- witnesses: the NumPy reference and PyTorch ----------------------------------------------

def test_operators_and_estimates_on_the_numpy_reference(clf):
    """The uncompiled NumPy reference model behind the same operators gives the same
    matrices and, on the same probes, the same estimates as the compiled kernels."""
    model, theta, X, Y, H, G = clf
    ref = model.reference
    I = np.eye(model.n_params)
    assert np.max(np.abs(hessian_operator(ref, theta, X, Y) @ I - H)) <= 1e-12
    assert np.max(np.abs(ggn_operator(ref, theta, X, Y) @ I - G)) <= 1e-12
    for fn, kw in ((hutchinson_trace, {}), (hutchinson_diag, {"method": "hutch++"})):
        a = fn(model, theta, X, Y, "ggn", probes=9, seed=3, **kw)
        b = fn(ref, theta, X, Y, "ggn", probes=9, seed=3, **kw)
        assert np.allclose(a.value, b.value, rtol=1e-12, atol=1e-13)
    sa = spectral_density(model, theta, X, Y, probes=2, steps=5, seed=1)
    sb = spectral_density(ref, theta, X, Y, probes=2, steps=5, seed=1)
    assert np.allclose(np.concatenate(sa.nodes), np.concatenate(sb.nodes), atol=1e-12)


# torch.func's forward mode still goes through torch.jit.script (torch 2.13), which warns
@pytest.mark.filterwarnings(r"ignore:.*torch\.jit\.script.*deprecated:DeprecationWarning")
def test_hessian_operator_and_trace_against_pytorch(clf):
    torch = pytest.importorskip("torch")
    model, theta, X, Y, H, _ = clf
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def loss(th):                                  # 3-4-2 tanh / softmax-CE, symnn's layout
        W1, b1 = th[:12].view(4, 3), th[12:16]
        W2, b2 = th[16:24].view(2, 4), th[24:26]
        z = torch.tanh(Xt @ W1.T + b1) @ W2.T + b2
        return -(Yt * torch.log_softmax(z, dim=1)).sum(dim=1).mean()

    th = torch.from_numpy(np.array(theta, dtype=np.float64))
    assert abs(float(loss(th)) - model.loss(theta, X, Y)) <= 1e-13
    Ht = torch.func.hessian(loss)(th).numpy()
    assert np.max(np.abs(hessian_operator(model, theta, X, Y) @ np.eye(26) - Ht)) <= 1e-12
    Z = _rademacher(np.random.default_rng(11), 40, 26)
    hz = torch.func.vmap(lambda v: torch.func.jvp(torch.func.grad(loss), (th,), (v,))[1])(
        torch.from_numpy(Z)).numpy()
    est = hutchinson_trace(model, theta, X, Y, probes=40, seed=11)
    assert abs(est.value - np.mean(np.sum(Z * hz, axis=1))) <= 1e-12
