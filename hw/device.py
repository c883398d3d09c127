"""The device a board carries: the UART link, the accelerator and the flash reader, composed.

:class:`FlashDevice` is what :class:`~csdformer.boards.soc.BoardTop` wraps: the host talks to it
through ``rx``/``tx`` (:class:`~csdformer.hw.link.LinkSoC`), and the accelerator reads its model
(:mod:`csdformer.hw.flash_image`, at byte ``base`` of the flash) through a
:class:`~csdformer.hw.qspi.QspiFlashReader` on the ``flash`` pins. INFO answers the model id the
loader read from the image (0 until it is loaded, or when the image is not for this fabric).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .accelerator import Accelerator
from .link import LinkSoC
from .qspi import QspiFlashReader, QspiPins

__all__ = ["FlashDevice"]


class FlashDevice(wiring.Component):
    """``program``'s accelerator behind the UART link, its model in the flash from byte ``base``.

    Ports: ``rx``, ``tx`` (UART pins), ``busy``, ``error`` (a link error, or a flash image that is
    not for this fabric), ``flash`` (:class:`QspiPins`). ``divisor``/``timeout``: the link's;
    ``clock_hz``, ``flash_divisor``, ``lines``: the reader's; ``poison``, ``outreg``: the accelerator's."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)
    error: Out(1)
    flash: Out(QspiPins())

    def __init__(self, program, *, divisor: int, timeout: int, clock_hz: float, base: int = 0,
                 flash_divisor: int = 1, lines: int = 4, poison: bool = True, outreg: bool = False):
        self.accelerator = Accelerator(program, base=base, poison=poison, outreg=outreg)
        self.reader = QspiFlashReader(clock_hz=clock_hz, divisor=flash_divisor, lines=lines)
        self.soc = LinkSoC(self.accelerator, divisor=divisor, timeout=timeout)
        super().__init__()

    @property
    def timing(self):
        """The flash's :class:`~csdformer.hw.weightstream.StreamTiming` (the cycle model's)."""
        return self.reader.timing

    def elaborate(self, platform):
        m = Module()
        m.submodules.soc = soc = self.soc
        m.submodules.reader = reader = self.reader
        connect(m, self.accelerator.bus, reader.bus)
        connect(m, reader.pins, flipped(self.flash))
        m.d.comb += [soc.rx.eq(self.rx), self.tx.eq(soc.tx), self.busy.eq(soc.busy),
                     self.error.eq(soc.error | self.accelerator.error)]
        return m
