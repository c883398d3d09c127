"""The sequencer's op register (:class:`~csdformer.hw.sequencer.Sequencer`): an op's record copied
from its staging slot, and its kinds decoded."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .flash_image import op_bytes
from .memory import DATA_LATENCY, ReadPort
from .program import Program, Sink, Src

__all__ = ["kinds", "OpRegister", "prefetch_cycles"]


def prefetch_cycles(program) -> int:
    """Cycles from an op's decode until the next op's record is in the prefetch register (resident
    weights: :class:`OpRegister`), visible the cycle after its last byte."""
    return op_bytes(program) + DATA_LATENCY


def kinds(enum_type) -> data.StructLayout:
    """One flag per member of ``enum_type``, by its name in lower case."""
    return data.StructLayout({s.name.lower(): 1 for s in enum_type})


class OpRegister(wiring.Component):
    """Op ``index``'s record, copied a byte a cycle from its staging slot (``index`` mod 2, or with
    resident weights ``index`` itself: :attr:`Program.op_slots`) of the loader's RAM, byte 0
    first; then its ``src`` and ``sink`` decoded once into one-hot flags, so that no decode sits on
    the dispatch paths.

    With resident weights every record is staged before the first image, so the next op's record
    is fetched while this op runs (:func:`prefetch_cycles` from its decode, once ``records_in``:
    op 0's first) into a second register, and ``fetch`` copies it in one cycle, or waits for it:
    ``fetched`` is high in the cycle it is copied. The op after the head is op 0 (the next
    image's first).

    Parameters
    ----------
    program : Program
        Its op layout and op count.

    Members
    -------
    rewind, advance : In(1)
        Op 0 (a new image); the next op.
    start : In(1)
        Restart the copy.
    fetch : In(1)
        One cycle of the copy: ``op_bytes + DATA_LATENCY`` of them (resident: one, once the
        prefetch is in).
    records_in : In(1)
        Every record is staged (resident: the prefetch may start).
    fetched : Out(1)
        The copy's last cycle.
    decode : In(1)
        Decode the kinds of the record copied.
    ram : Out(ReadPort(op_slots * op_bytes, 8))
        The staging RAM.
    slot : Out(1)
        The op's slot.
    fields : Out(program.layout)
        The record.
    src, sink : Out(kinds(Src)), Out(kinds(Sink))
        The kinds, one-hot.
    """

    def __init__(self, program: Program):
        self.program = program
        ob = op_bytes(program)
        super().__init__({
            "rewind": In(1), "advance": In(1), "start": In(1), "fetch": In(1), "fetched": Out(1), "decode": In(1),
            "records_in": In(1),
            "ram": Out(ReadPort(program.op_slots * ob, 8)), "slot": Out(1), "fields": Out(program.layout),
            "src": Out(kinds(Src)), "sink": Out(kinds(Sink)),
        })

    def elaborate(self, platform):
        m = Module()
        p, OB = self.program, op_bytes(self.program)
        op = Signal(range(max(p.depths["ops"], 2)))
        raw = Signal(8 * OB)  # the record, shifted in a byte a cycle
        fi = Signal(range(OB + DATA_LATENCY + 1))
        m.d.comb += [self.slot.eq(op[0]), self.fields.eq(raw[:p.layout.size])]
        if not p.resident:
            m.d.comb += self.fetched.eq(fi == OB + DATA_LATENCY - 1)
        base = Signal(range(max(p.op_slots * OB, 2)))  # the op's staging slot, resident: op · OB
        with m.If(self.rewind):
            m.d.sync += [op.eq(0), base.eq(0)]
        with m.If(self.advance):
            m.d.sync += [op.eq(op + 1), base.eq(base + OB)]
        if p.resident:
            self._prefetch(m, raw, base)
        else:
            with m.If(self.start):
                m.d.sync += fi.eq(0)
            with m.If(self.fetch):
                with m.If(fi < OB):
                    m.d.comb += self.ram.addr.eq(Mux(self.slot, OB, 0) + fi)
                with m.If(fi >= DATA_LATENCY):  # byte 0 first: after OB shifts it is at the bottom
                    m.d.sync += raw.eq(Cat(raw[8:], self.ram.data))
                m.d.sync += fi.eq(fi + 1)
        with m.If(self.decode):
            m.d.sync += [self.src[s.name.lower()].eq(self.fields.src == s) for s in Src]
            m.d.sync += [self.sink[s.name.lower()].eq(self.fields.sink == s) for s in Sink]
        return m

    def _prefetch(self, m, raw, base):
        """The next op's record into ``nxt`` while this op runs; ``fetch`` copies it when ``ready``."""
        p, OB = self.program, op_bytes(self.program)
        nxt = Signal(8 * OB)
        pf = Signal(range(OB + DATA_LATENCY + 1))
        pbase = Signal.like(base)  # the record being prefetched
        active, ready, primed = Signal(), Signal(), Signal()
        with m.If(self.fetch & ready):
            m.d.comb += self.fetched.eq(1)
            m.d.sync += raw.eq(nxt)
        go = Signal()  # a prefetch starts: after this op's copy (its decode), or op 0's after reset
        records_in = Signal()  # registered: it comes from the loader, across the chip
        m.d.sync += records_in.eq(self.records_in)
        with m.If(self.decode):
            m.d.comb += go.eq(1)
            # The next op's record, op 0 after the head (the last op).
            m.d.sync += pbase.eq(Mux(self.fields.sink == Sink.LOGITS, 0, base + OB))
        with m.Elif(records_in & ~primed):
            m.d.comb += go.eq(1)
            m.d.sync += [pbase.eq(0), primed.eq(1)]
        # A prefetch never starts while one runs (the next starts at the decode that follows the
        # copy of this one), so the record's shift depends on the prefetch's own count only.
        with m.If(active):
            with m.If(pf < OB):
                m.d.comb += self.ram.addr.eq(pbase + pf)
            with m.If(pf >= DATA_LATENCY):
                m.d.sync += nxt.eq(Cat(nxt[8:], self.ram.data))
            m.d.sync += pf.eq(pf + 1)
            with m.If(pf == OB + DATA_LATENCY - 1):
                m.d.sync += [active.eq(0), ready.eq(1)]
        with m.If(go):
            m.d.sync += [active.eq(1), ready.eq(0), pf.eq(0)]
