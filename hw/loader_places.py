"""Where the model loader (:mod:`csdformer.hw.loader`) puts each op record, and when the op that
holds it may run.

Streamed (two slots): record ``j`` goes into slot ``j mod 2`` once that slot is free (``free``
pulses from the sequencer when the op in it ends), its op word at byte ``slot · op_bytes`` of the
staging RAM and its weights from word 0 of the slot; after the last record the first comes again.
Resident (``Program.resident``): record ``j`` has a place of its own, its op word at ``j ·
op_bytes`` and its weights after the previous records' (the compiler's ``w_base``); each is read
once, and ``full`` says whether the op the sequencer is at (counted from its ``free`` pulses) is in.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .flash_image import op_bytes

__all__ = ["RecordPlaces"]


class RecordPlaces(wiring.Component):
    """See the module docstring. ``n_ops``: the image's op count; ``done``: the record being read
    is complete (a pulse); ``word``: one of its weight words is written now (a pulse); ``free``:
    the sequencer's; ``ready``: the tables are in. Out: ``open`` (the next record has a place:
    read it), ``last`` (it is the image's last record), ``slot``, ``op_base`` (its op word's first
    byte), ``weight_addr`` (where its next weight word goes, within ``slot``), ``full``,
    ``prefetched`` (the records an image starts with are in: the first two, or resident, all)."""

    def __init__(self, program):
        self.program = p = program
        self.op_bytes = op_bytes(p)
        ops = range(max(p.depths["ops"], 2) + 1)
        super().__init__({
            "n_ops": In(ops), "done": In(1), "word": In(1), "free": In(2), "ready": In(1),
            "open": Out(1), "last": Out(1), "slot": Out(1), "op_base": Out(range(max(p.op_slots * self.op_bytes, 2))),
            "weight_addr": Out(range(p.depths["weight"] + 1)), "full": Out(2), "prefetched": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        OB, n_ops = self.op_bytes, self.n_ops
        j = Signal.like(n_ops)  # the record being read, or next
        m.d.comb += [self.slot.eq(j[0]), self.last.eq(j + 1 == n_ops)]
        with m.If(self.word):
            m.d.sync += self.weight_addr.eq(self.weight_addr + 1)
        if self.program.resident:
            cur = Signal.like(n_ops)  # the op the sequencer is at
            with m.If(self.free.any()):
                m.d.sync += cur.eq(Mux(cur + 1 == n_ops, 0, cur + 1))
            have = j > cur  # j: also the records in
            m.d.comb += [self.open.eq(j < n_ops), self.full.eq(Cat(have, have)),
                         self.prefetched.eq(self.ready & (j == n_ops))]
            with m.If(self.done):  # in its own place for good: the next one after it
                m.d.sync += [j.eq(j + 1), self.op_base.eq(self.op_base + OB)]
            return m
        full = Signal(2)
        m.d.comb += [self.open.eq(~full.bit_select(j[0], 1)), self.full.eq(full), self.prefetched.eq(full == 0b11),
                     self.op_base.eq(Mux(j[0], OB, 0))]
        m.d.sync += full.eq(full & ~self.free)
        with m.If(self.done):
            m.d.sync += [full.eq((full & ~self.free) | Mux(j[0], 0b10, 0b01)), self.weight_addr.eq(0),
                         j.eq(Mux(self.last, 0, j + 1))]
        return m
