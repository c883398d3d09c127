"""Hardware units fed with real frames of the shipped digits model: the golden runner traces a
layer's input and output frames for test images, and the unit (built from the same artifact
layer) must reproduce the output frames bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from csdformer import artifact as A
from csdformer.cli import resolve_artifact
from csdformer.datasets import load
from csdformer.hw.accumulate import SpikeAccumulator
from csdformer.hw.dif import DIF
from csdformer.sim import runner
from test_hw_accumulate_amaranth import run_frames
from test_hw_dif_amaranth import _run as run_dif


@pytest.fixture(scope="module")
def traced():
    art = A.load(resolve_artifact("digits"))
    x, _ = load("digits", "test")
    names = ("stages.0", "stages.1.quant", "stages.1.pool", "stages.1")
    res = {}
    for d in (art.T - 1, 0):
        res[d] = runner.run(art, x[:2], mode="snn", delay=d, trace=names).frames
    return art, res


@pytest.mark.parametrize("delay", [3, 0])
def test_dif_on_digits_frames(traced, delay) -> None:
    art, res = traced
    fr = res[delay]
    unit = DIF.from_artifact(art, "stages.1.quant", lanes=16, D=delay)
    cur = fr["stages.0"]  # (T, B, C, H, W): the encoding layer's current frames
    T, B = cur.shape[:2]
    windows = cur.transpose(1, 0, 3, 4, 2).reshape(B, T, -1)  # neuron order (y, x, c)
    want = fr["stages.1.quant"].transpose(1, 0, 3, 4, 2).reshape(B, T, -1)
    assert want.sum() > 0
    np.testing.assert_array_equal(run_dif(unit, windows), want)


def test_accumulator_on_digits_frames(traced) -> None:
    art, res = traced
    fr = res[art.T - 1]
    unit = SpikeAccumulator.for_layer(art, "stages.1", lanes=32)
    spikes, want = fr["stages.1.pool"], fr["stages.1"]  # (T, B, ...): the conv after the pool
    for b in range(spikes.shape[1]):
        got, _ = run_frames(unit, spikes[:, b])
        np.testing.assert_array_equal(got, want[:, b])
