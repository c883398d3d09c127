"""A device behind a real pseudo-terminal, with injectable faults: the host runtime's test bench.

:class:`PtyDevice` opens ``os.openpty()``, serves the far end from a thread and gives the near end's
name (:attr:`PtyDevice.port`), which ``csdformer run --port`` or
:class:`~csdformer.firmware.runtime.Device` open like any serial port. The far end is a
:class:`~csdformer.firmware.device_model.DeviceModel` (the link's protocol as the RTL implements
it) or any object with ``feed(bytes, now) -> [answer frames]`` (e.g. the RTL SoC's bench). Each
answer passes through ``fault(k, frame)`` (``k``: the answer's index from 0), which returns what
the device does instead, a list of:

``bytes``
    Sent at once.
``float``
    Seconds of silence; bytes that arrive meanwhile are discarded (the device is executing or
    answering: ``docs/protocol.md``, device rule 6): a slow device, or a late answer.
:data:`VANISH`
    The device disappears: both ends of the pseudo-terminal are closed; the host's next read or
    write fails with an ``OSError``.

Fault helpers (:func:`flip_bit`, :func:`truncate`, ...) build such lists.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from typing import Callable

__all__ = ["PtyDevice", "VANISH", "flip_bit", "truncate", "garbage", "late", "as_is"]

VANISH = object()

Fault = Callable[[int, bytes], list]


def as_is(k: int, frame: bytes) -> list:
    return [frame]


def flip_bit(frame: bytes, bit: int) -> list:
    """The frame with bit ``bit`` (counted over the whole frame) inverted."""
    b = bytearray(frame)
    b[bit // 8 % len(b)] ^= 1 << bit % 8
    return [bytes(b)]


def truncate(frame: bytes, keep: int) -> list:
    """Only the first ``keep`` bytes of the frame."""
    return [frame[:keep]]


def garbage(frame: bytes, junk: bytes) -> list:
    """``junk`` before the frame."""
    return [junk, frame]


def late(frame: bytes, seconds: float) -> list:
    """The frame after ``seconds`` (input discarded meanwhile)."""
    return [float(seconds), frame]


class PtyDevice:
    """``model`` served on the far end of a pseudo-terminal (see the module docstring).

    Parameters
    ----------
    model
        Has ``feed(data, now) -> list[bytes]`` (the answer frames to ``data``).
    fault : callable ``(k, frame) -> list``, optional
        What the device sends for its ``k``-th answer (default: the frame).

    Attributes
    ----------
    port : str
        The near end's device path (``/dev/pts/N``).
    answers : int
        Answers the model produced.
    received : bytearray
        Every byte the device read (and did not discard).
    """

    def __init__(self, model, *, fault: Fault | None = None):
        self.model = model
        self.fault = fault or as_is
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing, no CR/LF mapping, before the host opens it
        self.port = os.ttyname(self._slave)
        self.answers = 0
        self.received = bytearray()
        self.vanished = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="pty-device", daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._close_fds()
        if self.error is not None:
            raise RuntimeError(f"pty device thread failed: {self.error!r}") from self.error

    def _close_fds(self) -> None:
        for name in ("_master", "_slave"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)

    def _discard(self) -> None:
        while select.select([self._master], [], [], 0)[0]:
            if not os.read(self._master, 4096):
                break

    def _serve(self) -> None:
        try:
            while not self._stop.is_set() and not self.vanished:
                if not select.select([self._master], [], [], 0.02)[0]:
                    continue
                data = os.read(self._master, 4096)
                self.received += data
                for frame in self.model.feed(data, now=time.monotonic()):
                    k, self.answers = self.answers, self.answers + 1
                    self._discard()  # what came in while the request executed
                    for action in self.fault(k, frame):
                        if action is VANISH:
                            self.vanished = True
                            self._close_fds()
                            return
                        if isinstance(action, float):
                            self._stop.wait(action)
                            self._discard()
                        else:
                            os.write(self._master, action)
        except BaseException as e:  # noqa: BLE001 - reported by close()
            self.error = e
