"""The JAX peer of ``bench_layers.py``: in its process, or as a worker in another interpreter.

:func:`value_and_grad` builds ``jax.jit(jax.value_and_grad(loss))`` (float64,
``jax_enable_x64``) of the Conv1D or RNN workload for given weights and data.  When JAX is
not importable by the running interpreter, ``bench_layers.py --jax-python PATH`` starts
this file under ``PATH`` as a worker (it needs only JAX and NumPy, not symnn) and talks to
it by JSON lines on stdin/stdout:

* ``{"op": "setup", "kind": "conv"|"rnn", "H": int, "data": "f.npz", "grad": "g.npy"}`` —
  load the weights (``p_<name>`` arrays, in θ order) and ``X``, ``Y``; compile, call once,
  save the flat gradient to ``grad``; answers ``{"ok": true}``;
* ``{"op": "calibrate", "min_time": s}`` — answers ``{"number": n}``: calls per sample so
  that one sample lasts at least ``min_time`` (as ``_timing.time_samples`` calibrates);
* ``{"op": "time", "number": n, "clock": "wall"|"cpu"}`` — answers ``{"seconds": t}``:
  seconds (wall, or the worker's CPU time) per call of ``n`` back-to-back calls, timed
  inside the worker (the pipe's latency is not counted);
* ``{"op": "quit"}``.

The caller sends one ``time`` request per round, between the rounds of the in-process
candidates, so the JAX column is interleaved with the others like any other column.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def value_and_grad(kind: str, H: int, params: dict, X, Y):
    """``(thunk, grad)``: ``thunk()`` one jitted loss-and-gradient call (blocked until
    ready); ``grad()`` the flat gradient as a NumPy array, in ``params``' order."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    names = list(params)
    flat = [jnp.asarray(params[n]) for n in names]
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)

    def conv(x, W, b):
        z = jax.lax.conv_general_dilated(x, W, (1,), "VALID",
                                         dimension_numbers=("NCH", "OIH", "NCH"))
        return jax.nn.relu(z + b[None, :, None])

    def loss(ps):
        p = dict(zip(names, ps))
        if kind == "conv":
            h = conv(conv(Xj, p["W1"], p["b1"]), p["W2"], p["b2"])
            z = h.reshape(h.shape[0], -1) @ p["W3"].T + p["b3"]
            return -(Yj * jax.nn.log_softmax(z, axis=1)).sum(axis=1).mean()

        def step(h, xt):
            h = jnp.tanh(xt @ p["W_xh1"].T + h @ p["W_hh1"].T + p["b1"])
            return h, None

        h0 = jnp.zeros((Xj.shape[0], H))
        h, _ = jax.lax.scan(step, h0, jnp.swapaxes(Xj, 0, 1))
        out = h @ p["W2"].T + p["b2"]
        return ((out - Yj) ** 2).mean(axis=1).mean()

    vg = jax.jit(jax.value_and_grad(loss))

    def thunk():
        _, g = vg(flat)
        return jax.block_until_ready(g)

    def grad():
        return np.concatenate([np.asarray(a).reshape(-1) for a in thunk()])

    return thunk, grad


def _calibrate(fn, min_time: float) -> int:
    fn()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return number
        scale = 1.2 * min_time / elapsed if elapsed > 0 else 100.0
        number = max(2 * number, min(100 * number, int(number * scale) + 1))


def _per_call(fn, number: int, clock: str = "wall") -> float:
    now = time.process_time if clock == "cpu" else time.perf_counter
    t0 = now()
    for _ in range(number):
        fn()
    return (now() - t0) / number


def serve(stdin=sys.stdin, stdout=sys.stdout) -> None:
    """The worker loop (see the module docstring)."""
    thunk = None
    for line in stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "quit":
            return
        if op == "setup":
            with np.load(req["data"]) as d:
                params = {k[2:]: d[k] for k in d.files if k.startswith("p_")}
                X, Y = d["X"], d["Y"]
            thunk, grad = value_and_grad(req["kind"], int(req["H"]), params, X, Y)
            np.save(req["grad"], grad())
            out = {"ok": True}
        elif op == "calibrate":
            out = {"number": _calibrate(thunk, float(req["min_time"]))}
        elif op == "time":
            out = {"seconds": _per_call(thunk, int(req["number"]), req.get("clock", "wall"))}
        else:
            out = {"error": f"unknown request {op!r}"}
        stdout.write(json.dumps(out) + "\n")
        stdout.flush()


if __name__ == "__main__":
    serve()
