"""cocotb bench of the TDEC matmul unit (sim/benches/tdec_matmul.py) against
``sim/golden.tdec_matmul`` (per head, ``<< shift``), under Verilator: 3 parameter sets × 2,000
random frames, cycles within 5 % of the model, and a corrupted RTL that must fail. Cases:
:mod:`csdformer.sim.benches.frames_cases`."""

from __future__ import annotations

import pytest

from csdformer.sim.benches.frames_cases import MATMUL_FRAMES as FRAMES
from csdformer.sim.benches.frames_cases import MATMUL_PARAMS as PARAMS
from csdformer.sim.benches.frames_cases import tdec_matmul_case as case
from csdformer.sim.benchlib import runner


@pytest.mark.parametrize("label", list(PARAMS))
def test_tdec_matmul_bench(label):
    unit, data, meta = case(PARAMS[label], seed=len(label))
    res = runner.run_bench(unit, "tdec_matmul", "csdformer.sim.benches.tdec_matmul", data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["compared"] >= FRAMES * unit.o_beats * unit.lanes
    assert res.result["cycles_ok"]


def test_tdec_matmul_bench_catches_flipped_bit():
    unit, data, meta = case(PARAMS["q_kT-h1-n3-c5-l8-T3-s2"], seed=3, frames=30)
    res = runner.run_bench(unit, "tdec_matmul", "csdformer.sim.benches.tdec_matmul", data=data, meta=meta,
                           corrupt={"bit": 2, "beat": 11}, tag="corrupt")
    assert not res.passed
    assert res.result.get("mismatches", 0) > 0, res.result
