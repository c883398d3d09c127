"""TDEC max-pool (:func:`csdformer.sim.golden.tdec_maxpool`): ``out(t) = MP(C(t)) − MP(C(t−1))``.

Where the units are not compact (:attr:`~csdformer.hw.program.Program.pool_counts`) the max-pool
counts its own input: per step ``MP2`` walks the output words and, per word, the window's ``K·K``
taps, one a cycle. A tap reads its input's cumulative count ``C(t−1)`` (in CNT; ``C(0) = 0``) and
its spike word of frame ``t`` (SPK), and writes ``C(t) = C(t−1) + s(t)`` back in place; the output
spike is ``max C(t) > max C(t−1)`` over the window. The windows do not overlap (stride ≥ kernel,
:mod:`csdformer.hw.program`), so each count is read and written once a step.

Compact (the iCEBreaker, whose logic cells are nearly all used): once :mod:`csdformer.hw.cumulate`
has added the input frame to ``C`` and one cycle has let its last write land, ``MP2`` takes, per
output word, the max of ``C(t)`` over the window's taps (one tap read a cycle) and compares it with
the previous step's max (kept in CNT too, read after the taps).

Either way the output spike is at most one a step, and ``Σ_t out(t)`` is the max-pool of the
counts. Cycles: :func:`cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data

from ..sim import golden
from .memory import Q_LATENCY
from .phase import Counter, PhaseUnit, Walk, WriteCursor, addr_shape, cumulate, idle_state, issue_pipe, lanes_of

__all__ = ["GOLDEN", "MaxPool", "cycles"]

#: The golden slice this unit is judged by (out(t) = MP(C(t)) − MP(C(t−1)); tests/test_maxpool.py).
GOLDEN = golden.tdec_maxpool


def cycles(op, program) -> int:
    """Cycles over a window: per step ``out_words·K² + 1`` (one a tap, and the cycle that ends the
    pass); compact, ``1 + out_words·(K² + 1) + 1`` (C's last write lands; the previous max read
    after the taps)."""
    f = op.f
    if program.pool_counts:
        return program.T * (f["sink_words"] * f["K"] ** 2 + 1)
    return program.T * (1 + f["sink_words"] * (f["K"] ** 2 + 1) + 1)


class MaxPool(PhaseUnit):
    """The TDEC max-pool of ``program``'s max-pool ops. Ports: ``ctl``; ``spk`` (where it counts its
    input, :attr:`~csdformer.hw.program.Program.pool_counts`) / ``spk_w``, ``cnt`` / ``cnt_w``."""

    def __init__(self, program):
        super().__init__(program, program.layout["source"].shape["maxpool"].shape,
                         reads=("cnt", "spk") if program.pool_counts else ("cnt",), writes=("spk", "cnt"))

    def elaborate(self, platform):
        m = Module()
        p, f = self.program, self.ctl.op
        A = addr_shape(p)
        nb = max(len(f[n]) for n in ("n0_m1", "n1_m1", "k_m1", "taps"))
        c0, c1 = Counter("c0", nb, f.n0_m1), Counter("c1", nb, f.n1_m1)
        walk = Walk(f.out_words)  # the output word
        E, FA = Signal(A, name="E"), Signal(A, name="FA")  # the window's first tap, the tap's offset
        k0, k1 = Signal(nb, name="k0"), Signal(nb, name="k1")  # tap, and column within the window's row

        def next_tap():
            m.d.sync += k0.eq(k0 + 1)
            with m.If(k1 == f.k_m1):
                m.d.sync += [k1.eq(0), FA.eq(FA + f.fa_j1)]
            with m.Else():
                m.d.sync += [k1.eq(k1 + 1), FA.eq(FA + f.fa_j0)]

        def next_word():
            m.d.sync += [k0.eq(0), k1.eq(0), FA.eq(0)] + walk.step()
            with m.If(~c0.last):
                m.d.sync += c0.step() + [E.eq(E + f.e_j0)]
            with m.Elif(~c1.last):
                m.d.sync += c0.restart() + c1.step() + [E.eq(E + f.e_j1)]
            with m.Else():
                m.d.sync += c0.restart() + c1.restart() + [E.eq(E + f.e_j2)]

        restart = c0.restart() + c1.restart() + walk.restart() + [x.eq(0) for x in (E, k0, k1, FA)]
        (self._counting if p.pool_counts else self._after_counts)(m, walk, E, FA, k0, restart, next_tap, next_word)
        return m

    def _counting(self, m, walk, E, FA, k0, restart, next_tap, next_word):
        """The max-pool that counts its input (module docstring); the tap's input word is ``E + FA``."""
        p, f, fr = self.program, self.ctl.op, self.ctl.frame
        tap = E + FA
        A = addr_shape(p)
        # A tap's read, its data at q3: the first of its window, the last (the output word), the
        # frame's first step (C(0) = 0) and the count's address. Three stages from there (for clock
        # speed: SPK's read route, the count's adder, the max compares and SPK's write were one
        # path, 89 MHz on the ULX3S): q3 registers the count and the spike bits as they arrive, q4
        # writes the count one frame on and keeps the running maxes, q5 (the window's last tap) the
        # output spike word.
        q = issue_pipe(m, data.StructLayout({"tap": 1, "first_tap": 1, "out": 1, "first": 1, "addr": A}),
                       Q_LATENCY + 2, "q")
        issued = Signal()  # an output word's last tap
        a = WriteCursor(m, "a", A, fr.out, issue=issued, write=q[Q_LATENCY + 2].out)  # its SPK address
        with m.FSM(name="maxpool"):
            idle_state(m, self.ctl, "MP2", restart + a.idle())
            with m.State("MP2"):  # per output word: its K·K taps, one a cycle
                with m.If(walk.more):
                    m.d.comb += [self.cnt.addr.eq(f.cum + tap), self.spk.addr.eq(fr.src + tap)]
                    last = k0 == f.taps - 1
                    m.d.sync += [q[1].tap.eq(1), q[1].first_tap.eq(k0 == 0), q[1].out.eq(last),
                                 q[1].first.eq(fr.first), q[1].addr.eq(f.cum + tap)]
                    with m.If(~last):
                        next_tap()
                    with m.Else():
                        m.d.comb += issued.eq(1)
                        next_word()
                with m.Else():
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        q3, q4, q5 = q[Q_LATENCY:Q_LATENCY + 3]
        P, CW = p.lanes, p.widths["cnt"]
        before, bits = Signal(P * CW, name="before"), Signal(P, name="bits")  # C(t−1) and s(t), at q4
        m.d.sync += [before.eq(Mux(q3.first, 0, self.cnt.q)), bits.eq(self.spk.q)]
        after = cumulate(before, bits, CW, P)
        maxes = []
        for name, now in (("run_old", before), ("run_new", after)):
            run, now = Signal(P * CW, name=name), lanes_of(now, CW, P, sign=False)  # the running max
            best = lanes_of(run, CW, P, sign=False)
            with m.If(q4.tap):  # with this tap (the window's max when it is the last)
                m.d.sync += run.eq(Cat(*[Mux(q4.first_tap | (now[i] > best[i]), now[i], best[i]) for i in range(P)]))
            maxes.append(best)
        with m.If(q4.tap):
            m.d.comb += [self.cnt_w.addr.eq(q4.addr), self.cnt_w.data.eq(after), self.cnt_w.en.eq(1)]
        with m.If(q5.out):  # the maxes over the window: max C(t) > max C(t−1)
            m.d.comb += [self.spk_w.addr.eq(a.value), self.spk_w.data.eq(Cat(*[n > o for o, n in zip(*maxes)])),
                         self.spk_w.en.eq(1)]

    def _after_counts(self, m, walk, E, FA, k0, restart, next_tap, next_word):
        """The compact max-pool, after the cumulative counts (module docstring)."""
        p, f, fr = self.program, self.ctl.op, self.ctl.frame
        A = addr_shape(p)
        wi = walk.word
        q = issue_pipe(m, data.StructLayout({"tap": 1, "first_tap": 1, "out": 1, "first": 1}), 3, "q")
        issued = Signal()  # an output word's last read (its previous max)
        # The output word's SPK address and its previous max's CNT address, counted at q3.
        a = WriteCursor(m, "a", A, fr.out, issue=issued, write=q[3].out)
        a2 = WriteCursor(m, "a2", A, f.prev, issue=issued, write=q[3].out)
        with m.FSM(name="maxpool"):
            idle_state(m, self.ctl, "WAIT", restart + a.idle() + a2.idle())
            with m.State("WAIT"):  # C's last write lands before MP2 reads it
                m.next = "MP2"
            with m.State("MP2"):  # per output word: K·K tap reads of C, then one of the previous max
                with m.If(walk.more):
                    with m.If(k0 < f.taps):
                        m.d.comb += self.cnt.addr.eq(f.cum + E + FA)
                        m.d.sync += [q[1].tap.eq(1), q[1].first_tap.eq(k0 == 0)]
                        next_tap()
                    with m.Else():
                        m.d.comb += self.cnt.addr.eq(f.prev + wi)
                        m.d.comb += issued.eq(1)
                        m.d.sync += [q[1].out.eq(1), q[1].first.eq(fr.first)]
                        next_word()
                with m.Else():
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        # At q3 (the reads are there): the running max over the taps; the output spike against the
        # previous max (at ``a2``), which is then replaced; the spike word at ``a``.
        q3, P, CW = q[3], p.lanes, p.widths["cnt"]
        cnt = lanes_of(self.cnt.q, CW, P, sign=False)
        run = Signal(P * CW)  # the running max
        best = lanes_of(run, CW, P, sign=False)
        with m.If(q3.tap):
            m.d.sync += run.eq(Cat(*[Mux(q3.first_tap | (cnt[i] > best[i]), cnt[i], best[i]) for i in range(P)]))
        with m.If(q3.out):
            bits = Cat(*[best[i] > Mux(q3.first, 0, cnt[i]) for i in range(P)])
            m.d.comb += [self.spk_w.addr.eq(a.value), self.spk_w.data.eq(bits), self.spk_w.en.eq(1),
                         self.cnt_w.addr.eq(a2.value), self.cnt_w.data.eq(run), self.cnt_w.en.eq(1)]
