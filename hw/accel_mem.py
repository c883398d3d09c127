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
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Signal, unsigned
from amaranth.lib.memory import Memory

__all__ = ["BankedMemory", "tile_depth"]


def tile_depth(width: int, depth: int) -> int:
    """Bank depth for ``depth`` words of ``width`` bits: the ECP5 block-RAM configuration
    (16384×1 … 512×36, wider words side by side) that needs the fewest tiles; on a tie, the deeper
    one (fewer banks to select among)."""
    configs = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
    return min(configs, key=lambda c: (-(-width // c[1]) * -(-depth // c[0]), -c[0]))[0]


class BankedMemory:
    """One logical memory of ``depth`` words of ``width`` bits, split into tile-deep banks.

    Ports: ``addr`` (read address, set in cycle c), ``q`` (its word in c + 3), ``data`` (in c + 2);
    ``w_addr``, ``w_data``, ``w_en`` (one write a cycle; a ROM has none).
    """

    def __init__(self, m, name: str, width: int, depth: int, *, init=(), rom=False,
                 transparent=False, registered_write=False, read_q=True):
        init = list(init)
        bd = min(tile_depth(width, depth), 1 << max(0, (depth - 1).bit_length()))
        nb = -(-depth // bd)
        lo = max(1, (bd - 1).bit_length())
        self.addr = Signal(range(max(depth, 2)), name=f"{name}_raddr")
        ra = Signal.like(self.addr, name=f"{name}_raddr_q")
        m.d.sync += ra.eq(self.addr)
        sel2, sel3 = Signal(range(nb), name=f"{name}_sel2"), Signal(range(nb), name=f"{name}_sel3")
        m.d.sync += [sel2.eq(ra[lo:] if nb > 1 else 0), sel3.eq(sel2)]
        if not rom:
            self.w_addr = Signal(range(max(depth, 2)), name=f"{name}_waddr")
            self.w_data = Signal(width, name=f"{name}_wdata")
            self.w_en = Signal(name=f"{name}_wen")
            self.w = SimpleNamespace(addr=self.w_addr, data=self.w_data, en=self.w_en)
            wa, wd, we = self.w_addr, self.w_data, self.w_en
            if registered_write:
                wa, wd, we = Signal.like(wa), Signal.like(wd), Signal()
                m.d.sync += [wa.eq(self.w_addr), wd.eq(self.w_data), we.eq(self.w_en)]
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
