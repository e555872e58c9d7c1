"""One differential check of a generated case: compiled kernels against ``model.reference``
and against PyTorch autograd (when installed).  Shared by ``tests/test_properties.py`` and
``benchmarks/fuzz_exactness.py``.

:func:`check_case` returns a :class:`CaseResult` holding, per kernel, the largest relative
error between every pair of witnesses, and the kernels that disagree beyond the tolerance.
Relative errors are taken against the largest magnitude of the two arrays compared
(``max|a − b| / max(|a|∞, |b|∞, 1e-6)``), so an array of small entries beside large ones is
judged at the scale of the large ones, and values that cancel to about 0 are compared
absolutely.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field

import numpy as np
from strategies import case_data, case_mask

import symnn

try:  # PyTorch is a test witness where installed (CI installs it)
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:  # pragma: no cover - torch is optional
    HAVE_TORCH = False

__all__ = ["KERNELS", "RTOL", "F32_TOL", "CaseResult", "check_case", "rel_err", "HAVE_TORCH",
           "assert_witnesses_agree"]

#: Every result compared; ``grad`` is the gradient of ``loss_and_grad`` and ``loss_lg`` its
#: loss, ``hvp_batched`` two directions in one call, ``gnvp_zero`` the product with v = 0.
KERNELS = ("predict", "jacobian", "loss", "loss_lg", "grad", "hvp", "hvp_batched", "gnvp",
           "gnvp_zero", "hessian")

#: float64: compiled = reference = torch to this relative error.
RTOL = 1e-9

#: float32 kernels against float64 (the accuracy stated in symnn/codegen/model.py: about
#: 1e-4 for loss and gradient, a few 1e-3 for second derivatives), with a 5× margin.
F32_TOL = {"predict": 5e-4, "jacobian": 5e-4, "loss": 5e-4, "loss_lg": 5e-4, "grad": 5e-4,
           "hvp": 1e-2, "hvp_batched": 1e-2, "gnvp": 1e-2, "gnvp_zero": 1e-2, "hessian": 1e-2}


#: Magnitudes below this are compared absolutely: a value that cancels to 0 exactly in one
#: witness and to 5e-17 in another (two equal terms of opposite sign, rounded apart) agrees.
SCALE_FLOOR = 1e-6


def rel_err(a, b) -> float:
    """``max|a − b| / max(|a|∞, |b|∞, 1e-6)``; ``inf`` when finiteness or shapes differ."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not np.array_equal(fa, fb):
        return math.inf
    if not fa.all() and not np.array_equal(a[~fa], b[~fb]):
        return math.inf
    if not fa.any():
        return 0.0
    a, b = a[fa], b[fb]
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    diff = float(np.max(np.abs(a - b)))
    return 0.0 if diff == 0.0 else diff / max(scale, SCALE_FLOOR)


def _results(m, X, Y, th, v, V, with_y: bool, mask=None) -> dict:
    kw = {} if mask is None else {"mask": mask}  # a fixed Dropout mask (issue 13)
    out = {"predict": m.predict(th, X, **kw), "jacobian": m.jacobian(th, X, **kw)}
    if not with_y:
        return out
    out["loss"] = m.loss(th, X, Y, **kw)
    out["loss_lg"], out["grad"] = m.loss_and_grad(th, X, Y, **kw)
    out["hvp"] = m.hvp(th, v, X, Y, **kw)
    out["hvp_batched"] = m.hvp(th, V, X, Y, **kw)
    out["gnvp"] = m.gnvp(th, v, X, Y, **kw)
    out["gnvp_zero"] = m.gnvp(th, np.zeros_like(v), X, Y, **kw)
    out["hessian"] = m.hessian(th, X, Y, **kw)
    return out


@dataclass
class CaseResult:
    """What one case gave."""

    case: object
    seed: int
    rejected: str = ""                 # the DeclarationError message, if refused
    out_of_domain: bool = False        # the loss is not finite at this data (e.g. log of < 0)
    errors: dict = field(default_factory=dict)      # (kernel, "compiled~reference") → err
    failures: list = field(default_factory=list)    # dicts: kernel, pair, err, values, repro
    crash: str = ""                    # an exception other than DeclarationError

    @property
    def ok(self) -> bool:
        return not self.failures and not self.crash


def _short(x) -> str:
    a = np.asarray(x, dtype=np.float64).ravel()
    body = np.array2string(a[:6], precision=5, separator=", ")
    return body if a.size <= 6 else body[:-1] + ", …]"


def check_case(case, seed: int, torch_check: bool = True, float32: bool = False,
               skip: frozenset = frozenset()) -> CaseResult:
    """Build, compile and compare one case; ``skip`` names kernels not to judge."""
    res = CaseResult(case, seed)
    try:
        declared = case.build()
    except symnn.DeclarationError as err:
        res.rejected = str(err)
        return res
    X, Y, th, v, V = case_data(declared, seed)
    try:
        m = declared.compile()
        ref = m.reference
        mask = case_mask(m, seed, X.shape[0])  # None without Dropout
        with np.errstate(all="ignore"):
            res.out_of_domain = not math.isfinite(
                ref.loss(th, X, Y, **({} if mask is None else {"mask": mask})))
            with_y = not res.out_of_domain
            got = _results(m, X, Y, th, v, V, with_y, mask)
            want = _results(ref, X, Y, th, v, V, with_y, mask)
    except Exception:  # noqa: BLE001 - any crash is a finding
        res.crash = traceback.format_exc(limit=6)
        return res
    witnesses = {"reference": want}
    if torch_check and HAVE_TORCH:
        from _torch_ref import TorchCase

        try:
            with np.errstate(all="ignore"):
                witnesses["torch"] = TorchCase(case, declared).results(th, X, Y, v, V, mask)
        except Exception:  # noqa: BLE001
            res.crash = traceback.format_exc(limit=6)
            return res
    # truncated BPTT (h-exact): the compiled Hessian symmetrises, the reference stacks the
    # products (the derivative of the truncated gradient is not symmetric); torch's
    # .detach() stops tangents too, so its hvp and its Jacobian in X differ by design
    truncated = "truncated" in getattr(case, "tags", ())
    if truncated:
        skip = skip | {"hessian"}
    for kernel in KERNELS:
        if kernel not in got or kernel in skip:
            continue
        for wname, wres in witnesses.items():
            if truncated and wname == "torch" and kernel in ("hvp", "hvp_batched", "jacobian"):
                continue
            key = "grad" if kernel == "grad" else kernel
            key = "loss" if key == "loss_lg" else key
            if key not in wres:
                continue
            if kernel == "gnvp_zero":
                err = float(np.max(np.abs(got[kernel]))) if np.all(
                    np.isfinite(got[kernel])) else math.inf
                err /= max(1.0, float(np.max(np.abs(got["grad"]))))
            else:
                err = rel_err(got[kernel], wres[key])
            res.errors[(kernel, f"compiled~{wname}")] = err
            if not err <= RTOL:
                rk = {"loss_lg": "loss_and_grad", "grad": "loss_and_grad",
                      "gnvp_zero": "gnvp"}.get(kernel, kernel)
                res.failures.append({
                    "kernel": kernel, "pair": f"compiled~{wname}", "err": err,
                    "compiled": _short(got[kernel]), "reference": _short(want.get(key)),
                    "torch": _short(witnesses["torch"][key]) if "torch" in witnesses else "",
                    "repro": case.repro(seed, rk),
                })
    if float32:
        try:
            m32 = declared.compile(dtype="float32")
            with np.errstate(all="ignore"):
                got32 = _results(m32, X, Y, th, v, V, with_y, mask)
        except Exception:  # noqa: BLE001
            res.crash = traceback.format_exc(limit=6)
            return res
        for kernel, tol in F32_TOL.items():
            if kernel not in got32 or kernel in skip or kernel == "gnvp_zero":
                continue
            err = rel_err(got32[kernel], got[kernel])
            if kernel in ("loss", "loss_lg"):   # a scalar: judged at the scale of 1
                err = abs(got32[kernel] - got[kernel]) / max(1.0, abs(got[kernel]))
            res.errors[(kernel, "float32~float64")] = err
            if not err <= tol:
                res.failures.append({
                    "kernel": kernel, "pair": "float32~float64", "err": err,
                    "compiled": _short(got32[kernel]), "reference": _short(got[kernel]),
                    "torch": "", "repro": case.repro(seed, kernel).replace(
                        "net.compile()", "net.compile(dtype='float32')"),
                })
    return res


#: The kernels a layer test requires every witness to have judged (not merely agreed on).
JUDGED = ("grad", "hvp", "hvp_batched", "gnvp", "hessian", "jacobian")


def assert_witnesses_agree(case, seed: int, f32_hvp: bool = False):
    """The witness block of a layer's kernel test: :func:`check_case` passes (no refusal, no
    crash, no disagreement), each of :data:`JUDGED` was compared with the reference and,
    where installed, PyTorch; and the float32 gradient (with ``f32_hvp`` also a
    two-direction HVP) is within :data:`F32_TOL` of float64.  Returns ``(net, m64)``: the
    declaration and its float64 model, for the caller's checks of the generated source."""
    res = check_case(case, seed)
    assert not res.rejected and not res.crash, res.rejected or res.crash
    assert res.ok, res.failures[:3]
    for kernel in JUDGED:
        assert (kernel, "compiled~reference") in res.errors
        if HAVE_TORCH:
            assert (kernel, "compiled~torch") in res.errors
    net = case.build()
    m64, m32 = net.compile(), net.compile(dtype="float32")
    X, Y, th, _v, V = case_data(net, seed)
    g64, g32 = m64.loss_and_grad(th, X, Y)[1], m32.loss_and_grad(th, X, Y)[1]
    assert rel_err(g32, g64) <= F32_TOL["grad"]
    if f32_hvp:
        assert rel_err(m32.hvp(th, V, X, Y), m64.hvp(th, V, X, Y)) <= F32_TOL["hvp"]
    return net, m64
