"""The device a board carries: the UART link, the accelerator and the flash reader, composed.

:class:`FlashDevice` is what :class:`~csdformer.boards.soc.BoardTop` wraps: the host talks to it
through ``rx``/``tx`` (:class:`~csdformer.hw.link.LinkSoC`), and the accelerator reads its model
(:mod:`csdformer.hw.flash_image`, at byte ``base`` of the flash) through a
:class:`~csdformer.hw.qspi.QspiFlashReader` on the ``flash`` pins, or, with ``sdram``, from an
SDRAM the model is copied into after reset (:class:`~csdformer.hw.sdram.SdramStream` on the
``sdram`` pins, their registers the board's I/O cells). INFO answers the model id the loader read
from the image (0 until it is loaded, or when the image is not for this fabric).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .accelerator import Accelerator
from .link import LinkSoC
from .qspi import QspiFlashReader, QspiPins
from .sdram import SdramStream

__all__ = ["FlashDevice"]


class FlashDevice(wiring.Component):
    """``program``'s accelerator behind the UART link, its model in the flash from byte ``base``.

    Ports: ``rx``, ``tx`` (UART pins), ``busy``, ``error`` (a link error, or a flash image that is
    not for this fabric), ``flash`` (:class:`QspiPins`), with ``sdram`` also ``sdram``
    (:class:`~csdformer.hw.sdram.SdramPins`). ``divisor``/``timeout``: the link's; ``clock_hz``,
    ``flash_divisor``, ``lines``: the reader's; ``poison``, ``outreg``: the accelerator's;
    ``sdram``: the SDRAM part to copy the model into (None: the loader reads the flash itself),
    ``flash_bytes``: the flash's size (the most the copy takes from ``base`` on)."""

    def __init__(self, program, *, divisor: int, timeout: int, clock_hz: float, base: int = 0,
                 flash_divisor: int = 1, lines: int = 4, poison: bool = True, outreg: bool = False,
                 sdram=None, flash_bytes: int = 16 << 20):
        self.accelerator = Accelerator(program, base=base, poison=poison, outreg=outreg)
        self.reader = QspiFlashReader(clock_hz=clock_hz, divisor=flash_divisor, lines=lines)
        self.sdram_stream = None if sdram is None else SdramStream(
            clock_hz=clock_hz, copy_base=base, part=sdram, max_bytes=flash_bytes - base, io_registers=True)
        self.soc = LinkSoC(self.accelerator, divisor=divisor, timeout=timeout)
        ports = {"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1), "error": Out(1), "flash": Out(QspiPins())}
        if self.sdram_stream is not None:
            ports["sdram"] = Out(self.sdram_stream.pins.signature)
        super().__init__(ports)

    @property
    def timing(self):
        """The weight stream's :class:`~csdformer.hw.weightstream.StreamTiming` (the cycle model's):
        the SDRAM's, else the flash's."""
        return (self.sdram_stream or self.reader).timing

    def elaborate(self, platform):
        m = Module()
        m.submodules.soc = soc = self.soc
        m.submodules.reader = reader = self.reader
        if self.sdram_stream is None:
            connect(m, self.accelerator.bus, reader.bus)
        else:
            m.submodules.sdram = sdram = self.sdram_stream
            connect(m, sdram.source, reader.bus)
            connect(m, self.accelerator.bus, sdram.bus)
            connect(m, sdram.pins, flipped(self.sdram))
        connect(m, reader.pins, flipped(self.flash))
        m.d.comb += [soc.rx.eq(self.rx), self.tx.eq(soc.tx), self.busy.eq(soc.busy),
                     self.error.eq(soc.error | self.accelerator.error)]
        return m
