"""Cumulative spike counts: ``C(t) = C(t−1) + s(t)`` for every neuron of a spike frame, kept in CNT.

The TDEC ops need them (``Bcum(t)`` of the matmul's ``b`` operand: :func:`csdformer.sim.golden.tdec_matmul`,
before the scatter of frame ``t``), and so does the TDEC max-pool where the units are compact
(``C(t)`` of its input: :func:`csdformer.sim.golden.tdec_maxpool`, before its output pass; elsewhere
it counts its input itself, :attr:`~csdformer.hw.program.Program.pool_counts`). One word a cycle; the data three
cycles after the read; ``C(0) = 0`` (the first frame adds to nothing). Cycles: :func:`cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data

from ..sim import golden
from .memory import Q_LATENCY
from .program import Src
from .phase import PhaseUnit, Walk, WriteCursor, addr_shape, cumulate, idle_state, issue_pipe

__all__ = ["GOLDEN", "Cumulate", "cycles"]

#: The golden slice this unit is judged by (C(t) = C(t−1) + s(t); tests/test_cumulate.py).
GOLDEN = golden.cumulate


def cycles(op, program) -> int:
    """Over a window: ``words + 1`` a step (one word a cycle, and the cycle that ends the pass)."""
    words = op.f["b_wpf"] if op.src is Src.TDEC else op.f["in_words"]
    return program.T * (words + 1)


class Cumulate(PhaseUnit):
    """Ports: ``ctl``; ``spk`` (the frame: at ``frame.b`` for TDEC, ``frame.src`` for a compact max-pool),
    ``cnt`` / ``cnt_w``."""

    def __init__(self, program):
        super().__init__(program, program.layout["cumulate"].shape, reads=("spk", "cnt"), writes=("cnt",))

    def elaborate(self, platform):
        m = Module()
        p, f, fr = self.program, self.ctl.op, self.ctl.frame
        A = addr_shape(p)
        walk = Walk(f.words)
        wi = walk.word
        q = issue_pipe(m, data.StructLayout({"valid": 1, "first": 1}), Q_LATENCY, "q")
        issued = Signal()
        w = WriteCursor(m, "w", A, f.base, issue=issued, write=q[Q_LATENCY].valid)  # the CNT word written
        with m.FSM(name="cumulate"):
            idle_state(m, self.ctl, "CUM", walk.restart() + w.idle())
            with m.State("CUM"):
                m.d.comb += [self.spk.addr.eq(Mux(f.use_b, fr.b, fr.src) + wi), self.cnt.addr.eq(f.base + wi)]
                with m.If(walk.more):
                    m.d.comb += issued.eq(1)
                    m.d.sync += [q[1].valid.eq(1), q[1].first.eq(fr.first)] + walk.step()
                with m.Else():
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        last = q[Q_LATENCY]
        with m.If(last.valid):
            m.d.comb += [self.cnt_w.addr.eq(w.value), self.cnt_w.en.eq(1),
                         self.cnt_w.data.eq(cumulate(Mux(last.first, 0, self.cnt.q), self.spk.q, p.widths["cnt"],
                                                     p.lanes))]
        return m
