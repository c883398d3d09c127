"""Proof harness: :class:`~csdformer.hw.scatter.LaneAccumulate` (ACC's read-modify-write pipeline)
on the product's ACC memory (:class:`~csdformer.hw.memory.BankedMemory`, transparent, as
:meth:`Accelerator.memories` builds it), against its reference step function.

The reference (golden semantics, :mod:`csdformer.hw.scatter`'s docstring and
:func:`csdformer.sim.golden.tdec_matmul`): an event on word ``addr`` makes, for every lane ``l``,

    ``ACC[addr][l] ← ACC[addr][l] + addend[l]``, where ``addend`` is ``w`` (a spike), ``w << b``
    (bit ``b`` of a pixel) or ``a(t)·Bcum(t) + b(t)·Acum(t−1)`` (TDEC),

in the order the events enter, each event's operands (``w_q``, ``spk_q``, ``cnt_q``) read three
cycles after it enters (``Q_LATENCY``). The harness keeps that reference in wide integers and
asserts, for every event, the write five cycles after it enters: enable, address, ``sop`` and each
lane's value **equal to the exact sum** (a wrapped lane differs from it). Any events, back to back
on one word or not (forwarding one and two stages ahead, transparency three ahead), any mode.

Assumed (the artifact's bounds, :mod:`.ranges`): ACC starts (the bias pass) and stays within
:func:`~.ranges.acc_range` (each partial sum of a frame does), weights within the program's weight
ROM range, counts ``≤ T``, pixel bits ``< pixel_bits``. ACC starts with any in-range words: the
harness writes them, one a cycle, before the first event.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import connect

from ...hw.memory import BankedMemory, Q_LATENCY
from ...hw.phase import lanes_of
from ...hw.scatter import LaneAccumulate
from .ranges import acc_range

__all__ = ["AccumulateHarness"]


class AccumulateHarness(Elaboratable):
    """``LaneAccumulate`` of ``program`` (its lanes, widths, bounds) over an ACC of ``depth`` words.

    ``acc_width``: build the unit and ACC with this width instead of ``program.widths["acc"]``
    (the failing variant: one bit fewer)."""

    def __init__(self, program, *, depth: int = 4, acc_width: int | None = None):
        widths = dict(program.widths)
        if acc_width is not None:
            widths["acc"] = acc_width
        self.P, self.W, self.depth, self.T = program.lanes, widths, depth, program.T
        self.pixel_bits = program.pixel_bits
        self.mwidth = max(program.lanes, program.pixel_bits)  # as Scatter builds it
        # The unit sees a program of ``depth`` ACC words in one buffer (the buffer bit is one more
        # address bit to it): its address compares are narrower, its logic the same.
        self.shim = SimpleNamespace(lanes=self.P, widths=widths, depths={"acc": depth},
                                    port_shape=lambda name: (depth, self.P * widths["acc"]))
        self.lo, self.hi = acc_range(program)
        self.w_lo, self.w_hi = int(program.weights.min()), int(program.weights.max())

    def elaborate(self, platform):
        m = Module()
        P, W, T = self.P, self.W, self.T
        m.submodules.dut = dut = LaneAccumulate(self.shim, self.mwidth)
        m.submodules.acc = mem = BankedMemory(P * W["acc"], self.depth, writers=2, transparent=True)
        connect(m, dut.acc, mem.read[0])
        connect(m, dut.acc_w, mem.write[0])
        rw = W["acc"] + W["weight"] + self.mwidth + 4  # the reference: wider than any sum of two operands
        # The reference holds one word, at any address (``watch``, a free constant): a proof for
        # every address at once, with one word of state beside the memory.
        watch = Signal(range(self.depth), name="watch")
        m.d.comb += [watch.eq(AnyConst(len(watch))), Assume(watch < self.depth)]
        ref = [Signal(signed(rw), name=f"ref{ln}") for ln in range(P)]
        in_range = lambda v: (v >= self.lo) & (v <= self.hi)  # noqa: E731

        # ACC's initial contents (the bias pass): any in-range word, one a cycle, before the first event.
        ic = Signal(range(self.depth + 1), name="init_count")
        init = Signal(name="init")
        word = Signal(data.ArrayLayout(signed(W["acc"]), P), name="init_word")
        m.d.comb += [init.eq(ic < self.depth), word.eq(AnySeq(P * W["acc"]))]
        with m.If(init):
            w1 = mem.write[1]
            m.d.comb += [w1.addr.eq(ic), w1.data.eq(word), w1.en.eq(1)]
            m.d.sync += ic.eq(ic + 1)
            for ln in range(P):
                m.d.comb += Assume(in_range(word[ln]))
                with m.If(ic == watch):
                    m.d.sync += ref[ln].eq(word[ln])

        # Mode (constant over a phase) and free events and operands.
        img, tdec = Signal(name="img"), Signal(name="tdec")
        m.d.comb += [img.eq(AnyConst(1)), tdec.eq(AnyConst(1)), Assume(~(img & tdec)),
                     dut.img.eq(img), dut.tdec.eq(tdec)]
        ev = Signal(dut.ev, name="ev")
        m.d.comb += [ev.eq(AnySeq(dut.ev.size)), dut.event.eq(ev)]
        m.d.comb += [Assume(~(init & ev.valid)), Assume(ev.addr < self.depth), Assume(ev.lanes <= P),
                     Assume(ev.prev <= T), Assume(~img | (ev.shift < self.pixel_bits))]
        w_q, spk_q, cnt_q = Signal(P * W["weight"]), Signal(P), Signal(P * W["cnt"])
        m.d.comb += [w_q.eq(AnySeq(len(w_q))), spk_q.eq(AnySeq(P)), cnt_q.eq(AnySeq(len(cnt_q))),
                     dut.w_q.eq(w_q), dut.spk_q.eq(spk_q), dut.cnt_q.eq(cnt_q)]
        w, bc = lanes_of(w_q, W["weight"], P), lanes_of(cnt_q, W["cnt"], P, sign=False)
        for ln in range(P):
            m.d.comb += [Assume((w[ln] >= self.w_lo) & (w[ln] <= self.w_hi)), Assume(bc[ln] <= T)]

        # The reference pipeline: the event, its operands read Q_LATENCY cycles on, its write two later.
        e = [ev] + [Signal(dut.ev, name=f"e{i}") for i in range(1, 6)]
        m.d.sync += [e[i].eq(e[i - 1]) for i in range(1, 6)]
        ad = [[Signal(signed(rw), name=f"addend{i}_{ln}") for ln in range(P)] for i in range(Q_LATENCY, 6)]
        eq = e[Q_LATENCY]
        for ln in range(P):
            m.d.comb += ad[0][ln].eq(Mux(tdec, Mux(eq.a, bc[ln], 0) + Mux(spk_q[ln], eq.prev, 0),
                                         Mux(img, w[ln] << eq.shift, w[ln])))
            m.d.sync += [ad[i][ln].eq(ad[i - 1][ln]) for i in range(1, len(ad))]
        last = e[5]
        m.d.comb += [Assert(dut.acc_w.en == last.valid), Assert(dut.sop == Mux(last.valid, last.lanes, 0))]
        got = lanes_of(dut.acc_w.data, W["acc"], P)
        with m.If(last.valid):
            m.d.comb += Assert(dut.acc_w.addr == last.addr)
        with m.If(last.valid & (last.addr == watch)):
            for ln in range(P):
                new = Signal(signed(rw), name=f"new{ln}")
                m.d.comb += [new.eq(ref[ln] + ad[-1][ln]), Assume(in_range(new)), Assert(got[ln] == new)]
                m.d.sync += ref[ln].eq(new)
        return m
