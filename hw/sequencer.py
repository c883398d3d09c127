"""The sequencer: runs the op program, one op after the other, each over the window's steps.

Per image: the pixels are written to IMG (one a cycle), then for each op ``OP_START`` waits until
the op's buffer slot (op index mod 2) holds its record (:mod:`csdformer.hw.loader`),
``OP_FETCH`` copies its op word from the staging RAM into the op register (a byte a cycle),
``OP_DECODE`` decodes its kinds, ``OP_SETUP`` sets the frame bases (and starts the bias pass, ``ACC ← bias``, for a scatter op), then per step
``t = 1 .. T (+ D)``: ``FRAME`` dispatches the step's phases (scatter then sink, TDEC's cumulative
counts first; or the sink alone; cumulative counts then max-pool; transpose), waits for each, and ``NEXT`` moves the frame on. After the head's steps it
starts the logits unit.

With two ACC buffers (:attr:`~csdformer.hw.program.Program.acc_buffers`) the sink of an op that
scatters into a DIF or a store (``lag``) runs one step behind: step ``t``'s ``FRAME`` starts the
scatter of frame ``t`` and, beside it, the sink of frame ``t − 1`` (the frame ``NEXT`` left,
``late``, with its own ACC buffer), and the step ends when both are done; the fire-only steps run
the sink of the step before, and the op's last sink follows its last step. A step then costs
``max(scatter, sink)`` instead of their sum (:func:`csdformer.hw.netmodel.op_costs`). It also keeps the performance counters (cycles, SOPs, spikes) and the
debug read port (an SPK word, :data:`DBG_LATENCY` cycles after its address, while idle).

When an op ends it frees its slot for the loader.

Units: one FSM (its states in three groups: the image, the op's record, the op's steps) over
:class:`~csdformer.hw.sequencer_op.OpRegister` (the record and its one-hot kinds),
:class:`~csdformer.hw.sequencer_steps.StepCounter` (``t`` and the frame) and
:class:`~csdformer.hw.sequencer_counters.PerfCounters`.

Cycles (:func:`cycles`): ``n_pixels`` for the image, per op ``3 + op_bytes + DATA_LATENCY``
(start, fetch, decode, setup; plus any wait for the op's record; resident weights: ``3 + 1``, the
record prefetched) ``+ 2`` per step (FRAME, NEXT)
``+ 2`` (the last FRAME, OP_END; the head's last FRAME starts the logits instead), besides the
phases' own cycles.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .common import one_hot_in_synthesis
from .flash_image import op_bytes
from .memory import DATA_LATENCY, ReadPort, WritePort
from .phase import PhaseControl, frame_layout
from .program import SCATTER_SRC, Program, Sink, Src
from .sequencer_counters import PerfCounters
from .sequencer_op import OpRegister
from .sequencer_steps import StepCounter

__all__ = ["Sequencer", "DBG_LATENCY", "cycles", "lags"]

DBG_LATENCY = DATA_LATENCY  # the debug port reads SPK's unregistered output


def lags(op, program: Program) -> bool:
    """Whether ``op``'s sink runs a step behind its scatter, beside the next step's (module
    docstring): two ACC buffers, and a scatter of spikes (not the encoding layer's, which scatters
    once for every step) into a DIF or a store."""
    return program.acc_buffers > 1 and op.src in (Src.SYN, Src.TDEC) and op.sink in (Sink.DIF, Sink.STORE)


def cycles(op, program: Program, delay: int) -> int:
    """The sequencer's own cycles for ``op`` once its record is in (its phases' cycles come on top):
    the record's copy is ``op_bytes + DATA_LATENCY`` cycles, or one with resident weights (the
    record was prefetched while the op before ran: :class:`~csdformer.hw.sequencer_op.OpRegister`;
    a wait for it, should that op be shorter, is the model's, :mod:`csdformer.hw.netmodel`)."""
    steps = program.T + delay if op.sink is Sink.DIF else program.T
    fetch = 1 if program.resident else op_bytes(program) + DATA_LATENCY
    return 3 + fetch + 2 * steps + (1 if op.sink is Sink.LOGITS else 2)


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
            "op": Out(ReadPort(p.op_slots * op_bytes(p), 8)),
            "full": In(2), "free": Out(2), "slot": Out(1), "records_in": In(1),
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
        p = self.program
        m.submodules.record = rec = OpRegister(p)  # the op's record and its kinds
        m.submodules.steps = steps = StepCounter(p)  # the op's step and its frame
        m.submodules.counters = counters = PerfCounters(p.lanes)
        wiring.connect(m, rec.ram, wiring.flipped(self.op))
        m.d.comb += rec.records_in.eq(self.records_in)
        reg = rec.fields
        # The op's sink runs a step behind its scatter, in the other ACC buffer (module docstring).
        self.lag = lag = Signal()
        if p.acc_buffers > 1:
            m.d.comb += lag.eq((rec.src.syn | rec.src.tdec) & (rec.sink.dif | rec.sink.store))
        late = Signal(frame_layout(p))  # the frame of the step before: the lagging sink's
        self.sink_busy = sink_busy = Signal()
        with m.If(steps.step):
            m.d.sync += late.eq(steps.frame)
        with m.If(self.sink.start):
            m.d.sync += sink_busy.eq(1)
        with m.If(self.sink.done):
            m.d.sync += sink_busy.eq(0)
        m.d.comb += [self.slot.eq(rec.slot), steps.delay.eq(self.delay), steps.bases.eq(reg.frame),
                     steps.dif.eq(rec.sink.dif), steps.lag.eq(lag), counters.sop.eq(self.sop),
                     counters.fired.eq(self.fired),
                     self.cycles.eq(counters.cycles), self.spikes.eq(counters.spikes), self.sops.eq(counters.sops)]
        phases = (self.bias, self.cumulate, self.scatter, self.maxpool, self.transpose, self.logits)
        m.d.comb += [ph.frame.eq(steps.frame) for ph in phases]
        m.d.comb += self.sink.frame.eq(Mux(lag, late, steps.frame))
        m.d.comb += [self.bias.op.eq(reg.bias), self.cumulate.op.eq(reg.cumulate), self.sink.op.eq(reg.sink_fields),
                     self.scatter.op.eq(reg.source.scatter), self.maxpool.op.eq(reg.source.maxpool),
                     self.transpose.op.eq(reg.source.transpose)]
        # One FSM, its states built in three groups: the image, the op's record, the op's steps.
        with m.FSM(name="seq") as fsm:
            self._load_image(m, rec, steps, counters)
            self._fetch_op(m, rec, steps)
            self._run_steps(m, rec, steps, counters)
        one_hot_in_synthesis(fsm)
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE")), self.dbg_data.eq(self.spk.data)]
        return m

    def _load_image(self, m, rec, steps, counters):
        """IDLE (debug reads; the first pixel starts the image) and LOAD: the pixels into IMG."""
        pix = Signal(range(self.program.n_pixels + 1))
        with m.State("IDLE"):
            m.d.comb += [self.image.ready.eq(1), self.spk.addr.eq(self.dbg_addr)]
            with m.If(self.image.valid):
                m.d.comb += [self.img.addr.eq(0), self.img.data.eq(self.image.payload), self.img.en.eq(1),
                             steps.image.eq(1), counters.begin.eq(1), rec.rewind.eq(1)]
                m.d.sync += pix.eq(1)
                m.next = "OP_START" if self.program.n_pixels == 1 else "LOAD"
        with m.State("LOAD"):
            m.d.comb += self.image.ready.eq(1)
            with m.If(self.image.valid):
                m.d.comb += [self.img.addr.eq(pix), self.img.data.eq(self.image.payload), self.img.en.eq(1)]
                m.d.sync += pix.eq(pix + 1)
                with m.If(pix == self.program.n_pixels - 1):
                    m.next = "OP_START"

    def _fetch_op(self, m, rec, steps):
        """OP_START (until the op's record is in), OP_FETCH, OP_DECODE, OP_SETUP (the bias pass of a
        scatter op starts here)."""
        with m.State("OP_START"):
            with m.If(self.full.bit_select(rec.slot, 1)):
                m.d.comb += rec.start.eq(1)
                m.next = "OP_FETCH"
        with m.State("OP_FETCH"):
            m.d.comb += rec.fetch.eq(1)
            with m.If(rec.fetched):
                m.next = "OP_DECODE"
        with m.State("OP_DECODE"):
            m.d.comb += [rec.decode.eq(1), steps.first.eq(1)]
            m.next = "OP_SETUP"
        with m.State("OP_SETUP"):
            m.d.comb += steps.setup.eq(1)
            with m.If(Cat(rec.src[s.name.lower()] for s in SCATTER_SRC).any()):
                _start(m, self.bias, "WAIT_BIAS")
            with m.Else():
                m.next = "FRAME"

    def _run_steps(self, m, rec, steps, counters):
        """FRAME (the step's phases started in turn, each waited for), NEXT (the next step), and the
        op's end: OP_END, or the logits of the head."""
        src, sink, frame = rec.src, rec.sink, steps.frame
        with m.State("FRAME"):
            beside = self.lag & ~frame.first  # a lagging sink starts with the step's front phase
            with m.If(steps.over):
                with m.If(sink.logits):
                    _start(m, self.logits, "WAIT_LOGITS")
                with m.Elif(self.lag):  # the last step's sink
                    _start(m, self.sink, "WAIT_LAST_SINK")
                with m.Else():
                    m.next = "OP_END"
            with m.Elif((src.tdec & frame.integrate) | src.maxpool):
                _start(m, self.cumulate, "WAIT_CUMULATE")
                m.d.comb += self.sink.start.eq(beside)
            with m.Elif((src.syn & frame.integrate) | (src.img & frame.first)):
                _start(m, self.scatter, "WAIT_SCATTER")
                m.d.comb += self.sink.start.eq(beside)
            with m.Elif(src.transpose):
                _start(m, self.transpose, "WAIT_TRANSPOSE")
            with m.Elif(sink.logits):
                m.next = "NEXT"
            with m.Else():
                _start(m, self.sink, "WAIT_SINK")
        with m.State("WAIT_BIAS"):
            with m.If(self.bias.done):
                m.next = "FRAME"
        with m.State("WAIT_CUMULATE"):
            with m.If(self.cumulate.done):
                with m.If(src.maxpool):
                    _start(m, self.maxpool, "WAIT_MAXPOOL")
                with m.Else():
                    _start(m, self.scatter, "WAIT_SCATTER")
        with m.State("WAIT_SCATTER"):
            with m.If(self.scatter.done):
                with m.If(sink.logits):
                    m.next = "NEXT"
                with m.Elif(self.lag & self.sink_busy & ~self.sink.done):  # the sink beside it: waited for
                    m.next = "JOIN"
                with m.Elif(self.lag):
                    m.next = "NEXT"
                with m.Else():
                    _start(m, self.sink, "WAIT_SINK")
        with m.State("JOIN"):
            with m.If(self.sink.done):
                m.next = "NEXT"
        with m.State("WAIT_LAST_SINK"):
            with m.If(self.sink.done):
                m.next = "OP_END"
        for name, phase in (("SINK", self.sink), ("MAXPOOL", self.maxpool), ("TRANSPOSE", self.transpose)):
            with m.State(f"WAIT_{name}"):
                with m.If(phase.done):
                    m.next = "NEXT"
        with m.State("WAIT_LOGITS"):
            with m.If(self.logits.last):  # the count stops after this cycle's
                m.d.comb += counters.end.eq(1)
            with m.If(self.logits.done):
                m.d.comb += self.free.eq(Mux(rec.slot, 0b10, 0b01))
                m.next = "IDLE"
        with m.State("NEXT"):
            m.d.comb += steps.step.eq(1)
            m.next = "FRAME"
        with m.State("OP_END"):
            m.d.comb += [self.free.eq(Mux(rec.slot, 0b10, 0b01)), rec.advance.eq(1)]
            m.next = "OP_START"


def _start(m, phase, then):
    """Start ``phase`` and wait for it in state ``then``."""
    m.d.comb += phase.start.eq(1)
    m.next = then
