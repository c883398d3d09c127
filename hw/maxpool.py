"""TDEC max-pool (:func:`csdformer.sim.golden.tdec_maxpool`): ``out(t) = MP(C(t)) − MP(C(t−1))``.

Per step, once :mod:`csdformer.hw.cumulate` has added the input frame to the cumulative counts ``C``
(in CNT) and one cycle has let its last write land, ``MP2`` takes, per output word, the max of ``C(t)`` over the window's ``K·K`` taps (one tap read
a cycle) and compares it with the previous step's max (kept in CNT too): the output spike is
``max > previous``, at most one a step, and ``Σ_t out(t)`` is the max-pool of the counts.
Cycles: :func:`cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data

from ..sim import golden
from .phase import Counter, PhaseUnit, Walk, WriteCursor, addr_shape, idle_state, issue_pipe, lanes_of

__all__ = ["GOLDEN", "MaxPool", "cycles"]

#: The golden slice this unit is judged by (out(t) = MP(C(t)) − MP(C(t−1)); tests/test_maxpool.py).
GOLDEN = golden.tdec_maxpool


def cycles(op, program) -> int:
    """Cycles over a window: per step 1 (C's last write lands) ``+ out_words·(K² + 1) + 1``."""
    f = op.f
    return program.T * (1 + f["sink_words"] * (f["K"] ** 2 + 1) + 1)


class MaxPool(PhaseUnit):
    """The TDEC max-pool of ``program``'s max-pool ops. Ports: ``ctl``; ``spk_w``, ``cnt`` / ``cnt_w``."""

    def __init__(self, program):
        super().__init__(program, program.layout["source"].shape["maxpool"].shape, reads=("cnt",), writes=("spk", "cnt"))

    def elaborate(self, platform):
        m = Module()
        p, f, fr = self.program, self.ctl.op, self.ctl.frame
        A = addr_shape(p)
        nb = max(len(f[n]) for n in ("n0_m1", "n1_m1", "k_m1", "taps"))
        c0, c1 = Counter("c0", nb, f.n0_m1), Counter("c1", nb, f.n1_m1)
        walk = Walk(f.out_words)  # the output word
        wi = walk.word
        E, FA = Signal(A), Signal(A)  # the window's first tap, the tap's offset
        k0, k1 = Signal(nb), Signal(nb)  # tap, and column within the window's row
        q = issue_pipe(m, data.StructLayout({"tap": 1, "first_tap": 1, "out": 1, "first": 1}), 3, "q")
        issued = Signal()  # an output word's last read (its previous max)
        # The output word's SPK address and its previous max's CNT address, counted at q3.
        a = WriteCursor(m, "a", A, fr.out, issue=issued, write=q[3].out)
        a2 = WriteCursor(m, "a2", A, f.prev, issue=issued, write=q[3].out)
        with m.FSM(name="maxpool"):
            idle_state(m, self.ctl, "WAIT", c0.restart() + c1.restart() + walk.restart()
                       + [x.eq(0) for x in (E, k0, k1, FA)] + a.idle() + a2.idle())
            with m.State("WAIT"):  # C's last write lands before MP2 reads it
                m.next = "MP2"
            with m.State("MP2"):  # per output word: K·K tap reads of C, then one of the previous max
                with m.If(walk.more):
                    with m.If(k0 < f.taps):
                        m.d.comb += self.cnt.addr.eq(f.cum + E + FA)
                        m.d.sync += [q[1].tap.eq(1), q[1].first_tap.eq(k0 == 0), k0.eq(k0 + 1)]
                        with m.If(k1 == f.k_m1):
                            m.d.sync += [k1.eq(0), FA.eq(FA + f.fa_j1)]
                        with m.Else():
                            m.d.sync += [k1.eq(k1 + 1), FA.eq(FA + f.fa_j0)]
                    with m.Else():
                        m.d.comb += self.cnt.addr.eq(f.prev + wi)
                        m.d.comb += issued.eq(1)
                        m.d.sync += [q[1].out.eq(1), q[1].first.eq(fr.first), k0.eq(0), k1.eq(0),
                                     FA.eq(0)] + walk.step()
                        with m.If(~c0.last):
                            m.d.sync += c0.step() + [E.eq(E + f.e_j0)]
                        with m.Elif(~c1.last):
                            m.d.sync += c0.restart() + c1.step() + [E.eq(E + f.e_j1)]
                        with m.Else():
                            m.d.sync += c0.restart() + c1.restart() + [E.eq(E + f.e_j2)]
                with m.Else():
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        self._datapath(m, q[3], a.value, a2.value)
        return m

    def _datapath(self, m, q3, a, a2):
        """At q3 (the reads are there): the running max over the taps; the output spike against the
        previous max (at ``a2``), which is then replaced; the spike word at ``a``."""
        P, CW = self.program.lanes, self.program.widths["cnt"]
        cnt = lanes_of(self.cnt.q, CW, P, sign=False)
        run = Signal(P * CW)  # the running max
        best = lanes_of(run, CW, P, sign=False)
        with m.If(q3.tap):
            m.d.sync += run.eq(Cat(*[Mux(q3.first_tap | (cnt[i] > best[i]), cnt[i], best[i]) for i in range(P)]))
        with m.If(q3.out):
            bits = Cat(*[best[i] > Mux(q3.first, 0, cnt[i]) for i in range(P)])
            m.d.comb += [self.spk_w.addr.eq(a), self.spk_w.data.eq(bits), self.spk_w.en.eq(1),
                         self.cnt_w.addr.eq(a2), self.cnt_w.data.eq(run), self.cnt_w.en.eq(1)]
