"""The accelerator's memory ports, built for clock speed.

A block RAM's output is slow (about 5.8 ns on an ECP5 DP16KD, which has no output register that
Yosys uses), and a memory deeper than one tile gets a multiplexer behind it. So every read here
is registered on both sides, per tile-deep bank:

- the address, set in cycle ``c``, is registered (the RAM sees it in ``c + 1``: no address logic
  or collision check meets the RAM's setup);
- each bank's output is registered in ``c + 2``; ``q`` selects among the bank registers (the bank
  number travels with the read) and is valid in ``c + 3``; ``data`` is the unregistered output,
  valid in ``c + 2``.

A write through ``write`` lands on the bank its address names; with ``registered_write`` it is
applied a cycle later (for write data that comes out of adders). ``transparent`` makes a read see
a write to the same word in the cycle the RAM reads it.

``single_port`` builds one single-port RAM (the iCE40UP5K's 256-kbit SPRAMs, 16 bits wide, 16384
deep): read and write share the address, a write wins the cycle and the read output holds its
last word (the SPRAM's behaviour, modelled exactly off iCE40, so simulation sees what the chip
does). Its read reaches the RAM in ``c + 2`` (and ``q`` is the RAM output, valid in ``c + 3``
as for the others), so reads and registered writes issued in one pass fall on cycles of
different parity when the user issues every other cycle: the accelerator's half-rate sink (see
:mod:`csdformer.hw.accelerator`).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, ClockSignal, Const, Elaboratable, Instance, Module, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

__all__ = ["BankedMemory", "SinglePortRam", "tile_depth", "SPRAM_DEPTH", "SPRAM_WIDTH"]

SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16  # one SB_SPRAM256KA


def _is_ice40_up(platform) -> bool:
    """Whether ``platform`` builds for an iCE40 UltraPlus (the devices with SPRAM)."""
    return str(getattr(platform, "device", "")).startswith("iCE40UP")


class SinglePortRam(Elaboratable):
    """``depth`` words of ``width`` bits behind one port: ``addr`` (read), ``w_addr`` / ``w_data`` /
    ``w_en`` (a write takes the port), ``data`` (the word read, the cycle after; held while
    writing). On an iCE40 UltraPlus: ``ceil(width / 16)`` SB_SPRAM256KA side by side."""

    def __init__(self, width: int, depth: int, name: str):
        self.width, self.depth, self.name = width, depth, name
        self.addr = Signal(range(max(depth, 2)), name=f"{name}_a")
        self.w_addr = Signal.like(self.addr, name=f"{name}_wa")
        self.w_data = Signal(width, name=f"{name}_wd")
        self.w_en = Signal(name=f"{name}_we")
        self.data = Signal(width, name=f"{name}_rd")

    def elaborate(self, platform):
        spram = _is_ice40_up(platform)
        if spram and self.depth > SPRAM_DEPTH:
            raise ValueError(f"{self.name}: {self.depth} words; an SPRAM holds {SPRAM_DEPTH}")
        m = Module()
        a = Signal.like(self.addr, name=f"{self.name}_port")
        m.d.comb += a.eq(Mux(self.w_en, self.w_addr, self.addr))
        if spram:
            a14 = Signal(14, name=f"{self.name}_a14")
            m.d.comb += a14.eq(a)
            for i in range(0, self.width, SPRAM_WIDTH):
                n = min(SPRAM_WIDTH, self.width - i)
                out = Signal(SPRAM_WIDTH, name=f"{self.name}_out{i // SPRAM_WIDTH}")
                din = Signal(SPRAM_WIDTH, name=f"{self.name}_in{i // SPRAM_WIDTH}")  # zero-padded slice
                m.d.comb += din.eq(self.w_data[i:i + n])
                m.submodules[f"spram{i // SPRAM_WIDTH}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=a14, i_DATAIN=din,
                    i_MASKWREN=Const(0b1111, 4), i_WREN=self.w_en, i_CHIPSELECT=Const(1, 1),
                    i_CLOCK=ClockSignal("sync"), i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1),
                    i_POWEROFF=Const(1, 1), o_DATAOUT=out)
                m.d.comb += self.data[i:i + n].eq(out[:n])
        else:
            m.submodules.ram = mem = Memory(shape=unsigned(self.width), depth=self.depth, init=[])
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [wp.addr.eq(a), wp.data.eq(self.w_data), wp.en.eq(self.w_en),
                         rp.addr.eq(a), rp.en.eq(~self.w_en), self.data.eq(rp.data)]
        return m


def tile_depth(width: int, depth: int) -> int:
    """Bank depth for ``depth`` words of ``width`` bits: the ECP5 block-RAM configuration
    (16384×1 … 512×36, wider words side by side) that needs the fewest tiles; on a tie, the deeper
    one (fewer banks to select among)."""
    configs = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
    return min(configs, key=lambda c: (-(-width // c[1]) * -(-depth // c[0]), -c[0]))[0]


class BankedMemory:
    """One logical memory of ``depth`` words of ``width`` bits, split into tile-deep banks.

    Ports: ``addr`` (read address, set in cycle c), ``q`` (its word in c + 3), ``data`` (in c + 2;
    not on a single-port RAM); ``w_addr``, ``w_data``, ``w_en`` (one write a cycle; a ROM has none).
    """

    def __init__(self, m, name: str, width: int, depth: int, *, init=(), rom=False,
                 transparent=False, registered_write=False, read_q=True, single_port=False):
        init = list(init)
        if single_port and (rom or transparent or init or not read_q):
            raise ValueError(f"{name}: a single-port RAM has no initial contents, no transparency and only q")
        self.addr = Signal(range(max(depth, 2)), name=f"{name}_raddr")
        ra = Signal.like(self.addr, name=f"{name}_raddr_q")
        m.d.sync += ra.eq(self.addr)
        if not rom:
            self.w_addr = Signal(range(max(depth, 2)), name=f"{name}_waddr")
            self.w_data = Signal(width, name=f"{name}_wdata")
            self.w_en = Signal(name=f"{name}_wen")
            self.w = SimpleNamespace(addr=self.w_addr, data=self.w_data, en=self.w_en)
            wa, wd, we = self.w_addr, self.w_data, self.w_en
            if registered_write:
                wa, wd, we = Signal.like(wa), Signal.like(wd), Signal()
                m.d.sync += [wa.eq(self.w_addr), wd.eq(self.w_data), we.eq(self.w_en)]
        if single_port:
            # One more address register, and ``q`` is the RAM's own output (one bank: no select),
            # still valid in c + 3: only registers sit next to the SPRAM.
            m.submodules[name] = sp = SinglePortRam(width, depth, name)
            ra2 = Signal.like(ra, name=f"{name}_raddr_q2")
            m.d.sync += ra2.eq(ra)
            m.d.comb += [sp.addr.eq(ra2), sp.w_addr.eq(wa), sp.w_data.eq(wd), sp.w_en.eq(we)]
            self.q = sp.data
            return
        bd = min(tile_depth(width, depth), 1 << max(0, (depth - 1).bit_length()))
        nb = -(-depth // bd)
        lo = max(1, (bd - 1).bit_length())
        sel2, sel3 = Signal(range(nb), name=f"{name}_sel2"), Signal(range(nb), name=f"{name}_sel3")
        m.d.sync += [sel2.eq(ra[lo:] if nb > 1 else 0), sel3.eq(sel2)]
        outs, regs = [], []
        for b in range(nb):
            n = min(bd, depth - b * bd)
            mem = Memory(shape=unsigned(width), depth=n, init=init[b * bd:(b + 1) * bd])
            m.submodules[f"{name}{b}" if nb > 1 else name] = mem
            if rom:
                rp = mem.read_port()
            else:
                wp = mem.write_port()
                m.d.comb += [wp.addr.eq(wa[:lo]), wp.data.eq(wd),
                             wp.en.eq(we & ((wa[lo:] == b) if nb > 1 else 1))]
                rp = mem.read_port(transparent_for=(wp,) if transparent else ())
            m.d.comb += rp.addr.eq(ra[:lo])
            outs.append(rp.data)
            if read_q:
                r = Signal(width, name=f"{name}{b}_q")
                m.d.sync += r.eq(rp.data)
                regs.append(r)
        self.data = Signal(width, name=f"{name}_rdata")
        m.d.comb += self.data.eq(Array(outs)[sel2] if nb > 1 else outs[0])
        if read_q:
            self.q = Signal(width, name=f"{name}_rq")
            m.d.comb += self.q.eq(Array(regs)[sel3] if nb > 1 else regs[0])
