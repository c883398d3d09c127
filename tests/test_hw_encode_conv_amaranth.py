"""Quick Amaranth-simulator tests of the encoding layer against sim/synaptic.encode_frames."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import rtlil

from csdformer.hw import HwParamError
from csdformer.hw.accumulate import pixel_events
from csdformer.hw.encode_conv import EncodeConv, cycles
from csdformer.sim.benchlib import unpack_lanes
from csdformer.sim.synaptic import encode_frames
from csdformer.sim.benchlib.amaranth_sim import run_streams


def run_images(unit: EncodeConv, images, **kw):
    """Stream images ``(n, C, H, W)``; return currents ``(n, T, M, H', W')`` and cycles."""
    words = [w for im in images for w in unit.frame_words(pixel_events(im))]
    beats, cyc = run_streams(unit, {"i_stream": words}, len(images) * unit.T * unit.beats, **kw)
    lanes = np.array([unpack_lanes(b, unit.width, unit.lanes, signed=True) for b in beats])
    return unit.currents(lanes).reshape((len(images), unit.T, unit.M, unit.Ho, unit.Wo)), cyc


@pytest.mark.parametrize("M,C,H,W,stride,padding,max_value,T,lanes", [
    (3, 1, 5, 4, 1, 1, 255, 2, 2),
    (4, 3, 4, 4, 2, 1, 13, 3, 4),
    (2, 2, 3, 5, 1, 0, 1, 1, 1),
])
def test_encode_matches_golden(M, C, H, W, stride, padding, max_value, T, lanes):
    rng = np.random.default_rng(M * 7 + C + max_value)
    w = rng.integers(-127, 128, (M, C, 3, 3))
    w[0] = -127
    b = rng.integers(-1000, 1000, M)
    unit = EncodeConv(w, b, (C, H, W), max_value=max_value, T=T, lanes=lanes, stride=stride, padding=padding)
    img = rng.integers(0, max_value + 1, (3, C, H, W))
    img[0] = 0
    img[1] = max_value
    got, _ = run_images(unit, img, idle_every=4, stall_every=3)
    want = encode_frames(img, w, b, T, stride, padding).swapaxes(0, 1)
    assert np.array_equal(got, want)


def test_encode_cycle_model_counts_set_bits():
    rng = np.random.default_rng(1)
    unit = EncodeConv(rng.integers(-5, 5, (3, 1, 3, 3)), np.arange(3), (1, 4, 4), max_value=15, T=3, lanes=2,
                      padding=1)
    img = np.zeros((2, 1, 4, 4), np.int64)
    img[0, 0, 1, 2] = 0b1011
    img[1, 0, 3, 0] = 0b1000
    img[1, 0, 0, 0] = 15
    _, cyc = run_images(unit, img)
    assert cyc == sum(cycles(unit, [v for *_, v in pixel_events(im)]) for im in img)
    assert cycles(unit, [0b1011]) == 2 + 3 * 9 * 2 + 3 * unit.beats
    assert unit.uses_multipliers is False and unit.latency == 2


def test_no_multiplier_cells():
    unit = EncodeConv(np.ones((4, 3, 3, 3), np.int64), np.zeros(4, np.int64), (3, 6, 6), max_value=255, T=4,
                      lanes=4, padding=1)
    assert "$mul" not in rtlil.convert(unit)


@pytest.mark.parametrize("kw,match", [
    (dict(max_value=0), "max_value"),
    (dict(lanes=0), "lanes"),
    (dict(T=0), "T"),
    (dict(width=10), "width"),
])
def test_bad_parameters(kw, match):
    args = dict(max_value=255, T=2, lanes=2)
    args.update(kw)
    with pytest.raises(HwParamError, match=match):
        EncodeConv(np.full((2, 1, 3, 3), 100), np.zeros(2, np.int64), (1, 4, 4), **args)


def test_zero_pixel_events_cost_one_cycle_and_add_nothing():
    rng = np.random.default_rng(2)
    w, b = rng.integers(-9, 9, (2, 1, 3, 3)), np.array([5, -5])
    unit = EncodeConv(w, b, (1, 3, 3), max_value=7, T=2, lanes=2, padding=1)
    img = np.zeros((1, 3, 3), np.int64)
    img[0, 1, 1] = 6
    events = [(0, 0, 0, 0), (0, 1, 1, 6), (0, 2, 2, 0)]
    beats, cyc = run_streams(unit, {"i_stream": unit.frame_words(events)}, unit.T * unit.beats)
    lanes = np.array([unpack_lanes(x, unit.width, unit.lanes, signed=True) for x in beats])
    assert np.array_equal(unit.currents(lanes), encode_frames(img, w, b, 2, 1, 1))
    assert cyc == cycles(unit, [0, 6, 0]) == cycles(unit, [6]) + 2
