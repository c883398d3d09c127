"""The scatter engine: event-driven spike accumulation into ACC (conv, linear, head, encoding conv,
TDEC matmul), one input frame a start (the bias is already in ACC: :mod:`csdformer.hw.bias`).

The input is read one word (``P`` neurons) a cycle, five words
in flight (``SCAN_FILL``; six with the word queue: :func:`scan_fill`); a word's events are found in two registered scan stages
(:class:`ScanStages`); every event fans out over its weight row, one lane word a cycle, into
ACC through the read-modify-write pipeline :class:`LaneAccumulate`. Events are:

- spikes (``SYN``: conv, linear, head): each adds its weight row;
- set pixel bits (``IMG``, the encoding conv): bit ``b`` adds ``w << b`` (bit-plane additions,
  no multiplier);
- TDEC (``q·kᵀ``, ``attn·v``): every element of ``a`` with ``Acum(t) > 0`` adds
  ``a(t)·Bcum(t)[k,:] + Acum(t−1)·b(t)[k,:]`` (spike-gated small counts); ``Bcum(t)`` is already
  in CNT (:mod:`csdformer.hw.cumulate`), ``Acum(t)`` is written back as the words stream by.

The word stream runs ahead of the engine by a fixed number of words, a read issued for every word
taken: words read while a word's events fan out wait in a small queue (:class:`WordSkid`,
``SKID`` words: the reads in flight), so the next word is there the cycle the fan-out ends and the
stream never restarts; a non-empty word is taken in that very cycle, its first event started
(:func:`chain`; not TDEC). A board whose logic cells are nearly all used (the iCEBreaker) builds the
scatter without it (:func:`skid`): there the stream restarts after each non-empty word
(``SCAN_FILL`` cycles). After the last word the pipeline drains (``SCAN_DRAIN``) so that the sink
may read ACC. Cycles: :func:`cycles`.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..sim import golden
from .common import one_hot_in_synthesis
from .memory import ReadPort, WritePort
from .program import Src
from .scatter_walk import TapWalk, WordWalk
from .phase import PhaseUnit, acc_addr, cumulate, idle_state, lane_word, lanes_of, lowest

__all__ = ["tap_cycles", "scan_fill", "GOLDEN", "Scatter", "ScanStages", "WordSkid", "LaneAccumulate", "SCAN_FILL", "SCAN_DRAIN", "SKID",
           "chain", "cycles", "restart", "skid", "fill", "word_layout"]

#: The golden slice this unit is judged by (its frames' current (the bias pass before it: :mod:`csdformer.hw.bias`); tests/test_scatter.py).
GOLDEN = (golden.synaptic_frames, golden.tdec_layer)

SCAN_FILL = 5  # input words in flight: read issue to SCAN_LATCH (address, RAM, bank register, two scan stages)
SCAN_DRAIN = 3  # cycles after the last fan-out until the sink may read ACC (issue to write back: five stages)
SKID = SCAN_FILL + 2  # the queue's words: the reads in flight when a word is taken (scan_fill), and its register


def scan_fill(program) -> int:
    """Input words in flight, read issue to the word scanned: ``SCAN_FILL``, one more with the word
    queue (the ECP5 builds), whose scan registers its mask once more before finding the word's
    events: the mask's register sits by the block RAMs' outputs, the event logic by the queue and
    the fan-out (a 4 ns route between them took the ULX3S digits build below 100 MHz)."""
    return SCAN_FILL + (0 if program.compact else 1)


def skid(program) -> int:
    """Words of the scatter's word queue (:class:`WordSkid`): ``SKID``; 0 (no queue: the stream
    restarts after each non-empty word) where CUR or MEM is single-port, the iCEBreaker's
    configuration, whose logic cells are nearly all used (the queue holds ``SKID`` scanned words:
    their masks and, for TDEC, the counts). Decided by the memories, as the sink's
    :func:`csdformer.hw.sink.acc_stage` is."""
    return 0 if program.compact else SKID


def fill(program) -> int:
    """Cycles from a frame's first read to its first word taken: the scan pipeline, and the
    queue's register where there is one."""
    return scan_fill(program) + (1 if skid(program) else 0)


def restart(op, program) -> int:
    """Cycles lost after a non-empty word that is not the frame's last: none with the word queue,
    else the stream's refill."""
    return 0 if skid(program) else SCAN_FILL


def chain(op, program) -> int:
    """Cycles saved for each non-empty word that follows a non-empty word: 1 where the engine
    takes the next word from the queue in the cycle the word before's last event ends (the word
    queue; not TDEC, whose fan-out reads SPK and CNT in that cycle, the stream's ports), else 0:
    the word is taken in a cycle of its own."""
    return 1 if skid(program) and op.src is not Src.TDEC else 0


def cycles(op, program, *, fanout: int, live_words: int, chained: int = 0) -> int:
    """Cycles of ``op``'s scatter phases over a window: per frame the stream
    (:func:`fill` ``+ words + SCAN_DRAIN``), the fan-outs and the restarts (:func:`restart`), less
    the words taken as the fan-out before ends (:func:`chain`).
    ``fanout``: the fan-outs' cycles over all frames, the sum over the input events of
    :func:`tap_cycles` at each one's position; ``live_words``: words with events, but the last of
    each frame; ``chained``: words with events whose word before has events too (see
    :func:`csdformer.hw.netmodel.scatter_events`)."""
    frames = 1 if op.src is Src.IMG else program.T
    return (frames * (fill(program) + op.f["words"] + SCAN_DRAIN) + fanout + restart(op, program) * live_words
            - chain(op, program) * chained)


def tap_cycles(op, program) -> np.ndarray:
    """The fan-out's cycles of one event at each input position ``(y, x)`` (``(n2, n1)``; TDEC:
    ``(1, 1)``): ``K·K·G`` lane words (``G`` output groups a tap), but a conv's taps outside
    the output are skipped (:class:`~csdformer.hw.scatter_walk.TapWalk`), a cycle for each tap row
    outside and for each tap column outside in a row inside."""
    f = op.f
    if op.src is Src.TDEC:
        return np.full((1, 1), f["fanout"])
    if not f["check"]:
        return np.full((f["n2"], f["n1"]), f["fanout"])
    K, G, pad = f["f2"], f["f0"], f["pad"]
    ys, xs = np.arange(f["n2"])[:, None] + pad - np.arange(K), np.arange(f["n1"])[:, None] + pad - np.arange(K)
    rows = ((ys >= 0) & (ys < f["hout"])).sum(axis=1)  # tap rows inside, per y
    cols = ((xs >= 0) & (xs < f["wout"])).sum(axis=1)  # tap columns inside, per x
    return (K - rows)[:, None] + rows[:, None] * (cols * G + (K - cols))[None, :]


def word_layout(program, mwidth: int) -> data.StructLayout:
    """One scanned input word (:class:`ScanStages`' output, a :class:`WordSkid` entry): whether it
    is empty, its first event, the one after it, whether that is the last (``single``), whether the
    word has at most two events (``pair``: after its first starts, the next is the last or there is
    none), its events after those two (``later``: the mask without its two lowest bits, where the
    walk through the word's events starts from); for
    TDEC ``Acum(t − 1)`` and ``a(t)`` (``Acum(t)`` is their :func:`cumulate`, formed where it is
    written back, so the queue holds one count a lane, not two)."""
    P, CW = program.lanes, program.widths["cnt"]
    return data.StructLayout({"later": mwidth, "zero": 1, "low": range(mwidth), "low2": range(mwidth), "single": 1,
                              "pair": 1, "aprev": P * CW, "abits": P})


def event_layout(program, mwidth: int) -> data.StructLayout:
    """One lane word of one event, as it enters the ACC pipeline."""
    return data.StructLayout({"valid": 1, "addr": range(program.port_shape("acc")[0]), "lanes": range(program.lanes + 1),
                              "shift": range(max(mwidth, 2)), "a": 1, "prev": program.widths["cnt"]})


class ScanStages(wiring.Component):
    """A word's events, from its registered read (cycle c + 3) in two registered stages: the mask
    (spikes, pixel bits, or TDEC's ``Acum(t) > 0``), then whether it is
    empty, its first event, the one after it and whether that is the last (``word``, c + 5:
    :func:`word_layout`). ``relay``: registers between the two stages (a long route), which carry
    the mask and the mask without its lowest bit (``wm & (wm − 1)``, formed before them)."""

    def __init__(self, program, mwidth: int, relay: int = 0):
        P, CW = program.lanes, program.widths["cnt"]
        self.P, self.CW, self.relay = P, CW, relay
        super().__init__({
            "img": In(1), "tdec": In(1), "first": In(1),
            "spk_q": In(P), "img_q": In(program.pixel_bits), "cnt_q": In(P * CW),
            "word": Out(word_layout(program, mwidth)),
        })

    def elaborate(self, platform):
        m = Module()
        a_prev = Signal(self.P * self.CW)
        m.d.comb += a_prev.eq(Mux(self.first, 0, self.cnt_q))
        a_new = cumulate(a_prev, self.spk_q, self.CW, self.P)
        word = Signal.like(self.word.later)
        with m.If(self.img):
            m.d.comb += word.eq(self.img_q)
        with m.Elif(self.tdec):
            m.d.comb += word.eq(Cat(*[v != 0 for v in lanes_of(a_new, self.CW, self.P, sign=False)]))
        with m.Else():
            m.d.comb += word.eq(self.spk_q)
        wm, aprev, abits = Signal.like(word, name="wm"), Signal.like(a_prev, name="aprev"), Signal(self.P, name="abits")
        m.d.sync += [wm.eq(word), aprev.eq(a_prev), abits.eq(self.spk_q)]
        rest = Signal.like(wm, name="rest")  # the mask without its lowest bit
        m.d.comb += rest.eq(wm & (wm - 1))
        for i in range(self.relay):  # (with a relay, ``rest`` is formed before it: the subtraction
            # and the priority encoder after it were a ULX3S critical path in one cycle)
            wm, rest, aprev, abits = (self._relay(m, v, i) for v in (wm, rest, aprev, abits))
        later = Signal.like(wm, name="later")  # ... and without its next (``pair`` is whether it is 0)
        m.d.comb += later.eq(rest & (rest - 1))
        w = self.word
        m.d.sync += [w.low2.eq(lowest(m, rest)), w.single.eq(rest == 0), w.pair.eq(later == 0),
                     w.later.eq(later), w.zero.eq(wm == 0), w.low.eq(lowest(m, wm)), w.aprev.eq(aprev), w.abits.eq(abits)]
        return m


    @staticmethod
    def _relay(m, v, i):
        r = Signal.like(v, name=f"{v.name}_relay{i}")
        m.d.sync += r.eq(v)
        return r


class WordSkid(wiring.Component):
    """The scanned words that wait while a word's events fan out: ``depth`` of them, first in first
    out, the oldest in a register (``head``, valid when ``have``). ``arrive``: ``word`` is one to
    keep (a stream read's, not a fan-out read's); ``take``: ``head`` is used this cycle (only
    when ``have``); ``flush``: forget every word (a new frame). A shift queue: the head is a
    register, so the engine's event logic starts from flip-flops."""

    def __init__(self, layout, depth: int):
        self.depth = depth
        super().__init__({"word": In(layout), "arrive": In(1), "take": In(1), "flush": In(1),
                          "head": Out(layout), "have": Out(1)})

    def elaborate(self, platform):
        m = Module()
        D = self.depth
        e = [Signal.like(self.word, name=f"e{k}") for k in range(D)]
        # How many words are held, one-hot (``held[k]``: k words), so that where an arriving word
        # goes is one look-up: after the words that stay.
        held = Signal(D + 1, init=1)
        pop = Signal()
        m.d.comb += [self.head.eq(e[0]), self.have.eq(~held[0]), pop.eq(self.take)]
        for k in range(D):
            here = self.arrive & Mux(pop, held[k + 1], held[k])
            with m.If(here):
                m.d.sync += e[k].eq(self.word)
            if k + 1 < D:
                with m.Elif(pop):
                    m.d.sync += e[k].eq(e[k + 1])
        with m.If(self.flush):
            m.d.sync += held.eq(1)
        with m.Elif(self.arrive & ~pop):
            m.d.sync += held.eq(held << 1)
        with m.Elif(pop & ~self.arrive):
            m.d.sync += held.eq(held >> 1)
        return m


class LaneAccumulate(wiring.Component):
    """``ACC[addr] += addend`` for one lane word an event, pipelined: the event enters in the cycle
    its weight, ``b`` and ``Bcum`` reads are issued (s0), ACC's read is issued at s1 and its
    registered output (``q``: no block-RAM output feeds logic) arrives at s4, the addend of each
    lane is formed from the reads at s4 (the weight ROM's bank select had s3), and the sum is
    written at s5. The sums of the events one and two stages ahead are forwarded (ACC's read port
    is transparent for three stages ahead), so back-to-back events on one word need no stall.
    ``sop``: the lanes added."""

    DEPTH = 5

    def __init__(self, program, mwidth: int):
        p = program
        P, W = p.lanes, p.widths
        self.P, self.W = P, W
        self.ev = event_layout(p, mwidth)
        super().__init__({
            "img": In(1), "tdec": In(1), "event": In(self.ev),
            "w_q": In(P * W["weight"]), "spk_q": In(P), "cnt_q": In(P * W["cnt"]),
            "acc": Out(ReadPort(*p.port_shape("acc"))),
            "acc_w": Out(WritePort(*p.port_shape("acc"))),
            "sop": Out(range(P + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        P, W = self.P, self.W
        s = [self.event] + [Signal(self.ev, name=f"s{i}") for i in range(1, self.DEPTH + 2)]
        m.d.sync += [s[i].eq(s[i - 1]) for i in range(1, self.DEPTH + 2)]
        with m.If(s[1].valid):
            m.d.comb += self.acc.addr.eq(s[1].addr)
        w_qq, cnt_qq, spk_qq = Signal.like(self.w_q), Signal.like(self.cnt_q), Signal.like(self.spk_q)
        m.d.sync += [w_qq.eq(self.w_q), cnt_qq.eq(self.cnt_q), spk_qq.eq(self.spk_q)]
        acc_q = Signal(lane_word(W["acc"], P))
        w, bc = lanes_of(w_qq, W["weight"], P), lanes_of(cnt_qq, W["cnt"], P, sign=False)
        addend, sums, last = (Signal(lane_word(W["acc"], P), name=n) for n in ("addend", "sums", "last_sums"))
        for ln in range(P):
            tdec = Mux(s[4].a, bc[ln], 0) + Mux(spk_qq[ln], s[4].prev, 0)
            m.d.sync += addend[ln].eq(Mux(self.tdec, tdec, Mux(self.img, w[ln] << s[4].shift, w[ln])))
            m.d.comb += sums[ln].eq(acc_q[ln] + addend[ln])
        # The events one and two stages ahead read ACC before these sums were written: forward them
        # (the nearer one wins: it includes the other). The stages shift every cycle, so the
        # compares are made a stage earlier and registered (off the path into acc_q).
        ahead1, ahead2 = Signal(), Signal()  # s4 meets s5 / s6 on one word
        m.d.sync += [ahead1.eq(s[3].valid & s[4].valid & (s[3].addr == s[4].addr)),
                     ahead2.eq(s[3].valid & s[5].valid & (s[3].addr == s[5].addr))]
        m.d.sync += [last.eq(sums), acc_q.eq(Mux(ahead1, sums, Mux(ahead2, last, self.acc.q)))]
        with m.If(s[5].valid):
            m.d.comb += [self.acc_w.addr.eq(s[5].addr), self.acc_w.data.eq(sums), self.acc_w.en.eq(1),
                         self.sop.eq(s[5].lanes)]
        return m


class Scatter(PhaseUnit):
    """The scatter engine of ``program`` (module docstring). Ports: ``ctl``; read ports ``spk``,
    ``img``, ``cnt``, ``weight``, ``acc``; write ports ``cnt_w``, ``acc_w``; ``sop``."""

    def __init__(self, program):
        self.layout = program.layout["source"].shape["scatter"].shape
        self.mwidth = max(program.lanes, program.pixel_bits)
        super().__init__(program, self.layout, reads=("spk", "img", "cnt", "weight", "acc"), writes=("cnt", "acc"),
                         extra={"sop": Out(range(program.lanes + 1))})

    def elaborate(self, platform):
        m = Module()
        p, f, fr = self.program, self.ctl.op, self.ctl.frame
        m.submodules.scan = scan = ScanStages(p, self.mwidth, relay=scan_fill(p) - SCAN_FILL)
        m.submodules.accumulate = acc = LaneAccumulate(p, self.mwidth)
        depth = skid(p)
        queue, issued, flags = self._word_queue(m, scan, depth) if depth else (None, None, [])
        m.d.comb += [scan.img.eq(f.img), scan.tdec.eq(f.tdec), scan.first.eq(fr.first), scan.spk_q.eq(self.spk.q),
                     scan.img_q.eq(self.img.q), scan.cnt_q.eq(self.cnt.q), acc.img.eq(f.img), acc.tdec.eq(f.tdec),
                     acc.w_q.eq(self.weight.q), acc.spk_q.eq(self.spk.q), acc.cnt_q.eq(self.cnt.q),
                     self.sop.eq(acc.sop)]
        connect(m, acc.acc, flipped(self.acc))
        connect(m, acc.acc_w, flipped(self.acc_w))
        m.submodules.words = words = WordWalk(p, self.layout)
        m.submodules.taps = taps = TapWalk(p, self.layout)
        if p.compact:
            m.d.comb += [words.op.eq(f), taps.op.eq(f)]
        else:  # the walks read their own copy of the op's fields, a cycle behind the sequencer's record
            m.d.comb += [words.op.eq(self._op_copy(m, f)), taps.op.eq(words.op)]
        m.d.comb += [taps.ym.eq(words.ym), taps.xm.eq(words.xm)]  # each tap row's and column's border flag
        fsm = self._control(m, _Events(self, m, words, taps, queue, issued), scan, acc, queue, flags)
        m.d.comb += [words.restart.eq(fsm.ongoing("IDLE")), taps.restart.eq(fsm.ongoing("IDLE"))]
        one_hot_in_synthesis(fsm)  # a state is one flip-flop: none decoded on the event paths
        return m

    @staticmethod
    def _op_copy(m, f):
        """The op's fields, registered beside the walks. The record is written in the sequencer's
        OP_FETCH and holds until the next op's fetch, which comes after this op's scatter is done;
        the scatter starts at least two cycles after the fetch (OP_DECODE, OP_SETUP), so the copy is
        the record whenever a walk reads it. The route from the record across the die to the walks'
        compares was the critical path of the ULX3S and of the iCEBreaker (``sequencer.record.raw``
        → ``check`` → ``x_out`` → ``taps.done``)."""
        copy = Signal.like(f, name="op_copy")
        m.d.sync += copy.eq(f)
        return copy

    def _control(self, m, ev, scan, acc, queue, flags):
        """The engine's FSM: the stream's fill, a word taken (empty: the next; else its first
        event), each event's fan-out to its end, then the next event, the next word or the drain.
        Returns the FSM."""
        p, P, f, fr = self.program, self.program.lanes, self.ctl.op, self.ctl.frame
        words, taps = ev.words, ev.taps
        head, have = (queue.head, queue.have) if queue is not None else (scan.word, 1)
        with m.FSM(name="scatter") as fsm:
            idle_state(m, self.ctl, "SCAN_RD")
            states = ["SCAN_RD"] + [f"SCAN_WAIT{i}" for i in range(1, fill(p))] + ["SCAN_LATCH"]
            for i, (state, then) in enumerate(zip(states, states[1:])):
                with m.State(state):
                    ev.stream(words.wi if i == 0 else ev.ri)
                    if i == 0 and queue is not None:  # a new frame: no word queued, none of the last frame's in flight
                        m.d.comb += queue.flush.eq(1)
                        m.d.sync += [flag.eq(0) for flag in flags[1:]]
                    m.next = then
            with m.State("SCAN_LATCH"):
                with m.If(have):  # always, after the fill: a read was issued for every word taken
                    ev.take(head)
                    with m.If(head.zero):
                        ev.advance()
                        with m.If(words.last):
                            m.next = "DRAIN"
                    with m.Else():
                        ev.start_event(head.later, head.low, head.low2, head.single, head.pair)
                        m.next = "FANOUT"
            with m.State("FANOUT"):
                # A tap outside the output (a conv's border) is skipped, with its row or column.
                inside = ~taps.row_out & ~taps.col_out
                lane = ev.evb[:max(1, (P - 1).bit_length())] if P > 1 else 0
                RO = taps.RO
                m.d.comb += [self.weight.addr.eq(RO), self.spk.addr.eq(fr.b + RO), self.cnt.addr.eq(f.bcum + RO),
                             taps.step.eq(1)]
                m.d.comb += [acc.event.valid.eq(inside), acc.event.addr.eq(acc_addr(p, ev.ev_E + taps.FA, fr.bank)),
                             acc.event.shift.eq(ev.evb),
                             acc.event.a.eq(Array(ev.abits[i] for i in range(P))[lane]),
                             acc.event.prev.eq(Array(lanes_of(ev.aprev, p.widths["cnt"], P, sign=False))[lane]),
                             acc.event.lanes.eq(Mux(taps.k0_last, f.last_lanes, P))]
                with m.If(taps.done):  # this event is done: the next one in the word, or the next word
                    if ev.early:
                        # A non-empty word next, not TDEC: taken now, its first event started (the
                        # queue has it: words are taken at most one a cycle, and each one's read was
                        # issued ``fill`` takes, so at least ``fill`` cycles, before). Tested first,
                        # from one register and the head's flag: the queue's pop is a short path.
                        with m.If(ev.chain_ready & ~head.zero):
                            ev.take(head, tdec=False)  # (chain_ready: not TDEC)
                            ev.start_event(head.later, head.low, head.low2, head.single, head.pair)
                    with (m.Elif if ev.early else m.If)(ev.single):
                        if not ev.early:  # (else the walk moved on when this event started)
                            ev.advance()
                        with m.If(ev.was_last):
                            m.next = "DRAIN"
                        with m.Else():  # the next word: queued, or read again
                            m.next = "SCAN_LATCH" if queue is not None else "SCAN_RD"
                    with m.Else():
                        ev.next_event()
            drain = ["DRAIN"] + [f"DRAIN{i}" for i in range(1, SCAN_DRAIN)]
            for state, then in zip(drain, drain[1:]):
                with m.State(state):
                    m.next = then
            with m.State(drain[-1]):
                m.d.comb += self.ctl.done.eq(1)
                m.next = "IDLE"
        return fsm

    def _word_queue(self, m, scan, depth):
        """The word queue: the word taken is its head; every stream read's word joins it when its
        scan is done (``arrive``: the read's flag, ``scan_fill`` cycles on). Returns the queue,
        ``issued`` (a stream read issued this cycle) and the reads' flags in flight."""
        p = self.program
        m.submodules.skid = queue = WordSkid(word_layout(p, self.mwidth), depth)
        issued = Signal()  # a stream read issued this cycle
        flags = [Signal(name=f"issued{i}") for i in range(1, scan_fill(p) + 1)]
        m.d.sync += [flags[0].eq(issued)] + [flags[i].eq(flags[i - 1]) for i in range(1, scan_fill(p))]
        m.d.comb += [queue.word.eq(scan.word), queue.arrive.eq(flags[-1])]
        return queue, issued, flags


class _Events:
    """The scatter's event state on module ``m`` and the FSM's actions on it: of the word being
    fanned out, its event (bit ``evb``), the next (``nxt``), whether that one is its last
    (``single``), and its events after those two (``later``: the next event's start takes its
    lowest bit and clears it from a register, not through a decode of ``evb`` and ``nxt`` into the
    word's mask, which was the ULX3S's critical path at 104.7 MHz: ``evb`` → ``single2``, 12
    levels); the next word to read (``ri``); TDEC's counts of the word (``abits``, ``aprev``).

    With the queue (``early``) the word walk moves on when a word's last event starts, so that the
    next word's position is there when that event ends and the engine takes the next word in that
    cycle (chain); the event's ACC base ``ev_E`` and whether its word was the frame's last
    (``was_last``) are kept in registers, as is whether the event after this one is its word's
    last (``single2``, kept when this one starts: its mask without it has at most one bit left),
    so that the next event's start moves the walk from a register, not through the mask's decode
    (a ULX3S critical path: the mask, this event's bit and the next's → ``== 0`` → the walk's
    enables, 93.3 MHz)."""

    def __init__(self, unit, m, words, taps, queue, issued):
        p = unit.program
        self.unit, self.m, self.words, self.taps, self.queue, self.issued = unit, m, words, taps, queue, issued
        self.P, self.CW, self.mw = p.lanes, p.widths["cnt"], unit.mwidth
        self.f, self.fr = unit.ctl.op, unit.ctl.frame
        mw = self.mw
        self.ri = Signal.like(words.wi, name="ri")  # the next word to read
        # (unnamed, as before: a new name in the RTL places the ULX3S and iCEBreaker builds anew)
        self.nxt, self.single = Signal(range(mw)), Signal()
        self.later = Signal(mw, name="later")
        self.evb = Signal(range(mw), name="evb")  # the event being fanned out, the lowest set bit of mask
        self.abits, self.aprev = Signal(self.P), Signal(self.P * self.CW)
        self.early = early = queue is not None
        self.ev_E, self.was_last = ((Signal.like(words.E, name="ev_E"), Signal(name="was_last")) if early
                                    else (words.E, words.last))
        self.chain_ready = Signal(name="chain_ready") if early else None  # single & ~was_last & ~TDEC
        self.single2 = Signal(name="single2") if early else None

    def advance(self):
        """The word walk's step to the next word."""
        self.m.d.comb += self.words.step.eq(1)

    def start_event(self, later, bit, following, is_last, pair):
        """``bit`` is the current event; ``following`` the one after it; ``later`` the word's
        events after those two; ``is_last``: there is none after ``bit``; ``pair``: ``following``
        is the last or there is none (``later`` is empty), formed beside the FSM's choice of which event starts, which only selects
        it (from the control, a subtraction after that choice was a ULX3S critical path, 90.6 MHz:
        the tap walk's ``done`` → ``chain_ready``'s branch → the mask → ``single2``)."""
        m, P, f, words = self.m, self.P, self.f, self.words
        lane = bit[:max(1, (P - 1).bit_length())] if P > 1 else 0
        m.d.sync += [self.later.eq(later), self.evb.eq(bit), self.nxt.eq(following), self.single.eq(is_last)]
        if self.early:
            m.d.sync += self.single2.eq(pair)
        m.d.comb += [self.taps.start.eq(1), self.taps.row.eq(Mux(f.img, words.Bb[0], Array(words.Bb)[lane]))]
        if self.early:
            m.d.sync += [self.ev_E.eq(words.E), self.chain_ready.eq(is_last & ~words.last & ~f.tdec)]
            with m.If(is_last):  # the word's last event: the walk moves on now
                self.advance()
                m.d.sync += self.was_last.eq(words.last)

    def take(self, word, tdec: bool = True):
        """Take the queue's head ``word``: the next read issued (a read for every word taken)
        and, for TDEC, ``Acum(t)`` written back and the word's counts kept. ``tdec=False``: where
        the op is never TDEC (a chained word), so that CNT's write port does not wait on the
        choice (the fan-out's ``done`` → CNT's write data was a ULX3S critical path, 105.5 MHz)."""
        m, f, u = self.m, self.f, self.unit
        self.stream(self.ri)
        if self.queue is not None:
            m.d.comb += self.queue.take.eq(1)
        if not tdec:
            return
        with m.If(f.tdec):  # events: Acum(t) > 0; Acum(t) is written back now
            m.d.comb += [u.cnt_w.addr.eq(f.acum + self.words.wi), u.cnt_w.en.eq(1),
                         u.cnt_w.data.eq(cumulate(word.aprev, word.abits, self.CW, self.P))]
            m.d.sync += [self.abits.eq(word.abits), self.aprev.eq(word.aprev)]

    def stream(self, index):
        """Issue the read of input word ``index`` (spikes, pixel, Acum) and step the stream."""
        m, u, f = self.m, self.unit, self.f
        m.d.comb += [u.spk.addr.eq(self.fr.src + index), u.img.addr.eq(index), u.cnt.addr.eq(f.acum + index)]
        m.d.sync += self.ri.eq(index + 1)
        if self.queue is not None:
            m.d.comb += self.issued.eq(1)

    def next_event(self):
        """The word's next event, ``nxt``: the one after it is ``later``'s lowest bit, and the
        events after that ``later`` without it; whether ``nxt`` is the word's last from ``single2``
        where there is one (kept when this event started), else whether ``later`` is empty."""
        m, later = self.m, self.later
        rest = Signal.like(later, name="later_rest")  # ``later`` without its lowest bit
        m.d.comb += rest.eq(later & (later - 1))
        is_last = (later == 0) if self.single2 is None else self.single2
        self.start_event(rest, self.nxt, lowest(m, later), is_last, rest == 0)
