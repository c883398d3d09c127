"""Quick Amaranth-simulator tests of the TDEC matmul unit against sim/golden.tdec_matmul."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import rtlil

from csdformer.hw import HwParamError
from csdformer.hw.tdec_matmul import TdecMatmul, cycles, merge_output, operand_views
from csdformer.sim import golden
from csdformer.sim.benchlib import unpack_lanes
from csdformer.sim.benchlib.amaranth_sim import run_streams


def run_frames(unit: TdecMatmul, av, bv, **kw):
    """Stream per-head frames; return ``(frames, heads, rows, cols)`` currents and cycles."""
    ins = {"a_stream": [w for f in av for w in unit.a_words(f[None])],
           "b_stream": [w for f in bv for w in unit.b_words(f[None])]}
    beats, cyc = run_streams(unit, ins, len(av) * unit.o_beats, **kw)
    lanes = np.array([unpack_lanes(b, unit.width, unit.lanes) for b in beats])
    return lanes.reshape(len(av), unit.heads, unit.rows, -1)[..., : unit.cols], cyc


@pytest.mark.parametrize("operands,heads,N,C,T,lanes,shift", [
    ("q_kT", 2, 4, 6, 4, 2, 1),
    ("attn_v", 2, 3, 4, 3, 4, 0),
    ("q_kT", 1, 3, 3, 1, 1, 0),   # T = 1, one lane
    ("attn_v", 3, 4, 6, 2, 3, 2),
])
def test_tdec_matches_golden(operands, heads, N, C, T, lanes, shift):
    rng = np.random.default_rng(heads * 10 + N + T)
    unit = TdecMatmul.for_layer(operands, heads=heads, tokens=N, channels=C, T=T, lanes=lanes, shift=shift)
    a = rng.random((2 * T, N, C) if operands == "q_kT" else (2 * T, heads, N, N)) < 0.5
    b = rng.random((2 * T, N, C)) < 0.5
    a[:T] = 1  # one all-one window, then a random one
    av, bv = operand_views(operands, a.astype(np.uint8), b.astype(np.uint8), heads)
    got, _ = run_frames(unit, av, bv, idle_every=3, stall_every=5)
    win = lambda x: x.reshape((2, T) + x.shape[1:]).swapaxes(0, 1)  # noqa: E731
    want = (golden.tdec_matmul(win(av), win(bv)) << shift).swapaxes(0, 1).reshape(got.shape)
    assert np.array_equal(got, want)
    assert merge_output(operands, got).shape[1:] == ((heads, N, N) if operands == "q_kT" else (N, C))


def test_cycle_model_exact_and_max_counts():
    unit = TdecMatmul(heads=2, rows=3, inner=5, cols=4, T=3, lanes=2, shift=0)
    a = np.ones((3, 2, 3, 5), np.uint8)
    b = np.ones((3, 2, 5, 4), np.uint8)
    got, cyc = run_frames(unit, a, b)
    assert cyc == cycles(unit, 3)
    assert got.max() == unit.frame_max == 5 * (2 * 3 - 1)  # the width bound is reached, not exceeded
    assert np.array_equal(got, golden.tdec_matmul(a, b))
    assert unit.uses_multipliers is False and unit.latency == 3 + unit.inner


def test_no_multiplier_cells():
    unit = TdecMatmul.for_layer("attn_v", heads=2, tokens=5, channels=6, T=4, lanes=3, shift=1)
    assert "$mul" not in rtlil.convert(unit)


@pytest.mark.parametrize("kw,match", [
    (dict(lanes=0), "lanes"),
    (dict(T=0), "T"),
    (dict(heads=0), "heads"),
    (dict(shift=-1), "shift"),
    (dict(width=6), "width"),
])
def test_bad_parameters(kw, match):
    args = dict(heads=2, rows=3, inner=4, cols=3, T=4, lanes=2)  # currents reach 4·7 = 28: 5 bits
    args.update(kw)
    if "width" in kw:
        args["shift"] = 2  # 112: 7 bits
    with pytest.raises(HwParamError, match=match):
        TdecMatmul(**args)


def test_for_layer_checks_heads():
    with pytest.raises(HwParamError, match="divisible"):
        TdecMatmul.for_layer("q_kT", heads=3, tokens=4, channels=8, T=2, lanes=2)
    with pytest.raises(HwParamError, match="operands"):
        TdecMatmul.for_layer("qk", heads=2, tokens=4, channels=8, T=2, lanes=2)
