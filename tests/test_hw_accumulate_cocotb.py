"""cocotb bench of the spike accumulator (sim/benches/accumulate.py) against the golden
synaptic ops (sim/synaptic.py), under Verilator: 3 parameter sets × 2,000 random frames, cycles
within 5 % of the cycle model, and a corrupted RTL that must fail.

The cases (parameter sets, seeded stimuli, expected beats: :mod:`csdformer.sim.benches.frames_cases`)
are shared with ``bench/hw_simspeed.py``; :func:`run_corrupted` with the encode_conv and
tdec_matmul launchers.
"""

from __future__ import annotations

import pytest

from csdformer.sim.benches.frames_cases import ACCUMULATE_FRAMES as FRAMES
from csdformer.sim.benches.frames_cases import ACCUMULATE_PARAMS as PARAMS
from csdformer.sim.benches.frames_cases import accumulate_case as case
from csdformer.sim.benchlib import runner


def run_corrupted(unit, name: str, data, meta, corrupt: dict, sim: str | None = None) -> tuple[bool, dict]:
    """Run bench ``name`` on ``FlipOutputBit(unit, **corrupt)``; return ``(passed, result)``."""
    res = runner.run_bench(unit, name, f"csdformer.sim.benches.{name}", data=data, meta=meta, corrupt=corrupt,
                           tag="corrupt", sim=sim)
    return res.passed, res.result


@pytest.mark.parametrize("label", list(PARAMS))
def test_accumulate_bench(label):
    unit, data, meta = case(PARAMS[label], seed=len(label))
    res = runner.run_bench(unit, "accumulate", "csdformer.sim.benches.accumulate", data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["compared"] >= FRAMES * unit.M * unit.positions
    assert res.result["cycles_ok"]


def test_accumulate_bench_catches_flipped_bit():
    unit, data, meta = case(PARAMS["linear-l4-T3"], seed=3, frames=60)
    passed, result = run_corrupted(unit, "accumulate", data, meta, {"bit": 1, "beat": 37})
    assert not passed
    assert result.get("mismatches", 0) > 0, result
