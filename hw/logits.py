"""Logits and argmax: after the head's steps ACC holds every class's sum over all frames and
tokens (:func:`csdformer.sim.golden.logits`); the logits leave one a beat, then the predicted class
(:func:`csdformer.sim.golden.argmax`: the lowest index wins ties).

Per ACC word: its read (``OUT_RD``), three cycles to ACC's registered output (no block-RAM output
feeds logic: the 100 MHz ECP5 builds need that), then its lanes leave from a shift register (no
lane multiplexer). Each logit sent is the next cycle's candidate, compared with the best so far
there (the compare's carry chain does not meet the consumer's ``ready``, which came from across
the chip: the iCEBreaker's critical path); so the prediction is valid one cycle after the last
logit's, once the last candidate is in. Cycles: :func:`cycles` (until the last logit; the
prediction waits for its consumer).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from ..sim import golden
from .common import unsigned_bits
from .memory import Q_LATENCY
from .phase import PhaseUnit, idle_state

__all__ = ["GOLDEN", "Logits", "cycles"]

#: The golden slice this unit is judged by (the sum over frames; the lowest index wins ties; tests/test_logits.py).
GOLDEN = (golden.logits, golden.argmax)


def cycles(program) -> int:
    """Cycles from the start to the last logit: ``Q_LATENCY + 1`` per ACC word, one a logit."""
    P, nc = program.lanes, program.num_classes
    return sum(Q_LATENCY + 1 + min(P, nc - i) for i in range(0, nc, P))


class Logits(PhaseUnit):
    """Ports: ``ctl`` (with ``last``: the last logit leaves this cycle), ``acc`` (read), ``logits``,
    ``prediction``."""

    def __init__(self, program):
        self.width = program.widths["acc"]
        super().__init__(program, None, reads=("acc",), ctl_extra={"last": (In, 1)}, extra={
            "logits": Out(stream.Signature(signed(self.width))),
            "prediction": Out(stream.Signature(unsigned(max(1, unsigned_bits(program.num_classes - 1))))),
        })

    def elaborate(self, platform):
        m = Module()
        P, nc, W = self.program.lanes, self.program.num_classes, self.width
        wi = Signal(range(max(2, -(-nc // P))))
        lane = Signal(range(P + 1))
        cls = Signal(range(nc + 1))
        best, best_i = Signal(signed(W)), Signal(range(max(nc, 2)))
        word = Signal(P * W)
        # The logit sent last cycle (``cand_v``), taken unconditionally: only ``cand_v`` sees ``ready``.
        cand, cand_i, cand_v = Signal(signed(W)), Signal.like(best_i), Signal()
        m.d.sync += [cand.eq(word[:W].as_signed()), cand_i.eq(cls), cand_v.eq(0)]
        with m.If(cand_v & ((cand_i == 0) | (cand > best))):  # lowest index wins ties
            m.d.sync += [best.eq(cand), best_i.eq(cand_i)]
        with m.FSM(name="logits"):
            idle_state(m, self.ctl, "OUT_RD", [wi.eq(0)])
            with m.State("OUT_RD"):
                m.d.comb += self.acc.addr.eq(wi)
                m.d.sync += lane.eq(0)
                m.next = "OUT_WAIT1"
            for i in range(1, Q_LATENCY):  # ACC's registered output (no block-RAM output into logic)
                with m.State(f"OUT_WAIT{i}"):
                    m.next = f"OUT_WAIT{i + 1}" if i + 1 < Q_LATENCY else "OUT_LOAD"
            with m.State("OUT_LOAD"):
                m.d.sync += word.eq(self.acc.q)
                m.next = "OUT_SEND"
            with m.State("OUT_SEND"):
                val = word[:W].as_signed()
                m.d.comb += [self.logits.valid.eq(1), self.logits.payload.eq(val)]
                with m.If(self.logits.ready):
                    m.d.sync += [cand_v.eq(1), cls.eq(cls + 1), lane.eq(lane + 1), word.eq(word >> W)]
                    with m.If(cls == nc - 1):
                        m.d.comb += self.ctl.last.eq(1)
                        m.d.sync += cls.eq(0)
                        m.next = "PRED"
                    with m.Elif(lane == P - 1):
                        m.d.sync += wi.eq(wi + 1)
                        m.next = "OUT_RD"
            with m.State("PRED"):  # the last logit's candidate is compared in its first cycle
                m.d.comb += [self.prediction.valid.eq(~cand_v), self.prediction.payload.eq(best_i)]
                with m.If(self.prediction.ready & ~cand_v):
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        return m
