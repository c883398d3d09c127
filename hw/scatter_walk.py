"""The scatter's two address walks (:mod:`csdformer.hw.scatter`): over the input words, and over
an event's taps. Both are nested counters with increments from the op's fields (``*_j0/_j1/_j2``),
so that no address needs a multiplication."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .phase import Counter, addr_shape

__all__ = ["WordWalk", "TapWalk"]


def _width(layout, name: str) -> int:
    return Shape.cast(layout[name].shape).width


class _Move:
    """Registers that step by one of their increments: ``(register, increment 0, increment 1, ...)``
    each; :meth:`by` (``k``) is the statements that add increment ``k`` to every register.
    Increments ``shared`` and up share one adder (their increment chosen first, then added), as
    every increment does when ``compact``; the others have an adder each."""

    def __init__(self, m, compact: bool, *walks, shared: int | None = None):
        self.m, self.walks = m, walks
        self.shared = 0 if compact else shared
        if self.shared is not None:
            self.inc = [Signal(Value.cast(w[0]).shape(), name=f"inc{i}") for i, w in enumerate(walks)]

    def by(self, k: int) -> list:
        if self.shared is None or k < self.shared:
            return [w[0].eq(w[0] + w[1 + k]) for w in self.walks]
        self.m.d.comb += [inc.eq(w[1 + k]) for inc, w in zip(self.inc, self.walks)]
        return [w[0].eq(w[0] + inc) for inc, w in zip(self.inc, self.walks)]


def _position_shape(layout):
    """A tap's output row or column ``y + pad − k`` (signed: it may fall outside, below 0)."""
    return signed(max(_width(layout, n) for n in ("words_m1", "pad", "hout", "wout", "f2_m1")) + 2)


def taps(layout) -> int:
    """Tap rows (or columns) an op may have, as many as its field ``f2_m1`` / ``f1_m1`` can say."""
    return max(2, 1 << max(_width(layout, "f1_m1"), _width(layout, "f2_m1")))


def _counter_width(layout) -> int:
    return max(_width(layout, n) for n in ("n0_m1", "n1_m1", "f0_m1", "f1_m1", "f2_m1"))


class WordWalk(wiring.Component):
    """The input word being scanned: its index ``wi`` (``last``: the frame's last word), its
    position (``c0`` fastest, then ``c1``, ``c2``: the op's input layout) and the addresses that
    step with it: ``E``, its first output word in ACC, and ``Bb[b]``, lane ``b``'s weight row
    (``Bb[0] + bmul[b]``: starting an event is a mux, not an addition). ``restart``: the frame's
    first word, from the fields of ``op``; ``step``: the next word.

    It also keeps, for each tap row ``k`` of the position, whether
    its output row ``c2 + pad − k`` is outside the output (``ym``: a conv's border, ``check``), and
    for each tap column whether its output column ``c1 + pad − k`` is (``xm``), so that an event's
    fan-out (:class:`TapWalk`) takes its border flags from registers: no compare on its walk (a
    compare of the tap's column there was the OrangeCrab's critical path, 157.9 MHz; before, the
    first tap's addition and compare at the event's start, a ULX3S one, 95.9 MHz). A step to the
    next column shifts ``xm`` by one (tap ``k`` of the new column is tap ``k − 1`` of the old) and
    compares only its first tap's column; the next row likewise ``ym``. The compact build (the
    iCEBreaker) does so too: its walk's compares were its critical path (``check`` → the tap
    column's compare → ``done``, 32.2 MHz), and the flags take fewer logic cells than the
    position registers and compares they replace (session 20: 36.0 MHz, 53 cells fewer)."""

    def __init__(self, program, layout):
        A, P = addr_shape(program), program.lanes
        nb, nw = _counter_width(layout), _width(layout, "words_m1")
        self.compact = program.compact
        super().__init__({"op": In(layout), "restart": In(1), "step": In(1), "last": Out(1),
                          "wi": Out(max(nw, 3) + 1), "c2": Out(nw + 1), "E": Out(A),
                          "Bb": Out(data.ArrayLayout(A, P)), "ym": Out(taps(layout)), "xm": Out(taps(layout))})
        self.nb, self.P, self.K = nb, P, taps(layout)
        self.pshape = _position_shape(layout)

    def elaborate(self, platform):
        m = Module()
        f, Bb, E = self.op, self.Bb, self.E
        c0, c1 = Counter("c0", self.nb, f.n0_m1), Counter("c1", self.nb, f.n1_m1)
        m.d.comb += self.last.eq(self.wi == f.words_m1)

        def set_b(value_of):
            return [Bb[0].eq(value_of(Bb[0], 0))] + [Bb[b].eq(value_of(Bb[b], f.bmul[b])) for b in range(1, self.P)]

        # the first tap's output row and column (ys, xs), each tap's border flag
        ys, xs = Signal(self.pshape, name="ys"), Signal(self.pshape, name="xs")
        ym, xm = self.ym, self.xm

        def first(n):  # tap k of the first row or column (c + pad = pad) outside
            return Cat(*[f.check & ((f.pad < k) | (f.pad >= n + k)) for k in range(self.K)])

        # the next row / column: its first tap compared (ys + 1 >= 0), the others shifted in
        row = [ys.eq(ys + 1), ym.eq(Cat(f.check & (ys + 1 >= f.hout), ym[:-1]))]
        col = [xs.eq(xs + 1), xm.eq(Cat(f.check & (xs + 1 >= f.wout), xm[:-1]))]
        first_col = [xs.eq(f.pad), xm.eq(first(f.wout))]
        next_row = first_col + row
        with m.If(self.restart):
            m.d.sync += c0.restart() + c1.restart() + [self.wi.eq(0), self.c2.eq(0), E.eq(f.e_base)] + \
                set_b(lambda _, o: f.b_base + o)
            m.d.sync += first_col + [ys.eq(f.pad), ym.eq(first(f.hout))]
        with m.Elif(self.step):
            m.d.sync += self.wi.eq(self.wi + 1)
            move = _Move(m, self.compact, (E, f.e_j0, f.e_j1, f.e_j2),
                         *[(Bb[b], f.b_j0, f.b_j1, f.b_j2) for b in range(self.P)])
            with m.If(~c0.last):
                m.d.sync += c0.step() + move.by(0)
            with m.Elif(~c1.last):
                m.d.sync += c0.restart() + c1.step() + move.by(1) + col
            with m.Else():
                m.d.sync += c0.restart() + c1.restart() + [self.c2.eq(self.c2 + 1)] + move.by(2) + next_row
        return m


class TapWalk(wiring.Component):
    """An event's fan-out, one lane word a cycle: the tap (``k0`` fastest, then ``k1``, ``k2``),
    ``FA``, the output word's offset from the input word's ``E``, and ``RO``, the weight row.
    ``restart``: no event (every tap counter at 0); ``start``: an event whose first row is ``row``,
    with each tap row's and column's border flag at its position (``ym``, ``xm``, from
    :class:`WordWalk`); ``step``: the next tap, or after
    the last (``done``) back to the first. ``k0_last``: the tap's lane word is the last of its
    output row.

    Taps outside the output (a conv's border, ``check``): ``row_out`` / ``col_out`` say that the
    tap's output row ``oy = y + pad − k2`` / column ``ox = x + pad − k1`` is outside, and a step
    there skips the whole tap row (from its first tap: ``fa_r``, ``fw_r``) or tap column (``fa_c``,
    ``fw_c``; from the last column to the next row ``fa_cr``, ``fw_cr``) in one cycle instead of
    walking its lane words. A tap row or column is always entered at its first lane word, where
    the skip is decided. The two flags are registers' bits, set for the tap being entered, so no
    compare sits before the step's adders: the walk keeps the event's flags (``rm``: the rows from
    this one on, ``cm``: the columns of this row from this one on, ``xm0``: every column's) and
    shifts them, so the next flag is a register's bit (the compare of ``ox`` into ``done`` was the
    OrangeCrab's critical path, 157.9 MHz, and the iCEBreaker's, 32.2 MHz). The fan-out's cycles
    per position: :func:`csdformer.hw.scatter.tap_cycles`."""

    def __init__(self, program, layout):
        A, nb, K = addr_shape(program), _counter_width(layout), taps(layout)
        super().__init__({"op": In(layout), "restart": In(1), "start": In(1), "row": In(A), "step": In(1),
                          "ym": In(K), "xm": In(K),  # (WordWalk's)
                          "FA": Out(A), "RO": Out(A), "k0_last": Out(1),
                          "row_out": Out(1), "col_out": Out(1), "done": Out(1)})
        self.nb, self.K = nb, K
        self.compact = program.compact

    def elaborate(self, platform):
        m = Module()
        f, FA, RO = self.op, self.FA, self.RO
        k0, k1, k2 = (Counter(n, self.nb, limit) for n, limit in (("k0", f.f0_m1), ("k1", f.f1_m1), ("k2", f.f2_m1)))
        # the border flags of the rows from this one, this row's columns from this one, every column
        rm, cm, xm0 = (Signal(self.K, name=n) for n in ("rm", "cm", "xm0"))
        m.d.comb += [self.row_out.eq(rm[0]), self.col_out.eq(cm[0])]
        m.d.comb += self.k0_last.eq(k0.last)

        # ``done`` is a register, set for the tap being entered: the event ends at this tap's step
        # when it is on the last tap row and the row is outside, or on the last column and the
        # column is outside, or on the last lane word (so no compare or mux of flags sits before
        # the engine's next-event logic). Where the units are not compact it is also the last
        # thing decided: its value for an event that starts (from registers) and for one that does
        # not (``nd``, from the walk) are formed side by side, and ``start`` (late: the engine's
        # choice of the next event) only selects between them (the OrangeCrab's critical path ran
        # from ``start`` through the walk's cases into ``done``, 143.1 MHz). The compact build
        # (the iCEBreaker, 97 % of its cells) keeps one priority chain.
        nd = self.done if self.compact else Signal(name="done_walk")
        if not self.compact:
            m.d.comb += nd.eq(self.done)

        def ends_value(l2, row_out, l1, col_out, l0):
            return l2 & (row_out | (l1 & (col_out | l0)))

        def ends(l2, row_out, l1, col_out, l0):
            return nd.eq(ends_value(l2, row_out, l1, col_out, l0))

        def emit(stmts):  # ``nd``, where it is not ``done``, is combinational; the rest are registers
            for s in stmts:
                if s.lhs is nd and not self.compact:
                    m.d.comb += s
                else:
                    m.d.sync += s

        L0r, L1r = f.f0_m1 == 0, f.f1_m1 == 0  # the last flags of a restarted k0, k1
        L0s, L1s, L2s = (k.next_last for k in (k0, k1, k2))  # of a stepped one

        def to_row():  # enter the next tap row (and its first column)
            return [rm.eq(rm[1:]), cm.eq(xm0), ends(L2s, rm[1], L1r, xm0[0], L0r)]

        def to_col():  # the next column of this row (inside)
            return [cm.eq(cm[1:]), ends(k2.last, 0, L1s, cm[1], L0r)]

        first = k0.restart() + k1.restart() + k2.restart() + [FA.eq(0)]
        next_row = k0.restart() + k1.restart() + k2.step() + to_row()
        # The skips (rare: a conv's border) share one adder a walk; the steps have their own.
        move = _Move(m, self.compact, (FA, f.fa_j0, f.fa_j1, f.fa_j2, f.fa_r, f.fa_c, f.fa_cr),
                     (RO, f.fw_j0, f.fw_j1, f.fw_j2, f.fw_r, f.fw_c, f.fw_cr), shared=3)
        J0, J1, J2, R, C, CR = range(6)
        def leave_column(to_next_col, to_next_row):
            """From a column's first or last lane word: the next column, else the next row, else done."""
            with m.If(~k1.last):
                emit(k0.restart() + k1.step() + to_col() + move.by(to_next_col))
            with m.Elif(~k2.last):
                emit(next_row + move.by(to_next_row))
            with m.Else():
                m.d.sync += first

        # ``restart`` (the engine idle) and ``step`` (its fan-out) never meet. Where the units are
        # not compact the step's logic does not wait on ``restart``: the restart comes after it and
        # wins (``scatter.restart`` → the walk's adders → ``RO`` was a critical path of both ECP5
        # boards: 97.6 MHz on the ULX3S, 148.9 on the OrangeCrab).
        if self.compact:
            with m.If(self.restart):
                m.d.sync += first
        with (m.Elif if self.compact else m.If)(self.step):
            with m.If(self.row_out):
                with m.If(~k2.last):
                    emit(next_row + move.by(R))
                with m.Else():
                    m.d.sync += first
            with m.Elif(self.col_out):  # skip the column
                leave_column(C, CR)
            with m.Elif(~k0.last):
                emit(k0.step() + move.by(J0) + [ends(k2.last, 0, k1.last, 0, L0s)])
            with m.Else():  # the column's last lane word
                leave_column(J1, J2)
        if not self.compact:
            with m.If(self.restart):
                m.d.sync += first
        # the event's first tap: every counter at 0, its taps' border flags; whether it ends there
        starts_done = ends_value(f.f2_m1 == 0, self.ym[0], L1r, self.xm[0], L0r)
        with m.If(self.start):
            m.d.sync += [RO.eq(self.row), rm.eq(self.ym), cm.eq(self.xm), xm0.eq(self.xm)]
            if self.compact:
                m.d.sync += self.done.eq(starts_done)
        if not self.compact:
            done_start = Signal(name="done_start")  # from registers only
            m.d.comb += done_start.eq(starts_done)
            m.d.sync += self.done.eq(Mux(self.start, done_start, nd))
        return m
