"""cocotb bench of the TDEC matmul unit (sim/benches/tdec_matmul.py) against
``sim/golden.tdec_matmul`` (per head, ``<< shift``), under Verilator: 3 parameter sets × 2,000
random frames, cycles within 5 % of the model, and a corrupted RTL that must fail."""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw.tdec_matmul import TdecMatmul, cycles, operand_views
from csdformer.sim import golden
from csdformer.sim.benchlib import runner
from test_hw_accumulate_cocotb import frames_case, run_corrupted, random_spikes

FRAMES = 2000

PARAMS = {
    "q_kT-h2-n4-c4-l4-T4-s1": dict(operands="q_kT", heads=2, tokens=4, channels=4, T=4, lanes=4, shift=1),
    "attn_v-h2-n4-c6-l2-T2": dict(operands="attn_v", heads=2, tokens=4, channels=6, T=2, lanes=2, shift=0),
    "q_kT-h1-n3-c5-l8-T3-s2": dict(operands="q_kT", heads=1, tokens=3, channels=5, T=3, lanes=8, shift=2),
}


def case(p, seed: int = 0, frames: int = FRAMES):
    p = dict(p)
    rng = np.random.default_rng(seed)
    ops, heads, n, c, T = p["operands"], p["heads"], p["tokens"], p["channels"], p["T"]
    unit = TdecMatmul.for_layer(ops, heads=heads, tokens=n, channels=c, T=T, lanes=p["lanes"], shift=p["shift"])
    a = random_spikes(rng, frames, T, (n, c) if ops == "q_kT" else (heads, n, n))
    b = random_spikes(rng, frames, T, (n, c))
    frames = len(a)
    av, bv = operand_views(ops, a, b, heads)  # (frames, heads, rows, inner), (frames, heads, inner, cols)
    win = lambda x: x.reshape((-1, T) + x.shape[1:]).swapaxes(0, 1)  # noqa: E731  (T, windows, ...)
    prod = golden.tdec_matmul(win(av), win(bv)).swapaxes(0, 1).reshape((frames,) + (heads, unit.rows, unit.cols))
    prod = prod << p["shift"]
    data, meta = frames_case({"a_stream": [unit.a_words(f[None]) for f in av],
                              "b_stream": [unit.b_words(f[None]) for f in bv]},
                             [unit.output_beats(f[None]) for f in prod],
                             [cycles(unit, 1)] * frames,
                             lanes=unit.lanes, width=unit.width, signed=False)
    return unit, data, meta


@pytest.mark.parametrize("label", list(PARAMS))
def test_tdec_matmul_bench(label):
    unit, data, meta = case(PARAMS[label], seed=len(label))
    res = runner.run_bench(unit, "tdec_matmul", "csdformer.sim.benches.tdec_matmul", data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["compared"] >= FRAMES * unit.o_beats * unit.lanes
    assert res.result["cycles_ok"]


def test_tdec_matmul_bench_catches_flipped_bit():
    unit, data, meta = case(PARAMS["q_kT-h1-n3-c5-l8-T3-s2"], seed=3, frames=30)
    passed, result = run_corrupted(unit, "tdec_matmul", data, meta, {"bit": 2, "beat": 11})
    assert not passed
    assert result.get("mismatches", 0) > 0, result
