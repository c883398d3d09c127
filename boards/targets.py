"""The boards the accelerator is built for, and what each one offers.

One :class:`Board` per supported board, registered by name in :data:`BOARDS`: its Amaranth
platform (from ``amaranth-boards``), the device's resources (for sizing before a build; the build
report takes the real numbers from nextpnr), the default and goal ``sync`` clocks, the default
lane count, and the pins the board top uses for the UART link, LEDs and reset.

OrangeCrab r0.2 has no UART resource: :data:`ORANGECRAB_UART` puts one on the Feather header,
``rx`` on pin "0" (N17) and ``tx`` on pin "1" (M18): the standard Feather serial pins, the same as
LiteX's ``feather_serial``. Wire a 3.3 V USB-serial adapter's TX to pin 0, its RX to pin 1, GND to
GND.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.build import Attrs
from amaranth_boards.resources import UARTResource

from ..hw.common import HwParamError
from ..hw.sdram import AS4C32M16SB, SdramPart
from .clocking import DEFAULT_TOLERANCE, Ecp5ClockGen, Ice40ClockGen, ecp5_pll, ice40_pll
from .programming import PROGRAMMING, Programming

__all__ = ["Resources", "Board", "BOARDS", "get_board", "ORANGECRAB_UART", "ECP5_PLACE"]


@dataclass(frozen=True)
class Resources:
    """Counts of one device's resources (as nextpnr counts them)."""

    lut: int
    ff: int
    bram: int
    spram: int
    dsp: int

    def as_dict(self) -> dict[str, int]:
        return {"LUT": self.lut, "FF": self.ff, "BRAM": self.bram, "SPRAM": self.spram, "DSP": self.dsp}


ORANGECRAB_UART = UARTResource(0, rx="0", tx="1", conn=("io", 0),
                               attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP"))

#: nextpnr's options on the ECP5 boards: the heap placer weighs timing 4x its default (10). The
#: accelerator fills a tenth of the ULX3S's 85F and its block RAMs lie across the die, so the
#: placer's wire length pulls control logic far from where it is used: at the default weight
#: the digits build's critical paths were 7-9 ns of routing (92.1 / 92.0 / 97.6 MHz over three
#: seeds, session 17), at 40 the same netlist placed at 108.1 and 103.0 MHz.
ECP5_PLACE = "--placer-heap-timingweight 40"


@dataclass(frozen=True)
class Board:
    """One supported board.

    Attributes
    ----------
    name : str
        Registry key (``csdformer build --board NAME``).
    platform_path : str
        ``module:Class`` of the amaranth-boards platform (imported on use).
    family : str
        ``"ice40"`` or ``"ecp5"``: picks the PLL and the report's resource names.
    device : str
        FPGA part, for the report.
    resources : Resources
        Device resources (LUT4s, flip-flops, block RAMs, SPRAMs, multipliers).
    freq_mhz, goal_mhz : float
        Default ``sync`` clock (the floor a build must meet) and the clock aimed for.
    lanes : int
        Default number of parallel lanes of the accelerator.
    leds : dict
        Status role (``heartbeat``, ``busy``, ``error``) -> ``(resource, number)`` or
        ``(resource, number, subsignal)``; a missing role has no LED.
    reset : (str, int) or None
        Reset button resource (pressed = 1 after inversion).
    extra_resources : tuple
        Resources added to the platform (OrangeCrab's UART).
    synth_opts : str
        Extra ``synth_*`` options (``-dsp`` maps multipliers to iCE40 SB_MAC16).
    place_opts : str
        Extra nextpnr options (:data:`ECP5_PLACE`: the heap placer's timing weight on the ECP5
        boards).
    notes : str
        Pins and quirks, for the report and ``--help``.
    memory_target : str
        The device's on-chip memory budget in :data:`csdformer.hw.program.TARGETS` (checked before
        synthesis: a model whose memories cannot fit is reported at once).
    flash_bytes : int
        Size of the configuration flash, which also holds the model image.
    model_offset : int
        Byte address of the model image in the flash: past the bitstream(s), 64 KiB aligned (the
        flash's largest erase block, so writing the model never erases part of a bitstream).
    flash_quad : bool
        The flash's IO2/IO3 are wired as bidirectional pins: quad reads (``lines=4``) work;
        otherwise the reader must use ``lines=1`` (:func:`csdformer.boards.flash.flash_pins`).
    flash_parts : tuple
        The flash parts the board is built with.
    weight_depth : int or None
        Words of the weight buffer (each of its two slots) the board's builds are limited to: a
        synthesis op with a larger weight block is split into output tiles
        (:class:`csdformer.hw.program.Tile`); None: as large as the model's largest block.
    acc_depth : int or None
        Words of ACC and MEM the board's builds are limited to: a synaptic op with a larger current
        is split into output tiles; None: as large as the model's largest current.
    sdram : SdramPart or None
        The SDRAM beside the FPGA (the ULX3S's): a model that streams its weights is copied there
        from the flash after reset and read a byte a cycle (:func:`csdformer.boards.soc.accelerator_core`);
        None: streamed from the flash.
    outreg : bool
        Build every block RAM's bank register as the RAM's output register (the ECP5's DP16KD:
        ``Accelerator(outreg=True)`` and :mod:`csdformer.boards.outreg` on the netlist). The
        OrangeCrab sets it since session 23 (its digits build at a median 167.3 MHz over three
        seeds, 153.7 at its own seed without: once the scatter's event walk no longer limited it,
        the block RAMs' read did; in session 19, with that walk, it had not helped: 153.7 against
        156.2; docs/results.md).
    resident_kbit : int
        A model whose weights take at most this many kbit of block RAM holds them all on chip
        (``compile_program(resident=True)``): the loader reads them once after reset instead of for
        every image, so images never wait on the flash; a larger model streams them through the
        two-slot buffer. 0: always streamed (the iCEBreaker's weights are in two single-port SPRAM
        slots).
    """

    name: str
    platform_path: str
    family: str
    device: str
    resources: Resources
    freq_mhz: float
    goal_mhz: float
    lanes: int
    leds: dict = field(default_factory=dict)
    reset: tuple | None = None
    uart: tuple = ("uart", 0)
    extra_resources: tuple = ()
    synth_opts: str = ""
    place_opts: str = ""
    notes: str = ""
    memory_target: str = "unlimited"
    single_port: tuple = ()  # accelerator memories built single-port (the iCE40UP5K's SPRAM)
    flash_bytes: int = 16 << 20
    model_offset: int = 0
    flash_quad: bool = False
    flash_parts: tuple = ()
    weight_depth: int | None = None
    acc_depth: int | None = None
    resident_kbit: int = 0
    sdram: SdramPart | None = None
    outreg: bool = False

    @property
    def programming(self) -> Programming:
        """How to load a bitstream onto this board (:data:`csdformer.boards.programming.PROGRAMMING`)."""
        return PROGRAMMING[self.name]

    @property
    def platform_class(self):
        import importlib

        module, cls = self.platform_path.split(":")
        return getattr(importlib.import_module(module), cls)

    def platform(self):
        """A fresh platform instance with :attr:`extra_resources` added."""
        plat = self.platform_class()
        if self.extra_resources:
            plat.add_resources(list(self.extra_resources))
        return plat

    @property
    def clk_resource(self) -> str:
        return self.platform_class.default_clk

    @property
    def clk_mhz(self) -> float:
        """The board oscillator's frequency in MHz (from the platform's clock resource)."""
        return self.platform_class().default_clk_frequency / 1e6

    def pll(self, freq_mhz=None, *, tolerance=DEFAULT_TOLERANCE):
        """The PLL setting making ``freq_mhz`` (default :attr:`freq_mhz`) from the oscillator."""
        search = {"ice40": ice40_pll, "ecp5": ecp5_pll}[self.family]
        return search(self.clk_mhz, self.freq_mhz if freq_mhz is None else freq_mhz, tolerance=tolerance)

    def clock_gen(self, setting):
        """The clock generator component for a setting from :meth:`pll`."""
        cls = {"ice40": Ice40ClockGen, "ecp5": Ecp5ClockGen}[self.family]
        return cls(setting, self.clk_resource, self.reset)


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board(
        name="icebreaker", platform_path="amaranth_boards.icebreaker:ICEBreakerPlatform",
        family="ice40", device="iCE40UP5K-SG48",
        resources=Resources(lut=5280, ff=5280, bram=30, spram=4, dsp=8),
        freq_mhz=30.0, goal_mhz=50.0, lanes=1,
        leds={"heartbeat": ("led", 1), "error": ("led", 0)},  # green, red; busy speeds the heartbeat
        reset=("button", 0), synth_opts="-dsp", memory_target="ice40up5k", single_port=("cur", "weight"),
        # The iCE40UP5K bitstream (104,090 bytes) sits at 0: the first 64 KiB boundary past it.
        flash_bytes=16 << 20, model_offset=0x20000, flash_quad=True, flash_parts=("W25Q128JVSIM",),
        notes="UART on the FTDI second channel (rx pin 6, tx pin 9); user button resets; "
              "green LED heartbeat (fast while busy), red LED error.",
    ),
    Board(
        name="ulx3s-85f", platform_path="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        family="ecp5", device="LFE5U-85F-6BG381",
        resources=Resources(lut=83640, ff=83640, bram=208, spram=0, dsp=156),
        freq_mhz=100.0, goal_mhz=125.0, lanes=16,
        leds={"heartbeat": ("led", 0), "busy": ("led", 1), "error": ("led", 2)},
        reset=("button_pwr", 0), memory_target="ecp5-85f", place_opts=ECP5_PLACE,
        # The LFE5U-85F bitstream (about 2.3 MB uncompressed) sits at 0: 3 MiB leaves room for it
        # to grow a little. Single-line reads: amaranth-boards declares WP#/HOLD# as outputs only.
        flash_bytes=16 << 20, model_offset=0x300000, flash_quad=False, flash_parts=("IS25LP128F", "W25Q128JV"),
        # Two slots of 2,304 words of 16 lanes: 20 block RAMs each (512 x 36 blocks, 4 wide, 5 deep).
        # ACC and MEM of at most 1,024 words: the 28 x 28 encoding conv's current runs in two tiles,
        # so each is 2 blocks deep instead of 4. Fashion-MNIST's largest blocks (9,216 words) run as
        # output tiles.
        weight_depth=2304, acc_depth=1024,
        # Up to 1.5 Mbit of weights stay on chip (84 of the 208 block RAMs): digits (186 kbit) does,
        # Fashion-MNIST (4,962 kbit) streams.
        resident_kbit=1536,
        # 32 MB of SDR SDRAM (AS4C32M16SB-7TCN on the boards we know): a streamed model reads it a
        # byte a cycle instead of a byte every 16 from the single-line flash.
        sdram=AS4C32M16SB,
        notes="UART on the FTDI USB port (rx M1, tx L4); PWR button resets; "
              "LED0 heartbeat, LED1 busy, LED2 error.",
    ),
    Board(
        name="orangecrab-25f", platform_path="amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform",
        family="ecp5", device="LFE5U-25F-8MG285",
        resources=Resources(lut=24288, ff=24288, bram=56, spram=0, dsp=28),
        freq_mhz=100.0, goal_mhz=125.0, lanes=8,
        leds={"heartbeat": ("rgb_led", 0, "g"), "busy": ("rgb_led", 0, "b"), "error": ("rgb_led", 0, "r")},
        reset=("button", 0), extra_resources=(ORANGECRAB_UART,), memory_target="ecp5-25f",
        place_opts=ECP5_PLACE, outreg=True,
        # The DFU bootloader sits at 0, the user bitstream at 0x80000 (LFE5U-25F, about 0.6 MB
        # uncompressed, so it reaches past 0x100000); 2 MiB is the first round boundary clear of both.
        flash_bytes=16 << 20, model_offset=0x200000, flash_quad=True, flash_parts=("W25Q128JVEIM",),
        resident_kbit=512,  # 28 of the 56 block RAMs: digits' 186 kbit of weights stay on chip
        notes="No UART on the board: rx on Feather pin 0 (N17), tx on pin 1 (M18), 3.3 V; "
              "the button resets (hold it while plugging in for the DFU bootloader); "
              "RGB LED green heartbeat, blue busy, red error.",
    ),
)}


def get_board(name) -> Board:
    """The :class:`Board` called ``name`` (a :class:`Board` is returned unchanged)."""
    if isinstance(name, Board):
        return name
    try:
        return BOARDS[name]
    except KeyError:
        raise HwParamError(f"board: unknown board {name!r}; known: {', '.join(BOARDS)}") from None
