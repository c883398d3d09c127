"""The shipped digits artifact through the golden model: exactness at D = T-1, accuracy, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.cli import main
from csdformer.datasets import load
from csdformer.sim import runner


@pytest.fixture(scope="module")
def art() -> A.Artifact:
    return A.load(resolve_artifact("digits"))


@pytest.fixture(scope="module")
def test_split():
    return load("digits", "test")


@pytest.fixture(scope="module")
def qann(art, test_split) -> runner.Result:
    return runner.run(art, test_split[0], mode="qann")


@pytest.fixture(scope="module")
def snn_exact(art, test_split) -> runner.Result:
    return runner.run(art, test_split[0], mode="snn", delay=art.T - 1)


def test_snn_at_full_delay_equals_integer_qann(art, qann, snn_exact, test_split) -> None:
    """SPEC §5 exactness, on the whole test split: identical predictions, logits and counts."""
    assert len(test_split[1]) == 360
    np.testing.assert_array_equal(snn_exact.predictions, qann.predictions)
    np.testing.assert_array_equal(snn_exact.logits, qann.logits)
    spiking = {layer.name for layer in art.layers if layer.kind in ("dif", "maxpool")}
    assert set(snn_exact.counts) == spiking == set(qann.counts)
    for name in spiking:
        np.testing.assert_array_equal(snn_exact.counts[name], qann.counts[name], err_msg=name)
    # The counts are real levels, not all zero: every layer fires somewhere.
    assert all(qann.counts[n].max() >= 1 for n in spiking)
    assert max(qann.counts[n].max() for n in spiking) == art.T


def test_accuracy_at_full_delay(art, snn_exact, test_split) -> None:
    acc = float(np.mean(snn_exact.predictions == test_split[1]))
    # The shipped model is sized for the iCEBreaker (16 channels, 16 tokens): 96.39 % (347 / 360).
    assert acc >= 0.96, acc


def test_smaller_delay_differs(art, qann, test_split) -> None:
    """With D = 0 the SNN is not exact (the unevenness error): the runner really uses the delay."""
    d0 = runner.run(art, test_split[0][:64], mode="snn", delay=0)
    assert any(not np.array_equal(d0.counts[n], qann.counts[n][:64]) for n in d0.counts)


def test_batching_does_not_change_results(art, test_split, snn_exact) -> None:
    parts = list(runner.run_batches(art, test_split[0], batch_size=50, mode="snn", delay=art.T - 1))
    np.testing.assert_array_equal(np.concatenate([p.logits for p in parts]), snn_exact.logits)


def test_eval_json(capsys, test_split, snn_exact) -> None:
    rc = main(["eval", "digits", "--data", "digits", "--split", "test", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 360 and out["mode"] == "snn" and out["delay"] == 3
    assert out["predictions"] == [int(p) for p in snn_exact.predictions]
    assert out["accuracy"] == pytest.approx(float(np.mean(snn_exact.predictions == test_split[1])))


def test_eval_qann_mode(capsys, qann) -> None:
    assert main(["eval", "digits", "--data", "digits", "--mode", "qann", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "qann" and out["delay"] is None
    assert out["predictions"] == [int(p) for p in qann.predictions]


def test_eval_bad_delay(capsys) -> None:
    assert main(["eval", "digits", "--data", "digits", "--delay", "4"]) == 2
    err = capsys.readouterr().err
    assert err == "csdformer: error: --delay: must be in 0..T-1 = 0..3, got 4\n"


def test_console_script_runs() -> None:
    """The installed entry point, as a user runs it (torch-free path)."""
    p = subprocess.run([sys.executable, "-m", "csdformer", "eval", "digits", "--data", "digits", "--limit", "20",
                        "--json"], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["n"] == 20


def test_golden_runner_is_torch_free() -> None:
    code = ("import sys; import csdformer.sim.runner, csdformer.artifact, csdformer.datasets, csdformer.cli; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fashion_mnist_artifact_exact_and_reported() -> None:
    """The shipped Fashion-MNIST model: SNN(D=T-1) = integer QANN on a sample, and its stored
    metrics (measured on all 10,000 test images) meet the target."""
    fm = A.load(resolve_artifact("fashion_mnist"))
    assert fm.metrics["n"] == 10000 and fm.metrics["snn"]["3"] >= 0.93
    assert fm.metrics["snn_equals_int_qann"] == 1.0
    try:
        x, y = load("fashion_mnist", "test")
    except Exception as e:  # the Debian data package is not installed
        pytest.skip(f"Fashion-MNIST data not available: {e}")
    x = x[:40]
    q = runner.run(fm, x, mode="qann")
    s = runner.run(fm, x, mode="snn", delay=fm.T - 1)
    for name in q.counts:
        np.testing.assert_array_equal(s.counts[name], q.counts[name], err_msg=name)
    np.testing.assert_array_equal(s.logits, q.logits)
