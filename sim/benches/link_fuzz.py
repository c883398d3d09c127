"""Fuzzing the link's two parsers with Hypothesis streams (issue 16, done-when 2).

A stream is a list of :class:`Event` s: whole frames (kept intact or corrupted by bit flips or
truncation; a quarter of them end in a byte ``0xA5``, and a fifth of them are cut just before their
last byte: issue 16's "a frame cut before a last byte 0xA5 swallows the next frame"), garbage and
pauses. Two checks run a stream:

:func:`check_host_decoder`
    The host's answer decoder (:func:`csdformer.firmware.protocol.host_decoder`), fed the stream in
    random chunks with arrival times (pauses longer than its stall timeout). No exception; every
    frame it returns is one of the frames sent, unaltered (no corrupted frame accepted); every
    frame sent intact is returned, in order (the next valid frame is always decoded: the decoder
    backtracks, so this holds right after garbage or a cut frame too).
:class:`ReceiverFuzz`
    The device's request parser, :class:`csdformer.hw.link_rx.FrameReceiver` with its image
    buffer, in one Amaranth simulation kept across streams (bytes every other cycle, pauses longer
    than its timeout, ``release`` after each verdict as the answer sender would). No exception; its
    verdicts (INFO, ERROR code, INFER with delay and the buffered pixels, each with the request's
    sequence number) equal, one for one, those of the device model
    (:class:`csdformer.firmware.device_model.DeviceModel`) fed the same bytes at the same cycles;
    every verdict is one a frame sent unaltered would get (no corrupted frame accepted); every
    frame sent intact while the parser hunts (at the start, after a pause, or right after another
    such frame or a frame cut just before its last byte) gets its verdict (the device does not
    backtrack: a frame right behind garbage or a frame cut earlier may be swallowed, which
    ``docs/protocol.md`` states; a frame cut just before its last byte is completed by the next
    frame's sync byte — answered if that was its last byte, ``0xA5``, dropped otherwise — and the
    receiver takes that byte as the next frame's sync byte).

A CRC-16 passes a random corrupted span with probability 2⁻¹⁶: a corruption whose CRC check is
not guaranteed (a cut frame completed by the next frame's bytes, a flipped length, a false sync in
garbage) could in principle be accepted; :func:`stats` counts how many candidate frames reached
the CRC check and failed it, so a run states its exposure. Flips of at most 3 bits inside a
frame's CRC-covered bytes that leave its length alone are always caught (Hamming distance 4).
"""

from __future__ import annotations

import dataclasses
from collections import deque

from hypothesis import strategies as st

from ...firmware import protocol as P
from ...firmware.device_model import DeviceModel

__all__ = ["Event", "answer_streams", "request_streams", "check_host_decoder", "ReceiverFuzz", "stats"]


@dataclasses.dataclass(frozen=True)
class Event:
    """``kind``: ``frame`` (``data`` the whole frame, ``sent`` the bytes put on the line), ``garbage``
    (``sent``) or ``pause``."""

    kind: str
    data: bytes = b""
    sent: bytes = b""

    @property
    def intact(self) -> bool:
        return self.kind == "frame" and self.sent == self.data


def _corrupt(draw, frame: bytes) -> bytes:
    how = draw(st.sampled_from(["intact", "intact", "flip", "cut", "cut_last"]))
    if how == "intact":
        return frame
    if how == "cut_last":  # cut just before its last byte (the next frame's sync byte completes it)
        return frame[:-1]
    if how == "cut":
        return frame[:draw(st.integers(1, len(frame) - 1))]
    b = bytearray(frame)
    for bit in draw(st.lists(st.integers(0, 8 * len(b) - 1), min_size=1, max_size=3, unique=True)):
        b[bit // 8] ^= 1 << bit % 8
    return bytes(b)


def ending_in_sync(frame: bytes) -> bytes:
    """``frame`` (a whole frame) with the first sequence number that makes its last byte (the CRC's
    high byte) ``0xA5``; ``frame`` itself when none does."""
    for seq in range(256):
        f = P.encode(frame[1], frame[P.HEADER_SIZE:-2], seq)
        if f[-1] == P.SYNC:
            return f
    return frame


@st.composite
def _garbage(draw) -> bytes:
    return draw(st.one_of(st.binary(min_size=1, max_size=24),
                          st.lists(st.sampled_from([P.SYNC, 0x00, 0x01, 0x02, 0x81, 0x82, 0x8F, 0xFF]),
                                   min_size=1, max_size=12).map(bytes)))


@st.composite
def _stream(draw, frame_st) -> list[Event]:
    events = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["frame", "frame", "frame", "garbage", "pause"]))
        if kind == "frame":
            f = draw(frame_st)
            if draw(st.integers(0, 3)) == 0:
                f = ending_in_sync(f)
            events.append(Event("frame", f, _corrupt(draw, f)))
        elif kind == "garbage":
            events.append(Event("garbage", sent=draw(_garbage())))
        else:
            events.append(Event("pause"))
    return events


@st.composite
def _answer(draw) -> bytes:
    seq = draw(st.integers(0, 255))
    kind = draw(st.sampled_from([P.MsgType.RESULT, P.MsgType.RESULT, P.MsgType.INFO_REPLY, P.MsgType.ERROR]))
    if kind == P.MsgType.RESULT:
        k = draw(st.integers(1, 12))
        payload = draw(st.binary(min_size=P.result_size(k), max_size=P.result_size(k)))
    elif kind == P.MsgType.INFO_REPLY:
        payload = draw(st.binary(min_size=P.INFO_SIZE, max_size=P.INFO_SIZE))
    else:
        payload = bytes([draw(st.integers(0, 255))])
    return P.encode(kind, payload, seq)


def answer_streams():
    """Streams of device answers (RESULT of 1..12 classes, INFO_REPLY, ERROR; any seq and bytes)."""
    return _stream(_answer())


@st.composite
def _request(draw, n_pixels: int, T: int) -> bytes:
    seq = draw(st.integers(0, 255))
    kind = draw(st.sampled_from(["infer", "infer", "infer", "info", "bad_length", "bad_type"]))
    if kind == "infer":
        payload = bytes([draw(st.integers(0, T))]) + draw(st.binary(min_size=n_pixels, max_size=n_pixels))
        return P.encode(P.MsgType.INFER, payload, seq)
    if kind == "info":
        return P.encode(P.MsgType.INFO, b"", seq)
    if kind == "bad_length":
        mt = draw(st.sampled_from([P.MsgType.INFER, P.MsgType.INFO]))
        n = draw(st.integers(0, n_pixels + 1).filter(lambda n: n != (n_pixels + 1 if mt == P.MsgType.INFER else 0)))
        return P.encode(mt, draw(st.binary(min_size=n, max_size=n)), seq)
    mt = draw(st.integers(0, 255).filter(lambda t: t not in (P.SYNC, P.MsgType.INFER, P.MsgType.INFO)))
    return P.encode(mt, draw(st.binary(max_size=n_pixels + 1)), seq)


def request_streams(n_pixels: int, T: int):
    """Streams of host requests for a device of ``n_pixels`` and ``T`` (INFER, INFO, wrong lengths,
    unknown types, delays up to ``T``; any seq and pixels)."""
    return _stream(_request(n_pixels, T))


_STATS = {"streams_host": 0, "streams_rtl": 0, "frames": 0, "corrupted": 0, "host_crc_rejects": 0,
          "rtl_verdicts": 0, "rtl_cycles": 0}


def stats() -> dict:
    """Counters over every stream checked in this process."""
    return dict(_STATS)


def _count(events):
    _STATS["frames"] += sum(e.kind == "frame" for e in events)
    _STATS["corrupted"] += sum(e.kind == "frame" and not e.intact for e in events)


# -- host ------------------------------------------------------------------------------------

GAP_TIMEOUT = 64.0  # the decoder's stall timeout, in byte times (longer than any chunk: as the runtime,
# which reads every 50 ms, against its 250 ms)


def check_host_decoder(events: list[Event], cuts: list[int]) -> None:
    """Run ``events`` through the host decoder in chunks of ``cuts`` bytes (then the rest; a chunk
    also ends at a pause, as a reader reads what came before it); raise ``AssertionError`` on a
    violated property (module docstring)."""
    _STATS["streams_host"] += 1
    _count(events)
    bursts = [[]]  # bytes with their arrival times, between pauses
    t = 0.0
    for e in events:
        if e.kind == "pause":
            t += 2 * GAP_TIMEOUT
            bursts.append([])
        for b in e.sent:
            t += 1.0
            bursts[-1].append((b, t))
    chunks, cuts = [], list(cuts)
    for burst in bursts:
        while burst:
            c = cuts.pop(0) if cuts else 32  # (the runtime reads at most 50 ms of bytes at a time)
            chunks.append(burst[:c])
            burst = burst[c:]
    d = P.host_decoder(timeout=GAP_TIMEOUT)
    got = []
    for chunk in chunks:
        got += d.expire(now=chunk[0][1] - 0.5)  # what the runtime's polling loop does between reads
        got += d.feed(bytes(b for b, _ in chunk), now=chunk[-1][1])
    got += d.flush()
    _STATS["host_crc_rejects"] += d.stats["crc_errors"]
    sent = {e.data for e in events if e.kind == "frame"}
    enc = [P.encode(f.type, f.payload, f.seq) for f in got]
    for f in enc:
        assert f in sent, f"a frame not sent (or altered) was accepted: {f.hex()}"
    it = iter(enc)
    missing = [e.data.hex() for e in events if e.intact and e.data not in it]
    assert not missing, f"frames sent intact not decoded (in order): {missing}; got {[f.hex() for f in enc]}"


# -- device RTL ------------------------------------------------------------------------------

def _verdict_of_answer(frame: bytes, pixel_bits: int) -> tuple:
    """A device model answer frame as a receiver verdict."""
    (f,) = P.Decoder().feed(frame)
    if f.type == P.MsgType.RESULT:
        r = P.Result.unpack(f.payload)
        return ("infer", f.seq, r.cycles, tuple(r.logits))
    if f.type == P.MsgType.INFO_REPLY:
        return ("info", f.seq)
    return ("error", f.seq, f.payload[0])


class ReceiverFuzz:
    """One Amaranth simulation of :class:`~csdformer.hw.link_rx.FrameReceiver` + its image buffer,
    run stream after stream (:meth:`check`).

    Parameters
    ----------
    pixel_bits, n_pixels, T, timeout : int
        The receiver's parameters (``timeout`` in cycles; bytes come every other cycle).
    """

    def __init__(self, *, pixel_bits: int = 6, n_pixels: int = 5, T: int = 3, timeout: int = 8):
        from amaranth.hdl import Module, unsigned
        from amaranth.lib import wiring
        from amaranth.lib.memory import Memory
        from amaranth.sim import Simulator

        from ...hw.link_rx import FrameReceiver

        self.pixel_bits, self.n_pixels, self.T, self.timeout = pixel_bits, n_pixels, T, timeout
        self.pause = timeout + 6  # idle cycles: surely longer than the timeout
        m = Module()
        m.submodules.rx = self._rx = FrameReceiver(pixel_bits=pixel_bits, n_pixels=n_pixels, T=T, timeout=timeout)
        m.submodules.mem = self._mem = Memory(shape=unsigned(pixel_bits), depth=n_pixels, init=[])
        wiring.connect(m, self._rx.image_w, self._mem.write_port())
        self._sim = Simulator(m)
        self._sim.add_clock(1e-6)
        self._sim.add_testbench(self._bench)
        self._todo: deque = deque()  # ints: bytes; None: a pause
        self._verdicts: list = []
        self._model_answers: list = []
        self._model = None
        self._done = True
        self.drops = 0  # cycles with ``dropped`` high, over every stream

    def _model_compute(self, pixels: bytes, delay: int) -> P.Result:
        mask = (1 << self.pixel_bits) - 1
        return P.Result(0, delay, tuple(b & mask for b in pixels))

    async def _bench(self, ctx):
        rx, cycle = self._rx, 0
        released = gap = 0
        while True:
            valid = 0
            if released:  # release the verdict as the answer sender would: no byte meanwhile
                ctx.set(rx.release, 1)
                released -= 1
            elif gap:
                gap -= 1
            elif self._todo:
                item = self._todo.popleft()
                if item is None:
                    gap = self.pause
                else:
                    valid = 1
                    ctx.set(rx.rx.payload, item)
                    self._model_answers += self._model.feed(bytes([item]), now=cycle)
                    gap = 1
            else:
                self._done = True
            ctx.set(rx.rx.valid, valid)
            await ctx.tick()
            ctx.set(rx.release, 0)
            cycle += 1
            if ctx.get(rx.reply.valid):
                mt, code, seq = ctx.get(rx.reply.payload.mtype), ctx.get(rx.reply.payload.code), ctx.get(rx.seq)
                self._verdicts.append(("info", seq) if mt == P.MsgType.INFO_REPLY else ("error", seq, code))
                released = 2  # (the first cycle is CHECK's, the second WAIT's)
            elif ctx.get(rx.infer.valid):
                pixels = tuple(ctx.get(self._mem.data[i]) for i in range(self.n_pixels))
                self._verdicts.append(("infer", ctx.get(rx.seq), ctx.get(rx.infer.payload), pixels))
                released = 2
            self.drops += ctx.get(rx.dropped)
            _STATS["rtl_cycles"] += 1

    def check(self, events: list[Event]) -> list[tuple]:
        """Run one stream (after a pause: the parser hunts); raise ``AssertionError`` on a violated
        property (module docstring). Returns the receiver's verdicts."""
        _STATS["streams_rtl"] += 1
        _count(events)
        info = P.Info(self.n_pixels, 1, self.T, 1, 0)
        self._model = DeviceModel(info, self._model_compute, timeout=self.pause - 2)
        self._verdicts, self._model_answers = [], []
        self._todo.append(None)
        for e in events:
            self._todo.extend([None] if e.kind == "pause" else e.sent)
        self._todo.append(None)
        self._done = False
        while not self._done:
            self._sim.advance()
        want = [_verdict_of_answer(a, self.pixel_bits) for a in self._model_answers]
        got = self._verdicts
        _STATS["rtl_verdicts"] += len(got)
        assert got == want, f"RTL verdicts {got} differ from the device model's {want}"
        ref = DeviceModel(info, self._model_compute)
        allowed = {_verdict_of_answer(a, self.pixel_bits) for e in events if e.kind == "frame"
                   for a in ref.feed(e.data)}
        for v in got:
            assert v in allowed, f"a verdict no frame sent unaltered gets: {v}"
        hunting, guaranteed = True, []
        for e in events:
            if e.kind == "pause":
                hunting = True
            elif e.intact and hunting:
                guaranteed += [_verdict_of_answer(a, self.pixel_bits) for a in DeviceModel(info, self._model_compute).feed(e.data)]
            elif hunting and e.kind == "frame" and e.sent == e.data[:-1]:
                pass  # the next byte completes it; a sync byte there also starts the next frame
            else:
                hunting = False
        it = iter(got)
        missing = [v for v in guaranteed if v not in it]
        assert not missing, f"frames sent intact while hunting got no verdict: {missing}; got {got}"
        return got
