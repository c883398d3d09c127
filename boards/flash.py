"""The board's configuration flash as the weight stream's memory: :func:`flash_pins` connects a
:class:`~csdformer.hw.qspi.QspiPins` interface (from :class:`~csdformer.hw.qspi.QspiFlashReader`)
to the pins, by what amaranth-boards 0.0.21 declares:

- iCEBreaker: ``spi_flash_4x`` (cs, clk, dq[4]): every line, quad reads. After configuration the
  iCE40's SPI pins are ordinary I/O.
- OrangeCrab r0.2: ``spi_flash_4x`` (cs, dq[4]; its ``clk``, U16, is the ECP5's dedicated
  configuration clock pin, not ordinary I/O): quad reads, SCK through ``USRMCLK``.
- ULX3S: ``spi_flash`` (cs, copi, cipo, and wp, hold declared as outputs only): single-line reads
  (``lines=1``), WP# and HOLD# held high, SCK through ``USRMCLK``. Quad reads would need IO2/IO3
  as bidirectional pins, which the platform does not declare.

On ECP5 the flash clock pin (CCLK/MCLK) is reached only through the ``USRMCLK`` primitive, which
takes the clock from the fabric once configuration is done (``USRMCLKTS=0``: driven).

Buffers are plain (combinational) :class:`amaranth.lib.io.Buffer`; the reader registers every
output and samples the input in a register of its own, so each pin path is register-to-pin or
pin-to-register (see :mod:`csdformer.hw.qspi` for the timing).
"""

from __future__ import annotations

from amaranth.build import ResourceError
from amaranth.hdl import Const, Instance
from amaranth.lib import io
from amaranth.vendor import LatticeECP5Platform

from ..hw.common import HwParamError

__all__ = ["flash_pins", "has_resource"]


def has_resource(platform, name) -> bool:
    """Whether ``platform`` declares resource ``name`` (number 0)."""
    try:
        platform.lookup(name, 0)
    except ResourceError:
        return False
    return True


def flash_pins(m, platform, pins, *, lines: int | None = None) -> int:
    """Connect ``pins`` (a :class:`~csdformer.hw.qspi.QspiPins` interface, controller side) to the
    board's flash in module ``m``; returns the data lines the board wires (4 or 1). ``lines``, if
    given, is what the reader needs: a board that cannot give it is refused with
    :class:`HwParamError`."""
    ecp5 = isinstance(platform, LatticeECP5Platform)
    if has_resource(platform, "spi_flash_4x"):
        res = platform.request("spi_flash_4x", 0, dir="-")
        wired = 4
    elif has_resource(platform, "spi_flash"):
        res = platform.request("spi_flash", 0, dir="-")
        wired = 1
    else:
        raise HwParamError(f"flash: {type(platform).__name__} declares no spi_flash resource")
    if lines is not None and lines > wired:
        raise HwParamError(f"lines: the flash of {type(platform).__name__} is wired for {wired} data line(s), not {lines}")

    m.submodules.flash_cs = cs = io.Buffer("o", res.cs)  # PinsN: active-high cs, low at the pin
    m.d.comb += cs.o.eq(pins.cs)
    if ecp5:
        m.submodules.flash_usrmclk = Instance("USRMCLK", a_keep=1, i_USRMCLKI=pins.sck, i_USRMCLKTS=Const(0))
    else:
        m.submodules.flash_sck = sck = io.Buffer("o", res.clk)
        m.d.comb += sck.o.eq(pins.sck)

    if wired == 4:
        for k in range(4):
            m.submodules[f"flash_io{k}"] = b = io.Buffer("io", res.dq[k])
            m.d.comb += [b.o.eq(pins.io_o[k]), b.oe.eq(pins.io_oe[k]), pins.io_i[k].eq(b.i)]
    else:
        m.submodules.flash_copi = copi = io.Buffer("o", res.copi)
        m.submodules.flash_cipo = cipo = io.Buffer("i", res.cipo)
        m.d.comb += [copi.o.eq(pins.io_o[0]), pins.io_i.eq(0b1101 | (cipo.i << 1))]
        for name in ("wp", "hold"):  # PinsN: 0 here is a high (inactive) WP#, HOLD# at the pin
            if hasattr(res, name):
                m.submodules[f"flash_{name}"] = b = io.Buffer("o", getattr(res, name))
                m.d.comb += b.o.eq(0)
    return wired
