"""The QSPI flash backend of the weight stream (hw/qspi.py) against the flash model
(sim/flash_model.py), in the Amaranth simulator; the model alone against a bit-banged master
written here from the W25Q128JV datasheet, and against cocotbext-qspi's master in Icarus.

Every bench proves it can fail: the reader bench with one bit of the model's image flipped, the
model benches with a command the model must refuse."""

import importlib.util
import random
import shutil

import numpy as np

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from csdformer.hw.common import HwParamError, verilog_text
from csdformer.hw.qspi import QspiFlashReader, QspiPins
from csdformer.sim.flash_model import JEDEC_ID, SpiFlashModel

CLOCK_HZ = 100e6
T_RES = 40  # model and reader: short, to keep the runs small (the default is 300 at 100 MHz)


def image_of(size: int, seed: int = 0) -> bytes:
    return bytes(random.Random(seed).randrange(256) for _ in range(size))


# --- reader + model --------------------------------------------------------------------------------

def run_reader(reader, model, script, *, seed=0, limit=20_000):
    """Run ``script`` on ``reader`` wired to ``model``. Steps: ``("cmd", addr)`` (one cycle, data not
    ready), ``("take", n, p_ready)`` (``n`` beats, ``data.ready`` high with probability
    ``p_ready`` each cycle), ``("stall", cycles)`` (not ready; records SCK and CS).

    Returns ``{"init": first cycle with cmd.ready, "reads": [[(byte, cycle after cmd), ...], ...],
    "stalls": [[(sck, cs), ...], ...], "error": model.error, "qe": model.qe}``.
    """
    m = Module()
    m.submodules.reader = reader
    m.submodules.model = model
    wiring.connect(m, reader.pins, model.pins)
    bus = reader.bus
    res = {"reads": [], "stalls": []}

    async def bench(ctx):
        rng = random.Random(seed)
        n = 0
        while not ctx.get(bus.cmd.ready):
            await ctx.tick()
            n += 1
            assert n < limit, "cmd never ready"
        res["init"] = n
        t = 0
        for step in script:
            if step[0] == "cmd":
                assert ctx.get(bus.cmd.ready)
                ctx.set(bus.cmd.payload, step[1])
                ctx.set(bus.cmd.valid, 1)
                ctx.set(bus.data.ready, 0)
                await ctx.tick()
                ctx.set(bus.cmd.valid, 0)
                res["reads"].append([])
                t = 1
            elif step[0] == "take":
                beats = res["reads"][-1]
                goal = len(beats) + step[1]
                while len(beats) < goal:
                    ready = rng.random() < step[2]
                    ctx.set(bus.data.ready, ready)
                    if ready and ctx.get(bus.data.valid):
                        beats.append((ctx.get(bus.data.payload), t))
                    await ctx.tick()
                    t += 1
                    assert t < limit, f"no beat {len(beats)} within {limit} cycles"
                ctx.set(bus.data.ready, 0)
            else:
                trace = []
                for _ in range(step[1]):
                    trace.append((ctx.get(reader.pins.sck), ctx.get(reader.pins.cs)))
                    await ctx.tick()
                    t += 1
                res["stalls"].append(trace)
        res["error"], res["qe"] = ctx.get(model.error), ctx.get(model.qe)

    sim = Simulator(m)
    sim.add_clock(1 / CLOCK_HZ)
    sim.add_testbench(bench)
    sim.run()
    return res


def expected(image: bytes, addr: int, n: int) -> list[int]:
    """The flash's bytes from ``addr``: past the image erased (0xFF), wrapping at 16 MB."""
    return [image[a] if a < len(image) else 0xFF for a in ((addr + i) % (1 << 24) for i in range(n))]


def mismatches(res, image, reads) -> int:
    """Bytes of ``res`` that differ from the image, for ``reads`` = [(addr, n), ...]."""
    bad = 0
    for (addr, n), beats in zip(reads, res["reads"], strict=True):
        got = [b for b, _ in beats]
        bad += len(got) != n
        bad += sum(g != e for g, e in zip(got, expected(image, addr, n)))
    return bad


def reader(lines, divisor, **kw):
    return QspiFlashReader(clock_hz=CLOCK_HZ, divisor=divisor, lines=lines, t_res_cycles=T_RES, **kw)


def model(image, **kw):
    return SpiFlashModel(image, t_res_cycles=T_RES, **kw)


def random_reads(rng, size, count, longest):
    return [(rng.randrange(size), rng.randint(1, longest)) for _ in range(count)]


def read_script(reads, p_ready=1.0):
    return [s for addr, n in reads for s in (("cmd", addr), ("take", n, p_ready))]


@pytest.mark.parametrize("lines", [1, 4])
@pytest.mark.parametrize("divisor", [1, 2, 3])
def test_reads_are_bit_exact_and_timing_is_exact(lines, divisor):
    """Random ranges of a random image, always-ready user: every byte right, the first beat exactly
    ``timing.latency`` cycles after the cmd, then exactly one every ``timing.byte_cycles``."""
    image = image_of(3000, seed=lines * 10 + divisor)
    rng = random.Random(divisor)
    reads = random_reads(rng, len(image), 3, 24 if lines == 1 else 48) + [(len(image) - 3, 6)]  # off the end
    r = reader(lines, divisor)
    res = run_reader(r, model(image), read_script(reads))
    assert mismatches(res, image, reads) == 0
    assert res["init"] == r.init_cycles
    assert res["error"] == 0 and res["qe"] == (lines == 4)
    tm = r.timing
    assert tm.byte_cycles == (4 if lines == 4 else 16) * divisor
    for beats in res["reads"]:
        cycles = [c for _, c in beats]
        assert cycles[0] == tm.latency
        assert all(b - a == tm.byte_cycles for a, b in zip(cycles, cycles[1:]))
        assert cycles[-1] == tm.read_cycles(len(cycles))


def inspected(unit):
    """A unit made to read its properties, never built (no UnusedElaboratable warning)."""
    unit._MustUse__silence = True
    return unit


def test_timing_formulas():
    r = inspected(reader(4, 2))
    g = r.gap_cycles
    assert g == 5  # ceil(50 ns * 100 MHz)
    assert (r.timing.latency, r.timing.byte_cycles) == (1 + g + 2 * 2 * (32 + 8 + 2) + 2, 8)
    assert r.init_cycles == 3 * g + 64 * 2 + T_RES
    r1 = inspected(reader(1, 3))
    assert (r1.timing.latency, r1.timing.byte_cycles) == (1 + g + 2 * 3 * (32 + 8 + 8) + 2, 48)
    assert r1.init_cycles == g + 16 * 3 + T_RES
    assert inspected(QspiFlashReader(clock_hz=12e6)).t_res_cycles == 36  # 3 µs at 12 MHz


@pytest.mark.parametrize("lines, divisor", [(4, 1), (1, 1), (4, 3)])
def test_backpressure_loses_nothing_and_stops_sck(lines, divisor):
    """Random ready: the right bytes. A long stall: SCK stops low, CS stays selected; then the read
    goes on where it stopped."""
    image = image_of(2000, seed=7)
    rng = random.Random(lines + divisor)
    reads = random_reads(rng, len(image), 2, 20)
    script = read_script(reads, p_ready=0.3)
    script += [("cmd", 100), ("take", 3, 1.0), ("stall", 300), ("take", 12, 0.5)]
    res = run_reader(reader(lines, divisor), model(image), script)
    assert mismatches(res, image, reads + [(100, 15)]) == 0
    settled = res["stalls"][0][150:]
    assert settled == [(0, 1)] * len(settled)


@pytest.mark.parametrize("lines", [1, 4])
def test_new_cmd_mid_read_restarts(lines):
    """A cmd at any point of a read (mid-byte, a byte waiting, during the address) ends it: the next
    beats are the new range, the first one exactly ``latency`` after the cmd."""
    image = image_of(2000, seed=3)
    r = reader(lines, 1)
    script, reads = [], []
    rng = random.Random(lines)
    for k in range(8):
        addr = rng.randrange(len(image))
        script += [("cmd", addr), ("take", 2, 1.0), ("stall", rng.randrange(0, 40))]
        reads.append((addr, 2))
        script += [("cmd", addr ^ 0x55), ("stall", rng.randrange(0, r.timing.latency))]  # ended before data
        reads.append((addr ^ 0x55, 0))
    script += [("cmd", 1999), ("take", 3, 1.0)]
    reads.append((1999, 3))
    res = run_reader(r, model(image), script)
    assert mismatches(res, image, reads) == 0
    assert all(beats[0][1] == r.timing.latency for beats in res["reads"] if beats)
    assert res["error"] == 0


def test_bench_catches_one_flipped_bit():
    """The reader bench fails when the model's image has one bit flipped inside a range read."""
    image = image_of(1000, seed=5)
    flipped = bytearray(image)
    flipped[503] ^= 0x10
    reads = [(500, 8)]
    for lines in (1, 4):
        res = run_reader(reader(lines, 1), model(bytes(flipped)), read_script(reads))
        assert mismatches(res, image, reads) == 1
        assert mismatches(res, bytes(flipped), reads) == 0


def test_reader_too_fast_after_wakeup_or_without_qe_reads_nothing():
    """The model enforces what the reader's start-up provides: a read within ``tRES1`` of 0xAB, or a
    quad read without QE, is refused (the lines float high: 0xFF)."""
    image = bytes(range(64))
    reads = [(8, 4)]
    short = QspiFlashReader(clock_hz=CLOCK_HZ, lines=1, t_res_cycles=1)
    res = run_reader(short, model(image, powered_down=True, **{}), read_script(reads))
    assert [b for b, _ in res["reads"][0]] == [0xFF] * 4  # reader waited 1 + gap cycles, model 40
    noqe = reader(4, 1, quad_enable=False)
    res = run_reader(noqe, model(image), read_script(reads))
    assert [b for b, _ in res["reads"][0]] == [0xFF] * 4 and res["qe"] == 0
    res = run_reader(reader(4, 1, quad_enable=False), model(image, qe=True), read_script(reads))
    assert [b for b, _ in res["reads"][0]] == [8, 9, 10, 11]  # QE already set (non-volatile)


@pytest.mark.parametrize("kw, msg", [
    ({"divisor": 0}, "divisor: must be >= 1"),
    ({"divisor": 1.5}, "divisor: must be an integer"),
    ({"lines": 2}, "lines: must be 1 or 4"),
    ({"quad_enable": "yes"}, "quad_enable: must be a bool"),
    ({"clock_hz": 0}, "clock_hz: must be a positive number"),
    ({"t_res_cycles": 0}, "t_res_cycles: must be >= 1"),
])
def test_bad_reader_parameters(kw, msg):
    args = {"clock_hz": CLOCK_HZ, **kw}
    with pytest.raises(HwParamError) as e:
        QspiFlashReader(**args)
    assert str(e.value).startswith(msg) and "\n" not in str(e.value)


def test_bad_model_parameters():
    for args, kw, msg in [((b"x" * ((1 << 24) + 1),), {}, "image: 16777217 bytes"),
                          (("text",), {}, "image: must be bytes"),
                          ((b"",), {"qe": 1}, "qe: must be a bool"),
                          ((b"",), {"t_res_cycles": -1}, "t_res_cycles: must be >= 0")]:
        with pytest.raises(HwParamError, match=msg) as e:
            SpiFlashModel(*args, **kw)
        assert "\n" not in str(e.value)


# --- the model alone, against a bit-banged master --------------------------------------------------

class BitBang:
    """A SPI mode-0 master driving :class:`SpiFlashModel`'s pins from a testbench, written from the
    W25Q128JV datasheet: SCK half-period ``half`` cycles, output changed while SCK is low, input
    sampled just before each rising edge."""

    def __init__(self, ctx, pins, half=2):
        self.ctx, self.pins, self.half = ctx, pins, half

    async def wait(self, n):
        for _ in range(n):
            await self.ctx.tick()

    async def clock(self, out=None, lines=1, oe=None):
        """One SCK period; drive ``out`` on IO0 (``lines=1``) or IO0-3; returns IO sampled at the
        rising edge."""
        if oe is None:
            oe = 0 if out is None else (0b1101 if lines == 1 else 0b1111)
        self.ctx.set(self.pins.io_oe, oe)
        self.ctx.set(self.pins.io_o, (out or 0) | (0b1100 if lines == 1 else 0))
        await self.wait(self.half)
        got = self.ctx.get(self.pins.io_i)
        self.ctx.set(self.pins.sck, 1)
        await self.wait(self.half)
        self.ctx.set(self.pins.sck, 0)
        return got

    async def command(self, op, addr=None, *, addr_lines=1, mode=False, dummy=0, read=0, data_lines=1,
                      write=()):
        """One transaction: returns the ``read`` bytes."""
        self.ctx.set(self.pins.cs, 1)
        bits = [(op >> (7 - i)) & 1 for i in range(8)]
        for b in bits:
            await self.clock(b)
        if addr is not None:
            step = addr_lines
            for i in range(24 // step):
                await self.clock((addr >> (24 - step * (i + 1))) & ((1 << step) - 1), step)
            if mode:
                for nib in (0x0, 0x0):  # mode byte 00: no continuous read
                    await self.clock(nib, 4)
        for byte in write:
            for i in range(8):
                await self.clock((byte >> (7 - i)) & 1)
        for _ in range(dummy):
            await self.clock(None)
        out = []
        for _ in range(read):
            v = 0
            for _ in range(8 // data_lines):
                io = await self.clock(None)
                v = (v << 1) | ((io >> 1) & 1) if data_lines == 1 else (v << 4) | io
            out.append(v)
        await self.wait(self.half)
        self.ctx.set(self.pins.cs, 0)
        await self.wait(6)
        return out


def run_model(flash, body):
    res = {}

    async def bench(ctx):
        await body(BitBang(ctx, flash.pins), res)
        res["error"] = ctx.get(flash.error)

    sim = Simulator(flash)
    sim.add_clock(1 / CLOCK_HZ)
    sim.add_testbench(bench)
    sim.run()
    return res


def test_model_commands_against_the_datasheet():
    image = image_of(512, seed=11)

    async def body(bb, res):
        res["asleep_id"] = await bb.command(0x9F, read=3)  # powered down: refused
        res["asleep_read"] = await bb.command(0x03, 16, read=4)
        await bb.command(0xAB)
        res["too_soon"] = await bb.command(0x03, 16, read=4)  # within tRES1
        await bb.wait(T_RES)
        res["id"] = await bb.command(0x9F, read=3)
        res["read"] = await bb.command(0x03, 500, read=16)  # runs off the image end
        res["fast"] = await bb.command(0x0B, 100, dummy=8, read=5)
        res["quad_noqe"] = await bb.command(0x6B, 100, dummy=8, read=2, data_lines=4)
        res["quadio_noqe"] = await bb.command(0xEB, 100, addr_lines=4, mode=True, dummy=4, read=2, data_lines=4)
        await bb.command(0x31, write=(0x02,))  # no write enable: ignored
        res["qe_unenabled"] = await bb.command(0x6B, 100, dummy=8, read=2, data_lines=4)
        await bb.command(0x50)
        await bb.command(0x31, write=(0x02,))
        res["quad"] = await bb.command(0x6B, 200, dummy=8, read=6, data_lines=4)
        res["quadio"] = await bb.command(0xEB, 300, addr_lines=4, mode=True, dummy=4, read=6, data_lines=4)
        await bb.command(0xB9)
        res["down_again"] = await bb.command(0x0B, 100, dummy=8, read=2)

    res = run_model(model(image), body)
    ff = lambda n: [0xFF] * n  # noqa: E731
    assert res["asleep_id"] == ff(3) and res["asleep_read"] == ff(4) and res["too_soon"] == ff(4)
    assert res["id"] == list(JEDEC_ID)
    assert res["read"] == expected(image, 500, 16)
    assert res["fast"] == list(image[100:105])
    assert res["quad_noqe"] == ff(2) and res["quadio_noqe"] == ff(2) and res["qe_unenabled"] == ff(2)
    assert res["quad"] == list(image[200:206]) and res["quadio"] == list(image[300:306])
    assert res["down_again"] == ff(2)
    assert res["error"] == 0


def test_model_flags_contention():
    """A master that keeps driving IO1 while the flash answers sets ``error``."""
    async def body(bb, res):
        await bb.command(0xAB)
        await bb.wait(T_RES)
        bb.ctx.set(bb.pins.cs, 1)
        for i in range(8):
            await bb.clock((0x9F >> (7 - i)) & 1)
        for _ in range(8):
            await bb.clock(0, oe=0b1111)  # IO1 driven by both
        bb.ctx.set(bb.pins.cs, 0)
        await bb.wait(4)

    assert run_model(model(b"\x00"), body)["error"] == 1


def test_model_exports_to_verilog():
    text = verilog_text(SpiFlashModel(image_of(64)), "flash_model")
    for port in ("pins__sck", "pins__cs", "pins__io_o", "pins__io_oe", "pins__io_i", "error"):
        assert port in text


# --- the model against cocotbext-qspi's master (Icarus) --------------------------------------------

class QspiPeerTop(wiring.Component):
    """Test fixture: :class:`SpiFlashModel` with the pins cocotbext-qspi's bus expects (``csb``
    active low, ``io_out``/``io_oe`` from the master, ``io`` the lines)."""

    sck: In(1)
    csb: In(1)
    io_out: In(4)
    io_oe: In(4)
    io: Out(4)
    error: Out(1)

    def __init__(self, image):
        self.flash = SpiFlashModel(image, t_res_cycles=T_RES)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.flash = f = self.flash
        m.d.comb += [f.pins.sck.eq(self.sck), f.pins.cs.eq(~self.csb), f.pins.io_o.eq(self.io_out),
                     f.pins.io_oe.eq(self.io_oe), self.io.eq(f.pins.io_i), self.error.eq(f.error)]
        return m


needs_qspi_peer = pytest.mark.skipif(
    shutil.which("iverilog") is None or importlib.util.find_spec("cocotbext.qspi") is None,
    reason="needs iverilog and cocotbext-qspi (pip install cocotbext-qspi)")


@needs_qspi_peer
@pytest.mark.parametrize("corrupt", [False, True])
def test_model_against_cocotbext_qspi_master(corrupt):
    """cocotbext-qspi's QspiFlash driver (an independent JEDEC master) reads the model's JEDEC ID and
    data with 0x03 and 0xEB: equal to the image. With one bit of the model's image flipped the
    bench fails on exactly that byte."""
    from csdformer.sim.benchlib.runner import run_bench

    image = image_of(1024, seed=21)
    bad = bytearray(image)
    bad[0x105] ^= 0x01
    meta = {"sck_ns": 160, "t_res_cycles": T_RES, "reads_03": [[0x100, 8], [1020, 4]], "reads_eb": [[0x103, 6], [7, 5]]}
    res = run_bench(QspiPeerTop(bytes(bad) if corrupt else image), "qspi_peer", "csdformer.sim.benches.qspi_peer",
                    data={"image": np.frombuffer(image, dtype=np.uint8)}, meta=meta, sim="icarus")
    if corrupt:
        assert not res.passed and res.result["mismatches"] == 2, res.summary()  # read by 0x03 and by 0xEB
    else:
        assert res.passed and res.result["compared"] == 3 + 12 + 11 and res.result["model_error"] == 0, res.summary()


# --- board pins ---------------------------------------------------------------------------------------

class FlashCore(wiring.Component):
    """Test fixture, not the real core: a QspiFlashReader reading from address ``rx`` toggles, its
    bytes' parity on ``tx``."""

    rx: In(1)
    tx: Out(1, init=1)
    flash: Out(QspiPins())

    def __init__(self, sync_hz, lines):
        self.reader = QspiFlashReader(clock_hz=sync_hz, lines=lines)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = r = self.reader
        wiring.connect(m, wiring.flipped(self.flash), r.pins)
        m.d.comb += [r.bus.cmd.valid.eq(~self.rx), r.bus.cmd.payload.eq(0x20000), r.bus.data.ready.eq(1)]
        with m.If(r.bus.data.valid):
            m.d.sync += self.tx.eq(r.bus.data.payload.xor())
        return m


@pytest.mark.parametrize("board, text", [
    ("icebreaker", ["set_io spi_flash_4x_0__cs__io 16", "set_io spi_flash_4x_0__clk__io 15",
                    "set_io spi_flash_4x_0__dq__io[0] 14", "set_io spi_flash_4x_0__dq__io[3] 13"]),
    ("ulx3s-85f", ['"spi_flash_0__cs__io" SITE "R2"', '"spi_flash_0__copi__io" SITE "W2"',
                   '"spi_flash_0__cipo__io" SITE "V2"', '"spi_flash_0__wp__io" SITE "Y2"']),
    ("orangecrab-25f", ['"spi_flash_4x_0__cs__io" SITE "U17"', '"spi_flash_4x_0__dq__io[0]" SITE "U18"',
                        '"spi_flash_4x_0__dq__io[3]" SITE "N18"']),
])
def test_flash_pins_on_each_board(board, text):
    """BoardTop wires a core's ``flash`` to each board's flash (elaboration and Verilog only, no
    synthesis): the pins in the constraints, SCK through USRMCLK on ECP5, quad where the board can."""
    from csdformer.boards.soc import BoardTop
    from csdformer.boards.targets import get_board

    b = get_board(board)
    lines = 4 if b.flash_quad else 1
    top = BoardTop(lambda hz: FlashCore(hz, lines), b)
    plan = b.platform().build(top, name="top", do_build=False)
    pins = plan.files["top.pcf" if b.family == "ice40" else "top.lpf"]
    for t in text:
        assert t in pins, t
    assert ("cell \\USRMCLK" in plan.files["top.il"]) == (b.family == "ecp5")
    assert "U16" not in pins  # OrangeCrab: the configuration clock pin is reached through USRMCLK only
    assert b.model_offset % 0x10000 == 0 and 0 < b.model_offset < b.flash_bytes and b.flash_parts


def test_flash_pins_refuses_quad_on_a_single_line_board():
    from csdformer.boards.flash import flash_pins
    from csdformer.boards.targets import get_board

    with pytest.raises(HwParamError, match=r"^lines: the flash of ULX3S_85F_Platform is wired for 1 data line\(s\), not 4$"):
        flash_pins(inspected(Module()), get_board("ulx3s-85f").platform(), QspiPins().create(), lines=4)
