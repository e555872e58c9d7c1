"""A corpus of hostile and broken *files*: spec files, model files, data files, the kernel
cache and the command line that reads them (issue 10, the file classes).

Every case states its outcome: the error class (always a ``SymnnError`` subclass for a
deliberate error) and a fragment of the message — or that the input was handled
correctly.  Cases that could hang or exhaust memory (bombs, FIFOs, /dev/zero, huge numbers)
run in subprocesses with a 4 GiB address-space limit, a per-case alarm and a timeout;
many cases share one subprocess so that the whole file stays near a minute.  Canary files
prove that nothing a file says is executed and nothing is written where it should not be.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symnn
from symnn.data import Standardizer
from symnn.errors import SymnnError, SymnnWarning
from symnn.train import io as sio

if not hasattr(os, "mkfifo") or sys.platform == "win32":  # FIFOs, rlimits, flock: POSIX
    pytest.skip("the hostile-file corpus needs a POSIX system", allow_module_level=True)

CANARY = "symnn-canary-must-not-exist"

RUNNER = textwrap.dedent(r"""
    import contextlib, io, json, os, resource, signal, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    cases = json.load(open(sys.argv[1]))
    os.environ["SYMNN_CACHE_DIR"] = sys.argv[3]
    import numpy as np, sympy as sp, symnn
    from symnn import data as D
    from symnn.cli import main
    from symnn.spec import load_spec, loads_spec, parse_expression
    from symnn.train.io import load

    class CaseTimeout(Exception):
        pass

    def alarm(*_):
        raise CaseTimeout("the case ran past its alarm")

    signal.signal(signal.SIGALRM, alarm)
    A, X = sp.symbols("A x", real=True)
    DECLS = {
        "oo": lambda: A * X + sp.oo, "-oo": lambda: A * X - sp.oo,
        "zoo": lambda: A * X + sp.zoo, "nan": lambda: A * X + sp.nan,
        "I": lambda: A * X + sp.I, "acos2": lambda: A * X + sp.acos(2),
        "sqrt-1": lambda: A * sp.sqrt(-1) * X, "pow1100": lambda: A * X * 2**1100,
        "floor": lambda: sp.floor(A * X), "ceiling": lambda: A * sp.ceiling(X),
        "log0": lambda: A * X + sp.log(0), "ok_abs": lambda: A * sp.Abs(X) + sp.pi,
        "ok_max": lambda: sp.Max(A * X, 0),
    }

    def run(c):
        k = c["kind"]
        if k == "spec_text":
            loads_spec(c["text"], name="h.toml")
        elif k == "spec_none":
            loads_spec(None)
        elif k == "spec_file":
            load_spec(c["path"])
        elif k == "spec_data":
            s = load_spec(c["path"])
            p = s.data_path(allow_outside=c.get("allow", False))
            D.load_dataset(str(p) if p is not None else s.data["source"], s.declared, s.data)
        elif k == "expr":
            parse_expression(c["text"], {"a": A, "x": X})
        elif k == "model_file":
            r = load(c["path"] if c["path"] != "__none__" else None)
            if c.get("predict") is not None:
                out = r.predict(np.asarray(c["predict"], dtype=float))
                return {"value": np.asarray(out).tolist()}
        elif k == "data":
            D.load_dataset(c["source"], symnn.mlp(c["layers"]), c.get("options"))
        elif k == "decl":
            symnn.Model(DECLS[c["name"]](), inputs=[X], params=[A])
        elif k == "cli":
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(c["argv"])
            return {"code": code, "err": err.getvalue(), "out": out.getvalue()}
        else:
            raise AssertionError(k)
        return {}

    results = {}
    for c in cases:
        print("START", c["id"], file=sys.stderr, flush=True)
        t = time.perf_counter()
        signal.alarm(30)
        try:
            r = run(c)
            r.update(error=None)
        except BaseException as e:  # every outcome is recorded, even a hang's alarm
            r = {"error": type(e).__name__, "bases": [b.__name__ for b in type(e).__mro__],
                 "message": str(e)}
        finally:
            signal.alarm(0)
        r["seconds"] = time.perf_counter() - t
        results[c["id"]] = r
    json.dump(results, open(sys.argv[2], "w"))
""")


# -- building the corpus ---------------------------------------------------------------------

def spec_model(expr: str) -> str:
    return f'[model]\nexpr = "{expr}"\ninputs = ["x"]\nparams = ["a"]\n'


NET = '[network]\nlayers = [2, 2, 1]\n'


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _npy_header(descr, shape: tuple, payload: bytes = b"", version=(1, 0),
                fortran=False) -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode()
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + b" " * pad + b"\n"
    return (b"\x93NUMPY" + bytes(version) + struct.pack("<H", len(header)) + header
            + payload)


def _zip(path, members: dict[str, bytes], compress=zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


class Models:
    """Valid model files and the pieces to tamper with them (checksums recomputed)."""

    def __init__(self, d):
        self.d = d
        x = sp.Symbol("t", real=True)
        self.net = symnn.Network([symnn.Dense(2, 3), sp.Lambda(x, x / (1 + sp.Abs(x))),
                                  symnn.Dense(3, 1)], loss="mse", name="hostile")
        self.theta = np.linspace(-1, 1, self.net.n_params)
        self.good = os.path.join(d, "good.npz")
        sio.save(self.good, self.net, self.theta)
        a, xx = sp.symbols("a x", real=True)
        self.model = symnn.Model(a * sp.exp(-xx), inputs=[xx], params=[a], name="decay")
        self.good_model = os.path.join(d, "good_model.npz")
        sio.save(self.good_model, self.model, np.array([2.0]))
        self.scaled = os.path.join(d, "scaled.npz")
        sio.save(self.scaled, self.net, self.theta,
                 scaler=Standardizer(np.array([1.0, -2.0]), np.array([2.0, 0.5])))
        with np.load(self.good) as z:
            self.meta = json.loads(z["meta"].tobytes())
        with np.load(self.good_model) as z:
            self.model_meta = json.loads(z["meta"].tobytes())
        self.n = 0

    def write(self, meta: dict, theta=None, fix=True, extra: dict | None = None,
              raw_meta: bytes | None = None) -> str:
        self.n += 1
        path = os.path.join(self.d, f"m{self.n}.npz")
        theta = self.theta if theta is None else theta
        arrays = dict(extra or {})
        if fix:
            meta = dict(meta)
            meta["sha256"] = sio._digest(meta, np.asarray(theta), arrays)
        text = raw_meta if raw_meta is not None else json.dumps(meta).encode()
        members = {"theta.npy": _npy(np.asarray(theta)),
                   "meta.npy": _npy(np.frombuffer(text, np.uint8))}
        members.update({f"{k}.npy": _npy(np.asarray(v)) for k, v in arrays.items()})
        return _zip(path, members)

    def expr_model(self, expr_data) -> str:
        """The custom model with its expression replaced by ``expr_data``."""
        meta = json.loads(json.dumps(self.model_meta))
        meta["spec"]["exprs"] = [expr_data]
        return self.write(meta, theta=np.array([2.0]))

    def activation(self, body=None, name="f") -> str:
        meta = json.loads(json.dumps(self.meta))
        layer = meta["spec"]["layers"][1]
        layer["activation"] = name
        layer.pop("custom", None)
        if body is not None:
            layer["custom"] = body
        return self.write(meta)

    def with_spec(self, **changes) -> str:
        meta = json.loads(json.dumps(self.meta))
        meta["spec"].update(changes)
        return self.write(meta)

    def with_meta(self, fix=True, **changes) -> str:
        meta = json.loads(json.dumps(self.meta))
        for k, v in changes.items():
            if v is _DROP:
                meta.pop(k, None)
            else:
                meta[k] = v
        return self.write(meta, fix=fix)


_DROP = object()
I = lambda v: {"f": "Integer", "v": str(v)}  # noqa: E731
SYM_A = {"f": "Symbol", "name": "a", "assumptions": {"real": True}}
SYM_X = {"f": "Symbol", "name": "x", "assumptions": {"real": True}}


def node(f, *args):
    return {"f": f, "a": list(args)}


def times_ax(e):
    """a*x*e: keeps both declared symbols in the expression."""
    return node("Mul", SYM_A, SYM_X, e)


def build_cases(d: str) -> list[dict]:
    cases: list[dict] = []

    def case(id_, kind, expect, fragment=None, **kw):
        cases.append({"id": id_, "kind": kind, "expect": expect, "fragment": fragment, **kw})

    # ---- spec expressions: bounds before SymPy evaluates anything --------------------------
    E = "SpecError"
    for i, (expr, frag) in enumerate([
        ("a*x*sqrt(2)^(10^1000)", "beyond float64"),
        ("a*x*exp(10^300*log(2))", "beyond float64"),
        ("a*x*exp(-10^300*log(2))", "beyond float64"),
        ("a*x*2^1100", "beyond float64"),
        ("a*x*10^400", "beyond float64"),
        ("a*x*2^-2000", "beyond float64"),
        ("a*x*(1/3)^1000", "beyond float64"),
        ("a*x^(10^300)", "exponent"),
        ("a*x^(2^20)", "exponent"),
        ("a*x*9^9^9^9", "more than 2000 digits"),
        ("a*x*(9^9)^(9^9)", "more than 2000 digits"),
        ("a*x*exp(1000)", "beyond float64"),
        ("a*x*10^308*10", "beyond float64"),
        ("a*x*e^(10^300)", "exponent"),
        ("a*x*exp(exp(exp(6)))", "beyond float64"),
        ("a*x*exp(exp(10))", "beyond float64"),
        ("a*x*1e309", "beyond"),
        ("a*x*" + "1" * 61, "longer than 60"),
        ("a*x + acos(2)", "complex"),
        ("a*x + asin(3)", "complex"),
        ("a*x + log(-1)", "complex"),
        ("a*x + sqrt(-2)", "complex"),
        ("a*x*(-8)^(1/3)", "complex"),
        ("a*x/0", "division by zero"),
        ("a*x + 1/(2-2)", "division by zero"),
        ("a*x + log(0)", "infinite"),
        ("a*x*tan(pi/2)", "infinite"),
        ("__import__('os').system('touch " + CANARY + "')", "not allowed"),
        ("a*x; import os", "';' is not allowed"),
        ("a.__class__", "'.' is not allowed"),
        ("x[0]*a", "'[' is not allowed"),
        ("lambda: a*x", "':' is not allowed"),
        ("eval(a*x)", "'eval' is not allowed"),
        ("exec(a)", "'exec' is not allowed"),
        ("open(a*x)", "'open' is not allowed"),
        ("getattr(a, x)", "'getattr' is not allowed"),
        ("floor(a*x)", "'floor' is not allowed"),
        ("ceiling(a*x)", "'ceiling' is not allowed"),
        ("Heaviside(a*x)", "'Heaviside' is not allowed"),
        ("sympify(a)", "'sympify' is not allowed"),
        ("Symbol(a)", "'Symbol' is not allowed"),
        ("a*y", "unknown name 'y'"),
        ("a @ x", "'@' is not allowed"),
        ("a = x", "'=' is not allowed"),
        ("a*x # c", "'#' is not allowed"),
        ("a\\\\x", "'\\\\' is not allowed"),
        ("(" * 150 + "a*x" + ")" * 150, "nested deeper"),
        ("-" * 300 + "a*x", "nested deeper"),
        ("exp(" * 120 + "a*x" + ")" * 120, "nested deeper"),
        ("a*x+" * 600 + "a", "longer than 2000"),
        ("max(" + ",".join(["a*x"] * 6000) + ")", "longer than 2000"),
        ("a*x*((", "expected"),
        ("", "empty"),
    ]):
        case(f"expr-{i:02d}", "spec_text", E, frag, text=spec_model(expr))
    for i, expr in enumerate(["a*x + pi", "a*exp(-x)", "max(a*x, 0)", "a*x*2^1000",
                              "a*x*sin(10^300)", "a*x^10000", "a*x*exp(709)",
                              "a*x*sigmoid(10^300*log(2))", "a*softplus(x) + gelu(2)",
                              "a*x*10^308"]):
        case(f"expr-ok-{i}", "spec_text", "ok", text=spec_model(expr))
    for i, expr in enumerate(["a*x*exp(10^300*log(2))", "a*x + acos(2)", "a*x*2^1100"]):
        case(f"parse-{i}", "expr", E, "beyond" if i != 1 else "complex", text=expr)

    # ---- TOML structure and values -----------------------------------------------------------
    for i, (text, frag) in enumerate([
        ("x = " + "[" * 500 + "]" * 500, "nested 500 deep"),
        ("x = " + "[" * 20 + "]" * 20, "nested 20 deep"),
        ("x = " + "{a = " * 200 + "1" + "}" * 200, "nested 200 deep"),
        ("[network]\nlayers = [2, " + "9" * 5000 + "]\n", "malformed TOML"),
        ("[network]\nlayers = [2, " + "9" * 40 + "]\n", "widths must be from 1 to"),
        ("[network]\nlayers = [2, 0]\n", "widths must be from 1"),
        ("[network]\nlayers = [2, -3]\n", "widths must be from 1"),
        ("[network]\nlayers = [" + ", ".join(["2"] * 1500) + "]\n", "at most 1000"),
        ("[network]\nlayers = [{dense = [2, 99999999999]}]\n", "integers from 1 to"),
        (NET + "[training]\nepochs = 100000000000\n", "must be ≤ 10000000"),
        (NET + "[training]\nbatch_size = 100000000000\n", "must be ≤ 10000000"),
        (NET + "[training]\nseed = -1\n", "must be ≥ 0"),
        (NET + "[training]\nseed = 9223372036854775807\nepochs = 0\n", "must be ≥ 1"),
        (NET + "[optimizer]\nname = \"sgd\"\nlr = nan\n", "finite"),
        (NET + "[optimizer]\nname = \"sgd\"\nlr = inf\n", "finite"),
        (NET + "[optimizer]\nname = \"sgd\"\nlr = -1\n", "must be >"),
        (NET + "[optimizer]\nname = \"lbfgs\"\nmemory = 1000000000\n", "must be ≤"),
        (NET + "[optimizer]\nname = \"adam\"\nnesterov = true\n",
         "[optimizer] nesterov: optimizer 'adam' has no option 'nesterov'; its options: "
         "beta1, beta2, clip, eps, lr, weight_decay"),
        (NET + "[optimizer]\nname = \"sgd\"\nbeta1 = 0.9\n", "'sgd' has no option 'beta1'"),
        (NET + "[optimizer]\nname = \"rmsprop\"\nmomentum = 0.9\n",
         "'rmsprop' has no option 'momentum'"),
        (NET + "[optimizer]\nname = \"lbfgs\"\nlr = 0.1\n", "'lbfgs' has no option 'lr'"),
        (NET + "[optimizer]\nname = \"adamw\"\n", "did you mean 'adam'"),
        (NET + "[optimizer]\nname = \"adam\"\nbeta1 = 1.0\n", "beta1"),
        (NET + "[optimizer]\nlr = 0.1\n", "name the optimizer"),
        ("[network]\nlayers = [2, 1]\nloss = \"crossentropy\"\n",
         "unknown loss 'crossentropy' (did you mean 'cross_entropy'?)"),
        ("[network]\nlayers = [2, 1]\nactivation = \"relu\\n\"\n", "unknown activation"),
        ("[network]\nlayers = [2, 2, 1]\nactivation = {expr = \"x\", name = \"a\\nb\"}\n",
         "expected a name of letters"),
        ("[network]\nlayers = [2, 2, 1]\nactivation = {expr = \"x\", var = \"__class__\"}\n",
         "expected a symbol name"),
        ("[network]\nlayers = [2, 2, 1]\nactivation = {expr = \"floor(x)\"}\n",
         "'floor' is not allowed"),
        ("[network]\nlayers = [2, 1]\n[model]\n", "exactly one"),
        ("title = 1\n[network]\nlayers = [2, 1]\n", "expected a string"),
        ("[network]\nlayers = [2, 1]\nname = \"a b\"\n", "expected an identifier"),
        ("[model]\nexpr = []\ninputs = [\"x\"]\nparams = [\"a\"]\n", "non-empty list"),
        ("[model]\nexpr = \"a*x\"\ninputs = [\"x\", \"x\"]\nparams = [\"a\"]\n",
         "declared twice"),
        ("[model]\nexpr = \"a*x\"\ninputs = [\"x\"]\nparams = [\"exp\"]\n", "reserved"),
        ("[network]\nlayers = [2, 1]\n[data]\nsource = 5\n", "non-empty string"),
        ("\x00", "malformed TOML"),
        ("[network]\nlayers = [2, 1]\n" + "# x\n" * 10, None),
    ]):
        case(f"toml-{i:02d}", "spec_text", "ok" if frag is None else E, frag, text=text)
    for i, text in enumerate([
        NET + "[optimizer]\nname = \"momentum\"\nmomentum = 0.9\nnesterov = true\n",
        NET + "[optimizer]\nname = \"sgd\"\nnesterov = false\n",
        NET + "[optimizer]\nname = \"adam\"\nbeta1 = 0.8\nclip = 1.0\n",
        NET + "[optimizer]\nname = \"lm\"\ndamping = 0.01\n",
    ]):
        case(f"toml-ok-{i}", "spec_text", "ok", text=text)
    case("spec-none", "spec_none", "ArgumentError", "expected the spec as TOML text")

    # ---- spec files on disk -------------------------------------------------------------
    fifo = os.path.join(d, "fifo.toml")
    os.mkfifo(fifo)
    zero = os.path.join(d, "zero.toml")
    os.symlink("/dev/zero", zero)
    big = os.path.join(d, "big.toml")
    with open(big, "wb") as fh:
        fh.truncate(8 << 30)
    latin = os.path.join(d, "latin.toml")
    with open(latin, "wb") as fh:
        fh.write(b'title = "caf\xe9"\n')
    for i, (path, exp, frag) in enumerate([
        (fifo, E, "not a regular file (a FIFO)"),
        (zero, E, "not a regular file (a character device)"),
        (d, E, "not a regular file (a directory)"),
        (big, E, "more than the 1048576"),
        (latin, E, "not UTF-8"),
        (os.path.join(d, "absent.toml"), E, "cannot read the spec file"),
        (None, "ArgumentError", "expected the path of a spec file"),
        (12, "ArgumentError", "expected the path of a spec file"),
    ]):
        case(f"specfile-{i}", "spec_file", exp, frag, path=path)

    # ---- data paths named in a spec -----------------------------------------------------------
    sub = os.path.join(d, "specs")
    os.makedirs(os.path.join(sub, "inner"))
    secret = os.path.join(d, "secret.csv")
    with open(secret, "w") as fh:
        fh.write("1,2,3\nTOPSECRET,1,2\n")
    os.symlink(secret, os.path.join(sub, "link.csv"))
    os.mkfifo(os.path.join(sub, "pipe.csv"))
    with open(os.path.join(sub, "ok.csv"), "w") as fh:
        fh.write("0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    with open(os.path.join(sub, "words.csv"), "w") as fh:
        fh.write("1,2,3\npassword123,2,3\n")
    with open(os.path.join(sub, "inner", "ok.csv"), "w") as fh:
        fh.write("0,0,0\n0,1,1\n")

    def data_spec(name, source):
        p = os.path.join(sub, name)
        with open(p, "w") as fh:
            fh.write(f'[network]\nlayers = [2, 2, 1]\n[data]\nsource = {json.dumps(source)}\n')
        return p

    D_ = "DataError"
    for i, (source, allow, exp, frag) in enumerate([
        ("../../../../etc/passwd", False, D_, "outside the spec file's folder"),
        ("/etc/passwd", False, D_, "outside the spec file's folder"),
        ("../secret.csv", False, D_, "outside the spec file's folder"),
        ("link.csv", False, D_, "outside the spec file's folder"),
        ("inner/../../secret.csv", False, D_, "outside the spec file's folder"),
        ("/dev/zero", False, D_, "outside the spec file's folder"),
        ("/dev/zero", True, D_, "not a regular file (a character device)"),
        ("pipe.csv", False, D_, "not a regular file (a FIFO)"),
        ("inner", False, D_, "not a regular file (a directory)"),
        ("words.csv", False, D_, "line 2, column 1: not a number"),
        ("absent.csv", False, D_, "cannot read the data file"),
        ("ok.csv", False, "ok", None),
        ("inner/ok.csv", False, "ok", None),
        ("../secret.csv", True, D_, "line 2, column 1: not a number"),
        ("xor", False, "ok", None),
    ]):
        case(f"datapath-{i:02d}", "spec_data", exp, frag,
             path=data_spec(f"d{i}.toml", source), allow=allow)

    # ---- data files given directly ------------------------------------------------------------
    def csv_file(name, text, mode="w"):
        p = os.path.join(d, name)
        with open(p, mode) as fh:
            fh.write(text)
        return p

    for i, (source, options, exp, frag) in enumerate([
        ("/dev/zero", None, D_, "not a regular file"),
        (fifo, None, D_, "not a regular file (a FIFO)"),
        (csv_file("nan.csv", "1,2,nan\n"), None, D_, "not finite"),
        (csv_file("inf.csv", "1,2,inf\n"), None, D_, "not finite"),
        (csv_file("ragged.csv", "1,2,3\n1,2\n"), None, D_, "2 columns, expected 3"),
        (csv_file("bin.csv", b"\xff\xfe\x00", "wb"), None, D_, "not UTF-8"),
        (csv_file("empty.csv", ""), None, D_, "no data rows"),
        (csv_file("hdr.csv", "a,b,c\n"), None, D_, "a header but no data rows"),
        (csv_file("semi.csv", "1;2;3\n"), {"delimiter": "\n"}, D_, "one character"),
        (csv_file("four.csv", "1,2,3,4\n"), None, D_, "4 columns"),
        (csv_file("tgt.csv", "a,b,c\n1,2,3\n"), {"target": "zz"}, D_, "no column named 'zz'"),
        (csv_file("secret2.csv", "1,2,3\nhunter2,x,y\n"), None, D_, "line 2, column 1"),
        (os.path.join(d, "big.toml"), None, D_, "more than the"),
        (csv_file("good.csv", "1,2,3\n4,5,6\n"), None, "ok", None),
    ]):
        case(f"data-{i:02d}", "data", exp, frag, source=source, layers=[2, 2, 1],
             options=options)

    # ---- model files --------------------------------------------------------------------------
    M = Models(d)
    F = "ModelFileError"
    big_int = "7" * 4000
    cases_m = [
        ("pow-tower", M.expr_model(times_ax(node("Pow", I(9), node("Pow", I(9), node(
            "Pow", I(9), I(9)))))), F, "beyond"),
        ("pow-4000-digits", M.expr_model(times_ax(node("Pow", I(2), I(big_int)))), F,
         "at most 400 digits"),
        ("pow-399-digits", M.expr_model(times_ax(node("Pow", I(2), I("9" * 399)))), F,
         "exponent"),
        ("pow-x-huge", M.expr_model(node("Mul", SYM_A, node("Pow", SYM_X, I(10**6)))), F,
         "exponent"),
        ("pow-1100", M.expr_model(times_ax(node("Pow", I(2), I(1100)))), F, "beyond float64"),
        ("pow-e-huge", M.expr_model(times_ax(node("Pow", {"f": "Exp1"}, I(10**6)))), F,
         "exponent"),
        ("pow-e-1000", M.expr_model(times_ax(node("Pow", {"f": "Exp1"}, I(1000)))), F,
         "beyond float64"),
        ("mul-overflow", M.expr_model(node("Mul", SYM_A, SYM_X, I(10**300), I(10**300))), F,
         "beyond float64"),
        ("float-digits", M.expr_model(times_ax({"f": "Float", "p": "1" * 500, "q": "3",
                                                "prec": 53})), F, "at most 400 digits"),
        ("exp-huge", M.expr_model(times_ax(node("exp", node("Mul", I(10**300), node(
            "log", I(2)))))), F, "beyond float64"),
        ("max-6000", M.expr_model(node("Max", *[times_ax(I(k)) for k in range(6000)])), F,
         "6000 arguments"),
        ("add-300", M.expr_model(node("Add", *[times_ax(I(k)) for k in range(300)])), F,
         "300 arguments"),
        ("deep-300", M.expr_model(_deep(300)), F, "too deep or too large"),
        ("zoo", M.expr_model(times_ax(node("Pow", I(0), I(-1)))), F, "infinity"),
        ("acos2", M.expr_model(times_ax(node("acos", I(2)))), F, "complex"),
        ("sqrt-1", M.expr_model(times_ax(node("Pow", I(-1), {"f": "Half"}))), F,
         "imaginary"),
        ("floor", M.expr_model(node("floor", node("Mul", SYM_A, SYM_X))), F,
         "no derivative rule"),
        ("ceiling", M.expr_model(node("Mul", SYM_A, node("ceiling", SYM_X))), F,
         "no derivative rule"),
        ("int-not-int", M.expr_model(times_ax({"f": "Integer", "v": "1e5"})), F,
         "not an integer"),
        ("int-underscore", M.expr_model(times_ax({"f": "Integer", "v": "1_000"})), F,
         "not an integer"),
        ("int-number", M.expr_model(times_ax({"f": "Integer", "v": 5})), F, "as a string"),
        ("rational-q0", M.expr_model(times_ax({"f": "Rational", "p": "1", "q": "0"})), F,
         "denominator"),
        ("float-prec", M.expr_model(times_ax({"f": "Float", "p": "1", "q": "3",
                                              "prec": 10**6})), F, "precision"),
        ("unknown-node", M.expr_model(times_ax(node("eval", I(1)))), F, "'eval' is not one"),
        ("import-node", M.expr_model(times_ax(node("__import__", I(1)))), F,
         "'__import__' is not one"),
        ("node-not-dict", M.expr_model(times_ax("os.system('x')")), F, "malformed"),
        ("args-not-list", M.expr_model({"f": "Add", "a": "x"}), F, "malformed arguments"),
        ("symbol-long", M.expr_model(times_ax({"f": "Symbol", "name": "s" * 300})), F,
         "malformed symbol"),
        ("symbol-assumption", M.expr_model(times_ax({"f": "Symbol", "name": "q",
                                                     "assumptions": {"__class__": True}})),
         F, "malformed assumptions"),
        ("undeclared-symbol", M.expr_model(times_ax({"f": "Symbol", "name": "q"})), F,
         "undeclared"),
        ("act-newline", M.activation(name="a\nb", body=node("Mul", I(2), {
            "f": "Symbol", "name": "t", "assumptions": {"real": True}})), F,
         "custom activation name"),
        ("act-unknown", M.activation(name="evil\n"), F, "unknown activation"),
        ("act-other-symbol", M.activation(name="g", body=node("Mul", I(2), SYM_X)), F,
         "symbols other than"),
        ("act-floor", M.activation(name="g", body=node("floor", {
            "f": "Symbol", "name": "t", "assumptions": {"real": True}})), F,
         "floor has no derivative rule"),
        ("layers-2000", M.with_spec(layers=[{"dense": [2, 1]}] * 2000), F, "2000 layers"),
        ("dense-neg", M.with_spec(layers=[{"dense": [2, -1]}]), F, "out of range"),
        ("dense-huge", M.with_spec(layers=[{"dense": [2, 10**12]}]), F, "out of range"),
        ("dense-bool", M.with_spec(layers=[{"dense": [True, 1]}]), F, "malformed dense"),
        ("bias-str", M.with_spec(layers=[{"dense": [2, 1], "bias": "yes"}]), F,
         "malformed bias"),
        ("loss-unknown", M.with_spec(loss="evil"), F, "does not describe a valid model"),
        ("penalty-str", M.with_spec(penalties=["l2"]), F, "malformed penalty"),
        ("penalty-kind", M.with_spec(penalties=[{"kind": "l9", "lam": 1}]), F,
         "unknown penalty"),
        ("kind-unknown", M.with_spec(kind="pickle"), F, "unknown model kind"),
        ("spec-list", M.with_meta(spec=[1, 2]), F, "not a table"),
        ("history-garbage", M.with_meta(history={"foo": 1}), F, "history is malformed"),
        ("history-records-str", M.with_meta(history={"records": "abc"}), F,
         "records is not a list"),
        ("history-record-int", M.with_meta(history={"records": [1]}), F, "not a table"),
        ("history-no-loss", M.with_meta(history={"records": [{"epoch": 1}]}), F,
         "has no loss"),
        ("history-loss-str", M.with_meta(history={"records": [{"epoch": 1, "loss": "x"}]}),
         F, "has no loss"),
        ("history-gradnorm", M.with_meta(history={"records": [
            {"epoch": 1, "loss": 1.0, "grad_norm": [1, 2]}]}), F, "malformed grad_norm"),
        ("history-nested", M.with_meta(history={"records": [
            {"epoch": 1, "loss": 1.0, "time": {"a": 1}}]}), F, "is not a number"),
        ("format", M.with_meta(format="pickle"), F, "not a symnn model file"),
        ("version-99", M.with_meta(format_version=99), F, "upgrade symnn"),
        ("version-str", M.with_meta(format_version="1"), F, "format version"),
        ("version-bool", M.with_meta(format_version=True), F, "format version"),
        ("no-sha", M.with_meta(fix=False, sha256=_DROP), F, "lacks 'sha256'"),
        ("bad-sha", M.with_meta(fix=False, metadata={"x": 1}), F, "checksum mismatch"),
        ("dtype-lie", M.with_meta(dtype="float32"), F, "dtype"),
        ("n-params-lie", M.with_meta(n_params=3), F, "shape"),
        ("theta-2d", M.write(M.meta, theta=M.theta.reshape(1, -1)), F, "shape"),
        ("theta-int", M.write(M.meta, theta=np.arange(M.net.n_params)), F, "dtype int64"),
        ("meta-not-json", M.write(M.meta, raw_meta=b"{not json"), F, "not valid JSON"),
        ("meta-deep-json", M.write(M.meta, raw_meta=b"[" * 100000 + b"]" * 100000), F,
         "not valid JSON"),
        ("meta-huge-int", M.write(M.meta, raw_meta=b"[" + b"9" * 5000 + b"]"), F,
         "not valid JSON"),
        ("meta-not-utf8", M.write(M.meta, raw_meta=b"\xff\xfe"), F, "not valid JSON"),
        ("prep-without-arrays", M.with_meta(preprocessing={"kind": "standardize",
                                                           "arrays": ["x_mean", "x_scale"]}),
         F, "disagree"),
        ("prep-neg-scale", M.write(dict(M.meta, format_version=2, preprocessing={
            "kind": "standardize", "arrays": ["x_mean", "x_scale"]}),
            extra={"x_mean": np.zeros(2), "x_scale": np.array([1.0, -1.0])}), F,
         "scale must be positive"),
        ("prep-nan", M.write(dict(M.meta, format_version=2, preprocessing={
            "kind": "standardize", "arrays": ["x_mean", "x_scale"]}),
            extra={"x_mean": np.array([np.nan, 0.0]), "x_scale": np.ones(2)}), F,
         "non-finite"),
        ("prep-shape", M.write(dict(M.meta, format_version=2, preprocessing={
            "kind": "standardize", "arrays": ["x_mean", "x_scale"]}),
            extra={"x_mean": np.zeros(5), "x_scale": np.ones(5)}), F, "shape (2,)"),
        ("prep-kind", M.write(dict(M.meta, format_version=2, preprocessing={
            "kind": "pca", "arrays": ["x_mean", "x_scale"]}),
            extra={"x_mean": np.zeros(2), "x_scale": np.ones(2)}), F, "malformed preprocessing"),
        ("prep-v1", M.write(dict(M.meta, preprocessing={
            "kind": "standardize", "arrays": ["x_mean", "x_scale"]}),
            extra={"x_mean": np.zeros(2), "x_scale": np.ones(2)}), F, "malformed preprocessing"),
    ]
    # files that are not what they claim
    mf = lambda name: os.path.join(d, name)  # noqa: E731
    theta_npy = _npy(M.theta)
    meta_npy = _npy(np.frombuffer(json.dumps(M.meta).encode(), np.uint8))
    os.symlink("/dev/zero", mf("zero.npz"))
    os.mkfifo(mf("fifo.npz"))
    os.link(big, mf("sparse.npz"))  # the same sparse 8 GB file: no second one
    cases_m += [
        ("symlink-dev-zero", mf("zero.npz"), F, "not a regular file (a character device)"),
        ("fifo", mf("fifo.npz"), F, "not a regular file (a FIFO)"),
        ("directory", d, F, "not a regular file (a directory)"),
        ("sparse-8GB", mf("sparse.npz"), F, "more than the"),
        ("missing", mf("absent.npz"), F, "cannot read the model file"),
        ("none", "__none__", "ArgumentError", "expected the path of a model file"),
        ("not-zip", csv_file("text.npz", "hello"), F, "not a symnn model file"),
        ("empty", csv_file("empty.npz", ""), F, "not a symnn model file"),
        ("header-1e15", _zip(mf("h15.npz"), {
            "theta.npy": _npy_header("<f8", (10**15,), b"\0" * 64), "meta.npy": meta_npy}),
         F, "declares shape (1000000000000000,)"),
        ("header-object", _zip(mf("hobj.npz"), {
            "theta.npy": _npy_header("|O", (3,)), "meta.npy": meta_npy}), F, "dtype object"),
        ("header-struct", _zip(mf("hst.npz"), {
            "theta.npy": _npy_header([("a", "<f8")], (1,), b"\0" * 8),
            "meta.npy": meta_npy}), F, "never holds"),
        ("header-garbage", _zip(mf("hgb.npz"), {
            "theta.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': __imp", "meta.npy": meta_npy}),
         F, "malformed header"),
        ("header-v3", _zip(mf("hv3.npz"), {
            "theta.npy": _npy_header("<f8", (1,), b"\0" * 8, version=(3, 0)),
            "meta.npy": meta_npy}), F, "malformed header"),
        ("header-not-npy", _zip(mf("hnn.npz"), {"theta.npy": b"PK", "meta.npy": meta_npy}),
         F, "malformed header"),
        ("member-extra", _zip(mf("extra.npz"), {
            "theta.npy": theta_npy, "meta.npy": meta_npy, "evil.npy": theta_npy}), F,
         "unexpected member 'evil.npy'"),
        ("member-traversal", _zip(mf("trav.npz"), {
            "theta.npy": theta_npy, "meta.npy": meta_npy, "../../x.npy": theta_npy}), F,
         "unexpected member"),
        ("member-dup", _zip(mf("dup.npz"), {"theta.npy": theta_npy, "meta.npy": meta_npy,
                                            "theta": theta_npy}), F, "appears twice"),
        ("member-missing", _zip(mf("nometa.npz"), {"theta.npy": theta_npy}), F,
         "missing array(s) ['meta']"),
        ("declared-4GiB", _patch_sizes(_zip(mf("dec4.npz"), {
            "theta.npy": theta_npy, "meta.npy": meta_npy}), "theta.npy", 0xF0000000), F,
         "declares 4026531840 bytes"),
        ("bomb-lying-size", _bomb(mf("bomb.npz"), meta_npy), F, "'theta'"),
        ("truncated", _truncate(M.good, mf("trunc.npz")), F, "not a symnn model file"),
        ("meta-17MiB", _zip(mf("bigmeta.npz"), {
            "theta.npy": theta_npy, "meta.npy": _npy(np.zeros(17 << 20, np.uint8))},
            compress=zipfile.ZIP_DEFLATED), F, "(limit 16777216)"),
        ("compression-unknown", _method(_zip(mf("meth.npz"), {
            "theta.npy": theta_npy, "meta.npy": meta_npy}), 99), F, "'theta' is damaged"),
        ("ok-network", M.good, "ok", None),
        ("ok-model", M.good_model, "ok", None),
        ("ok-scaled", M.scaled, "ok", None),
    ]
    for name, path, exp, frag in cases_m:
        case(f"model-{name}", "model_file", exp, frag, path=path)
    case("model-predict-scaled", "model_file", "ok", None, path=M.scaled,
         predict=[[1.0, -2.0], [3.0, -1.5]])

    # ---- Model(...) declared in Python ---------------------------------------------------------
    for name, frag in [("oo", "infinity"), ("-oo", "infinity"), ("zoo", "infinity"),
                       ("nan", "undefined"), ("I", "imaginary"), ("acos2", "complex"),
                       ("sqrt-1", "imaginary"), ("pow1100", "beyond float64"),
                       ("floor", "floor has no derivative rule"),
                       ("ceiling", "ceiling has no derivative rule"), ("log0", "infinity")]:
        case(f"decl-{name}", "decl", "DeclarationError", frag, name=name)
    case("decl-ok_abs", "decl", "ok", None, name="ok_abs")
    case("decl-ok_max", "decl", "ok", None, name="ok_max")

    # ---- the command line ----------------------------------------------------------------------
    xor = os.path.join(d, "xor.toml")
    with open(xor, "w") as fh:
        fh.write('[network]\nlayers = [2, 2, 1]\nactivation = "sigmoid"\noutput = "sigmoid"\n'
                 '[data]\nsource = "xor"\n[training]\nepochs = 2\nbatch_size = 4\n')
    evil = os.path.join(sub, "d0.toml")  # source = ../../../../etc/passwd
    for i, (argv, code, frag) in enumerate([
        (["check", xor, "--batch", "1000000000"], 2, "too large (at most 100000)"),
        (["check", xor, "--batch", "0"], 2, "expected a positive integer"),
        (["check", xor, "--batch", "-5"], 2, "expected a positive integer"),
        (["check", xor, "--batch", "9" * 5000], 2, "expected a positive integer"),
        (["check", xor, "--seed", "-1"], 2, "a seed is an integer from 0"),
        (["check", xor, "--seed", str(2**64)], 2, "a seed is an integer from 0"),
        (["train", xor, "--epochs", "1000000000000"], 2, "too large"),
        (["train", xor, "--batch-size", "1000000000000"], 2, "too large"),
        (["demo", "--epochs", "99999999999"], 2, "too large"),
        (["derive", xor, "--expanded", "--limit", "0"], 2, "expected a positive integer"),
        (["derive", xor, "--expanded", "--limit", "10000000"], 2, "too large"),
        (["derive", xor, "--expanded", "--limit", "3"], 1, "--limit N raises it"),
        (["latex", xor, "--expanded", "--limit", "3", "-o", os.path.join(d, "x.tex")], 1,
         "--limit N raises it"),
        (["latex", xor, "-o", "/nonexistent/dir/x.tex"], 1,
         "does not exist: /nonexistent/dir/x.tex"),
        (["derive", fifo], 1, "not a regular file (a FIFO)"),
        (["derive", zero], 1, "not a regular file (a character device)"),
        (["train", evil], 1, "outside the spec file's folder"),
        (["train", xor, "--data", "/dev/zero"], 1, "not a regular file"),
        (["train", xor, "--data", fifo], 1, "not a regular file (a FIFO)"),
        (["predict", mf("zero.npz"), "--data", "xor"], 1, "not a regular file"),
        (["predict", mf("fifo.npz"), "--data", "xor"], 1, "not a regular file (a FIFO)"),
        (["predict", mf("h15.npz"), "--data", "xor"], 1, "declares shape"),
        (["predict", M.good, "--data", fifo], 1, "not a regular file (a FIFO)"),
        (["predict", M.good, "--data", "/dev/zero"], 1, "not a regular file"),
        (["predict", M.good, "--data", "xor", "-o", "/nonexistent/dir/p.csv"], 1,
         "does not exist: /nonexistent/dir/p.csv"),
        (["predict", M.good], 2, "--data"),
        (["predict", M.good, "--data", "xor"], 0, "prediction"),
    ]):
        case(f"cli-{i:02d}", "cli", ("exit", code), frag, argv=argv)
    return cases


def _deep(n):
    e = SYM_X
    for _ in range(n):
        e = node("sin", e)
    return node("Mul", SYM_A, e)


def _patch_sizes(path: str, member: str, size: int) -> str:
    """Make the central directory (and local header) of ``member`` declare ``size`` bytes
    uncompressed."""
    data = bytearray(Path(path).read_bytes())
    name = member.encode()
    i = data.find(b"PK\x01\x02")
    while i >= 0:
        n = struct.unpack_from("<H", data, i + 28)[0]
        if data[i + 46:i + 46 + n] == name:
            struct.pack_into("<I", data, i + 24, size)
            local = struct.unpack_from("<I", data, i + 42)[0]
            struct.pack_into("<I", data, local + 22, size)
        i = data.find(b"PK\x01\x02", i + 4)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _method(path: str, method: int) -> str:
    """Make every member claim compression method ``method`` (99: AES, unsupported)."""
    data = bytearray(Path(path).read_bytes())
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        i = data.find(sig)
        while i >= 0:
            struct.pack_into("<H", data, i + off, method)
            i = data.find(sig, i + 4)
    Path(path).write_bytes(bytes(data))
    return path


def _bomb(path: str, meta_npy: bytes) -> str:
    """A deflated theta member that inflates to 256 MiB while declaring 128 bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = b"\0" * (1 << 20)
    body = b"".join(comp.compress(zeros) for _ in range(256)) + comp.flush()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.npy", meta_npy)
        info = zipfile.ZipInfo("theta.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, b"\0" * 128)
    # swap in the bomb's deflate stream: rebuild by hand with the small declared size
    raw = Path(path).read_bytes()
    with zipfile.ZipFile(path) as zf:
        ti = zf.getinfo("theta.npy")
    head = ti.header_offset
    nlen, xlen = struct.unpack_from("<HH", raw, head + 26)
    start = head + 30 + nlen + xlen
    old = ti.compress_size
    out = bytearray(raw[:start] + body + raw[start + old:])
    delta = len(body) - old
    struct.pack_into("<I", out, head + 18, len(body))
    # central directory entries shift by delta
    j = out.find(b"PK\x01\x02", start + len(body))
    while j >= 0:
        n = struct.unpack_from("<H", out, j + 28)[0]
        if out[j + 46:j + 46 + n] == b"theta.npy":
            struct.pack_into("<I", out, j + 20, len(body))
        elif struct.unpack_from("<I", out, j + 42)[0] > head:
            struct.pack_into("<I", out, j + 42, struct.unpack_from("<I", out, j + 42)[0] + delta)
        j = out.find(b"PK\x01\x02", j + 4)
    k = out.rfind(b"PK\x05\x06")
    struct.pack_into("<I", out, k + 16, struct.unpack_from("<I", out, k + 16)[0] + delta)
    with open(path, "wb") as fh:
        fh.write(out)
    return path


def _truncate(src: str, dst: str) -> str:
    data = Path(src).read_bytes()
    with open(dst, "wb") as fh:
        fh.write(data[: len(data) // 2])
    return dst


# -- running the corpus ------------------------------------------------------------------------

# built once, at collection: the parametrised ids are the cases' ids
_BUILD_DIR = tempfile.mkdtemp(prefix="symnn-hostile-")
atexit.register(shutil.rmtree, _BUILD_DIR, True)
CASES = build_cases(_BUILD_DIR)
CASE_IDS = [c["id"] for c in CASES]


@pytest.fixture(scope="module")
def corpus():
    d, cases = _BUILD_DIR, CASES
    cache = os.path.join(d, "kernel-cache")
    results: dict = {}
    groups = [[c for c in cases if c["kind"] != "cli"], [c for c in cases if c["kind"] == "cli"]]
    env = dict(os.environ)
    env.pop("SYMNN_CACHE_DIR", None)
    for g, group in enumerate(groups):
        cfile = os.path.join(d, f"cases{g}.json")
        rfile = os.path.join(d, f"results{g}.json")
        with open(cfile, "w") as fh:
            json.dump(group, fh)
        try:
            proc = subprocess.run([sys.executable, "-c", RUNNER, cfile, rfile, cache],
                                  capture_output=True, text=True, timeout=240, cwd=d, env=env)
        except subprocess.TimeoutExpired as err:
            started = [ln for ln in (err.stderr or b"").decode().splitlines()
                       if ln.startswith("START")]
            pytest.fail(f"the corpus subprocess timed out during {started[-1:]}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(rfile) as fh:
            results.update(json.load(fh))
    return d, {c["id"]: c for c in cases}, results


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_hostile_file(corpus, case_id):
    d, cases, results = corpus
    c, r = cases[case_id], results[case_id]
    exp, frag = c["expect"], c["fragment"]
    if isinstance(exp, (list, tuple)):  # ("exit", code) from the command line
        assert r["error"] is None, r
        assert r["code"] == exp[1], r
        text = r["err"] if exp[1] else r["out"]
        assert frag in text, text
        assert "Traceback" not in r["err"] and "unexpected" not in r["err"], r["err"]
        if exp[1]:
            lines = r["err"].strip().splitlines()
            assert lines[-1].startswith("symnn") and "error:" in lines[-1], r["err"]
        return
    if exp == "ok":
        assert r["error"] is None, r
        if c.get("predict") is not None:
            # the stored standardisation is applied: the means map to the input 0
            saved = sio.load(c["path"])
            net = saved.compile()
            raw = np.asarray(c["predict"])
            want = net.predict(saved.params, (raw - np.array([1.0, -2.0])) / np.array([2.0, 0.5]))
            np.testing.assert_allclose(np.asarray(r["value"]).ravel(), np.ravel(want))
        return
    assert r["error"] == exp, r
    assert "SymnnError" in r["bases"], r
    assert frag in r["message"], (frag, r["message"])
    assert "TOPSECRET" not in r["message"] and "hunter2" not in r["message"]
    assert "password123" not in r["message"]


def test_corpus_is_large_and_wrote_nothing(corpus):
    d, cases, results = corpus
    assert len(cases) >= 150
    assert set(results) == set(cases)
    # the injection expressions ran nothing: no canary in the working folder of the run
    assert not os.path.exists(os.path.join(d, CANARY))


# -- the kernel cache (in this process: none of these can hang) ---------------------------

def _tiny():
    return symnn.mlp([2, 2, 1], activation="tanh", name="hostile_cache")


def _compile(cache_dir):
    return _tiny().compile(cache_dir=str(cache_dir))


def test_planted_pyc_is_never_executed(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    model = _compile(cache)
    name = os.path.basename(model.module.__file__)[:-3]
    canary = tmp_path / CANARY
    # a .pyc that would write the canary, stamped with the verified .py's mtime and size
    src = f"open({str(canary)!r}, 'w').write('ran')\n"
    code = compile(src, model.module.__file__, "exec")
    import importlib.util
    import marshal

    st = os.stat(model.module.__file__)
    pyc = importlib.util.cache_from_source(model.module.__file__)
    os.makedirs(os.path.dirname(pyc), exist_ok=True)
    with open(pyc, "wb") as fh:
        fh.write(importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, int(st.st_mtime) & 0xFFFFFFFF,
                                                           st.st_size & 0xFFFFFFFF))
        fh.write(marshal.dumps(code))
    for mod in [m for m in sys.modules if m == name]:
        del sys.modules[mod]
    again = _compile(cache)
    assert not canary.exists()
    assert again.module.__file__ == model.module.__file__
    X = np.zeros((3, 2))
    np.testing.assert_array_equal(again.predict(again.init(0), X), model.predict(model.init(0), X))


def test_second_process_still_hits_numbas_cache(tmp_path):
    cache = tmp_path / "cache"
    script = textwrap.dedent("""
        import json, sys, numpy as np, symnn
        m = symnn.mlp([2, 2, 1], activation="tanh", name="hostile_cache").compile(
            cache_dir=sys.argv[1])
        m.loss_and_grad(m.init(0), np.zeros((3, 2)), np.zeros((3, 1)))
        st = m.kernels["loss_and_grad"].stats
        print(json.dumps([sum(st.cache_hits.values()), sum(st.cache_misses.values())]))
    """)
    env = dict(os.environ)
    env.pop("SYMNN_CACHE_DIR", None)
    runs = [json.loads(subprocess.run([sys.executable, "-c", script, str(cache)], env=env,
                                      capture_output=True, text=True, timeout=300,
                                      check=True).stdout.splitlines()[-1]) for _ in range(2)]
    assert runs[0][1] >= 1  # cold: compiled
    assert runs[1] == [1, 0]  # warm: Numba's cache hit, nothing compiled
    assert not [p for p in os.listdir(cache / "__pycache__") if p.endswith(".pyc")]


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o720, 0o702])
def test_group_or_world_writable_cache_is_refused(tmp_path, mode):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, mode)
    with pytest.warns(SymnnWarning, match="writable by"):
        model = _compile(cache)
    assert not [p for p in os.listdir(cache) if p.endswith(".py")]
    assert model.module.__file__.startswith("<symnn-kernels")


def test_writable_pycache_is_refused(tmp_path):
    cache = tmp_path / "cache"
    (cache / "__pycache__").mkdir(parents=True)
    os.chmod(cache, 0o700)
    os.chmod(cache / "__pycache__", 0o777)
    with pytest.warns(SymnnWarning, match="__pycache__' is writable by others"):
        _compile(cache)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to give a directory to another user")
def test_cache_owned_by_another_user_is_refused(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    os.chown(cache, 65534, -1)
    with pytest.warns(SymnnWarning, match="is owned by user id 65534"):
        _compile(cache)


def test_cache_path_that_is_a_file_falls_back(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("x")
    with pytest.warns(SymnnWarning, match="not usable"):
        _compile(cache)


@pytest.mark.parametrize("kind", ["fifo", "symlink", "garbage", "huge"])
def test_planted_module_file_is_rebuilt_never_read_or_followed(tmp_path, kind):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    model = _compile(cache)
    path = model.module.__file__
    name = os.path.basename(path)[:-3]
    os.unlink(path)
    outside = tmp_path / "outside.py"
    outside.write_text("# not symnn's\n")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        os.symlink(outside, path)
    elif kind == "garbage":
        with open(path, "w") as fh:
            fh.write(f"open({str(tmp_path / CANARY)!r}, 'w')\n")
    else:
        with open(path, "wb") as fh:
            fh.truncate((64 << 20) + 1)
    sys.modules.pop(name, None)
    again = _compile(cache)
    assert stat.S_ISREG(os.lstat(path).st_mode)  # replaced by a regular file
    assert outside.read_text() == "# not symnn's\n"  # the symlink's target untouched
    assert not (tmp_path / CANARY).exists()
    assert again.module.__symnn_source__ == model.module.__symnn_source__


# -- atomic writes ----------------------------------------------------------------------------

def test_stale_temporaries_of_a_killed_save_are_cleaned(tmp_path):
    target = tmp_path / "model.npz"
    stale = tmp_path / ".model.npz.abc123.tmp"
    stale.write_bytes(b"\0" * 1000)
    other = tmp_path / ".other.npz.abc123.tmp"
    other.write_bytes(b"x")
    sio.save(target, _tiny(), np.zeros(_tiny().n_params))
    assert not stale.exists()  # nobody held it: the killed save's leftover
    assert other.exists()  # another target's temporary is not ours to remove
    assert target.exists()


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    target = tmp_path / "model.npz"
    live = tmp_path / ".model.npz.live.tmp"
    live.write_bytes(b"partial")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        sio.save(target, _tiny(), np.zeros(_tiny().n_params))
        assert live.exists()
    finally:
        os.close(fd)


def test_a_killed_save_leaves_a_temporary_the_next_save_removes(tmp_path):
    target = tmp_path / "big.npz"
    script = textwrap.dedent(f"""
        import os, numpy as np
        from symnn._atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"\\0" * 100000)
            os._exit(9)  # killed mid-save
    """)
    subprocess.run([sys.executable, "-c", script], timeout=60)
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    sio.save(target, _tiny(), np.zeros(_tiny().n_params))
    assert os.listdir(tmp_path) == ["big.npz"]


def test_save_into_a_missing_folder_names_the_target(tmp_path):
    target = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(SymnnError, match=r"m\.npz: cannot write the model file: the folder "
                                         "to write into does not exist") as info:
        sio.save(target, _tiny(), np.zeros(_tiny().n_params))
    assert ".tmp" not in str(info.value)


def test_no_warning_leaks_from_a_clean_load(tmp_path):
    p = tmp_path / "m.npz"
    sio.save(p, _tiny(), np.zeros(_tiny().n_params))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sio.load(p)
