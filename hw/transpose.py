"""The block transposer: a transposed copy of a spike tensor's frame (the ``k`` of ``q·kᵀ``), so
that a lane word of the copy holds one channel over ``P`` tokens (:meth:`Tensor.to_words` of
the copy is the transpose of the original's).

Blocks of ``P`` rows × ``P`` columns: steps ``0 .. P−1`` read the block's rows (row group ``c0``,
column group ``c1``), which land in the block registers at steps ``3 .. P+2`` (from the registered
read), steps ``P+3 .. 2P+2`` write its ``P`` columns as rows of the copy. Cycles: :func:`cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal

from ..sim import golden
from .memory import Q_LATENCY
from .phase import PhaseUnit, addr_shape, idle_state

__all__ = ["GOLDEN", "Transpose", "cycles"]

#: The golden slice this unit is judged by (the transpose of a frame; tests/test_transpose.py).
GOLDEN = golden.transpose


def cycles(op, program) -> int:
    """Cycles over a window: per step ``blocks · (2P + 3) + 1``."""
    f, P = op.f, program.lanes
    return program.T * (f["row_groups"] * f["groups"] * (2 * P + Q_LATENCY) + 1)


class Transpose(PhaseUnit):
    """The block transposer of ``program``. Ports: ``ctl``; ``spk`` (read), ``spk_w``."""

    def __init__(self, program):
        super().__init__(program, program.layout["source"].shape["transpose"].shape, reads=("spk",), writes=("spk",))

    def elaborate(self, platform):
        m = Module()
        p, f, fr = self.program, self.ctl.op, self.ctl.frame
        P, A = p.lanes, addr_shape(p)
        end = 2 * P + Q_LATENCY - 1  # the block's last step
        block = [Signal(P, name=f"row{r}") for r in range(P)]
        step = Signal(range(end + 2))
        rd, wr, in0, out0 = (Signal(A, name=n) for n in ("rd", "wr", "in0", "out0"))
        # The row read, and the row group's first: below rows + P (compared with ``rows``)
        row, row0 = (Signal(range((1 << len(f.rows)) + 2 * P), name=n) for n in ("row", "row0"))
        c0, c1 = Signal(len(f.row_groups)), Signal(len(f.groups))  # row group, column group
        more = Signal()  # column groups left (c1 < groups), kept in a register
        valid = [Signal(name=f"valid{i}") for i in range(Q_LATENCY + 1)]  # a row read in flight
        idx = [Signal(range(end + 1), name=f"idx{i}") for i in range(Q_LATENCY + 1)]
        # Where the block is (reading rows, rows landing, writing columns, its last step) and the
        # column being written: registers, set from the next step, so that no compare or
        # subtraction of ``step`` sits before the block's address updates or SPK's write data.
        reading, landing, writing, at_end = (Signal(name=n) for n in ("reading", "landing", "writing", "at_end"))
        lane = Signal(max(1, (P - 1).bit_length()))

        def phase_of(s):
            return [reading.eq(s < P), landing.eq((s >= Q_LATENCY) & (s < P + Q_LATENCY)),
                    writing.eq(s >= P + Q_LATENCY), at_end.eq(s == end), lane.eq(s - P - Q_LATENCY)]

        nstep = Signal.like(step)
        m.d.comb += nstep.eq(Mux(at_end, 0, step + 1))
        with m.FSM(name="transpose"):
            idle_state(m, self.ctl, "TR", [x.eq(0) for x in (step, in0, out0, row0, rd, wr, row, c0, c1)]
                       + [more.eq(f.groups != 0)] + phase_of(Const(0, step.shape())))
            with m.State("TR"):
                with m.If(more):
                    m.d.sync += [step.eq(nstep)] + phase_of(nstep)
                    with m.If(reading):
                        m.d.comb += self.spk.addr.eq(fr.src + rd)
                        m.d.sync += [rd.eq(rd + f.groups), row.eq(row + 1)]
                    m.d.sync += [valid[1].eq(reading & (row < f.rows)), idx[1].eq(step)]
                    m.d.sync += [x[i].eq(x[i - 1]) for x in (valid, idx) for i in range(2, Q_LATENCY + 1)]
                    with m.If(landing):
                        for r in range(P):
                            with m.If(idx[Q_LATENCY] == r):
                                m.d.sync += block[r].eq(Mux(valid[Q_LATENCY], self.spk.q, 0))
                    with m.If(writing):
                        col = Array(Cat(*[block[r][i] for r in range(P)]) for i in range(P))[lane if P > 1 else 0]
                        m.d.comb += [self.spk_w.addr.eq(fr.out + wr), self.spk_w.data.eq(col), self.spk_w.en.eq(1)]
                        m.d.sync += wr.eq(wr + f.row_groups)
                    with m.If(at_end):
                        with m.If(c0 == f.row_groups_m1):  # next column group
                            m.d.sync += [c0.eq(0), c1.eq(c1 + 1), more.eq(c1 + 1 < f.groups), rd.eq(c1 + 1),
                                         in0.eq(c1 + 1), row.eq(0), row0.eq(0), wr.eq(out0 - c0 + f.out_step),
                                         out0.eq(out0 - c0 + f.out_step)]
                        with m.Else():  # next row group
                            m.d.sync += [c0.eq(c0 + 1), rd.eq(in0 + f.in_step), in0.eq(in0 + f.in_step),
                                         row.eq(row0 + P), row0.eq(row0 + P), wr.eq(out0 + 1), out0.eq(out0 + 1)]
                with m.Else():
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        return m
