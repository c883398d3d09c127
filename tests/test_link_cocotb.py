"""cocotb/Verilator bench of the host link through its UART pins (bench: sim/benches/link.py).

UART + Link + the fixture core (``sim/benches/link_fixture.py``; the real accelerator drops in
with the same attributes and ports), driven with ``cocotbext.uart``; answers compared with the
Python device model. Cases: ``csdformer.sim.benches.link_cases``.
"""

import pytest

from csdformer.firmware import protocol as P
from csdformer.sim.benches.link_cases import SCENARIOS, link_case
from csdformer.sim.benchlib import runner

BENCH = "csdformer.sim.benches.link"


def _run(label, scenario, **kw):
    soc, data, meta = link_case(label, scenario, seed=SCENARIOS.index(scenario) + 1, **kw)
    tag = scenario + ("_corrupt" if kw else "")
    return runner.run_bench(soc, f"link_soc_{label}", BENCH, data=data, meta=meta, tag=tag), meta


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_link_bench(scenario):
    res, meta = _run("digits_like_d8", scenario)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["frames"] == len(meta["expected_frames"]) > 0


def test_link_bench_other_params():
    """8-bit pixels (sync bytes inside payloads), 32-bit logits, an odd divisor, no core stalls."""
    res, _ = _run("rgb_d13", "images")
    assert res.passed, res.summary()


def test_link_bench_catches_corrupted_rtl():
    """One bit of one byte the link sends inverted (logit 3 of the 3rd answer, after the INFO answer
    and a RESULT): the host's decoder drops that answer, and the bench must fail."""
    info, result = (P.HEADER_SIZE + n + P.CRC_SIZE for n in (P.INFO_SIZE, P.result_size(10)))
    beat = info + result + P.HEADER_SIZE + P.RESULT_HEAD_SIZE + 4 * 3 + 1
    res, _ = _run("digits_like_d8", "images", corrupt_tx={"bit": 2, "beat": beat})
    assert not res.passed
    assert res.result.get("mismatches", 0) >= 1, res.summary()


def test_link_bench_cycle_budget():
    """Every run has a cycle budget from the script's model timing; past it the bench stops with
    one line naming the step in progress and the budget (here a budget far too small)."""
    soc, data, meta = link_case("digits_like_d8", "images", seed=1)
    assert meta["budget_cycles"] > 0
    meta["budget_cycles"] = 50
    res = runner.run_bench(soc, "link_soc_digits_like_d8", BENCH, data=data, meta=meta, tag="budget")
    assert not res.passed
    assert res.result["error"] == (f"link images: step 1 of {len(meta['steps'])} (send): not done within the cycle budget of 50 "
                                   "cycles (from the cycle model); the simulation was stopped"), res.summary()
