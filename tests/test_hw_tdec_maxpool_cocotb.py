"""cocotb/Verilator bench of the TDEC max-pool unit vs golden.tdec_maxpool (bench: sim/benches/tdec_maxpool.py).

Cases (parameter sets, stimuli) live in ``csdformer.sim.benches.cases``.
"""

import pytest

from csdformer.sim.benches.cases import MAXPOOL_PARAMS, maxpool_case, seed_of
from csdformer.sim.benchlib import runner

BENCH = "csdformer.sim.benches.tdec_maxpool"


@pytest.mark.parametrize("label,C,H,W,P,T,k,s,p,windows", MAXPOOL_PARAMS, ids=[p[0] for p in MAXPOOL_PARAMS])
def test_tdec_maxpool_bench(label, C, H, W, P, T, k, s, p, windows):
    assert windows * T >= 2000
    unit, data, meta = maxpool_case(C, H, W, P, T, k, s, p, windows, seed=seed_of(label))
    res = runner.run_bench(unit, f"tdec_maxpool_{label}", BENCH, data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["cycles_ok"]


def test_tdec_maxpool_bench_catches_corrupted_rtl():
    unit, data, meta = maxpool_case(6, 4, 4, 4, 4, 2, 2, 0, 20, seed=3)
    res = runner.run_bench(unit, "tdec_maxpool_corrupt", BENCH, data=data, meta=meta, corrupt={"bit": 1, "beat": 40})
    assert not res.passed
    assert res.result.get("mismatches", 0) >= 1, res.summary()
