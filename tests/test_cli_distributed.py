"""``symnn train --workers N`` / ``--scheduler ADDRESS``: the spec's training over Dask
shards (``symnn.distributed.fit``), and the one-line errors of the two flags."""

from __future__ import annotations

import multiprocessing
import pathlib
import shutil
import sys

import numpy as np
import pytest

from symnn.cli import main
from symnn.cli import training as cli_training

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "specs"


def _spec(tmp_path, optimizer: str = "newton_cg", extra: str = "") -> str:
    """The damped-oscillation example with ``optimizer`` and a few epochs, in tmp_path."""
    shutil.copy(EXAMPLES / "decay.csv", tmp_path / "decay.csv")
    text = (EXAMPLES / "decay.toml").read_text(encoding="utf-8")
    text = text.replace('name = "lbfgs"', f'name = "{optimizer}"')
    text = text.replace("epochs = 200", "epochs = 8" + extra)
    assert f'name = "{optimizer}"' in text and "epochs = 8" in text
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("symnn: error: "), err
    return lines[0]


def test_workers_trains_to_the_single_process_parameters(tmp_path, capsys):
    pytest.importorskip("distributed")
    spec = _spec(tmp_path)
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    code, out, err = call(capsys, "train", spec, "-o", str(one))
    assert code == 0, err
    code, out, err = call(capsys, "train", spec, "-o", str(two), "--workers", "2")
    assert code == 0, err
    assert "full batch over 2 local worker processes" in out
    assert f"saved {two}" in out
    theta1, theta2 = np.load(one)["theta"], np.load(two)["theta"]
    assert theta1.shape == theta2.shape == (3,)
    np.testing.assert_allclose(theta2, theta1, rtol=0, atol=1e-8)
    # it trained: the fitted decay is far from the spec's initial parameters
    from symnn.spec import load_spec

    model = load_spec(spec).declared.compile()
    assert np.max(np.abs(theta2 - np.asarray(model.init(seed=0)))) > 1e-2
    # the local cluster is closed at the end: no worker process left behind
    assert multiprocessing.active_children() == []


def test_both_flags_are_refused(tmp_path, capsys):
    code, out, err = call(capsys, "train", _spec(tmp_path), "--workers", "2",
                          "--scheduler", "tcp://127.0.0.1:8786")
    assert code == 1
    line = _one_error_line(err)
    assert "--scheduler and --workers were both given" in line and "pass one" in line
    assert "training" not in out  # refused before any work


@pytest.mark.parametrize("n", ["0", "-3", "two"])
def test_workers_must_be_positive(tmp_path, capsys, n):
    code, out, err = call(capsys, "train", _spec(tmp_path), "--workers", n)
    assert code == 2
    assert "argument --workers: expected a positive integer" in err


def _threaded_cluster(monkeypatch):
    """``--workers N`` on a cluster of N threads in this process (no process start-up)."""
    import contextlib

    distributed = pytest.importorskip("distributed")

    @contextlib.contextmanager
    def threads(args):
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                      processes=False, dashboard_address=":0") as cluster, \
                distributed.Client(cluster) as client:
            yield client

    monkeypatch.setattr(cli_training, "_dask_client", threads)


def test_first_order_trains_mini_batch_over_the_workers(tmp_path, capsys, monkeypatch):
    """Adam with a validation split over two workers: the single-process parameters."""
    _threaded_cluster(monkeypatch)
    spec = _spec(tmp_path, "adam", extra="\nvalidation_split = 0.2")
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    code, out, err = call(capsys, "train", spec, "-o", str(one), "--epochs", "3")
    assert code == 0, err
    code, out, err = call(capsys, "train", spec, "-o", str(two), "--epochs", "3",
                          "--workers", "2")
    assert code == 0, err
    assert "over 2 local worker processes" in out and "full batch" not in out
    theta1, theta2 = np.load(one)["theta"], np.load(two)["theta"]
    np.testing.assert_allclose(theta2, theta1, rtol=1e-12, atol=0)
    from symnn.spec import load_spec

    init = np.asarray(load_spec(spec).declared.compile().init(seed=0))
    assert np.max(np.abs(theta2 - init)) > 1e-4  # it trained


def test_engine_kernel_is_refused(tmp_path, capsys):
    code, out, err = call(capsys, "train", _spec(tmp_path, "adam"), "--workers", "2",
                          "--engine", "kernel")
    assert code == 1
    line = _one_error_line(err)
    assert "--engine kernel" in line and "drop --workers" in line


def test_unreachable_scheduler(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(cli_training, "CONNECT_TIMEOUT", 1)
    code, out, err = call(capsys, "train", _spec(tmp_path), "--scheduler",
                          "tcp://127.0.0.1:1")
    assert code == 1
    line = _one_error_line(err)
    assert "--scheduler tcp://127.0.0.1:1: no Dask scheduler answered within 1 s" in line
    assert "--workers N" in line


def test_malformed_scheduler_address(tmp_path, capsys):
    pytest.importorskip("distributed")
    code, out, err = call(capsys, "train", _spec(tmp_path), "--scheduler", "nonsense")
    assert code == 1
    line = _one_error_line(err)
    assert "'nonsense': not a scheduler address" in line and "tcp://host:8786" in line


@pytest.mark.parametrize("flag", [["--workers", "2"], ["--scheduler", "tcp://h:8786"]])
def test_without_dask(tmp_path, capsys, monkeypatch, flag):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    code, out, err = call(capsys, "train", _spec(tmp_path), *flag)
    assert code == 1
    line = _one_error_line(err)
    assert f"{flag[0]} needs Dask" in line and "pip install 'symnn[distributed]'" in line


def test_help_documents_the_flags(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--scheduler ADDRESS" in out and "--workers N" in out
    assert "second-order" in out and "mini-batch" in out
