"""Host runtime: talk to the FPGA accelerator over its UART link (``docs/protocol.md``).

:class:`Device` wraps a serial port (a pyserial URL or device path, or any object with
``read``/``write``, e.g. :class:`csdformer.firmware.device_model.LoopbackSerial`), sends one
request at a time and waits for its answer, matched by sequence number and retried on a timeout
or a bad CRC. Every failure is a :class:`csdformer.CsdformerError` whose message says what was
(not) received.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from .. import CsdformerError
from .protocol import VERSION, ErrorCode, Frame, Info, MsgType, ProtocolError, Result, encode, host_decoder

__all__ = ["Device", "Answers", "RunStopped", "run_images", "open_serial", "to_wire"]

READ_TIMEOUT_S = 0.05  # pyserial read timeout: how often the answer deadline is checked

try:  # pyserial's POSIX flush (tcdrain) raises termios.error, which is not an OSError
    import termios

    PORT_ERRORS: tuple[type[BaseException], ...] = (OSError, termios.error)
except ImportError:  # Windows
    PORT_ERRORS = (OSError,)


def open_serial(port: str, baud: int):
    """Open ``port`` (a device path or any pyserial URL, e.g. ``socket://host:port``)."""
    import serial

    try:
        return serial.serial_for_url(port, baudrate=int(baud), timeout=READ_TIMEOUT_S)
    except (OSError, ValueError) as e:  # serial.SerialException is an OSError
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


class _NoAnswer(Exception):
    """One attempt got no valid answer (the message says what was received)."""


class Device:
    """One accelerator on a serial link.

    Every request carries a sequence number (one per attempt); only an answer with the number of
    one of the request's attempts is taken, so a late answer to an earlier request is dropped
    (counted in ``stats["late"]``), never returned for this one. An attempt with no valid answer
    within ``timeout`` (or whose answer failed its CRC) is retried up to ``retries`` times, after
    ``backoff``, ``2 * backoff``, ... seconds; any attempt's answer is taken (they all ask the
    same). An ERROR answer, a port that fails (``OSError``: the device vanished) or an answer that
    does not fit the model is not retried.

    Parameters
    ----------
    port : str or serial-like
        Port name/URL (opened with :func:`open_serial`) or an open object with ``read``/``write``.
    baud : int
        Baud rate when opening a port by name.
    timeout : float
        Seconds to wait for a whole answer, per attempt.
    gap : float
        Inter-byte timeout (seconds) of the answer decoder: a partial answer stalling this long
        is dropped.
    retries : int
        Attempts after the first.
    backoff : float
        Seconds of silence before the first retry (doubled for each further one). At least the
        device's inter-byte timeout: the runtime's ``timeout`` already passed before a retry
        after a missing answer, and after a bad CRC the device has sent its whole answer.

    Attributes
    ----------
    stats : dict
        ``requests``, ``retries``, ``late`` (answers dropped for a foreign sequence number).
    """

    def __init__(self, port, baud: int = 115200, *, timeout: float = 2.0, gap: float = 0.25, retries: int = 3,
                 backoff: float = 0.05):
        if int(retries) < 0 or float(backoff) < 0 or float(timeout) <= 0:
            raise CsdformerError(f"Device: need retries >= 0, backoff >= 0, timeout > 0; got {retries}, "
                                 f"{backoff}, {timeout}")
        self._ser = open_serial(port, baud) if isinstance(port, str) else port
        self._name = port if isinstance(port, str) else type(port).__name__
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self._decoder = host_decoder(timeout=gap)
        self._info: Info | None = None
        self._seq = 0
        self.stats = {"requests": 0, "retries": 0, "late": 0}

    def close(self) -> None:
        if hasattr(self._ser, "close"):
            try:
                self._ser.close()
            except PORT_ERRORS:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _port_failed(self, e: BaseException) -> CsdformerError:
        # OSError and termios.error both carry (errno, text); say it the same way for both
        a = e.args
        why = f"{a[1]}, errno {a[0]}" if len(a) == 2 and isinstance(a[0], int) else f"{e.__class__.__name__}: {e}"
        return CsdformerError(f"device {self._name}: the port failed ({why}); was the device unplugged or reset?")

    def request(self, mtype: int, payload: bytes = b"", *, want: int) -> Frame:
        """Send one request (retried as the class says) and return its answer of type ``want``;
        an ERROR answer raises."""
        self.stats["requests"] += 1
        seqs: list[int] = []
        why = ""
        try:
            if hasattr(self._ser, "reset_input_buffer"):
                self._ser.reset_input_buffer()  # stale bytes of an earlier, abandoned answer
            self._decoder.reset()
            for attempt in range(self.retries + 1):
                if attempt:
                    self.stats["retries"] += 1
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                seq = self._seq
                self._seq = (self._seq + 1) & 0xFF
                seqs.append(seq)
                self._ser.write(encode(mtype, payload, seq))
                if hasattr(self._ser, "flush"):
                    self._ser.flush()
                try:
                    frame = self._read_answer(seqs)
                    break
                except _NoAnswer as e:
                    why = str(e)
            else:
                tries = f"{self.retries + 1} attempts" if self.retries else "1 attempt"
                raise CsdformerError(f"device {self._name}: {why} ({tries})")
        except PORT_ERRORS as e:
            raise self._port_failed(e) from None
        if frame.type == MsgType.ERROR:
            code = frame.payload[0] if len(frame.payload) == 1 else None
            what = ErrorCode(code).name if code in ErrorCode._value2member_map_ else f"code {code}"
            raise CsdformerError(f"device {self._name}: answered ERROR {what} to a {MsgType(mtype).name} request")
        if frame.type != want:
            raise CsdformerError(f"device {self._name}: answered {MsgType(frame.type).name}, expected "
                                 f"{MsgType(want).name}")
        return frame

    def _read_answer(self, seqs: list[int]) -> Frame:
        """The first answer whose sequence number is in ``seqs``, within ``timeout``; other
        answers are dropped as late. Raises :class:`_NoAnswer`, early when an answer failed
        its CRC and nothing else is pending (the device has finished sending)."""
        deadline = time.monotonic() + self.timeout
        received = 0
        crc0 = self._decoder.stats["crc_errors"]
        late0 = self.stats["late"]
        while True:
            n = getattr(self._ser, "in_waiting", 0) or 1
            chunk = self._ser.read(n)
            received += len(chunk)
            frames = self._decoder.feed(chunk) if chunk else self._decoder.expire()
            for f in frames:
                if f.seq in seqs:
                    return f
                self.stats["late"] += 1
            if self._decoder.stats["crc_errors"] > crc0 and self._decoder.pending <= 1:
                break
            if time.monotonic() > deadline:
                break
            if not chunk:
                time.sleep(0.001)  # a port object whose read does not block
        for f in self._decoder.flush():
            if f.seq in seqs:
                return f
            self.stats["late"] += 1
        s = self._decoder.stats
        late = self.stats["late"] - late0
        late = f", {late} late answers to earlier requests dropped" if late else ""
        if not received:
            raise _NoAnswer(f"no answer within {self.timeout:g} s (check the port, the baud rate and that the "
                            f"bitstream is loaded and speaks protocol version {VERSION})")
        if self._decoder.stats["crc_errors"] > crc0 or not late:
            raise _NoAnswer(f"bad frame: {received} bytes received but no valid answer ({s['crc_errors']} CRC "
                            f"errors, {s['bad_headers']} bad headers, {s['skipped']} stray bytes{late})")
        raise _NoAnswer(f"no answer within {self.timeout:g} s{late}")

    def info(self) -> Info:
        """Ask the device what it runs (cached for :meth:`infer`'s checks)."""
        frame = self.request(MsgType.INFO, want=MsgType.INFO_REPLY)
        try:
            info = Info.unpack(frame.payload)
        except ProtocolError as e:
            raise CsdformerError(f"device {self._name}: bad frame: {e}") from None
        if info.version != VERSION:
            raise CsdformerError(f"device {self._name}: speaks protocol version {info.version}, this runtime "
                                 f"{VERSION} (rebuild the bitstream or update csdformer)")
        if not (info.n_pixels and info.num_classes and info.T):
            raise CsdformerError(f"device {self._name}: INFO answer with an empty model: {info}")
        self._info = info
        return info

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
        if r.cls >= info.num_classes:
            raise CsdformerError(f"device {self._name}: answered class {r.cls}, but the model has "
                                 f"{info.num_classes} classes (0..{info.num_classes - 1})")
        return r.cls, np.asarray(r.logits, dtype=np.int64), r.cycles


class Answers(NamedTuple):
    """What :func:`run_images` returns (arrays over the images)."""

    predictions: np.ndarray  # int64 (N,)
    logits: np.ndarray  # int64 (N, num_classes)
    cycles: np.ndarray  # int64 (N,)


class RunStopped(CsdformerError):
    """:func:`run_images` stopped at an image: ``answers`` holds the images answered before it."""

    def __init__(self, message: str, answers: Answers):
        super().__init__(message)
        self.answers = answers


def run_images(device: Device, images, delay: int, progress: bool = True) -> Answers:
    """Classify every image of ``images`` ``(N, C, H, W)`` on ``device``, one request each.

    A failure (after the device's retries) raises :class:`RunStopped` with the answers so far."""
    from tqdm import tqdm

    preds, logits, cycles = [], [], []

    def answers():
        k = len(logits[0]) if logits else 0
        return Answers(np.asarray(preds, dtype=np.int64), np.asarray(logits, dtype=np.int64).reshape(-1, k),
                       np.asarray(cycles, dtype=np.int64))

    for i, img in enumerate(tqdm(images, desc="device", unit="img", disable=not progress, leave=False)):
        try:
            c, lg, cyc = device.infer(img, delay)
        except CsdformerError as e:
            raise RunStopped(f"image {i + 1} of {len(images)}: {e}", answers()) from None
        preds.append(c)
        logits.append(lg)
        cycles.append(cyc)
    return answers()
