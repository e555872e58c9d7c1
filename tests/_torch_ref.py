"""An independent witness: the case's network or model written in PyTorch, differentiated by
``torch.func``.

Nothing here reads symnn's derived program.  The function is built from the case's plain
data (``tests/strategies.py``) and the documented conventions (``docs/losses.md``):

* θ layout: for each Dense layer ``W`` (``(n_out, n_in)``, row-major) then ``b``, the
  Dense layers inside a ``Residual`` where they stand; a custom model's θ is its
  parameters in order;
* ``Residual(f)``: ``h + f(h)``;
* ``Dropout(p)``: ``h ⊙ m / (1 − p)`` with the next columns of the case's fixed 0/1 mask
  (in the order the forward pass meets the Dropout layers), ``h`` itself without a mask;
* ``LayerNorm(n)``: γ (n,) then β (n,) in θ, ``γ ⊙ F.layer_norm(h, (n,), eps=ε) + β`` on
  each row of n (the same function as the affine ``F.layer_norm``, whose second
  derivatives torch 2.13 gets wrong);
* activations from the table :data:`ACTIVATIONS` (leaky ReLU α = 0.01, ELU α = 1, GELU in
  its erf form); user ``Lambda`` bodies and model expressions through :func:`to_torch`,
  a small SymPy → torch translator of our own;
* the loss of a batch is the mean of the per-sample losses, plus penalties
  ``λ Σ θ²`` / ``λ Σ |θ|`` over every weight matrix (a model: every parameter);
* the Gauss-Newton product is ``Jᵀ H_ℓ J v`` (+ the penalty's Hessian times ``v``), where
  ``J`` is the Jacobian of the value the loss reads: the logits of a softmax output
  followed by cross-entropy / KL and of a sigmoid output followed by BCE, cross-entropy
  or KL; the prediction otherwise.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp

torch = pytest.importorskip("torch")  # a skip, not an error, where torch is not installed

import torch.nn.functional as F  # noqa: E402
from torch.func import grad, hessian, jacrev, jvp, vjp  # noqa: E402

__all__ = ["ACTIVATIONS", "TorchCase", "to_torch"]

DT = torch.float64

#: Built-in activation name → torch function (must cover symnn.declare.activations).
ACTIVATIONS = {
    "identity": lambda z: z,
    "linear": lambda z: z,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
    "elu": lambda z: F.elu(z, 1.0),
    "softplus": lambda z: torch.logaddexp(z, torch.zeros_like(z)),
    "gelu": lambda z: F.gelu(z, approximate="none"),
    "swish": F.silu,
    "silu": F.silu,
    "softmax": lambda z: torch.softmax(z, dim=-1),
}

_FUNCS = {
    sp.exp: torch.exp, sp.log: torch.log, sp.sin: torch.sin, sp.cos: torch.cos,
    sp.tanh: torch.tanh, sp.Abs: torch.abs, sp.erf: torch.erf, sp.sqrt: torch.sqrt,
}


def to_torch(expr: sp.Expr, env: dict):
    """Evaluate a SymPy expression on torch tensors (``env``: symbol → tensor)."""
    if expr.is_Symbol:
        return env[expr]
    if expr.is_Number or expr.is_NumberSymbol:
        return float(expr)
    if expr.is_Add:
        out = 0.0
        for a in expr.args:
            out = out + to_torch(a, env)
        return out
    if expr.is_Mul:
        out = 1.0
        for a in expr.args:
            out = out * to_torch(a, env)
        return out
    if expr.is_Pow:
        base, e = expr.args
        tb = to_torch(base, env)
        if e.is_Integer:
            return tb ** int(e)
        if e.is_Number:
            return torch.pow(tb, float(e)) if torch.is_tensor(tb) else float(tb) ** float(e)
        return torch.pow(tb, to_torch(e, env))
    fn = _FUNCS.get(expr.func)
    if fn is not None:
        (arg,) = expr.args
        a = to_torch(arg, env)
        return fn(a if torch.is_tensor(a) else torch.tensor(a, dtype=DT))
    raise NotImplementedError(f"to_torch: no rule for {expr.func} in {expr}")


# -- convolutional layers: torch.nn.functional.conv1d / avg_pool1d / max_pool1d ---------------
# θ layout of a Conv1D: W (out_channels, in_channels, kernel) row-major, then b (out_channels,);
# values between layers stay (B, channels·length), row-major (c, t), as symnn's.

_CONV_KINDS = ("conv", "avgpool", "maxpool", "flatten")


def _conv_forward(step, theta, h):
    B = h.shape[0]
    if step[0] == "conv":
        _, ci, co, k, s, p, L, off = step
        W = theta[off:off + co * ci * k].reshape(co, ci, k)
        b = theta[off + co * ci * k:off + co * ci * k + co]
        z = F.conv1d(h.reshape(B, ci, L), W, b, stride=s, padding=p)
        return z.reshape(B, -1)
    kind, c, L, m = step
    pool = F.avg_pool1d if kind == "avgpool" else F.max_pool1d
    return pool(h.reshape(B, c, L), m).reshape(B, -1)


def _lambda_fn(body: sp.Expr, t: sp.Symbol):
    return lambda z: to_torch(body, {t: z}) + torch.zeros_like(z)


class TorchCase:
    """The case as torch functions of a flat θ (float64)."""

    def __init__(self, case, declared) -> None:
        from strategies import LAMBDAS, T

        self.case = case
        self.loss_name = case.loss
        self.n_out = declared.n_outputs
        if case.kind == "network":
            self.penalised = []      # (offset, size) of every W
            # ("dense", n_in, n_out, bias, offset), ("act", fn), ("residual", steps) or a
            # convolutional step (see _conv_step)
            self.steps, self.n_params = self._steps(case.layers, 0, LAMBDAS, T)
            last = case.output
        else:
            self.exprs = case.exprs
            self.xs, self.ps = case.inputs, case.params
            self.n_params = case.n_params
            self.penalised = [(0, case.n_params)]
            last = case.output
        self.last = last
        self.layout = list(getattr(declared, "param_shapes", ()))  # penalties' params= (h-exact r5)
        self.fused = (last == "softmax" and case.loss in ("cross_entropy", "kl")) or (
            last == "sigmoid" and case.loss in ("bce", "cross_entropy", "kl"))

    def _steps(self, items, off: int, lambdas, t, shape=None):
        """The steps of a list of plain layer items, θ read from ``off``: (steps, end)."""
        steps = []
        # shape: (channels, length) inside a convolutional front; a Residual's inner steps
        # start from the shape before it (h-exact: attention inside a later Residual)
        for it in items:
            if isinstance(it, tuple) and it[0] in _REC_KINDS:   # recurrent (issue 13)
                step, off, shape = _rec_step(self, it, off, shape)
                steps.append(step)
            elif isinstance(it, tuple) and it[0] in _CONV_KINDS:
                step, off, shape = self._conv_step(it, off, shape)
                if step is not None:
                    steps.append(step)
            elif isinstance(it, tuple) and it[0] == "dense":
                _, n_in, n_out, bias = it
                steps.append(("dense", n_in, n_out, bias, off))
                self.penalised.append((off, n_in * n_out))
                off += n_in * n_out + (n_out if bias else 0)
            elif isinstance(it, tuple) and it[0] == "layernorm":  # F.layer_norm per row
                _, n, eps, T = it
                steps.append(("layernorm", n, eps, off))
                shape = (T, n) if T is not None else shape  # (h-exact: a sequence front)
                off += 2 * n
            elif isinstance(it, tuple) and it[0] == "residual":   # y = x + f(x)
                inner, off = self._steps(it[1], off, lambdas, t, shape)
                steps.append(("residual", inner))
            elif isinstance(it, tuple) and it[0] == "graph":   # symnn.Graph (issue 13)
                step, off = self._graph_step(it, off, lambdas, t)
                steps.append(step)
            elif isinstance(it, tuple) and it[0] == "lambda":
                steps.append(("act", _lambda_fn(lambdas[it[1]], t)))
            elif isinstance(it, tuple) and it[0] == "dropout":  # (issue 13: dropout)
                steps.append(("act", lambda h, p=it[1]: self._drop(h, p)))
            else:
                steps.append(("act", ACTIVATIONS[it]))
        return steps, off

    @staticmethod
    def _run(steps, theta, h):
        for step in steps:
            if step[0] == "dense":
                _, n_in, n_out, bias, off = step
                W = theta[off:off + n_in * n_out].reshape(n_out, n_in)
                h = h @ W.T
                if bias:
                    h = h + theta[off + n_in * n_out:off + n_in * n_out + n_out]
            elif step[0] == "residual":
                h = h + TorchCase._run(step[1], theta, h)
            elif step[0] == "graph":
                h = _graph_run(step, theta, h)
            elif step[0] in _CONV_KINDS:
                h = _conv_forward(step, theta, h)
            elif step[0] == "layernorm":  # θ: γ (n,) then β (n,); rows of n
                # γ ⊙ F.layer_norm(h) + β: torch 2.13's second derivatives of the affine
                # F.layer_norm(h, (n,), γ, β) are wrong (torch.func.hessian gives an
                # asymmetric matrix; jvp(grad) is right), see tests/test_layernorm.py
                _, n, eps, off = step
                B = h.shape[0]
                h = (F.layer_norm(h.reshape(B, -1, n), (n,), None, None, eps)
                     * theta[off:off + n] + theta[off + n:off + 2 * n]).reshape(B, -1)
            elif step[0] in _REC_KINDS:
                h = _rec_forward(step, theta, h)
            else:
                h = step[1](h)
        return h

    # -- forward -------------------------------------------------------------------------
    def _forward(self, theta, X):
        """``(prediction, input of the last activation or None)``, both ``(B, n)``."""
        self._col = 0  # the next mask column a Dropout layer reads (issue 13: dropout)
        if self.case.kind == "network":
            before = self._run(self.steps[:-1], theta, X)
            h = self._run(self.steps[-1:], theta, before)
            if self.last is None:
                before = None
            return h, before
        env = {x: X[:, i] for i, x in enumerate(self.xs)}
        env.update({p: theta[j] for j, p in enumerate(self.ps)})
        zero = torch.zeros(X.shape[0], dtype=DT)
        f = torch.stack([to_torch(e, env) + zero for e in self.exprs], dim=1)
        if self.last is None:
            return f, None
        return ACTIVATIONS[self.last](f), f

    # -- convolutional layers (Conv1D, pools, Flatten) --------------------------------------
    def _conv_step(self, it, off, shape):
        """A convolutional item's step (None for flatten), the next θ offset and the output
        shape."""
        if it[0] == "conv":
            _, ci, co, k, s, p, L = it
            L = L if L is not None else shape[1]
            self.penalised.append((off, co * ci * k))
            return (("conv", ci, co, k, s, p, L, off), off + co * ci * k + co,
                    (co, (L + 2 * p - k) // s + 1))
        if it[0] == "flatten":
            return None, off, None
        c, L = shape
        return (it[0], c, L, it[1]), off, (c, L // it[1])

    def predict(self, theta, X):
        return self._forward(theta, X)[0]

    # -- dropout (issue 13) ------------------------------------------------------------------
    _M = None  # the case's fixed mask (B, W) as a tensor, or None (no mask: the identity)

    def _drop(self, h, p):
        """``h ⊙ m / (1 − p)``, m the mask's next ``h.shape[1]`` columns (``h`` without one)."""
        if self._M is None:
            return h
        m = self._M[:, self._col:self._col + h.shape[1]]
        self._col += h.shape[1]
        return h * m / (1 - p)

    def loss_input(self, theta, X):
        """The value the loss reads: logits for the fused pairings, the prediction else."""
        pred, before = self._forward(theta, X)
        return before if self.fused else pred

    def ell(self, u, Y):
        """Per-sample losses ``(B,)`` from the loss's input value ``u`` (logits when fused).

        The logarithmic losses are written once, in ``log p`` and ``log(1 − p)``; a fused
        output gives those logs from the logits (``log_softmax``, ``logsigmoid``)."""
        name = self.loss_name
        if self.fused and self.last == "softmax":
            logp, log1mp, a = torch.log_softmax(u, dim=1), None, torch.softmax(u, dim=1)
        elif self.fused:
            logp, log1mp, a = F.logsigmoid(u), F.logsigmoid(-u), torch.sigmoid(u)
        else:
            a = u
            logp, log1mp = torch.log(a), torch.log(1 - a)
        if name == "mse":
            return ((a - Y) ** 2).mean(dim=1)
        if name == "mae":
            return (a - Y).abs().mean(dim=1)
        if name == "huber":
            r = a - Y
            return torch.where(r.abs() <= 1.0, r**2 / 2, r.abs() - 0.5).mean(dim=1)
        if name == "bce" and self.last == "softmax" and not self.fused and 1 < a.shape[1] <= 64:
            # symnn reads 1 − pₖ as Σ_{j≠k} pⱼ (finite at large logit gaps; docs/losses.md)
            n = a.shape[1]
            rest = torch.stack([torch.cat([a[:, :k], a[:, k + 1:]], 1).sum(1)
                                for k in range(n)], 1)
            return -(torch.xlogy(Y, a) + torch.xlogy(1 - Y, rest)).mean(dim=1)
        if name == "bce":
            return -(Y * logp + (1 - Y) * log1mp).mean(dim=1)
        if name == "cross_entropy":
            return -(Y * logp).sum(dim=1)
        if name == "kl":
            return (torch.xlogy(Y, Y) - Y * logp).sum(dim=1)
        raise NotImplementedError(f"torch reference: no loss {name!r}")

    def penalty(self, theta):
        out = torch.zeros((), dtype=DT)
        for kind, lam, *names in self.case.penalties:
            for off, size in (self._named(names[0]) if names else self.penalised):
                w = theta[off:off + size]
                out = out + lam * ((w**2).sum() if kind == "l2" else w.abs().sum())
        return out

    def _named(self, names):  # (offset, size) of the parameters a params= list names (h-exact r5)
        spans, off = [], 0
        for name, shape in self.layout:
            size = int(np.prod(shape))
            if name in names:
                spans.append((off, size))
            off += size
        return spans

    def loss(self, theta, X, Y):
        return self.ell(self.loss_input(theta, X), Y).mean() + self.penalty(theta)

    # -- numpy in, numpy out -------------------------------------------------------------
    def results(self, theta, X, Y, v, V, mask=None) -> dict:
        """Every kernel's value, as the compiled model names them (at the fixed Dropout
        ``mask``, when given)."""
        self._M = None if mask is None else torch.tensor(mask, dtype=DT)
        with warnings.catch_warnings():
            # torch.func's forward mode still goes through torch.jit.script (torch 2.13)
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated",
                                    category=DeprecationWarning)
            return self._results(theta, X, Y, v, V)

    def _results(self, theta, X, Y, v, V) -> dict:
        th = torch.tensor(theta, dtype=DT)
        Xt, Yt = torch.tensor(X, dtype=DT), torch.tensor(Y, dtype=DT)
        vt, Vt = torch.tensor(v, dtype=DT), torch.tensor(V, dtype=DT)

        def L(t):
            return self.loss(t, Xt, Yt)

        def hvp(u):
            return jvp(grad(L), (th,), (u,))[1]

        def gnvp(u):
            u_fn = lambda t: self.loss_input(t, Xt)  # noqa: E731
            out, u_dot = jvp(u_fn, (th,), (u,))
            Ldata = lambda w: self.ell(w, Yt).mean()  # noqa: E731
            Hu = jvp(grad(Ldata), (out,), (u_dot,))[1]
            _, pull = vjp(u_fn, th)
            pen = jvp(grad(self.penalty), (th,), (u,))[1]
            return pull(Hu)[0] + pen

        B = X.shape[0]
        full = self._M  # the Jacobian is taken one sample at a time: that sample's mask row
        jac = []
        for i in range(B):
            self._M = None if full is None else full[i:i + 1]
            jac.append(jacrev(lambda x: self.predict(th, x[None])[0])(Xt[i]).detach().numpy())
        jac = np.stack(jac)
        self._M = full
        return {
            "predict": self.predict(th, Xt).detach().numpy(),
            "loss": float(L(th)),
            "grad": grad(L)(th).detach().numpy(),
            "hvp": hvp(vt).detach().numpy(),
            "hvp_batched": np.stack([hvp(Vt[k]).detach().numpy() for k in range(V.shape[0])]),
            "gnvp": gnvp(vt).detach().numpy(),
            "gnvp_zero": gnvp(torch.zeros_like(vt)).detach().numpy(),
            "hessian": hessian(L)(th).detach().numpy(),
            "jacobian": jac,
        }


# -- graphs (issue 13: symnn.Graph) -----------------------------------------------------------
# A graph item ("graph", nodes, output) of tests/strategies.py: its nodes in topological
# order, the θ of each layer node where it stands in that order.

def _graph_step(self, it, off, lambdas, t):
    _, nodes, out = it
    steps = []
    for name, head, *ins in nodes:
        if isinstance(head, tuple) and head[0] == "op":
            steps.append((name, head[1], None, ins))
        else:
            inner, off = self._steps([head], off, lambdas, t)
            steps.append((name, "layer", inner, ins))
    return ("graph", steps, out), off


def _graph_run(step, theta, h):
    _, nodes, out = step
    vals = {"in": h}
    for name, kind, inner, ins in nodes:
        a = [vals[s] for s in ins]
        if kind == "layer":
            vals[name] = TorchCase._run(inner, theta, a[0])
        elif kind == "add":
            vals[name] = a[0] + a[1]
        elif kind == "mul":
            vals[name] = a[0] * a[1]
        else:
            vals[name] = torch.cat(a, dim=1)
    return vals[out]


TorchCase._graph_step = _graph_step


# -- end of graphs ----------------------------------------------------------------------------


# -- recurrent layers: torch.nn.RNN / torch.nn.GRU (issue 13) ---------------------------------
# Items: ("rnn", n_in, H, activation, return_sequences, T or None, truncate or None) and
# ("gru", n_in, H, return_sequences, T or None, truncate or None).  θ layout of an RNN:
# W_xh (H, n_in), W_hh (H, H), b (H,) — torch's two biases are b and 0; of a GRU: W_ir,
# W_iz, W_in (torch's weight_ih_l0 stacked), W_hr, W_hz, W_hn, b_ir, b_iz, b_in, b_hr, b_hz,
# b_hn.  Truncated BPTT: the state is detached after steps T − k, T − 2k, … (the sequence
# run in chunks, each starting from the previous chunk's state .detach()ed).

_REC_KINDS = ("rnn", "gru", "rnnl", "grul")  # rnnl/grul: looped over time (scan, scan_gru)


def rec_fields(it):
    """``(kind, n_in, H, activation, return_sequences, T, truncate)`` of a recurrent item."""
    if it[0] in ("gru", "grul"):  # grul: looped over time (scan_gru), the same recurrence
        return ("gru", it[1], it[2], "gru", it[3], it[4], it[5])
    if it[0] == "rnnl":  # looped over time (scan): the same recurrence
        return ("rnn",) + tuple(it[1:])
    return tuple(it)


def _rec_step(case, it, off, shape):
    kind, n_in, H, act, ret, T, trunc = rec_fields(it)
    T = T if T is not None else shape[0]
    g = 3 if kind == "gru" else 1
    n_w = g * H * (n_in + H)
    case.penalised.append((off, n_w))
    end = off + n_w + (2 * g * H if kind == "gru" else H)
    if kind == "gru":  # made here, outside torch.func's vmap (their init draws numbers)
        mod = torch.nn.GRU(n_in, H, batch_first=True, dtype=DT)
    elif act in ("tanh", "relu"):
        mod = torch.nn.RNN(n_in, H, nonlinearity=act, batch_first=True, dtype=DT)
    else:  # another activation: the Elman loop written out
        mod = None
    return (kind, n_in, H, act, ret, T, trunc, off, mod), end, ((T, H) if ret else None)


def _rec_params(step, theta):
    kind, n_in, H, act, ret, T, trunc, off, _ = step
    g = 3 if kind == "gru" else 1
    Wi = theta[off:off + g * H * n_in].reshape(g * H, n_in)
    o = off + g * H * n_in
    Wh = theta[o:o + g * H * H].reshape(g * H, H)
    o += g * H * H
    bi = theta[o:o + g * H]
    bh = theta[o + g * H:o + 2 * g * H] if kind == "gru" else torch.zeros(H, dtype=DT)
    return {"weight_ih_l0": Wi, "weight_hh_l0": Wh, "bias_ih_l0": bi, "bias_hh_l0": bh}


def _rec_forward(step, theta, h):
    from torch.func import functional_call

    kind, n_in, H, act, ret, T, trunc, off, mod = step
    B = h.shape[0]
    x = h.reshape(B, T, n_in)
    ps = _rec_params(step, theta)
    cuts = sorted(set(range(T - trunc, 0, -trunc))) if trunc else []
    bounds = [0] + cuts + [T]
    state = torch.zeros(1, B, H, dtype=DT)
    outs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if a > 0:
            state = state.detach()
        if mod is not None:
            out, state = functional_call(mod, ps, (x[:, a:b], state))
        else:
            f, hs, s = ACTIVATIONS[act], [], state[0]
            for t in range(a, b):
                s = f(x[:, t] @ ps["weight_ih_l0"].T + s @ ps["weight_hh_l0"].T
                      + ps["bias_ih_l0"])
                hs.append(s)
            out, state = torch.stack(hs, dim=1), s[None]
        outs.append(out)
    out = torch.cat(outs, dim=1)
    return out.reshape(B, T * H) if ret else out[:, -1]


# -- self-attention (issue 13: SelfAttention) ---------------------------------------------------
# ("attn", d_model, d_k, causal, length) items: θ holds W_q, W_k, W_v (d_k, d_model) then W_o
# (d_model, d_k), row-major, no biases; the value between layers stays (B, T·d_model), row-major
# (t, i).  torch computes the attention with F.scaled_dot_product_attention (is_causal).

_CONV_KINDS = _CONV_KINDS + ("attn",)
_conv_forward_plain = _conv_forward
_conv_step_plain = TorchCase._conv_step


def _conv_forward(step, theta, h):  # noqa: F811 - with attention steps
    if step[0] != "attn":
        return _conv_forward_plain(step, theta, h)
    _, T, d, dk, causal, off = step
    n = dk * d
    Wq, Wk, Wv = (theta[off + i * n:off + (i + 1) * n].reshape(dk, d) for i in range(3))
    Wo = theta[off + 3 * n:off + 4 * n].reshape(d, dk)
    X = h.reshape(h.shape[0], T, d)
    O = F.scaled_dot_product_attention(X @ Wq.T, X @ Wk.T, X @ Wv.T, is_causal=causal)
    return (O @ Wo.T).reshape(h.shape[0], -1)


def _attn_conv_step(self, it, off, shape):
    """The convolutional items' step, with ("attn", …) items: ("attn", T, d, d_k, causal,
    offset), the next θ offset and the shape (T, d)."""
    if it[0] != "attn":
        return _conv_step_plain(self, it, off, shape)
    _, d, dk, causal, L = it
    T = L if L is not None else shape[0]
    for i in range(4):
        self.penalised.append((off + i * dk * d, dk * d))
    return ("attn", T, d, dk, causal, off), off + 4 * dk * d, (T, d)


TorchCase._conv_step = _attn_conv_step

# -- end of self-attention ----------------------------------------------------------------------
