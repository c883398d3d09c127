"""The sequencer's performance counters (:class:`~csdformer.hw.sequencer.Sequencer`)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PerfCounters"]


class PerfCounters(wiring.Component):
    """An image's cycles, SOPs (lanes added) and spikes fired.

    ``cycles`` counts from 1 at ``begin`` (the image's first pixel) up to the cycle after ``end``
    (its last logit) and holds; ``sops`` and ``spikes`` show the sums up to ``end``'s cycle from
    the cycle after it on.

    Parameters
    ----------
    lanes : int
        Width of ``fired``.

    Members
    -------
    begin, end : In(1)
        The image starts; its count stops after this cycle's.
    sop : In(range(lanes + 1))
        Lanes added this cycle.
    fired : In(lanes)
        Spikes fired this cycle, a bit per lane.
    cycles, sops, spikes : Out(32)
        The counts.
    """

    def __init__(self, lanes: int):
        self._lanes = lanes
        super().__init__({"begin": In(1), "end": In(1), "sop": In(range(lanes + 1)), "fired": In(lanes),
                          "cycles": Out(32), "sops": Out(32), "spikes": Out(32)})

    def elaborate(self, platform):
        m = Module()
        sops, spikes = Signal(32), Signal(32)
        counting = Signal()
        m.d.sync += [sops.eq(sops + self.sop), spikes.eq(spikes + sum(self.fired[i] for i in range(self._lanes)))]
        with m.If(self.begin):
            m.d.sync += [self.cycles.eq(1), counting.eq(1), spikes.eq(0), sops.eq(0)]
        with m.If(self.end):
            m.d.sync += [counting.eq(0), self.spikes.eq(spikes), self.sops.eq(sops)]
        with m.If(counting):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        return m
