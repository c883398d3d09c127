"""Progress of long phases on stderr: a tqdm bar on a terminal, plain lines anywhere else.

A log file or a pipe gets no carriage returns: :class:`Progress` prints one line at each tenth of
the work (or every :data:`EVERY_S` seconds, whichever comes first) with the elapsed time and an
estimate of the time left, and only once the phase has run :data:`QUIET_S` seconds (a phase that
ends sooner prints nothing)::

    golden snn: 30/100 batches, elapsed 12 s, about 28 s left

:func:`heartbeat` is the same for a phase with no count (a compiler run): a line every
:data:`EVERY_S` seconds while it lasts; with ``watch`` (the tool's log file) a line only when the
log has grown since the last one, quoting its newest line, so that a line is a sign of progress
(``csdformer flow`` stops a board build only after a long time without one).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TextIO

__all__ = ["Progress", "progress", "heartbeat", "fmt_seconds", "QUIET_S", "EVERY_S"]

QUIET_S = 5.0  # a phase shorter than this prints no plain lines
EVERY_S = 30.0  # at least one plain line this often


def fmt_seconds(s: float) -> str:
    """``42 s``, ``3 min 05 s``."""
    s = max(0.0, s)
    if s < 100:
        return f"{s:.0f} s"
    m, r = divmod(int(round(s)), 60)
    return f"{m} min {r:02d} s"


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """Counts work done out of ``total``; ``update(n)`` after each piece.

    ``tty`` (default: whether ``stream`` is a terminal) picks a tqdm bar, else plain lines.
    ``quiet_s`` / ``every_s`` default to :data:`QUIET_S` / :data:`EVERY_S`.
    """

    def __init__(self, total: int, desc: str, *, unit: str = "items", stream: TextIO | None = None,
                 tty: bool | None = None, quiet_s: float | None = None, every_s: float | None = None):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = sys.stderr if stream is None else stream
        self.tty = _is_tty(self.stream) if tty is None else tty
        self.quiet_s = QUIET_S if quiet_s is None else quiet_s
        self.every_s = EVERY_S if every_s is None else every_s
        self.done = 0
        self.t0 = time.monotonic()
        self._last_line = self.t0
        self._last_tenth = 0
        self.printed = 0
        self._bar = None
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False, file=self.stream)

    def line(self) -> str:
        el = time.monotonic() - self.t0
        msg = f"{self.desc}: {self.done}/{self.total} {self.unit}, elapsed {fmt_seconds(el)}"
        if 0 < self.done < self.total:
            msg += f", about {fmt_seconds(el * (self.total - self.done) / self.done)} left"
        return msg

    def update(self, n: int = 1, postfix: str = "") -> None:
        self.done += n
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        tenth = 10 * self.done // max(1, self.total)
        due = tenth > self._last_tenth or now - self._last_line >= self.every_s or self.done >= self.total
        if due and now - self.t0 >= self.quiet_s:
            self._emit(self.line() + (f" ({postfix})" if postfix else ""))
            self._last_line = now
            self._last_tenth = tenth

    def _emit(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self.printed += 1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(items: Iterable, total: int, desc: str, *, enabled: bool = True, **kw) -> Iterator:
    """Iterate ``items`` (``total`` of them) with a :class:`Progress` when ``enabled``."""
    if not enabled:
        yield from items
        return
    with Progress(total, desc, **kw) as p:
        for item in items:
            yield item
            p.update()


def _last_line(path, size: int) -> str:
    """The newest complete (or partial) non-empty line of the first ``size`` bytes of ``path``."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, size - 4096))
            tail = f.read(min(size, 4096)).decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    return lines[-1][:120] if lines else ""


@contextmanager
def heartbeat(desc: str, *, stream: TextIO | None = None, every_s: float | None = None, announce: bool = True,
              watch=None):
    """While the block runs, a line ``desc: still running, elapsed N s`` every ``every_s`` seconds
    (default :data:`EVERY_S`); with ``announce``, a line when it starts and one when it ends, with
    its time. ``watch``: a file (the tool's log) that must have grown since the last line for the
    next one to be printed (with the log's newest line): no line while the tool writes nothing."""
    stream = sys.stderr if stream is None else stream
    every = EVERY_S if every_s is None else every_s
    t0 = time.monotonic()
    stop = threading.Event()

    def beat():
        seen = 0
        while not stop.wait(every):
            msg = f"{desc}: still running, elapsed {fmt_seconds(time.monotonic() - t0)}"
            if watch is not None:
                try:
                    size = os.path.getsize(watch)
                except OSError:
                    size = 0
                if size <= seen:
                    continue  # no new output: no line, so that silence shows
                seen = size
                last = _last_line(watch, size)
                msg += f" ({last})" if last else ""
            print(msg, file=stream, flush=True)

    if announce:
        print(f"{desc}: started", file=stream, flush=True)
    th = threading.Thread(target=beat, daemon=True)
    th.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        stop.set()
        th.join(timeout=1)
        if announce:
            print(f"{desc}: {'done' if ok else 'stopped'} in {fmt_seconds(time.monotonic() - t0)}", file=stream,
                  flush=True)
