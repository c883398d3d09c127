"""The bare accelerator in the Verilator C++ bench (``sim/benches/accel_bus_tb.cpp``, launcher
``csdformer.sim.verilator_bus``): its model streamed over the ``bus`` ports with RomStream's
timing or any backend's (the QSPI flash reader's), no cocotb, the bench path of the paper-size
model (``bench/paper_rtl.py``).

Digits, 3 test images at D = 3: bit-exact in every layer, the cycle counter equal to the cycle
model, and every recorded array (logits, class, counters, every spike frame read back) and the
cycles simulated equal to the cocotb bench's (``verify_bus``, which
``tests/test_accel_bus_cocotb.py`` proves equal to RomStream in the RTL). A corrupted image byte
is reported where it first shows. The Verilog the bench builds is the design's without its zero
memory initialisers, nothing else. The paper-size ``fashion_mnist-4-384`` (16 lanes, one image,
25 M cycles: about 2.5 minutes with its Verilog, its build and the run) is opt-in
(``CSDFORMER_PAPER_RTL=1``); the shipped Fashion-MNIST model runs one image in the ULX3S 85F's
configuration with its flash reader's timing (about 11 M cycles, 35 s).

The bench's weight stream with other timings: the QSPI reader's (quad at 50 MHz, the flash
backend of ``tests/test_accel_verify_cocotb.py``; single-line at 100 MHz, the ULX3S 85F's) and
RomStream(byte_cycles=3): the same images bit-exact with the cycle counter equal to the cycle model
(waits for weights included), the quad run's arrays equal to the cocotb bench's through the real
reader and flash model, and the bus the C++ model answered with (its first 60,000 cycles after
reset: the wake-up, the header, tables and several records, each new command cutting the read in
flight) replayed into the Amaranth backends, which answer the same, cycle for cycle.
"""

import os
import re

import numpy as np
import pytest

from csdformer import CsdformerError
from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.hw.flash_image import build_image
from csdformer.hw.program import compile_program
from csdformer.sim.verify import select_images
from csdformer.sim.verify_bus import verify_bus
from csdformer.sim.verilator_bus import qspi_stream, rom_stream, strip_zero_inits, verify_cxx
from digits_net import digits_images, digits_program, weight_byte

N_IMAGES = 3
TRACE_CYCLES = 60_000
STREAMS = {"qspi-x4-50MHz": dict(clock_hz=50e6, lines=4), "qspi-x1-100MHz": dict(clock_hz=100e6, lines=1),
           "rom-3": dict(byte_cycles=3)}


@pytest.fixture(scope="module")
def prog():
    return digits_program()


@pytest.fixture(scope="module")
def images(prog):
    return digits_images(prog, N_IMAGES)


@pytest.fixture(scope="module")
def report(prog, images):
    idx, x = images
    return verify_cxx(prog, idx, x, delay=3, trace_cycles=TRACE_CYCLES)


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


def test_a_corrupted_image_byte_is_named_where_it_first_shows(report, prog, images):
    """The cached build, another image: a weight of the head fails at the logits, one of the
    first op at the first spike layer."""
    idx, x = images
    first = next(layer.name for layer in prog.artifact.layers if layer.name in prog.spike_layers)
    for op_index, where in ((len(prog.ops) - 1, "logits"), (0, first)):
        img = bytearray(build_image(prog))
        img[weight_byte(prog, op_index)] ^= 0x40
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


@pytest.mark.slow
@pytest.mark.parametrize("memory", ["flash", "sdram"])
def test_fashion_mnist_one_image_in_the_ulx3s_configuration(memory):
    """The shipped Fashion-MNIST model as the ULX3S 85F runs it (issue 12): the board's 16 lanes,
    weight buffer and ACC depth (blocks that do not fit run as output tiles), the model streamed
    with the board's QSPI reader's timing (one data line, 100 MHz: a byte every 16 cycles), or with
    the SDRAM stream's (hw/sdram.py: a byte a cycle once the model is copied there). One test image
    bit-exact in every spike layer, the logits and class equal, the cycle counter equal to the cycle
    model; from flash most of it waits for weights, from SDRAM few (about 35 s here, the second
    reuses the first's simulator; ``bench/paper_rtl.py --artifact fashion_mnist --board ulx3s-85f
    [--sdram] --images 20`` runs twenty)."""
    from csdformer.boards.targets import get_board
    from csdformer.sim.verilator_bus import sdram_stream
    board = get_board("ulx3s-85f")
    art = A.load(resolve_artifact("fashion_mnist"))
    p = compile_program(art, board.lanes, single_port=board.single_port, weight_depth=board.weight_depth,
                        acc_depth=board.acc_depth)
    assert any(op.tile is not None for op in p.ops)  # (the board's buffers: some blocks run as tiles)
    idx, x = select_images(art, 1, seed=0)
    stream = (qspi_stream(clock_hz=board.freq_mhz * 1e6, lines=4 if board.flash_quad else 1) if memory == "flash"
              else sdram_stream(clock_hz=board.freq_mhz * 1e6))
    rep = verify_cxx(p, idx, x, delay=art.delay, stream=stream)
    assert rep.summary() == "1 passed, 0 failed", rep.checks[0].line()
    c, m = rep.checks[0], rep.golden["models"][0]
    assert c.cycles == c.model_cycles and c.sops == m.sops and c.spikes == m.spikes
    if memory == "flash":
        assert m.wait_cycles > c.cycles // 2  # the flash bounds it: the weights stream at 1/16 byte a cycle
    else:
        assert m.wait_cycles < c.cycles // 10 and m.bound == "compute"  # a byte a cycle: the lanes bound it


def _stream(spec: dict):
    return rom_stream(spec["byte_cycles"]) if "byte_cycles" in spec else qspi_stream(**spec)


@pytest.fixture(scope="module", params=sorted(STREAMS))
def timed(request, prog, images):
    idx, x = images
    spec = STREAMS[request.param]
    return request.param, verify_cxx(prog, idx, x, delay=3, stream=_stream(spec), trace_cycles=TRACE_CYCLES)


def test_other_stream_timings_bit_exact_with_cycles_equal_to_the_model(timed, report):
    which, rep = timed
    bad = [c.line() for c in rep.checks if not c.ok]
    assert not bad, "\n".join(bad)
    t = _stream(STREAMS[which]).timing
    assert rep.stream["timing"] == t.name and rep.stream["untaken"] == 0
    assert (rep.stream["latency"], rep.stream["byte_cycles"]) == (t.latency, t.byte_cycles)
    assert rep.build_s == 0  # the timing is the run's input: the build of the RomStream report serves
    for c, m in zip(rep.checks, rep.golden["models"]):
        assert c.cycles == c.model_cycles and m.wait_cycles > 0
    for key in ("logits", "prediction", "sops", "spikes", "spk"):  # only the waits for weights differ
        assert np.array_equal(rep.hw[key], report.hw[key]), key


def test_the_qspi_timing_records_what_the_cocotb_flash_bench_does(timed, prog, images):
    """Quad at 50 MHz: the cocotb bench through the QSPI reader and the flash model
    (``verify(backend="flash")``, as ``tests/test_accel_verify_cocotb.py``) records the same."""
    from csdformer.sim.verify import verify

    which, rep = timed
    if which != "qspi-x4-50MHz":
        pytest.skip("the cocotb flash bench of the CI suite is the quad one")
    idx, x = images
    flash = verify(prog, idx, x, delay=3, backend="flash", **STREAMS[which])
    assert set(flash.hw) == set(rep.hw)
    for key in flash.hw:
        assert np.array_equal(flash.hw[key], rep.hw[key]), key


def _replay(trace: np.ndarray, bus, top) -> np.ndarray:
    """Drive the recorded ``cmd`` (valid, payload) of every cycle into ``bus`` of ``top`` (its
    backend) with ``data.ready`` 1, from reset; the rows it answers: cmd.ready, data.valid,
    data.payload."""
    from amaranth.sim import Simulator

    out = np.zeros((len(trace), 3), dtype=np.int64)
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def bench(ctx):
        ctx.set(bus.data.ready, 1)
        for c, (valid, payload) in enumerate(trace[:, [0, 2]].tolist()):
            ctx.set(bus.cmd.valid, valid)
            ctx.set(bus.cmd.payload, payload)
            out[c] = (ctx.get(bus.cmd.ready), ctx.get(bus.data.valid), ctx.get(bus.data.payload))
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    return out


def test_the_bench_stream_answers_as_the_amaranth_backend(timed, report, prog):
    """The bus of the run's first cycles (the C++ model's answers to the accelerator's commands),
    replayed into the Amaranth backend: RomStream, or the QSPI reader driving the flash model; and
    RomStream(byte_cycles=1) for the default run."""
    from amaranth.hdl import Module
    from amaranth.lib.wiring import connect

    from csdformer.hw.qspi import QspiFlashReader
    from csdformer.hw.weightstream import RomStream
    from csdformer.sim.flash_model import SpiFlashModel

    image = build_image(prog)
    which, rep = timed
    runs = [(STREAMS[which], rep)] + ([(dict(byte_cycles=1), report)] if which == "rom-3" else [])
    for spec, rep in runs:
        trace = rep.trace
        assert trace.shape == (TRACE_CYCLES, 5)
        m = Module()
        if "byte_cycles" in spec:
            m.submodules.store = store = RomStream(image, byte_cycles=spec["byte_cycles"])
            bus, init = store.bus, 0
        else:
            m.submodules.reader = reader = QspiFlashReader(**spec)
            # the flash model wakes sooner than the reader waits (as sim/testbed.py builds it)
            m.submodules.flash = flash = SpiFlashModel(image, t_res_cycles=min(16, reader.init_cycles))
            connect(m, reader.pins, flash.pins)
            bus, init = reader.bus, reader.init_cycles
        out = _replay(trace, bus, m)
        shakes = np.flatnonzero(trace[:, 0] & trace[:, 1])
        assert len(shakes) >= 4 and shakes[0] == init  # the loader's first command waits for the wake-up
        assert np.array_equal(out[:, 0], trace[:, 1]), "cmd.ready"
        differ = np.flatnonzero(out[:, 1] != trace[:, 3])
        assert not len(differ), f"{spec}: data.valid differs first in cycle {differ[0]}"
        beats = trace[:, 3] == 1
        assert beats.sum() > 1000 and np.array_equal(out[beats, 2], trace[beats, 4]), "data.payload"
