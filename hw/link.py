"""Device side of the host link (``docs/protocol.md``): frames from the UART to the core and back.

:class:`Link` parses request frames byte by byte, checks length and CRC-16 in hardware, buffers
an INFER image (``n_pixels`` pixels of ``pixel_bits``) and streams it to the accelerator core only
after the CRC proved good, so a damaged frame never reaches the core. It then collects the core's
logits, prediction and cycle count and sends the RESULT frame (logits sign-extended to int32).
INFO is answered from constants and the core's model id (a constant, or a port read when INFO is
answered); every answer carries its request's sequence number; a frame with a good CRC but a bad
type, length or delay gets an ERROR answer; a bad CRC, an oversized length (more than ``1 + n_pixels``) or an inter-byte
timeout drops the partial frame silently. Bytes arriving while a request is being executed or
answered are discarded (the host waits for each answer). For timing, the pixels reach the core
through a 4-entry FIFO (registered, one a cycle while the core is ready) and every answer byte,
its CRC update and the logit memory's output are registered.

It is composed of three units around its two buffers (``image_mem``, ``logit_mem``):
:class:`~csdformer.hw.link_rx.FrameReceiver` (bytes → verdict, pixels into the image buffer),
:class:`~csdformer.hw.link_run.Executor` (the image fed to the core, its logits collected) and
:class:`~csdformer.hw.link_tx.AnswerSender` (the answer frame, logits read back).

:class:`LinkSoC` is UART receiver + :class:`Link` + UART transmitter + a core, with only the two
pins (and ``busy``/``error`` for LEDs): what a board instantiates.

Message codes come from :mod:`csdformer.firmware.protocol` (the one definition).
"""

from amaranth.hdl import Module, Shape, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..firmware.protocol import INFO_SIZE, MAX_PAYLOAD, Info
from .common import FlipOutputBit, HwParamError, check_int, validated
from .link_run import Executor, core_signature
from .link_rx import FrameReceiver
from .link_tx import AnswerSender
from .uart import MIN_DIVISOR, UARTRx, UARTTx

__all__ = ["CORE_ATTRS", "core_params", "core_signature", "check_core", "Link", "LinkSoC"]

CORE_ATTRS = ("pixel_bits", "n_pixels", "num_classes", "logit_width", "T", "lanes", "model_id")
CORE_PORTS = ("image", "logits", "prediction", "delay", "cycles")


def _check_params(*, pixel_bits, n_pixels, num_classes, logit_width, T, lanes, model_id) -> dict:
    """The core attributes, validated against the protocol's field sizes (``model_id`` ``None``:
    the core has a ``model_id`` port)."""
    return {
        "pixel_bits": check_int("pixel_bits", pixel_bits, lo=1, hi=8),
        "n_pixels": check_int("n_pixels", n_pixels, lo=1, hi=MAX_PAYLOAD - 1),
        "num_classes": check_int("num_classes", num_classes, lo=1, hi=255),
        "logit_width": check_int("logit_width", logit_width, lo=1, hi=32),
        "T": check_int("T", T, lo=1, hi=255),
        "lanes": check_int("lanes", lanes, lo=1, hi=255),
        "model_id": None if model_id is None else check_int("model_id", model_id, lo=0, hi=2**32 - 1),
    }


def _check_timing(timeout, divisor) -> tuple[int, int | None]:
    if divisor is not None:
        divisor = check_int("divisor", divisor, lo=MIN_DIVISOR)
    lo = 20 * divisor if divisor is not None else 1  # two byte times: a normal gap never drops
    return check_int("timeout", timeout, lo=lo), divisor


MODEL_ID_PORT = Out(32)


def core_params(core) -> dict:
    """The attributes a core must have (:data:`CORE_ATTRS`), validated. ``model_id`` is an int
    (a constant of the bitstream) or, when the core's signature has a ``model_id`` member, that
    port (:data:`MODEL_ID_PORT`: the core reads its model id at run time, e.g. from flash); then
    ``params["model_id"]`` is ``None``."""
    missing = [a for a in CORE_ATTRS if not hasattr(core, a)]
    if missing:
        raise HwParamError(f"core: {type(core).__name__} lacks attribute(s) {', '.join(missing)}")
    attrs = {a: getattr(core, a) for a in CORE_ATTRS}
    members = getattr(getattr(core, "signature", None), "members", {})
    if "model_id" in members:
        member = members["model_id"]
        if not _same_member(member, MODEL_ID_PORT):
            raise HwParamError(f"core: port 'model_id' must be {MODEL_ID_PORT!r}, got {member!r}")
        attrs["model_id"] = None
    return _check_params(**attrs)


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


SMALL_RAM_BITS = 64


def _small_ram(bits: int) -> dict:
    """Synthesis attributes of a buffer of ``bits``: flip-flops when tiny. A block RAM is 1 of
    the iCE40UP5K's 30 (3.3 %); a buffer of ``bits`` flip-flops costs ``bits`` of its 5280 logic
    cells and a read multiplexer besides, more than 3.3 % from about 100 bits on (the logits,
    10 × 19 bits, took 190 flip-flops and about 60 LUTs)."""
    return {"ram_style": "logic"} if bits <= SMALL_RAM_BITS else {}


class Link(wiring.Component):
    """The protocol engine between a UART (byte streams) and an accelerator core.

    Parameters
    ----------
    pixel_bits, n_pixels, num_classes, logit_width, T, lanes : int
        The core's attributes (see :data:`CORE_ATTRS`; :meth:`for_core` reads them).
    model_id : int or None
        The model id INFO answers; ``None``: read from the ``model_id`` port when INFO is answered.
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
    model_id : In(32)
        Only when built with ``model_id=None``: the core's model id.
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
            **({"model_id": In(32)} if self._p["model_id"] is None else {}),
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
                                      self._p["lanes"], self._p["model_id"] or 0),
                    doc="What INFO answers (model id 0 when it comes from the port).")

    def elaborate(self, platform):
        m = Module()
        p = self._p
        n, K = p["n_pixels"], p["num_classes"]
        m.submodules.image_mem = imem = Memory(shape=unsigned(p["pixel_bits"]), depth=n, init=[],
                                               attrs=_small_ram(p["pixel_bits"] * n))
        m.submodules.logit_mem = lmem = Memory(shape=signed(p["logit_width"]), depth=K, init=[],
                                               attrs=_small_ram(p["logit_width"] * K))
        m.submodules.receiver = rx = FrameReceiver(pixel_bits=p["pixel_bits"], n_pixels=n, T=p["T"],
                                                   timeout=self._timeout)
        m.submodules.executor = run = Executor(pixel_bits=p["pixel_bits"], n_pixels=n, num_classes=K,
                                               logit_width=p["logit_width"], T=p["T"])
        m.submodules.sender = tx = AnswerSender(num_classes=K, logit_width=p["logit_width"],
                                                info=self.info.pack()[:INFO_SIZE - 4])

        wiring.connect(m, wiring.flipped(self.rx), rx.rx)
        wiring.connect(m, rx.image_w, imem.write_port())
        wiring.connect(m, rx.infer, run.infer)
        wiring.connect(m, rx.reply, tx.reply)
        wiring.connect(m, run.image_r, imem.read_port(transparent_for=()))
        for name in ("image", "logits", "prediction"):
            wiring.connect(m, getattr(run, name), wiring.flipped(getattr(self, name)))
        wiring.connect(m, run.logit_w, lmem.write_port())
        wiring.connect(m, run.result, tx.result)
        wiring.connect(m, tx.logit_r, lmem.read_port(transparent_for=()))
        wiring.connect(m, tx.tx, wiring.flipped(self.tx))
        m.d.comb += tx.model_id.eq(self.model_id if p["model_id"] is None else p["model_id"])
        m.d.comb += [tx.seq.eq(rx.seq), self.delay.eq(run.delay), run.cycles.eq(self.cycles), rx.release.eq(tx.done),
                     tx.dropped.eq(rx.dropped), self.busy.eq(rx.busy), self.error.eq(tx.error)]
        return m


class LinkSoC(wiring.Component):
    """UART + :class:`Link` + an accelerator core: the whole device behind two pins.

    Parameters
    ----------
    core : wiring.Component
        Has the attributes :data:`CORE_ATTRS` and the ports of :func:`core_signature`; its
        ``model_id`` is an int or an ``Out(32)`` port (see :func:`core_params`).
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
        if self._p["model_id"] is None:
            m.d.comb += link.model_id.eq(core.model_id)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), self.busy.eq(link.busy), self.error.eq(link.error)]
        return m
