"""Host runtime: talk to the FPGA accelerator over its UART link (``docs/protocol.md``).

:class:`Device` wraps a serial port (a pyserial URL or device path, or any object with
``read``/``write``, e.g. :class:`csdformer.firmware.device_model.LoopbackSerial`), sends one
request at a time and waits for its answer. Every failure is a :class:`csdformer.CsdformerError`
whose message says what was (not) received.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from .. import CsdformerError
from .protocol import (DEVICE_TYPES, MAX_DEVICE_PAYLOAD, Decoder, ErrorCode, Frame, Info, MsgType,
                       ProtocolError, Result, encode)

__all__ = ["Device", "Answers", "run_images", "open_serial", "to_wire"]

READ_TIMEOUT_S = 0.05  # pyserial read timeout: how often the answer deadline is checked


def open_serial(port: str, baud: int):
    """Open ``port`` (a device path or any pyserial URL, e.g. ``socket://host:port``)."""
    import serial

    try:
        return serial.serial_for_url(port, baudrate=int(baud), timeout=READ_TIMEOUT_S)
    except (serial.SerialException, ValueError) as e:
        raise CsdformerError(f"--port: cannot open {port!r}: {e}") from None


def to_wire(image) -> bytes:
    """An image ``(C, H, W)`` (the datasets' and golden runner's layout) as pixel bytes in the
    protocol's (y, x, channel) order; a 1-D array is taken as already in that order."""
    a = np.asarray(image)
    if a.ndim == 3:
        a = a.transpose(1, 2, 0)
    elif a.ndim != 1:
        raise CsdformerError(f"image: expected (C, H, W) or flat pixels, got shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise CsdformerError("image: pixels must be in 0..255")
    return a.astype(np.uint8).tobytes()


class Device:
    """One accelerator on a serial link.

    Parameters
    ----------
    port : str or serial-like
        Port name/URL (opened with :func:`open_serial`) or an open object with ``read``/``write``.
    baud : int
        Baud rate when opening a port by name.
    timeout : float
        Seconds to wait for a whole answer.
    gap : float
        Inter-byte timeout (seconds) of the answer decoder: a partial answer stalling this long
        is dropped.
    """

    def __init__(self, port, baud: int = 115200, *, timeout: float = 2.0, gap: float = 0.25):
        self._ser = open_serial(port, baud) if isinstance(port, str) else port
        self._name = port if isinstance(port, str) else type(port).__name__
        self.timeout = float(timeout)
        self._decoder = Decoder(max_payload=MAX_DEVICE_PAYLOAD, types=DEVICE_TYPES, timeout=gap)
        self._info: Info | None = None

    def close(self) -> None:
        if hasattr(self._ser, "close"):
            self._ser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, mtype: int, payload: bytes = b"", *, want: int) -> Frame:
        """Send one frame and return the answer of type ``want``; an ERROR answer raises."""
        if hasattr(self._ser, "reset_input_buffer"):
            self._ser.reset_input_buffer()  # stale bytes of an earlier, abandoned answer
        self._decoder.reset()
        self._ser.write(encode(mtype, payload))
        if hasattr(self._ser, "flush"):
            self._ser.flush()
        frame = self._read_frame()
        if frame.type == MsgType.ERROR:
            code = frame.payload[0] if len(frame.payload) == 1 else None
            what = ErrorCode(code).name if code in ErrorCode._value2member_map_ else f"code {code}"
            raise CsdformerError(f"device {self._name}: answered ERROR {what} to a {MsgType(mtype).name} request")
        if frame.type != want:
            raise CsdformerError(f"device {self._name}: answered {MsgType(frame.type).name}, expected "
                                 f"{MsgType(want).name}")
        return frame

    def _read_frame(self) -> Frame:
        deadline = time.monotonic() + self.timeout
        received = 0
        while True:
            n = getattr(self._ser, "in_waiting", 0) or 1
            chunk = self._ser.read(n)
            received += len(chunk)
            frames = self._decoder.feed(chunk) if chunk else self._decoder.expire()
            if frames:
                return frames[0]
            if time.monotonic() > deadline:
                break
            if not chunk:
                time.sleep(0.001)  # a port object whose read does not block
        frames = self._decoder.flush()
        if frames:
            return frames[0]
        s = self._decoder.stats
        if not received:
            raise CsdformerError(f"device {self._name}: no answer within {self.timeout:g} s "
                                 "(check the port, the baud rate and that the bitstream is loaded)")
        raise CsdformerError(f"device {self._name}: bad frame: {received} bytes received in {self.timeout:g} s "
                             f"but no valid answer ({s['crc_errors']} CRC errors, {s['bad_headers']} bad "
                             f"headers, {s['skipped']} stray bytes)")

    def info(self) -> Info:
        """Ask the device what it runs (cached for :meth:`infer`'s checks)."""
        frame = self.request(MsgType.INFO, want=MsgType.INFO_REPLY)
        try:
            self._info = Info.unpack(frame.payload)
        except ProtocolError as e:
            raise CsdformerError(f"device {self._name}: bad frame: {e}") from None
        return self._info

    def infer(self, image, delay: int) -> tuple[int, np.ndarray, int]:
        """Classify one image ``(C, H, W)`` (or flat wire-order pixels) at DIF delay ``delay``.

        Returns ``(class, logits int64 (num_classes,), cycles)``.
        """
        info = self._info or self.info()
        pixels = to_wire(image)
        if len(pixels) != info.n_pixels:
            raise CsdformerError(f"image: the device reads {info.n_pixels} pixels, got {len(pixels)}")
        if not 0 <= int(delay) <= info.T - 1:
            raise CsdformerError(f"delay: must be in 0..T-1 = 0..{info.T - 1}, got {delay}")
        frame = self.request(MsgType.INFER, bytes([int(delay)]) + pixels, want=MsgType.RESULT)
        try:
            r = Result.unpack(frame.payload, info.num_classes)
        except ProtocolError as e:
            raise CsdformerError(f"device {self._name}: bad frame: {e}") from None
        return r.cls, np.asarray(r.logits, dtype=np.int64), r.cycles


class Answers(NamedTuple):
    """What :func:`run_images` returns (arrays over the images)."""

    predictions: np.ndarray  # int64 (N,)
    logits: np.ndarray  # int64 (N, num_classes)
    cycles: np.ndarray  # int64 (N,)


def run_images(device: Device, images, delay: int, progress: bool = True) -> Answers:
    """Classify every image of ``images`` ``(N, C, H, W)`` on ``device``, one request each."""
    from tqdm import tqdm

    preds, logits, cycles = [], [], []
    for img in tqdm(images, desc="device", unit="img", disable=not progress, leave=False):
        c, lg, cyc = device.infer(img, delay)
        preds.append(c)
        logits.append(lg)
        cycles.append(cyc)
    k = len(logits[0]) if logits else 0
    return Answers(np.asarray(preds, dtype=np.int64), np.asarray(logits, dtype=np.int64).reshape(-1, k),
                   np.asarray(cycles, dtype=np.int64))
