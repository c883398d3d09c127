"""cocotb/Verilator bench of the DIF neuron array vs golden.dif (bench: sim/benches/dif.py).

Cases (parameter sets, stimuli) live in ``csdformer.sim.benches.cases``.
"""

import shutil

import pytest

from csdformer.cli import shipped_models
from csdformer.sim.benches.cases import DIF_PARAMS, dif_artifact_case, dif_case, seed_of
from csdformer.sim.benchlib import runner

BENCH = "csdformer.sim.benches.dif"


@pytest.mark.parametrize("label,N,P,T,D,bounds,theta_max,windows", DIF_PARAMS, ids=[p[0] for p in DIF_PARAMS])
def test_dif_bench(label, N, P, T, D, bounds, theta_max, windows):
    assert windows * T >= 2000
    unit, data, meta = dif_case(N, P, T, D, bounds, theta_max, windows, seed=seed_of(label))
    res = runner.run_bench(unit, f"dif_{label}", BENCH, data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["cycles_ok"]


def test_dif_bench_catches_corrupted_rtl():
    unit, data, meta = dif_case(13, 4, 4, 0, (-64, 63), 40, 30, seed=7)
    res = runner.run_bench(unit, "dif_corrupt", BENCH, data=data, meta=meta, corrupt={"bit": 1, "beat": 37})
    assert not res.passed
    assert res.result.get("mismatches", 0) >= 1, res.summary()


@pytest.mark.skipif(not shipped_models(), reason="no shipped model artifact")
def test_dif_bench_with_artifact_parameters():
    """Real θ, v0, T, D and widths of a shipped model's dif layer (first 64 neurons)."""
    unit, data, meta = dif_artifact_case(None, 64, 8, 100, seed=11)
    res = runner.run_bench(unit, "dif_artifact", BENCH, data=data, meta=meta)
    assert res.passed, res.summary()


def test_all_parameter_sets_cover_delay_edges():
    delays = {(T, D) for _, _, _, T, D, *_ in DIF_PARAMS}
    assert any(D == 0 for _, D in delays) and any(D == T - 1 and T > 1 for T, D in delays)


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) not installed")
def test_dif_bench_on_icarus():
    """The same bench on the optional simulator (a short case: Icarus is slower)."""
    unit, data, meta = dif_case(13, 4, 4, 2, (-64, 63), 40, 20, seed=1)
    res = runner.run_bench(unit, "dif_icarus", BENCH, data=data, meta=meta, sim="icarus")
    assert res.passed, res.summary()
