"""CRC-16/CCITT-FALSE in hardware, one byte a cycle, table-free.

The byte-wise update is linear over GF(2): each new CRC bit is the XOR of a fixed set of old CRC
bits and byte bits. :func:`crc16_byte` finds those sets by running the bit-serial shift register
(the recurrence of :func:`csdformer.firmware.protocol.crc16`) eight steps on symbols, then emits
one XOR per output bit: no table, no memory, and a flat expression (unrolling the shift register
as nested ``Mux`` es would duplicate subexpressions 2⁸ times).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Value

__all__ = ["POLY", "INIT", "crc16_byte", "crc16_taps"]

POLY = 0x1021
INIT = 0xFFFF


def crc16_taps() -> list[frozenset[int]]:
    """For each new CRC bit, the inputs it XORs: ``0..15`` old CRC bits, ``16..23`` byte bits."""
    c = [frozenset({i}) if i < 8 else frozenset({i, 16 + i - 8}) for i in range(16)]
    for _ in range(8):
        top = c[15]
        shifted = [frozenset()] + c[:15]
        c = [s ^ top if POLY >> i & 1 else s for i, s in enumerate(shifted)]
    return c


_TAPS = crc16_taps()


def crc16_byte(crc: Value, byte: Value) -> Value:
    """The 16-bit CRC after feeding ``byte`` (MSB first) into the running CRC ``crc``."""
    ins = Cat(Value.cast(crc)[:16], Value.cast(byte)[:8])
    return Cat(*(Cat(*(ins[j] for j in sorted(t))).xor() if t else Const(0, 1) for t in _TAPS))
