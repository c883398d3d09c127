"""The sequencer: runs the op program, one op after the other, each over the window's steps.

Per image: the pixels are written to IMG (one a cycle), then for each op ``OP_START`` waits until
the op's buffer slot (op index mod 2) holds its record (:mod:`csdformer.hw.loader`),
``OP_FETCH`` copies its op word from the staging RAM into the op register (a byte a cycle),
``OP_DECODE`` decodes its kinds, ``OP_SETUP`` sets the frame bases (and starts the bias pass, ``ACC ← bias``, for a scatter op), then per step
``t = 1 .. T (+ D)``: ``FRAME`` dispatches the step's phases (scatter then sink, TDEC's cumulative
counts first; or the sink alone; the max-pool, after the cumulative counts of its input where the
units are compact; transpose), waits for each, and ``NEXT`` moves the frame on. After the head's steps it
starts the logits unit.

With two ACC buffers (:attr:`~csdformer.hw.program.Program.acc_buffers`) the sink of an op that
scatters into a DIF or a store (``lag``) runs one step behind: step ``t``'s ``FRAME`` starts the
scatter of frame ``t`` and, beside it, the sink of frame ``t − 1`` (the frame ``NEXT`` left,
``late``, with its own ACC buffer), and the step ends when both are done; the fire-only steps run
the sink of the step before, and the op's last sink follows its last step. A step then costs
``max(scatter, sink)`` instead of their sum (:func:`csdformer.hw.netmodel.op_costs`).

With a tail (:attr:`~csdformer.hw.program.Program.sink_tail`) a DIF op's ``D`` fire-only sink
passes run after the op's end, beside the next op (:meth:`Sequencer._tail`): the first fire-only
frame's ``FRAME`` hands the pass over and goes to ``OP_END``, and the sink runs the rest from the
tail's copy of the op's sink fields and its own frame, while the next op fetches its record, runs
its bias pass and, if it scatters spikes (:data:`TAIL_FREE`), its first step; any other ``FRAME``
waits until the tail is done (:func:`tail_cycles`).

It also keeps the performance counters (cycles, SOPs, spikes) and the debug read port (an SPK
word, :data:`DBG_LATENCY` cycles after its address, while idle).

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

__all__ = ["Sequencer", "DBG_LATENCY", "TAIL_FREE", "cycles", "fetch_cycles", "lags", "sink_passes", "steps",
           "tail_cycles", "tails"]

DBG_LATENCY = DATA_LATENCY  # the debug port reads SPK's unregistered output


def lags(op, program: Program) -> bool:
    """Whether ``op``'s sink runs a step behind its scatter, beside the next step's (module
    docstring): two ACC buffers, and a scatter of spikes (not the encoding layer's, which scatters
    once for every step) into a DIF or a store."""
    return program.acc_buffers > 1 and op.src in (Src.SYN, Src.TDEC) and op.sink in (Sink.DIF, Sink.STORE)


def tails(op, program: Program, delay: int) -> bool:
    """Whether ``op``'s fire-only sink passes (steps ``T < t ≤ T + D``) run as the sink's tail,
    beside the next op (module docstring): a DIF op, a delay, and :attr:`Program.sink_tail`."""
    return program.sink_tail and op.sink is Sink.DIF and delay > 0


def steps(op, program: Program, delay: int) -> int:
    """The steps the sequencer runs ``op`` for: ``T + D`` for a DIF op, else ``T``; with a tail
    (:func:`tails`) ``T``, one more where the sink lags (the last step's sink)."""
    if tails(op, program, delay):
        return program.T + int(lags(op, program))
    return program.T + delay if op.sink is Sink.DIF else program.T


def sink_passes(op, program: Program, delay: int) -> int:
    """The sink passes that run within ``op`` (its tail's come after its end)."""
    return program.T if tails(op, program, delay) else steps(op, program, delay)


def tail_cycles(op, program: Program, delay: int, sink_pass: int) -> int:
    """How far ``op``'s tail runs past the op's last cycle (``OP_END``): the next op's held
    ``FRAME`` (:data:`TAIL_FREE`) goes on no earlier than this many cycles after it. The tail is
    ``D`` passes of ``sink_pass`` cycles, two cycles apart as the sequencer's steps are, the first
    started in the ``FRAME`` before ``OP_END``, and three cycles after the last while the sink
    writes its last words with the tail's fields; 0 without a tail."""
    return delay * (sink_pass + 2) + 1 if tails(op, program, delay) else 0


#: The sources whose first step runs beside the tail of the op before (their scatter reads only
#: its first frame, written before the tail, and writes ACC, which the tail does not touch);
#: every other phase waits in ``FRAME`` until the tail is done.
TAIL_FREE = (Src.SYN, Src.TDEC)


def fetch_cycles(program: Program) -> int:
    """The record's copy: ``op_bytes + DATA_LATENCY``, or one with resident weights (prefetched
    while the op before ran: :class:`~csdformer.hw.sequencer_op.OpRegister`)."""
    return 1 if program.resident else op_bytes(program) + DATA_LATENCY


def cycles(op, program: Program, delay: int) -> int:
    """The sequencer's own cycles for ``op`` once its record is in (its phases' cycles come on top):
    ``OP_START``, the record's copy (:func:`fetch_cycles`; a wait for it, should the op before be
    shorter, is the model's, :mod:`csdformer.hw.netmodel`), ``OP_DECODE``, ``OP_SETUP``, two a step
    (:func:`steps`), and the last ``FRAME`` and ``OP_END`` (the head's last ``FRAME`` starts the
    logits instead)."""
    return 3 + fetch_cycles(program) + 2 * steps(op, program, delay) + (1 if op.sink is Sink.LOGITS else 2)


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
        self.tail = Signal()  # the sink runs the fire-only passes of the op before (module docstring)

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
        if p.acc_buffers > 1 and p.sink_tail:  # a register, decoded with the kinds (off the sink's frame paths)
            with m.If(rec.decode):
                m.d.sync += lag.eq(((reg.src == Src.SYN) | (reg.src == Src.TDEC))
                                   & ((reg.sink == Sink.DIF) | (reg.sink == Sink.STORE)))
        elif p.acc_buffers > 1:
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
        # With a tail the sink's frame and fields come from the tail while it runs (_tail).
        sink_op = [] if p.sink_tail else [self.sink.op.eq(reg.sink_fields)]
        if not p.sink_tail:
            m.d.comb += self.sink.frame.eq(Mux(lag, late, steps.frame))
        m.d.comb += [self.bias.op.eq(reg.bias), self.cumulate.op.eq(reg.cumulate), *sink_op,
                     self.scatter.op.eq(reg.source.scatter), self.maxpool.op.eq(reg.source.maxpool),
                     self.transpose.op.eq(reg.source.transpose)]
        tail = self._tail(m, rec, steps, late) if p.sink_tail else None
        # One FSM, its states built in three groups: the image, the op's record, the op's steps.
        with m.FSM(name="seq") as fsm:
            self._load_image(m, rec, steps, counters)
            self._fetch_op(m, rec, steps)
            self._run_steps(m, rec, steps, counters, tail)
        one_hot_in_synthesis(fsm)
        if p.sink_tail:  # after the FSM: its dispatch states drive the sink's start low
            with m.If(tail.start):
                m.d.comb += self.sink.start.eq(1)
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE")), self.dbg_data.eq(self.spk.data)]
        return m

    def _tail(self, m, rec, steps, late):
        """The sink's tail: a DIF op's fire-only passes (no current; every neuron fires where
        ``v ≥ θ``), run by the sink from a copy of the op's sink fields and its own frame after the
        sequencer has moved on to the next op. ``FRAME`` hands the first over (``load``) and
        goes to ``OP_END``; the passes follow two cycles apart (the cycles of a step's ``NEXT``
        and ``FRAME``, so a pass's last MEM write comes before the next one's first read exactly
        as between steps). Returns the tail's strobes (``go``: the sink's frame is the op's first
        fire-only one; ``hold``: this ``FRAME`` waits for the tail; ``load``: ``FRAME`` hands the
        pass over; ``start``: a later pass starts)."""
        p, reg, frame = self.program, rec.fields, steps.frame
        sink_frame = Signal(frame_layout(p))  # the frame the sink would see without a tail
        m.d.comb += sink_frame.eq(Mux(self.lag, late, frame))
        held = Signal(p.layout["sink_fields"].shape)  # the tail's op fields
        out_step = Signal.like(reg.frame.out_step)
        tail_out = Signal.like(frame.out)  # the running pass's output base
        tail_frame = Signal(frame_layout(p))  # fire-only: no current, no ACC; fire
        left = Signal(range(max(p.T, 2)))  # passes after the running one
        gap, go_on = Signal(), Signal()  # NEXT's and FRAME's cycles between two passes
        m.d.comb += [tail_frame.fire.eq(1), tail_frame.out.eq(tail_out),
                     self.sink.frame.eq(Mux(self.tail, tail_frame, sink_frame)),
                     self.sink.op.eq(Mux(self.tail, held, reg.sink_fields))]
        strobes = _TailStrobes()
        # Hand over at the first fire-only frame of a DIF op: step T + 1's own, or the lagging
        # sink's frame T + 1 (the step after; in step 1 ``late`` is still the op before's); with no
        # delay there is none.
        m.d.comb += [strobes.go.eq(rec.sink.dif & ~frame.first & ~sink_frame.integrate
                                   & (self.lag | ~steps.over)),
                     strobes.hold.eq(self.tail & ~(frame.first
                                                   & Cat(rec.src[s.name.lower()] for s in TAIL_FREE).any())),
                     strobes.start.eq(go_on)]
        # Until a tail starts its registers follow the op (so that ``load``, which comes late in
        # FRAME, sets only ``tail``): in the cycle FRAME hands the first pass over they take it.
        with m.If(~self.tail):
            m.d.sync += [left.eq(steps.held_delay - 1), tail_out.eq(sink_frame.out), held.eq(reg.sink_fields),
                         out_step.eq(reg.frame.out_step)]
        with m.If(strobes.load):  # FRAME hands the first pass over
            m.d.sync += self.tail.eq(1)
        m.d.sync += [gap.eq(0), go_on.eq(gap)]
        # After the last pass the tail holds its fields three cycles more, while the sink's pipeline
        # writes its last words (no later than a next pass's first issue would come: module sink).
        drain = Signal(range(4))
        with m.If(self.tail & self.sink.done):
            with m.If(left == 0):
                m.d.sync += drain.eq(3)
            with m.Else():
                m.d.sync += [gap.eq(1), left.eq(left - 1)]
        with m.If(drain != 0):
            m.d.sync += drain.eq(drain - 1)
            with m.If(drain == 1):
                m.d.sync += self.tail.eq(0)
        with m.If(gap):
            m.d.sync += tail_out.eq(tail_out + out_step)
        return strobes

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

    def _join(self, frame):
        """Whether the scatter's step waits for the sink started beside it; step 1 started none
        (with a tail, the sink may then be busy with the op before's)."""
        join = self.lag & self.sink_busy & ~self.sink.done
        return join & ~frame.first if self.program.sink_tail else join

    def _dispatch(self, m, rec, steps):
        """FRAME's dispatch: the step's first phase (and a lagging sink beside it), or the op's end."""
        src, sink, frame = rec.src, rec.sink, steps.frame
        beside = self.lag & ~frame.first  # a lagging sink starts with the step's front phase
        with m.If(steps.over):
            with m.If(sink.logits):
                _start(m, self.logits, "WAIT_LOGITS")
            with m.Elif(self.lag):  # the last step's sink
                _start(m, self.sink, "WAIT_LAST_SINK")
            with m.Else():
                m.next = "OP_END"
        counts = src.tdec & frame.integrate
        if not self.program.pool_counts:  # the max-pool after the cumulative counts of its input
            counts = counts | src.maxpool
        with m.Elif(counts):
            _start(m, self.cumulate, "WAIT_CUMULATE")
            m.d.comb += self.sink.start.eq(beside)
        with m.Elif((src.syn & frame.integrate) | (src.img & frame.first)):
            _start(m, self.scatter, "WAIT_SCATTER")
            m.d.comb += self.sink.start.eq(beside)
        if self.program.pool_counts:  # it counts them itself
            with m.Elif(src.maxpool):
                _start(m, self.maxpool, "WAIT_MAXPOOL")
        with m.Elif(src.transpose):
            _start(m, self.transpose, "WAIT_TRANSPOSE")
        with m.Elif(sink.logits):
            m.next = "NEXT"
        with m.Else():
            _start(m, self.sink, "WAIT_SINK")

    def _run_steps(self, m, rec, steps, counters, tail):
        """FRAME (the step's phases started in turn, each waited for; with a tail, held while the
        tail of the op before runs, or handing this op's fire-only passes to the tail), NEXT (the
        next step), and the op's end: OP_END, or the logits of the head."""
        src, sink, frame = rec.src, rec.sink, steps.frame
        with m.State("FRAME"):
            if tail is None:
                self._dispatch(m, rec, steps)
            else:
                with m.If(tail.hold):
                    pass
                with m.Elif(tail.go):
                    m.d.comb += tail.load.eq(1)
                    _start(m, self.sink, "OP_END")
                with m.Else():
                    self._dispatch(m, rec, steps)
        with m.State("WAIT_BIAS"):
            with m.If(self.bias.done):
                m.next = "FRAME"
        with m.State("WAIT_CUMULATE"):
            with m.If(self.cumulate.done):
                if self.program.pool_counts:
                    _start(m, self.scatter, "WAIT_SCATTER")
                else:
                    with m.If(src.maxpool):
                        _start(m, self.maxpool, "WAIT_MAXPOOL")
                    with m.Else():
                        _start(m, self.scatter, "WAIT_SCATTER")
        with m.State("WAIT_SCATTER"):
            with m.If(self.scatter.done):
                with m.If(sink.logits):
                    m.next = "NEXT"
                with m.Elif(self._join(frame)):  # the sink beside it: waited for
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


class _TailStrobes:
    """The tail's strobes (:meth:`Sequencer._tail`), each its own signal: ``load`` is driven by the
    FSM, the others beside it (one signal driven from two places left a latch in the Verilog)."""

    def __init__(self):
        self.go, self.hold, self.load, self.start = (Signal(name=f"tail_{n}") for n in ("go", "hold", "load", "start"))


def _start(m, phase, then):
    """Start ``phase`` and wait for it in state ``then``."""
    m.d.comb += phase.start.eq(1)
    m.next = then
