"""The board's QSPI flash as a :class:`~csdformer.hw.weightstream.WeightStream` backend.

:class:`QspiFlashReader` turns ``cmd`` beats (a byte address) into JEDEC reads of a W25Q128JV-like
flash and hands the bytes out on ``data``; :class:`QspiPins` are its pins, connected to the board
by :func:`csdformer.boards.flash.flash_pins` and, in simulation, to
:class:`csdformer.sim.flash_model.SpiFlashModel`.

Timing (SPI mode 0; every pin output is a register, the input is registered every cycle):

- SCK idles low. With ``divisor`` = d, SCK is low for d cycles, then high for d cycles. CS and the
  first command bit are set together, d cycles before the first rising edge; every later output bit
  changes with a falling edge, so the flash sees d cycles of set-up and d of hold around its rising
  edge (W25Q128JV: 1 ns set-up, 3 ns hold).
- The flash launches its output on SCK falling (valid ``tCLQV`` ≤ 6 ns later, held ``tCLQX`` ≥
  1.5 ns after the next fall). We capture IO at the clock edge that makes the *next* falling edge,
  one full SCK period (2d cycles) after the launch, not at the rising edge half a period after it.
  At 100 MHz with d = 1 (SCK 50 MHz) the launch-to-capture budget is then 20 ns for: our SCK
  flip-flop to the pin (on ECP5 through ``USRMCLK``, about 5-7 ns), ``tCLQV`` (6 ns), and the pin
  to our input flip-flop (about 2-4 ns), about 15 ns in all. Capturing at the rising edge would
  leave 10 ns and fail. Hold is safe: at the capture edge the flash cannot change its output before
  our own SCK clock-to-pin delay plus ``tCLQX``. These are datasheet and typical figures, not a
  timing analysis of the external path (nextpnr does not time it); the design keeps every pin
  path register-to-pin and pin-to-register with no logic between, so nothing else adds to it.
- Between commands CS stays deselected for ``ceil(50 ns · clock_hz)`` cycles (W25Q128JV
  ``tSHSL2``, the longest deselect time).

At reset the reader sends 0xAB (release from deep power-down: the iCE40 puts the flash into deep
power-down after configuration), waits ``t_res_cycles`` (``tRES1`` = 3 µs), and with
``quad_enable`` sends 0x50 then 0x31 0x02 (set QE in the volatile status register 2, leaving the
non-volatile bits alone). Reads are Quad Output Fast Read (0x6B: command and address on IO0, 8
dummy clocks, data on IO0-3, IO3 the most significant bit of each nibble) for ``lines=4`` and Fast
Read (0x0B: 8 dummy clocks, data on IO1) for ``lines=1``. While IO2/IO3 are not data lines they are
driven high (WP#, HOLD# inactive).
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .common import HwParamError, check_int, validated
from .weightstream import ADDR_BITS, StreamTiming, WeightStream

__all__ = ["QspiPins", "QspiFlashReader", "CMD_BITS", "DUMMY_CLOCKS", "T_RES_S", "T_SHSL_S"]

CMD_BITS = 32  # command byte and 24-bit address, on IO0
DUMMY_CLOCKS = 8  # 0x6B and 0x0B
T_RES_S = 3e-6  # W25Q128JV tRES1: release from power-down to the next command
T_SHSL_S = 50e-9  # W25Q128JV tSHSL2: the longest CS deselect time


class QspiPins(wiring.Signature):
    """A QSPI flash's pins seen from the controller. ``cs`` is active high (the board inverts it);
    ``io_o``/``io_oe`` drive IO0-3 per line, ``io_i`` reads them."""

    def __init__(self):
        super().__init__({"sck": Out(1), "cs": Out(1), "io_o": Out(4), "io_oe": Out(4), "io_i": In(4)})


class QspiFlashReader(wiring.Component):
    """A :class:`WeightStream` backend reading the board's QSPI flash (see the module docstring for
    the protocol and its timing).

    Parameters
    ----------
    clock_hz : float
        The ``sync`` clock, for the default ``t_res_cycles`` and the CS deselect time.
    divisor : int
        SCK half-period in clock cycles (≥ 1): SCK = clk / (2 · divisor).
    lines : int
        4: Quad Output Fast Read (0x6B); 1: Fast Read (0x0B).
    quad_enable : bool, optional
        Set QE with the Winbond volatile sequence before the first read; default ``lines == 4``.
    t_res_cycles : int, optional
        Cycles to wait after 0xAB; default ``ceil(3 µs · clock_hz)``.

    Members
    -------
    bus : In(WeightStream())
        ``cmd``: start a read at this byte address (ends the read in progress; accepted once
        :attr:`init_cycles` have passed; a ``data`` beat in the handshake's cycle belongs to the old
        read); ``data``: the bytes from there on. While ``data`` is not taken SCK stops low (CS
        stays selected) and resumes later; nothing is lost.
    pins : Out(QspiPins())
        The flash.
    """

    @validated
    def __init__(self, *, clock_hz: float, divisor: int = 1, lines: int = 4, quad_enable: bool | None = None,
                 t_res_cycles: int | None = None):
        if isinstance(clock_hz, bool) or not isinstance(clock_hz, (int, float)) or not clock_hz > 0 \
                or math.isinf(clock_hz):
            raise HwParamError(f"clock_hz: must be a positive number, got {clock_hz!r}")
        self.clock_hz = float(clock_hz)
        self.divisor = check_int("divisor", divisor, lo=1, hi=1024)
        if isinstance(lines, bool) or not isinstance(lines, int) or lines not in (1, 4):
            raise HwParamError(f"lines: must be 1 or 4, got {lines!r}")
        self.lines = lines
        if quad_enable is None:
            quad_enable = lines == 4
        if not isinstance(quad_enable, bool):
            raise HwParamError(f"quad_enable: must be a bool, got {quad_enable!r}")
        self.quad_enable = quad_enable
        if t_res_cycles is None:
            t_res_cycles = math.ceil(T_RES_S * self.clock_hz)
        self.t_res_cycles = check_int("t_res_cycles", t_res_cycles, lo=1, hi=1 << 24)
        self.gap_cycles = max(1, math.ceil(T_SHSL_S * self.clock_hz))
        super().__init__({"bus": In(WeightStream()), "pins": Out(QspiPins())})

    @property
    def opcode(self) -> int:
        return 0x6B if self.lines == 4 else 0x0B

    @property
    def clocks_per_byte(self) -> int:
        return 8 // self.lines

    @property
    def timing(self) -> StreamTiming:
        """Exact for an always-ready user: after the ``cmd`` handshake, ``gap_cycles`` with CS
        deselected, then 32 + 8 + ``8 / lines`` SCK periods (command and address, dummy, the first
        byte) of 2·divisor cycles each, then two cycles (input register, ``data`` register); one
        byte every ``8 / lines`` SCK periods after that."""
        d, n = self.divisor, self.clocks_per_byte
        return StreamTiming(f"qspi-x{self.lines}-d{d}", self.gap_cycles + 2 * d * (CMD_BITS + DUMMY_CLOCKS + n) + 2,
                            2 * d * n)

    @property
    def init_cycles(self) -> int:
        """Cycles from reset to the first cycle where ``cmd`` is accepted: deselect, 0xAB, the
        ``t_res_cycles`` wait; with ``quad_enable`` also deselect, 0x50, deselect, 0x31 0x02."""
        d, g = self.divisor, self.gap_cycles
        n = g + 2 * d * 8 + self.t_res_cycles
        if self.quad_enable:
            n += g + 2 * d * 8 + g + 2 * d * 16
        return n

    def elaborate(self, platform):
        m = Module()
        d, lines, n = self.divisor, self.lines, self.clocks_per_byte
        bus, pins = self.bus, self.pins
        drive_oe = 0b1101  # IO0 (command), IO2/IO3 (WP#, HOLD# high); IO1 is the flash's output

        half = Signal(range(d + 1))  # cycles left in the current SCK half-period
        left = Signal(range(CMD_BITS + 1))  # SCK periods left in the current phase
        sr = Signal(CMD_BITS)  # bits still to send on IO0, most significant first
        wait = Signal(range(max(self.gap_cycles, self.t_res_cycles) + 1), init=self.gap_cycles - 1)
        addr = Signal(ADDR_BITS)
        m.d.sync += pins.io_o[2:4].eq(0b11)  # WP#, HOLD# high wherever they are driven

        # Input: registered every cycle; the capture that counts is the one taken at an SCK fall
        # edge of the data phase (``cap`` marks the cycle after it, where ``din`` holds it).
        din = Signal(4)
        cap = Signal()
        m.d.sync += [din.eq(pins.io_i), cap.eq(0)]
        bits = din[1] if lines == 1 else din
        sr_in = Signal(8)
        nib = Signal(range(n))  # bits (nibbles) of the byte in ``sr_in`` so far
        pend = Signal()  # ``sr_in`` holds a whole byte that ``data`` has no room for yet
        done = Signal()
        byte = Signal(8)
        m.d.comb += [done.eq(cap & (nib == n - 1)), byte.eq(Cat(bits, sr_in)[:8])]
        with m.If(cap):
            m.d.sync += [sr_in.eq(byte), nib.eq(nib + 1)]
            with m.If(nib == n - 1):
                m.d.sync += nib.eq(0)
        take = bus.data.valid & bus.data.ready
        free = ~bus.data.valid | take
        with m.If(done & free):
            m.d.sync += [bus.data.payload.eq(byte), bus.data.valid.eq(1)]
        with m.Elif(done):
            m.d.sync += pend.eq(1)
        with m.Elif(pend & free):
            m.d.sync += [bus.data.payload.eq(sr_in), bus.data.valid.eq(1), pend.eq(0)]
        with m.Elif(take):
            m.d.sync += bus.data.valid.eq(0)
        room = Signal()  # a byte started now will find ``sr_in`` free when its first bits arrive
        m.d.comb += room.eq(~((done | pend) & ~free))

        def select(word, width):
            """Assert CS with the first bit of ``word`` on IO0; the rest follow on falling edges."""
            w = Cat(Const(0, CMD_BITS - width), word) if width < CMD_BITS else word
            m.d.sync += [pins.cs.eq(1), pins.sck.eq(0), half.eq(d - 1), left.eq(width),
                         pins.io_o[0].eq(w[-1]), sr.eq(w << 1), pins.io_oe.eq(drive_oe)]

        def deselect(cycles):
            """End the command: CS deselected for ``cycles`` cycles before the next state acts."""
            m.d.sync += [pins.cs.eq(0), pins.sck.eq(0), wait.eq(cycles - 1)]

        def clocked(on_last=None):
            """One SCK period per ``2·d`` cycles; ``on_last()`` runs at the fall ending the phase.
            Without ``on_last`` this is the data phase: no end, and a byte starts only with room."""
            with m.If(half != 0):
                m.d.sync += half.eq(half - 1)
            with m.Elif(~pins.sck):
                with m.If(1 if on_last is not None else room | (left != 0)):
                    m.d.sync += [pins.sck.eq(1), half.eq(d - 1)]
            with m.Else():
                m.d.sync += [pins.sck.eq(0), half.eq(d - 1), pins.io_o[0].eq(sr[-1]), sr.eq(sr << 1)]
                if on_last is None:
                    m.d.sync += [cap.eq(1), left.eq(Mux(left == 0, n - 1, left - 1))]
                else:
                    m.d.sync += left.eq(left - 1)
                    with m.If(left == 1):
                        on_last()

        def waited(then):
            with m.If(wait == 0):
                then()
            with m.Else():
                m.d.sync += wait.eq(wait - 1)

        def accept():
            with m.If(bus.cmd.valid):
                deselect(self.gap_cycles)
                m.d.sync += [addr.eq(bus.cmd.payload), bus.data.valid.eq(0), pend.eq(0), nib.eq(0), cap.eq(0)]
                m.next = "GAP"

        with m.FSM(init="BOOT") as fsm:
            with m.State("BOOT"):  # ``wait`` starts at gap_cycles - 1
                def boot():
                    select(Const(0xAB, 8), 8)
                    m.next = "AB"
                waited(boot)
            with m.State("AB"):
                def ab_done():
                    deselect(self.t_res_cycles)
                    m.next = "TRES"
                clocked(ab_done)
            with m.State("TRES"):
                def tres_done():
                    if self.quad_enable:
                        m.d.sync += wait.eq(self.gap_cycles - 1)
                        m.next = "GAP50"
                    else:
                        m.next = "IDLE"
                waited(tres_done)
            if self.quad_enable:
                with m.State("GAP50"):
                    def gap50():
                        select(Const(0x50, 8), 8)
                        m.next = "WEV"
                    waited(gap50)
                with m.State("WEV"):
                    def wev_done():
                        deselect(self.gap_cycles)
                        m.next = "GAP31"
                    clocked(wev_done)
                with m.State("GAP31"):
                    def gap31():
                        select(Const(0x3102, 16), 16)
                        m.next = "WSR"
                    waited(gap31)
                with m.State("WSR"):
                    def wsr_done():
                        m.d.sync += [pins.cs.eq(0), pins.sck.eq(0)]
                        m.next = "IDLE"
                    clocked(wsr_done)
            with m.State("IDLE"):
                accept()
            with m.State("GAP"):
                def gap():
                    select(Cat(addr, Const(self.opcode, 8)), CMD_BITS)
                    m.next = "SEND"
                waited(gap)
                accept()
            with m.State("SEND"):
                def to_dummy():
                    m.d.sync += left.eq(DUMMY_CLOCKS)
                    if lines == 4:
                        m.d.sync += pins.io_oe.eq(0)  # the flash drives IO0-3 after the dummy clocks
                    m.next = "DUMMY"
                clocked(to_dummy)
                accept()
            with m.State("DUMMY"):
                def to_data():
                    m.d.sync += left.eq(0)
                    m.next = "DATA"
                clocked(to_data)
                accept()
            with m.State("DATA"):
                clocked()
                accept()
        m.d.comb += bus.cmd.ready.eq(~fsm.ongoing("BOOT") & ~fsm.ongoing("AB") & ~fsm.ongoing("TRES"))
        if self.quad_enable:
            for s in ("GAP50", "WEV", "GAP31", "WSR"):
                with m.If(fsm.ongoing(s)):
                    m.d.comb += bus.cmd.ready.eq(0)
        return m
