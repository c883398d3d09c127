"""cocotb bench of the encoding layer (sim/benches/encode_conv.py) against
``sim/synaptic.encode_frames``, under Verilator: 3 parameter sets × 2,000 random images (each
one window of ``T`` output frames), cycles within 5 % of the model, and a corrupted RTL that
must fail. Cases: :mod:`csdformer.sim.benches.frames_cases`."""

from __future__ import annotations

import pytest

from csdformer.sim.benches.frames_cases import ENCODE_IMAGES as IMAGES
from csdformer.sim.benches.frames_cases import ENCODE_PARAMS as PARAMS
from csdformer.sim.benches.frames_cases import encode_conv_case as case
from csdformer.sim.benchlib import runner


@pytest.mark.parametrize("label", list(PARAMS))
def test_encode_conv_bench(label):
    unit, data, meta = case(PARAMS[label], seed=len(label))
    res = runner.run_bench(unit, "encode_conv", "csdformer.sim.benches.encode_conv", data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["compared"] >= IMAGES * unit.T * unit.M * unit.positions
    assert res.result["cycles_ok"]


def test_encode_conv_bench_catches_flipped_bit():
    unit, data, meta = case(PARAMS["enc-s1p1-l4-T2-max3"], seed=3, images=40)
    res = runner.run_bench(unit, "encode_conv", "csdformer.sim.benches.encode_conv", data=data, meta=meta,
                           corrupt={"bit": unit.width - 1, "beat": 20}, tag="corrupt")
    assert not res.passed
    assert res.result.get("mismatches", 0) > 0, res.result
