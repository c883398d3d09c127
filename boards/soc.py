"""The board top: clock, reset, UART pins and status LEDs around one core.

:class:`BoardTop` is what gets built for a board. It owns everything board-specific (PLL,
reset button, pins, LEDs) so that the core, the UART link plus the accelerator, stays
board-independent: any :class:`~amaranth.lib.wiring.Component` with

- ``rx: In(1)``: the UART line from the host, already synchronized to ``sync`` here (idle 1);
- ``tx: Out(1)``: the UART line to the host (idle 1);
- optionally ``busy: Out(1)`` and ``error: Out(1)``, shown on LEDs;
- optionally ``flash: Out(QspiPins())``, connected to the board's flash (:mod:`.flash`);
- optionally ``sdram: Out(SdramPins())``, connected to the board's SDRAM (:mod:`.sdram`).

The core runs in ``sync`` at the PLL's achieved frequency, which the core factory receives.

:func:`accelerator_core` is the seam for the real core (see its docstring); the ``csdformer
build`` command (:mod:`csdformer.boards.cli_build`) calls it.
"""

from __future__ import annotations

import math

from amaranth.hdl import ClockDomain, Const, Elaboratable, Module, Mux, Shape, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .. import CsdformerError
from ..hw.common import HwParamError
from ..hw.qspi import QspiPins
from ..hw.sdram import SdramPins
from .clocking import DEFAULT_TOLERANCE
from .flash import flash_pins
from .sdram import sdram_pins
from .targets import get_board

__all__ = ["BoardTop", "check_core", "uart_divisor", "accelerator_core", "DEFAULT_BAUD"]

DEFAULT_BAUD = 115_200


LINK_TIMEOUT_BYTES = 4  # a partial frame silent for this many byte times is dropped


def uart_divisor(sync_hz: float, baud: int = DEFAULT_BAUD) -> int:
    """Clock cycles per UART bit, ``round(sync_hz / baud)``; refused beyond 1 % baud error."""
    if baud <= 0:
        raise HwParamError(f"baud: must be positive, got {baud!r}")
    div = round(sync_hz / baud)
    if div < 4 or abs(sync_hz / div - baud) > 0.01 * baud:
        raise HwParamError(f"baud: {baud} is not reachable from a {sync_hz / 1e6:g} MHz clock within 1 %")
    return div


FLASH_SCK_HZ = 50e6  # the flash clock's ceiling here (the parts read 0x6B / 0x0B at up to 104-133 MHz)


def flash_divisor(clock_hz: float) -> int:
    """The QSPI reader's SCK half-period in clock cycles: SCK = clock / (2·divisor) ≤ 50 MHz."""
    return max(1, math.ceil(clock_hz / (2 * FLASH_SCK_HZ)))


def accelerator_core(program, divisor: int, *, board, clock_hz: float) -> wiring.Component:
    """The real core: :class:`csdformer.hw.device.FlashDevice`, the UART link around the
    whole-network accelerator of ``program`` (compiled for the board: its lanes, its single-port
    memories, spike tensors sharing memory by liveness, into its fabric), which reads the model
    from the board's flash at :attr:`~csdformer.boards.targets.Board.model_offset` (quad reads
    where the board wires IO2/IO3). ``divisor`` is the UART's clock cycles per bit
    (:func:`uart_divisor`). Its memories leave out the simulation's collision poison: the build
    makes a colliding read undefined instead (:data:`csdformer.hw.memory.COLLISION_ANY`); its
    transparent memories are built for the block RAMs' output registers where the board says so
    (:attr:`~csdformer.boards.targets.Board.outreg`). A program that streams its weights on a board
    with an SDRAM (:attr:`~csdformer.boards.targets.Board.sdram`, the ULX3S) reads them from there:
    the model copied from the flash after reset, a byte a cycle (a resident one reads the flash
    once and needs no SDRAM). ``csdformer build`` finds this function through
    :data:`csdformer.boards.cli_build.CORE_PROVIDER`.
    """
    from ..hw.device import FlashDevice

    return FlashDevice(program, divisor=divisor, timeout=LINK_TIMEOUT_BYTES * 10 * divisor, clock_hz=clock_hz,
                       base=board.model_offset, flash_divisor=flash_divisor(clock_hz),
                       lines=4 if board.flash_quad else 1, poison=False, outreg=board.outreg,
                       sdram=None if program.resident else board.sdram, flash_bytes=board.flash_bytes)


def check_core(core) -> wiring.Component:
    """Return ``core`` if it has the ports :class:`BoardTop` wires, else raise :class:`HwParamError`."""
    if not isinstance(core, wiring.Component):
        raise HwParamError(f"core: expected a wiring.Component, got {type(core).__name__}")
    members = core.signature.members

    def bad(n, flow):
        m = members[n] if n in members else None
        return m is None or not m.is_port or m.flow != flow or Shape.cast(m.shape).width != 1

    need = {"rx": In, "tx": Out}
    optional = {"busy": Out, "error": Out}
    problems = [f"{n} must be {f.name}(1)" for n, f in need.items() if bad(n, f)]
    problems += [f"{n} must be {f.name}(1)" for n, f in optional.items() if n in members and bad(n, f)]
    if problems:
        core._MustUse__silence = True
        raise HwParamError(f"core: {type(core).__name__}: " + "; ".join(problems))
    return core


class BoardTop(Elaboratable):
    """Top level for one board: PLL ``sync`` clock + reset, the core, UART pins, status LEDs.

    Parameters
    ----------
    core_factory : callable
        ``core_factory(sync_hz) -> wiring.Component``, called once here with the PLL's
        achieved frequency in Hz (so a UART divisor can be derived from it).
    board : str or Board
        A name from :data:`csdformer.boards.targets.BOARDS`.
    freq_mhz : float, optional
        Requested ``sync`` frequency (default: the board's :attr:`~Board.freq_mhz`).
    tolerance : float
        Accepted relative PLL frequency error.

    Attributes
    ----------
    pll : Ice40PllSetting or Ecp5PllSetting
        The divider setting; ``pll.f_out_mhz`` is the frequency the core really runs at.
    core : wiring.Component
        The core, checked with :func:`check_core`.

    The heartbeat LED toggles about once a second, four times faster while ``busy``; the error LED
    shows ``error`` or a PLL that has not locked.
    """

    def __init__(self, core_factory, board, *, freq_mhz=None, tolerance=DEFAULT_TOLERANCE):
        try:
            self.board = get_board(board)
            self.target_mhz = float(self.board.freq_mhz if freq_mhz is None else freq_mhz)
            self.pll = self.board.pll(self.target_mhz, tolerance=tolerance)
            self.core = check_core(core_factory(self.sync_hz))
        except Exception:
            self._MustUse__silence = True  # a refused top was never meant to be built
            raise

    @property
    def sync_hz(self) -> float:
        """Achieved ``sync`` frequency in Hz."""
        return self.pll.f_out_mhz * 1e6

    def _leds(self, m, platform) -> dict:
        """``{role: output}`` for the board's status LEDs (through ``io.Buffer``)."""
        outs, cache = {}, {}
        for role, spec in self.board.leds.items():
            key = spec[:2]
            if key not in cache:
                cache[key] = platform.request(*key, dir="-")
            port = getattr(cache[key], spec[2]) if len(spec) > 2 else cache[key]
            m.submodules[f"led_{role}"] = buf = io.Buffer("o", port)
            outs[role] = buf.o
        return outs

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.clocks = clocks = self.board.clock_gen(self.pll)
        m.submodules.core = core = self.core
        members = core.signature.members

        uart = platform.request(*self.board.uart, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.rx_sync = FFSynchronizer(rx_buf.i, core.rx, init=1)
        m.d.comb += tx_buf.o.eq(core.tx)
        flash = members["flash"] if "flash" in members else None
        if flash is not None and not flash.is_port and flash.flow == Out and isinstance(flash.signature, QspiPins):
            flash_pins(m, platform, core.flash)
        sdram = members["sdram"] if "sdram" in members else None
        if sdram is not None and not sdram.is_port and sdram.flow == Out and isinstance(sdram.signature, SdramPins):
            sdram_pins(m, platform, core.sdram)

        busy = core.busy if "busy" in members else Const(0)
        error = core.error if "error" in members else Const(0)
        bits = max(3, round(math.log2(self.sync_hz)))  # top bit toggles about every second
        beat = Signal(bits)
        m.d.sync += beat.eq(beat + 1)
        status = {
            "heartbeat": Mux(busy, beat[-3], beat[-1]),
            "busy": busy,
            "error": error | ~clocks.locked,
        }
        for role, led in self._leds(m, platform).items():
            m.d.comb += led.eq(status[role])
        return m
