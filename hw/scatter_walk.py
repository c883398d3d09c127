"""The scatter's two address walks (:mod:`csdformer.hw.scatter`): over the input words, and over
an event's taps. Both are nested counters with increments from the op's fields (``*_j0/_j1/_j2``),
so that no address needs a multiplication."""

from __future__ import annotations

from amaranth.hdl import Module, Shape
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .phase import Counter, addr_shape

__all__ = ["WordWalk", "TapWalk"]


def _width(layout, name: str) -> int:
    return Shape.cast(layout[name].shape).width


def _counter_width(layout) -> int:
    return max(_width(layout, n) for n in ("n0_m1", "n1_m1", "f0_m1", "f1_m1", "f2_m1"))


class WordWalk(wiring.Component):
    """The input word being scanned: its index ``wi`` (``last``: the frame's last word), its
    position (``c0`` fastest, then ``c1``, ``c2``: the op's input layout) and the addresses that
    step with it: ``E``, its first output word in ACC, and ``Bb[b]``, lane ``b``'s weight row
    (``Bb[0] + bmul[b]``: starting an event is a mux, not an addition). ``restart``: the frame's
    first word, from the fields of ``op``; ``step``: the next word."""

    def __init__(self, program, layout):
        A, P = addr_shape(program), program.lanes
        nb, nw = _counter_width(layout), _width(layout, "words_m1")
        super().__init__({"op": In(layout), "restart": In(1), "step": In(1), "last": Out(1),
                          "wi": Out(max(nw, 3) + 1), "c1": Out(nb), "c2": Out(nw + 1), "E": Out(A),
                          "Bb": Out(data.ArrayLayout(A, P))})
        self.nb, self.P = nb, P

    def elaborate(self, platform):
        m = Module()
        f, Bb, E = self.op, self.Bb, self.E
        c0, c1 = Counter("c0", self.nb, f.n0_m1), Counter("c1", self.nb, f.n1_m1)
        m.d.comb += [self.c1.eq(c1.value), self.last.eq(self.wi == f.words_m1)]

        def set_b(value_of):
            return [Bb[0].eq(value_of(Bb[0], 0))] + [Bb[b].eq(value_of(Bb[b], f.bmul[b])) for b in range(1, self.P)]

        with m.If(self.restart):
            m.d.sync += c0.restart() + c1.restart() + [self.wi.eq(0), self.c2.eq(0), E.eq(f.e_base)] + \
                set_b(lambda _, o: f.b_base + o)
        with m.Elif(self.step):
            m.d.sync += self.wi.eq(self.wi + 1)
            with m.If(~c0.last):
                m.d.sync += c0.step() + [E.eq(E + f.e_j0)] + set_b(lambda v, _: v + f.b_j0)
            with m.Elif(~c1.last):
                m.d.sync += c0.restart() + c1.step() + [E.eq(E + f.e_j1)] + set_b(lambda v, _: v + f.b_j1)
            with m.Else():
                m.d.sync += c0.restart() + c1.restart() + [self.c2.eq(self.c2 + 1), E.eq(E + f.e_j2)] + \
                    set_b(lambda v, _: v + f.b_j2)
        return m


class TapWalk(wiring.Component):
    """An event's fan-out, one lane word a cycle: the tap (``k0`` fastest, then ``k1``, ``k2``),
    ``FA``, the output word's offset from the input word's ``E``, and ``RO``, the weight row.
    ``restart``: no event (every tap counter at 0); ``start``: an event whose first row is
    ``row``; ``step``: the next tap, or after the last (``last``) back to the first.
    ``k0_last``: the tap's lane word is the last of its output row."""

    def __init__(self, program, layout):
        A, nb = addr_shape(program), _counter_width(layout)
        super().__init__({"op": In(layout), "restart": In(1), "start": In(1), "row": In(A), "step": In(1),
                          "FA": Out(A), "RO": Out(A), "k1": Out(nb), "k2": Out(nb), "k0_last": Out(1),
                          "last": Out(1)})
        self.nb = nb

    def elaborate(self, platform):
        m = Module()
        f, FA, RO = self.op, self.FA, self.RO
        k0, k1, k2 = (Counter(n, self.nb, limit) for n, limit in (("k0", f.f0_m1), ("k1", f.f1_m1), ("k2", f.f2_m1)))
        m.d.comb += [self.k1.eq(k1.value), self.k2.eq(k2.value), self.k0_last.eq(k0.last),
                     self.last.eq(k0.last & k1.last & k2.last)]
        first = k0.restart() + k1.restart() + k2.restart() + [FA.eq(0)]
        with m.If(self.restart):
            m.d.sync += first
        with m.Elif(self.step):
            with m.If(~k0.last):
                m.d.sync += k0.step() + [FA.eq(FA + f.fa_j0), RO.eq(RO + f.fw_j0)]
            with m.Elif(~k1.last):
                m.d.sync += k0.restart() + k1.step() + [FA.eq(FA + f.fa_j1), RO.eq(RO + f.fw_j1)]
            with m.Elif(~k2.last):
                m.d.sync += k0.restart() + k1.restart() + k2.step() + [FA.eq(FA + f.fa_j2), RO.eq(RO + f.fw_j2)]
            with m.Else():
                m.d.sync += first
        with m.If(self.start):
            m.d.sync += RO.eq(self.row)
        return m
