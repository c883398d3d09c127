"""Quick Amaranth-simulator tests of the spike accumulator against sim/synaptic.py."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import rtlil

from csdformer.hw import HwParamError
from csdformer.hw.accumulate import SpikeAccumulator, const_mul, cycles, frame_events
from csdformer.sim.benchlib import unpack_lanes
from csdformer.sim.benchlib.amaranth_sim import run_streams
from csdformer.sim.synaptic import conv_frames, linear_frames


def run_frames(unit: SpikeAccumulator, grids, **kw):
    """Stream spike frames ``(frames, C, H, W)``; return currents ``(frames, M, H', W')`` and cycles."""
    words = [w for g in grids for w in unit.frame_words(frame_events(g))]
    beats, cyc = run_streams(unit, {"i_stream": words}, len(grids) * unit.beats, **kw)
    lanes = np.array([unpack_lanes(b, unit.width, unit.lanes, signed=True) for b in beats])
    return unit.currents(lanes), cyc


def _weights(rng, shape, wmax):
    w = rng.integers(-wmax, wmax + 1, shape)
    w[0] = wmax
    w[-1] = -wmax
    return w


@pytest.mark.parametrize("M,C,H,W,stride,padding,T,lanes", [
    (5, 2, 5, 4, 1, 1, 2, 2),   # two lane groups, padded last group
    (3, 1, 6, 6, 2, 1, 3, 4),   # stride 2, lanes > M
    (4, 2, 4, 5, 1, 0, 1, 1),   # no padding, T = 1, one lane
    (2, 1, 5, 5, 2, 2, 2, 2),   # padding k-1
])
def test_conv_matches_golden(M, C, H, W, stride, padding, T, lanes):
    rng = np.random.default_rng(M + 10 * C + 100 * stride + padding)
    w, b = _weights(rng, (M, C, 3, 3), 127), rng.integers(-200, 200, M)
    unit = SpikeAccumulator(w, b, (C, H, W), T=T, lanes=lanes, stride=stride, padding=padding)
    s = (rng.random((2 * T, C, H, W)) < rng.choice([0.1, 0.4, 0.8], (2 * T, 1, 1, 1))).astype(np.uint8)
    s[0] = 0
    s[-1] = 1
    got, _ = run_frames(unit, s, idle_every=3, stall_every=4)
    want = conv_frames(s.reshape((2, T) + s.shape[1:]).swapaxes(0, 1), w, b, stride, padding)
    assert np.array_equal(got, want.swapaxes(0, 1).reshape(got.shape))


def test_linear_matches_golden_and_cycle_model():
    rng = np.random.default_rng(7)
    M, K, rows, T = 6, 9, 2, 3
    w, b = _weights(rng, (M, K), 7), rng.integers(-30, 30, M)
    unit = SpikeAccumulator.linear(w, b, rows=rows, T=T, lanes=4)
    s = (rng.random((T, rows, K)) < 0.4).astype(np.uint8)
    got, cyc = run_frames(unit, s.transpose(0, 2, 1)[..., None])
    assert np.array_equal(got[..., 0].transpose(0, 2, 1), linear_frames(s, w, b))
    assert cyc == cycles(unit, s.reshape(T, -1).sum(1))


def test_cycles_grow_with_spikes_not_neurons():
    w = np.ones((4, 3, 3, 3), dtype=np.int64)
    unit = SpikeAccumulator(w, np.zeros(4, np.int64), (3, 6, 6), T=2, lanes=2, padding=1)
    s = np.zeros((2, 3, 6, 6), np.uint8)
    s[1, 0, 2, 3] = s[1, 2, 5, 5] = 1
    _, cyc = run_frames(unit, s)
    assert cyc == cycles(unit, [0, 2]) == 2 * (2 + unit.beats) + 2 * 9 * 2
    assert unit.latency == 2 and unit.uses_multipliers is False


def test_no_multiplier_cells():
    rng = np.random.default_rng(0)
    unit = SpikeAccumulator(rng.integers(-9, 9, (6, 3, 3, 3)), np.zeros(6, np.int64), (3, 7, 5), T=4, lanes=4,
                            stride=2, padding=1)
    assert "$mul" not in rtlil.convert(unit)


def test_const_mul_is_exact():
    from amaranth.hdl import Const
    for k in (0, 1, 9, 18, 37):
        v = const_mul(Const(13, 8), k)
        assert (13 * k) == _eval(v)


def _eval(value):
    from amaranth.sim import Simulator
    from amaranth.hdl import Module, Signal
    m = Module()
    s = Signal(value.shape())
    m.d.comb += s.eq(value)
    res = []

    async def tb(ctx):
        res.append(ctx.get(s))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    return res[0]


@pytest.mark.parametrize("kw,match", [
    (dict(lanes=0), "lanes"),
    (dict(T=0), "T"),
    (dict(width=8), "width"),
    (dict(stride=3), "stride"),
    (dict(padding=3), "padding"),
    (dict(in_shape=(3, 4, 4)), "channels"),
    (dict(in_shape=(2, 1, 1)), "empty"),
    (dict(bias=np.zeros(3, np.int64)), "bias"),
])
def test_bad_parameters(kw, match):
    args = dict(weight=np.full((4, 2, 3, 3), 100), bias=np.zeros(4, np.int64), in_shape=(2, 5, 5), T=2, lanes=2)
    args.update(kw)
    with pytest.raises(HwParamError, match=match):
        SpikeAccumulator(args.pop("weight"), args.pop("bias"), args.pop("in_shape"), **args)
