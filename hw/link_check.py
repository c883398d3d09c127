"""The checks of the link's request parser (:class:`~csdformer.hw.link_rx.FrameReceiver`): the
inter-byte timeout, the running CRC-16 and the frame's verdict."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..firmware.protocol import ErrorCode, MsgType
from .common import unsigned_bits
from .crc16 import INIT, crc16_byte

__all__ = ["Reply", "ByteTimer", "RunningCrc", "Verdict"]

#: An answer that needs no core: ``mtype`` INFO_REPLY, or ERROR with its ``code``.
Reply = data.StructLayout({"mtype": 8, "code": 8})


class ByteTimer(wiring.Component):
    """Cycles since the last byte, up to ``timeout``.

    Members
    -------
    got : In(1)
        A byte this cycle.
    expired : Out(1)
        ``timeout`` cycles without a byte.
    stalled : Out(1)
        Expired, and no byte this cycle either.
    """

    def __init__(self, timeout: int):
        self._timeout = timeout
        super().__init__({"got": In(1), "expired": Out(1), "stalled": Out(1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._timeout + 1))
        m.d.comb += [self.expired.eq(timer == self._timeout), self.stalled.eq(~self.got & self.expired)]
        with m.If(self.got):
            m.d.sync += timer.eq(0)
        with m.Elif(timer != self._timeout):
            m.d.sync += timer.eq(timer + 1)
        return m


class RunningCrc(wiring.Component):
    """A frame's CRC-16 so far, a byte a cycle (:func:`~csdformer.hw.crc16.crc16_byte`).

    Members
    -------
    byte : In(8)
        The byte.
    add : In(1)
        Feed ``byte`` in.
    clear : In(1)
        Back to ``INIT`` (over ``add``).
    crc : Out(16)
        The CRC of the bytes fed in since the last ``clear``.
    """

    def __init__(self):
        super().__init__({"byte": In(8), "add": In(1), "clear": In(1), "crc": Out(16, init=INIT)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.add):
            m.d.sync += self.crc.eq(crc16_byte(self.crc, self.byte))
        with m.If(self.clear):
            m.d.sync += self.crc.eq(INIT)
        return m


class Verdict(wiring.Component):
    """A frame's verdict: its checks registered with its last byte (``judge``) and decided in the
    next cycle (``check``), so that the decision reads single bits (timing). A bad CRC drops the
    frame; otherwise a ``reply`` (INFO, or an ERROR for a bad type, length or delay) or an
    ``infer`` is valid for that cycle.

    Parameters
    ----------
    max_len : int
        An INFER frame's payload length.
    T : int
        Delays ``0 .. T − 1`` are good.

    Members
    -------
    judge : In(1)
        The frame's last byte is in: register its checks.
    mtype : In(8)
        The frame's type.
    length : In(max(8, unsigned_bits(max_len)))
        Its payload length.
    delay : In(8)
        Its first payload byte.
    crc, sent : In(16)
        The CRC of its bytes; the CRC it carries.
    check : In(1)
        Decide.
    drop : Out(1)
        The CRC is bad.
    reply : Out(stream.Signature(Reply, always_ready=True))
        An answer without the core.
    infer : Out(stream.Signature(range(T), always_ready=True))
        An inference with this delay.
    """

    def __init__(self, *, max_len: int, T: int):
        self._max_len, self._T = max_len, T
        super().__init__({
            "judge": In(1), "mtype": In(8), "length": In(max(8, unsigned_bits(max_len))), "delay": In(8),
            "crc": In(16), "sent": In(16), "check": In(1), "drop": Out(1),
            "reply": Out(stream.Signature(Reply, always_ready=True)),
            "infer": Out(stream.Signature(range(T), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        crc_ok, is_infer, is_info, len_zero, len_max, delay_bad = (Signal() for _ in range(6))
        with m.If(self.judge):
            m.d.sync += [crc_ok.eq(self.sent == self.crc), is_infer.eq(self.mtype == MsgType.INFER),
                         is_info.eq(self.mtype == MsgType.INFO), len_zero.eq(self.length == 0),
                         len_max.eq(self.length == self._max_len), delay_bad.eq(self.delay >= self._T)]
        m.d.comb += self.infer.payload.eq(self.delay)

        def reply(mt, code=0):
            m.d.comb += [self.reply.valid.eq(1), self.reply.payload.mtype.eq(mt), self.reply.payload.code.eq(code)]

        with m.If(self.check):
            with m.If(~crc_ok):
                m.d.comb += self.drop.eq(1)
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
        return m
