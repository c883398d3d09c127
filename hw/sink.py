"""The sink: a DIF neuron array, or the store of a current (the residual add), one word a cycle.

Per step ``t`` the sink walks the op's output words. For a **DIF** op it integrates the input
current ``I`` (``ACC << shift`` and/or a stored current; none in the fire-only steps ``t > T``),
fires where ``t > D`` and ``v ≥ θ``, resets by subtraction and writes the spike word of frame
``t − D`` (:func:`csdformer.sim.golden.dif`: charge, fire, reset). For a **store** op it writes
``ACC (+ a stored current)`` to CUR (:func:`csdformer.sim.golden.add`). A DIF op fused with a store
(``store``, :attr:`~csdformer.hw.program.Program.store_dif`) does both in its integrating steps:
it writes its current to CUR, ``sto`` words from the stored input's frame, and charges its neurons
with it. ACC is cleared behind it.

Two arithmetic stages (for clock speed): first ``I``, ``v`` and ``v − θ``; then ``v + I`` and
``v − θ + I`` side by side, whose sign is the fire decision. At full rate one stage more comes
first (:func:`acc_stage`): ``ACC << 4·⌊shift / 4⌋`` and CUR's word are registered, ``v`` and
``v − θ`` computed beside them, and ``I`` is the first shifted on by ``shift mod 4``, plus the
second, from those registers and the sink's own copy of the shift amount (ACC's registered output
sits far from the sink's lanes on a large part: its route, the ``<< shift`` multiplexers and the
adder were one path, 98 MHz at 16 lanes on the ULX3S; its route and the whole shift, 98.1 MHz;
the route, then the whole shift and the adder, 93.2 MHz, session 13). Frame flags travel down the
pipeline with their word; the write addresses are counted where the writes are
(:class:`~csdformer.hw.phase.WriteCursor`). With single-port CUR and MEM (``Program.sink_gap == 2``) a
word is issued every other cycle: reads and registered writes then fall on cycles of different
parity. Cycles: :func:`cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import Out

from ..sim import golden
from .memory import Q_LATENCY
from .phase import PhaseUnit, RowWalk, acc_addr, WriteCursor, addr_shape, idle_state, issue_pipe, lanes_of

__all__ = ["GOLDEN", "SinkArray", "cycles", "depth", "acc_stage"]

#: The golden slice this unit is judged by (DIF neurons; the store of a residual add; tests/test_sink.py).
GOLDEN = (golden.dif, golden.add)


def acc_stage(program) -> int:
    """1 where the sink registers ``ACC << shift`` and CUR before its adder: the
    full-rate sink (CUR and MEM dual-port, ``Program.sink_gap == 1``: the ECP5 boards, whose floor
    is 100 MHz); else 0: the half-rate sink of single-port CUR or MEM, the iCEBreaker's, whose clock
    is 30 MHz and whose logic cells are nearly all used (the stage would cost it 75 flip-flops: its
    sink 473 LUT4 / 144 FF without, 461 / 219 with, in ``bench/ice40_fit.py``'s table). The
    sink is exact either way (tests/test_sink.py runs both). Decided by the memories themselves,
    as ``sink_gap`` is, not by ``sink_gap``: a full rate forced onto single-port memories (a test
    that it fails) is the sink without the stage."""
    return 0 if program.compact else 1


def depth(program) -> int:
    """Issue to the registered write: the data at q3, then :func:`acc_stage` and the two stages."""
    return Q_LATENCY + 1 + acc_stage(program)


def cycles(op, program, steps: int) -> int:
    """The sink's cycles over ``steps`` steps: ``words · gap + 1 + acc_stage`` a step (with the
    stage more, one cycle more before ``done``, so that the pass's last write still comes no later
    than the next pass's first issue and a one-word layer's MEM write meets its next read in the
    transparent port, as without it)."""
    return steps * (op.f["sink_words"] * program.sink_gap + 1 + acc_stage(program))


class SinkArray(PhaseUnit):
    """The sink of ``program`` (module docstring). Ports: ``ctl``; read ports ``acc``, ``cur``,
    ``mem``, ``threshold``, ``v0``; write ports ``acc_w`` (the clear), ``cur_w``, ``mem_w``, ``spk_w``;
    ``fired`` (the spikes of the word written last cycle, for the spike counter)."""

    def __init__(self, program):
        super().__init__(program, program.layout["sink_fields"].shape, reads=("acc", "cur", "mem", "threshold", "v0"),
                         writes=("acc", "cur", "mem", "spk"), extra={"fired": Out(program.lanes)})

    def elaborate(self, platform):
        m = Module()
        p, f, fr = self.program, self.ctl.op, self.ctl.frame
        A = addr_shape(p)
        walk, gap = RowWalk(f.words, f.groups_m1, f.prm_base, p.depths["param"], f.prm_scalar), Signal()
        wi = walk.word
        extra, D = acc_stage(p), depth(p)
        # The word's offset in the output (and stored input) tensor: ``wi`` but for an output tile,
        # which skips the other tiles' ``skip`` words after each row (ACC and MEM stay compact).
        tiles = len(f.skip) > 0  # a fabric with output tiles (Program.natural_fields)
        wo = Signal(A, name="wo") if tiles else wi
        # With a tail (Program.sink_tail) the op's fields come through the sequencer's tail
        # multiplexer: the ones the late stages use (ACC's clear, DIF or store) travel with the word.
        late_fields = {"clear": 1, "dif": 1} if p.sink_tail else {}
        fused = len(f.store) > 0  # a DIF op may also store its current (Program.store_dif)
        late_fields.update({"store": 1} if fused else {})
        q = issue_pipe(m, data.StructLayout({"valid": 1, "first": 1, "fire": 1, "integrate": 1, "row_end": 1,
                                             **late_fields}), D, "q")
        issued = Signal()
        # The words written (ACC's clear at q2, MEM at the last stage) and the output address (SPK
        # or CUR), counted where they are written.
        # ACC's clear: in the frame's buffer, which its cursor holds from the first issue on (the
        # pass's last clears come after ``done``, when the sequencer may have moved to the next frame).
        w2 = WriteCursor(m, "w2", len(self.acc_w.addr), acc_addr(p, Const(0, 1), fr.bank), issue=issued,
                         write=q[2].valid)
        wd = WriteCursor(m, f"w{D}", len(wi), 0, issue=issued, write=q[D].valid)
        ad = WriteCursor(m, f"a{D}", A, fr.out, issue=issued, write=q[D].valid,
                         skip=Mux(q[D].row_end, f.skip, 0) if tiles else 0)
        # A fused store's CUR address: the stored input's frame moved on by ``sto`` (a DIF op's
        # ``out`` is its spikes').
        sd = WriteCursor(m, f"s{D}", A, fr.cur + f.sto,
                         issue=issued, write=q[D].valid,
                         skip=Mux(q[D].row_end, f.skip, 0) if tiles else 0) if fused else None
        m.d.comb += [self.threshold.addr.eq(walk.rom), self.v0.addr.eq(walk.rom)]
        with m.FSM(name="sink"):
            # With the stage more, the shift amount is a register of the sink's own, loaded while idle.
            shift = Signal.like(f.shift, name="shift") if extra else f.shift
            # With a tail, whether the pass integrates (reads ACC) is a register of the sink's own too.
            integrating = Signal(name="integrating") if p.sink_tail else None
            idle_state(m, self.ctl, "SINK", walk.restart() + w2.idle() + wd.idle() + ad.idle()
                       + (sd.idle() if fused else [])
                       + ([shift.eq(f.shift)] if extra else []) + ([wo.eq(0)] if tiles else [])
                       + ([integrating.eq(fr.integrate)] if p.sink_tail else []))
            with m.State("SINK"):
                if p.sink_tail:  # a fire-only pass reads no ACC: it may run beside the next op's ACC users,
                    m.d.comb += [self.cur.addr.eq(fr.cur + wo), self.mem.addr.eq(wi)]
                    with m.If(integrating):  # whose addresses are ORed with this one
                        m.d.comb += self.acc.addr.eq(acc_addr(p, wi, fr.bank))
                else:
                    m.d.comb += [self.acc.addr.eq(acc_addr(p, wi, fr.bank)), self.cur.addr.eq(fr.cur + wo),
                                 self.mem.addr.eq(wi)]
                with m.If(gap):  # half rate (single-port memories): a cycle without a read
                    m.d.sync += gap.eq(0)
                with m.Elif(walk.more):
                    m.d.comb += issued.eq(1)
                    m.d.sync += [q[1].valid.eq(1), q[1].first.eq(fr.first), q[1].fire.eq(fr.fire),
                                 q[1].integrate.eq(fr.integrate), q[1].row_end.eq(walk.row_end)] + walk.step()
                    if p.sink_tail:  # a fire-only pass neither reads nor clears ACC
                        m.d.sync += [q[1].clear.eq(fr.integrate & f.use_acc), q[1].dif.eq(f.dif)]
                    if fused:  # nor stores
                        m.d.sync += q[1].store.eq(fr.integrate & f.store)
                    if tiles:
                        m.d.sync += wo.eq(wo + 1 + Mux(walk.row_end, f.skip, 0))
                    if p.sink_gap == 2:
                        m.d.sync += gap.eq(1)
                with m.Else():
                    if extra:
                        m.next = "END"
                    else:
                        m.d.comb += self.ctl.done.eq(1)
                        m.next = "IDLE"
            if extra:
                with m.State("END"):  # the cycle the stage more costs (see cycles)
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        if p.sink_tail:
            # Only where it integrated: a fire-only pass may run beside the next op, which fills ACC
            # through ports ORed with this one (address and all).
            with m.If(q[2].valid & q[2].clear):
                m.d.comb += [self.acc_w.addr.eq(w2.value), self.acc_w.data.eq(0), self.acc_w.en.eq(1)]
        else:
            with m.If(q[2].valid):  # ACC is cleared behind the sink (after its read)
                m.d.comb += [self.acc_w.addr.eq(w2.value), self.acc_w.data.eq(0), self.acc_w.en.eq(f.use_acc)]
        self._neurons(m, q[3], q[D], wd.value, ad.value, sd.value if fused else None, extra, shift,
                      q[D].dif if p.sink_tail else f.dif)
        return m

    def _neurons(self, m, q3, q4, w4, a4, s4, extra, shift, dif):
        """Stage q3: ``I``, ``v`` and ``v − θ`` (with ``extra``: ACC half shifted, CUR, ``v`` and
        ``v − θ``; then ``I``, the rest of the shift and the sum); the last stage ``q4``: fire or not, the new
        potential, writes (MEM at word ``w4``, SPK or CUR at ``a4``; a fused store's CUR at ``s4``,
        None where there is none). ``shift``: the op's ACC
        shift (held while the pass and its pipeline run: loaded while idle, from the op register,
        which changes only in the sequencer's next op fetch); ``dif``: the word's op is DIF (else a
        store)."""
        p, f = self.program, self.ctl.op
        P, W = p.lanes, p.widths
        SW = W["sum"] + 1
        acc, cur = lanes_of(self.acc.q, W["acc"], P), lanes_of(self.cur.q, W["cur"], P)
        mem, th, v0 = (lanes_of(x.q, W[k], P) for x, k in ((self.mem, "mem"), (self.threshold, "threshold"),
                                                           (self.v0, "v0")))
        fire, vnew, stored = [], [], []
        for i in range(P):
            current, v, vth = (Signal(signed(SW), name=f"{n}{i}") for n in ("in", "vb", "vth"))
            base = Mux(q3.first, v0[i], mem[i])
            if extra:
                a, c = Signal(signed(SW), name=f"acc{i}"), Signal(signed(W["cur"]), name=f"cur{i}")
                vb1, vth1 = Signal(signed(SW), name=f"vb1_{i}"), Signal(signed(SW), name=f"vth1_{i}")
                # ``<< shift`` in two halves, one a stage: by its high bits on the way in (after ACC's
                # long route), by its low two beside the adder
                m.d.sync += [a.eq(Mux(q3.integrate & f.use_acc, acc[i] << (shift[2:] << 2), 0)),
                             c.eq(Mux(q3.integrate & f.use_cur, cur[i], 0)), vb1.eq(base), vth1.eq(base - th[i])]
                m.d.sync += [current.eq((a << shift[:2]) + c), v.eq(vb1), vth.eq(vth1)]
            else:
                m.d.sync += [current.eq(Mux(q3.integrate, Mux(f.use_acc, acc[i] << f.shift, 0) + Mux(f.use_cur, cur[i], 0), 0)),
                             v.eq(base), vth.eq(base - th[i])]
            d = Signal(signed(SW), name=f"d{i}")
            m.d.comb += d.eq(vth + current)
            fi = Signal(name=f"fire{i}")
            m.d.comb += fi.eq(q4.fire & (d >= 0))
            vn = Signal(signed(W["mem"]), name=f"vnew{i}")
            m.d.comb += vn.eq(Mux(fi, d, v + current))
            fire.append(fi)
            vnew.append(vn)
            stored.append(current[:W["cur"]])
        m.d.sync += self.fired.eq(0)
        with m.If(q4.valid):
            with m.If(dif):
                m.d.comb += [self.mem_w.addr.eq(w4), self.mem_w.data.eq(Cat(*vnew)), self.mem_w.en.eq(1)]
                with m.If(q4.fire):
                    m.d.comb += [self.spk_w.addr.eq(a4), self.spk_w.data.eq(Cat(*fire)), self.spk_w.en.eq(1)]
                    m.d.sync += self.fired.eq(Cat(*fire))
                if s4 is not None:
                    with m.If(q4.store):
                        m.d.comb += [self.cur_w.addr.eq(s4), self.cur_w.data.eq(Cat(*stored)), self.cur_w.en.eq(1)]
            with m.Else():
                m.d.comb += [self.cur_w.addr.eq(a4), self.cur_w.data.eq(Cat(*stored)), self.cur_w.en.eq(1)]
