"""Cases of the host-link bench (``sim/benches/link.py``); no cocotb import.

A case is a script of host actions on the UART pins (``steps``) plus the answer frames the device
must send, computed by running the same script through the Python device model
(:class:`csdformer.firmware.device_model.DeviceModel`, with the core's reference as its compute),
byte times included, so the model's inter-byte timeouts see the gaps the RTL sees.

Steps (JSON lists, bytes as hex):

``["send", hex, wait]``
    Queue bytes on the UART source (back to back); ``wait``: until the last stop bit is out.
``["idle", cycles]``
    Let the line rest.
``["drain"]``
    Wait until the source has sent everything queued.
``["reset", cycles, after_tx]``
    Assert the domain reset for ``cycles`` (after ``after_tx`` answer bytes have arrived since
    the step began when ``after_tx > 0``: a reset in the middle of an answer, which is then lost).
``["answer", n]``
    Wait until ``n`` answer frames have been decoded in all.
"""

from __future__ import annotations

import numpy as np

from ...firmware import protocol as P
from ...firmware.device_model import DeviceModel
from ...hw.link import LinkSoC
from .link_fixture import FixtureCore

__all__ = ["SCENARIOS", "LINK_PARAMS", "link_case"]

SCENARIOS = ("images", "garbage", "bad_crc", "truncated", "reset", "errors")

# label -> (core parameters, divisor, timeout in byte times)
LINK_PARAMS = {
    "digits_like_d8": (dict(pixel_bits=5, n_pixels=64, num_classes=10, T=4, lanes=2, model_id=0x5EED1E55), 8, 5),
    "rgb_d13": (dict(pixel_bits=8, n_pixels=3 * 3 * 3, num_classes=3, T=2, lanes=1, model_id=0xFFFFFFFF,
                     logit_width=32, stall_every=0, latency=0), 13, 3),
}


class _Script:
    """Builds the steps and, through the device model, the expected answers."""

    def __init__(self, core, compute, divisor: int, timeout: int, model_id: int):
        self.core, self.byte_t, self.timeout = core, 10 * divisor, timeout
        info = P.Info(core.n_pixels, core.num_classes, core.T, core.lanes, model_id)
        self.model = DeviceModel(info, compute, timeout=timeout)
        self.steps: list[list] = []
        self.answers: list[bytes] = []
        self.t = 0
        self._seq = 0

    def seq(self) -> int:
        """A new sequence number (every request gets its own, so every echo is checked)."""
        self._seq = (self._seq + 37) & 0xFF
        return self._seq

    def send(self, data: bytes, *, wait: bool = True, answer: bool = False):
        self.steps.append(["send", bytes(data).hex(), wait])
        for b in bytes(data):
            self.t += self.byte_t
            self.answers += self.model.feed(bytes([b]), now=self.t)
        if answer:
            self.steps.append(["answer", len(self.answers)])

    def idle(self, cycles: int):
        self.steps.append(["idle", int(cycles)])
        self.t += int(cycles)

    def rest(self):
        """Long enough for any partial frame to time out."""
        self.idle(3 * self.timeout)

    def reset(self, cycles: int = 3, *, after_tx: int = 0):
        self.steps.append(["reset", cycles, after_tx])
        self.model.reset()
        if after_tx:
            self.answers.pop()  # the answer being sent is cut

    def drain(self):
        self.steps.append(["drain"])


def _script(scenario: str, core, compute, divisor: int, timeout: int, rng: np.random.Generator,
            top: int, model_id: int) -> _Script:
    s = _Script(core, compute, divisor, timeout, model_id)
    n, T = core.n_pixels, core.T

    def image(kind="random"):
        if kind == "zeros":
            return bytes(n)
        if kind == "max":
            return bytes([top] * n)
        return rng.integers(0, top + 1, n, dtype=np.uint8).tobytes()

    def infer(delay=None, kind="random"):
        return P.infer_request(int(rng.integers(0, T)) if delay is None else delay, image(kind), s.seq())

    if scenario == "images":
        s.send(P.info_request(s.seq()), answer=True)
        s.send(infer(0, "zeros"), answer=True)
        s.send(infer(T - 1, "max"), answer=True)
        for i in range(10):
            s.send(infer(i % T), answer=True)
    elif scenario == "garbage":
        junk = bytes(b for b in rng.integers(0, 256, 40, dtype=np.uint8).tobytes() if b != P.SYNC)
        s.send(junk + infer(), answer=True)
        s.send(bytes([P.SYNC, P.MsgType.INFER, 0, 0xFF, 0xFF]) + infer(), answer=True)  # oversized: dropped at once
        s.send(bytes([P.SYNC, P.MsgType.INFER, 0, 5, 0]) + infer())  # swallows the next frame
        s.rest()
        s.send(infer(), answer=True)
    elif scenario == "bad_crc":
        bad = bytearray(infer())
        bad[-1] ^= 0x01
        s.send(bytes(bad) + infer(), answer=True)  # the bad one dropped, the next answered
        bad = bytearray(infer())
        bad[7] ^= 0x01  # a pixel: the CRC catches it, the core never sees the image
        s.send(bytes(bad))
        s.idle(60 * s.byte_t)  # no answer may come
        s.send(infer(), answer=True)
    elif scenario == "truncated":
        s.send(infer()[:n // 2])
        s.rest()
        s.send(infer(), answer=True)
        s.send(infer()[:9] + infer())  # the new frame completes the truncated one: CRC fails
        s.rest()
        s.send(infer(), answer=True)
    elif scenario == "reset":
        frame = infer()
        s.send(frame[:20])
        s.reset()  # mid-frame, between bytes
        s.send(frame[20:])  # the rest arrives while hunting
        s.rest()
        s.send(infer(), answer=True)
        s.send(infer()[:30], wait=False)
        s.idle(int(12.5 * s.byte_t) + 3 * divisor)  # in the middle of a byte
        s.reset()
        s.drain()
        s.rest()
        s.send(infer(), answer=True)
        s.send(infer())
        s.reset(after_tx=6)  # in the middle of the answer
        s.rest()
        s.send(infer(), answer=True)
    elif scenario == "errors":
        s.send(P.info_request(s.seq()), answer=True)
        s.send(P.encode(P.MsgType.INFER, bytes([T]) + image(), s.seq()), answer=True)
        s.send(P.encode(P.MsgType.INFER, bytes([0]) + image()[:-1], s.seq()), answer=True)
        s.send(P.encode(P.MsgType.INFO, b"\x01", s.seq()), answer=True)
        s.send(P.encode(0x7E, b"\x00\x01\x02", s.seq()), answer=True)
        s.send(infer(), answer=True)
    else:
        raise ValueError(f"scenario: one of {SCENARIOS}, got {scenario!r}")
    return s


def link_case(label: str, scenario: str, *, seed: int = 0, corrupt_tx: dict | None = None, core=None,
              compute=None, ignore_cycles: bool = False, answer_bytes: int = 400, pixel_max: int | None = None,
              model_id: int | None = None):
    """``(soc, data, meta)`` for :func:`csdformer.sim.benchlib.runner.run_bench`.

    ``label`` picks :data:`LINK_PARAMS` (the fixture core's parameters, divisor, timeout). To bench
    another core (the real accelerator) pass ``core`` and its reference ``compute(pixels, delay) ->
    Result``; with ``ignore_cycles`` the RESULT's cycle field is not compared (a reference that has no
    cycle model puts 0 there). ``answer_bytes``: byte times the bench waits for each answer;
    ``pixel_max``: largest pixel drawn (default ``2**pixel_bits - 1``); ``model_id``: what INFO must
    answer (default: the core's ``model_id`` when it is an int; a core with a ``model_id`` port
    needs it).
    """
    core_kw, divisor, timeout_bytes = LINK_PARAMS[label]
    core = FixtureCore(**core_kw) if core is None else core
    compute = core.reference if compute is None else compute
    if model_id is None:
        model_id = getattr(core, "model_id_value", core.model_id)
    if not isinstance(model_id, int):
        raise ValueError("model_id: the core has a model_id port; pass the id INFO must answer")
    timeout = timeout_bytes * 10 * divisor
    soc = LinkSoC(core, divisor=divisor, timeout=timeout, corrupt_tx=corrupt_tx)
    top = (1 << core.pixel_bits) - 1 if pixel_max is None else int(pixel_max)
    s = _script(scenario, core, compute, divisor, timeout, np.random.default_rng(seed), top, model_id)
    data = {"expected": np.frombuffer(b"".join(s.answers), dtype=np.uint8)}
    meta = {"divisor": divisor, "timeout": timeout, "steps": s.steps, "scenario": scenario,
            "expected_frames": [a.hex() for a in s.answers], "ignore_cycles": bool(ignore_cycles),
            "answer_limit": int(answer_bytes) * 10 * divisor}
    meta["budget_cycles"] = link_budget(s, meta["answer_limit"])
    return soc, data, meta


BUDGET_MARGIN = 2


def link_budget(s: _Script, answer_limit: int) -> int:
    """The link bench's cycle budget: :data:`BUDGET_MARGIN` times the script's duration in the
    device model's timing (every byte sent, every idle), plus for each answer waited for the
    bench's own answer allowance, for each reset its cycles, and the final 100 byte times."""
    waits = sum(answer_limit for st in s.steps if st[0] == "answer")
    waits += sum(st[1] + (answer_limit if st[2] else 0) for st in s.steps if st[0] == "reset")
    return BUDGET_MARGIN * s.t + waits + 100 * s.byte_t + 64
