"""The accelerator with a memory model in the loop: what the whole-network benches simulate.

:class:`Testbed` is the :class:`~csdformer.hw.accelerator.Accelerator` of a program plus the
backend that holds its flash image (:func:`csdformer.hw.flash_image.build_image`):

- ``"rom"``: :class:`~csdformer.hw.weightstream.RomStream`, a byte a cycle (fast; the same
  loader, buffers and sequencing, with the simplest timing);
- ``"flash"``: the board's path, :class:`~csdformer.hw.qspi.QspiFlashReader` driving the
  behavioural JEDEC flash :class:`~csdformer.sim.flash_model.SpiFlashModel`, over QSPI pins;
- ``"sdram"``: the ULX3S's path for a streamed model, :class:`~csdformer.hw.sdram.SdramStream`
  copying the image from that flash into the timing-checking SDRAM model
  :class:`~csdformer.sim.sdram_model.SdramModel` after reset and serving the loader from it; built
  as the board builds it, its pin registers outside it
  (:class:`~csdformer.sim.sdram_model.PinRegisters` standing in for the FPGA's I/O cells).

``memory_error`` is the memory model's sticky error (the flash's line driven from both sides, an
SDRAM timing violation; 0 for ``"rom"``): the whole-network bench fails an image that sets it.

It has the accelerator's ports but ``bus`` (inside), so the benches drive it as they drove the
accelerator; :attr:`timing` is the backend's :class:`~csdformer.hw.weightstream.StreamTiming`,
which the cycle model takes.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out, connect, flipped

from ..hw.accelerator import Accelerator
from ..hw.common import HwParamError
from ..hw.flash_image import build_image
from ..hw.weightstream import RomStream

__all__ = ["Testbed", "BACKENDS"]

BACKENDS = ("rom", "flash", "sdram")


class Testbed(wiring.Component):
    """``program``'s accelerator with its image in ``backend`` (module docstring). ``image``: the
    flash image to hold (default: the program's own); ``divisor``, ``lines``, ``clock_hz``: the QSPI
    reader's (and the SDRAM controller's clock); ``byte_cycles``: the on-chip backend's;
    ``sdram_part``: the part the SDRAM controller is built for (default the ULX3S's; the model is
    always that part); ``outreg``: the accelerator as a board with block-RAM output registers builds
    it (:class:`~csdformer.hw.accelerator.Accelerator`'s)."""

    __test__ = False  # not a pytest test class

    def __init__(self, program, *, backend: str = "rom", image: bytes | None = None, divisor: int = 1,
                 lines: int = 4, byte_cycles: int = 1, clock_hz: float = 50e6, sdram_part=None,
                 outreg: bool = False):
        if backend not in BACKENDS:
            raise HwParamError(f"backend: {backend!r}; one of {', '.join(BACKENDS)}")
        self.program = program
        self.flash_image = build_image(program) if image is None else bytes(image)
        self.accelerator = Accelerator(program, outreg=outreg)
        self.backend = backend
        self.sdram = self.sdram_model = None
        if backend == "rom":
            self.store = RomStream(self.flash_image, byte_cycles=byte_cycles)
            self.reader = None
        else:
            from ..hw.qspi import QspiFlashReader
            from .flash_model import SpiFlashModel

            self.reader = QspiFlashReader(clock_hz=clock_hz, divisor=divisor, lines=lines)
            # A short wake-up time keeps simulations short; the reader waits its own (longer) one.
            self.store = SpiFlashModel(self.flash_image, t_res_cycles=min(16, self.reader.init_cycles))
        if backend == "sdram":
            from ..hw.sdram import SdramStream
            from .sdram_model import PinRegisters, SdramModel

            self.sdram = SdramStream(clock_hz=clock_hz, io_registers=True, **({"part": sdram_part} if sdram_part else {}))
            self.sdram_io = PinRegisters(self.sdram.row_bits, self.sdram.bank_bits)
            words = 1 << max(1, (len(self.flash_image) // 2).bit_length())  # the image's words, and more
            self.sdram_model = SdramModel(words=words, clock_hz=clock_hz)
        members = {k: v for k, v in self.accelerator.signature.members.items() if k != "bus"}
        super().__init__({**members, "memory_error": Out(1)})
        for name in ("pixel_bits", "n_pixels", "num_classes", "logit_width", "class_bits", "lanes", "T"):
            setattr(self, name, getattr(self.accelerator, name))

    @property
    def start_cycles(self) -> int:
        """An upper bound of the cycles the backend takes after reset before it serves reads: the
        SDRAM's power-up and its copy of the image from flash (the flash reader's latency and
        cycles a byte); 0 for the others (their start is within the bench's slack)."""
        if self.sdram is None:
            return 0
        t = self.reader.timing
        n = min(len(self.flash_image), self.sdram.max_bytes)
        return self.reader.init_cycles + self.sdram.t.init + 64 + t.read_cycles(n) + n // 2 * 16

    @property
    def timing(self):
        return (self.sdram or self.reader or self.store).timing

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = acc = self.accelerator
        m.submodules.store = store = self.store
        if self.reader is None:
            connect(m, acc.bus, store.bus)
        else:
            m.submodules.reader = reader = self.reader
            connect(m, reader.pins, store.pins)
            m.d.comb += self.memory_error.eq(store.error)
            if self.sdram is None:
                connect(m, acc.bus, reader.bus)
            else:
                m.submodules.sdram = sdram = self.sdram
                m.submodules.sdram_model = model = self.sdram_model
                connect(m, sdram.source, reader.bus)
                connect(m, acc.bus, sdram.bus)
                m.submodules.sdram_io = io = self.sdram_io
                connect(m, sdram.pins, io.ctl)
                connect(m, io.chip, model.pins)
                m.d.comb += self.memory_error.eq(store.error | model.error)
        for name in self.signature.members:
            if name == "memory_error":
                continue
            inner, outer = getattr(acc, name), getattr(self, name)
            if self.signature.members[name].is_port:
                if self.signature.members[name].flow == wiring.In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
            else:
                connect(m, flipped(outer), inner)
        return m
