"""Exactness sweep over RANDOM network declarations (not part of the test suite).

A seeded generator of its own (wider than ``tests/strategies.py``: deeper mixes, Graph
nodes holding any layer, Residual around Conv1D / SelfAttention / LayerNorm / GRU, Dropout
anywhere — inside Residual and Graph nodes too —, GRU / RNN with ``truncate=``, attention
after a convolution, LayerNorm on sequences in the middle of a network, odd batch sizes
1 / 2 / 7, large-magnitude inputs, every loss with every output activation, L1 / L2
penalties) draws declarations as the strategies' plain-data :class:`NetCase`, so the
PyTorch witness ``tests/_torch_ref.py`` reads them too.  For each declaration it compares

``kern``   every compiled kernel (predict, jacobian, loss, loss_and_grad, hvp, hvp with
           two directions, gnvp, gnvp at v = 0, hessian) with the NumPy reference;
``torch``  the same with PyTorch autograd;
``fd``     the gradient with central differences of the loss, the HVP with central
           differences of the gradient, the Jacobian with central differences of
           ``predict`` in X, and ``hessian @ v`` with ``hvp(v)``;
``dggn``   ``symnn.analysis.diag_ggn`` with the diagonal of the GGN built from ``gnvp``
           on unit vectors (an independent path: the reference's column backprop);
``f32``    the float32 kernels with float64 at the tolerance symnn states;

and prints a table of failures by (layer mix, mode).  Run from the repository root:

    python scripts/exactness_sweep.py --n 40 --seed 1 --out /tmp/sweep1.json

``--only-case K`` reruns case K of a seed (its repro line is printed with every failure).

Round 5 widened the generator: RNN / GRU looped over time (``unroll=False``) wherever an
unrolled one can stand (fronts, after attention, truncated); Dropout right after a
Flatten (Conv1D → pool → Flatten → Dropout → Dense); penalties with ``params=`` naming a
random subset of the parameters (biases, LayerNorm, recurrent and attention parameters
included); and ``--all-heads``: one random body for every loss × every output.  (A
Residual or Graph around an RNN / GRU is not declarable: symnn refuses it.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from collections import Counter, defaultdict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

import symnn  # noqa: E402
from _exactness import F32_TOL, RTOL, _results, rel_err  # noqa: E402
from strategies import (  # noqa: E402
    ACTIVATION_NAMES,
    LAMBDAS,
    LOSS_NAMES,
    OUTPUTS,
    REC_ACTIVATIONS,
    NetCase,
    case_data,
    case_mask,
)

FD_TOL = 2e-5          # central differences, relative to the array's largest entry (×5 at inputs ×10, ×100)
REF_ONLY = False       # --reference-only: no kernels compiled
WILD = False           # --wild (round 7): deeper stacks, θ scaled ×1e-3 … ×30
REFUSED = ("res_norm", "res_conv", "res_gru")   # res_gru: Residual around RNN/GRU (refused)
SMOOTH = ("tanh", "sigmoid", "softplus", "gelu", "swish", "elu", "identity")


# -- the generator --------------------------------------------------------------------------

class Gen:
    """Random plain-data layer items (tests/strategies.py's formats) from one rng."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.r = rng

    def pick(self, seq):
        return seq[int(self.r.integers(len(seq)))]

    def coin(self, p: float = 0.5) -> bool:
        return bool(self.r.random() < p)

    def act(self, w: int = 2):
        r = self.r.random()
        if r < 0.7:
            return self.pick(ACTIVATION_NAMES)
        if r < 0.8 and w > 1:
            return "softmax"
        return ("lambda", self.pick(sorted(LAMBDAS)))

    def drop(self):
        return ("dropout", self.pick((0.0, 0.25, 0.5, 0.9)))

    # sequence layers: shape (T, n) or (channels, length) as the layers chain it
    def seq_front(self):
        """(items, flat width) of a sequence front ending with Flatten."""
        kind = self.pick(("conv", "conv", "attn", "rec", "rec", "norm", "mix"))
        items: list = []
        if kind in ("conv", "mix"):
            c, L = int(self.r.integers(1, 4)), int(self.r.integers(3, 8))
            shape = self._conv(items, c, L, first=True)
        elif kind == "attn":
            T, d = int(self.r.integers(1, 5)), int(self.r.integers(1, 4))
            items.append(("attn", d, int(self.r.integers(1, 4)), self.coin(), T))
            shape = (T, d)
        elif kind == "rec":
            T, n = int(self.r.integers(1, 5)), int(self.r.integers(1, 4))
            shape = self._rec(items, n, T, first=True)
        else:
            T, n = int(self.r.integers(1, 4)), int(self.r.integers(1, 5))
            items.append(("layernorm", n, self.pick((1e-5, 1e-3, 0.1)), T))
            shape = (T, n)
        for _ in range(int(self.r.integers(0, 3))):   # more sequence layers after it
            if len(shape) == 2:
                shape = self._seq_more(items, shape)
        if len(shape) == 1:   # a recurrent layer's h_T: already flat
            return items, shape[0]
        items.append(("flatten",))
        if self.coin(0.2):   # round 5: Conv1D → pool → Flatten → Dropout → Dense
            items.append(self.drop())
        return items, shape[0] * shape[1]

    def _conv(self, items, c, L, first=False):
        p = int(self.r.integers(0, 2))
        k = int(self.r.integers(1, min(4, L + 2 * p) + 1))
        s = int(self.r.integers(1, 3))
        co = int(self.r.integers(1, 4))
        items.append(("conv", c, co, k, s, p, L if first else None))
        L = (L + 2 * p - k) // s + 1
        if self.coin(0.7):
            items.append(self.act())
        if L >= 2 and self.coin(0.4):
            m = int(self.r.integers(2, min(3, L) + 1))
            items.append((self.pick(("avgpool", "maxpool")), m))
            L //= m
        return (co, L)

    def _rec(self, items, n, T, first=False, ret=None):
        H = int(self.r.integers(1, 4))
        ret = self.coin() if ret is None else ret
        k = int(self.r.integers(1, T + 1)) if self.coin(0.35) else None
        loop = self.coin(0.35)   # round 5: looped over time (unroll=False: scan / scan_gru)
        if self.coin():
            items.append(("grul" if loop else "gru", n, H, ret, T if first else None, k))
        else:
            items.append(("rnnl" if loop else "rnn", n, H, self.pick(REC_ACTIVATIONS), ret,
                          T if first else None, k))
        return (T, H) if ret else (H,)

    def _seq_more(self, items, shape):
        """One more layer on a (T, n) / (c, L) value; returns the new shape."""
        T, n = shape
        # (symnn refuses Residual around Conv1D / LayerNorm and Dropout inside a sequence
        # block: REFUSED lists them, drawn once in a while to check the refusal is clean)
        kind = self.pick(("attn", "norm", "act", "drop", "res_attn", "conv", "rec", "rec",
                          "attn", "res_attn", "norm") + (REFUSED if self.coin(0.1) else ()))
        if kind == "attn":
            items.append(("attn", n, int(self.r.integers(1, 4)), self.coin(), None))
        elif kind == "norm":
            items.append(("layernorm", n, self.pick((1e-5, 1e-3, 0.5)), None))
        elif kind == "act":
            items.append(self.act(n))
        elif kind == "drop":
            items.append(self.drop())
        elif kind == "res_attn":
            inner = [("attn", n, int(self.r.integers(1, 4)), self.coin(), None)]
            if self.coin(0.05):
                inner.append(self.drop())
            if self.coin(0.3):
                inner.append(self.act(n))
            items.append(("residual", tuple(inner)))
        elif kind == "res_norm":
            inner = [("layernorm", n, 1e-3, None)] + ([self.act(n)] if self.coin() else [])
            items.append(("residual", tuple(inner)))
        elif kind == "res_conv":   # same shape: stride 1, odd kernel, padding (k − 1)/2
            k = self.pick((1, 3))
            if k // 2 > n - 1 + k // 2:
                k = 1
            inner = [("conv", T, T, k, 1, k // 2, None)]
            if self.coin():
                inner.append(self.act(n))
            items.append(("residual", tuple(inner)))
        elif kind == "res_gru":
            it: list = []
            self._rec(it, n, T, ret=True)
            if self.coin(0.05):
                it.append(self.drop())
            it[0] = tuple(list(it[0][:2]) + [n] + list(it[0][3:]))   # hidden = n_in
            items.append(("residual", tuple(it)))
        elif kind == "conv":
            if n >= 1:
                return self._conv(items, T, n)
        else:
            return self._rec(items, n, T, ret=self.coin(0.7))
        return shape

    # flat layers
    def residual(self, n):
        inner: list = []
        if self.coin():
            inner.append(("dense", n, n, self.coin(0.8)))
        else:
            m = int(self.r.integers(1, 4))
            inner += [("dense", n, m, True), self.act(m)]
            if self.coin(0.3):
                inner.append(self.drop())
            if self.coin(0.3):
                inner.append(("layernorm", m, 1e-3, None))
            inner.append(("dense", m, n, True))
        if self.coin(0.3):
            inner.append(self.act(n))
        if self.coin(0.2):
            inner.append(("layernorm", n, 0.1, None))
        return ("residual", tuple(inner))

    def graph(self, n):
        widths = {"in": n}
        m = int(self.r.integers(1, 4))
        nodes = [("n0", ("dense", n, m, True), "in")]
        widths["n0"] = m
        for i in range(1, int(self.r.integers(2, 6))):
            names = list(widths)
            kind = self.pick(("dense", "act", "add", "mul", "concat", "residual", "drop",
                              "dense", "act") + (("norm",) if self.coin(0.05) else ()))
            u = self.pick(names)
            w = widths[u]
            name = f"n{i}"
            if kind == "dense":
                w = int(self.r.integers(1, 4))
                nodes.append((name, ("dense", widths[u], w, self.coin()), u))
            elif kind == "act":
                nodes.append((name, self.act(w), u))
            elif kind == "residual":
                nodes.append((name, self.residual(w), u))
            elif kind == "drop":
                nodes.append((name, self.drop(), u))
            elif kind == "norm":
                nodes.append((name, ("layernorm", w, 1e-3, None), u))
            else:
                same = [v for v in names if widths[v] == w] if kind != "concat" else names
                v = self.pick(same)
                w = w + widths[v] if kind == "concat" else w
                nodes.append((name, ("op", kind), u, v))
            widths[name] = w
        read = {s for node in nodes for s in node[2:]}
        out = nodes[-1][0]
        for j, (name, *_) in enumerate(list(nodes[:-1])):
            if name not in read:
                nodes.append((f"c{j}", ("op", "concat"), out, name))
                widths[f"c{j}"] = widths[out] + widths[name]
                out = f"c{j}"
        return ("graph", tuple(nodes), out), widths[out]

    def case(self, loss=None, head=False) -> NetCase:
        """A random case; ``loss`` and ``head`` (the output: None, a name or a Lambda item)
        fixed for --all-heads."""
        loss = self.pick(LOSS_NAMES) if loss is None else loss
        layers: list = []
        if self.coin(0.45):
            front, n = self.seq_front()
            layers += front
        else:
            n = int(self.r.integers(1, 6))
        depth = int(self.r.integers(1, 7 if WILD else 4))   # --wild: deeper stacks
        for l in range(depth):
            m = int(self.r.integers(1, 6))
            layers.append(("dense", n, m, self.coin(0.9)))
            n = m
            if l == depth - 1:
                break
            for _ in range(self.pick((0, 1, 1, 1, 2))):
                layers.append(self.act(n))
            r = self.r.random()
            if r < 0.2:
                layers.append(self.residual(n))
            elif r < 0.35:
                g, n = self.graph(n)
                layers.append(g)
            elif r < 0.45:
                layers.append(("layernorm", n, self.pick((1e-5, 1e-3, 0.5)), None))
            if self.coin(0.25):
                layers.append(self.drop())
        if head is not False:
            out = head
        elif loss in ("bce", "cross_entropy", "kl") and self.coin(0.8):
            out = self.pick(("sigmoid", "softmax"))
        else:
            out = self.pick(OUTPUTS)
            out = ("lambda", out[1]) if isinstance(out, tuple) else out
        if self.coin(0.1):
            layers.append(self.act(n))
        if out is not None:
            layers.append(out)
        pens = tuple((k, self.pick((0.01, 0.1, 0.5))) for k in ("l1", "l2") if self.coin(0.3))
        return self._named_penalties(NetCase(tuple(layers), loss, pens))

    def _named_penalties(self, case):
        """Round 5: penalties with ``params=`` (a random subset of the parameter names,
        biases and LayerNorm / recurrent / attention parameters included)."""
        if not case.penalties or not self.coin(0.5):
            return case
        try:
            names = [n for n, _ in case.build().param_shapes]
        except symnn.DeclarationError:
            return case
        pens = []
        for p in case.penalties:
            if self.coin(0.7):
                k = int(self.r.integers(1, len(names) + 1))
                pick = sorted(self.r.choice(len(names), size=k, replace=False))
                p = p + (tuple(names[i] for i in pick),)
            pens.append(p)
        return NetCase(case.layers, case.loss, tuple(pens))


def features(layers, out=None) -> set:
    out = set() if out is None else out
    for it in layers:
        if isinstance(it, tuple) and it:
            k = it[0]
            if k in ("rnn", "gru", "rnnl", "grul") and it[-1]:
                out.add(f"{k}/trunc")
            elif k == "residual":
                inner = features(it[1])
                out.add("res(" + "+".join(sorted(inner - {"act"})) + ")")
                continue
            elif k == "graph":
                out.add("graph")
                features([node[1] for node in it[1]], out)
                continue
            if k not in ("lambda", "dense", "flatten", "op"):
                out.add(k)
    return out


def mix_of(case) -> str:
    return "+".join(sorted(features(case.layers))) or "mlp"


# -- the checks -----------------------------------------------------------------------------

def _fd(f, x, h):
    """Central differences of f (array-valued) along each coordinate of x."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


def _fd_err(f, x, want, h=1e-5):
    """Relative error of ``want`` against central differences; a kink crossed by the step
    shows up as two step sizes disagreeing, then the smaller error counts."""
    e1 = rel_err(_fd(f, x, h), want)
    if e1 <= FD_TOL:
        return e1
    e2 = rel_err(_fd(f, x, h / 30), want)
    return min(e1, e2)


def is_truncated(case) -> bool:
    return any(isinstance(it, tuple) and it and it[0] in ("rnn", "gru", "rnnl", "grul") and it[-1]
               for it in _walk(case.layers))


def _walk(layers):
    for it in layers:
        yield it
        if isinstance(it, tuple) and it and it[0] == "residual":
            yield from _walk(it[1])
        if isinstance(it, tuple) and it and it[0] == "graph":
            yield from _walk([n[1] for n in it[1]])


def check(case, seed, batch, scale, do_torch=True, do_f32=True, do_fd=True, wscale=1.0):
    """``(status, {mode: err}, failures)`` for one case (``wscale``: θ multiplied by it)."""
    try:
        declared = case.build()
    except symnn.DeclarationError as err:
        return "rejected", {}, [("declare", str(err)[:200])]
    X, Y, th, v, V = case_data(declared, seed, batch)
    X = X * scale
    th = th * wscale
    errs: dict = {}
    fails: list = []
    trunc = is_truncated(case)

    def judge(mode, err, tol):
        errs[mode] = max(errs.get(mode, 0.0), err) if math.isfinite(err) else math.inf
        if not err <= tol:
            fails.append((mode, f"{err:.3g}"))

    try:
        if REF_ONLY:   # the derived program alone, uncompiled: derivation rules only
            from symnn.codegen.model import ReferenceModel
            m = ReferenceModel(declared)
            m.reference = m
        else:
            m = declared.compile()
        mask = case_mask(m, seed, X.shape[0])
        kw = {} if mask is None else {"mask": mask}
        with np.errstate(all="ignore"):
            if not math.isfinite(m.reference.loss(th, X, Y, **kw)):
                return "out_of_domain", {}, []
            got = _results(m, X, Y, th, v, V, True, mask)
            want = got if REF_ONLY else _results(m.reference, X, Y, th, v, V, True, mask)
    except symnn.DataError as err:   # round 5: softmax × bce products that overflow say so
        if "binary cross-entropy on a softmax output" in str(err):
            return "clear_error", {}, []
        return "crash", {}, [("crash", traceback.format_exc(limit=8))]
    except Exception:  # noqa: BLE001
        return "crash", {}, [("crash", traceback.format_exc(limit=8))]
    skip = {"hessian"} if trunc else set()
    for k in ([] if REF_ONLY else got):
        if k in skip:
            continue
        if k == "gnvp_zero":
            judge("kern:gnvp_zero", float(np.max(np.abs(got[k]))), 1e-12)
            continue
        kk = "loss" if k == "loss_lg" else k
        judge(f"kern:{k}", rel_err(got[k], want[kk]), RTOL if scale == 1 else 10 * RTOL)
    if do_torch:
        try:
            from _torch_ref import TorchCase
            with np.errstate(all="ignore"):
                tw = TorchCase(case, declared).results(th, X, Y, v, V, mask)
            for k in got:
                kk = "loss" if k == "loss_lg" else k
                # torch's .detach() stops the tangent too: its hvp is not the derivative
                # of the truncated gradient, its Jacobian in X not the prediction's
                tskip = {"hvp", "hvp_batched", "jacobian"} if trunc else set()
                if k in skip or k in tskip or k == "gnvp_zero" or kk not in tw:
                    continue
                judge(f"torch:{k}", rel_err(got[k], tw[kk]), RTOL if scale == 1 else 10 * RTOL)
        except Exception:  # noqa: BLE001
            fails.append(("torch:crash", traceback.format_exc(limit=8)))
    if do_fd:
        try:
            tol = FD_TOL if scale == 1 else 5 * FD_TOL
            _fd_checks(m, declared, X, Y, th, v, kw, trunc, got,
                       lambda mode, err, t: judge(mode, err, tol if mode != "dggn:diag" and
                                                  t == FD_TOL else t))
        except Exception:  # noqa: BLE001 - a crash of an analysis function is a finding
            fails.append(("fd:crash", traceback.format_exc(limit=8)))
    if do_f32 and not REF_ONLY:
        try:
            m32 = declared.compile(dtype="float32")
            with np.errstate(all="ignore"):
                g32 = _results(m32, X, Y, th, v, V, True, mask)
            for k, tol in F32_TOL.items():
                if k == "gnvp_zero" or k in skip:
                    continue
                err = rel_err(g32[k], got[k])
                if k in ("loss", "loss_lg"):
                    err = abs(g32[k] - got[k]) / max(1.0, abs(got[k]))
                judge(f"f32:{k}", err, tol if scale == 1 else 10 * tol)
        except symnn.DataError as err:   # round 7: the clear softmax × bce error, as above
            if "binary cross-entropy on a softmax output" not in str(err):
                fails.append(("f32:crash", traceback.format_exc(limit=8)))
        except Exception:  # noqa: BLE001
            fails.append(("f32:crash", traceback.format_exc(limit=8)))
    return "checked", errs, fails


def _fd_checks(m, declared, X, Y, th, v, kw, trunc, got, judge):
    ref = m.reference
    with np.errstate(all="ignore"):
        if not trunc:
            judge("fd:grad", _fd_err(lambda t: ref.loss(t, X, Y, **kw), th, got["grad"]),
                  FD_TOL)
            judge("fd:hess@v", rel_err(got["hessian"] @ v, got["hvp"]), 1e-9)
        gfun = lambda s: m.loss_and_grad(th + s[0] * v, X, Y, **kw)[1]  # noqa: E731
        judge("fd:hvp", _fd_err(gfun, np.zeros(1), got["hvp"][:, None]), FD_TOL)
        if X.shape[0] <= 2:   # d predict / d X of each sample
            J = got["jacobian"]
            for s in range(X.shape[0]):
                ks = {"mask": kw["mask"][s:s + 1]} if kw else {}
                fx = lambda x: m.predict(th, x[None], **ks)[0]  # noqa: E731
                judge("fd:jacobian", _fd_err(fx, X[s].copy(), J[s]), FD_TOL)
        if not kw and th.size <= 200:
            from symnn.analysis import diag_ggn
            d = diag_ggn(m, th, X, Y)
            E = np.eye(th.size)
            G = np.array([m.gnvp(th, E[i], X, Y)[i] for i in range(th.size)])
            judge("dggn:diag", rel_err(d, G), 1e-8)


# -- driver ---------------------------------------------------------------------------------

def run(n, seed, do_torch=True, do_f32=True, do_fd=True, only=None, log=print,
        minutes=None, require="", f32_every=1, all_heads=False):
    rng = np.random.default_rng(seed)
    gen = Gen(rng)
    table: dict = defaultdict(Counter)
    per_mode: Counter = Counter()
    status: Counter = Counter()
    worst: dict = defaultdict(float)
    failures = []
    stop = time.monotonic() + 60 * minutes if minutes else None
    heads = [(loss, out) for loss in LOSS_NAMES for out in OUTPUTS] if all_heads else None
    if heads:
        n = len(heads)
    for i in range(n):
        case = gen.case(*heads[i]) if heads else gen.case()
        data_seed = int(rng.integers(2**31))
        batch = int(gen.pick((1, 2, 7, 1, 2, 3)))
        scale = float(gen.pick((1.0, 1.0, 1.0, 1.0, 10.0, 100.0)))
        wscale = float(gen.pick((1e-3, 0.1, 1.0, 3.0, 10.0, 30.0))) if WILD else 1.0
        if only is not None and i != only:
            continue
        if require and not all(r in case.declaration() for r in require.split(",")):
            continue
        if stop and time.monotonic() > stop:
            break
        t0 = time.monotonic()
        f32 = do_f32 and (i % f32_every == 0)
        st, errs, fails = check(case, data_seed, batch, scale, do_torch, f32, do_fd, wscale)
        status[st] += 1
        mix = mix_of(case)
        for mode, err in errs.items():
            per_mode[mode] += 1
            worst[mode] = max(worst[mode], err)
        line = (f"[{i}] {st} {time.monotonic() - t0:5.1f}s B={batch} x{scale:g} {mix} "
                f"loss={case.loss}" + (f" θ×{wscale:g}" if WILD else ""))
        if st == "checked" and fails:
            line += f"  FAIL {fails if len(str(fails)) < 300 else fails[0][0]}"
        if st == "crash":
            line += "\n" + fails[0][1]
        log(line)
        if st in ("checked", "crash") and fails:
            for mode, info in fails:
                table[mix][mode] += 1
            rec = {"i": i, "seed": seed, "data_seed": data_seed, "batch": batch,
                   "scale": scale, "wscale": wscale, "mix": mix, "decl": case.declaration(),
                   "fails": fails}
            failures.append(rec)
            log(f"    decl: {case.declaration()}")
    return {"seed": seed, "status": dict(status), "per_mode": dict(per_mode),
            "worst": {k: (v if math.isfinite(v) else "inf") for k, v in worst.items()},
            "table": {k: dict(v) for k, v in table.items()}, "failures": failures}


def print_table(summary, log=print):
    log(f"\nseed {summary['seed']}: {summary['status']}")
    if not summary["table"]:
        log("no failures")
    for mix, modes in sorted(summary["table"].items()):
        log(f"  {mix:60s} " + ", ".join(f"{m}×{c}" for m, c in sorted(modes.items())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--only-case", type=int, default=None)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-f32", action="store_true")
    ap.add_argument("--f32-every", type=int, default=3,
                    help="compile every k-th case in float32 too (it doubles the compile time)")
    ap.add_argument("--no-fd", action="store_true")
    ap.add_argument("--require", default="", help="only cases whose declaration contains "
                    "every one of these comma-separated strings (e.g. AvgPool1D)")
    ap.add_argument("--out", default="")
    ap.add_argument("--reference-only", action="store_true",
                    help="check the uncompiled NumPy reference (derivation rules) against "
                    "torch, finite differences and diag_ggn, without compiling: many more "
                    "declarations per minute")
    ap.add_argument("--all-heads", action="store_true",
                    help="one random case for every loss × every output (round 5)")
    ap.add_argument("--wild", action="store_true",
                    help="round 7: deeper stacks (up to 6 dense layers) and θ scaled by one "
                    "of ×1e-3, ×0.1, ×1, ×3, ×10, ×30 (saturated activations)")
    a = ap.parse_args(argv)
    global REF_ONLY, WILD
    REF_ONLY = a.reference_only
    WILD = a.wild
    s = run(a.n, a.seed, not a.no_torch, not a.no_f32, not a.no_fd, a.only_case,
            log=lambda t: print(t, flush=True), minutes=a.minutes, require=a.require,
            f32_every=a.f32_every, all_heads=a.all_heads)
    print_table(s, lambda t: print(t, flush=True))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(s, fh, indent=1, default=str)
    return 1 if s["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
