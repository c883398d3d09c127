"""The host link's framed protocol over UART: constants, CRC, frame encoder, incremental decoder.

Pure Python (no torch, no Amaranth): the host runtime, the Python device model and the RTL
(:mod:`csdformer.hw.link` imports the constants from here) share this one definition.
``docs/protocol.md`` is the specification (protocol version :data:`VERSION`); in short::

    0xA5 | type u8 | seq u8 | length u16 LE | payload (length bytes) | CRC-16/CCITT-FALSE u16 LE

The CRC (poly 0x1021, init 0xFFFF, no reflection, no final XOR) covers type, seq, length and
payload. ``seq`` is chosen by the host for each request and echoed by its answer.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import time
from typing import NamedTuple

from .. import CsdformerError

__all__ = [
    "VERSION", "SYNC", "MsgType", "ErrorCode", "HEADER_SIZE", "CRC_SIZE", "MAX_PAYLOAD", "INFO_SIZE",
    "RESULT_HEAD_SIZE", "MAX_DEVICE_PAYLOAD", "HOST_TYPES", "DEVICE_TYPES", "DEVICE_SIZES", "ProtocolError",
    "crc16", "encode", "Frame", "Decoder", "host_decoder", "Info", "Result", "infer_request", "info_request",
    "infer_size", "result_size",
]

VERSION = 2  # 1: no sequence number, 9-byte INFO answer
SYNC = 0xA5


class MsgType(enum.IntEnum):
    """Message type codes; device→host answers have the high bit set (none is ``SYNC``)."""

    INFER = 0x01  # host→device: delay u8, then n_pixels pixel bytes in (y, x, channel) order
    INFO = 0x02  # host→device: empty
    RESULT = 0x81  # device→host: class u8, cycles u32, num_classes × logit i32 (all LE)
    INFO_REPLY = 0x82  # device→host: version u8, n_pixels u16, num_classes u8, T u8, lanes u8, model id u32
    ERROR = 0x8F  # device→host: one ErrorCode byte


class ErrorCode(enum.IntEnum):
    """The one payload byte of an ERROR answer (sent only for frames whose CRC was good)."""

    BAD_LENGTH = 1  # the length does not fit the type (INFER: 1 + n_pixels, INFO: 0)
    UNKNOWN_TYPE = 2  # not a host→device type
    BAD_DELAY = 3  # INFER's delay byte is not in 0..T-1


HOST_TYPES = frozenset({MsgType.INFER, MsgType.INFO})
DEVICE_TYPES = frozenset({MsgType.RESULT, MsgType.INFO_REPLY, MsgType.ERROR})
HEADER_SIZE = 5  # sync, type, seq, length (2)
CRC_SIZE = 2
MAX_PAYLOAD = 0xFFFF
INFO_SIZE = 10
RESULT_HEAD_SIZE = 5  # class u8 + cycles u32
MAX_DEVICE_PAYLOAD = RESULT_HEAD_SIZE + 4 * 255  # the longest answer (255 classes)
#: The payload lengths each answer type can have (RESULT: 1..255 classes).
DEVICE_SIZES = {MsgType.RESULT: frozenset(RESULT_HEAD_SIZE + 4 * k for k in range(1, 256)),
                MsgType.INFO_REPLY: frozenset({INFO_SIZE}), MsgType.ERROR: frozenset({1})}


class ProtocolError(CsdformerError, ValueError):
    """A payload that does not parse, or a value that does not fit its field."""


def _table() -> tuple[int, ...]:
    out = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        out.append(c & 0xFFFF)
    return tuple(out)


_TABLE = _table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF); ``crc`` continues a running CRC."""
    t = _TABLE
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ t[(crc >> 8) ^ byte]
    return crc


def _shift_tables() -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """For k = 0..16, the map "run the CRC register over 2**k zero bytes" (linear over GF(2)) as
    two 256-entry tables, for the register's low and high byte."""
    def zeros(c, n):
        for _ in range(n):
            c = ((c << 8) & 0xFFFF) ^ _TABLE[c >> 8]
        return c

    cols = [zeros(1 << j, 1) for j in range(16)]  # the one-byte step's columns
    out = []
    for _ in range(17):
        def apply(v, cols=cols):
            r = 0
            for j in range(16):
                if v >> j & 1:
                    r ^= cols[j]
            return r
        out.append((tuple(apply(v) for v in range(256)), tuple(apply(v << 8) for v in range(256))))
        cols = [apply(apply(1 << j)) for j in range(16)]  # squared
    return tuple(out)


_SHIFT = _shift_tables()


def _advance(reg: int, n: int) -> int:
    """The CRC register ``reg`` after ``n`` zero bytes, in O(log n)."""
    k = 0
    while n:
        if n & 1:
            lo, hi = _SHIFT[k]
            reg = lo[reg & 0xFF] ^ hi[reg >> 8]
        n >>= 1
        k += 1
    return reg


def encode(mtype: int, payload: bytes = b"", seq: int = 0) -> bytes:
    """One whole frame: sync, type, seq, length, payload, CRC."""
    payload = bytes(payload)
    if not 0 <= int(mtype) <= 0xFF or int(mtype) == SYNC:
        raise ProtocolError(f"mtype: must fit a byte and not be the sync byte 0xA5, got {mtype}")
    if not 0 <= int(seq) <= 0xFF:
        raise ProtocolError(f"seq: must fit a byte, got {seq}")
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload: at most {MAX_PAYLOAD} bytes, got {len(payload)}")
    body = struct.pack("<BBH", int(mtype), int(seq), len(payload)) + payload
    return bytes([SYNC]) + body + struct.pack("<H", crc16(body))


class Frame(NamedTuple):
    """A decoded frame whose CRC was good."""

    type: int
    payload: bytes
    seq: int = 0


class Decoder:
    """Incremental frame decoder for the host: feed bytes, get whole frames with a good CRC.

    Resynchronization (``docs/protocol.md``, "Host decoder"): bytes before a sync byte are
    skipped; a candidate frame is dropped, and the bytes after its sync byte scanned again
    (backtracking), when its type byte is ``SYNC`` or not in ``types`` (when given), its length
    exceeds ``max_payload`` or is not one of ``sizes[type]`` (when given), its CRC fails, or it
    stalls: no byte for ``timeout`` (same unit as ``now``). Backtracking finds a frame that started
    inside a dropped one (a truncated frame followed by a new one), at the cost of keeping the
    candidate's bytes (at most one frame). A frame whose last byte is ``SYNC`` is accepted and
    that byte scanned again as a possible sync: a frame cut just before a last byte 0xA5 is
    completed by the next frame's sync byte, and the next frame is still found.

    Decoding is linear in the stream's length, whatever it holds: a running CRC of every byte
    received (from zero) makes a candidate's CRC an O(1) combination of two of them, and every
    byte is scanned for a sync once.

    Parameters
    ----------
    max_payload : int
        Longest payload accepted (the host uses :data:`MAX_DEVICE_PAYLOAD`).
    types : set of int, optional
        Accepted type codes; others are treated as a false sync.
    sizes : dict of int to set of int, optional
        Accepted payload lengths per type (types not listed: any up to ``max_payload``).
    timeout : float, optional
        Stall limit of a partial frame; ``None``: never (call :meth:`flush` instead).

    Attributes
    ----------
    stats : dict
        Counters: ``skipped`` (garbage bytes), ``crc_errors``, ``bad_headers``, ``timeouts``.
    """

    COMPACT = 4096  # bytes already decided before the buffer is compacted

    def __init__(self, *, max_payload: int = MAX_PAYLOAD, types=None, sizes=None, timeout: float | None = None):
        if not 0 <= int(max_payload) <= MAX_PAYLOAD:
            raise ProtocolError(f"max_payload: must be in 0..{MAX_PAYLOAD}, got {max_payload}")
        self.max_payload = int(max_payload)
        self.types = None if types is None else frozenset(int(t) for t in types)
        self.sizes = None if sizes is None else {int(t): frozenset(int(n) for n in v) for t, v in sizes.items()}
        self.timeout = timeout
        self._buf = bytearray()
        self._pre = [0]  # _pre[i]: CRC register (from 0) after _buf[:i]
        self._pos = 0  # the first byte not yet decided
        self._last = None
        self.stats = {"skipped": 0, "crc_errors": 0, "bad_headers": 0, "timeouts": 0}

    @property
    def pending(self) -> int:
        """Bytes held: the partial candidate frame (0 when hunting for a sync byte)."""
        return len(self._buf) - self._pos

    def reset(self) -> None:
        """Forget any partial frame."""
        self._buf.clear()
        self._pre = [0]
        self._pos = 0
        self._last = None

    def feed(self, data: bytes, now: float | None = None) -> list[Frame]:
        """Add received bytes (arrived at time ``now``; default ``time.monotonic()``)."""
        out = self.expire(now)
        if data:
            self._append(bytes(data))
            self._last = time.monotonic() if now is None else now
            out += self._scan()
        return out

    def expire(self, now: float | None = None) -> list[Frame]:
        """Apply the timeout at time ``now``: a stalled partial frame is dropped (backtracking)."""
        if self.timeout is None or not self.pending or self._last is None:
            return []
        now = time.monotonic() if now is None else now
        if now - self._last <= self.timeout:
            return []
        if self.pending > 1:  # (a lone sync byte may be the last byte of a good frame)
            self.stats["timeouts"] += 1
        return self.flush()

    def flush(self) -> list[Frame]:
        """End of input: drop every incomplete candidate, return the frames found behind them."""
        out = []
        while self.pending:  # _pos is the sync byte of an incomplete candidate
            self._pos += 1
            out += self._scan()
        return out

    def _append(self, data: bytes) -> None:
        if self._pos >= self.COMPACT and 2 * self._pos >= len(self._buf):
            del self._buf[:self._pos]
            del self._pre[:self._pos]
            self._pos = 0
        t, pre = _TABLE, self._pre
        c = pre[-1]
        for b in data:
            c = ((c << 8) & 0xFFFF) ^ t[(c >> 8) ^ b]
            pre.append(c)
        self._buf += data

    def _scan(self) -> list[Frame]:
        out = []
        buf, pre, size = self._buf, self._pre, len(self._buf)
        pos = self._pos
        while True:
            i = buf.find(SYNC, pos)
            if i < 0:
                self.stats["skipped"] += size - pos
                pos = size
                break
            self.stats["skipped"] += i - pos
            pos = i
            if size - i < 2:
                break
            t = buf[i + 1]
            if t == SYNC:  # a sync byte is never a type: this one is garbage or a frame's last byte
                self.stats["skipped"] += 1
                pos = i + 1
                continue
            if self.types is not None and t not in self.types:
                self.stats["bad_headers"] += 1
                pos = i + 1
                continue
            if size - i < HEADER_SIZE:
                break
            n = buf[i + 3] | buf[i + 4] << 8
            if n > self.max_payload or (self.sizes is not None and t in self.sizes and n not in self.sizes[t]):
                self.stats["bad_headers"] += 1
                pos = i + 1
                continue
            end = i + HEADER_SIZE + n  # the CRC's first byte
            if size < end + CRC_SIZE:
                break
            if _advance(0xFFFF ^ pre[i + 1], end - i - 1) ^ pre[end] != buf[end] | buf[end + 1] << 8:
                self.stats["crc_errors"] += 1
                pos = i + 1  # backtrack
                continue
            out.append(Frame(t, bytes(buf[i + HEADER_SIZE:end]), buf[i + 2]))
            pos = end + CRC_SIZE
            if buf[end + 1] == SYNC:  # perhaps the next frame's sync, its own last byte lost
                pos -= 1
        self._pos = pos
        return out


def host_decoder(timeout: float | None = None) -> Decoder:
    """The decoder of device answers as the host runtime configures it."""
    return Decoder(max_payload=MAX_DEVICE_PAYLOAD, types=DEVICE_TYPES, sizes=DEVICE_SIZES, timeout=timeout)


@dataclasses.dataclass(frozen=True)
class Info:
    """The INFO answer: what the device's accelerator core runs, and the protocol it speaks.

    On the wire ``version`` comes first: ``version u8, n_pixels u16, num_classes u8, T u8, lanes u8,
    model_id u32``."""

    n_pixels: int
    num_classes: int
    T: int
    lanes: int
    model_id: int
    version: int = VERSION

    def pack(self) -> bytes:
        try:
            return struct.pack("<BHBBBI", self.version, self.n_pixels, self.num_classes, self.T, self.lanes,
                               self.model_id)
        except struct.error as e:
            raise ProtocolError(f"Info: a field does not fit: {e}") from None

    @classmethod
    def unpack(cls, payload: bytes) -> "Info":
        if len(payload) != INFO_SIZE:
            raise ProtocolError(f"INFO answer: expected {INFO_SIZE} payload bytes, got {len(payload)}")
        version, *rest = struct.unpack("<BHBBBI", bytes(payload))
        return cls(*rest, version=version)


@dataclasses.dataclass(frozen=True)
class Result:
    """The RESULT answer: predicted class, cycles the image took, logits (class order)."""

    cls: int
    cycles: int
    logits: tuple[int, ...]

    def pack(self) -> bytes:
        try:
            return struct.pack(f"<BI{len(self.logits)}i", self.cls, self.cycles, *self.logits)
        except struct.error as e:
            raise ProtocolError(f"Result: a field does not fit: {e}") from None

    @classmethod
    def unpack(cls, payload: bytes, num_classes: int | None = None) -> "Result":
        n, rem = divmod(len(payload) - RESULT_HEAD_SIZE, 4)
        if len(payload) < RESULT_HEAD_SIZE or rem or (num_classes is not None and n != num_classes):
            want = "5 + 4·num_classes" if num_classes is None else str(result_size(num_classes))
            raise ProtocolError(f"RESULT answer: expected {want} payload bytes, got {len(payload)}")
        c, cyc, *logits = struct.unpack(f"<BI{n}i", bytes(payload))
        return cls(c, cyc, tuple(logits))


def infer_size(n_pixels: int) -> int:
    """Payload bytes of an INFER request."""
    return 1 + int(n_pixels)


def result_size(num_classes: int) -> int:
    """Payload bytes of a RESULT answer."""
    return RESULT_HEAD_SIZE + 4 * int(num_classes)


def infer_request(delay: int, pixels, seq: int = 0) -> bytes:
    """The INFER frame: ``pixels`` are bytes (0..255) already in (y, x, channel) order."""
    pixels = [int(p) for p in pixels]
    if not 0 <= int(delay) <= 0xFF:
        raise ProtocolError(f"delay: must fit a byte, got {delay}")
    if any(not 0 <= p <= 0xFF for p in pixels):
        raise ProtocolError("pixels: every pixel must be in 0..255")
    return encode(MsgType.INFER, bytes([int(delay)] + pixels), seq)


def info_request(seq: int = 0) -> bytes:
    """The INFO frame."""
    return encode(MsgType.INFO, b"", seq)
