"""The bare accelerator in the Verilator C++ bench (``sim/benches/accel_bus_tb.cpp``, launcher
``csdformer.sim.verilator_bus``): its model streamed over the ``bus`` ports with RomStream's
timing, no cocotb, the bench path of the paper-size model (``bench/paper_rtl.py``).

Digits, 3 test images at D = 3: bit-exact in every layer, the cycle counter equal to the cycle
model, and every recorded array (logits, class, counters, every spike frame read back) and the
cycles simulated equal to the cocotb bench's (``verify_bus``, which
``tests/test_accel_bus_cocotb.py`` proves equal to RomStream in the RTL). A corrupted image byte
is reported where it first shows. The Verilog the bench builds is the design's without its zero
memory initialisers, nothing else. The paper-size ``fashion_mnist-4-384`` (16 lanes, one image,
25 M cycles: about 2.5 minutes with its Verilog, its build and the run) is opt-in
(``CSDFORMER_PAPER_RTL=1``).
"""

import os
import re

import numpy as np
import pytest

from csdformer import CsdformerError
from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.hw.flash_image import build_image, op_bytes, record_bytes, records_offset
from csdformer.hw.program import compile_program
from csdformer.sim.verify import select_images
from csdformer.sim.verify_bus import verify_bus
from csdformer.sim.verilator_bus import strip_zero_inits, verify_cxx

N_IMAGES = 3


@pytest.fixture(scope="module")
def prog():
    return compile_program(A.load(resolve_artifact("digits")), 8)


@pytest.fixture(scope="module")
def images(prog):
    return select_images(prog.artifact, N_IMAGES, seed=0)


@pytest.fixture(scope="module")
def report(prog, images):
    idx, x = images
    return verify_cxx(prog, idx, x, delay=3)


def test_every_image_bit_exact_with_cycles_equal_to_the_model(report):
    bad = [c.line() for c in report.checks if not c.ok]
    assert not bad, "\n".join(bad)
    assert report.summary() == f"{N_IMAGES} passed, 0 failed"
    for c in report.checks:
        assert c.cycles == c.model_cycles
    s = report.stream
    assert s["mode"] == "exact" and s["stepped_cycles"] == report.sim_cycles > sum(c.cycles for c in report.checks)
    assert s["zero_inits_dropped"] > 0 and s["verilog_stripped_bytes"] < s["verilog_bytes"]
    assert report.vm_hwm_mb and report.vm_hwm_mb > 0


def test_the_cxx_bench_records_what_the_cocotb_bench_does(report, prog, images):
    """The same images through the cocotb bench: every recorded array and the cycles simulated equal."""
    idx, x = images
    cocotb = verify_bus(prog, idx, x, delay=3)
    assert set(cocotb.hw) == set(report.hw)
    for key in cocotb.hw:
        assert np.array_equal(cocotb.hw[key], report.hw[key]), key
    assert cocotb.sim_cycles == report.sim_cycles


def _weight_byte(prog, op_index: int) -> int:
    """The image offset of op ``op_index``'s first weight byte."""
    return records_offset(prog) + sum(record_bytes(prog, op) for op in prog.ops[:op_index]) + 3 + op_bytes(prog)


def test_a_corrupted_image_byte_is_named_where_it_first_shows(report, prog, images):
    """The cached build, another image: a weight of the head fails at the logits, one of the
    first op at the first spike layer."""
    idx, x = images
    first = next(layer.name for layer in prog.artifact.layers if layer.name in prog.spike_layers)
    for op_index, where in ((len(prog.ops) - 1, "logits"), (0, first)):
        img = bytearray(build_image(prog))
        img[_weight_byte(prog, op_index)] ^= 0x40
        rep = verify_cxx(prog, idx, x, delay=3, image=bytes(img))
        assert rep.build_s == 0  # the build of the report's run (the image is an input)
        assert rep.failed >= 1 and {c.first_layer for c in rep.checks if not c.ok} == {where}


def test_strip_zero_inits_drops_zero_memory_words_only():
    text = ("  reg [15:0] bank0 [3:0];\n  initial begin\n    bank0[0] = 16'h0000;\n    bank0[1] = 16'h0001;\n"
            "    \\x.y$z [2] = 16'h0000;\n    bank0[3] = 16'h0000;\n  end\n  reg [3:0] r = 4'h0;\n")
    out, n = strip_zero_inits(text)
    assert n == 2
    assert "bank0[1] = 16'h0001;" in out and "reg [3:0] r = 4'h0;" in out and "\\x.y$z [2]" in out
    assert not re.search(r"bank0\[[03]\]", out)


def test_a_design_past_its_cycle_budget_is_stopped(prog, images):
    idx, x = images
    with pytest.raises(CsdformerError, match=f"image {idx[0]} \\(1 of 1\\): not done within the cycle budget of 1,000 cycles"):
        verify_cxx(prog, idx[:1], x[:1], delay=3, budget_cycles=1000)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CSDFORMER_PAPER_RTL"),
                    reason="opt-in (CSDFORMER_PAPER_RTL=1; or bench/paper_rtl.py): about 2.5 minutes (Verilog 1.5, "
                           "build 0.5, 25 M cycles 1)")
def test_fashion_mnist_4_384_one_image_bit_exact():
    """The paper-size model (9.4 MB image, 16 lanes, every spike layer kept for the read-back):
    one test image bit-exact in every layer, cycles equal to the model."""
    art = A.load(resolve_artifact("fashion_mnist-4-384"))
    p = compile_program(art, 16)
    idx, x = select_images(art, 1, seed=0)
    rep = verify_cxx(p, idx, x, delay=art.delay)
    assert rep.summary() == "1 passed, 0 failed", rep.checks[0].line()
    assert rep.checks[0].cycles == rep.checks[0].model_cycles
