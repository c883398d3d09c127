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
"""

from contextlib import contextmanager

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..firmware.protocol import SYNC, ErrorCode, MsgType, infer_size
from .common import check_int, one_hot_in_synthesis, unsigned_bits, validated
from .crc16 import INIT, crc16_byte

__all__ = ["Reply", "FrameReceiver"]

#: An answer that needs no core: ``mtype`` INFO_REPLY, or ERROR with its ``code``.
Reply = data.StructLayout({"mtype": 8, "code": 8})


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
        byte, got = self.rx.payload, self.rx.valid
        m.d.comb += self.rx.ready.eq(1)
        # A frame longer than ``max_len`` is dropped at its length's high byte, so the length kept
        # (its low byte first) and the payload count are as wide as ``max_len``.
        mtype = Signal(8)
        length, count = Signal(max(8, unsigned_bits(max_len))), Signal(range(max_len + 1))
        crc, crc_lo, dbyte = Signal(16, init=INIT), Signal(8), Signal(8)
        # The frame's verdict, registered with its last byte (CHECK decides from single bits)
        crc_ok, is_infer, is_info, len_zero, len_max, delay_bad = (Signal() for _ in range(6))
        timer = Signal(range(self._timeout + 1))
        expired, stalled = Signal(), Signal()
        is_sync = byte == SYNC
        resync = Signal()  # the frame's last byte was SYNC: the next frame's sync byte, maybe
        m.d.comb += [expired.eq(timer == self._timeout), stalled.eq(~got & expired),
                     self.infer.payload.eq(dbyte)]
        crc_rx = crc16_byte(crc, byte)
        image_frame = (mtype == MsgType.INFER) & (length == max_len)
        with m.If(got):
            m.d.sync += timer.eq(0)
        with m.Elif(timer != self._timeout):
            m.d.sync += timer.eq(timer + 1)

        def reply(mt, code=0):
            m.d.comb += [self.reply.valid.eq(1), self.reply.payload.mtype.eq(mt), self.reply.payload.code.eq(code)]
            m.next = "WAIT"

        def drop(resync=None):  # the frame dropped; ``resync`` true: its last byte starts the next
            m.d.comb += self.dropped.eq(1)
            m.next = "HUNT"
            if resync is not None:
                with m.If(resync):
                    start()

        def start():  # a sync byte (just received, or the last byte of a frame): a frame begins
            m.d.sync += crc.eq(INIT)
            m.next = "TYPE"

        @contextmanager
        def on_byte():  # a byte of the frame, or the frame dropped when none comes in time
            with m.If(got):
                yield
            with m.Elif(stalled):
                drop()

        with m.FSM() as fsm:
            with m.State("HUNT"):
                with m.If(got & is_sync):
                    start()
            with m.State("TYPE"):  # (crc is INIT here)
                with m.If(got):
                    with m.If(~is_sync):  # a type byte 0xA5 is no type but a sync byte: TYPE again
                        m.d.sync += [crc.eq(crc_rx), mtype.eq(byte)]
                        m.next = "SEQ"
                with m.Elif(stalled):  # a sync byte alone is no frame: nothing dropped
                    m.next = "HUNT"
            with m.State("SEQ"):
                with on_byte():
                    m.d.sync += [crc.eq(crc_rx), self.seq.eq(byte)]
                    m.next = "LEN0"
            with m.State("LEN0"):
                with on_byte():
                    m.d.sync += [crc.eq(crc_rx), length.eq(byte)]
                    m.next = "LEN1"
            with m.State("LEN1"):
                new_len = Cat(length[:8], byte)
                with on_byte():
                    m.d.sync += [crc.eq(crc_rx), length.eq(new_len), count.eq(0)]
                    with m.If(new_len > max_len):  # cannot be a request: a false sync
                        drop(resync=is_sync)  # (a high byte 0xA5 is always too long)
                    with m.Elif(new_len == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                with on_byte():
                    m.d.sync += [crc.eq(crc_rx), count.eq(count + 1)]
                    with m.If(count == 0):
                        m.d.sync += dbyte.eq(byte)
                    with m.Elif(image_frame):
                        m.d.comb += [self.image_w.addr.eq(count - 1), self.image_w.data.eq(byte),
                                     self.image_w.en.eq(1)]
                    with m.If(count == length - 1):
                        m.next = "CRC0"
            with m.State("CRC0"):
                with on_byte():
                    m.d.sync += crc_lo.eq(byte)
                    m.next = "CRC1"
            with m.State("CRC1"):
                with on_byte():
                    m.d.sync += [crc_ok.eq(Cat(crc_lo, byte) == crc), resync.eq(is_sync),
                                 is_infer.eq(mtype == MsgType.INFER),
                                 is_info.eq(mtype == MsgType.INFO), len_zero.eq(length == 0),
                                 len_max.eq(length == max_len), delay_bad.eq(dbyte >= self._T)]
                    m.next = "CHECK"
            with m.State("CHECK"):  # the frame's verdict a cycle after its last byte (timing)
                m.d.sync += crc.eq(INIT)  # (for a frame that the last byte may start)
                with m.If(~crc_ok):
                    drop(resync=resync)
                with m.Elif(~is_infer & ~is_info):
                    reply(MsgType.ERROR, ErrorCode.UNKNOWN_TYPE)
                with m.Elif(is_info):
                    with m.If(~len_zero):
                        reply(MsgType.ERROR, ErrorCode.BAD_LENGTH)
                    with m.Else():
                        reply(MsgType.INFO_REPLY)
                with m.Elif(~len_max):
                    reply(MsgType.ERROR, ErrorCode.BAD_LENGTH)
                with m.Elif(delay_bad):
                    reply(MsgType.ERROR, ErrorCode.BAD_DELAY)
                with m.Else():
                    m.d.comb += self.infer.valid.eq(1)
                    m.next = "WAIT"
            with m.State("WAIT"):  # the request executed and answered
                with m.If(got):  # discarded: a frame the last byte started has lost a byte
                    m.d.sync += resync.eq(0)
                with m.If(self.release):
                    m.next = "HUNT"
                    with m.If(resync & ~got & ~expired):  # that frame is still possible
                        m.next = "TYPE"
            m.d.comb += self.busy.eq(~fsm.ongoing("HUNT"))
        one_hot_in_synthesis(fsm)
        return m
