"""The QSPI flash reader's pin side (:class:`~csdformer.hw.qspi.QspiFlashReader`): bits out, bytes in.

:class:`SckShifter` drives SCK, CS and IO0-3: a command's bits on IO0, one per SCK period, and the
SCK periods of the dummy and data phases. :class:`ByteCollector` registers IO0-3 every cycle and
assembles the bits captured in the data phase into bytes on a stream. Which command is sent when
is the reader's :class:`~csdformer.hw.qspi.CommandSequence`; the timing is in :mod:`.qspi`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ShiftControl", "SckShifter", "ByteCollector"]


class ShiftControl(wiring.Signature):
    """The sequence's commands to a :class:`SckShifter`, seen from the sequence; every member is
    for the cycle it is asserted in.

    Members
    -------
    select : Out(1)
        Assert CS with SCK low and the first bit of ``word`` on IO0; a phase of ``width`` periods.
    word : Out(bits)
        The command, its first bit the most significant (a shorter command is left-aligned).
    width : Out(range(bits + 1))
        SCK periods of the phase that ``select`` or ``more`` begins.
    clock : Out(1)
        Run SCK in a command or dummy phase: ``last`` marks the fall that ends it.
    stream : Out(1)
        Run SCK in the data phase: no end, and a byte begins only while ``room``.
    more : Out(1)
        At ``last``: a further phase of ``width`` periods without reselecting (dummy, data).
    release : Out(1)
        Stop driving IO0 (with ``more``: the flash drives IO0-3 after the dummy clocks).
    deselect : Out(1)
        CS deselected, SCK low (over the rest; the command ends, or a read restarts).
    last : In(1)
        The fall that ends the phase is in this cycle.
    """

    def __init__(self, bits: int):
        super().__init__({"select": Out(1), "word": Out(bits), "width": Out(range(bits + 1)), "clock": Out(1),
                          "stream": Out(1), "more": Out(1), "release": Out(1), "deselect": Out(1), "last": In(1)})


class SckShifter(wiring.Component):
    """SCK, CS and IO0-3 of a QSPI flash; every pin output is a register.

    With ``divisor`` = d, SCK is low for d cycles, then high for d; a command's bits change on IO0
    with the falling edges. IO2/IO3 (WP#, HOLD#) are held high wherever they are driven.

    Parameters
    ----------
    divisor : int
        SCK half-period in clock cycles.
    bits : int
        The longest command (command byte and address).
    clocks_per_byte : int
        SCK periods per byte of the data phase (8 / lines).

    Members
    -------
    ctl : In(ShiftControl(bits))
        What to do this cycle.
    room : In(1)
        A byte started now will have room when its bits arrive (the data phase waits otherwise).
    fall : Out(1)
        An SCK fall of the data phase is in this cycle: the bits sampled now are the flash's.
    sck, cs : Out(1)
        The pins (CS active high).
    io_o, io_oe : Out(4)
        IO0-3 driven, and whether.
    """

    DRIVE_OE = 0b1101  # IO0 (command), IO2/IO3 (WP#, HOLD# high); IO1 is the flash's output

    def __init__(self, *, divisor: int, bits: int, clocks_per_byte: int):
        self._d, self._bits, self._n = divisor, bits, clocks_per_byte
        super().__init__({"ctl": In(ShiftControl(bits)), "room": In(1), "fall": Out(1),
                          "sck": Out(1), "cs": Out(1), "io_o": Out(4), "io_oe": Out(4)})

    def elaborate(self, platform):
        m = Module()
        d, n, ctl = self._d, self._n, self.ctl
        half = Signal(range(d + 1))  # cycles left in the current SCK half-period
        left = Signal(range(self._bits + 1))  # SCK periods left in the phase (data phase: in the byte)
        sr = Signal(self._bits)  # bits still to send on IO0, most significant first
        m.d.sync += self.io_o[2:4].eq(0b11)  # WP#, HOLD# high wherever they are driven
        edge = (half == 0) & self.sck  # the falling edge, when SCK runs
        m.d.comb += [ctl.last.eq(ctl.clock & edge & (left == 1)), self.fall.eq(ctl.stream & edge)]

        with m.If(ctl.select):
            m.d.sync += [self.cs.eq(1), self.sck.eq(0), half.eq(d - 1), left.eq(ctl.width),
                         self.io_o[0].eq(ctl.word[-1]), sr.eq(ctl.word << 1), self.io_oe.eq(self.DRIVE_OE)]
        with m.If(ctl.clock | ctl.stream):  # one SCK period per 2·d cycles
            with m.If(half != 0):
                m.d.sync += half.eq(half - 1)
            with m.Elif(~self.sck):
                with m.If(ctl.clock | self.room | (left != 0)):  # a data byte starts only with room
                    m.d.sync += [self.sck.eq(1), half.eq(d - 1)]
            with m.Else():
                m.d.sync += [self.sck.eq(0), half.eq(d - 1), self.io_o[0].eq(sr[-1]), sr.eq(sr << 1),
                             left.eq(Mux(ctl.stream & (left == 0), n - 1, left - 1))]
        with m.If(ctl.more):
            m.d.sync += left.eq(ctl.width)
        with m.If(ctl.release):
            m.d.sync += self.io_oe.eq(0)
        with m.If(ctl.deselect):
            m.d.sync += [self.cs.eq(0), self.sck.eq(0)]
        return m


class ByteCollector(wiring.Component):
    """IO0-3 registered every cycle; the bits captured at the data phase's SCK falls (IO1 for one
    line; IO3 the most significant of four) assembled into bytes on ``data``.

    A byte completed while ``data`` is full waits in the shift register; nothing is lost, and the
    shifter starts no byte (``room`` low) that would find it still occupied.

    Parameters
    ----------
    lines : int
        1 or 4 data lines.

    Members
    -------
    io_i : In(4)
        The pins.
    capture : In(1)
        An SCK fall of the data phase: the IO sampled in this cycle counts.
    clear : In(1)
        A new read: the byte in progress and ``data`` dropped (over ``capture``).
    room : Out(1)
        A byte started now finds the shift register free when its first bits arrive.
    data : Out(stream.Signature(8))
        The bytes.
    """

    def __init__(self, *, lines: int):
        self._lines = lines
        super().__init__({"io_i": In(4), "capture": In(1), "clear": In(1), "room": Out(1),
                          "data": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        n, data = 8 // self._lines, self.data
        # The capture that counts is the one taken at an SCK fall of the data phase (``cap`` marks
        # the cycle after it, where ``din`` holds it).
        din, cap = Signal(4), Signal()
        m.d.sync += [din.eq(self.io_i), cap.eq(self.capture)]
        bits = din[1] if self._lines == 1 else din
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
        take = data.valid & data.ready
        free = ~data.valid | take
        with m.If(done & free):
            m.d.sync += [data.payload.eq(byte), data.valid.eq(1)]
        with m.Elif(done):
            m.d.sync += pend.eq(1)
        with m.Elif(pend & free):
            m.d.sync += [data.payload.eq(sr_in), data.valid.eq(1), pend.eq(0)]
        with m.Elif(take):
            m.d.sync += data.valid.eq(0)
        with m.If(self.clear):
            m.d.sync += [data.valid.eq(0), pend.eq(0), nib.eq(0), cap.eq(0)]
        m.d.comb += self.room.eq(~((done | pend) & ~free))
        return m
