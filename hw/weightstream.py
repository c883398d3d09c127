"""The weight stream: how the accelerator reads its model from external memory, byte by byte.

One interface for every backend (:class:`WeightStream`): the user sends a ``cmd`` beat (the byte
address to read from; a new ``cmd`` ends the read in progress) and then takes ``data`` beats, the
bytes from that address on, in order, for as long as it likes. Backends:

- :class:`~csdformer.hw.qspi.QspiFlashReader`: the board's QSPI flash (every board we target
  carries one; the bitstream lives in it too);
- :class:`RomStream`: the image in on-chip memory (tests, and boards where the model fits).

The cycle model needs two facts of a backend (:class:`StreamTiming`): ``latency``, the cycles
from the ``cmd`` handshake to the first ``data`` beat, and ``byte_cycles``, the cycles between
beats while the user is always ready. A user that is always ready during a read (the model loader
is) therefore sees exactly ``latency + (n - 1) * byte_cycles`` cycles for ``n`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .common import HwParamError

__all__ = ["ADDR_BITS", "WeightStream", "StreamTiming", "RomStream"]

ADDR_BITS = 24  # 16 MB: the boards' flash (the ULX3S may carry 32 MB; its first 16 MB suffice)


class WeightStream(wiring.Signature):
    """A byte reader of external memory, seen from its user: ``cmd`` (start a read at this byte
    address; ends the read in progress) and ``data`` (the bytes from that address on)."""

    def __init__(self, addr_bits: int = ADDR_BITS):
        super().__init__({"cmd": Out(stream.Signature(unsigned(addr_bits))),
                          "data": In(stream.Signature(unsigned(8)))})


@dataclass(frozen=True)
class StreamTiming:
    """A backend's timing for an always-ready user: ``latency`` cycles from the ``cmd`` handshake
    (the cycle where ``cmd.valid & cmd.ready``) to the first ``data`` beat, then one beat every
    ``byte_cycles`` cycles; ``name`` for reports."""

    name: str
    latency: int
    byte_cycles: int

    def read_cycles(self, n: int) -> int:
        """Cycles from the ``cmd`` handshake to the ``n``-th beat (inclusive): ``n ≥ 1``."""
        return self.latency + (n - 1) * self.byte_cycles

    def bytes_per_second(self, clock_hz: float) -> float:
        return clock_hz / self.byte_cycles


class RomStream(wiring.Component):
    """A :class:`WeightStream` backend over ``image`` held in on-chip memory: the first byte
    :attr:`timing`.latency cycles after the ``cmd``, then one byte every ``byte_cycles`` cycles
    (1 = a byte a cycle; more to imitate a slower memory). Bytes past the image read as 0xFF
    (erased flash)."""

    def __init__(self, image: bytes, *, byte_cycles: int = 1, addr_bits: int = ADDR_BITS):
        if not isinstance(byte_cycles, int) or byte_cycles < 1:
            raise HwParamError(f"byte_cycles: must be a positive int, got {byte_cycles!r}")
        self.image = bytes(image)
        if len(self.image) > 1 << addr_bits:
            raise HwParamError(f"image: {len(self.image)} bytes; {addr_bits} address bits reach {1 << addr_bits}")
        self.byte_cycles = byte_cycles
        super().__init__({"bus": In(WeightStream(addr_bits))})

    @property
    def timing(self) -> StreamTiming:
        # cmd handshake (c) → first read issued (c+1) → beat valid (c+2); slower: ``byte_cycles``
        # between beats and one more before the first.
        return StreamTiming("rom", 1 + self.byte_cycles, self.byte_cycles)

    def elaborate(self, platform):
        m = Module()
        k = self.byte_cycles
        m.submodules.rom = rom = Memory(shape=unsigned(8), depth=max(len(self.image), 2),
                                        init=list(self.image) or [0xFF])
        rd = rom.read_port()
        bus = self.bus
        cur = Signal(len(bus.cmd.payload))  # the address the next beat shows
        active = Signal()
        wait = Signal(range(k))
        fire = Signal()
        m.d.comb += [bus.cmd.ready.eq(1), fire.eq(bus.data.valid & bus.data.ready)]
        # The read port follows the next beat's address; it holds its output while a beat waits.
        m.d.comb += [rd.addr.eq(cur + fire), rd.en.eq(~bus.data.valid | bus.data.ready)]
        with m.If(bus.cmd.valid):
            m.d.sync += [cur.eq(bus.cmd.payload), active.eq(1), bus.data.valid.eq(0), wait.eq(k - 1)]
        with m.Elif(active):
            with m.If(fire):
                m.d.sync += cur.eq(cur + 1)
                if k > 1:
                    m.d.sync += [bus.data.valid.eq(0), wait.eq(k - 2)]
            with m.Elif(~bus.data.valid):
                with m.If(wait == 0):
                    m.d.sync += bus.data.valid.eq(1)
                with m.Else():
                    m.d.sync += wait.eq(wait - 1)
        inside = Signal()
        with m.If(rd.en):
            m.d.sync += inside.eq(rd.addr < len(self.image))
        m.d.comb += bus.data.payload.eq(rd.data | ~inside.replicate(8))
        return m
