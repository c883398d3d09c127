"""Answer side of the host link (``docs/protocol.md``): the device's frames, byte by byte.

:class:`AnswerSender` sends a RESULT (the prediction, the cycle count and the logits read from the
logit memory, sign-extended to int32), INFO_REPLY or ERROR frame, with the request's sequence
number, through one byte register towards the UART. For timing, each byte is chosen a cycle
ahead into a register (``nxt``) from registers only, by one-hot flags of the frame's parts (no
byte-index comparisons before the byte multiplexer); the byte's CRC-16 update is registered too
and the logit memory's output goes into ``nxt`` alone, so a byte is loaded at most every
:data:`HOLD` + 1 cycles (a UART byte takes ten bit times).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import ReadPort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..firmware.protocol import INFO_SIZE, RESULT_HEAD_SIZE, SYNC, MsgType, result_size
from .common import HwParamError, check_int, one_hot_in_synthesis, validated
from .crc16 import INIT, crc16_byte
from .link_run import Result
from .link_rx import Reply

__all__ = ["AnswerSender"]

#: The parts of an answer frame, in order: sync, type, sequence number, length (2), payload, CRC (2).
_SEGMENTS = ("sync", "type", "seq", "len0", "len1", "body", "crc0", "crc1")
#: Cycles after a byte's load before the next can load: a load at cycle c moves the logit address
#: (the memory's output in c + 2) and the CRC (updated in c + 1, in ``tcrc`` from c + 2), and
#: ``nxt`` follows a cycle later, so its new value is there in c + 3.
HOLD = 2


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
        size = result_size(K)
        tx_type, tx_seq, ecode = Signal(8), Signal(8), Signal(8)
        is_result, is_info = Signal(), Signal()
        pred, cyc = Signal(8), Signal(32)
        # Where the next byte is: one of the header's five bytes, the payload, or the CRC's two
        # (one-hot, moved on as a byte is loaded); ``left``: payload bytes still to load.
        seg = Signal(data.StructLayout({n: 1 for n in _SEGMENTS}))
        left = Signal(range(max(size, INFO_SIZE, 1) + 1))
        pos = Signal(4)  # payload byte index, low bits (the fixed fields are < 16 bytes)
        in_logits = Signal()
        tcrc = Signal(16, init=INIT)
        cls, lbyte = Signal(range(K + 1)), Signal(2)
        out_valid, out_byte, crc_pend = Signal(), Signal(8), Signal()
        nxt = Signal(8)  # the next byte, from registers only, a cycle ahead
        hold = Signal(HOLD)  # cycles since the last load, so that ``nxt`` has caught up
        lword = Signal(signed(32))  # the logit read, sign-extended (read a cycle ahead of ``nxt``)
        info = Cat(Const(int.from_bytes(self._info, "little"), 8 * len(self._info)), self.model_id)
        m.d.comb += [self.logit_r.addr.eq(cls), self.tx.valid.eq(out_valid), self.tx.payload.eq(out_byte)]
        m.d.comb += lword.eq(self.logit_r.data)
        m.d.sync += hold.eq(hold >> 1)
        with m.If(self.tx.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(crc_pend):
            m.d.sync += [tcrc.eq(crc16_byte(tcrc, out_byte)), crc_pend.eq(0)]
        with m.If(self.dropped):
            m.d.sync += self.error.eq(1)
        length = Mux(is_result, size, Mux(is_info, INFO_SIZE, 1))
        body = Mux(is_result, Mux(in_logits, lword.word_select(lbyte, 8), Cat(pred, cyc).word_select(pos[:3], 8)),
                   Mux(is_info, info.word_select(pos, 8), ecode))
        sources = {"sync": SYNC, "type": tx_type, "seq": tx_seq, "len0": length[:8], "len1": length[8:16],
                   "body": body, "crc0": tcrc[:8], "crc1": tcrc[8:]}
        m.d.sync += nxt.eq(_one_hot_mux(seg, sources))

        def answer(mt, n, result, info_, code=0):
            m.d.sync += [tx_type.eq(mt), tx_seq.eq(self.seq), is_result.eq(result), is_info.eq(info_),
                         left.eq(n), ecode.eq(code), self.error.eq(mt == MsgType.ERROR)]
            m.next = "SEND"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                # The frame's start, set in every idle cycle (not on a request: short enables).
                m.d.sync += [seg.eq(1), pos.eq(0), in_logits.eq(0), hold.eq(2**HOLD - 1), tcrc.eq(INIT),
                             cls.eq(0), lbyte.eq(0)]
                with m.If(self.result.valid):
                    m.d.sync += [pred.eq(self.result.payload.prediction), cyc.eq(self.result.payload.cycles)]
                    answer(MsgType.RESULT, size, 1, 0)
                with m.Elif(self.reply.valid):
                    mt = self.reply.payload.mtype
                    info_ = mt == MsgType.INFO_REPLY
                    answer(mt, Mux(info_, INFO_SIZE, 1), 0, info_, self.reply.payload.code)
            with m.State("SEND"):
                with m.If(~out_valid & ~hold[0]):
                    m.d.sync += [out_byte.eq(nxt), out_valid.eq(1), hold.eq(2**HOLD - 1),
                                 crc_pend.eq(~seg.sync & ~seg.crc0 & ~seg.crc1)]
                    with m.If(~seg.body):  # the header's bytes and the CRC's, one each
                        m.d.sync += seg.eq(seg.as_value() << 1)
                    with m.Else():
                        m.d.sync += [left.eq(left - 1), pos.eq(pos + 1)]
                        with m.If(left == 1):
                            m.d.sync += [seg.body.eq(0), seg.crc0.eq(1)]
                        with m.If(is_result & (pos == RESULT_HEAD_SIZE - 1)):
                            m.d.sync += in_logits.eq(1)
                        with m.If(in_logits):
                            m.d.sync += lbyte.eq(lbyte + 1)
                            with m.If(lbyte == 3):
                                m.d.sync += cls.eq(cls + 1)
                    with m.If(seg.crc1):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
        one_hot_in_synthesis(fsm)
        return m


def _one_hot_mux(sel, sources: dict):
    """The source whose flag in the one-hot ``sel`` is set (an OR of ANDs: no priority chain)."""
    out = Const(0, 8)
    for name, value in sources.items():
        out = out | Mux(sel[name], value, 0)
    return out
