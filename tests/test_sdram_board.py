"""The ULX3S's SDRAM at its pins (sim/benches/sdram_board.py): the stream as the board builds it,
through Amaranth's ECP5 platform into the FPGA's own I/O cells (Yosys's models), the chip model
clocked by the clock pin and reading the command pins' levels, the datasheet's output timing on
the bus. Every byte read back must be the image's, in its cycle, the chip must see no timing
violation and no set-up or hold fault; the round trip's window must be the one boards/sdram.py
computes; and a wrong inversion, clock phase or read pipe must fail."""

from __future__ import annotations

import os
import shutil

import pytest
from amaranth.hdl import Const
from amaranth.lib import io

from csdformer.sim.benches import sdram_board as B

# Skipped where Icarus is not installed, but not under CI (CI=true), whose .ci/run installs it.
pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None and not os.environ.get("CI"),
                                reason="iverilog not installed (apt install iverilog)")
CYCLES = 40_000  # the copy (4,300 bytes at 3 cycles a byte) and the reads take about 17,300


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return B.build_pins(tmp_path_factory.mktemp("sdram_board"))


@pytest.mark.parametrize("out_ns, back_ns", [(1.5, 1.5), (2.0, 2.0), (3.0, 4.0), (1.0, 7.0)])
def test_every_byte_in_its_cycle_through_the_ecp5_cells(built, out_ns, back_ns):
    r = B.run_pins(built, out_ns=out_ns, back_ns=back_ns, cycles=CYCLES)
    assert r.ok, r
    assert r.cycles < CYCLES


def test_the_round_trip_window_is_the_datasheet_arithmetic(built):
    """boards/sdram.py: the capture holds for 2.5 ns ≤ R ≤ 9.6 ns at 100 MHz; a tenth of a ns
    outside either end, the word captured is the unknown between two of the chip's words."""
    lo, hi = B.round_trip_window()
    assert (lo, hi) == pytest.approx((2.5, 9.6))
    for r_ns, ok in [(lo - 0.1, False), (lo + 0.1, True), (hi - 0.1, True), (hi + 0.1, False)]:
        r = B.run_pins(built, out_ns=r_ns / 2, back_ns=r_ns / 2, cycles=CYCLES)
        assert r.ok == ok, (r_ns, r)
        if not ok:
            assert r.fail != "0" and r.violation is None and (r.setup_bad, r.hold_bad) == (0, 0), r


def _mutant(tmp_path, monkeypatch, which):
    import csdformer.boards.sdram as S
    import csdformer.hw.sdram as H
    if which == "clock in phase with sync":
        monkeypatch.setattr(S, "Const", lambda v: Const(1 - v))
    elif which == "command pins not inverted":
        class Shim:  # the active-low pins' buffers given a port without its inversion
            DDRBuffer = io.DDRBuffer

            @staticmethod
            def FFBuffer(direction, port, **kw):
                low = any(f"__{c}__" in port.io.name for c in ("cs", "ras", "cas", "we"))
                return io.FFBuffer(direction, ~port if low else port, **kw)
        monkeypatch.setattr(S, "io", Shim)
    else:
        monkeypatch.setattr(H, "IO_PIPE", H.IO_PIPE + (1 if which == "a read pipe too long" else -1))
    return B.run_pins(B.build_pins(tmp_path), out_ns=2.0, back_ns=2.0, cycles=CYCLES)


@pytest.mark.parametrize("which", ["clock in phase with sync", "command pins not inverted", "a read pipe too long",
                                   "a read pipe too short"])
def test_a_wrong_board_side_fails(tmp_path, monkeypatch, which):
    r = _mutant(tmp_path, monkeypatch, which)
    assert not r.ok, r
    if which == "clock in phase with sync":  # the chip samples as the commands change
        assert r.setup_bad > 0 and r.hold_bad > 0
    elif which == "command pins not inverted":  # the chip sees garbage from the first cycle
        assert r.violation is B.Violation.INIT
    else:  # the chip is content; the words are taken a cycle early or late
        assert r.violation is None and r.fail == "1"
