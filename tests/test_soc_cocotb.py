"""The system-on-chip core (UART link + whole-network accelerator of the shipped digits model, its
model read from the on-chip backend) driven through its UART pins with cocotbext-uart (bench:
sim/benches/link.py). INFO answers the model id the loader read from the flash image.

Every answer must equal, byte for byte, what the device model computes from the golden model and
the cycle model: class, cycles and logits. ``images`` sends 12 images (all-zero, all-max, 10
random, every delay); the fault cases: garbage before a frame, corrupted CRC, truncated frame,
reset mid-frame; the next valid frame must be answered correctly each time.
"""

import pytest

from csdformer.artifact import resolve_artifact
from csdformer import artifact as A
from csdformer.hw.flash_image import build_image, parse_header
from csdformer.hw.program import compile_program
from csdformer.sim.benches.link_cases import link_case
from csdformer.sim.benchlib import runner
from csdformer.sim.testbed import Testbed
from csdformer.sim.verify import reference_result

BENCH = "csdformer.sim.benches.link"


@pytest.fixture(scope="module")
def program():
    return compile_program(A.load(resolve_artifact("digits")), 8, keep_spikes=False)


@pytest.mark.parametrize("scenario", ["images", "garbage", "bad_crc", "truncated", "reset"])
def test_soc_through_uart(program, scenario):
    core = Testbed(program, backend="rom")
    model_id = parse_header(build_image(program)).model_id
    soc, data, meta = link_case("digits_like_d8", scenario, seed=7, core=core, model_id=model_id,
                                compute=lambda px, d: reference_result(program, px, d, core.timing),
                                answer_bytes=6000, pixel_max=program.artifact.input.max_value)
    res = runner.run_bench(soc, "soc_digits", BENCH, data=data, meta=meta, tag=f"soc_{scenario}")
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["frames"] == len(meta["expected_frames"]) > 0
    if scenario == "images":
        assert len(meta["expected_frames"]) == 13  # the INFO answer and 12 RESULTs
