"""The sequencer's op register (:class:`~csdformer.hw.sequencer.Sequencer`): an op's record copied
from its staging slot, and its kinds decoded."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .flash_image import op_bytes
from .memory import DATA_LATENCY, ReadPort
from .program import Program, Sink, Src

__all__ = ["kinds", "OpRegister"]


def kinds(enum_type) -> data.StructLayout:
    """One flag per member of ``enum_type``, by its name in lower case."""
    return data.StructLayout({s.name.lower(): 1 for s in enum_type})


class OpRegister(wiring.Component):
    """Op ``index``'s record, copied a byte a cycle from its staging slot (``index`` mod 2, or with
    resident weights ``index`` itself: :attr:`Program.op_slots`) of the loader's RAM, byte 0
    first; then its ``src`` and ``sink`` decoded once into one-hot flags, so that no decode sits on
    the dispatch paths.

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
        One cycle of the copy: ``op_bytes + DATA_LATENCY`` of them.
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
            "ram": Out(ReadPort(program.op_slots * ob, 8)), "slot": Out(1), "fields": Out(program.layout),
            "src": Out(kinds(Src)), "sink": Out(kinds(Sink)),
        })

    def elaborate(self, platform):
        m = Module()
        p, OB = self.program, op_bytes(self.program)
        op = Signal(range(max(p.depths["ops"], 2)))
        raw = Signal(8 * OB)  # the record, shifted in a byte a cycle
        fi = Signal(range(OB + DATA_LATENCY + 1))
        m.d.comb += [self.slot.eq(op[0]), self.fields.eq(raw[:p.layout.size]),
                     self.fetched.eq(fi == OB + DATA_LATENCY - 1)]
        base = Signal(range(max(p.op_slots * OB, 2)))  # the op's staging slot, resident: op · OB
        with m.If(self.rewind):
            m.d.sync += [op.eq(0), base.eq(0)]
        with m.If(self.advance):
            m.d.sync += [op.eq(op + 1), base.eq(base + OB)]
        with m.If(self.start):
            m.d.sync += fi.eq(0)
        with m.If(self.fetch):
            with m.If(fi < OB):
                m.d.comb += self.ram.addr.eq((base if p.resident else Mux(self.slot, OB, 0)) + fi)
            with m.If(fi >= DATA_LATENCY):  # byte 0 first: after OB shifts it is at the bottom
                m.d.sync += raw.eq(Cat(raw[8:], self.ram.data))
            m.d.sync += fi.eq(fi + 1)
        with m.If(self.decode):
            m.d.sync += [self.src[s.name.lower()].eq(self.fields.src == s) for s in Src]
            m.d.sync += [self.sink[s.name.lower()].eq(self.fields.sink == s) for s in Sink]
        return m
