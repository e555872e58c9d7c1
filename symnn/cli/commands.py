"""The ``symnn`` subcommands that derive, print and check: ``demo``, ``derive``,
``latex`` and ``check``."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import sympy as sp

from symnn.cli._common import check_output, error, limit_hint, load_spec, loss
from symnn.data import load_data
from symnn.errors import SizeLimitError, SpecError

__all__ = ["cmd_check", "cmd_demo", "cmd_derive", "cmd_latex", "random_batch"]

_XOR_NOTE = ("Gradient descent from this initialisation ended in XOR's well-known local "
             "minimum: the two hidden units cannot separate the classes and the output "
             "settles at 0.5 for two inputs. It is a property of the loss surface, not a "
             "bug: rerun with another --seed (the default, 1, succeeds).")


# -- demo -------------------------------------------------------------------------------

def cmd_demo(args) -> int:
    """The README's main job: declare, derive, print, compile and train XOR."""
    import symnn
    from symnn.train.loop import fit

    net = symnn.mlp([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse", name="xor")
    print("symnn demo: the 2-2-1 sigmoid XOR network with mean squared error")
    print()
    print(net.equations())
    print()
    w = sp.Symbol("W1_11", real=True)
    grad = net.gradient()
    print("Expanded gradient of one weight, for one sample (inputs x1, x2, target y1):")
    for line in expanded_text({w: grad[w]}, label=lambda s: f"∂L/∂{s}"):
        print("  " + line)
    print()
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    from symnn.codegen.cache import default_cache_dir

    # walk: the first run sat silent for ~10-40 s here (compiling)
    print(f"Compiling the derived program into Numba kernels (the first run takes some "
          f"seconds; the kernels are cached in {default_cache_dir()})…", flush=True)
    model = net.compile()
    optimizer = {"name": "sgd", "lr": args.lr}
    print(f"Training: full-batch gradient descent, η = {args.lr:g}, {args.epochs} steps, "
          f"seed {args.seed}")
    rule = update_rule_text(optimizer)
    print("\n".join("  " + ln if ln else "" for ln in rule.splitlines()))
    # four samples: a Python loop over the compiled gradient beats compiling an epoch kernel
    theta = np.asarray(fit(model, X, y, optimizer, epochs=args.epochs, batch_size=None,
                           seed=args.seed, shuffle=False, progress=False,
                           engine="python").params)
    print(f"Final loss: {loss(model, theta, X, y):.6g}")
    pred = np.asarray(model.predict(theta, X)).reshape(-1)
    print("Predictions:")
    for xi, yi, pi in zip(X, y.ravel(), pred):
        print(f"  x = ({xi[0]:g}, {xi[1]:g})  target {yi:g}  prediction {pi:.4f}")
    wrong = int(np.sum((pred > 0.5) != (y.ravel() > 0.5)))
    if wrong:
        print()
        print(textwrap.fill(f"Note: this run did not learn XOR ({wrong} of 4 predictions on "
                            f"the wrong side of 0.5). {_xor_note(model, theta, X, y, args)}",
                            width=88))
    return 0


def _xor_note(model, theta, X, y, args) -> str:
    """Why XOR was not learned (walk, round 6): ``symnn demo --epochs 200`` was told it sat
    in the local minimum, when it had only not left the starting plateau (loss ≈ 0.25)."""
    L, g = model.loss_and_grad(theta, X, y)
    if float(L) < 0.2 and float(np.max(np.abs(g))) < 1e-3:
        return _XOR_NOTE
    return (f"After {args.epochs} steps gradient descent has not separated the classes yet "
            f"(loss {float(L):.4g}; it starts on a plateau near 0.25): run more steps, e.g. "
            "--epochs 5000 (the default).")


def expanded_text(grad: dict, label) -> list[str]:
    """Text lines of expanded derivatives with shared subexpressions named ``u1, u2, …``."""
    exprs = list(grad.values())
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(cls=sp.Dummy), order="none")
    taken = {s.name for e in [v for _, v in repl] + list(reduced) for s in e.free_symbols
             if not isinstance(s, sp.Dummy)}
    prefix = next(p for p in ("u", "v", "q", "c", "tmp") if not any(
        n == p or (n.startswith(p) and n[len(p):].isdigit()) for n in taken))
    gen = sp.numbered_symbols(prefix, start=1)
    rename = {d: next(gen) for d, _ in repl}
    lines = [f"{rename[d]} = {sp.sstr(v.xreplace(rename))}" for d, v in repl]
    for s, e in zip(grad, reduced):
        lines.append(f"{label(s)} = {sp.sstr(e.xreplace(rename))}")
    return lines


def update_rule_text(optimizer: dict) -> str:
    """The update rule of a spec-file optimizer table, as text."""
    from symnn.train.optimizers import get_optimizer

    return str(get_optimizer(dict(optimizer)).equations()).strip()


# -- derive, latex --------------------------------------------------------------------------

def cmd_derive(args) -> int:
    """``symnn derive SPEC``: print the equations (text, LaTeX or Markdown)."""
    spec = load_spec(args.spec)
    declared = spec.declared
    if args.markdown:
        from symnn.printing.document import export_markdown

        with limit_hint():
            sys.stdout.write(export_markdown(declared, optimizer=spec.optimizer,
                                             expanded=args.expanded, title=spec.title,
                                             limit=args.limit))
        return 0
    eqs = declared.equations()
    if args.latex:
        print(eqs.latex())
        if args.expanded:
            from symnn.printing.document import expanded_gradient_latex

            with limit_hint():
                print(expanded_gradient_latex(declared, limit=args.limit))
        return 0
    print(eqs)
    if args.expanded:
        _check_expanded_size(declared, args.limit)
        grad = declared.gradient()
        print()
        print("Expanded gradient, for one sample:")
        for line in expanded_text(grad, label=lambda s: f"∂L/∂{s}"):
            print("  " + line)
    return 0


def _check_expanded_size(declared, limit: int | None = None) -> None:
    from symnn.printing.document import EXPANDED_LIMIT

    lim = EXPANDED_LIMIT if limit is None else limit
    if declared.n_params > lim:
        raise SizeLimitError(
            f"--expanded prints every ∂L/∂θ; this network has {declared.n_params} parameters "
            f"(limit {lim}; --limit N raises it); drop --expanded for the matrix form")


def cmd_latex(args) -> int:
    """``symnn latex SPEC``: write a standalone LaTeX document."""
    from symnn.printing.document import compile_pdf, export_latex
    from symnn.train.optimizers import get_optimizer

    if args.pdf and not args.output:
        raise SpecError("--pdf needs -o OUT.tex (the PDF is written next to it)")
    if args.pdf:  # walk 7: before the .tex is written (-o doc.pdf lost the source)
        from symnn.printing.document import _check_tex_name

        _check_tex_name(Path(args.output).resolve())
        check_output(str(Path(args.output).with_suffix(".pdf")))
    check_output(args.output, args.spec)
    spec = load_spec(args.spec)
    optimizer = None if spec.optimizer is None else get_optimizer(dict(spec.optimizer))
    with limit_hint():
        text = export_latex(spec.declared, args.output, optimizer=optimizer,
                            expanded=args.expanded, hessian=args.hessian,
                            title=args.title or spec.title, limit=args.limit)
    if not args.output:
        sys.stdout.write(text)
        return 0
    print(f"wrote {args.output}")
    if args.pdf:
        pdf = compile_pdf(args.output, keep_log=False)  # walk 7: no .log left behind
        print(f"wrote {pdf}")
    return 0


# -- check --------------------------------------------------------------------------------

def cmd_check(args) -> int:
    """``symnn check SPEC``: gradient (and Hessian) against finite differences."""
    from symnn.check import gradcheck, hesscheck

    spec = load_spec(args.spec)
    declared = spec.declared
    model = declared.compile(dtype=spec.training.get("dtype", "float64"))
    rng = np.random.default_rng(args.seed)
    if args.data:
        X, y = load_data(args.data, declared, spec.data)
        idx = rng.permutation(X.shape[0])[: args.batch]
        X, y = X[idx], y[idx]
    else:
        X, y = random_batch(declared, args.batch, rng)
    # walk 6: said before the first kernel call, which compiles (a cold run's pause)
    print(f"{declared.name}: {declared.n_params} parameters, batch of {X.shape[0]}",
          flush=True)
    theta = np.asarray(model.init(args.seed))
    report = gradcheck(model, theta, X, y, seed=args.seed)
    print(report)
    ok = bool(report)
    if args.hessian:
        h = hesscheck(model, theta, X, y, seed=args.seed)
        print(h)
        ok = ok and bool(h)
    if not ok:
        error("the derivative check failed (see the report above)")
        return 1
    return 0


def random_batch(declared, batch: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs and targets valid for the declared loss (probability rows, [0, 1]…)."""
    X = rng.normal(size=(batch, declared.n_inputs))
    n = declared.n_outputs
    if declared.loss.probabilities:
        Y = rng.random((batch, n)) + 0.05
        Y /= Y.sum(axis=1, keepdims=True)
    elif declared.loss.name == "bce":
        Y = rng.random((batch, n))
    else:
        Y = rng.normal(size=(batch, n))
    return X, Y

