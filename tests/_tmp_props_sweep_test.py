"""compiled = reference = independent autodiff, as a property over the declaration space.

Hypothesis generates networks and custom models (``tests/strategies.py``: depth 1–4,
widths 1–8, every activation, softmax and user Lambdas as hidden layers, every output ×
loss pairing, L1 / L2 penalties; models from an expression grammar).  For each case every
kernel — ``predict``, ``jacobian``, ``loss``, ``loss_and_grad``, ``hvp`` (one direction and
two at once), ``gnvp`` (and ``gnvp`` with ``v = 0``, which must be 0), ``hessian`` — is
compared, in float64, with ``model.reference`` and with PyTorch autograd (``tests/
_torch_ref.py``) to 1e-9 relative; float32 kernels are compared with float64 at the
tolerance ``symnn/codegen/model.py`` states.  A declaration refused with a
``DeclarationError`` is a valid outcome; any other exception fails.

Budget: compiling a case costs seconds, so the default run draws few cases
(``SYMNN_HYPOTHESIS_PROFILE=long`` draws many; ``benchmarks/fuzz_exactness.py`` runs the
same strategies for as long as asked).  Failures Hypothesis shrinks are kept below as
explicit ``@example`` rows.
"""

from __future__ import annotations

import os

import pytest
import sympy as sp
from _exactness import HAVE_TORCH, check_case
from hypothesis import HealthCheck, example, given, note, reject, settings
from hypothesis import strategies as st
from strategies import (
    ACTIVATION_NAMES,
    LAMBDAS,
    LOSS_NAMES,
    ModelCase,
    NetCase,
    cases,
    model_cases,
    net_cases,
)

import symnn

_PROFILE = os.environ.get("SYMNN_HYPOTHESIS_PROFILE", "default")
_N = {"default": {"net": 20, "model": 10, "f32": 5},
      "long": {"net": 150, "model": 80, "f32": 30}}.get(_PROFILE, {"net": 3, "model": 2, "f32": 1})


def _settings(n):
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


#: Classes of disagreement still open (cause not fixed yet): a predicate on the case's
#: tags and the kernels it affects.  Random cases of an open class are not judged on those
#: kernels; the explicit examples of the class are strict expected failures, so a fix shows
#: up as an unexpected pass and the entry comes out.
KNOWN_OPEN: list[tuple[str, object, frozenset]] = []


def _skip_for(case) -> frozenset:
    skip: set = set()
    for reason, pred, kernels in KNOWN_OPEN:
        if pred(case.tags):
            note(f"known open class ({reason}): not judging {sorted(kernels)}")
            skip |= kernels
    return frozenset(skip)


def _judge(case, seed, strict=False, float32=False):
    note(case.declaration())
    res = check_case(case, seed, float32=float32,
                     skip=frozenset() if strict else _skip_for(case))
    if strict:  # an explicit row must reach every kernel
        assert not res.rejected, f"{case.declaration()} was rejected: {res.rejected}"
        assert not res.out_of_domain, f"{case.declaration()}: the loss is not finite"
    if res.rejected:
        note(f"rejected at declaration: {res.rejected}")
        return res
    assert not res.crash, f"{case.declaration()} (seed {seed}) crashed:\n{res.crash}"
    msg = "\n".join(
        f"{f['kernel']} {f['pair']}: rel err {f['err']:.3g}; compiled {f['compiled']}, "
        f"reference {f['reference']}, torch {f['torch']}\n  repro: {f['repro']}"
        for f in res.failures)
    assert res.ok, msg
    return res


def _d(n_in, n_out, bias=True):
    return ("dense", n_in, n_out, bias)


def _m(texts, n_in, n_par, loss, output=None, penalties=()):
    """A ModelCase from expression texts in ``x0…`` and ``p0…``."""
    probe = ModelCase((), n_in, n_par, loss)
    ns = {str(s): s for s in probe.inputs + probe.params}
    exprs = tuple(sp.sympify(t, locals=ns) for t in texts)
    return ModelCase(exprs, n_in, n_par, loss, output, tuple(penalties))


def _all_activations_net() -> NetCase:
    """One network through every activation (built-ins, softmax, every Lambda), three
    after each Dense layer: the default run covers them all whatever Hypothesis draws."""
    acts = [*ACTIVATION_NAMES, "softmax", *(("lambda", k) for k in sorted(LAMBDAS))]
    layers: list = [_d(2, 3)]
    for i in range(0, len(acts), 3):
        layers += acts[i:i + 3]
        layers.append(_d(3, 3 if i + 3 < len(acts) else 2))
    return NetCase(tuple(layers), "mse", (("l2", 0.1),))


_SOFTMAX_HEAD = (_d(2, 3), "tanh", _d(3, 3), "softmax")
_SIGMOID_HEAD = (_d(2, 3), "tanh", _d(3, 2), "sigmoid")
_LINEAR_HEAD = (_d(2, 3), "elu", _d(3, 2))


# Explicit rows: every accepted output × loss code path (the fused forms, softmax × bce,
# the regression losses), a network through every activation, and shrunk failures of this
# property (most issue-9 rows live in tests/test_exactness_regressions.py).
@_settings(_N["net"])
@example(_all_activations_net(), 10, True)
@example(NetCase((_d(8, 8), "tanh", _d(8, 8), "relu", _d(8, 4), "softmax"), "cross_entropy",
                 (("l2", 0.1),)), 7, True)                     # 80 samples: the BLAS paths
@example(NetCase(_SOFTMAX_HEAD, "cross_entropy"), 11, True)
@example(NetCase(_SOFTMAX_HEAD, "kl"), 12, True)
@example(NetCase(_SOFTMAX_HEAD, "bce"), 13, True)
@example(NetCase(_SOFTMAX_HEAD, "huber", (("l1", 0.05),)), 14, True)
@example(NetCase(_SIGMOID_HEAD, "bce"), 15, True)
@example(NetCase(_SIGMOID_HEAD, "cross_entropy"), 16, True)
@example(NetCase(_SIGMOID_HEAD, "kl", (("l2", 0.5),)), 17, True)
@example(NetCase(_LINEAR_HEAD, "mae", (("l1", 0.1), ("l2", 0.1))), 19, True)
@example(NetCase((_d(1, 1), "identity", _d(1, 1)), "mse"), 0, True)  # gb1_dot
@example(NetCase((_d(1, 1), "tanh", "sigmoid"), "bce"), 1, True)  # stacked
@example(NetCase((_d(1, 1),), "mse", (("l2", 0.1),)), 2, True)  # gnvp penalty
@example(NetCase((_d(1, 2), "softmax", _d(2, 1)), "mse"), 3, True)  # hidden softmax
@example(NetCase((_d(2, 3), "sigmoid", ("graph", (  # symnn.Graph (issue 13)
    ("h", _d(3, 2), "in"), ("a", "tanh", "h"), ("s", ("op", "mul"), "a", "h"),
    ("c", ("op", "concat"), "s", "in")), "c"), _d(5, 2), "softmax"), "cross_entropy"), 4, True)
@example(NetCase((_d(3, 4), ("layernorm", 4, 1e-5, None), "tanh", _d(4, 2)), "mse",
                 (("l2", 0.1),)), 4, True)                      # LayerNorm (issue 13)
@example(NetCase((("layernorm", 2, 1e-3, 3), "softplus", ("flatten",), _d(6, 2), "softmax"),
                 "cross_entropy"), 5, True)                     # LayerNorm on (T, n)
@given(net_cases(), st.integers(0, 2**31 - 1), st.just(False))
def test_network_kernels_agree_with_reference_and_torch(case, seed, explicit):
    _judge(case, seed, strict=explicit)


@_settings(_N["model"])
@example(_m(["p1*x1 + sin(log(tanh(p0)**2 + 1))", "sin(log(tanh(p0)**2 + 1))"], 2, 2, "mae"),
         163, True)                      # H v cancels to 0 exactly (reference) or 5e-17 (kernel)
@example(_m(["p0*x0 - p1*x1", "sin(p1*x0)/(1 + p0**2)"], 2, 2, "bce", "sigmoid"), 20, True)
@example(_m(["log(1 + (p0*x0)**2)", "p1*exp(-x0**2)"], 1, 2, "cross_entropy", "softmax",
            (("l2", 0.1),)), 21, True)
@example(_m(["p0*x0**3 + (1 + p1**2)**(1/2)*cos(x0)"], 1, 2, "huber", None,
            (("l1", 0.1),)), 22, True)
@example(_m(["p0/(1 + exp(-p1*(x0 - p2)))"], 1, 3, "mse"), 0, True)          # printer
@example(_m(["(p0*x0 + p1)/(1 + p2*x0**2)"], 1, 3, "mse"), 0, True)            # printer
@given(model_cases(), st.integers(0, 2**31 - 1), st.just(False))
def test_model_kernels_agree_with_reference_and_torch(case, seed, explicit):
    _judge(case, seed, strict=explicit)


@_settings(_N["f32"])
@given(cases(), st.integers(0, 2**31 - 1))
def test_float32_kernels_agree_with_float64_within_the_stated_tolerance(case, seed):
    _judge(case, seed, float32=True)


_LOG_LOSSES = {"bce", "cross_entropy", "kl"}


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_every_output_loss_pairing_is_declared_or_rejected_by_the_documented_rule(loss):
    """docs/losses.md: bce, cross_entropy and kl need a sigmoid or softmax output; every
    other pairing is accepted.  A refusal is a DeclarationError, never another error."""
    outputs = [None, "softmax", *ACTIVATION_NAMES, *(("lambda", k) for k in sorted(LAMBDAS))]
    for output in outputs:
        layers = (_d(2, 3),) + (() if output is None else (output,))
        case = NetCase(layers, loss)
        name = output if not isinstance(output, tuple) else "lambda"
        if loss in _LOG_LOSSES and name not in ("sigmoid", "softmax"):
            with pytest.raises(symnn.DeclarationError):
                case.build()
        else:
            case.build()
        model_out = output if isinstance(output, str) or output is None else None
        mcase = _m(["p0*x0 + p1", "p1*x0"], 1, 2, loss, output=model_out)
        if loss in _LOG_LOSSES and model_out not in ("sigmoid", "softmax"):
            with pytest.raises(symnn.DeclarationError):
                mcase.build()
        else:
            mcase.build()


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
def test_the_torch_witness_knows_every_activation():
    from _torch_ref import ACTIVATIONS

    assert set(ACTIVATION_NAMES) | {"softmax"} <= set(ACTIVATIONS)


# -- hostile round: every declaration names each parameter once -------------------------------
@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(net_cases())
def test_every_declaration_names_each_parameter_once(case):
    """The flat layout, model files and printed equations need unique names; and each name
    says its layer (the role and layer number a layer class reads back from it)."""
    from symnn.declare.layers import param_specs, role_of_name

    try:
        net = case.build()
    except symnn.DeclarationError:  # (e.g. a softmax of one unit: refused by its rule)
        reject()
    specs = param_specs(net)
    names = [p.name for p in specs]
    note(case.declaration())
    assert len(names) == len(set(names)), names
    for p in specs:
        assert role_of_name(p.name) == (p.role, p.layer), (p.name, p.role, p.layer)
# -- end of hostile round ----------------------------------------------------------------------
