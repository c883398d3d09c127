"""A behavioural model of an SDR SDRAM (the ULX3S's AS4C32M16SB), in Amaranth, that checks its
timing (for simulation).

:class:`SdramModel` sits on the other side of :class:`csdformer.hw.sdram.SdramPins` from the
controller, in the same ``sync`` domain: a command on the pins in a cycle is registered at that
cycle's end (the chip's clock edge). It holds ``words`` 16-bit words (the simulated part of the
chip: the address wraps there) and answers a READ with its word on ``dq_i`` ``cl`` edges on, as the
mode register set it; a WRITE stores ``dq_o`` (both bytes; ``dq_oe`` must be high).

Checked, each a sticky ``error`` with the first violation's :class:`Violation` in ``violation``
(the part's timing in cycles, :class:`csdformer.hw.sdram.SdramCycles`):

- power-up: no command but NOP for ``init`` cycles; then PRECHARGE ALL, at least two AUTO REFRESH
  and MODE REGISTER SET before the first ACTIVE; the mode: CAS latency ``cl``, burst length 1;
- ``mrd`` after MODE, ``rfc`` after REFRESH, before any command;
- ACTIVE: its bank closed; ``rp`` after the bank's PRECHARGE; ``rc`` after its last ACTIVE;
- READ / WRITE: the bank open; ``rcd`` after its ACTIVE;
- PRECHARGE: ``ras`` after each closed bank's ACTIVE; ``wr`` after its last WRITE;
- REFRESH: every bank closed, ``rp`` after the last PRECHARGE; never more than ``2 · refi``
  cycles between refreshes once the first is issued (the JEDEC limit is 9 · refi: postponed
  refreshes; the controller keeps to one every ``refi``, so twice that is already a fault).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..hw.common import HwParamError, check_int, validated
from ..hw.sdram import AS4C32M16SB, SdramCmd, SdramPart, SdramPins

__all__ = ["SdramModel", "Violation", "PinRegisters"]


class Violation(enum.Enum, shape=4):
    NONE = 0
    INIT = 1  # a command before the power-up wait
    SEQUENCE = 2  # ACTIVE before PRECHARGE ALL, two REFRESH and MODE
    MODE = 3  # a mode other than burst length 1 and the model's CAS latency
    T_MRD = 4
    T_RFC = 5
    T_RP = 6
    T_RC = 7
    T_RCD = 8
    T_RAS = 9
    T_WR = 10
    BANK_OPEN = 11  # ACTIVE to an open bank, or REFRESH with one open
    BANK_CLOSED = 12  # READ or WRITE to a closed bank
    REFRESH_LATE = 13
    DQ_UNDRIVEN = 14  # WRITE without dq_oe


class SdramModel(wiring.Component):
    """Behavioural SDR SDRAM (module docstring).

    Parameters
    ----------
    words : int
        16-bit words held (a power of two; the word address wraps there).
    clock_hz : float
        The clock, for the part's timing in cycles.
    part : SdramPart
    init : int
        Optional initial contents (a list of words).

    Members
    -------
    pins : In(SdramPins())
    error : Out(1)
    violation : Out(Violation)
    drive : Out(1)
        The chip drives DQ in this cycle (a read's word on ``dq_i``): for a bench that puts the
        model on a bidirectional pin.
    """

    @validated
    def __init__(self, *, words: int, clock_hz: float, part: SdramPart = AS4C32M16SB, init=()):
        self.words = check_int("words", words, lo=2, hi=part.words)
        if words & (words - 1):
            raise HwParamError(f"words: must be a power of two, got {words}")
        self.part, self.t = part, part.cycles(clock_hz)
        self.init = list(init)
        self.cb, self.bb = (part.cols - 1).bit_length(), (part.banks - 1).bit_length()
        self.rb = (part.rows - 1).bit_length()
        super().__init__({"pins": In(SdramPins(self.rb, self.bb)), "error": Out(1), "violation": Out(Violation),
                          "drive": Out(1)})

    def elaborate(self, platform):
        m = Module()
        t, p, nb = self.t, self.pins, self.part.banks
        m.submodules.mem = mem = Memory(shape=16, depth=self.words, init=self.init)
        rd, wr = mem.read_port(), mem.write_port()
        sat = 2 * t.refi + 2  # counters saturate here (above every limit checked)

        def counter(name, init=sat):
            c = Signal(range(sat + 1), name=name, init=init)
            m.d.sync += c.eq(Mux(c == sat, sat, c + 1))
            return c

        since_reset = counter("since_reset", 0)
        since_mode, since_ref, since_pre_any = counter("since_mode"), counter("since_ref"), counter("since_pre")
        since_act = [counter(f"since_act{b}") for b in range(nb)]
        since_pre = [counter(f"since_pre{b}") for b in range(nb)]
        since_wr = [counter(f"since_wr{b}") for b in range(nb)]
        is_open = Signal(nb)
        row = [Signal(self.rb, name=f"row{b}") for b in range(nb)]
        boot = Signal(range(4))  # PRECHARGE ALL seen (1), refreshes after it (2, 3), MODE (3 and ready)
        ready, refreshed = Signal(), Signal()
        started = Signal()  # the reset's wait is over (init cycles counted separately: wide)
        wait_init = Signal(range(t.init + 1))
        with m.If(wait_init != t.init):
            m.d.sync += wait_init.eq(wait_init + 1)
        m.d.comb += started.eq(wait_init == t.init)
        cl = [Signal(17, name=f"cl{i}") for i in range(t.cl - 1)]  # (valid, word) after the read port
        rvalid = Signal()
        m.d.sync += [rvalid.eq(0)]
        m.d.sync += [cl[0].eq(Cat(rd.data, rvalid))] + [cl[i].eq(cl[i - 1]) for i in range(1, len(cl))]
        m.d.comb += [p.dq_i.eq(Mux(cl[-1][16], cl[-1][:16], 0)), self.drive.eq(cl[-1][16])]

        bank = p.ba
        fault = Signal(Violation)
        hits = Signal(len(Violation))  # each violation seen this cycle (the lowest is reported)

        def check(cond, v):
            with m.If(cond):
                m.d.comb += hits[v.value].eq(1)

        def early(since, n):  # a command ``n`` cycles after the one that zeroed ``since`` is in time
            return since < n - 1

        def per_bank(sigs):
            return Cat(*sigs).word_select(bank, len(sigs[0]))

        cmd = p.cmd
        c_act, c_pre, c_rfc = per_bank(since_act), per_bank(since_pre), since_ref
        word = Cat(p.a[:self.cb], bank, per_bank(row))
        m.d.comb += [rd.addr.eq(word), wr.addr.eq(word), wr.data.eq(p.dq_o)]
        with m.If(cmd != SdramCmd.NOP):
            check(~started, Violation.INIT)
            check(early(since_mode, t.mrd), Violation.T_MRD)
            check(early(since_ref, t.rfc), Violation.T_RFC)
        with m.Switch(cmd):
            with m.Case(SdramCmd.PRECHARGE):
                for b in range(nb):
                    hit = p.a[10] | (bank == b)
                    check(hit & is_open[b] & early(since_act[b], t.ras), Violation.T_RAS)
                    check(hit & is_open[b] & early(since_wr[b], t.wr), Violation.T_WR)
                    with m.If(hit):
                        m.d.sync += [is_open[b].eq(0), since_pre[b].eq(0)]
                m.d.sync += since_pre_any.eq(0)
                with m.If(p.a[10] & (boot == 0)):
                    m.d.sync += boot.eq(1)
            with m.Case(SdramCmd.REFRESH):
                check(is_open.any(), Violation.BANK_OPEN)
                check(early(since_pre_any, t.rp), Violation.T_RP)
                m.d.sync += [since_ref.eq(0), refreshed.eq(1)]
                with m.If((boot == 1) | (boot == 2)):
                    m.d.sync += boot.eq(boot + 1)
            with m.Case(SdramCmd.MODE):
                check(boot != 3, Violation.SEQUENCE)
                check((p.a[:3] != 0) | (p.a[3] != 0) | (p.a[4:7] != t.cl), Violation.MODE)
                check(is_open.any(), Violation.BANK_OPEN)
                m.d.sync += [since_mode.eq(0), ready.eq(1)]
            with m.Case(SdramCmd.ACTIVE):
                check(~ready, Violation.SEQUENCE)
                check(is_open.bit_select(bank, 1), Violation.BANK_OPEN)
                check(early(c_pre, t.rp), Violation.T_RP)
                check(early(c_act, t.rc), Violation.T_RC)
                for b in range(nb):
                    with m.If(bank == b):
                        m.d.sync += [is_open[b].eq(1), row[b].eq(p.a), since_act[b].eq(0)]
            with m.Case(SdramCmd.READ, SdramCmd.WRITE):
                check(~ready, Violation.SEQUENCE)
                check(~is_open.bit_select(bank, 1), Violation.BANK_CLOSED)
                check(early(c_act, t.rcd), Violation.T_RCD)
                with m.If(cmd == SdramCmd.READ):
                    m.d.sync += rvalid.eq(1)
                with m.Else():
                    check(~p.dq_oe, Violation.DQ_UNDRIVEN)
                    m.d.comb += wr.en.eq(1)
                    for b in range(nb):
                        with m.If(bank == b):
                            m.d.sync += since_wr[b].eq(0)
        check(refreshed & (since_ref > 2 * t.refi), Violation.REFRESH_LATE)
        for v in reversed(list(Violation)[1:]):
            with m.If(hits[v.value]):
                m.d.comb += fault.eq(v)
        with m.If((fault != Violation.NONE) & ~self.error):  # the first violation stays
            m.d.sync += [self.error.eq(1), self.violation.eq(fault)]
        return m


class PinRegisters(wiring.Component):
    """The board's I/O registers between a controller built with ``io_registers`` and the chip, for
    simulation: every controller output registered on its way to ``chip``, ``chip.dq_i`` registered
    on its way back (what :func:`csdformer.boards.sdram.sdram_pins` builds in the FPGA's I/O cells).

    Members
    -------
    ctl : In(SdramPins())
        The controller's side.
    chip : Out(SdramPins())
        The chip's side (an :class:`SdramModel`'s ``pins``).
    """

    def __init__(self, row_bits: int = 13, bank_bits: int = 2):
        super().__init__({"ctl": In(SdramPins(row_bits, bank_bits)), "chip": Out(SdramPins(row_bits, bank_bits))})

    def elaborate(self, platform):
        m = Module()
        ctl, chip = self.ctl, self.chip
        m.d.sync += [getattr(chip, n).eq(getattr(ctl, n)) for n in ("cke", "cmd", "ba", "a", "dqm", "dq_o", "dq_oe")]
        m.d.sync += ctl.dq_i.eq(chip.dq_i)
        return m
