"""The sequencer's step counter (:class:`~csdformer.hw.sequencer.Sequencer`): an op's steps and the
frame each one sees."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .phase import frame_layout
from .program import Program

__all__ = ["StepCounter"]


class StepCounter(wiring.Component):
    """Step ``t = 1 .. T`` of an op (``T + D`` for a DIF op, D the image's delay) and its frame: the
    flags (``first``: t = 1, ``integrate``: t ≤ T, ``fire``: t > D), its ACC buffer and the operands' bases, each
    moved on by its step every step (``out`` of a DIF op only where it fired).

    Parameters
    ----------
    program : Program
        ``T`` and the frame's shapes.

    Members
    -------
    image : In(1)
        A new image: ``delay`` sampled.
    delay : In(range(max(T, 2)))
        The image's delay D.
    first : In(1)
        Step 1's flags.
    setup : In(1)
        Step 1's bases from ``bases``; the op's last step from ``dif``.
    step : In(1)
        The next step.
    bases : In(program.layout["frame"].shape)
        The op's frame bases and steps.
    dif : In(1)
        The op's sink is DIF.
    lag : In(1)
        The op's sink runs a step behind its scatter, beside the next step's: its frames take the ACC
        buffers in turn (``bank``), else all buffer 0.
    frame : Out(frame_layout(program))
        The step's frame.
    over : Out(1)
        Past the op's last step: the op is done.
    held_delay : Out(range(max(T, 2)))
        The image's delay D, as sampled (with a tail, :attr:`Program.sink_tail`: the tail's
        passes are ``D``).
    """

    def __init__(self, program: Program):
        self.program = p = program
        super().__init__({
            "image": In(1), "delay": In(range(max(p.T, 2))), "first": In(1), "setup": In(1), "step": In(1),
            "bases": In(p.layout["frame"].shape), "dif": In(1), "lag": In(1), "frame": Out(frame_layout(p)),
            "over": Out(1), **({"held_delay": Out(range(max(p.T, 2)))} if p.sink_tail else {}),
        })

    def elaborate(self, platform):
        m = Module()
        T, frame, st = self.program.T, self.frame, self.bases
        t, last_t = Signal(range(2 * T + 2)), Signal(range(2 * T + 2))
        dly = Signal.like(self.delay)
        if self.program.sink_tail:
            m.d.comb += self.held_delay.eq(dly)
        with m.If(self.image):
            m.d.sync += dly.eq(self.delay)
        with m.If(self.first):
            m.d.sync += [t.eq(1), frame.first.eq(1), frame.integrate.eq(1), frame.fire.eq(dly == 0),
                         frame.bank.eq(0), self.over.eq(0)]
        with m.If(self.setup):
            m.d.sync += [frame.src.eq(st.src), frame.b.eq(st.b), frame.cur.eq(st.cur), frame.out.eq(st.out),
                         last_t.eq(Mux(self.dif, T + dly, T))]
        with m.If(self.step):
            m.d.sync += [t.eq(t + 1), frame.first.eq(0), frame.integrate.eq(t < T), frame.fire.eq(t >= dly),
                         self.over.eq(t >= last_t), frame.src.eq(frame.src + st.src_step),
                         frame.b.eq(frame.b + st.b_step), frame.cur.eq(frame.cur + st.cur_step),
                         frame.bank.eq(frame.bank ^ self.lag)]
            with m.If(~self.dif | frame.fire):
                m.d.sync += frame.out.eq(frame.out + st.out_step)
        return m
