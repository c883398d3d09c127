"""Receive side of the host link (``docs/protocol.md``): request frames parsed and judged.

:class:`FrameReceiver` takes the UART's bytes one by one (HUNT → … → CRC1), keeps the running
CRC-16, writes an INFER frame's pixels into the image buffer as they arrive, registers the frame's
verdict bits with its last byte and decides a cycle later (CHECK): drop the frame, ask for an
answer without the core (:data:`Reply`: INFO or an ERROR with its code), or start an inference.
It then ignores bytes (WAIT) until the answer is sent; the frame's sequence number (``seq``) is
held for the answer meanwhile.

Resynchronisation without a buffer (the host decoder backtracks; this parser cannot): a frame
that ends at a byte ``0xA5`` takes that byte as the sync byte of the next frame. That is a last
(CRC) byte ``0xA5``, the frame dropped or answered — so a frame cut just before its last byte is
completed by the next frame's sync byte and the next frame is still parsed —, and a length high
byte ``0xA5`` (always too long). A type byte ``0xA5`` is no type: it restarts the frame (TYPE
again). A sync byte followed by nothing for ``timeout`` cycles is no frame: back to HUNT silently.
After an answered frame the candidate survives WAIT only while no byte arrives (bytes in WAIT are
discarded) and not past the timeout; one register (``resync``) holds it.

Units (:mod:`csdformer.hw.link_check`): :class:`~csdformer.hw.link_check.ByteTimer` (the timeout),
:class:`~csdformer.hw.link_check.RunningCrc` and :class:`~csdformer.hw.link_check.Verdict`; the
FSM's states, in three groups (header, body, answer), are built by ``_FrameParser``.
"""

from contextlib import contextmanager

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..firmware.protocol import SYNC, MsgType, infer_size
from .common import check_int, one_hot_in_synthesis, unsigned_bits, validated
from .link_check import ByteTimer, Reply, RunningCrc, Verdict

__all__ = ["Reply", "FrameReceiver"]


class FrameReceiver(wiring.Component):
    """Request frames from the UART's bytes, checked in hardware.

    A bad CRC, a length over ``1 + n_pixels`` or no byte for ``timeout`` cycles drops the partial
    frame (``dropped`` for a cycle). A good frame yields, a cycle after its last byte, either a
    ``reply`` (INFO, or an ERROR for a bad type, length or delay) or an ``infer`` (its pixels are
    then all in the image buffer). Bytes are then ignored until ``release``.

    Parameters
    ----------
    pixel_bits, n_pixels, T : int
        The core's attributes (see :class:`~csdformer.hw.link.Link`).
    timeout : int
        Inter-byte timeout in clock cycles.

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the UART receiver (always ready).
    image_w : In(WritePort.Signature(...))
        The image buffer's write port: an INFER frame's pixel ``i`` at address ``i``.
    reply : Out(stream.Signature(Reply, always_ready=True))
        A good frame to be answered without the core (valid for one cycle).
    infer : Out(stream.Signature(range(T), always_ready=True))
        A good INFER frame, its payload the delay (valid for one cycle).
    dropped : Out(1)
        A frame dropped (one cycle).
    seq : Out(8)
        The sequence number of the frame being answered (held from its CHECK until ``release``).
    release : In(1)
        The answer is sent: hunt for the next frame.
    busy : Out(1)
        Not hunting for a frame's sync byte.
    """

    @validated
    def __init__(self, *, pixel_bits, n_pixels, T, timeout):
        self._n = check_int("n_pixels", n_pixels, lo=1)
        self._T = check_int("T", T, lo=1)
        self._timeout = check_int("timeout", timeout, lo=1)
        super().__init__({
            "rx": In(stream.Signature(8)),
            "image_w": In(WritePort.Signature(addr_width=ceil_log2(self._n), shape=unsigned(pixel_bits))),
            "reply": Out(stream.Signature(Reply, always_ready=True)),
            "infer": Out(stream.Signature(range(self._T), always_ready=True)),
            "dropped": Out(1),
            "seq": Out(8),
            "release": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        max_len = infer_size(self._n)
        m.submodules.timer = timer = ByteTimer(self._timeout)  # no byte for ``timeout`` cycles
        m.submodules.crc = crc = RunningCrc()  # the frame's CRC so far
        m.submodules.verdict = verdict = Verdict(max_len=max_len, T=self._T)  # drop, reply or infer
        wiring.connect(m, verdict.reply, wiring.flipped(self.reply))
        wiring.connect(m, verdict.infer, wiring.flipped(self.infer))
        parse = _FrameParser(m, self, timer, crc, verdict, max_len=max_len)  # the fields, the FSM's states
        m.d.comb += [self.rx.ready.eq(1), timer.got.eq(self.rx.valid), crc.byte.eq(self.rx.payload),
                     verdict.mtype.eq(parse.mtype), verdict.length.eq(parse.length), verdict.delay.eq(parse.dbyte),
                     verdict.crc.eq(crc.crc), verdict.sent.eq(Cat(parse.crc_lo, self.rx.payload))]
        with m.FSM() as fsm:
            parse.header()  # HUNT, TYPE, SEQ, LEN0, LEN1
            parse.body()  # PAYLOAD, CRC0, CRC1
            parse.answer()  # CHECK, WAIT
            m.d.comb += self.busy.eq(~fsm.ongoing("HUNT"))
        one_hot_in_synthesis(fsm)
        return m


class _FrameParser:
    """Builds :class:`FrameReceiver`'s FSM states in ``m`` and holds the frame's fields: the
    receiver ``rcv`` and its units ``timer``, ``crc`` and ``verdict``."""

    def __init__(self, m: Module, rcv: FrameReceiver, timer: ByteTimer, crc: RunningCrc, verdict: Verdict, *,
                 max_len: int):
        self.m, self.rcv, self.timer, self.crc, self.verdict, self.max_len = m, rcv, timer, crc, verdict, max_len
        self.byte, self.got = rcv.rx.payload, rcv.rx.valid
        self.is_sync = self.byte == SYNC
        # A frame longer than ``max_len`` is dropped at its length's high byte, so the length kept
        # (its low byte first) and the payload count are as wide as ``max_len``.
        self.mtype = Signal(8)
        self.length, self.count = Signal(max(8, unsigned_bits(max_len))), Signal(range(max_len + 1))
        self.crc_lo, self.dbyte = Signal(8), Signal(8)
        self.resync = Signal()  # the frame's last byte was SYNC: the next frame's sync byte, maybe

    def start(self):
        """A sync byte (just received, or the last byte of a frame): a frame begins."""
        self.m.d.comb += self.crc.clear.eq(1)
        self.m.next = "TYPE"

    def drop(self, resync=None):
        """The frame dropped; ``resync`` true: its last byte starts the next."""
        self.m.d.comb += self.rcv.dropped.eq(1)
        self.m.next = "HUNT"
        if resync is not None:
            with self.m.If(resync):
                self.start()

    @contextmanager
    def on_byte(self):
        """A byte of the frame, or the frame dropped when none comes in time."""
        with self.m.If(self.got):
            yield
        with self.m.Elif(self.timer.stalled):
            self.drop()

    def header(self):
        m, byte, crc = self.m, self.byte, self.crc
        with m.State("HUNT"):
            with m.If(self.got & self.is_sync):
                self.start()
        with m.State("TYPE"):  # (crc is INIT here)
            with m.If(self.got):
                with m.If(~self.is_sync):  # a type byte 0xA5 is no type but a sync byte: TYPE again
                    m.d.comb += crc.add.eq(1)
                    m.d.sync += self.mtype.eq(byte)
                    m.next = "SEQ"
            with m.Elif(self.timer.stalled):  # a sync byte alone is no frame: nothing dropped
                m.next = "HUNT"
        with m.State("SEQ"):
            with self.on_byte():
                m.d.comb += crc.add.eq(1)
                m.d.sync += self.rcv.seq.eq(byte)
                m.next = "LEN0"
        with m.State("LEN0"):
            with self.on_byte():
                m.d.comb += crc.add.eq(1)
                m.d.sync += self.length.eq(byte)
                m.next = "LEN1"
        with m.State("LEN1"):
            new_len = Cat(self.length[:8], byte)
            with self.on_byte():
                m.d.comb += crc.add.eq(1)
                m.d.sync += [self.length.eq(new_len), self.count.eq(0)]
                with m.If(new_len > self.max_len):  # cannot be a request: a false sync
                    self.drop(resync=self.is_sync)  # (a high byte 0xA5 is always too long)
                with m.Elif(new_len == 0):
                    m.next = "CRC0"
                with m.Else():
                    m.next = "PAYLOAD"

    def body(self):
        m, byte, count, image_w = self.m, self.byte, self.count, self.rcv.image_w
        image_frame = (self.mtype == MsgType.INFER) & (self.length == self.max_len)
        with m.State("PAYLOAD"):
            with self.on_byte():
                m.d.comb += self.crc.add.eq(1)
                m.d.sync += count.eq(count + 1)
                with m.If(count == 0):
                    m.d.sync += self.dbyte.eq(byte)
                with m.Elif(image_frame):
                    m.d.comb += [image_w.addr.eq(count - 1), image_w.data.eq(byte), image_w.en.eq(1)]
                with m.If(count == self.length - 1):
                    m.next = "CRC0"
        with m.State("CRC0"):
            with self.on_byte():
                m.d.sync += self.crc_lo.eq(byte)
                m.next = "CRC1"
        with m.State("CRC1"):
            with self.on_byte():
                m.d.comb += self.verdict.judge.eq(1)
                m.d.sync += self.resync.eq(self.is_sync)
                m.next = "CHECK"

    def answer(self):
        m, resync = self.m, self.resync
        with m.State("CHECK"):  # the frame's verdict a cycle after its last byte (timing)
            m.d.comb += [self.crc.clear.eq(1), self.verdict.check.eq(1)]  # (for a frame the last byte may start)
            with m.If(self.verdict.drop):
                self.drop(resync=resync)
            with m.Else():  # a reply or an inference
                m.next = "WAIT"
        with m.State("WAIT"):  # the request executed and answered
            with m.If(self.got):  # discarded: a frame the last byte started has lost a byte
                m.d.sync += resync.eq(0)
            with m.If(self.rcv.release):
                m.next = "HUNT"
                with m.If(resync & ~self.got & ~self.timer.expired):  # that frame is still possible
                    m.next = "TYPE"
