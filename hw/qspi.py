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

The reader is three units: :class:`CommandSequence` (which command when), and on the pins
:class:`~csdformer.hw.qspi_io.SckShifter` (SCK, CS, the command bits) and
:class:`~csdformer.hw.qspi_io.ByteCollector` (the data bits into bytes).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .common import HwParamError, check_int, validated
from .qspi_io import ByteCollector, SckShifter, ShiftControl
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


class CommandSequence(wiring.Component):
    """Which command the flash gets when: at reset the wake-up (0xAB, then ``t_res_cycles``) and,
    with ``quad_enable``, 0x50 and 0x31 0x02; then a read per ``cmd`` (command and address, dummy
    clocks, data until the next ``cmd``). Each command is one shape: CS deselected for a gap, then
    its bits (:class:`_CommandPhases`).

    Parameters
    ----------
    opcode, lines : int
        The read command and its data lines (4: IO0 released to the flash after the address).
    quad_enable : bool
        Send the QE sequence at reset.
    gap_cycles, t_res_cycles : int
        CS deselect time between commands; the wait after 0xAB.

    Members
    -------
    cmd : In(stream.Signature(ADDR_BITS))
        Start a read at this byte address (ready once the reset commands are sent).
    spi : Out(ShiftControl(CMD_BITS))
        The :class:`~csdformer.hw.qspi_io.SckShifter`.
    clear : Out(1)
        A read starts: the bytes in progress are dropped.
    pending : Out(1)
        A ``cmd`` was taken last cycle and starts its read now (with ``clear``): no byte is handed
        out in this cycle.
    """

    def __init__(self, *, opcode: int, lines: int, quad_enable: bool, gap_cycles: int, t_res_cycles: int):
        self._opcode, self._lines, self._quad_enable = opcode, lines, quad_enable
        self._gap, self._t_res = gap_cycles, t_res_cycles
        super().__init__({"cmd": In(stream.Signature(ADDR_BITS)), "spi": Out(ShiftControl(CMD_BITS)),
                          "clear": Out(1), "pending": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cmd, gap = self.cmd, self._gap
        wait = Signal(range(max(gap, self._t_res) + 1), init=gap - 1)  # deselected cycles left
        addr = Signal(ADDR_BITS)
        ph = _CommandPhases(m, self.spi, wait)

        # A ``cmd`` is registered (``pending``, ``addr``) and acted on the next cycle, so the
        # user's logic behind ``cmd.valid`` ends at two registers, not in this FSM and the SCK and
        # CS registers after it (the model loader's op count → ``cmd.valid`` → the deselect →
        # SCK was the OrangeCrab's critical path, 133 MHz).
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += addr.eq(cmd.payload)
        m.d.sync += self.pending.eq(cmd.valid & cmd.ready)

        def accept():  # a read (re)starts at the registered ``cmd``, in any state after the reset commands
            with m.If(self.pending):
                ph.deselect(gap)
                m.d.comb += self.clear.eq(1)
                m.next = "GAP"

        with m.FSM(init="BOOT") as fsm:
            with ph.command("BOOT", "AB", Const(0xAB, 8), 8):  # release from deep power-down
                ph.deselect(self._t_res)
                m.next = "TRES"
            with m.State("TRES"):
                with ph.waited():
                    if self._quad_enable:
                        m.d.sync += wait.eq(gap - 1)
                        m.next = "GAP50"
                    else:
                        m.next = "IDLE"
            if self._quad_enable:
                with ph.command("GAP50", "WEV", Const(0x50, 8), 8):  # write enable, volatile status
                    ph.deselect(gap)
                    m.next = "GAP31"
                with ph.command("GAP31", "WSR", Const(0x3102, 16), 16):  # status register 2: QE
                    ph.deselect()
                    m.next = "IDLE"
            with m.State("IDLE"):
                accept()
            with ph.command("GAP", "SEND", Cat(addr, Const(self._opcode, 8)), CMD_BITS, during=accept):
                ph.more(DUMMY_CLOCKS, release=self._lines == 4)  # the flash drives IO0-3 after the dummy
                m.next = "DUMMY"
            with ph.phase("DUMMY", during=accept):
                ph.more(0)
                m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.spi.stream.eq(1)
                accept()
        booting = ["BOOT", "AB", "TRES"] + (["GAP50", "WEV", "GAP31", "WSR"] if self._quad_enable else [])
        m.d.comb += cmd.ready.eq(~Cat(fsm.ongoing(s) for s in booting).any())
        return m


class _CommandPhases:
    """Builds the FSM states of :class:`CommandSequence`'s commands in ``m``, on its shifter
    control ``spi`` and its deselect counter ``wait``; each command is a gap state then a phase."""

    def __init__(self, m: Module, spi, wait: Signal):
        self.m, self.spi, self.wait = m, spi, wait

    @contextmanager
    def waited(self):
        """The body once ``wait`` has run out; until then it counts down."""
        with self.m.If(self.wait == 0):
            yield
        with self.m.Else():
            self.m.d.sync += self.wait.eq(self.wait - 1)

    def deselect(self, cycles: int | None = None):
        """End the command: CS deselected, for ``cycles`` cycles before the next acts."""
        self.m.d.comb += self.spi.deselect.eq(1)
        if cycles is not None:
            self.m.d.sync += self.wait.eq(cycles - 1)

    def more(self, width: int, release: bool = False):
        """At the end of a phase, ``width`` SCK periods more (``release``: IO0 to the flash)."""
        self.m.d.comb += [self.spi.more.eq(1), self.spi.width.eq(width), self.spi.release.eq(release)]

    @contextmanager
    def phase(self, state: str, during=lambda: None):
        """State ``state`` runs SCK; the body at the fall that ends the phase, then ``during()``."""
        with self.m.State(state):
            self.m.d.comb += self.spi.clock.eq(1)
            with self.m.If(self.spi.last):
                yield
            during()

    @contextmanager
    def command(self, gap_state: str, send_state: str, word, width: int, during=lambda: None):
        """One command: ``gap_state`` until ``wait`` runs out, then ``word``'s ``width`` bits on
        IO0 (the :meth:`phase` ``send_state``, the body at its end); ``during()`` in both."""
        m, spi = self.m, self.spi
        with m.State(gap_state):
            with self.waited():
                m.d.comb += [spi.select.eq(1), spi.word.eq(word << (CMD_BITS - width)), spi.width.eq(width)]
                m.next = send_state
            during()
        with self.phase(send_state, during):
            yield


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
        read, none comes in the cycle after); ``data``: the bytes from there on. While ``data`` is not taken SCK stops low (CS
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
        deselected (after the cycle that registers the ``cmd``), then 32 + 8 + ``8 / lines`` SCK
        periods (command and address, dummy, the first byte) of 2·divisor cycles each, then two
        cycles (input register, ``data`` register); one byte every ``8 / lines`` SCK periods after
        that."""
        d, n = self.divisor, self.clocks_per_byte
        return StreamTiming(f"qspi-x{self.lines}-d{d}", 1 + self.gap_cycles + 2 * d * (CMD_BITS + DUMMY_CLOCKS + n) + 2,
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
        m.submodules.commands = cmds = CommandSequence(  # which command when
            opcode=self.opcode, lines=self.lines, quad_enable=self.quad_enable, gap_cycles=self.gap_cycles,
            t_res_cycles=self.t_res_cycles)
        m.submodules.shifter = out = SckShifter(  # SCK, CS, IO out
            divisor=self.divisor, bits=CMD_BITS, clocks_per_byte=self.clocks_per_byte)
        m.submodules.collector = inp = ByteCollector(lines=self.lines)  # IO in, bytes out
        wiring.connect(m, wiring.flipped(self.bus.cmd), cmds.cmd)
        wiring.connect(m, cmds.spi, out.ctl)
        # The cycle a registered cmd starts its read, the old read's byte (dropped by ``clear``)
        # is not handed out.
        data = self.bus.data
        m.d.comb += [data.payload.eq(inp.data.payload), data.valid.eq(inp.data.valid & ~cmds.pending),
                     inp.data.ready.eq(data.ready & ~cmds.pending)]
        m.d.comb += [out.room.eq(inp.room), inp.capture.eq(out.fall), inp.clear.eq(cmds.clear),
                     inp.io_i.eq(self.pins.io_i), self.pins.sck.eq(out.sck), self.pins.cs.eq(out.cs),
                     self.pins.io_o.eq(out.io_o), self.pins.io_oe.eq(out.io_oe)]
        return m
