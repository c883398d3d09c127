"""Execute side of the host link: one inference on the accelerator core.

:class:`ImageFeeder` streams the image buffer to the core through a 4-entry FIFO (registered
pixels, one a cycle while the core is ready); :class:`Executor` starts it for a good INFER frame,
collects the core's logits into the logit memory and hands the prediction and cycle count to the
answer (:data:`Result`).
"""

from amaranth.hdl import Module, ResetInserter, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .common import check_int, one_hot_in_synthesis, unsigned_bits, validated

__all__ = ["core_signature", "Result", "ImageFeeder", "Executor"]


def core_signature(*, pixel_bits: int, logit_width: int, num_classes: int, T: int) -> wiring.Signature:
    """The ports of an accelerator core, as the core sees them."""
    return wiring.Signature({
        "image": In(stream.Signature(unsigned(pixel_bits))),
        "logits": Out(stream.Signature(signed(logit_width))),
        "prediction": Out(stream.Signature(unsigned(unsigned_bits(num_classes - 1)))),
        "delay": In(range(T)),
        "cycles": Out(32),
    })


#: What the core answered besides its logits (those are in the logit memory).
Result = data.StructLayout({"prediction": 8, "cycles": 32})


class ImageFeeder(wiring.Component):
    """The image buffer, pixel 0 first, to the core's ``image`` stream.

    A read is issued while ``run`` and the FIFO (with the read in flight) has room; the memory's
    output enters the FIFO the next cycle, so the core sees registered pixels.

    Parameters
    ----------
    pixel_bits, n_pixels : int
        The image's pixel width and count.

    Attributes
    ----------
    start : In(1)
        Restart at pixel 0 with the FIFO emptied.
    run : In(1)
        Feeding: reads issued, the stream valid.
    image_r : In(ReadPort.Signature(...))
        The image buffer's read port (not transparent).
    image : Out(stream.Signature(unsigned(pixel_bits)))
        The pixels, in order.
    """

    DEPTH = 4  # FIFO entries

    @validated
    def __init__(self, *, pixel_bits, n_pixels):
        self._bits = check_int("pixel_bits", pixel_bits, lo=1)
        self._n = check_int("n_pixels", n_pixels, lo=1)
        super().__init__({
            "start": In(1),
            "run": In(1),
            "image_r": In(ReadPort.Signature(addr_width=ceil_log2(self._n), shape=unsigned(self._bits))),
            "image": Out(stream.Signature(unsigned(self._bits))),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._n
        fifo = SyncFIFOBuffered(width=self._bits, depth=self.DEPTH)
        m.submodules.pixels = ResetInserter(self.start)(fifo)
        idx = Signal(range(n + 1))
        pending = Signal()  # a pixel read issued last cycle, entering the FIFO now
        issue = Signal()
        m.d.comb += issue.eq(self.run & (idx != n) & (fifo.level + pending <= self.DEPTH - 1))
        m.d.sync += pending.eq(issue & ~self.start)
        with m.If(issue):
            m.d.sync += idx.eq(idx + 1)
        with m.If(self.start):
            m.d.sync += idx.eq(0)
        m.d.comb += [self.image_r.addr.eq(idx), self.image_r.en.eq(issue), fifo.w_en.eq(pending),
                     fifo.w_data.eq(self.image_r.data), self.image.valid.eq(self.run & fifo.r_rdy),
                     self.image.payload.eq(fifo.r_data), fifo.r_en.eq(self.run & self.image.ready)]
        return m


class Executor(wiring.Component):
    """One inference: on ``infer`` the delay is set and the image fed (RUN) until the core's
    prediction, its logits written to the logit memory as they come (the first ``num_classes``).

    Parameters
    ----------
    pixel_bits, n_pixels, num_classes, logit_width, T : int
        The core's attributes (see :class:`~csdformer.hw.link.Link`).

    Attributes
    ----------
    infer : In(stream.Signature(range(T), always_ready=True))
        Start an inference with this delay (the image is in the buffer).
    image_r : In(ReadPort.Signature(...))
        The image buffer's read port.
    logit_w : In(WritePort.Signature(...))
        The logit memory's write port: logit ``c`` at address ``c``.
    result : Out(stream.Signature(Result, always_ready=True))
        The prediction and cycle count, valid for one cycle at the end (the logits are written).
    image, logits, prediction, delay, cycles
        The core's ports, flipped (:func:`core_signature`).
    """

    @validated
    def __init__(self, *, pixel_bits, n_pixels, num_classes, logit_width, T):
        self._px = dict(pixel_bits=pixel_bits, n_pixels=n_pixels)
        self._K = check_int("num_classes", num_classes, lo=1)
        core = core_signature(pixel_bits=pixel_bits, logit_width=logit_width, num_classes=self._K, T=T)
        super().__init__({
            "infer": In(stream.Signature(range(T), always_ready=True)),
            "image_r": In(ReadPort.Signature(addr_width=ceil_log2(n_pixels), shape=unsigned(pixel_bits))),
            "logit_w": In(WritePort.Signature(addr_width=ceil_log2(self._K), shape=signed(logit_width))),
            "result": Out(stream.Signature(Result, always_ready=True)),
            **core.flip().members,
        })

    def elaborate(self, platform):
        m = Module()
        K = self._K
        m.submodules.feeder = feeder = ImageFeeder(**self._px)
        wiring.connect(m, wiring.flipped(self.image_r), feeder.image_r)
        wiring.connect(m, feeder.image, wiring.flipped(self.image))
        lcnt = Signal(range(K + 1))
        m.d.comb += [self.logit_w.addr.eq(lcnt), self.logit_w.data.eq(self.logits.payload),
                     self.result.payload.prediction.eq(self.prediction.payload),
                     self.result.payload.cycles.eq(self.cycles)]
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.infer.valid):
                    m.d.comb += feeder.start.eq(1)
                    m.d.sync += [self.delay.eq(self.infer.payload), lcnt.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [feeder.run.eq(1), self.logits.ready.eq(1), self.prediction.ready.eq(1)]
                with m.If(self.logits.valid & (lcnt != K)):
                    m.d.comb += self.logit_w.en.eq(1)
                    m.d.sync += lcnt.eq(lcnt + 1)
                with m.If(self.prediction.valid):
                    m.d.comb += self.result.valid.eq(1)
                    m.next = "IDLE"
        one_hot_in_synthesis(fsm)
        return m
