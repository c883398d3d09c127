"""A behavioural model of a W25Q128JV-like JEDEC SPI flash, in Amaranth (for simulation).

:class:`SpiFlashModel` sits on the other side of :class:`csdformer.hw.qspi.QspiPins` from the
controller, in the same ``sync`` domain: it sees SCK as a signal and acts on the cycle after each
edge (it compares SCK with its value a cycle earlier), so it needs a clock several times faster
than SCK, as the reader's (2 cycles per SCK period and up) is. It also converts to Verilog (the
image lives in an :class:`amaranth.lib.memory.Memory`) so the cocotb benches can include it.

Modelled, in SPI mode 0 (sample IO on SCK rising, launch output on SCK falling):

- 0xAB release from deep power-down (takes effect when CS is deselected; then ``t_res_cycles``
  cycles before a command is obeyed; the device-ID form is not modelled), 0xB9 deep power-down;
- 0x9F JEDEC ID: EF 40 18, then 00;
- 0x03 read, 0x0B fast read (8 dummy clocks): data on IO1;
- 0x6B quad output fast read (address on IO0, 8 dummy clocks, data on IO0-3);
- 0xEB quad I/O fast read (address on IO0-3, a mode byte (2 clocks, ignored: no continuous-read
  mode), 4 dummy clocks, data on IO0-3);
- 0x06 write enable, 0x50 write enable for volatile status register, 0x31 write status register
  2 (8 bits, taking effect when CS is deselected after exactly 8 bits; only QE, bit 1, is kept);
- in deep power-down every command but 0xAB is ignored; 0x6B and 0xEB are ignored while QE is 0.

An ignored command drives nothing. An undriven line reads 1 (a pull-up); a line driven by both the
controller and the flash sets the sticky ``error`` output. Nibbles are sent with IO3 as their most
significant bit. Addresses wrap at 16 MB; bytes past ``image`` read as 0xFF (erased).
"""

from __future__ import annotations

from amaranth.lib import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..hw.common import HwParamError, check_int, validated
from ..hw.qspi import QspiPins
from ..hw.weightstream import ADDR_BITS

__all__ = ["SpiFlashModel", "JEDEC_ID"]

JEDEC_ID = (0xEF, 0x40, 0x18)  # Winbond, SPI NOR, 128 Mbit


class Phase(enum.Enum, shape=3):
    CMD = 0
    ADDR = 1
    MODE = 2
    DUMMY = 3
    DATA = 4
    WRITE = 5
    IGNORE = 6


class SpiFlashModel(wiring.Component):
    """Behavioural W25Q128JV-like flash (see the module docstring).

    Parameters
    ----------
    image : bytes
        The flash contents from address 0 (at most 16 MB).
    powered_down : bool
        Start in deep power-down (as the iCE40 leaves the flash after configuration).
    qe : bool
        The initial Quad Enable bit.
    t_res_cycles : int
        Cycles after the 0xAB transaction is deselected before commands are obeyed.

    Members
    -------
    pins : In(QspiPins())
        From the controller (``io_i`` is what the lines carry).
    error : Out(1)
        Sticky: a line was driven by both sides.
    qe, powered_down : Out(1)
        The device's state, for tests.
    """

    @validated
    def __init__(self, image: bytes, *, powered_down: bool = True, qe: bool = False, t_res_cycles: int = 0):
        if not isinstance(image, (bytes, bytearray)):
            raise HwParamError(f"image: must be bytes, got {type(image).__name__}")
        if len(image) > 1 << ADDR_BITS:
            raise HwParamError(f"image: {len(image)} bytes, more than the 16 MB flash")
        for name, v in (("powered_down", powered_down), ("qe", qe)):
            if not isinstance(v, bool):
                raise HwParamError(f"{name}: must be a bool, got {v!r}")
        self.image = bytes(image)
        self.t_res_cycles = check_int("t_res_cycles", t_res_cycles, lo=0, hi=1 << 24)
        super().__init__({"pins": In(QspiPins()), "error": Out(1), "qe": Out(1, init=int(qe)),
                          "powered_down": Out(1, init=int(powered_down))})

    def elaborate(self, platform):
        m = Module()
        pins = self.pins
        size = len(self.image)
        m.submodules.mem = mem = Memory(shape=8, depth=max(size, 1), init=list(self.image) or [0xFF])
        rd = mem.read_port(domain="comb")

        oe = Signal(4)
        out = Signal(4)
        bus = Signal(4)  # what the lines carry
        for k in range(4):
            m.d.comb += bus[k].eq(Mux(oe[k], out[k], Mux(pins.io_oe[k], pins.io_o[k], 1)))
        m.d.comb += pins.io_i.eq(bus)
        with m.If((oe & pins.io_oe).any()):
            m.d.sync += self.error.eq(1)

        sck_prev = Signal()
        cs_prev = Signal()
        m.d.sync += [sck_prev.eq(pins.sck), cs_prev.eq(pins.cs)]
        rise = pins.cs & pins.sck & ~sck_prev
        fall = pins.cs & ~pins.sck & sck_prev

        phase = Signal(Phase)
        cnt = Signal(range(25))  # bits in (CMD, WRITE) or clocks left (ADDR, MODE, DUMMY)
        cmd = Signal(8)
        addr = Signal(ADDR_BITS)
        addr_quad = Signal()
        data_quad = Signal()
        has_mode = Signal()
        dummy = Signal(range(9))
        is_id = Signal()
        unit = Signal(3)  # bit (nibble) of the current byte to send next
        wr = Signal(8)
        wel = Signal()
        wev = Signal()
        rel = Signal()  # 0xAB received: power up when deselected
        dp = Signal()  # 0xB9 received: power down when deselected
        tres = Signal(range(self.t_res_cycles + 1))

        with m.If(tres != 0):
            m.d.sync += tres.eq(tres - 1)

        def after_addr():
            with m.If(has_mode):
                m.d.sync += [phase.eq(Phase.MODE), cnt.eq(2)]
            with m.Elif(dummy != 0):
                m.d.sync += [phase.eq(Phase.DUMMY), cnt.eq(dummy)]
            with m.Else():
                m.d.sync += phase.eq(Phase.DATA)

        # Rising edges: take the controller's bits.
        newcmd = Cat(bus[0], cmd[:7])
        with m.If(rise):
            with m.Switch(phase):
                with m.Case(Phase.CMD):
                    m.d.sync += [cmd.eq(newcmd), cnt.eq(cnt + 1)]
                    with m.If(cnt == 7):
                        m.d.sync += [phase.eq(Phase.IGNORE), addr_quad.eq(0), data_quad.eq(0), has_mode.eq(0),
                                     dummy.eq(0), cnt.eq(24), addr.eq(0), unit.eq(0)]
                        with m.If(self.powered_down):
                            with m.If(newcmd == 0xAB):
                                m.d.sync += rel.eq(1)
                        with m.Else():
                            with m.Switch(newcmd):
                                with m.Case(0xAB):
                                    m.d.sync += rel.eq(1)
                                with m.Case(0xB9):
                                    m.d.sync += dp.eq(1)
                                with m.Case(0x06):
                                    m.d.sync += wel.eq(1)
                                with m.Case(0x50):
                                    m.d.sync += wev.eq(1)
                                with m.Case(0x31):
                                    m.d.sync += [phase.eq(Phase.WRITE), cnt.eq(0)]
                                with m.Case(0x9F):
                                    m.d.sync += [phase.eq(Phase.DATA), is_id.eq(1)]
                                with m.Case(0x03):
                                    m.d.sync += phase.eq(Phase.ADDR)
                                with m.Case(0x0B):
                                    m.d.sync += [phase.eq(Phase.ADDR), dummy.eq(8)]
                                with m.Case(0x6B):
                                    with m.If(self.qe):
                                        m.d.sync += [phase.eq(Phase.ADDR), dummy.eq(8), data_quad.eq(1)]
                                with m.Case(0xEB):
                                    with m.If(self.qe):
                                        m.d.sync += [phase.eq(Phase.ADDR), cnt.eq(6), addr_quad.eq(1),
                                                     has_mode.eq(1), dummy.eq(4), data_quad.eq(1)]
                with m.Case(Phase.ADDR):
                    m.d.sync += [cnt.eq(cnt - 1),
                                 addr.eq(Mux(addr_quad, Cat(bus, addr[:-4]), Cat(bus[0], addr[:-1])))]
                    with m.If(cnt == 1):
                        after_addr()
                with m.Case(Phase.MODE):
                    m.d.sync += cnt.eq(cnt - 1)
                    with m.If(cnt == 1):
                        with m.If(dummy != 0):
                            m.d.sync += [phase.eq(Phase.DUMMY), cnt.eq(dummy)]
                        with m.Else():
                            m.d.sync += phase.eq(Phase.DATA)
                with m.Case(Phase.DUMMY):
                    m.d.sync += cnt.eq(cnt - 1)
                    with m.If(cnt == 1):
                        m.d.sync += phase.eq(Phase.DATA)
                with m.Case(Phase.WRITE):
                    m.d.sync += wr.eq(Cat(bus[0], wr[:7]))
                    with m.If(cnt != 9):
                        m.d.sync += cnt.eq(cnt + 1)

        # Falling edges in the data phase: launch the next bit (nibble).
        ident = Signal(8)
        with m.Switch(addr):
            for i, b in enumerate(JEDEC_ID):
                with m.Case(i):
                    m.d.comb += ident.eq(b)
        src = Signal(8)
        m.d.comb += [rd.addr.eq(addr),
                     src.eq(Mux(is_id, ident, Mux(addr < size, rd.data, 0xFF)))]
        last = Mux(data_quad, unit == 1, unit == 7)
        with m.If(fall & (phase == Phase.DATA)):
            m.d.sync += [oe.eq(Mux(data_quad, 0b1111, 0b0010)), unit.eq(unit + 1),
                         out.eq(Mux(data_quad, Mux(unit == 0, src[4:8], src[0:4]),
                                    Cat(Const(0, 1), (src << unit)[7])))]
            with m.If(last):
                m.d.sync += [unit.eq(0), addr.eq(addr + 1)]

        # Chip select: deselecting ends the command (and commits what it asked for).
        with m.If(~pins.cs):
            m.d.sync += [phase.eq(Phase.CMD), cnt.eq(0), oe.eq(0), is_id.eq(0), unit.eq(0),
                         rel.eq(0), dp.eq(0)]
        with m.If(cs_prev & ~pins.cs):
            with m.If(rel):
                m.d.sync += [self.powered_down.eq(0), tres.eq(self.t_res_cycles)]
            with m.If(dp):
                m.d.sync += self.powered_down.eq(1)
            with m.If(phase == Phase.WRITE):
                with m.If((cnt == 8) & (wel | wev)):
                    m.d.sync += self.qe.eq(wr[1])
                m.d.sync += [wel.eq(0), wev.eq(0)]
        with m.If(pins.cs & ~cs_prev & (tres != 0)):
            m.d.sync += phase.eq(Phase.IGNORE)  # too soon after 0xAB
        return m
