"""Derivation time: reverse mode over the graph vs. brute-force ``sympy.diff``.

Prints, in one run (medians of repeats, seconds):

* matrix-form equations of a 64-128-128-10 network;
* the derived program for depth 2, 4, 8, 16 (width 16, tanh) and the ratio to depth 2 —
  reverse mode is linear in depth;
* the expanded exact gradient of a 16-16-4 tanh network (340 parameters), and with
  ``--brute`` the brute-force alternative (``sympy.diff`` of the expanded loss once per
  parameter; ~19 s here), for the ratio.

Run: ``python benchmarks/bench_derive.py [--brute]``
"""

from __future__ import annotations

import statistics
import sys
import time

import symnn
from symnn import derive as derive_mod


def _median(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def fresh_equations(sizes, **kw):
    return lambda: symnn.mlp(sizes, **kw).equations()


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    print("symnn derivation benchmark (medians, seconds)")
    t = _median(fresh_equations([64, 128, 128, 10], activation="tanh", output="softmax",
                                loss="cross_entropy"))
    print(f"  equations of 64-128-128-10 tanh/softmax-CE: {t:.4f}")
    base = None
    print("  depth  program(s)  ratio-to-depth-2")
    for depth in (2, 4, 8, 16):
        sizes = [16] + [16] * depth + [4]
        t = _median(lambda s=sizes: derive_mod.derive(symnn.mlp(s, activation="tanh")))
        base = base or t
        print(f"  {depth:5d}  {t:10.4f}  {t / base:6.2f}")
    net_sizes = [16, 16, 4]
    t_exp = _median(lambda: symnn.mlp(net_sizes, activation="tanh").gradient(), repeat=3)
    print(f"  expanded gradient 16-16-4 tanh (340 params): {t_exp:.3f}")
    if "--brute" in argv:
        import sympy as sp

        net = symnn.mlp(net_sizes, activation="tanh")
        L = net.loss_expr()
        params = list(net.gradient().keys())
        t0 = time.perf_counter()
        for p in params:
            sp.diff(L, p)
        t_brute = time.perf_counter() - t0
        print(f"  brute-force sympy.diff per parameter: {t_brute:.3f}  "
              f"(ratio {t_brute / t_exp:.1f}x)")


if __name__ == "__main__":
    import _machine  # machine, threads, load (benchmarks/_machine.py)

    _machine.print_machine()
    main()
