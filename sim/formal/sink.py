"""Proof harness: :class:`~csdformer.hw.sink.SinkArray` (DIF neurons: charge, fire, reset) with
MEM as the product builds it (:class:`~csdformer.hw.memory.BankedMemory`, transparent, registered
writes), run step after step as the sequencer runs it, against its reference step function.

The reference (:func:`csdformer.sim.golden.dif`, per neuron, in wide integers): in step
``t = 1 .. T + D``

    ``v ← (t = 1 ? v0 : v) + (t ≤ T ? I(t) : 0)`` (charge); ``fire = t > D and v ≥ θ``;
    ``v ← v − θ`` if it fired (reset); the spike is bit ``t − D`` of the output.

with ``I(t) = (ACC << shift if use_acc) + (CUR if use_cur)``. For every write the unit makes, the
harness asserts: MEM's word and address, each lane's new potential **equal to the exact one** (a
wrapped membrane differs from it), the spike word's enable, address (frame ``t − D``) and bits; no
CUR write; ACC cleared; one write per word and step (none lost, none extra: counted at each start
and, once the window is over and the pipeline drained, in full).

Steps, not cycles, are the induction: the harness starts at any step ``t0`` of the window with any
potential in MEM that ``t0 − 1`` steps can reach by the bounds (``Inv(k)``: ``min(v0, 0) +
k·min(I, 0) .. max(v0) + k·max(I, 0)`` with ``k = min(t0 − 1, T)``: how
:func:`~csdformer.artifact.schema.bounds` bounds the potential), written into MEM before the first
start, and runs the steps that the BMC depth holds from there (:func:`depth_for`; 2 steps: the MEM
read-after-write across steps, which the registered write and the transparent read carry, is in
each). It asserts the reference keeps
``Inv`` (so the bounds hold for the golden model) and the unit equals the reference: from ``t0 =
1`` on, by induction over the steps, every step of every window is covered.

The environment: the sequencer's steps (``first``, ``integrate``, ``fire``, the frame bases), with
``start`` any time from two cycles after ``done`` (``WAIT_SINK`` → ``NEXT`` → ``FRAME``, the
earliest the sequencer starts the next step); ``D`` any of ``0 .. T − 1``; the ACC and CUR words
of every step and the θ and ``v0`` ROM words free constants, read with the memories' latency
(``q``: three cycles). Assumed (the artifact's bounds for the layer, :func:`~.ranges.dif_ranges`):
every frame's current within the layer input's frame range, θ and ``v0`` within theirs.

The op is the layer's real sink op (``dif``, ``use_acc``, ``use_cur``, ``shift``) over ``words``
words (its parameters one ROM word a word), fewer than the layer has: each word's neurons are
independent of the others'.

The reference's potential after a write is the value the unit wrote (not the reference's own
``v``): the two are equal up to the first failing assertion, which is the one reported, so the
property is the same; the solver then checks each step on its own instead of two chains of
adders against each other (the proof's time grows far slower with the window).
"""

from __future__ import annotations

import copy

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Array, Assert, Assume, Elaboratable, Module, Mux, Signal, signed
from amaranth.lib import data

from ...hw.memory import BankedMemory, Q_LATENCY
from ...hw.phase import lanes_of
from ...hw.program import Sink
from ...hw.sink import SinkArray, acc_stage, depth
from .ranges import dif_ranges, widest_dif

__all__ = ["SinkHarness", "MIN_GAP", "depth_for"]

MIN_GAP = 2  # cycles from the sink's done to its next start, at the soonest (the sequencer's NEXT, FRAME)


def depth_for(program, words: int, steps: int) -> int:
    """The BMC depth that covers ``steps`` steps of ``program``'s sink with no waits (the initial
    potentials written, each step's cycles (:func:`~csdformer.hw.sink.cycles`) and gap, the last
    step's writes): the harness's default."""
    per_step = words * program.sink_gap + 1 + acc_stage(program)
    return words + steps * (per_step + MIN_GAP) - MIN_GAP + depth(program) + 2


class SinkHarness(Elaboratable):
    """``SinkArray`` of ``program`` for DIF layer ``layer`` (default: the one MEM's width is derived
    from) over ``words`` words. ``mem_width``: build the unit and MEM with this width instead of
    ``program.widths["mem"]`` (the failing variant: one bit fewer)."""

    def __init__(self, program, layer: str | None = None, *, words: int = 1, mem_width: int | None = None):
        """See the class docstring; the harness runs up to :func:`depth_for` cycles' worth of steps."""
        if mem_width is not None:
            program = copy.copy(program)
            program.widths = dict(program.widths, mem=mem_width)
        self.program, self.words = program, words
        self.layer = layer or widest_dif(program)
        self.r = dif_ranges(program, self.layer)
        op = next(o for o in program.ops if o.sink is Sink.DIF and o.layers[-1] == self.layer)
        f = dict(program.fields(op)["sink_fields"])
        f.update(words=words, groups_m1=words - 1, prm_base=0, prm_scalar=0)
        self.fields = f

    def elaborate(self, platform):
        m = Module()
        p, NW, f, r = self.program, self.words, self.fields, self.r
        P, W, T = p.lanes, p.widths, p.T
        m.submodules.dut = dut = SinkArray(p)
        m.d.comb += dut.ctl.op.eq(p.layout["sink_fields"].shape.const(f))
        rw = W["sum"] + 4  # the reference potential: wider than any it can reach

        # The sequencer: steps t = t0 .. T + D, start from MIN_GAP cycles after done, on any cycle.
        D, t0 = Signal(range(T), name="D"), Signal(range(2 * T), name="t0")
        m.d.comb += [D.eq(AnyConst(len(D))), Assume(D < T), t0.eq(AnyConst(len(t0))), Assume((t0 >= 1) & (t0 <= T + D))]
        n = Signal(range(2 * T + 1), name="n")  # steps done since t0
        t = Signal(range(4 * T + 1), name="t")
        ic = Signal(range(NW + 1), name="init_count")  # initial potentials written
        running, gap = Signal(name="running"), Signal(range(MIN_GAP + 1), name="gap", init=MIN_GAP)
        finished, go, start = Signal(name="finished"), Signal(name="go"), Signal(name="start")
        m.d.comb += [t.eq(t0 + n), finished.eq(t > T + D), go.eq(AnySeq(1)),
                     start.eq(~running & (gap == MIN_GAP) & ~finished & (ic == NW) & go), dut.ctl.start.eq(start)]
        with m.If(start):
            m.d.sync += running.eq(1)
        with m.If(dut.ctl.done):
            m.d.sync += [running.eq(0), n.eq(n + 1), gap.eq(1)]  # the cycle after done is the first of the gap
        with m.Elif(~running & (gap < MIN_GAP)):
            m.d.sync += gap.eq(gap + 1)
        m.d.comb += Assert(~dut.ctl.done | running)
        fr = dut.ctl.frame
        m.d.comb += [fr.first.eq(t == 1), fr.integrate.eq(t <= T), fr.fire.eq(t > D), fr.src.eq(0), fr.b.eq(0),
                     fr.cur.eq((t - 1) * NW), fr.out.eq(Mux(t - 1 > D, (t - 1 - D) * NW, 0))]

        # Memories: MEM as the product's; ACC, CUR, θ and v0 as free words, read with q's latency.
        m.submodules.mem = mem = BankedMemory(P * W["mem"], NW, writers=2, transparent=True, registered_write=True)
        rd, wr = mem.read[0], mem.write[0]
        m.d.comb += [rd.addr.eq(dut.mem.addr), dut.mem.data.eq(rd.data), dut.mem.q.eq(rd.q),
                     wr.addr.eq(dut.mem_w.addr), wr.data.eq(dut.mem_w.data), wr.en.eq(dut.mem_w.en)]
        # The potentials t0 − 1 steps left: any within Inv(t0 − 1), one word a cycle before the first start.
        init_word = Signal(data.ArrayLayout(signed(W["mem"]), P), name="init_word")
        m.d.comb += init_word.eq(AnySeq(P * W["mem"]))

        def inv(v, k):
            """``v`` within what ``k`` steps of charge, fire and reset can reach (Inv(k))."""
            kk = Mux(k > T, T, k)
            return (v >= min(r.v0[0], 0) + kk * min(r.current[0], 0)) & (v <= r.v0[1] + kk * max(r.current[1], 0))

        def rom(name, width, n, index):
            """``n`` free words of ``width`` bits; the unit's port ``name`` reads word ``index(addr)``."""
            words = [Signal(width, name=f"{name}{i}") for i in range(n)]
            m.d.comb += [w.eq(AnyConst(width)) for w in words]
            port = getattr(dut, name)
            key = index(port.addr)
            pipe = [Signal(range(n + 1), name=f"{name}_a{i}") for i in range(1, Q_LATENCY + 1)]
            m.d.sync += [pipe[0].eq(Mux(key < n, key, n))] + [pipe[i].eq(pipe[i - 1]) for i in range(1, Q_LATENCY)]
            m.d.comb += port.q.eq(Array(words + [0])[pipe[-1]])
            return words

        # ACC holds step t's current while step t runs: its words are keyed by (t, address).
        acc = rom("acc", P * W["acc"], T * NW, lambda a: (t - 1) * NW + a)
        cur = rom("cur", P * W["cur"], T * NW, lambda a: a)
        th = rom("threshold", P * W["threshold"], NW, lambda a: a)
        v0 = rom("v0", P * W["v0"], NW, lambda a: a)
        inside = lambda v, lo_hi: (v >= lo_hi[0]) & (v <= lo_hi[1])  # noqa: E731
        current = [[[None] * P for _ in range(NW)] for _ in range(T)]  # I(t) of word w, lane l
        for i in range(T):
            for w in range(NW):
                a = lanes_of(acc[i * NW + w], W["acc"], P)
                c = lanes_of(cur[i * NW + w], W["cur"], P)
                for ln in range(P):
                    s = Signal(signed(rw), name=f"I{i + 1}_{w}_{ln}")
                    m.d.comb += [s.eq((a[ln] << f["shift"] if f["use_acc"] else 0) + (c[ln] if f["use_cur"] else 0)),
                                 Assume(inside(s, r.current))]
                    current[i][w][ln] = s
        ths = [lanes_of(x, W["threshold"], P, sign=False) for x in th]
        v0s = [lanes_of(x, W["v0"], P) for x in v0]
        for w in range(NW):
            for ln in range(P):
                m.d.comb += [Assume(inside(ths[w][ln], r.threshold)), Assume(inside(v0s[w][ln], r.v0))]

        # The reference: per word, its potential and the steps it has been written.
        got = lanes_of(dut.mem_w.data, W["mem"], P)
        m.d.comb += [Assert(~dut.mem_w.en | (dut.mem_w.addr < NW)), Assert(~dut.spk_w.en | dut.mem_w.en),
                     Assert(~dut.cur_w.en), Assert(~dut.acc_w.en | (dut.acc_w.data == 0))]
        with m.If(ic < NW):
            w1 = mem.write[1]
            m.d.comb += [w1.addr.eq(ic), w1.data.eq(init_word), w1.en.eq(t0 > 1)]
            m.d.sync += ic.eq(ic + 1)
            m.d.comb += [Assume(inv(init_word[ln], t0 - 1)) for ln in range(P)]
        done_steps = []
        for w in range(NW):
            k = Signal(range(2 * T + 1), name=f"steps{w}")  # writes since t0
            v = [Signal(signed(rw), name=f"v{w}_{ln}") for ln in range(P)]
            with m.If(ic == w):
                m.d.sync += [v[ln].eq(init_word[ln]) for ln in range(P)]
            done_steps.append(k)
            tw = Signal(range(4 * T + 2), name=f"t_of_write{w}")
            m.d.comb += tw.eq(t0 + k)
            with m.If(start):  # every write of the steps before the last one has landed
                m.d.comb += Assert(k + 1 >= n)
            with m.If(dut.mem_w.en & (dut.mem_w.addr == w)):
                m.d.comb += [Assert(tw <= T + D), Assert(tw <= t), Assert(dut.spk_w.en == (tw > D))]
                with m.If(tw > D):
                    m.d.comb += Assert(dut.spk_w.addr == (tw - 1 - D) * NW + w)
                m.d.sync += k.eq(k + 1)
                for ln in range(P):
                    i_t = Array([0] + [current[i][w][ln] for i in range(T)] + [0] * (3 * T))[tw]  # I(tw), 0 after T
                    v1, v2, fire = Signal(signed(rw), name=f"v1_{w}_{ln}"), Signal(signed(rw), name=f"v2_{w}_{ln}"), \
                        Signal(name=f"fire_{w}_{ln}")
                    m.d.comb += [v1.eq(Mux(tw == 1, v0s[w][ln], v[ln]) + i_t),  # charge (t0 > 1: v from MEM)
                                 fire.eq((tw > D) & (v1 >= ths[w][ln])),  # fire
                                 v2.eq(Mux(fire, v1 - ths[w][ln], v1)),  # reset by subtraction
                                 Assert(inv(v2, tw)),  # the bounds hold for the reference
                                 Assert(got[ln] == v2)]  # the unit equals it
                    with m.If(tw > D):
                        m.d.comb += Assert(dut.spk_w.data[ln] == fire)
                    m.d.sync += v[ln].eq(got[ln])  # = v2, or this assertion failed (see the module docstring)
        # The window over and the pipeline drained: every word written once a step.
        DEPTH = depth(p)
        drained = Signal(range(DEPTH + 2), name="drained")
        with m.If(finished & ~running & (drained <= DEPTH)):
            m.d.sync += drained.eq(drained + 1)
        with m.If(drained > DEPTH):
            m.d.comb += [Assert(t0 + k == T + D + 1) for k in done_steps]
        return m
