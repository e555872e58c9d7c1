"""Round 7 of the new user's walk and of hostile input (walk): each test fails on the code
before its fix.  Cases are batched per test; nothing here compiles more than the tiny
``mlp([2, 3, 1])`` the rest of the suite already compiles."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
import warnings

import _subproc
import numpy as np
import pytest

import symnn
from symnn.errors import ArgumentError, DataError, ModelFileError, ShapeError, TrainingError


@pytest.fixture(scope="module")
def tiny():
    model = symnn.mlp([2, 3, 1], activation="tanh").compile()
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(8, 2)), rng.normal(size=(8, 1))


# -- outputs the user names (symnn._atomic.atomic_path(user=True)) ----------------------------

def test_a_user_named_output_never_replaces_a_device_stream_or_link(tmp_path, tiny):
    """``save`` to a FIFO (as root, ``/dev/full``: the device node was replaced by the model
    file), to a link into /proc (``/dev/stdout``), with a NUL; through a symlink (the link
    was replaced by a file; now the file it points to is written and the link stays)."""
    model, _, _ = tiny
    theta = model.init(0)
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    stream = tmp_path / "stream.npz"
    os.symlink("/proc/self/fd/1", stream)
    cases = [(fifo, "is a FIFO, not a regular file"),
             (stream, "a link to a stream of a process"),
             (str(tmp_path / "a\0b.npz"), "holds a NUL character"),
             (tmp_path, "is a directory")]
    for path, words in cases:
        with pytest.raises(ModelFileError, match=words):
            symnn.save(path, model, theta)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.path.islink(stream)
    link = tmp_path / "latest.npz"
    os.symlink("run7.npz", link)
    symnn.save(link, model, theta)
    assert os.path.islink(link) and (tmp_path / "run7.npz").is_file()
    np.testing.assert_array_equal(symnn.load(link).params, theta)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fifo.npz", "latest.npz", "run7.npz", "stream.npz"]


def test_cli_refuses_outputs_it_would_destroy_before_any_work(tmp_path, capsys):
    """``symnn latex -o doc.pdf --pdf`` wrote the LaTeX source to doc.pdf and then replaced
    it with the PDF (``-o doc.log`` likewise with the log); ``-o`` a FIFO or a link to
    /dev/stdout replaced it after the work."""
    from symnn.cli import main

    spec = tmp_path / "s.toml"
    spec.write_text("[network]\nlayers = [2, 2, 1]\n")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    runs = [(["latex", str(spec), "-o", str(tmp_path / "doc.pdf"), "--pdf"], "doc.tex"),
            (["latex", str(spec), "-o", str(tmp_path / "doc.log"), "--pdf"], "doc.tex"),
            (["latex", str(spec), "-o", str(fifo)], "FIFO"),
            (["predict", str(spec), "--data", "xor", "-o", str(fifo)], "FIFO"),
            (["train", str(spec), "--data", "xor", "--epochs", "1", "-o", ""], "is empty"),
            (["predict", str(spec), "--data", ""], "not a built-in data set"),
            (["predict", str(tmp_path / "gone.npz"), "--data", "xor"], "give a model saved")]
    for argv, words in runs:
        assert main(argv) == 1, argv
        out, err = capsys.readouterr()
        assert words in err and "training" not in out + err, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.csv", "s.toml"]


# -- fit ------------------------------------------------------------------------------------

def _never(info):
    raise AssertionError("fit trained before refusing its options")


def test_fit_refuses_an_epoch_count_whose_history_cannot_fit(tiny):
    """``fit(..., epochs=10**30)`` trained, appending a history record per epoch: 21 GB in
    ten minutes here.  Also ``lr=`` given to ``model.fit`` (a TypeError before)."""
    model, X, y = tiny
    for epochs in (10**30, 10**7 + 1):
        with pytest.raises(ArgumentError, match=r"MAX_EPOCHS.*early_stopping"):
            model.fit(X, y, "adam", epochs=epochs, callbacks=[_never], progress=False)
    with pytest.raises(ArgumentError, match=r"learning rate belongs to the optimizer.*"
                                            r"Adam\(lr=0\.1\)"):
        model.fit(X, y, "adam", lr=0.1)
    with pytest.raises(ArgumentError, match="did you mean 'epochs'"):
        model.fit(X, y, "adam", epoch=3)


def test_kfac_on_overflowing_data_says_standardize_without_a_numpy_warning(tiny):
    model, X, y = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the suite's setting; NumPy's overflow warning
        with pytest.raises(TrainingError, match="standardize X and y"):
            model.fit(X, y * 1e200, "kfac", epochs=2, progress=False)


# -- the remaining entry points -----------------------------------------------------------------

def test_saved_model_predict_and_flatten_refuse_what_the_model_refuses(tmp_path, tiny):
    """``SavedModel.predict`` converted strings, bytes and dates to numbers (``predict``
    refuses them); ``flatten`` of a list said "unknown [1, 2]"."""
    model, X, _ = tiny
    symnn.save(tmp_path / "m.npz", model, model.init(0))
    saved = symnn.load(tmp_path / "m.npz")
    for bad in (np.array([["1", "2"]]), np.array([[b"1", b"2"]]),
                np.zeros((1, 2), "M8[s]"), [[1 + 0j, 2]]):
        with pytest.raises(DataError, match="must be numeric"):
            saved.predict(bad)
    assert saved.predict(X[:1].astype(np.float16)).shape == (1, 1)
    with pytest.raises(ShapeError, match=r"expected a dict \{name: array\}"):
        model.flatten([1, 2])


def test_csv_messages_say_where_what_and_what_to_do(tmp_path):
    from symnn.data import load_features

    files = {"nan.csv": ("x,y\nnan,1\n", r"data row 1, column 1 is not finite \(nan\); "
                                          "remove or impute"),
             "big.csv": ("x,y\n1e400,1\n", r"not finite \(inf, or a number beyond"),
             "long.csv": ("x\n" + "1" * 200_000 + "\n", r"long.csv, line 2: .*field larger"),
             "cols.csv": ("a,b,c\n1,2,3\n", "the model takes 1 input column")}
    for name, (text, words) in files.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=words):
            load_features(str(tmp_path / name), 1, 1, {"target": "y"})


def test_sklearn_classifier_with_a_validation_split_too_small_for_its_classes():
    pytest.importorskip("sklearn")
    from symnn import SymnnClassifier

    X, y = np.random.default_rng(0).normal(size=(8, 2)), np.array([0, 1] * 4)
    est = SymnnClassifier(early_stopping=True)  # what fit(X, y) runs before training
    with pytest.raises(DataError, match="validation set is too small"):
        est._validation_split(X, np.eye(2)[y], y, 0, False)


# -- the suite's own children -----------------------------------------------------------------

def test_a_child_past_its_timeout_is_killed_with_its_pipes_closed():
    """tests/_subproc: on expiry the child (and its group) is killed and its pipes are
    closed, and the test fails with its output; a readline has a timeout too."""
    code = "import sys, time; print('up', flush=True); time.sleep(60)"
    proc = _subproc.start([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    assert _subproc.readline(proc, 60) == "up\n"
    with pytest.raises(pytest.fail.Exception, match="wrote no line"):
        _subproc.readline(proc, 0.2)
    assert proc.returncode is not None and proc.stdout.closed and proc.stderr.closed
    proc = _subproc.start([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    with pytest.raises(pytest.fail.Exception, match="ran past 0.2 s"):
        _subproc.communicate(proc, 0.2)
    assert proc.returncode is not None and proc.stdout.closed and proc.stderr.closed


def test_declarations_numba_could_not_take_are_refused_when_declared():
    """A 300-character network name reached Numba's cache file name (a raw ``OSError: File
    name too long``); an unevaluated Integral or Sum reached Numba (a CompileError without
    a way out)."""
    import sympy as sp

    with pytest.raises(symnn.DeclarationError, match="at most 100"):
        symnn.Network([symnn.Dense(1, 1)], name="n" * 300)
    x, w, t = sp.symbols("x w t")
    for held in (sp.Integral(w * t, (t, 0, x)), sp.Sum(w * t, (t, 1, 3))):
        with pytest.raises(symnn.DeclarationError, match=r"unevaluated (Integral|Sum).*doit"):
            symnn.Model(held, inputs=[x], params=[w])


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] in "ZX"  # a zombie is dead
    except OSError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_run_past_its_timeout_stops_the_grandchildren_too():
    """``subprocess.run(timeout=)`` kills the child only; a grandchild holding the pipes
    (a worker, pdflatex) kept running.  tests/_subproc.run stops the whole group."""
    code = ("import subprocess, sys, time\n"
            "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print(g.pid, flush=True); time.sleep(60)\n")
    proc = _subproc.start([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    pid = int(_subproc.readline(proc, 60))
    with pytest.raises(pytest.fail.Exception, match="ran past"):
        _subproc.communicate(proc, 0.2)
    for _ in range(100):
        if _gone(pid):
            break
        time.sleep(0.05)
    assert _gone(pid)


def test_a_pasted_unicode_operator_in_a_spec_expression_names_its_ascii_form():
    for pasted, ascii_ in (("w−x", "-"), ("w×x", "*"), ("x²*w", "^2")):
        with pytest.raises(symnn.SpecError, match=re.escape(f"type the ASCII '{ascii_}'")):
            symnn.loads_spec(f"[model]\ninputs = ['x']\nparams = ['w']\nexpr = '{pasted}'\n")
    assert symnn.loads_spec("\ufeff[network]\nlayers = [2, 3, 1]\n").declared.n_params == 13


def test_zero_directions_say_at_least_one():
    """hvp/gnvp with v of shape (0, P) name the K >= 1 requirement (lead, round 7)."""
    from symnn.codegen import _validate
    from symnn.errors import ShapeError

    with pytest.raises(ShapeError, match=r"K >= 1 directions"):
        _validate.as_directions(np.zeros((0, 5)), 5, np.dtype(np.float64))
