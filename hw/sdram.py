"""The ULX3S's SDR SDRAM as a :class:`~csdformer.hw.weightstream.WeightStream` backend.

Why: the ULX3S reads its flash on one line (16 cycles a byte at 100 MHz), so a model streamed from
flash waits for its weights most of the time (Fashion-MNIST: 9.3 of 10.6 million cycles an
image). Its 32 MB SDRAM (AS4C32M16SB, 16 bits) gives a byte every cycle. :class:`SdramStream`
copies the model's flash image into the SDRAM once after reset and then serves the loader's
reads from there, behind the same interface, with a fixed timing the cycle model takes
(:attr:`SdramStream.timing`).

After reset (``cmd.ready`` low until the copy is done):

1. the JEDEC power-up: ``t_init`` cycles of NOP (200 µs), PRECHARGE ALL, two AUTO REFRESH, MODE
   REGISTER SET (CAS latency ``cl``, burst length 1, sequential);
2. the copy: one read of ``source`` (the flash reader) from ``copy_base``, every two bytes a WRITE
   of one word to SDRAM word ``byte address >> 1`` (little-endian: the even byte in ``DQ[7:0]``),
   for as many bytes as the image header's length field says (bytes 16-19; clamped to
   ``HEADER_BYTES .. max_bytes``, so an erased or corrupt header copies at most ``max_bytes``;
   the loader then refuses the image as it would from flash).

Then each ``cmd`` starts a read at its byte address: a READ a cycle (burst length 1, at most one
open row) into a FIFO of ``FIFO_WORDS`` words, while it has room for every read in flight, and a
byte a cycle out of it. The first byte is handed out exactly :attr:`SdramStream.latency` cycles
after the ``cmd`` handshake and one every cycle after that, for an always-ready user, whatever
the refresh or the open row was doing: the latency covers the worst case (a refresh falling due
just after a row was opened, then a row change at the first words), and the SDRAM reads two bytes
in each cycle that the user takes one, so the FIFO, filled during the latency, absorbs every later
refresh (once every ``t_refi``) and row change. A refresh is issued every ``t_refi`` cycles
(7.8 µs), as soon as the open row may be closed.

Its parts: :class:`ImageCopy` (the copy's bytes into words), :class:`ReadOut` (the reads in flight,
the FIFO, the bytes out at the fixed latency) and, in :class:`SdramStream`, the commands (power-up,
refresh, one open row, a WRITE of the copy or a READ a cycle).

Pins (:class:`SdramPins`) are registers on both sides: a command decided in cycle ``c`` is on the
pins in ``c + 1``; the SDRAM registers it in ``c + 1`` and drives the data for its edge ``cl``
cycles on; it is registered at the end of ``c + cl + 1``, so a READ decided in ``c`` brings its
word into ``dq_i``'s register in ``c + cl + 2`` (:data:`READ_PIPE` + ``cl``). With
``io_registers`` the board adds a register on each side in the FPGA's I/O cells (where their
timing to the pins is fixed), beside the controller's own: the pins then carry a command a cycle
later and a READ's word arrives :data:`IO_PIPE` cycles later, which the reads in flight and the
latency count (a controller that drove the I/O registers straight from its decision missed
100 MHz on the ULX3S: the route from its logic to the pins' cells was 8.6 ns). The chip's clock and its phase are the board's
(:mod:`csdformer.boards.sdram`); simulation uses :class:`csdformer.sim.sdram_model.SdramModel`,
which checks every timing below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .common import HwParamError, check_int, validated
from .flash_image import HEADER_BYTES, LENGTH_AT
from .weightstream import ADDR_BITS, StreamTiming, WeightStream

__all__ = ["SdramPart", "SdramCycles", "AS4C32M16SB", "SdramPins", "SdramCmd", "SdramStream", "ImageCopy", "ReadOut",
           "FIFO_WORDS", "READ_PIPE", "IO_PIPE"]

FIFO_WORDS = 32  # read words buffered between the SDRAM and the byte output
READ_PIPE = 2  # cycles of a READ besides the CAS latency: the command register, dq's input register
IO_PIPE = 2  # with ``io_registers``: the board's output and input registers in the I/O cells


@dataclass(frozen=True)
class SdramCycles:
    """A part's timing in clock cycles (each at least 1): the waits after a command before the
    next one may be issued (``rp``: PRECHARGE, ``rcd``: ACTIVE to READ/WRITE, ``rfc``: AUTO
    REFRESH, ``mrd``: MODE REGISTER SET), the least time a row stays open (``ras``), from ACTIVE to
    the next ACTIVE (``rc``), from the last WRITE to PRECHARGE (``wr``), between refreshes
    (``refi``), the power-up wait (``init``) and the CAS latency (``cl``)."""

    rp: int
    rcd: int
    rfc: int
    mrd: int
    ras: int
    rc: int
    wr: int
    refi: int
    init: int
    cl: int


@dataclass(frozen=True)
class SdramPart:
    """An SDR SDRAM part: geometry (16-bit words) and datasheet timing in ns."""

    name: str
    banks: int
    rows: int
    cols: int
    t_rp: float
    t_rcd: float
    t_rfc: float
    t_ras: float
    t_rc: float
    t_wr: float
    t_refi: float
    t_init: float
    mrd_clk: int
    cl: int
    f_max_hz: float

    @property
    def words(self) -> int:
        return self.banks * self.rows * self.cols

    def cycles(self, clock_hz: float) -> SdramCycles:
        if not 0 < clock_hz <= self.f_max_hz:
            raise HwParamError(f"clock_hz: {self.name} runs at most {self.f_max_hz / 1e6:g} MHz, got {clock_hz / 1e6:g}")

        def up(ns):
            return max(1, math.ceil(ns * 1e-9 * clock_hz - 1e-9))

        ras, rp = up(self.t_ras), up(self.t_rp)
        return SdramCycles(rp=rp, rcd=up(self.t_rcd), rfc=up(self.t_rfc), mrd=self.mrd_clk,
                           ras=max(ras, up(self.t_rc) - rp),  # ACTIVE to ACTIVE is then >= tRC too
                           rc=up(self.t_rc), wr=max(2, up(self.t_wr)), refi=int(self.t_refi * 1e-9 * clock_hz),
                           init=up(self.t_init), cl=self.cl)


#: The ULX3S's SDRAM (Alliance Memory AS4C32M16SB-7TCN: 4 banks × 8,192 rows × 1,024 columns × 16
#: bits; at CAS latency 3 up to 143 MHz). The -7 grade's figures (datasheet table 16: tRCD, tRP 21,
#: tRC, tRFC 63, tWR 14 ns; tMRD 14 ns, two cycles up to 143 MHz); the -6 grade's are lower.
AS4C32M16SB = SdramPart("AS4C32M16SB-7", banks=4, rows=8192, cols=1024, t_rp=21, t_rcd=21, t_rfc=63, t_ras=42,
                        t_rc=63, t_wr=14, t_refi=64e6 / 8192, t_init=200e3, mrd_clk=2, cl=3, f_max_hz=143e6)


class SdramCmd(enum.Enum, shape=4):
    """The command pins ``{WE#, CAS#, RAS#, CS#}`` (bit 0: CS#)."""

    NOP = 0b1110
    ACTIVE = 0b1100
    READ = 0b1010
    WRITE = 0b0010
    PRECHARGE = 0b0100
    REFRESH = 0b1000
    MODE = 0b0000


class SdramPins(wiring.Signature):
    """An SDR SDRAM's pins seen from the controller: ``cmd`` (CS#, RAS#, CAS#, WE#: :class:`SdramCmd`),
    ``ba``, ``a``, ``dqm`` (both bytes always enabled), ``dq_o``/``dq_oe`` (written data), ``dq_i``
    (read data); ``cke`` high from reset."""

    def __init__(self, row_bits: int = 13, bank_bits: int = 2):
        super().__init__({"cke": Out(1), "cmd": Out(SdramCmd, init=SdramCmd.NOP), "ba": Out(bank_bits), "a": Out(row_bits),
                          "dqm": Out(2), "dq_o": Out(16), "dq_oe": Out(1), "dq_i": In(16)})


class Mode(enum.Enum, shape=2):
    INIT = 0
    FILL = 1
    SERVE = 2


class ImageCopy(wiring.Component):
    """The copy after reset: one read of ``source`` from ``base``, its bytes paired into words
    (``word``, to be written at word ``addr``; the even byte low), as many bytes as the image
    header's length field says (clamped to ``HEADER_BYTES .. max_bytes``), from ``start`` on;
    ``done`` once the last word is taken."""

    def __init__(self, *, base: int, max_bytes: int):
        self.base, self.max_bytes = base, max_bytes
        super().__init__({"source": Out(WeightStream()), "start": In(1), "word": Out(stream.Signature(16)),
                          "addr": Out(ADDR_BITS - 1, init=base >> 1), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        src, word = self.source, self.word
        sent = Signal()  # the source's read was started
        count = Signal(ADDR_BITS + 1)  # bytes taken
        limit = Signal(ADDR_BITS + 1, init=self.max_bytes)
        lo, half, length = Signal(8), Signal(), Signal(32)
        m.d.comb += [src.cmd.payload.eq(self.base), src.cmd.valid.eq(self.start & ~sent)]
        with m.If(src.cmd.valid & src.cmd.ready):
            m.d.sync += sent.eq(1)
        copied = Signal()
        m.d.comb += [copied.eq((count >= limit) & ~half), self.done.eq(self.start & copied & ~word.valid)]
        m.d.comb += src.data.ready.eq(self.start & sent & ~word.valid & ~copied)
        with m.If(word.valid & word.ready):
            m.d.sync += [word.valid.eq(0), self.addr.eq(self.addr + 1)]
        with m.If(src.data.valid & src.data.ready):
            m.d.sync += [count.eq(count + 1), lo.eq(src.data.payload), half.eq(~half)]
            with m.If(half):
                m.d.sync += [word.payload.eq(Cat(lo, src.data.payload)), word.valid.eq(1)]
            for i in range(4):
                with m.If(count == LENGTH_AT + i):
                    m.d.sync += length[8 * i:8 * i + 8].eq(src.data.payload)
            with m.If(count == LENGTH_AT + 3):
                n = Cat(length[:24], src.data.payload)
                m.d.sync += limit.eq(Mux(n < HEADER_BYTES, HEADER_BYTES, Mux(n > self.max_bytes, self.max_bytes, n)))
        return m


class ReadOut(wiring.Component):
    """The reads' way out: each READ issued (``issue``) brings its word from ``dq`` into the FIFO
    ``cl + pipe`` cycles on (``pipe``: :data:`READ_PIPE`, and :data:`IO_PIPE` with I/O registers); ``room`` says the FIFO has a place for every read in flight and
    one more; ``data`` hands the words out a byte a cycle (the even byte first), the first
    ``latency`` cycles after ``start`` (a new read: the reads in flight and the FIFO dropped;
    ``odd``: it starts at a word's second byte), then one every cycle while there are words.
    ``reading``: a read was started."""

    def __init__(self, *, cl: int, latency: int, pipe: int = READ_PIPE):
        self.cl, self.latency, self.pipe = cl, latency, pipe
        super().__init__({"issue": In(1), "dq": In(16), "start": In(1), "odd": In(1), "room": Out(1),
                          "reading": Out(1), "data": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        data = self.data
        m.submodules.fifo = fifo = ResetInserter(self.start)(SyncFIFO(width=16, depth=FIFO_WORDS))
        pipe = [Signal(name=f"rd{i}") for i in range(self.cl + self.pipe)]  # each READ in flight
        dq_in = Signal(16)
        m.d.sync += dq_in.eq(self.dq)
        m.d.sync += [pipe[0].eq(self.issue)] + [pipe[i].eq(pipe[i - 1]) for i in range(1, len(pipe))]
        m.d.comb += [fifo.w_data.eq(dq_in), fifo.w_en.eq(pipe[-1] & ~self.start),
                     self.room.eq(fifo.level + len(pipe) + 1 < FIFO_WORDS)]
        lat = Signal(range(self.latency))
        ow, left, odd = Signal(16), Signal(range(3)), Signal()  # the word handed out, its bytes left
        m.d.comb += [data.payload.eq(Mux(left == 1, ow[8:], ow[:8])),
                     data.valid.eq(self.reading & (lat == 0) & (left != 0))]
        with m.If(lat != 0):
            m.d.sync += lat.eq(lat - 1)
        take = data.valid & data.ready
        with m.If(((left == 0) | (take & (left == 1))) & fifo.r_rdy):
            m.d.comb += fifo.r_en.eq(1)
            m.d.sync += [ow.eq(fifo.r_data), left.eq(Mux(odd, 1, 2)), odd.eq(0)]
        with m.Elif(take):
            m.d.sync += left.eq(left - 1)
        with m.If(self.start):  # last: over the words above
            m.d.sync += [odd.eq(self.odd), left.eq(0), self.reading.eq(1), lat.eq(self.latency - 1)]
            m.d.sync += [p.eq(0) for p in pipe]  # the old read's words dropped
        return m


class SdramStream(wiring.Component):
    """The SDRAM behind a :class:`WeightStream` (module docstring).

    Parameters
    ----------
    clock_hz : float
        The clock, for the part's timing in cycles.
    copy_base : int
        The flash byte address of the model's image (even).
    max_bytes : int
        The most bytes copied (the image header's length is trusted up to this).
    part : SdramPart
        The chip (default the ULX3S's).
    io_registers : bool
        The board registers the pins once more in its I/O cells (module docstring): a READ's word
        arrives :data:`IO_PIPE` cycles later, and the latency is that much longer.

    Members
    -------
    bus : In(WeightStream())
        Served to the model loader.
    source : Out(WeightStream())
        The flash reader, read once after reset.
    pins : Out(SdramPins())
    """

    @validated
    def __init__(self, *, clock_hz: float, copy_base: int = 0, max_bytes: int = 1 << ADDR_BITS,
                 part: SdramPart = AS4C32M16SB, io_registers: bool = False):
        self.part, self.clock_hz, self.io_registers = part, clock_hz, bool(io_registers)
        self.t = part.cycles(clock_hz)
        self.copy_base = check_int("copy_base", copy_base, lo=0, hi=(1 << ADDR_BITS) - 2)
        if self.copy_base % 2:
            raise HwParamError(f"copy_base: must be even (a word's first byte), got {copy_base}")
        self.max_bytes = check_int("max_bytes", max_bytes, lo=HEADER_BYTES, hi=(1 << ADDR_BITS) - self.copy_base)
        if 2 * part.words < 1 << ADDR_BITS:
            raise HwParamError(f"part: {part.name} holds {2 * part.words} bytes, less than the stream's address space")
        self.col_bits = (part.cols - 1).bit_length()
        self.bank_bits = (part.banks - 1).bit_length()
        self.row_bits = (part.rows - 1).bit_length()
        super().__init__({"bus": In(WeightStream()), "source": Out(WeightStream()),
                          "pins": Out(SdramPins(self.row_bits, self.bank_bits))})

    @property
    def latency(self) -> int:
        """Cycles from a ``cmd`` handshake to the first byte (module docstring): a refresh due
        just after a row was opened (the row's least open time, PRECHARGE, AUTO REFRESH, ACTIVE),
        then a row change at the first word (least open time, PRECHARGE, ACTIVE), the READ's
        pipeline, and the cycles between, the FIFO and the output register (6). The sweep of the
        worst starts in tests/test_sdram.py fails with one cycle less at 100 MHz (41 of 42, with the
        I/O registers): the formula is the worst case there, with no cycle to spare."""
        t = self.t
        return (t.ras + t.rp + t.rfc + t.rcd) + (t.ras + t.rp + t.rcd) + t.cl + self.read_pipe + 6

    @property
    def read_pipe(self) -> int:
        """Cycles of a READ besides the CAS latency (:data:`READ_PIPE`, and :data:`IO_PIPE` with
        ``io_registers``)."""
        return READ_PIPE + IO_PIPE * self.io_registers

    @property
    def timing(self) -> StreamTiming:
        return StreamTiming(f"sdram-cl{self.t.cl}", self.latency, 1)

    def elaborate(self, platform):
        m = Module()
        t, pins, bus, src = self.t, self.pins, self.bus, self.source
        cb, bb, rb = self.col_bits, self.bank_bits, self.row_bits
        mode = Signal(Mode, init=Mode.INIT)

        # -- the command issued this cycle (registered onto the pins) --
        cmd = Signal(SdramCmd, init=SdramCmd.NOP)
        ba, a, dq_o, dq_oe = Signal(bb), Signal(rb), Signal(16), Signal()
        m.d.comb += cmd.eq(SdramCmd.NOP)
        m.d.sync += [pins.cmd.eq(cmd), pins.ba.eq(ba), pins.a.eq(a), pins.dq_o.eq(dq_o), pins.dq_oe.eq(dq_oe)]
        m.d.comb += [pins.cke.eq(1), pins.dqm.eq(0)]

        wait = Signal(range(max(t.init, t.rfc, t.rp, t.rcd, t.mrd) + 1), init=t.init)  # before the next command
        ras_left = Signal(range(t.ras + 1))  # the open row's least open time left
        wr_left = Signal(range(t.wr + 1))  # the last WRITE's recovery left
        m.d.sync += [ras_left.eq(Mux(ras_left == 0, 0, ras_left - 1)), wr_left.eq(Mux(wr_left == 0, 0, wr_left - 1))]
        refi = Signal(range(t.refi), init=t.refi - 1)
        ref_due = Signal()
        opened = Signal()  # a row is open (in bank ``open_at[:bb]``)
        open_at = Signal(bb + rb)  # its bank and row
        init_step = Signal(range(4))  # PRECHARGE ALL, REFRESH, REFRESH, MODE

        def word_place(w):  # word address -> (column, bank and row)
            return w[:cb], w[cb:cb + bb + rb]

        def emit(c, *, bank=0, addr=0, then=1):  # issue ``c``; the next command ``then`` cycles on
            m.d.comb += [cmd.eq(c), ba.eq(bank), a.eq(addr)]
            m.d.sync += wait.eq(then - 1)

        with m.If(mode != Mode.INIT):
            with m.If(refi == 0):
                m.d.sync += [refi.eq(t.refi - 1), ref_due.eq(1)]
            with m.Else():
                m.d.sync += refi.eq(refi - 1)

        # -- the copy after reset, the reads' way out --
        m.submodules.copy = copy = ImageCopy(base=self.copy_base, max_bytes=self.max_bytes)
        m.submodules.out = out = ReadOut(cl=t.cl, latency=self.latency, pipe=self.read_pipe)
        wiring.connect(m, wiring.flipped(src), copy.source)
        wiring.connect(m, out.data, wiring.flipped(bus.data))
        start = bus.cmd.valid & bus.cmd.ready
        raddr = Signal(ADDR_BITS - 1)  # the next word to read
        m.d.comb += [copy.start.eq(mode == Mode.FILL), bus.cmd.ready.eq(mode == Mode.SERVE), out.dq.eq(pins.dq_i),
                     out.start.eq(start), out.odd.eq(bus.cmd.payload[0])]

        # -- the commands --
        with m.If(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        with m.Elif(mode == Mode.INIT):
            m.d.sync += init_step.eq(init_step + 1)
            with m.Switch(init_step):
                with m.Case(0):
                    emit(SdramCmd.PRECHARGE, addr=1 << 10, then=t.rp)
                with m.Case(1, 2):
                    emit(SdramCmd.REFRESH, then=t.rfc)
                with m.Case(3):
                    # burst length 1, sequential, the CAS latency, writes as programmed (length 1)
                    emit(SdramCmd.MODE, addr=t.cl << 4, then=t.mrd)
                    m.d.sync += mode.eq(Mode.FILL)
        with m.Elif(ref_due):
            with m.If(opened):
                with m.If((ras_left == 0) & (wr_left == 0)):
                    emit(SdramCmd.PRECHARGE, addr=1 << 10, then=t.rp)
                    m.d.sync += opened.eq(0)
            with m.Else():
                emit(SdramCmd.REFRESH, then=t.rfc)
                m.d.sync += ref_due.eq(0)
        with m.Else():
            # the word to access next: a write of the copy, or a read
            col, place = word_place(Mux(mode == Mode.FILL, copy.addr, raddr))
            want = Mux(mode == Mode.FILL, copy.word.valid, out.reading & out.room)
            with m.If(copy.done):
                m.d.sync += mode.eq(Mode.SERVE)
            with m.Elif(want & opened & (open_at == place)):
                with m.If(mode == Mode.FILL):
                    m.d.comb += [cmd.eq(SdramCmd.WRITE), a.eq(col), ba.eq(place[:bb]), dq_o.eq(copy.word.payload),
                                 dq_oe.eq(1), copy.word.ready.eq(1)]
                    m.d.sync += wr_left.eq(t.wr)
                with m.Else():
                    m.d.comb += [cmd.eq(SdramCmd.READ), a.eq(col), ba.eq(place[:bb]), out.issue.eq(1)]
                    m.d.sync += raddr.eq(raddr + 1)
            with m.Elif(want & opened):  # another row: close it
                with m.If((ras_left == 0) & (wr_left == 0)):
                    emit(SdramCmd.PRECHARGE, addr=1 << 10, then=t.rp)
                    m.d.sync += opened.eq(0)
            with m.Elif(want):
                emit(SdramCmd.ACTIVE, bank=place[:bb], addr=place[bb:], then=t.rcd)
                m.d.sync += [opened.eq(1), open_at.eq(place), ras_left.eq(t.ras - 1)]
        with m.If(start):  # a new read (last: over the READ's address step)
            m.d.sync += raddr.eq(bus.cmd.payload[1:])
        return m
