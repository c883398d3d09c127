"""cocotb/Verilator bench of the residual adder vs the golden add (bench: sim/benches/residual_add.py).

Cases (parameter sets, stimuli) live in ``csdformer.sim.benches.cases``.
"""

import pytest

from csdformer.sim.benches.cases import ADD_PARAMS, add_case, seed_of
from csdformer.sim.benchlib import runner

BENCH = "csdformer.sim.benches.residual_add"


@pytest.mark.parametrize("label,P,N,T,abounds,bbounds,windows", ADD_PARAMS, ids=[p[0] for p in ADD_PARAMS])
def test_residual_add_bench(label, P, N, T, abounds, bbounds, windows):
    assert windows * T >= 2000
    unit, data, meta = add_case(P, N, T, abounds, bbounds, windows, seed=seed_of(label))
    res = runner.run_bench(unit, f"residual_add_{label}", BENCH, data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["cycles_ok"]


def test_residual_add_bench_catches_corrupted_rtl():
    unit, data, meta = add_case(4, 16, 4, (-8, 7), (-3, 12), 10, seed=5)
    res = runner.run_bench(unit, "residual_add_corrupt", BENCH, data=data, meta=meta, corrupt={"bit": 5, "beat": 19})
    assert not res.passed
    assert res.result.get("mismatches", 0) >= 1, res.summary()
