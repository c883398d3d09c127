"""Quick Amaranth-simulator tests of the UART (hw/uart.py) and the hardware CRC (hw/crc16.py)."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from csdformer.firmware.protocol import crc16
from csdformer.hw import HwParamError
from csdformer.hw.crc16 import INIT, crc16_byte
from csdformer.hw.uart import UARTRx, UARTTx


def test_crc16_byte_matches_protocol():
    crc_in, byte = Signal(16), Signal(8)
    out = Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_byte(crc_in, byte))
    rng = random.Random(1)
    cases = [(INIT, b) for b in range(256)] + [(rng.randrange(65536), rng.randrange(256)) for _ in range(200)]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc_in, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc16(bytes([b]), c), (c, b)
        crc = INIT
        for b in b"123456789":
            ctx.set(crc_in, crc)
            ctx.set(byte, b)
            crc = ctx.get(out)
        assert crc == 0x29B1

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_uart_loopback(divisor):
    """TX pin wired to RX pin: every byte comes back, at about one byte per 10 bit times."""
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor=divisor)
    m.submodules.rx = rx = UARTRx(divisor=divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80] + [random.Random(divisor).randrange(256) for _ in range(10)]
    got = []

    async def source(ctx):
        for b in data:
            ctx.set(tx.data.payload, b)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)

    async def sink(ctx):
        ctx.set(rx.data.ready, 1)
        for _ in range(len(data) * 11 * divisor + 50):
            _, _, valid, payload, ferr = await ctx.tick().sample(rx.data.valid, rx.data.payload, rx.framing_error)
            assert not ferr
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert got == data


def _bits(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def test_uart_rx_framing_error_glitch_and_slow_sender():
    """A glitch is no start bit; a 0 stop bit drops the byte; a sender 4 % slow is still read."""
    d = 10
    rx = UARTRx(divisor=d)
    # (bit values, cycles per bit)
    wave = [([0], 2), ([1] * 5, d)]  # glitch shorter than half a bit, then idle
    wave += [(_bits(0x3C, stop=0), d), ([1] * 3, d)]  # framing error, then idle
    wave += [(_bits(0xC3), d), (_bits(0x96), d + 0.4)]  # exact, then 4 % slow
    got, ferr = [], []

    async def bench(ctx):
        ctx.set(rx.data.ready, 1)
        t, cycle = 0.0, 0
        for bits, per in wave:
            for b in bits:
                t += per
                while cycle < t:
                    ctx.set(rx.rx, b)
                    _, _, valid, payload, fe = await ctx.tick().sample(rx.data.valid, rx.data.payload, rx.framing_error)
                    cycle += 1
                    if valid:
                        got.append(payload)
                    ferr.append(fe)
        ctx.set(rx.rx, 1)
        for _ in range(3 * d):
            _, _, valid, payload = await ctx.tick().sample(rx.data.valid, rx.data.payload)
            if valid:
                got.append(payload)

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [0xC3, 0x96]
    assert sum(ferr) == 1


@pytest.mark.parametrize("cls", [UARTRx, UARTTx])
def test_uart_bad_divisor(cls):
    with pytest.raises(HwParamError, match="divisor"):
        cls(divisor=3)
