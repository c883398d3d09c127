"""The accelerator with a memory model in the loop: what the whole-network benches simulate.

:class:`Testbed` is the :class:`~csdformer.hw.accelerator.Accelerator` of a program plus the
backend that holds its flash image (:func:`csdformer.hw.flash_image.build_image`):

- ``"rom"``: :class:`~csdformer.hw.weightstream.RomStream`, a byte a cycle (fast; the same
  loader, buffers and sequencing, with the simplest timing);
- ``"flash"``: the board's path, :class:`~csdformer.hw.qspi.QspiFlashReader` driving the
  behavioural JEDEC flash :class:`~csdformer.sim.flash_model.SpiFlashModel`, over QSPI pins.

It has the accelerator's ports but ``bus`` (inside), so the benches drive it as they drove the
accelerator; :attr:`timing` is the backend's :class:`~csdformer.hw.weightstream.StreamTiming`,
which the cycle model takes.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import connect, flipped

from ..hw.accelerator import Accelerator
from ..hw.common import HwParamError
from ..hw.flash_image import build_image
from ..hw.weightstream import RomStream

__all__ = ["Testbed", "BACKENDS"]

BACKENDS = ("rom", "flash")


class Testbed(wiring.Component):
    """``program``'s accelerator with its image in ``backend`` (module docstring). ``image``: the
    flash image to hold (default: the program's own); ``divisor``, ``lines``, ``clock_hz``: the QSPI
    reader's; ``byte_cycles``: the on-chip backend's."""

    __test__ = False  # not a pytest test class

    def __init__(self, program, *, backend: str = "rom", image: bytes | None = None, divisor: int = 1,
                 lines: int = 4, byte_cycles: int = 1, clock_hz: float = 50e6):
        if backend not in BACKENDS:
            raise HwParamError(f"backend: {backend!r}; one of {', '.join(BACKENDS)}")
        self.program = program
        self.flash_image = build_image(program) if image is None else bytes(image)
        self.accelerator = Accelerator(program)
        self.backend = backend
        if backend == "rom":
            self.store = RomStream(self.flash_image, byte_cycles=byte_cycles)
            self.reader = None
        else:
            from ..hw.qspi import QspiFlashReader
            from .flash_model import SpiFlashModel

            self.reader = QspiFlashReader(clock_hz=clock_hz, divisor=divisor, lines=lines)
            # A short wake-up time keeps simulations short; the reader waits its own (longer) one.
            self.store = SpiFlashModel(self.flash_image, t_res_cycles=min(16, self.reader.init_cycles))
        members = {k: v for k, v in self.accelerator.signature.members.items() if k != "bus"}
        super().__init__(members)
        for name in ("pixel_bits", "n_pixels", "num_classes", "logit_width", "class_bits", "lanes", "T"):
            setattr(self, name, getattr(self.accelerator, name))

    @property
    def timing(self):
        return (self.reader or self.store).timing

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = acc = self.accelerator
        m.submodules.store = store = self.store
        if self.reader is None:
            connect(m, acc.bus, store.bus)
        else:
            m.submodules.reader = reader = self.reader
            connect(m, acc.bus, reader.bus)
            connect(m, reader.pins, store.pins)
        for name in self.signature.members:
            inner, outer = getattr(acc, name), getattr(self, name)
            if self.signature.members[name].is_port:
                if self.signature.members[name].flow == wiring.In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
            else:
                connect(m, flipped(outer), inner)
        return m
