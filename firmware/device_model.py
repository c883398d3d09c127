"""Python model of the device side of the link protocol, and a loopback "serial port" around it.

:class:`DeviceModel` parses bytes exactly as the RTL link (:mod:`csdformer.hw.link`) does — no
backtracking, inter-byte timeout, lengths above ``1 + n_pixels`` dropped at the header, a frame's
last byte ``0xA5`` taken as the next frame's sync byte, answers only for frames whose CRC is good —
and answers at once (the RTL answers after the core ran, and discards the bytes that arrive
meanwhile: a caller must not send while an answer is due).
It is the reference the link's cocotb bench compares with, and, wrapped in
:class:`LoopbackSerial`, the device the host runtime's tests talk to.
"""

from __future__ import annotations

import time
from typing import Callable

from .protocol import HEADER_SIZE, SYNC, ErrorCode, Info, MsgType, Result, crc16, encode, infer_size

__all__ = ["DeviceModel", "LoopbackSerial"]

Compute = Callable[[bytes, int], Result]


class DeviceModel:
    """The link's protocol state machine in Python.

    Parameters
    ----------
    info : Info
        What INFO answers; ``info.n_pixels``, ``info.T`` also check INFER requests.
    compute : callable ``(pixels: bytes, delay: int) -> Result``
        The accelerator core: pixels in (y, x, channel) order.
    timeout : float, optional
        Inter-byte timeout of a partial frame (same unit as ``now``); ``None``: never.
    """

    def __init__(self, info: Info, compute: Compute, *, timeout: float | None = None):
        self.info = info
        self.compute = compute
        self.timeout = timeout
        self.max_length = infer_size(info.n_pixels)
        self.reset()

    def reset(self) -> None:
        """The domain reset: forget any partial frame."""
        self._state = "hunt"
        self._last = None
        self.dropped = 0  # frames dropped: bad CRC, oversized, timeout

    def feed(self, data: bytes, now: float | None = None) -> list[bytes]:
        """Bytes received at time ``now``; returns the encoded answer frames, in order."""
        now = time.monotonic() if now is None else now
        out = []
        for b in bytes(data):
            if self._state != "hunt" and self.timeout is not None and now - self._last > self.timeout:
                self.dropped += self._state != "type"  # a sync byte alone is no frame
                self._state = "hunt"
            self._last = now
            answer = self._byte(b)
            if answer is not None:
                out.append(answer)
        return out

    def _byte(self, b: int) -> bytes | None:
        st = self._state
        if st == "hunt" or st == "type" and b == SYNC:  # a type byte 0xA5 is a sync byte: the frame restarts
            if b == SYNC:
                self._state, self._body = "type", bytearray()
            return None
        if st in ("type", "seq", "len0", "len1", "payload"):
            self._body.append(b)
        if st == "type":
            self._state = "seq"
        elif st == "seq":
            self._state = "len0"
        elif st == "len0":
            self._state = "len1"
        elif st == "len1":
            self._length = self._body[2] | self._body[3] << 8
            if self._length > self.max_length:  # (a high byte 0xA5 always is: it may be a sync byte)
                self._state = "hunt"
                self.dropped += 1
                self._resync(b)
            else:
                self._state = "payload" if self._length else "crc0"
        elif st == "payload":
            if len(self._body) == HEADER_SIZE - 1 + self._length:
                self._state = "crc0"
        elif st == "crc0":
            self._crc_lo, self._state = b, "crc1"
        else:  # crc1
            self._state = "hunt"
            body = bytes(self._body)
            self._resync(b)  # the last byte, dropped or answered frame alike
            if crc16(body) != (self._crc_lo | b << 8):
                self.dropped += 1
                return None
            return self._answer(body[0], body[1], body[HEADER_SIZE - 1:])
        return None

    def _resync(self, b: int) -> None:
        """A frame ended (dropped or answered) at byte ``b``: a ``0xA5`` may be the sync byte of
        the next frame (one cut just before a last byte ``0xA5`` is completed by the next frame's
        sync byte: that frame is still parsed)."""
        if b == SYNC:
            self._state, self._body = "type", bytearray()

    def _answer(self, mtype: int, seq: int, payload: bytes) -> bytes:
        """The answer to a frame whose CRC was good (checks in this order: type, length, delay),
        with the request's ``seq``."""
        if mtype not in (MsgType.INFER, MsgType.INFO):
            return encode(MsgType.ERROR, bytes([ErrorCode.UNKNOWN_TYPE]), seq)
        if mtype == MsgType.INFO:
            if payload:
                return encode(MsgType.ERROR, bytes([ErrorCode.BAD_LENGTH]), seq)
            return encode(MsgType.INFO_REPLY, self.info.pack(), seq)
        if len(payload) != self.max_length:
            return encode(MsgType.ERROR, bytes([ErrorCode.BAD_LENGTH]), seq)
        if payload[0] >= self.info.T:
            return encode(MsgType.ERROR, bytes([ErrorCode.BAD_DELAY]), seq)
        return encode(MsgType.RESULT, self.compute(payload[1:], payload[0]).pack(), seq)


class LoopbackSerial:
    """A pyserial-like object whose far end is a :class:`DeviceModel` (for tests and demos).

    ``write`` feeds the model; its answers wait in a buffer that ``read`` returns (never
    blocks). ``tamper`` (optional) maps each answer frame to the bytes actually "sent", so a
    test can corrupt or silence the device.
    """

    def __init__(self, model: DeviceModel, *, tamper: Callable[[bytes], bytes] | None = None):
        self.model = model
        self.tamper = tamper
        self.timeout = 0.0
        self._rx = bytearray()
        self.written = bytearray()
        self.closed = False

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def write(self, data: bytes) -> int:
        self.written += data
        for frame in self.model.feed(bytes(data)):
            self._rx += self.tamper(frame) if self.tamper else frame
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
