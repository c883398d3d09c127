"""The accelerator's memory system: read and write port signatures, banked block RAM, SPRAM.

A block RAM's output is slow (about 5.8 ns on an ECP5 DP16KD, which has no output register that
Yosys uses), and a memory deeper than one tile gets a multiplexer behind it. So every read here
is registered on both sides, per tile-deep bank:

- the address, set in cycle ``c``, is registered (the RAM sees it in ``c + 1``: no address logic
  or collision check meets the RAM's setup);
- each bank's output is registered in ``c + 2``; ``q`` selects among the bank registers (the bank
  number travels with the read) and is valid in ``c + 3``; ``data`` is the unregistered output,
  valid in ``c + 2`` (:data:`DATA_LATENCY`, :data:`Q_LATENCY`).

A memory has one physical read and one write port, shared by the phase units that use it: each
unit gets a port of its own (``read[i]``, ``write[i]``) and drives its address, data and enable to
zero while it does not use them (a unit's combinational outputs are zero outside the states that
drive them), so the memory ORs its users' ports. No two phases use one memory's port at once
(the sink and the scatter that run side by side each have an ACC buffer: :class:`AccBuffers`);
the verification catches two users in one cycle.

A write lands on the bank its address names; with ``registered_write`` it is applied a cycle
later (for write data that comes out of adders). ``transparent`` makes a read see a write to the
same word in the cycle the RAM reads it: the RAM's own transparency (Yosys builds it as a
multiplexer between the block RAM's output and the bank register), or with ``outreg`` the memory's:
whether the write met the read is registered beside it, and the written word joins the bank
registers as one more input of the select. Every bank's register is reset-less, and with
``outreg`` it takes the RAM's output and nothing else, so that a build can move it into the block
RAM (the DP16KD's output register, :mod:`csdformer.boards.outreg`), whose output then comes about
1 ns after the edge instead of 4 to 6 (the OrangeCrab's build does: :attr:`csdformer.boards.targets.Board.outreg`).

A read of a memory that is not transparent never needs the word written in the cycle the RAM reads
it (a collision): no phase unit reads a word while another writes it. So the board builds declare
such a read's value undefined (:data:`COLLISION_ANY`, a Yosys pass on the banks), which spares the
logic Yosys adds to make a block RAM read the old word (the OrangeCrab's digits build: 1,018 LUTs
and 646 flip-flops fewer). ``poison`` (the default, for simulation) checks the claim: a colliding
read returns the word inverted, so that a phase unit that uses it breaks the bit-exact
verification.

``single_port`` builds one single-port RAM (the iCE40UP5K's 256-kbit SPRAMs, 16 bits wide, 16384
deep): read and write share the address, a write wins the cycle and the read output holds its
last word (the SPRAM's behaviour, modelled exactly off iCE40, so simulation sees what the chip
does). Its read reaches the RAM in ``c + 2`` (and ``q`` is the RAM output, valid in ``c + 3``
as for the others), so reads and registered writes issued in one pass fall on cycles of
different parity when the user issues every other cycle: the half-rate sink
(:mod:`csdformer.hw.sink`).
"""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Array, ClockSignal, Const, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["ReadPort", "WritePort", "BankedMemory", "COLLISION_ANY", "AccBuffers", "SinglePortRam", "WeightBuffer", "tile_depth", "SPRAM_DEPTH", "SPRAM_WIDTH",
           "DATA_LATENCY", "Q_LATENCY"]

SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16  # one SB_SPRAM256KA
DATA_LATENCY = 2  # cycles from a read's address to ``data``
Q_LATENCY = 3  # cycles from a read's address to ``q``

# The Yosys command that gives each bank's read port that is not transparent an undefined value
# on a collision (``$memrd_v2``'s ``COLLISION_X_MASK``; Amaranth cannot say it): a board build
# runs it after reading the design. It selects by the banks' memory name (``bank<b>``), so the
# other memories (the link's, a FIFO's) keep their read-old-word behaviour.
COLLISION_ANY = r"setparam -set COLLISION_X_MASK 1'1 t:$memrd_v2 r:TRANSPARENCY_MASK=1'0 %i r:MEMID=\\bank* %i"


class ReadPort(wiring.Signature):
    """A read port, seen from its user: ``addr`` (cycle c) → ``data`` (c + 2), ``q`` (c + 3)."""

    def __init__(self, depth: int, width: int):
        super().__init__({"addr": Out(range(max(depth, 2))), "data": In(width), "q": In(width)})


class WritePort(wiring.Signature):
    """A write port, seen from its user: ``addr``, ``data``, ``en``."""

    def __init__(self, depth: int, width: int):
        super().__init__({"addr": Out(range(max(depth, 2))), "data": Out(width), "en": Out(1)})


def _is_ice40_up(platform) -> bool:
    """Whether ``platform`` builds for an iCE40 UltraPlus (the devices with SPRAM)."""
    return str(getattr(platform, "device", "")).startswith("iCE40UP")


def _any(values):
    return functools.reduce(operator.or_, values)


class SinglePortRam(wiring.Component):
    """``depth`` words of ``width`` bits behind one port: ``addr`` (read), ``w_addr`` / ``w_data`` /
    ``w_en`` (a write takes the port), ``data`` (the word read, the cycle after; held while
    writing). On an iCE40 UltraPlus: ``ceil(width / 16)`` SB_SPRAM256KA side by side."""

    def __init__(self, width: int, depth: int):
        self.width, self.depth = width, depth
        a = range(max(depth, 2))
        super().__init__({"addr": In(a), "w_addr": In(a), "w_data": In(width), "w_en": In(1), "data": Out(width)})

    def elaborate(self, platform):
        spram = _is_ice40_up(platform)
        if spram and self.depth > SPRAM_DEPTH:
            raise ValueError(f"{self.depth} words; an SPRAM holds {SPRAM_DEPTH}")
        m = Module()
        a = Signal.like(self.addr, name="port")
        m.d.comb += a.eq(Mux(self.w_en, self.w_addr, self.addr))
        if not spram:
            m.submodules.ram = mem = Memory(shape=unsigned(self.width), depth=self.depth, init=[])
            self.ram = mem  # read-only, for tests: the simulated RAM (preload and read it)
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [wp.addr.eq(a), wp.data.eq(self.w_data), wp.en.eq(self.w_en),
                         rp.addr.eq(a), rp.en.eq(~self.w_en), self.data.eq(rp.data)]
            return m
        a14 = Signal(14)
        m.d.comb += a14.eq(a)
        for k, i in enumerate(range(0, self.width, SPRAM_WIDTH)):
            n = min(SPRAM_WIDTH, self.width - i)
            out, din = Signal(SPRAM_WIDTH, name=f"out{k}"), Signal(SPRAM_WIDTH, name=f"in{k}")  # zero-padded
            m.d.comb += din.eq(self.w_data[i:i + n])
            m.submodules[f"spram{k}"] = Instance(
                "SB_SPRAM256KA", i_ADDRESS=a14, i_DATAIN=din, i_MASKWREN=Const(0b1111, 4), i_WREN=self.w_en,
                i_CHIPSELECT=Const(1, 1), i_CLOCK=ClockSignal("sync"), i_STANDBY=Const(0, 1),
                i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1), o_DATAOUT=out)
            m.d.comb += self.data[i:i + n].eq(out[:n])
        return m


def tile_depth(width: int, depth: int) -> int:
    """Bank depth for ``depth`` words of ``width`` bits: the ECP5 block-RAM configuration
    (16384×1 … 512×36, wider words side by side) that needs the fewest tiles; on a tie, the deeper
    one (fewer banks to select among)."""
    configs = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
    return min(configs, key=lambda c: (-(-width // c[1]) * -(-depth // c[0]), -c[0]))[0]


class BankedMemory(wiring.Component):
    """One logical memory of ``depth`` words of ``width`` bits, split into tile-deep banks.

    Ports: ``read[i]`` (:class:`ReadPort`, one per user; ``data`` is absent on a single-port RAM:
    zero), ``write[i]`` (:class:`WritePort`; a ROM has none). ``init`` fills it (ROMs). ``poison``:
    a read that is not transparent returns its word inverted when the RAM writes that word in the
    cycle it reads it (see the module docstring); without it, the old word (a board build then
    makes that value undefined: :data:`COLLISION_ANY`). ``outreg``: a transparent memory's
    transparency is its own, after the bank registers (module docstring), else the RAM's.
    """

    def __init__(self, width: int, depth: int, *, readers: int = 1, writers: int = 1, init=(), rom=False,
                 transparent=False, registered_write=False, single_port=False, poison=True, outreg=False):
        self.init = list(init)
        if single_port and (rom or transparent or self.init):
            raise ValueError("a single-port RAM has no initial contents and no transparency")
        self.width, self.depth, self.rom, self.transparent = width, depth, rom, transparent
        self.registered_write, self.single_port, self.poison = registered_write, single_port, poison
        self.own_transparency = transparent and outreg
        members = {"read": In(ReadPort(depth, width)).array(readers)}
        if not rom:
            members["write"] = In(WritePort(depth, width)).array(writers)
        super().__init__(members)

    def elaborate(self, platform):
        self.banks = []  # read-only, for tests: the Memory banks in address order, or the SinglePortRam
        m = Module()
        addr = Signal.like(self.read[0].addr, name="raddr")
        m.d.comb += addr.eq(_any(r.addr for r in self.read))
        ra = Signal.like(addr, name="raddr_q")
        m.d.sync += ra.eq(addr)
        if not self.rom:
            wa, wd, we = Signal.like(addr, name="waddr"), Signal(self.width, name="wdata"), Signal(name="wen")
            m.d.comb += [wa.eq(_any(w.addr for w in self.write)), wd.eq(_any(w.data for w in self.write)),
                         we.eq(_any(w.en for w in self.write))]
            if self.registered_write:
                wa, wd, we = self._register(m, wa), self._register(m, wd), self._register(m, we)
        if self.single_port:
            # One more address register, and ``q`` is the RAM's own output (one bank: no select),
            # still valid in c + 3: only registers sit next to the SPRAM.
            m.submodules.spram = sp = SinglePortRam(self.width, self.depth)
            self.banks = [sp]
            m.d.comb += [sp.addr.eq(self._register(m, ra)), sp.w_addr.eq(wa), sp.w_data.eq(wd), sp.w_en.eq(we)]
            m.d.comb += [r.q.eq(sp.data) for r in self.read]
            return m
        bd = min(tile_depth(self.width, self.depth), 1 << max(0, (self.depth - 1).bit_length()))
        nb = -(-self.depth // bd)
        lo = max(1, (bd - 1).bit_length())
        ram_transparent = self.transparent and not self.own_transparency  # the RAM's read port's own
        sel2 = Signal(range(nb), name="sel2")
        m.d.sync += sel2.eq(ra[lo:] if nb > 1 else 0)
        if self.own_transparency:  # the write that meets the read (c + 1), and its word, beside the RAM's read
            hit2, wd2 = Signal(name="hit2"), Signal(self.width, name="wdata2")
            m.d.sync += [hit2.eq(we & (wa == ra)), wd2.eq(wd)]
            sel3 = Signal(range(nb + 1), name="sel3")  # bank nb: the word written
            m.d.sync += sel3.eq(Mux(hit2, nb, sel2))
        else:
            sel3 = self._register(m, sel2)
        outs, regs = [], []
        for b in range(nb):
            mem = Memory(shape=unsigned(self.width), depth=min(bd, self.depth - b * bd),
                         init=self.init[b * bd:(b + 1) * bd])
            m.submodules[f"bank{b}"] = mem
            self.banks.append(mem)
            if self.rom:
                rp = mem.read_port()
            else:
                wp = mem.write_port()
                m.d.comb += [wp.addr.eq(wa[:lo]), wp.data.eq(wd), wp.en.eq(we & ((wa[lo:] == b) if nb > 1 else 1))]
                rp = mem.read_port(transparent_for=(wp,) if ram_transparent else ())
            m.d.comb += rp.addr.eq(ra[:lo])
            out = rp.data
            if self.poison and not self.rom and not ram_transparent:
                collided = Signal(name=f"collided{b}")  # the RAM wrote the word it read, this edge
                m.d.sync += collided.eq(wp.en & (wp.addr == rp.addr))
                out = Signal(self.width, name=f"poisoned{b}")
                m.d.comb += out.eq(rp.data ^ collided.replicate(self.width))
            outs.append(out)
            regs.append(self._register(m, out, reset_less=True))
        data, q = Signal(self.width, name="rdata"), Signal(self.width, name="rq")
        bank_data = Array(outs)[sel2] if nb > 1 else outs[0]
        if self.own_transparency:
            m.d.comb += [data.eq(Mux(hit2, wd2, bank_data)), q.eq(Array(regs + [self._register(m, wd2)])[sel3])]
        else:
            m.d.comb += [data.eq(bank_data), q.eq(Array(regs)[sel3] if nb > 1 else regs[0])]
        m.d.comb += [port.eq(v) for r in self.read for port, v in ((r.data, data), (r.q, q))]
        return m

    @staticmethod
    def _register(m, v, reset_less=False):
        r = Signal.like(v, name=(v.name or "v") + "_r", reset_less=reset_less)
        m.d.sync += r.eq(v)
        return r


class AccBuffers(wiring.Component):
    """ACC as ``buffers`` (2) :class:`BankedMemory` of ``depth`` words side by side, each with its own
    read and write port, so that two users work at once, each in its own buffer (the sink of one
    step and the scatter of the next). A user's address holds the buffer above the word (bit
    ``k``, the word's bits below it): the buffer travels with the address down the user's pipeline,
    so a write issued before the buffers swap still lands in its own. Ports as
    :class:`BankedMemory`'s (``read[i]``, ``write[i]``, the same latencies); a user's port reaches
    the buffer its address names and is zero at the others, and a read's ``data`` and ``q`` come
    from the buffer its address named (the buffer bit delayed with the read). The ports numbered in
    ``first_only`` (read and write) belong to a user of buffer 0 only (the bias pass, the logits):
    they reach buffer 0 whatever their buffer bit, with no select, and the other buffers' ports
    lack them (one user fewer ORed into their addresses: that route was the ULX3S's critical path).
    ``poison``, ``outreg``: as :class:`BankedMemory`'s."""

    def __init__(self, width: int, depth: int, *, buffers: int = 2, readers: int = 1, writers: int = 1,
                 transparent=False, first_only=(), poison=True, outreg=False):
        self.width, self.depth, self.buffers = width, depth, buffers
        self.k = max(1, (depth - 1).bit_length())
        self.port_depth = buffers << self.k
        self.first_only = frozenset(first_only)
        self._kw = dict(readers=readers, writers=writers, transparent=transparent, poison=poison, outreg=outreg)
        self.transparent, self.registered_write, self.single_port = transparent, False, False
        super().__init__({"read": In(ReadPort(self.port_depth, width)).array(readers),
                          "write": In(WritePort(self.port_depth, width)).array(writers)})

    def elaborate(self, platform):
        m = Module()
        k = self.k
        self.memories = [BankedMemory(self.width, self.depth, **self._kw) for _ in range(self.buffers)]
        self.ram = self.memories[0]  # read-only, for tests: buffer 0
        for b, mem in enumerate(self.memories):
            m.submodules[f"buffer{b}"] = mem
            for i, (r, port) in enumerate(zip(self.read, mem.read)):
                if i in self.first_only:  # buffer 0's user only: no select, and none at the others
                    m.d.comb += port.addr.eq(r.addr[:k] if b == 0 else 0)
                else:
                    m.d.comb += port.addr.eq(Mux(r.addr[k:] == b, r.addr[:k], 0))
            for i, (w, port) in enumerate(zip(self.write, mem.write)):
                if i in self.first_only:
                    if b == 0:
                        m.d.comb += [port.addr.eq(w.addr[:k]), port.data.eq(w.data), port.en.eq(w.en)]
                    continue
                on = w.addr[k:] == b
                m.d.comb += [port.addr.eq(Mux(on, w.addr[:k], 0)), port.data.eq(Mux(on, w.data, 0)),
                             port.en.eq(w.en & on)]
        for i, r in enumerate(self.read):
            if i in self.first_only:
                m.d.comb += [r.data.eq(self.memories[0].read[i].data), r.q.eq(self.memories[0].read[i].q)]
                continue
            sel = [r.addr[k:]]  # the buffer of the read issued DATA_LATENCY / Q_LATENCY cycles ago
            for n in range(Q_LATENCY):
                sel.append(Signal.like(sel[0], name=f"sel{i}_{n + 1}"))
                m.d.sync += sel[-1].eq(sel[-2])
            m.d.comb += [r.data.eq(Array(x.read[i].data for x in self.memories)[sel[DATA_LATENCY]]),
                         r.q.eq(Array(x.read[i].q for x in self.memories)[sel[Q_LATENCY]])]
        return m


class WeightBuffer(wiring.Component):
    """The weight double buffer: two slots of ``depth`` words of ``width`` bits. The scatter reads
    slot ``slot`` through ``read`` (addresses from 0 within the slot, :class:`ReadPort` timing)
    while the loader writes slot ``w_slot`` through ``write`` (addresses from 0 within the slot).
    With ``single_port`` each slot is its own single-port RAM (the iCE40UP5K's SPRAM), both behind
    one pair of address registers: the slots are never read and written at once, since the loader
    only fills a free slot. With ``resident`` it is one memory of ``depth`` words holding every
    op's weights (the slots are ignored: each op's block has its own addresses). ``poison``: as
    :class:`BankedMemory`'s."""

    def __init__(self, width: int, depth: int, *, single_port: bool = False, resident: bool = False,
                 poison: bool = True):
        if single_port and resident:
            raise ValueError("resident weights are one memory, not two single-port slots")
        self.width, self.depth, self.single_port, self.resident = width, depth, single_port, resident
        self.poison = poison
        super().__init__({"read": In(ReadPort(depth, width)), "slot": In(1),
                          "write": In(WritePort(depth, width)), "w_slot": In(1)})

    def elaborate(self, platform):
        m = Module()
        if not self.single_port:
            slots = 1 if self.resident else 2
            m.submodules.ram = ram = BankedMemory(self.width, slots * self.depth, poison=self.poison)
            self.ram = ram  # read-only, for tests: slot 0 from word 0, slot 1 from word ``depth``
            m.d.comb += [ram.read[0].addr.eq(self.read.addr + (Mux(self.slot, self.depth, 0) if slots > 1 else 0)),
                         self.read.data.eq(ram.read[0].data), self.read.q.eq(ram.read[0].q),
                         ram.write[0].addr.eq(self.write.addr + (Mux(self.w_slot, self.depth, 0) if slots > 1 else 0)),
                         ram.write[0].data.eq(self.write.data), ram.write[0].en.eq(self.write.en)]
            return m
        # BankedMemory(single_port=True)'s timing: the read address twice registered (the RAM
        # reads it in c + 2), ``q`` the RAM's output (c + 3).
        a1, a2 = Signal.like(self.read.addr, name="raddr_q"), Signal.like(self.read.addr, name="raddr_qq")
        slot3 = Signal()  # the slot of the read whose data is out (q: c + 3)
        s1, s2 = Signal(), Signal()
        m.d.sync += [a1.eq(self.read.addr), a2.eq(a1), s1.eq(self.slot), s2.eq(s1), slot3.eq(s2)]
        self.banks = []  # read-only, for tests: the two slots' SinglePortRam
        outs = []
        for s in range(2):
            m.submodules[f"slot{s}"] = ram = SinglePortRam(self.width, self.depth)
            self.banks.append(ram)
            m.d.comb += [ram.addr.eq(a2), ram.w_addr.eq(self.write.addr), ram.w_data.eq(self.write.data),
                         ram.w_en.eq(self.write.en & (self.w_slot == s))]
            outs.append(ram.data)
        m.d.comb += self.read.q.eq(Mux(slot3, outs[1], outs[0]))
        return m
