"""cocotb bench of the spike accumulator (sim/benches/accumulate.py) against the golden
synaptic ops (sim/synaptic.py), under Verilator: 3 parameter sets × 2,000 random frames, cycles
within 5 % of the cycle model, and a corrupted RTL that must fail.

The cases (parameter sets, seeded stimuli, expected beats: :mod:`csdformer.sim.benches.frames_cases`)
are shared with ``bench/hw_simspeed.py``.
"""

from __future__ import annotations

import pytest

from csdformer.sim.benches.frames_cases import ACCUMULATE_FRAMES as FRAMES
from csdformer.sim.benches.frames_cases import ACCUMULATE_PARAMS as PARAMS
from csdformer.sim.benches.frames_cases import accumulate_case as case
from csdformer.sim.benchlib import runner


@pytest.mark.parametrize("label", list(PARAMS))
def test_accumulate_bench(label):
    unit, data, meta = case(PARAMS[label], seed=len(label))
    res = runner.run_bench(unit, "accumulate", "csdformer.sim.benches.accumulate", data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["compared"] >= FRAMES * unit.M * unit.positions
    assert res.result["cycles_ok"]


def test_accumulate_bench_catches_flipped_bit():
    unit, data, meta = case(PARAMS["linear-l4-T3"], seed=3, frames=60)
    res = runner.run_bench(unit, "accumulate", "csdformer.sim.benches.accumulate", data=data, meta=meta,
                           corrupt={"bit": 1, "beat": 37}, tag="corrupt")
    assert not res.passed
    assert res.result.get("mismatches", 0) > 0, res.result
