"""Measure the round-trip window of the ULX3S's SDRAM read capture at its pins, in simulation.

The stream as the board builds it, through the ECP5's I/O cells (sim/benches/sdram_board.py), is
run with the round trip R (the clock and commands out, the word back) swept: each edge of the
window in which every byte comes back right is found by bisection and printed beside the
arithmetic of boards/sdram.py. The window a board has is R's: the FPGA's output and input delays
and the traces, which nextpnr does not time; this says which R the design tolerates.

Usage: ``python bench/sdram_board.py [--out build/sdram-board] [--split 0.5] [--tol 0.02]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from csdformer.sim.benches.sdram_board import build_pins, round_trip_window, run_pins

CYCLES = 40_000


def edge(out: Path, split: float, good: float, bad: float, tol: float) -> tuple[float, float]:
    """Bisect between a passing and a failing round trip: (last passing, first failing) ns."""
    while abs(bad - good) > tol:
        mid = (good + bad) / 2
        if run_pins(out, out_ns=mid * split, back_ns=mid * (1 - split), cycles=CYCLES).ok:
            good = mid
        else:
            bad = mid
    return good, bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("build/sdram-board"))
    ap.add_argument("--split", type=float, default=0.5, help="the share of R on the way out (clock and commands)")
    ap.add_argument("--tol", type=float, default=0.02, help="bisection resolution, ns")
    a = ap.parse_args(argv)
    if not 0 <= a.split <= 1:
        print("sdram_board: --split must be between 0 and 1", file=sys.stderr)
        return 2
    t0 = time.time()
    out = build_pins(a.out)
    lo, hi = round_trip_window()
    mid = (lo + hi) / 2
    if not run_pins(out, out_ns=mid * a.split, back_ns=mid * (1 - a.split), cycles=CYCLES).ok:
        print(f"sdram_board: FAILED at R = {mid:.2f} ns, the middle of the arithmetic's window", file=sys.stderr)
        return 1
    lo_ok, lo_bad = edge(out, a.split, mid, 0.0, a.tol)
    hi_ok, hi_bad = edge(out, a.split, mid, 2 * hi, a.tol)
    print(f"round trip R (ns; {a.split:.0%} of it on the way out), every byte right, the chip's timing and "
          f"set-up/hold clean:")
    print(f"  lower edge: passes at {lo_ok:.3f}, fails at {lo_bad:.3f}   (boards/sdram.py: {lo:.2f})")
    print(f"  upper edge: passes at {hi_ok:.3f}, fails at {hi_bad:.3f}   (boards/sdram.py: {hi:.2f})")
    print(f"  window {hi_ok - lo_ok:.2f} ns wide ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
