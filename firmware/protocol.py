"""The host link's framed protocol over UART: constants, CRC, frame encoder, incremental decoder.

Pure Python (no torch, no Amaranth): the host runtime, the Python device model and the RTL
(:mod:`csdformer.hw.link` imports the constants from here) share this one definition.
``docs/protocol.md`` is the specification; in short::

    0xA5 | type u8 | length u16 LE | payload (length bytes) | CRC-16/CCITT-FALSE u16 LE

The CRC (poly 0x1021, init 0xFFFF, no reflection, no final XOR) covers type, length and payload.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import time
from typing import NamedTuple

from .. import CsdformerError

__all__ = [
    "SYNC", "MsgType", "ErrorCode", "HEADER_SIZE", "CRC_SIZE", "MAX_PAYLOAD", "INFO_SIZE",
    "RESULT_HEAD_SIZE", "MAX_DEVICE_PAYLOAD", "HOST_TYPES", "DEVICE_TYPES", "ProtocolError",
    "crc16", "encode", "Frame", "Decoder", "Info", "Result", "infer_request", "info_request",
    "infer_size", "result_size",
]

SYNC = 0xA5


class MsgType(enum.IntEnum):
    """Message type codes; device→host answers have the high bit set."""

    INFER = 0x01  # host→device: delay u8, then n_pixels pixel bytes in (y, x, channel) order
    INFO = 0x02  # host→device: empty
    RESULT = 0x81  # device→host: class u8, cycles u32, num_classes × logit i32 (all LE)
    INFO_REPLY = 0x82  # device→host: n_pixels u16, num_classes u8, T u8, lanes u8, model id u32
    ERROR = 0x8F  # device→host: one ErrorCode byte


class ErrorCode(enum.IntEnum):
    """The one payload byte of an ERROR answer (sent only for frames whose CRC was good)."""

    BAD_LENGTH = 1  # the length does not fit the type (INFER: 1 + n_pixels, INFO: 0)
    UNKNOWN_TYPE = 2  # not a host→device type
    BAD_DELAY = 3  # INFER's delay byte is not in 0..T-1


HOST_TYPES = frozenset({MsgType.INFER, MsgType.INFO})
DEVICE_TYPES = frozenset({MsgType.RESULT, MsgType.INFO_REPLY, MsgType.ERROR})
HEADER_SIZE = 4  # sync, type, length (2)
CRC_SIZE = 2
MAX_PAYLOAD = 0xFFFF
INFO_SIZE = 9
RESULT_HEAD_SIZE = 5  # class u8 + cycles u32
MAX_DEVICE_PAYLOAD = RESULT_HEAD_SIZE + 4 * 255  # the longest answer (255 classes)


class ProtocolError(CsdformerError, ValueError):
    """A payload that does not parse, or a value that does not fit its field."""


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF); ``crc`` continues a running CRC."""
    for byte in bytes(data):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def encode(mtype: int, payload: bytes = b"") -> bytes:
    """One whole frame: sync, type, length, payload, CRC."""
    payload = bytes(payload)
    if not 0 <= int(mtype) <= 0xFF:
        raise ProtocolError(f"mtype: must fit a byte, got {mtype}")
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload: at most {MAX_PAYLOAD} bytes, got {len(payload)}")
    body = struct.pack("<BH", int(mtype), len(payload)) + payload
    return bytes([SYNC]) + body + struct.pack("<H", crc16(body))


class Frame(NamedTuple):
    """A decoded frame whose CRC was good."""

    type: int
    payload: bytes


class Decoder:
    """Incremental frame decoder for the host: feed bytes, get whole frames with a good CRC.

    Resynchronization (``docs/protocol.md``, "Host decoder"): bytes before a sync byte are
    skipped; a candidate frame is dropped, and the bytes after its sync byte scanned again
    (backtracking), when its CRC fails, its length exceeds ``max_payload``, its type is not in
    ``types`` (when given), or it stalls: no byte for ``timeout`` (same unit as ``now``).
    Backtracking finds a frame that started inside a dropped one (a truncated frame followed by
    a new one), at the cost of keeping the candidate's bytes (at most one frame).

    Parameters
    ----------
    max_payload : int
        Longest payload accepted (the host uses :data:`MAX_DEVICE_PAYLOAD`).
    types : set of int, optional
        Accepted type codes; others are treated as a false sync.
    timeout : float, optional
        Stall limit of a partial frame; ``None``: never (call :meth:`flush` instead).

    Attributes
    ----------
    stats : dict
        Counters: ``skipped`` (garbage bytes), ``crc_errors``, ``bad_headers``, ``timeouts``.
    """

    def __init__(self, *, max_payload: int = MAX_PAYLOAD, types=None, timeout: float | None = None):
        if not 0 <= int(max_payload) <= MAX_PAYLOAD:
            raise ProtocolError(f"max_payload: must be in 0..{MAX_PAYLOAD}, got {max_payload}")
        self.max_payload = int(max_payload)
        self.types = None if types is None else frozenset(int(t) for t in types)
        self.timeout = timeout
        self._buf = bytearray()
        self._last = None
        self.stats = {"skipped": 0, "crc_errors": 0, "bad_headers": 0, "timeouts": 0}

    @property
    def pending(self) -> int:
        """Bytes held: the partial candidate frame (0 when hunting for a sync byte)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame."""
        self._buf.clear()
        self._last = None

    def feed(self, data: bytes, now: float | None = None) -> list[Frame]:
        """Add received bytes (arrived at time ``now``; default ``time.monotonic()``)."""
        out = self.expire(now)
        if data:
            self._buf += data
            self._last = time.monotonic() if now is None else now
            out += self._scan()
        return out

    def expire(self, now: float | None = None) -> list[Frame]:
        """Apply the timeout at time ``now``: a stalled partial frame is dropped (backtracking)."""
        if self.timeout is None or not self._buf or self._last is None:
            return []
        now = time.monotonic() if now is None else now
        if now - self._last <= self.timeout:
            return []
        self.stats["timeouts"] += 1
        return self.flush()

    def flush(self) -> list[Frame]:
        """End of input: drop every incomplete candidate, return the frames found behind them."""
        out = []
        while self._buf:  # it starts with the sync byte of an incomplete candidate
            del self._buf[:1]
            out += self._scan()
        return out

    def _scan(self) -> list[Frame]:
        out = []
        buf = self._buf
        while True:
            i = buf.find(SYNC)
            if i < 0:
                self.stats["skipped"] += len(buf)
                buf.clear()
                return out
            if i:
                self.stats["skipped"] += i
                del buf[:i]
            if len(buf) < 2:
                return out
            if self.types is not None and buf[1] not in self.types:
                self._bad_header()
                continue
            if len(buf) < HEADER_SIZE:
                return out
            n = buf[2] | buf[3] << 8
            if n > self.max_payload:
                self._bad_header()
                continue
            end = HEADER_SIZE + n
            if len(buf) < end + CRC_SIZE:
                return out
            if crc16(buf[1:end]) != (buf[end] | buf[end + 1] << 8):
                self.stats["crc_errors"] += 1
                self._bad_header(count=False)
                continue
            out.append(Frame(buf[1], bytes(buf[HEADER_SIZE:end])))
            del buf[:end + CRC_SIZE]

    def _bad_header(self, count: bool = True) -> None:
        if count:
            self.stats["bad_headers"] += 1
        del self._buf[:1]  # backtrack: scan again from the byte after this sync


@dataclasses.dataclass(frozen=True)
class Info:
    """The INFO answer: what the device's accelerator core runs."""

    n_pixels: int
    num_classes: int
    T: int
    lanes: int
    model_id: int

    def pack(self) -> bytes:
        try:
            return struct.pack("<HBBBI", self.n_pixels, self.num_classes, self.T, self.lanes, self.model_id)
        except struct.error as e:
            raise ProtocolError(f"Info: a field does not fit: {e}") from None

    @classmethod
    def unpack(cls, payload: bytes) -> "Info":
        if len(payload) != INFO_SIZE:
            raise ProtocolError(f"INFO answer: expected {INFO_SIZE} payload bytes, got {len(payload)}")
        return cls(*struct.unpack("<HBBBI", bytes(payload)))


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


def infer_request(delay: int, pixels) -> bytes:
    """The INFER frame: ``pixels`` are bytes (0..255) already in (y, x, channel) order."""
    pixels = [int(p) for p in pixels]
    if not 0 <= int(delay) <= 0xFF:
        raise ProtocolError(f"delay: must fit a byte, got {delay}")
    if any(not 0 <= p <= 0xFF for p in pixels):
        raise ProtocolError("pixels: every pixel must be in 0..255")
    return encode(MsgType.INFER, bytes([int(delay)] + pixels))


def info_request() -> bytes:
    """The INFO frame."""
    return encode(MsgType.INFO)
