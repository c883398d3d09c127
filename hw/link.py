"""Device side of the host link (``docs/protocol.md``): frames from the UART to the core and back.

:class:`Link` parses request frames byte by byte, checks length and CRC-16 in hardware, buffers
an INFER image (``n_pixels`` pixels of ``pixel_bits``) and streams it to the accelerator core only
after the CRC proved good, so a damaged frame never reaches the core. It then collects the core's
logits, prediction and cycle count and sends the RESULT frame (logits sign-extended to int32).
INFO is answered from constants; a frame with a good CRC but a bad type, length or delay gets an
ERROR answer; a bad CRC, an oversized length (more than ``1 + n_pixels``) or an inter-byte
timeout drops the partial frame silently. Bytes arriving while a request is being executed or
answered are discarded (the host waits for each answer). For timing, the pixels reach the core
through a 4-entry FIFO (registered, one a cycle while the core is ready) and every answer byte,
its CRC update and the logit memory's output are registered.

:class:`LinkSoC` is UART receiver + :class:`Link` + UART transmitter + a core, with only the two
pins (and ``busy``/``error`` for LEDs): what a board instantiates.

Message codes come from :mod:`csdformer.firmware.protocol` (the one definition).
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Shape, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..firmware.protocol import (CRC_SIZE, HEADER_SIZE, INFO_SIZE, MAX_PAYLOAD, RESULT_HEAD_SIZE, SYNC, ErrorCode,
                                 Info, MsgType, infer_size, result_size)
from .common import FlipOutputBit, HwParamError, check_int, one_hot_in_synthesis, unsigned_bits, validated
from .crc16 import INIT, crc16_byte
from .uart import MIN_DIVISOR, UARTRx, UARTTx

__all__ = ["CORE_ATTRS", "core_params", "core_signature", "check_core", "Link", "LinkSoC"]

CORE_ATTRS = ("pixel_bits", "n_pixels", "num_classes", "logit_width", "T", "lanes", "model_id")
CORE_PORTS = ("image", "logits", "prediction", "delay", "cycles")


def _check_params(*, pixel_bits, n_pixels, num_classes, logit_width, T, lanes, model_id) -> dict:
    """The core attributes, validated against the protocol's field sizes."""
    return {
        "pixel_bits": check_int("pixel_bits", pixel_bits, lo=1, hi=8),
        "n_pixels": check_int("n_pixels", n_pixels, lo=1, hi=MAX_PAYLOAD - 1),
        "num_classes": check_int("num_classes", num_classes, lo=1, hi=255),
        "logit_width": check_int("logit_width", logit_width, lo=1, hi=32),
        "T": check_int("T", T, lo=1, hi=255),
        "lanes": check_int("lanes", lanes, lo=1, hi=255),
        "model_id": check_int("model_id", model_id, lo=0, hi=2**32 - 1),
    }


def _check_timing(timeout, divisor) -> tuple[int, int | None]:
    if divisor is not None:
        divisor = check_int("divisor", divisor, lo=MIN_DIVISOR)
    lo = 20 * divisor if divisor is not None else 1  # two byte times: a normal gap never drops
    return check_int("timeout", timeout, lo=lo), divisor


def core_params(core) -> dict:
    """The attributes a core must have (:data:`CORE_ATTRS`), validated."""
    missing = [a for a in CORE_ATTRS if not hasattr(core, a)]
    if missing:
        raise HwParamError(f"core: {type(core).__name__} lacks attribute(s) {', '.join(missing)}")
    return _check_params(**{a: getattr(core, a) for a in CORE_ATTRS})


def core_signature(*, pixel_bits: int, logit_width: int, num_classes: int, T: int) -> wiring.Signature:
    """The ports of an accelerator core, as the core sees them."""
    return wiring.Signature({
        "image": In(stream.Signature(unsigned(pixel_bits))),
        "logits": Out(stream.Signature(signed(logit_width))),
        "prediction": Out(stream.Signature(unsigned(unsigned_bits(num_classes - 1)))),
        "delay": In(range(T)),
        "cycles": Out(32),
    })


def _same_member(a, b) -> bool:
    if a.flow != b.flow or a.is_port != b.is_port:
        return False
    if a.is_port:
        return Shape.cast(a.shape) == Shape.cast(b.shape)
    ma, mb = a.signature.members, b.signature.members
    return set(ma.keys()) == set(mb.keys()) and all(_same_member(ma[k], mb[k]) for k in ma)


def check_core(core) -> dict:
    """:func:`core_params` plus a check that the core's ports match :func:`core_signature`."""
    params = core_params(core)
    want = core_signature(pixel_bits=params["pixel_bits"], logit_width=params["logit_width"],
                          num_classes=params["num_classes"], T=params["T"]).members
    have = core.signature.members
    for name in CORE_PORTS:
        if name not in have or not _same_member(have[name], want[name]):
            got = have[name] if name in have else "nothing"
            raise HwParamError(f"core: port {name!r} must be {want[name]!r}, got {got!r}")
    return params


SMALL_RAM_BITS = 256


def _small_ram(bits: int) -> dict:
    """Synthesis attributes of a buffer of ``bits``: flip-flops when small (a block RAM on an
    iCE40UP5K, which has 30, is worth more than a few hundred flip-flops)."""
    return {"ram_style": "logic"} if bits <= SMALL_RAM_BITS else {}


class Link(wiring.Component):
    """The protocol engine between a UART (byte streams) and an accelerator core.

    Parameters
    ----------
    pixel_bits, n_pixels, num_classes, logit_width, T, lanes, model_id : int
        The core's attributes (see :data:`CORE_ATTRS`; :meth:`for_core` reads them).
    timeout : int
        Inter-byte timeout in clock cycles: a partial frame with no byte for this long is dropped.
    divisor : int, optional
        The UART's clock cycles per bit; when given, ``timeout`` must be at least two byte times
        (``20 * divisor``) so that back-to-back bytes never time out.

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the UART receiver (always ready).
    tx : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    image, logits, prediction, delay, cycles
        The core's ports, flipped (:func:`core_signature`).
    busy : Out(1)
        High while a frame is being received, executed or answered.
    error : Out(1)
        High from a dropped frame or an ERROR answer until the next good answer.
    """

    @validated
    def __init__(self, *, pixel_bits, n_pixels, num_classes, logit_width, T, lanes, model_id, timeout,
                 divisor=None):
        self._p = _check_params(pixel_bits=pixel_bits, n_pixels=n_pixels, num_classes=num_classes,
                                logit_width=logit_width, T=T, lanes=lanes, model_id=model_id)
        self._timeout, self._divisor = _check_timing(timeout, divisor)
        core = core_signature(pixel_bits=self._p["pixel_bits"], logit_width=self._p["logit_width"],
                              num_classes=self._p["num_classes"], T=self._p["T"])
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            **core.flip().members,
            "busy": Out(1),
            "error": Out(1),
        })

    @classmethod
    def for_core(cls, core, *, timeout: int, divisor: int | None = None) -> "Link":
        """The link for ``core`` (its attributes read by :func:`core_params`)."""
        return cls(**core_params(core), timeout=timeout, divisor=divisor)

    params = property(lambda self: dict(self._p), doc="The core attributes the link was built for.")
    timeout = property(lambda self: self._timeout, doc="Inter-byte timeout, clock cycles.")
    info = property(lambda self: Info(self._p["n_pixels"], self._p["num_classes"], self._p["T"],
                                      self._p["lanes"], self._p["model_id"]), doc="What INFO answers.")

    def elaborate(self, platform):
        m = Module()
        p = self._p
        n, K, T = p["n_pixels"], p["num_classes"], p["T"]
        max_len = infer_size(n)

        m.submodules.image_mem = imem = Memory(shape=unsigned(p["pixel_bits"]), depth=n, init=[],
                                               attrs=_small_ram(p["pixel_bits"] * n))
        m.submodules.logit_mem = lmem = Memory(shape=signed(p["logit_width"]), depth=K, init=[],
                                               attrs=_small_ram(p["logit_width"] * K))
        iw, ir = imem.write_port(), imem.read_port(transparent_for=())
        lw, lr = lmem.write_port(), lmem.read_port(transparent_for=())

        # receive side
        byte, got = self.rx.payload, self.rx.valid
        m.d.comb += self.rx.ready.eq(1)
        mtype, length, count = Signal(8), Signal(16), Signal(16)
        crc, crc_lo, dbyte = Signal(16, init=INIT), Signal(8), Signal(8)
        # The frame's verdict, registered with its last byte (CHECK decides from single bits)
        crc_ok, is_infer, is_info, len_zero, len_max, delay_bad = (Signal() for _ in range(6))
        timer = Signal(range(self._timeout + 1))
        stalled = Signal()
        m.d.comb += stalled.eq(~got & (timer == self._timeout))
        crc_rx = crc16_byte(crc, byte)
        image_frame = (mtype == MsgType.INFER) & (length == max_len)
        with m.If(got):
            m.d.sync += timer.eq(0)
        with m.Elif(timer != self._timeout):
            m.d.sync += timer.eq(timer + 1)

        # execute side: the image buffer read into a small FIFO (registered pixels for the core,
        # one a cycle), the logits collected into their memory
        running, start = Signal(), Signal()
        st_idx = Signal(range(n + 1))
        pending = Signal()  # a pixel read issued last cycle, entering the FIFO now
        fifo = SyncFIFOBuffered(width=p["pixel_bits"], depth=4)
        m.submodules.pixels = ResetInserter(start)(fifo)
        issue = Signal()
        m.d.comb += issue.eq(running & (st_idx != n) & (fifo.level + pending <= 3))
        m.d.sync += pending.eq(issue & ~start)
        with m.If(issue):
            m.d.sync += st_idx.eq(st_idx + 1)
        m.d.comb += [ir.addr.eq(st_idx), ir.en.eq(issue), fifo.w_en.eq(pending), fifo.w_data.eq(ir.data),
                     self.image.valid.eq(running & fifo.r_rdy), self.image.payload.eq(fifo.r_data),
                     fifo.r_en.eq(running & self.image.ready)]
        lcnt = Signal(range(K + 1))
        m.d.comb += [lw.addr.eq(lcnt), lw.data.eq(self.logits.payload)]

        # answer side: one byte register towards the UART; the byte's CRC update and the logit
        # memory's output are registered too (a byte is loaded at most every other cycle)
        tx_type, tx_len, ecode = Signal(8), Signal(16), Signal(8)
        pred, cyc = Signal(8), Signal(32)
        tx_idx, tx_end, tx_last = Signal(16), Signal(16), Signal(16)  # byte index, body end, last byte
        tcrc = Signal(16, init=INIT)
        cls, lbyte = Signal(range(K + 1)), Signal(2)
        out_valid, out_byte, crc_pend = Signal(), Signal(8), Signal()
        lword = Signal(signed(32))
        info = Const(int.from_bytes(self.info.pack(), "little"), 8 * INFO_SIZE)
        m.d.comb += [lr.addr.eq(cls), self.tx.valid.eq(out_valid), self.tx.payload.eq(out_byte)]
        m.d.sync += lword.eq(lr.data)
        with m.If(self.tx.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(crc_pend):
            m.d.sync += [tcrc.eq(crc16_byte(tcrc, out_byte)), crc_pend.eq(0)]

        def answer(mt, size, code=0):
            m.d.sync += [tx_type.eq(mt), tx_len.eq(size), tx_end.eq(HEADER_SIZE + size),
                         tx_last.eq(HEADER_SIZE + size + CRC_SIZE - 1), ecode.eq(code), tx_idx.eq(0),
                         tcrc.eq(INIT), cls.eq(0), lbyte.eq(0), self.error.eq(mt == MsgType.ERROR)]
            m.next = "SEND"

        def drop():
            m.d.sync += self.error.eq(1)
            m.next = "HUNT"

        def header_state(nxt, *stmts):
            with m.If(got):
                m.d.sync += [crc.eq(crc_rx), *stmts]
                m.next = nxt
            with m.Elif(stalled):
                drop()

        with m.FSM() as fsm:
            with m.State("HUNT"):
                with m.If(got & (byte == SYNC)):
                    m.d.sync += crc.eq(INIT)
                    m.next = "TYPE"
            with m.State("TYPE"):
                header_state("LEN0", mtype.eq(byte))
            with m.State("LEN0"):
                header_state("LEN1", length.eq(byte))
            with m.State("LEN1"):
                new_len = Cat(length[:8], byte)
                with m.If(got):
                    m.d.sync += [crc.eq(crc_rx), length.eq(new_len), count.eq(0)]
                    with m.If(new_len > max_len):  # cannot be a request: a false sync
                        drop()
                    with m.Elif(new_len == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                with m.Elif(stalled):
                    drop()
            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.sync += [crc.eq(crc_rx), count.eq(count + 1)]
                    with m.If(count == 0):
                        m.d.sync += dbyte.eq(byte)
                    with m.Elif(image_frame):
                        m.d.comb += [iw.addr.eq(count - 1), iw.data.eq(byte), iw.en.eq(1)]
                    with m.If(count == length - 1):
                        m.next = "CRC0"
                with m.Elif(stalled):
                    drop()
            with m.State("CRC0"):
                with m.If(got):
                    m.d.sync += crc_lo.eq(byte)
                    m.next = "CRC1"
                with m.Elif(stalled):
                    drop()
            with m.State("CRC1"):
                with m.If(got):
                    m.d.sync += [crc_ok.eq(Cat(crc_lo, byte) == crc), is_infer.eq(mtype == MsgType.INFER),
                                 is_info.eq(mtype == MsgType.INFO), len_zero.eq(length == 0),
                                 len_max.eq(length == max_len), delay_bad.eq(dbyte >= T)]
                    m.next = "CHECK"
                with m.Elif(stalled):
                    drop()
            with m.State("CHECK"):  # the frame's verdict a cycle after its last byte (timing)
                with m.If(~crc_ok):
                    drop()
                with m.Elif(~is_infer & ~is_info):
                    answer(MsgType.ERROR, 1, ErrorCode.UNKNOWN_TYPE)
                with m.Elif(is_info):
                    with m.If(~len_zero):
                        answer(MsgType.ERROR, 1, ErrorCode.BAD_LENGTH)
                    with m.Else():
                        answer(MsgType.INFO_REPLY, INFO_SIZE)
                with m.Elif(~len_max):
                    answer(MsgType.ERROR, 1, ErrorCode.BAD_LENGTH)
                with m.Elif(delay_bad):
                    answer(MsgType.ERROR, 1, ErrorCode.BAD_DELAY)
                with m.Else():
                    m.d.comb += start.eq(1)
                    m.d.sync += [self.delay.eq(dbyte), st_idx.eq(0), lcnt.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [running.eq(1), self.logits.ready.eq(1), self.prediction.ready.eq(1)]
                with m.If(self.logits.valid & (lcnt != K)):
                    m.d.comb += lw.en.eq(1)
                    m.d.sync += lcnt.eq(lcnt + 1)
                with m.If(self.prediction.valid):
                    m.d.sync += [pred.eq(self.prediction.payload), cyc.eq(self.cycles)]
                    answer(MsgType.RESULT, result_size(K))
            with m.State("SEND"):
                with m.If(~out_valid & ~crc_pend):
                    m.d.sync += [out_byte.eq(self._tx_byte(m, tx_idx, tx_type, tx_len, tx_end, tcrc, pred, cyc,
                                                           lword, lbyte, info, ecode)),
                                 out_valid.eq(1), tx_idx.eq(tx_idx + 1)]
                    with m.If((tx_idx != 0) & (tx_idx < tx_end)):
                        m.d.sync += crc_pend.eq(1)
                    with m.If((tx_type == MsgType.RESULT) & (tx_idx >= HEADER_SIZE + RESULT_HEAD_SIZE)
                              & (tx_idx < tx_end)):
                        m.d.sync += lbyte.eq(lbyte + 1)
                        with m.If(lbyte == 3):
                            m.d.sync += cls.eq(cls + 1)
                    with m.If(tx_idx == tx_last):
                        m.next = "HUNT"
            m.d.comb += self.busy.eq(~fsm.ongoing("HUNT"))
        one_hot_in_synthesis(fsm)
        return m

    @staticmethod
    def _tx_byte(m, idx, mtype, length, end, crc, pred, cyc, lword, lbyte, info, ecode):
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
            m.d.comb += byte.eq(length[:8])
        with m.Elif(idx == 3):
            m.d.comb += byte.eq(length[8:])
        with m.Elif(idx < end):
            m.d.comb += byte.eq(body)
        with m.Elif(idx == end):
            m.d.comb += byte.eq(crc[:8])
        with m.Else():
            m.d.comb += byte.eq(crc[8:])
        return byte


class LinkSoC(wiring.Component):
    """UART + :class:`Link` + an accelerator core: the whole device behind two pins.

    Parameters
    ----------
    core : wiring.Component
        Has the attributes :data:`CORE_ATTRS` and the ports of :func:`core_signature`.
    divisor : int
        Clock cycles per UART bit (``clock_hz // baud``, >= 4).
    timeout : int
        Inter-byte timeout of a partial request frame, clock cycles (>= ``20 * divisor``).
    corrupt_tx : dict, optional
        Test hook: ``{"bit": b, "beat": k}`` inverts bit ``b`` of the ``k``-th byte the link sends
        (:class:`~csdformer.hw.common.FlipOutputBit`), so a bench can prove it sees a bad answer.

    Attributes
    ----------
    rx : In(1)
        UART receive pin (idle high).
    tx : Out(1)
        UART transmit pin (idle high).
    busy, error : Out(1)
        Status for LEDs (see :class:`Link`).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)
    error: Out(1)

    @validated
    def __init__(self, core, *, divisor: int, timeout: int, corrupt_tx: dict | None = None):
        self._p = check_core(core)
        self._timeout, self._divisor = _check_timing(timeout, divisor)
        if corrupt_tx is not None and not isinstance(corrupt_tx, dict):
            raise HwParamError(f"corrupt_tx: must be a dict {{'bit': b, 'beat': k}}, got {corrupt_tx!r}")
        self._core = core
        self._corrupt = corrupt_tx
        super().__init__()

    divisor = property(lambda self: self._divisor, doc="Clock cycles per UART bit.")
    timeout = property(lambda self: self._timeout, doc="Inter-byte timeout, clock cycles.")
    params = property(lambda self: dict(self._p), doc="The core's attributes.")

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(divisor=self._divisor)
        m.submodules.uart_tx = utx = UARTTx(divisor=self._divisor)
        link = Link(**self._p, timeout=self._timeout, divisor=self._divisor)
        if self._corrupt is not None:
            link = FlipOutputBit(link, stream="tx", **self._corrupt)
        m.submodules.link = link
        m.submodules.core = core = self._core
        wiring.connect(m, urx.data, link.rx)
        wiring.connect(m, link.tx, utx.data)
        for name in ("image", "logits", "prediction"):
            wiring.connect(m, getattr(link, name), getattr(core, name))
        m.d.comb += [core.delay.eq(link.delay), link.cycles.eq(core.cycles)]
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), self.busy.eq(link.busy), self.error.eq(link.error)]
        return m
