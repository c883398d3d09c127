"""Answer side of the host link (``docs/protocol.md``): the device's frames, byte by byte.

:class:`AnswerSender` sends a RESULT (the prediction, the cycle count and the logits read from the
logit memory, sign-extended to int32), INFO_REPLY or ERROR frame, with the request's sequence
number, through one byte register towards the UART. For timing, the byte's CRC-16 update and the logit memory's output are registered too (a
byte is loaded at most every other cycle).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import ReadPort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..firmware.protocol import CRC_SIZE, HEADER_SIZE, INFO_SIZE, RESULT_HEAD_SIZE, SYNC, MsgType, result_size
from .common import HwParamError, check_int, one_hot_in_synthesis, validated
from .crc16 import INIT, crc16_byte
from .link_run import Result
from .link_rx import Reply

__all__ = ["AnswerSender"]


class AnswerSender(wiring.Component):
    """The answer frames: a ``result`` (RESULT) or a ``reply`` (INFO_REPLY, ERROR) starts one.

    Parameters
    ----------
    num_classes, logit_width : int
        The core's logit count and width.
    info : bytes
        The INFO_REPLY payload (:meth:`~csdformer.firmware.protocol.Info.pack`) but its model id,
        which comes from ``model_id``: the first ``INFO_SIZE - 4`` bytes.

    Attributes
    ----------
    result : In(stream.Signature(Result, always_ready=True))
        Answer RESULT (the logits are in the logit memory).
    reply : In(stream.Signature(Reply, always_ready=True))
        Answer INFO_REPLY or ERROR (with its code).
    seq : In(8)
        The request's sequence number, read when an answer starts.
    model_id : In(32)
        The model id INFO_REPLY carries, read as its bytes are sent (the core holds it: a
        register that changes only while the core loads its model).
    logit_r : In(ReadPort.Signature(...))
        The logit memory's read port (not transparent).
    tx : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    done : Out(1)
        The answer's last byte is loaded (one cycle).
    dropped : In(1)
        A request frame was dropped: sets ``error``.
    error : Out(1)
        High from a dropped frame or an ERROR answer until the next good answer.
    """

    @validated
    def __init__(self, *, num_classes, logit_width, info: bytes):
        self._K = check_int("num_classes", num_classes, lo=1)
        if len(info) != INFO_SIZE - 4:
            raise HwParamError(f"info: must be {INFO_SIZE - 4} bytes (INFO_REPLY without its model id), "
                               f"got {len(info)}")
        self._info = bytes(info)
        super().__init__({
            "result": In(stream.Signature(Result, always_ready=True)),
            "reply": In(stream.Signature(Reply, always_ready=True)),
            "seq": In(8),
            "model_id": In(32),
            "logit_r": In(ReadPort.Signature(addr_width=ceil_log2(self._K), shape=signed(logit_width))),
            "tx": Out(stream.Signature(8)),
            "done": Out(1),
            "dropped": In(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        K = self._K
        tx_type, tx_seq, tx_len, ecode = Signal(8), Signal(8), Signal(16), Signal(8)
        pred, cyc = Signal(8), Signal(32)
        tx_idx, tx_end, tx_last = Signal(16), Signal(16), Signal(16)  # byte index, body end, last byte
        tcrc = Signal(16, init=INIT)
        cls, lbyte = Signal(range(K + 1)), Signal(2)
        out_valid, out_byte, crc_pend = Signal(), Signal(8), Signal()
        lword = Signal(signed(32))
        info = Cat(Const(int.from_bytes(self._info, "little"), 8 * len(self._info)), self.model_id)
        m.d.comb += [self.logit_r.addr.eq(cls), self.tx.valid.eq(out_valid), self.tx.payload.eq(out_byte)]
        m.d.sync += lword.eq(self.logit_r.data)
        with m.If(self.tx.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(crc_pend):
            m.d.sync += [tcrc.eq(crc16_byte(tcrc, out_byte)), crc_pend.eq(0)]
        with m.If(self.dropped):
            m.d.sync += self.error.eq(1)

        def answer(mt, size, code=0):
            m.d.sync += [tx_type.eq(mt), tx_seq.eq(self.seq), tx_len.eq(size), tx_end.eq(HEADER_SIZE + size),
                         tx_last.eq(HEADER_SIZE + size + CRC_SIZE - 1), ecode.eq(code), tx_idx.eq(0),
                         tcrc.eq(INIT), cls.eq(0), lbyte.eq(0), self.error.eq(mt == MsgType.ERROR)]
            m.next = "SEND"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.result.valid):
                    m.d.sync += [pred.eq(self.result.payload.prediction), cyc.eq(self.result.payload.cycles)]
                    answer(MsgType.RESULT, result_size(K))
                with m.Elif(self.reply.valid):
                    mt = self.reply.payload.mtype
                    answer(mt, Mux(mt == MsgType.INFO_REPLY, INFO_SIZE, 1), self.reply.payload.code)
            with m.State("SEND"):
                with m.If(~out_valid & ~crc_pend):
                    m.d.sync += [out_byte.eq(_answer_byte(m, tx_idx, tx_type, tx_seq, tx_len, tx_end, tcrc, pred,
                                                          cyc, lword, lbyte, info, ecode)),
                                 out_valid.eq(1), tx_idx.eq(tx_idx + 1)]
                    with m.If((tx_idx != 0) & (tx_idx < tx_end)):
                        m.d.sync += crc_pend.eq(1)
                    with m.If((tx_type == MsgType.RESULT) & (tx_idx >= HEADER_SIZE + RESULT_HEAD_SIZE)
                              & (tx_idx < tx_end)):
                        m.d.sync += lbyte.eq(lbyte + 1)
                        with m.If(lbyte == 3):
                            m.d.sync += cls.eq(cls + 1)
                    with m.If(tx_idx == tx_last):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
        one_hot_in_synthesis(fsm)
        return m


def _answer_byte(m, idx, mtype, seq, length, end, crc, pred, cyc, lword, lbyte, info, ecode):
    """Byte ``idx`` of the answer: header, payload (by type), CRC — from registers only."""
    pos = Signal(4)  # payload byte index, low bits (the fixed fields are < 16 bytes)
    body, byte = Signal(8), Signal(8)
    m.d.comb += pos.eq(idx[:4] - HEADER_SIZE)
    with m.Switch(mtype):
        with m.Case(MsgType.RESULT):
            m.d.comb += body.eq(Mux(idx >= HEADER_SIZE + RESULT_HEAD_SIZE, lword.word_select(lbyte, 8),
                                    Cat(pred, cyc).word_select(pos[:3], 8)))
        with m.Case(MsgType.INFO_REPLY):
            m.d.comb += body.eq(info.word_select(pos, 8))
        with m.Default():
            m.d.comb += body.eq(ecode)
    with m.If(idx == 0):
        m.d.comb += byte.eq(SYNC)
    with m.Elif(idx == 1):
        m.d.comb += byte.eq(mtype)
    with m.Elif(idx == 2):
        m.d.comb += byte.eq(seq)
    with m.Elif(idx == 3):
        m.d.comb += byte.eq(length[:8])
    with m.Elif(idx == 4):
        m.d.comb += byte.eq(length[8:])
    with m.Elif(idx < end):
        m.d.comb += byte.eq(body)
    with m.Elif(idx == end):
        m.d.comb += byte.eq(crc[:8])
    with m.Else():
        m.d.comb += byte.eq(crc[8:])
    return byte
