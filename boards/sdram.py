"""The ULX3S's SDRAM on its pins: :func:`sdram_pins` connects a
:class:`~csdformer.hw.sdram.SdramStream` built with ``io_registers`` to the board's ``sdram``
resource (amaranth-boards 0.0.21: ``clk``, ``clk_en``, ``cs``/``we``/``ras``/``cas`` active low,
``ba``, ``a``, ``dq``, ``dqm``).

Every pin but the clock goes through a register in its I/O cell (:class:`amaranth.lib.io.FFBuffer`:
the ECP5's ``OFS1P3DX``/``IFS1P3DX``), so its timing to the pin is the cell's, wherever the
controller is placed; the controller keeps its own registers too (the route from them to the
cells is a path of its own), and counts the two cycles these add (``io_registers``).

The chip's clock is ``sync`` inverted, made by an ``ODDRX1F`` (low in the first half of each cycle,
high in the second): it leaves through the same kind of I/O cell as the commands, so their
clock-to-pin delays (d) nearly cancel. By the chip's datasheet (AS4C32M16SB-7: tIS 1.5, tIH 0.8,
tAC 5.4 at CL 3, tOH 2.5 ns) at 100 MHz (T = 10 ns):

- a command leaves its register at an edge E (at the pin from E + d) and the chip samples it at
  E + T/2 + d: 5 ns of set-up and 5 ns of hold, against 1.5 and 0.8, for any d both paths share;
- a READ sampled at E + T/2 + d drives its word from E + T/2 + d + 2T + tAC until
  E + T/2 + d + 3T + tOH; at our input register that is shifted by the trace and the input cell
  (together with d: R, the round trip). The input cell takes it at E + 4T (CL 3 and the two
  cells' registers: the controller's ``cl + read_pipe`` counts these and its own two), which holds while 2.5 ns + hold ≤ R ≤ 9.6 ns - set-up: a window of
  about 7 ns that a round trip of a few ns sits in.

That is arithmetic from the datasheets, not a measurement: the FPGA's own I/O delays and the
board's traces are what a board confirms (nextpnr does not time paths that leave the chip). The
logic of it is simulated at the pins (:mod:`csdformer.sim.benches.sdram_board`: these cells as the
ECP5 platform makes them, the chip clocked by the clock pin, its output with tAC and tOH): every
byte right for R from 2.5 to 9.6 ns, wrong outside, and wrong with the clock's phase or the command
pins' inversion changed.
"""

from __future__ import annotations

from amaranth.hdl import Const
from amaranth.lib import io

from ..hw.common import HwParamError
from .flash import has_resource

__all__ = ["sdram_pins", "report_note"]


def sdram_pins(m, platform, pins) -> None:
    """Connect ``pins`` (a :class:`~csdformer.hw.sdram.SdramPins` interface, controller side, of a
    controller built with ``io_registers``) to the board's ``sdram`` resource in module ``m``:
    I/O registers on every line, the clock inverted through an ``ODDRX1F`` (module docstring)."""
    if not has_resource(platform, "sdram"):
        raise HwParamError(f"sdram: {type(platform).__name__} declares no sdram resource")
    res = platform.request("sdram", 0, dir="-")
    if len(res.a) != len(pins.a) or len(res.ba) != len(pins.ba):
        raise HwParamError(f"sdram: the board's chip has {len(res.a)} address and {len(res.ba)} bank lines, "
                           f"the controller {len(pins.a)} and {len(pins.ba)}")

    def out(name, port, value):
        m.submodules[f"sdram_{name}"] = b = io.FFBuffer("o", port)
        m.d.comb += b.o.eq(value)

    # cs, ras, cas, we are declared active low (PinsN): the buffer's 1 is a low pin, and
    # SdramCmd holds the pins' levels, so each goes in inverted.
    cmd = pins.cmd.as_value()
    for k, name in enumerate(("cs", "ras", "cas", "we")):
        out(name, getattr(res, name), ~cmd[k])
    out("cke", res.clk_en, pins.cke)
    out("ba", res.ba, pins.ba)
    out("a", res.a, pins.a)
    out("dqm", res.dqm, pins.dqm)
    m.submodules.sdram_dq = dq = io.FFBuffer("io", res.dq)
    m.d.comb += [dq.o.eq(pins.dq_o), dq.oe.eq(pins.dq_oe), pins.dq_i.eq(dq.i)]
    m.submodules.sdram_clk = clk = io.DDRBuffer("o", res.clk)
    m.d.comb += [clk.o[0].eq(Const(0)), clk.o[1].eq(Const(1))]  # low, then high: sync inverted


def report_note(core, image_bytes: int, clock_hz: float) -> str | None:
    """The build report's note on a core that reads its weights from the SDRAM (None for one that
    does not): the copy after reset and how long it takes, and that the pins' timing is arithmetic."""
    stream = getattr(core, "sdram_stream", None)
    if stream is None:
        return None
    copy_s = (stream.t.init + core.reader.timing.read_cycles(image_bytes)) / clock_hz
    return (f"weights from the SDRAM ({stream.part.name}): the model is copied there from the flash after reset "
            f"({image_bytes:,} bytes, about {copy_s * 1e3:.0f} ms at {clock_hz / 1e6:g} MHz; `csdformer run` waits for "
            f"it), then read a byte a cycle. Its pin timing is datasheet arithmetic (boards/sdram.py), simulated at "
            f"the pins through the ECP5's cells (bench/sdram_board.py: every byte right for a round trip of 2.5 to "
            f"9.6 ns): nextpnr does not time paths that leave the chip, and it has not been tried on a board yet")
