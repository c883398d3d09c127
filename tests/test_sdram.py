"""The SDRAM weight stream (hw/sdram.py) against the timing-checking SDRAM model
(sim/sdram_model.py), in Amaranth's simulator: the flash image copied after reset (as long as its
header says, clamped), then reads at odd and even addresses across row ends and refreshes, each
byte equal to the image's and handed out exactly ``latency + i`` cycles after the ``cmd``, with the
model reporting no violation; a controller built for a faster part than the model's must be
caught."""

from __future__ import annotations

import dataclasses
import random
import struct

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped
from amaranth.sim import Simulator

from csdformer.hw.qspi import QspiFlashReader, QspiPins
from csdformer.hw.sdram import AS4C32M16SB, SdramCmd, SdramPins, SdramStream
from csdformer.hw.weightstream import RomStream
from csdformer.sim.sdram_model import PinRegisters, SdramModel, Violation

CLOCK = 100e6
# The chip's own timing, but a 2 µs power-up wait (simulation time); and a page of 16 words, so
# that short reads cross row ends (the controller keeps one row open).
FAST_INIT = dataclasses.replace(AS4C32M16SB, t_init=2e3)
SMALL_PAGE = dataclasses.replace(FAST_INIT, name="small page", cols=16, rows=8192 * 64)


def image_of(n: int, length: int | None = None, seed: int = 1) -> bytes:
    """``n`` random bytes whose header (bytes 16-19) says ``length`` (default ``n``)."""
    body = bytearray(random.Random(seed).randbytes(n))
    body[16:20] = struct.pack("<I", n if length is None else length)
    return bytes(body)


def rig(image: bytes, *, part=SMALL_PAGE, model_part=None, max_bytes=1 << 24, words=1 << 14, clock_hz=CLOCK,
        io_registers=False):
    """``io_registers``: the controller as the board builds it, its pin registers outside it
    (:class:`PinRegisters` standing in for the FPGA's I/O cells)."""
    m = Module()
    m.submodules.rom = rom = RomStream(image, byte_cycles=3)  # a slow source, as the flash is
    m.submodules.sdram = sdram = SdramStream(clock_hz=clock_hz, part=part, max_bytes=max_bytes,
                                             io_registers=io_registers)
    m.submodules.model = model = SdramModel(words=words, clock_hz=clock_hz, part=model_part or part)
    connect(m, sdram.source, rom.bus)
    if io_registers:
        m.submodules.io = io = PinRegisters(sdram.row_bits, sdram.bank_bits)
        connect(m, sdram.pins, io.ctl)
        connect(m, io.chip, model.pins)
    else:
        connect(m, sdram.pins, model.pins)
    return m, sdram, model


async def copied(ctx, sdram, model, limit=200_000):
    n = 0
    while not ctx.get(sdram.bus.cmd.ready):
        await ctx.tick()
        n += 1
        assert not ctx.get(model.error), f"model: {ctx.get(model.violation)} during the copy"
        assert n < limit, "the copy did not end"
    return n


async def read(ctx, sdram, addr: int, n: int) -> list[tuple[int, int]]:
    """(cycle after the handshake, byte) of ``n`` bytes from ``addr``, the user always ready."""
    bus = sdram.bus
    ctx.set(bus.data.ready, 1)
    ctx.set(bus.cmd.payload, addr)
    ctx.set(bus.cmd.valid, 1)
    await ctx.tick()  # the handshake (ready is high while serving)
    ctx.set(bus.cmd.valid, 0)
    got, cycle = [], 0
    while len(got) < n:
        cycle += 1
        valid, byte = ctx.get(bus.data.valid), ctx.get(bus.data.payload)
        if valid:
            got.append((cycle, byte))
        await ctx.tick()
        assert cycle < sdram.latency + 4 * n + 100, f"read at {addr}: {len(got)} of {n} bytes"
    return got


@pytest.mark.parametrize("io_registers", [False, True], ids=["registers-inside", "io-registers"])
def test_copy_then_reads_exact_in_time_and_data(io_registers):
    img = image_of(1500)
    m, sdram, model = rig(img, io_registers=io_registers)
    rng = random.Random(7)
    reads = [(addr, n, rng.randrange(0, 900)) for addr, n in
             [(0, 64), (1, 40), (31, 5), (30, 70), (1499 - 10, 11), (rng.randrange(1400) | 1, 100)]
             + [(rng.randrange(1400), rng.randrange(1, 100)) for _ in range(12)]]

    async def bench(ctx):
        await copied(ctx, sdram, model)
        for addr, n, idle in reads:
            for _ in range(idle):  # refreshes fall at every phase of a read
                await ctx.tick()
            got = await read(ctx, sdram, addr, n)
            assert [c for c, _ in got] == [sdram.latency + i for i in range(n)], f"read at {addr}: timing"
            assert bytes(b for _, b in got) == img[addr:addr + n], f"read at {addr}: data"
            assert not ctx.get(model.error), f"model: {ctx.get(model.violation)} after the read at {addr}"
        # a read that runs for several refresh periods (7.8 µs each) and many rows
        got = await read(ctx, sdram, 2, 1498)
        assert [c for c, _ in got] == [sdram.latency + i for i in range(1498)]
        assert bytes(b for _, b in got) == img[2:]
        assert not ctx.get(model.error), f"model: {ctx.get(model.violation)}"

    sim = Simulator(m)
    sim.add_clock(1 / CLOCK)
    sim.add_testbench(bench)
    sim.run()


def test_the_worst_starts_a_young_row_a_refresh_and_a_row_end(clock_hz=CLOCK):
    """The worst starts: a read begun 0 to 6 cycles after another one that opened a row elsewhere
    (a young row: it may not close before its least open time), from the last word of a row (a row
    change at once), each at every cycle from 4 before to 26 after a refresh falls due: its first
    byte exactly ``latency`` cycles on, then one a cycle, no violation. The real part's page (1,024
    words), at the ULX3S's 100 MHz (the whole-network tests run it at 50), built as the board builds
    it (its I/O registers). A latency one cycle less fails (the -7 grade's timing at 100 MHz: 41 of
    42)."""
    img = image_of(6200)
    m, sdram, model = rig(img, part=FAST_INIT, clock_hz=clock_hz, io_registers=True)
    bus = sdram.bus

    async def to_refresh(ctx):  # on until a REFRESH is on the pins: 3 cycles after it fell due
        n = 0
        while ctx.get(sdram.pins.cmd) != SdramCmd.REFRESH:
            await ctx.tick()
            n += 1
        return n

    async def bench(ctx):
        await copied(ctx, sdram, model)
        for d in range(-26, 5):
            for k in range(7):
                await to_refresh(ctx)
                await ctx.tick()
                for _ in range(sdram.t.refi - 3 + d - k - 2):  # the other read's handshake ...
                    await ctx.tick()
                ctx.set(bus.cmd.payload, 4100 + 2 * k)  # ... another row (bank 2)
                ctx.set(bus.cmd.valid, 1)
                await ctx.tick()
                ctx.set(bus.cmd.valid, 0)
                for _ in range(k):
                    await ctx.tick()
                addr = 2046 + k % 2  # the last word of bank 0's row 0; its handshake d cycles from the due
                got = await read(ctx, sdram, addr, 24)
                where = f"{d} cycles from the refresh, {k} after the other read"
                assert [c for c, _ in got] == [sdram.latency + i for i in range(24)], f"{where}: timing"
                assert bytes(b for _, b in got) == img[addr:addr + 24], f"{where}: data"
        assert not ctx.get(model.error), f"model: {ctx.get(model.violation)}"

    sim = Simulator(m)
    sim.add_clock(1 / clock_hz)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("length,copied_bytes", [(40, 40), (1 << 30, 256)], ids=["short", "clamped"])
def test_copy_takes_the_header_length_clamped(length, copied_bytes):
    img = image_of(600, length=length)
    m, sdram, model = rig(img, max_bytes=256)

    async def bench(ctx):
        await copied(ctx, sdram, model)
        got = await read(ctx, sdram, 0, 600)
        data = bytes(b for _, b in got)
        assert data[:copied_bytes] == img[:copied_bytes]
        assert data[copied_bytes:] == bytes(600 - copied_bytes), "bytes past the copy are the SDRAM's zeros"

    sim = Simulator(m)
    sim.add_clock(1 / CLOCK)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("change,violation", [
    ({"t_rcd": 8}, Violation.T_RCD), ({"t_rp": 8}, Violation.T_RP), ({"t_rfc": 30}, Violation.T_RFC),
    ({"t_ras": 20, "t_rc": 20}, Violation.T_RAS), ({"t_refi": 64e6 / 8192 * 3}, Violation.REFRESH_LATE),
    ({"cl": 2}, Violation.MODE), ({"t_init": 1e3}, Violation.INIT)])
def test_model_catches_a_controller_built_for_another_part(change, violation):
    m, sdram, model = rig(image_of(1500), part=dataclasses.replace(SMALL_PAGE, **change), model_part=SMALL_PAGE)

    async def bench(ctx):
        rng = random.Random(3)
        ctx.set(sdram.bus.data.ready, 1)
        for i in range(30_000):
            if ctx.get(model.error):
                break
            # once serving, a read of another place every few cycles: rows open and close often
            ctx.set(sdram.bus.cmd.valid, i % 4 == 0)
            ctx.set(sdram.bus.cmd.payload, rng.randrange(1400))
            await ctx.tick()
        assert ctx.get(model.error) and ctx.get(model.violation) == violation

    sim = Simulator(m)
    sim.add_clock(1 / CLOCK)
    sim.add_testbench(bench)
    sim.run()


# -- the board's side: the pins, their I/O registers, the chip's clock --------------------------------

class _SdramCore(wiring.Component):
    """Test fixture, not the real core: the flash reader and the SDRAM stream as the ULX3S's core
    wires them (``io_registers``), its reads started by ``rx`` and their parity on ``tx``."""

    def __init__(self, sync_hz):
        self.reader = QspiFlashReader(clock_hz=sync_hz, lines=1)
        self.stream = SdramStream(clock_hz=sync_hz, copy_base=0x300000, max_bytes=1 << 20, io_registers=True)
        super().__init__({"rx": In(1), "tx": Out(1, init=1), "flash": Out(QspiPins()), "sdram": Out(SdramPins())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader, m.submodules.stream = r, s = self.reader, self.stream
        connect(m, flipped(self.flash), r.pins)
        connect(m, s.source, r.bus)
        connect(m, flipped(self.sdram), s.pins)
        m.d.comb += [s.bus.cmd.valid.eq(~self.rx), s.bus.cmd.payload.eq(0x300000), s.bus.data.ready.eq(1)]
        with m.If(s.bus.data.valid):
            m.d.sync += self.tx.eq(s.bus.data.payload.xor())
        return m


def test_the_ulx3s_sdram_pins_io_registers_and_clock():
    """BoardTop wires a core's ``sdram`` to the ULX3S's chip (elaboration only): every line in
    the constraints at its ball, each through a register of its I/O cell (commands, address, mask
    and data out, the data's enable and its input), the chip's clock through an ODDRX1F."""
    from csdformer.boards.soc import BoardTop
    from csdformer.boards.targets import get_board

    b = get_board("ulx3s-85f")
    assert b.sdram is AS4C32M16SB
    plan = b.platform().build(BoardTop(_SdramCore, b), name="top", do_build=False)
    lpf, il = plan.files["top.lpf"], plan.files["top.il"]
    for name, site in [("clk", "F19"), ("clk_en", "F20"), ("cs", "P20"), ("we", "T20"), ("ras", "R20"),
                       ("cas", "T19"), ("ba__io[1]", "N20"), ("a__io[12]", "G19"), ("dq__io[15]", "J17"),
                       ("dqm__io[1]", "E20")]:
        port = name if "[" in name else f"{name}__io"
        assert f'"sdram_0__{port}" SITE "{site}"' in lpf, name
    assert il.count("cell \\ODDRX1F") == 1
    # each output line's value and its (constant, or dq's) enable: cs, ras, cas, we, cke (5), ba (2),
    # a (13), dqm (2), dq (16); and the clock's enable
    assert il.count("cell \\OFS1P3DX") == 2 * (5 + 2 + 13 + 2 + 16) + 1
    assert il.count("cell \\IFS1P3DX") == 16  # dq in


def test_a_streamed_model_reads_the_ulx3s_sdram_a_resident_one_the_flash():
    """The real core: the digits model streamed on the ULX3S (``csdformer build --stream``: its
    weights not on chip) gets the SDRAM, its cycle model the SDRAM's timing; resident (the
    default: they fit), it reads the flash once and has no SDRAM. A board without an SDRAM streams
    from its flash."""
    from csdformer.artifact import load
    from csdformer.boards.cli_build import board_program, resolve_artifact, streamed
    from csdformer.boards.sdram import report_note
    from csdformer.sim.benches.sdram_board import round_trip_window
    from csdformer.boards.soc import accelerator_core
    from csdformer.boards.targets import get_board

    art = load(resolve_artifact("digits"))
    ulx3s = get_board("ulx3s-85f")
    for board, want in [(streamed(ulx3s), "sdram-cl3"), (ulx3s, "qspi"), (streamed("orangecrab-25f"), "qspi")]:
        program = board_program(art, 8, board)
        core = accelerator_core(program, 868, board=board, clock_hz=100e6)
        for x in (core, core.accelerator, core.reader, core.soc, core.sdram_stream):
            if x is not None:
                x._MustUse__silence = True  # inspected, not built
        assert ("sdram" in core.signature.members) == (want == "sdram-cl3"), board.name
        assert core.timing.name.startswith(want), (board.name, core.timing)
        assert not program.resident if board is not ulx3s else program.resident
        if want == "sdram-cl3":
            assert core.sdram_stream.io_registers and core.sdram_stream.copy_base == board.model_offset
            assert core.timing.latency == 42 and core.timing.byte_cycles == 1  # the -7 grade at 100 MHz
        # the build report's note: the copy after reset (200 µs of power-up, then the image at the
        # single-line flash's 16 cycles a byte) and the pins' timing, unmeasured
        note = report_note(core, 26_339, 100e6)
        if want == "sdram-cl3":
            ms = (20_000 + core.reader.timing.latency + 26_338 * 16) / 100e6 * 1e3
            assert core.reader.timing.byte_cycles == 16 and round(ms) == 4
            assert note.startswith("weights from the SDRAM (AS4C32M16SB-7): the model is copied there from the flash "
                                   "after reset (26,339 bytes, about 4 ms at 100 MHz; `csdformer run` waits for it)")
            assert "not been tried on a board" in note and "simulated at the pins" in note
            lo, hi = round_trip_window()  # the window the note quotes is the bench's
            assert f"round trip of {lo:g} to {hi:g} ns" in note
        else:
            assert note is None
