"""Whole-network accelerator performance on test images, measured in RTL simulation and modeled.

For each lane setting: builds the accelerator, runs ``--images`` test images through the RTL
(cocotb + Verilator, bit-exact checks included) and prints, per image averages: cycles measured
and modeled (and their difference), synaptic operations (SOPs), lane utilization (ideal SOP
cycles = SOPs / lanes, over measured cycles) and images per second at 100 MHz. ``--plot`` writes
the modeled cycles per op (one bar per op and lane setting).

Usage: ``python bench/accel_perf.py [--artifact digits] [--lanes 8,16] [--images 20] [--delay D]
[--single-port cur,weight] [--backend rom|flash] [--weight-depth WORDS] [--resident] [--board NAME]
[--plot build/accel_cycles.png]``; ``--board`` takes a board's configuration (lanes, single-port
memories, weight buffer or resident weights as the board chooses, flash lines and clock, model from
flash), e.g. ``--artifact fashion_mnist --board ulx3s-85f`` (output tiles, single-line flash at
100 MHz); ``--resident`` holds every weight on chip (read once after reset, not for every image);
``--single-port`` names the memories built single-port (``cur,weight``: the iCEBreaker's SPRAM
configuration, half-rate sink); ``--backend flash`` reads the model through the QSPI reader from
the flash model (the boards' path; ``rom``: on-chip, a byte a cycle), and the cycle model counts the
waits for weights with that backend's timing.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.hw.program import compile_program
from csdformer.sim.verify import select_images, verify


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", default="digits")
    ap.add_argument("--lanes", default="8,16")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--delay", type=int)
    ap.add_argument("--single-port", default="", help="memories built single-port, e.g. cur,weight (iCEBreaker)")
    ap.add_argument("--backend", default="rom", choices=("rom", "flash", "sdram"),
                    help="where the model is read from (sdram: copied there from the flash after reset)")
    ap.add_argument("--clock-mhz", type=float, default=50.0, help="the clock the QSPI reader is built for "
                    "(30: the iCEBreaker's)")
    ap.add_argument("--weight-depth", type=int, help="weight buffer words (larger ops run as output tiles)")
    ap.add_argument("--lines", type=int, default=4, choices=(1, 4), help="the flash's data lines")
    ap.add_argument("--resident", action="store_true", help="every op's weights on chip, read once after reset")
    ap.add_argument("--board", help="a board's configuration: lanes, single-port memories, weight buffer, "
                    "flash lines and clock; the model from flash")
    ap.add_argument("--plot")
    args = ap.parse_args(argv)
    if args.board:
        from csdformer.boards.cli_build import board_program
        from csdformer.boards.targets import get_board

        board = get_board(args.board)
        args.lanes = args.lanes if "--lanes" in (argv or sys.argv) else str(board.lanes)
        args.single_port = ",".join(board.single_port)
        args.weight_depth, args.lines = board.weight_depth, 4 if board.flash_quad else 1
        args.clock_mhz, args.backend = board.freq_mhz, "flash" if args.backend == "rom" else args.backend
    single_port = tuple(v for v in args.single_port.split(",") if v)
    outreg = bool(args.board) and board.outreg  # the accelerator as the board builds it
    art = A.load(resolve_artifact(args.artifact))
    delay = art.delay if args.delay is None else args.delay
    idx, x = select_images(art, args.images, args.seed)
    rows, per_op, failed = [], {}, 0
    for lanes in (int(v) for v in args.lanes.split(",")):
        resident = args.resident
        if args.board:  # the board's choice for this model and lane count
            resident = board_program(art, lanes, board).resident
        prog = compile_program(art, lanes, single_port=single_port, resident=resident,
                               weight_depth=None if resident else args.weight_depth)
        t0 = time.time()
        rep = verify(prog, idx, x, delay=delay, backend=args.backend, clock_hz=args.clock_mhz * 1e6, outreg=outreg,
                     lines=args.lines, progress=True)
        failed += rep.failed
        meas = np.array([c.cycles for c in rep.checks], dtype=float)
        model = np.array([c.model_cycles for c in rep.checks], dtype=float)
        sops = np.array([c.sops for c in rep.checks], dtype=float)
        rows.append((lanes, meas.mean(), model.mean(), np.abs(meas - model).max() / model.mean() * 100,
                     sops.mean(), sops.sum() / lanes / meas.sum() * 100, 1e8 / meas.mean(), rep.summary(),
                     time.time() - t0))
        models = rep.golden["models"]
        per_op[lanes] = {k: np.mean([m.per_op[k] for m in models]) for k in models[0].per_op}
    sp = f", single-port {'+'.join(single_port)}" if single_port else ""
    wd = f", weight buffer {args.weight_depth} words (tiles)" if args.weight_depth and not prog.resident else ""
    wd += ", weights resident" if prog.resident else ""
    fl = f" ({args.lines} line{'s' * (args.lines > 1)}, {args.clock_mhz:g} MHz)" if args.backend == "flash" else ""
    print(f"{art.name}, D={delay}, {len(idx)} test images (seed {args.seed}){sp}{wd}, model from {args.backend}{fl}"
          + (f", board {args.board}" if args.board else "") + (", block-RAM output registers" if outreg else ""))
    print(f"{'lanes':>5} {'cycles/img':>11} {'model':>11} {'max dev %':>9} {'SOPs/img':>10} {'util %':>7} "
          f"{'img/s@100MHz':>12}  check")
    for r in rows:
        print(f"{r[0]:>5} {r[1]:>11.0f} {r[2]:>11.0f} {r[3]:>9.2f} {r[4]:>10.0f} {r[5]:>7.1f} {r[6]:>12.0f}  "
              f"{r[7]} ({r[8]:.0f} s)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(next(iter(per_op.values())))
        fig, ax = plt.subplots(figsize=(10, 4.5))
        w = 0.8 / len(per_op)
        for i, (lanes, d) in enumerate(per_op.items()):
            ax.bar(np.arange(len(names)) + i * w, [d[n] for n in names], w, label=f"{lanes} lanes")
        ax.set_xticks(np.arange(len(names)) + 0.4 - w / 2, names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("cycles per image (model)")
        ax.set_title(f"{art.name}: cycles per op, D={delay}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
