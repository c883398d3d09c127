"""The sequencer: runs the op program, one op after the other, each over the window's steps.

Per image: the pixels are written to IMG (one a cycle), then for each op ``OP_START`` waits until
the op's buffer slot (op index mod 2) holds its record (:mod:`csdformer.hw.loader`),
``OP_FETCH`` copies its op word from the staging RAM into the op register (a byte a cycle),
``OP_DECODE`` decodes its kinds, ``OP_SETUP`` sets the frame bases (and starts the bias pass, ``ACC ← bias``, for a scatter op), then per step
``t = 1 .. T (+ D)``: ``FRAME`` dispatches the step's phases (scatter then sink, TDEC's cumulative
counts first; or the sink alone; cumulative counts then max-pool; transpose), waits for each, and ``NEXT`` moves the frame on. After the head's steps it
starts the logits unit. It also keeps the performance counters (cycles, SOPs, spikes) and the
debug read port (an SPK word, :data:`DBG_LATENCY` cycles after its address, while idle).

When an op ends it frees its slot for the loader.

Cycles (:func:`cycles`): ``n_pixels`` for the image, per op ``3 + op_bytes + DATA_LATENCY``
(start, fetch, decode, setup; plus any wait for the op's record) ``+ 2`` per step (FRAME, NEXT)
``+ 2`` (the last FRAME, OP_END; the head's last FRAME starts the logits instead), besides the
phases' own cycles.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .common import one_hot_in_synthesis
from .flash_image import op_bytes
from .memory import DATA_LATENCY, ReadPort, WritePort
from .phase import PhaseControl
from .program import SCATTER_SRC, Program, Sink, Src

__all__ = ["Sequencer", "DBG_LATENCY", "cycles"]

DBG_LATENCY = DATA_LATENCY  # the debug port reads SPK's unregistered output


def cycles(op, program: Program, delay: int) -> int:
    """The sequencer's own cycles for ``op`` once its record is in (its phases' cycles come on top)."""
    steps = program.T + delay if op.sink is Sink.DIF else program.T
    return 3 + op_bytes(program) + DATA_LATENCY + 2 * steps + (1 if op.sink is Sink.LOGITS else 2)


class Sequencer(wiring.Component):
    """Runs ``program``; see the module docstring. Ports: ``image``, ``delay`` (sampled with the first
    pixel), ``busy``, ``cycles`` / ``spikes`` / ``sops`` (of the last image from the cycle after its
    last logit on; ``cycles`` counts up while an image runs), ``dbg_addr`` → ``dbg_data``; ``spk`` (debug read), ``img`` (pixel writes); a
    :class:`~csdformer.hw.phase.PhaseControl` per phase unit; ``sop`` (lanes added this cycle) and
    ``fired`` (spikes fired) from the units, summed into the counters."""

    def __init__(self, program: Program):
        self.program = p = program
        L = p.layout
        src = L["source"].shape
        super().__init__({
            "image": In(stream.Signature(unsigned(p.pixel_bits))),
            "delay": In(range(max(p.T, 2))),
            "busy": Out(1),
            "cycles": Out(32), "spikes": Out(32), "sops": Out(32),
            "dbg_addr": In(range(p.depths["spk"])),
            "dbg_data": Out(p.lanes),
            "spk": Out(ReadPort(p.depths["spk"], p.lanes)),
            "img": Out(WritePort(p.depths["img"], p.pixel_bits)),
            "op": Out(ReadPort(2 * op_bytes(p), 8)),
            "full": In(2), "free": Out(2), "slot": Out(1),
            "bias": Out(PhaseControl(p, L["bias"].shape)),
            "cumulate": Out(PhaseControl(p, L["cumulate"].shape)),
            "scatter": Out(PhaseControl(p, src["scatter"].shape)),
            "sink": Out(PhaseControl(p, L["sink_fields"].shape)),
            "maxpool": Out(PhaseControl(p, src["maxpool"].shape)),
            "transpose": Out(PhaseControl(p, src["transpose"].shape)),
            "logits": Out(PhaseControl(p, None, {"last": (In, 1)})),
            "sop": In(range(p.lanes + 1)),
            "fired": In(p.lanes),
        })

    def elaborate(self, platform):
        m = Module()
        p, T = self.program, self.program.T
        OB = op_bytes(p)
        op = Signal(range(max(p.depths["ops"], 2)))
        slot = Signal()
        m.d.comb += [slot.eq(op[0]), self.slot.eq(slot)]
        raw = Signal(8 * OB)  # the op register, shifted in a byte a cycle from the staging RAM
        reg = data.View(p.layout, raw[:p.layout.size])
        fi = Signal(range(OB + DATA_LATENCY + 1))
        # One-hot copies of the op's kinds, decoded once: no decode on the dispatch paths.
        src_is = {s: Signal(name=f"src_is_{s.name.lower()}") for s in Src}
        sink_is = {s: Signal(name=f"sink_is_{s.name.lower()}") for s in Sink}
        load = [v.eq(reg.src == s) for s, v in src_is.items()] + [v.eq(reg.sink == s) for s, v in sink_is.items()]
        scatter_src = src_is[SCATTER_SRC[0]] | src_is[SCATTER_SRC[1]] | src_is[SCATTER_SRC[2]]

        t, last_t = Signal(range(2 * T + 2)), Signal(range(2 * T + 2))
        dly = Signal.like(self.delay)
        frame = Signal(self.scatter.frame.shape())
        t_over = Signal()  # t > last_t: the op is done
        pix = Signal(range(p.n_pixels + 1))
        cyc = Signal(32)  # the image's cycles; stops with its last logit: the ``cycles`` port
        counting = Signal()
        phases = (self.bias, self.cumulate, self.scatter, self.sink, self.maxpool, self.transpose, self.logits)
        m.d.comb += [ph.frame.eq(frame) for ph in phases]
        m.d.comb += [self.bias.op.eq(reg.bias), self.cumulate.op.eq(reg.cumulate), self.scatter.op.eq(reg.source.scatter), self.sink.op.eq(reg.sink_fields),
                     self.maxpool.op.eq(reg.source.maxpool), self.transpose.op.eq(reg.source.transpose)]
        sops, spikes = Signal(32), Signal(32)
        m.d.sync += [sops.eq(sops + self.sop), spikes.eq(spikes + sum(self.fired[i] for i in range(p.lanes)))]

        def start(phase, then):
            m.d.comb += phase.start.eq(1)
            m.next = then

        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                m.d.comb += [self.image.ready.eq(1), self.spk.addr.eq(self.dbg_addr)]
                with m.If(self.image.valid):
                    m.d.comb += [self.img.addr.eq(0), self.img.data.eq(self.image.payload), self.img.en.eq(1)]
                    m.d.sync += [pix.eq(1), dly.eq(self.delay), cyc.eq(1), counting.eq(1), spikes.eq(0), sops.eq(0),
                                 op.eq(0)]
                    m.next = "OP_START" if p.n_pixels == 1 else "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.image.ready.eq(1)
                with m.If(self.image.valid):
                    m.d.comb += [self.img.addr.eq(pix), self.img.data.eq(self.image.payload), self.img.en.eq(1)]
                    m.d.sync += pix.eq(pix + 1)
                    with m.If(pix == p.n_pixels - 1):
                        m.next = "OP_START"
            with m.State("OP_START"):
                with m.If(self.full.bit_select(slot, 1)):
                    m.d.sync += fi.eq(0)
                    m.next = "OP_FETCH"
            with m.State("OP_FETCH"):
                with m.If(fi < OB):
                    m.d.comb += self.op.addr.eq(Mux(slot, OB, 0) + fi)
                with m.If(fi >= DATA_LATENCY):  # byte 0 first: after OB shifts it is at the bottom
                    m.d.sync += raw.eq(Cat(raw[8:], self.op.data))
                m.d.sync += fi.eq(fi + 1)
                with m.If(fi == OB + DATA_LATENCY - 1):
                    m.next = "OP_DECODE"
            with m.State("OP_DECODE"):
                m.d.sync += load + [t.eq(1), frame.first.eq(1), frame.integrate.eq(1), frame.fire.eq(dly == 0),
                                    t_over.eq(0)]
                m.next = "OP_SETUP"
            with m.State("OP_SETUP"):
                m.d.sync += [frame.src.eq(reg.frame.src), frame.b.eq(reg.frame.b), frame.cur.eq(reg.frame.cur),
                             frame.out.eq(reg.frame.out), last_t.eq(Mux(sink_is[Sink.DIF], T + dly, T))]
                with m.If(scatter_src):
                    start(self.bias, "WAIT_BIAS")
                with m.Else():
                    m.next = "FRAME"
            with m.State("FRAME"):
                with m.If(t_over):
                    with m.If(sink_is[Sink.LOGITS]):
                        start(self.logits, "WAIT_LOGITS")
                    with m.Else():
                        m.next = "OP_END"
                with m.Elif((src_is[Src.TDEC] & frame.integrate) | src_is[Src.MAXPOOL]):
                    start(self.cumulate, "WAIT_CUMULATE")
                with m.Elif((src_is[Src.SYN] & frame.integrate) | (src_is[Src.IMG] & frame.first)):
                    start(self.scatter, "WAIT_SCATTER")
                with m.Elif(src_is[Src.TRANSPOSE]):
                    start(self.transpose, "WAIT_TRANSPOSE")
                with m.Elif(sink_is[Sink.LOGITS]):
                    m.next = "NEXT"
                with m.Else():
                    start(self.sink, "WAIT_SINK")
            with m.State("WAIT_BIAS"):
                with m.If(self.bias.done):
                    m.next = "FRAME"
            with m.State("WAIT_CUMULATE"):
                with m.If(self.cumulate.done):
                    with m.If(src_is[Src.MAXPOOL]):
                        start(self.maxpool, "WAIT_MAXPOOL")
                    with m.Else():
                        start(self.scatter, "WAIT_SCATTER")
            with m.State("WAIT_SCATTER"):
                with m.If(self.scatter.done):
                    with m.If(sink_is[Sink.LOGITS]):
                        m.next = "NEXT"
                    with m.Else():
                        start(self.sink, "WAIT_SINK")
            for name, phase in (("SINK", self.sink), ("MAXPOOL", self.maxpool), ("TRANSPOSE", self.transpose)):
                with m.State(f"WAIT_{name}"):
                    with m.If(phase.done):
                        m.next = "NEXT"
            with m.State("WAIT_LOGITS"):
                with m.If(self.logits.last):  # the count stops after this cycle's
                    m.d.sync += [counting.eq(0), self.spikes.eq(spikes), self.sops.eq(sops)]
                with m.If(self.logits.done):
                    m.d.comb += self.free.eq(Mux(slot, 0b10, 0b01))
                    m.next = "IDLE"
            with m.State("NEXT"):
                st = reg.frame
                m.d.sync += [t.eq(t + 1), frame.first.eq(0), frame.integrate.eq(t < T), frame.fire.eq(t >= dly),
                             t_over.eq(t >= last_t), frame.src.eq(frame.src + st.src_step),
                             frame.b.eq(frame.b + st.b_step), frame.cur.eq(frame.cur + st.cur_step)]
                with m.If(~sink_is[Sink.DIF] | frame.fire):
                    m.d.sync += frame.out.eq(frame.out + st.out_step)
                m.next = "FRAME"
            with m.State("OP_END"):
                m.d.comb += self.free.eq(Mux(slot, 0b10, 0b01))
                m.d.sync += op.eq(op + 1)
                m.next = "OP_START"
        one_hot_in_synthesis(fsm)
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE")), self.dbg_data.eq(self.spk.data), self.cycles.eq(cyc)]
        with m.If(counting):
            m.d.sync += cyc.eq(cyc + 1)
        return m
