"""symnn's curvature against two independent libraries on identical networks: BackPACK
(``backpack-for-pytorch``) and curvlinops (``curvlinops-for-pytorch``).

Each case is a symnn MLP and the same network as a ``torch.nn.Sequential`` whose ``Linear``
layers hold the symnn θ (``model.unflatten``: ``W`` is ``(n_out, n_in)`` like
``nn.Linear.weight``, so the flat layouts coincide: W1, b1, W2, b2, …).  Compared to
1e-9 relative: ``diag_ggn``, ``diag_hessian``, ``kfac_factors`` (A and G per layer),
and ``hutchinson_trace`` (the same Rademacher probes through the peer's operator give the
same value).  The tests skip where torch, BackPACK or curvlinops is not installed.

**Loss conventions** (checked first, by the loss values themselves):

* symnn ``mse``: ``(1/B) Σ_s (1/m) Σ_k (ŷ_sk − y_sk)²`` — the mean over all ``B·m``
  entries, which is ``nn.MSELoss(reduction="mean")``;
* symnn ``softmax`` + ``cross_entropy`` on one-hot targets: ``(1/B) Σ_s −log p_s,c`` —
  ``nn.CrossEntropyLoss(reduction="mean")`` on the logits and the class indices;
* symnn ``sigmoid`` + ``bce``: the mean over outputs of the batch mean, which is
  ``nn.BCEWithLogitsLoss(reduction="mean")`` on the logits (BackPACK 1.7 supports it for a
  single output only: its case has ``m = 1``; curvlinops also gets a 3-output case).

With these pairs the losses are the same function of θ, so no rescaling is needed for the
diagonals, traces and operators; the K-FAC factor mapping is in :func:`_bp_factors` and
:func:`_cl_factors` and in docs/persample.md.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import symnn  # noqa: E402
from symnn.analysis import (  # noqa: E402
    diag_ggn,
    diag_hessian,
    hutchinson_trace,
    kfac_factors,
)
from symnn.analysis.stochastic import _rademacher  # noqa: E402

nn = torch.nn
RTOL = 1e-9
B = 7

# name: (layer sizes, symnn output, symnn loss)
CASES = {
    "mse": ((3, 5, 4, 3), None, "mse"),
    "softmax-ce": ((3, 5, 4, 3), "softmax", "cross_entropy"),
    "sigmoid-bce": ((3, 5, 4, 1), "sigmoid", "bce"),
    "sigmoid-bce-3": ((3, 5, 4, 3), "sigmoid", "bce"),    # curvlinops only (see above)
}
BACKPACK_CASES = ["mse", "softmax-ce", "sigmoid-bce"]

pytestmark = [
    # BackPACK's hooks warn that no input requires a gradient (ours do not need one)
    pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning"),
    # curvlinops imports linear_operator, which calls torch.jit.script at import time
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


class Case:
    """A symnn model, θ and a batch; the same network and loss as fresh torch modules."""

    def __init__(self, name: str) -> None:
        sizes, output, loss = CASES[name]
        kw = {} if output is None else {"output": output}
        self.sizes, self.loss = sizes, loss
        self.model = symnn.mlp(list(sizes), activation="tanh", loss=loss, **kw).compile()
        rng = np.random.default_rng(len(name))
        self.theta = self.model.init(seed=1) + 0.3 * rng.normal(size=self.model.n_params)
        self.X = rng.normal(size=(B, sizes[0]))
        m = sizes[-1]
        if loss == "cross_entropy":
            c = rng.integers(0, m, size=B)
            self.y, self.yt = np.eye(m)[c], torch.tensor(c)
        else:
            # binary BCE targets: curvlinops' K-FAC refuses soft ones (the loss Hessian in
            # the logits, σ(1−σ)/m, does not depend on them)
            self.y = (rng.integers(0, 2, size=(B, m)).astype(float) if loss == "bce"
                      else 2.0 * rng.normal(size=(B, m)))
            self.yt = torch.tensor(self.y)
        self.Xt = torch.tensor(self.X)

    def net(self):
        """A fresh ``nn.Sequential`` holding θ (fresh: BackPACK's ``extend`` adds hooks)."""
        params = self.model.unflatten(self.theta)
        layers = []
        for i in range(len(self.sizes) - 1):
            lin = nn.Linear(self.sizes[i], self.sizes[i + 1], dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(params[f"W{i + 1}"]))
                lin.bias.copy_(torch.tensor(params[f"b{i + 1}"]))
            layers += [lin, nn.Tanh()]
        return nn.Sequential(*layers[:-1])   # the output activation is inside the loss

    def loss_fn(self):
        return {"mse": nn.MSELoss, "cross_entropy": nn.CrossEntropyLoss,
                "bce": nn.BCEWithLogitsLoss}[self.loss](reduction="mean")


_CASES: dict = {}


def _case(name: str) -> Case:
    if name not in _CASES:
        _CASES[name] = Case(name)
    return _CASES[name]


def _flat(tensors) -> np.ndarray:
    return torch.cat([t.detach().reshape(-1) for t in tensors]).numpy()


# -- the conventions ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_the_torch_network_has_symnns_loss_and_gradient(name):
    c = _case(name)
    net = c.net()
    L = c.loss_fn()(net(c.Xt), c.yt)
    g = torch.autograd.grad(L, list(net.parameters()))
    value, grad = c.model.loss_and_grad(c.theta, c.X, c.y)
    assert abs(L.item() - value) <= RTOL * abs(value)
    assert _rel(_flat(g), grad) < RTOL


# -- BackPACK -------------------------------------------------------------------------------

def _backpack(c: Case):
    """BackPACK's DiagGGNExact, DiagHessian and KFLR from one backward pass."""
    bp = pytest.importorskip("backpack", exc_type=ImportError)  # or a missing dependency
    from backpack.extensions import KFLR, DiagGGNExact, DiagHessian

    net = bp.extend(c.net())
    L = bp.extend(c.loss_fn())(net(c.Xt), c.yt)
    with bp.backpack(DiagGGNExact(), DiagHessian(), KFLR()):
        L.backward()
    return net


@pytest.mark.parametrize("name", BACKPACK_CASES)
def test_diagonals_equal_backpacks(name):
    c = _case(name)
    params = list(_backpack(c).parameters())
    dggn = diag_ggn(c.model, c.theta, c.X, c.y)
    dh = diag_hessian(c.model, c.theta, c.X, c.y)
    assert _rel(_flat(p.diag_ggn_exact for p in params), dggn) < RTOL
    assert _rel(_flat(p.diag_h for p in params), dh) < RTOL
    # and the exact traces are their sums
    assert abs(float(_flat(p.diag_h for p in params).sum()) - np.trace(
        c.model.hessian(c.theta, c.X, c.y))) <= RTOL * np.abs(dh).sum()


def _bp_factors(lin):
    """BackPACK's KFLR factors of one ``Linear`` as symnn's ``(A, G)``.

    BackPACK stores ``weight.kflr = [G, A]`` and ``bias.kflr = [G]``: it backpropagates the
    loss Hessian's square root of the *mean* loss (its columns carry ``1/√B``), so
    ``G = Σ_s Σ_c g_sc g_scᵀ`` is symnn's ``(1/B) Σ_s Σ_c g_sc g_scᵀ``, and
    ``A = (1/B) Σ_s a_s a_sᵀ`` is symnn's ``A`` without the bias row and column (the bias
    block is ``G`` alone: symnn's ``A[-1, -1] = 1``).  No rescaling.
    """
    G, A = (t.detach().numpy() for t in lin.weight.kflr)
    (Gb,) = (t.detach().numpy() for t in lin.bias.kflr)
    return A, G, Gb


@pytest.mark.parametrize("name", BACKPACK_CASES)
def test_kflr_factors_equal_backpacks(name):
    c = _case(name)
    lins = [m for m in _backpack(c) if isinstance(m, nn.Linear)]
    ours = kfac_factors(c.model, c.theta, c.X, c.y, kind="kflr")
    assert list(ours) == [f"W{i + 1}" for i in range(len(lins))]
    for f, lin in zip(ours.values(), lins):
        A, G, Gb = _bp_factors(lin)
        n = A.shape[0]
        assert _rel(A, f.A[:n, :n]) < RTOL and f.A[-1, -1] == 1.0
        assert _rel(G, f.G) < RTOL and _rel(Gb, f.G) < RTOL


# -- curvlinops -----------------------------------------------------------------------------

def _operator(c: Case, kind: str, **kw):
    cl = pytest.importorskip("curvlinops", exc_type=ImportError)
    net = c.net()
    cls = {"hessian": cl.HessianLinearOperator, "ggn": cl.GGNLinearOperator,
           "kfac": cl.KFACLinearOperator}[kind]
    return cls(net, c.loss_fn(), list(net.parameters()), [(c.Xt, c.yt)], **kw), net


def _apply(op, M: np.ndarray) -> np.ndarray:
    """``op @ M`` for a (P, K) array (curvlinops' operators take torch tensors)."""
    return (op @ torch.tensor(M)).detach().numpy()


def _dense(op, P: int) -> np.ndarray:
    return _apply(op, np.eye(P))


@pytest.mark.parametrize("name", list(CASES))
def test_dense_hessian_and_ggn_equal_curvlinops(name):
    c = _case(name)
    P = c.model.n_params
    H = _dense(_operator(c, "hessian")[0], P)
    GGN = _dense(_operator(c, "ggn")[0], P)
    assert _rel(H, c.model.hessian(c.theta, c.X, c.y)) < RTOL
    assert _rel(GGN, c.model.gnvp(c.theta, np.eye(P), c.X, c.y)) < RTOL
    assert _rel(np.diag(GGN), diag_ggn(c.model, c.theta, c.X, c.y)) < RTOL
    assert _rel(np.diag(H), diag_hessian(c.model, c.theta, c.X, c.y)) < RTOL


def _cl_factors(op, net):
    """curvlinops' type-2 K-FAC factors per ``Linear`` as symnn's ``(A, G)``.

    With ``fisher_type="type-2"`` and ``separate_weight_and_bias=False``, curvlinops
    backpropagates the per-sample loss Hessian's square root scaled by ``1/B`` (mean
    reduction) and multiplies ``Σ g gᵀ`` by ``B²/N_data = B``: ``G = (1/B) Σ_s Σ_c g gᵀ``;
    its input covariance appends a 1 to the input: ``A = (1/B) Σ_s ā ā ᵀ``.  Both are
    symnn's, with no rescaling.  (curvlinops 3.0.1's ``compute_kronecker_factors`` *adds* to
    factors already computed: called once more after a product — or after the default
    ``check_deterministic=True``, which takes one — it doubles both A and G, so G ⊗ A is
    4× the GGN's approximation.  Here the factors come from one computation.)
    """
    state = op.state_dict()
    names = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    return [(state["input_covariances"][n].numpy(), state["gradient_covariances"][n].numpy())
            for n in names]


@pytest.mark.parametrize("name", list(CASES))
def test_kflr_factors_equal_curvlinops_type2_kfac(name):
    c = _case(name)
    op, net = _operator(c, "kfac", fisher_type="type-2", separate_weight_and_bias=False,
                        check_deterministic=False)
    op.compute_kronecker_factors()
    ours = kfac_factors(c.model, c.theta, c.X, c.y, kind="kflr")
    for f, (A, G) in zip(ours.values(), _cl_factors(op, net)):
        assert _rel(A, f.A) < RTOL and _rel(G, f.G) < RTOL
    # the operator's dense blocks are G ⊗ A over KroneckerFactors.index
    K = _dense(op, c.model.n_params)
    for f in ours.values():
        assert _rel(K[np.ix_(f.index, f.index)], f.kron()) < RTOL


@pytest.mark.parametrize("name", ["softmax-ce", "mse"])
@pytest.mark.parametrize("matrix", ["hessian", "ggn"])
def test_hutchinson_trace_equals_curvlinops_on_the_same_probes(name, matrix):
    c = _case(name)
    probes, seed = 20, 3
    est = hutchinson_trace(c.model, c.theta, c.X, c.y, matrix=matrix, probes=probes,
                           seed=seed)
    Z = _rademacher(np.random.default_rng(seed), probes, c.model.n_params)  # symnn's probes
    AZ = _apply(_operator(c, matrix)[0], Z.T)                         # (P, probes)
    samples = np.einsum("pk,kp->k", AZ, Z)
    assert abs(samples.mean() - est.value) <= RTOL * abs(est.value)
    assert abs(samples.std(ddof=1) / np.sqrt(probes) - est.stderr) <= 1e-7 * est.stderr

