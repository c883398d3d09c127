"""The bias pass: ``ACC ← bias``, once per synaptic op, before its first frame, so the bias enters
at frame 1 only (:func:`csdformer.sim.golden.synaptic_frames`); later frames find ACC cleared by
the sink. One word a cycle from the bias ROM (its address a register: no adder before the ROM),
the data three cycles after the read. Cycles: :func:`cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..sim import golden
from .memory import Q_LATENCY, ReadPort, WritePort
from .phase import PhaseControl, addr_shape, issue_pipe, lane_word, lanes_of

__all__ = ["GOLDEN", "Bias", "cycles"]

#: The golden slice this unit is judged by (the bias at frame 1 only; tests/test_bias.py).
GOLDEN = golden.synaptic_frames


def cycles(op, program) -> int:
    """``acc_words + 1``: one word a cycle, and the cycle that ends the pass."""
    return op.f["acc_words"] + 1


class Bias(wiring.Component):
    """Ports: ``ctl``; ``bias`` (the ROM's read port), ``acc_w``."""

    def __init__(self, program):
        self.program = p = program
        P, W, D = p.lanes, p.widths, p.depths
        super().__init__({
            "ctl": In(PhaseControl(p, p.layout["bias"].shape)),
            "bias": Out(ReadPort(D["bias"], P * W["bias"])),
            "acc_w": Out(WritePort(D["acc"], P * W["acc"])),
        })

    def elaborate(self, platform):
        m = Module()
        p, f = self.program, self.ctl.op
        P, W, A = p.lanes, p.widths, addr_shape(p)
        wi, g, ra = Signal(len(f.words)), Signal(len(f.groups_m1)), Signal(range(p.depths["bias"]))
        q = issue_pipe(m, data.StructLayout({"valid": 1, "w": A}), Q_LATENCY, "q")
        m.d.comb += self.bias.addr.eq(ra)
        with m.FSM(name="bias"):
            with m.State("IDLE"):
                with m.If(self.ctl.start):
                    m.d.sync += [wi.eq(0), g.eq(0), ra.eq(f.base)]
                    m.next = "BIAS"
            with m.State("BIAS"):
                with m.If(wi < f.words):
                    m.d.sync += [q[1].valid.eq(1), q[1].w.eq(wi), wi.eq(wi + 1),
                                 g.eq(Mux(g == f.groups_m1, 0, g + 1)), ra.eq(Mux(g == f.groups_m1, f.base, ra + 1))]
                with m.Else():
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        bias, word = lanes_of(self.bias.q, W["bias"], P), Signal(lane_word(W["acc"], P))
        m.d.comb += [word[i].eq(Mux(f.has_bias, bias[i], 0)) for i in range(P)]
        with m.If(q[Q_LATENCY].valid):
            m.d.comb += [self.acc_w.addr.eq(q[Q_LATENCY].w), self.acc_w.data.eq(word), self.acc_w.en.eq(1)]
        return m
