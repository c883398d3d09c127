"""The bias pass: ``ACC ← bias``, once per synaptic op, before its first frame, so the bias enters
at frame 1 only (:func:`csdformer.sim.golden.synaptic_frames`); later frames find ACC cleared by
the sink. One word a cycle from the bias ROM (its address a register: no adder before the ROM),
the data three cycles after the read. Cycles: :func:`cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data

from ..sim import golden
from .memory import Q_LATENCY
from .phase import PhaseUnit, RowWalk, WriteCursor, idle_state, issue_pipe, lane_word, lanes_of

__all__ = ["GOLDEN", "Bias", "cycles"]

#: The golden slice this unit is judged by (the bias at frame 1 only; tests/test_bias.py).
GOLDEN = golden.synaptic_frames


def cycles(op, program) -> int:
    """``acc_words + 1``: one word a cycle, and the cycle that ends the pass."""
    return op.f["acc_words"] + 1


class Bias(PhaseUnit):
    """Ports: ``ctl``; ``bias`` (the ROM's read port), ``acc_w``."""

    def __init__(self, program):
        super().__init__(program, program.layout["bias"].shape, reads=("bias",), writes=("acc",))

    def elaborate(self, platform):
        m = Module()
        p, f = self.program, self.ctl.op
        P, W = p.lanes, p.widths
        walk = RowWalk(f.words, f.groups_m1, f.base, p.depths["bias"])
        q = issue_pipe(m, data.StructLayout({"valid": 1}), Q_LATENCY, "q")
        issued = Signal()
        w = WriteCursor(m, "w", len(walk.word), 0, issue=issued, write=q[Q_LATENCY].valid)  # the ACC word written
        m.d.comb += self.bias.addr.eq(walk.rom)
        with m.FSM(name="bias"):
            idle_state(m, self.ctl, "BIAS", walk.restart() + w.idle())
            with m.State("BIAS"):
                with m.If(walk.more):
                    m.d.comb += issued.eq(1)
                    m.d.sync += [q[1].valid.eq(1)] + walk.step()
                with m.Else():
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        bias, word = lanes_of(self.bias.q, W["bias"], P), Signal(lane_word(W["acc"], P))
        m.d.comb += [word[i].eq(Mux(f.has_bias, bias[i], 0)) for i in range(P)]
        with m.If(q[Q_LATENCY].valid):
            m.d.comb += [self.acc_w.addr.eq(w.value), self.acc_w.data.eq(word), self.acc_w.en.eq(1)]
        return m
