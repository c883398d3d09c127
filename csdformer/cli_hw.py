"""``csdformer rtl`` and ``csdformer verify``: the whole-network accelerator from the command line.

Torch- and Amaranth-free at import: the hardware modules are imported when a command runs, so the
CLI registers these commands without the ``hw`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import CsdformerError
from .artifact import load, resolve_artifact, shipped_models
from .sim.verify import select_images, verify


def _program(args):
    from .hw.program import compile_program

    art = load(resolve_artifact(args.artifact))
    return art, compile_program(art, args.lanes, target=args.target)


def _cmd_rtl(args: argparse.Namespace) -> int:
    from .hw.rtl import write_rtl

    art, prog = _program(args)
    delay = art.delay if args.delay is None else args.delay
    if not 0 <= delay <= art.T - 1:
        raise CsdformerError(f"--delay: must be in 0..T-1 = 0..{art.T - 1}, got {delay}")
    t0 = time.time()
    out = write_rtl(prog, args.out, force=args.force, delay=delay)
    desc = json.loads((out / "accelerator.json").read_text())
    bits = sum(desc["memories"]["bits"].values())
    print(f"{art.name}: {len(prog.ops)} ops, {lanes(prog.lanes)}, {bits / 1024:.0f} kbit of memory; wrote {out} "
          f"in {time.time() - t0:.1f} s")
    print(cycle_line(prog, delay))
    return 0


def lanes(n: int) -> str:
    return f"{n} lane" + ("" if n == 1 else "s")


def cycle_line(prog, delay: int) -> str:
    """The cycle model's estimate, typical and worst case (see csdformer.boards.throughput)."""
    from .boards.throughput import cycle_estimate, worst_case_cycles

    try:
        e = cycle_estimate(prog, delay)
    except CsdformerError as err:  # the data set is not at hand: the bound alone
        return (f"cycles an image (cycle model, D={delay}): at most {worst_case_cycles(prog, delay):,} "
                f"(no typical figure: {err})")
    return (f"cycles an image (cycle model, D={delay}): typically {e['mean']:,.0f} (mean of {e['n']} test images, "
            f"{e['min']:,}..{e['max']:,}), worst case {e['worst_case']:,} (every pixel bit and every neuron "
            f"spiking at every step); {1e8 / e['mean']:,.0f} images/s at 100 MHz")


def _cmd_verify(args: argparse.Namespace) -> int:
    art, prog = _program(args)
    delay = art.delay if args.delay is None else args.delay
    idx, images = select_images(art, args.images, args.seed, args.root)
    print(f"verify {art.name}: {len(idx)} test images (seed {args.seed}), D={delay}, {lanes(prog.lanes)}, "
          f"{args.sim}", file=sys.stderr, flush=True)
    rep = verify(prog, idx, images, delay=delay, sim=args.sim, waves=args.waves, progress=True)
    for c in rep.checks:
        if not c.ok:
            print(c.line())
    n = len(rep.checks)
    cyc = sum(c.cycles for c in rep.checks) / n
    util = rep.utilization()
    print(f"mean {cyc:.0f} cycles an image ({1e8 / cyc:.0f} images/s at 100 MHz), lane utilization "
          f"{util * 100:.1f} %; build {rep.build_s:.0f} s, simulation {rep.sim_s:.0f} s", file=sys.stderr)
    print(rep.summary())
    return 0 if rep.failed == 0 else 1


def add_parsers(sub) -> None:
    def common(p):
        p.add_argument("artifact", help="artifact folder, or a shipped model name (" + ", ".join(shipped_models()) + ")")
        p.add_argument("--lanes", type=int, default=8, help="parallel lanes (power of two; default 8)")
        p.add_argument("--target", default="unlimited",
                       help="check on-chip memory against a device: ice40up5k, ecp5-25f, ecp5-85f (default: no check)")
        p.add_argument("--delay", type=int, help="DIF delay D (default: the artifact's)")

    r = sub.add_parser("rtl", description="Generate the accelerator's Verilog, memory images and "  # one-line help: cli.py
                       "accelerator.json, and print the cycle model's estimate (typical and worst case).")
    common(r)
    r.add_argument("-o", "--out", required=True, help="output folder")
    r.add_argument("--force", action="store_true", help="replace the output folder if it exists")
    r.set_defaults(fn=_cmd_rtl)

    v = sub.add_parser("verify", description="Simulate the accelerator's RTL (Verilator or Icarus, cocotb) on "
                       "test images and judge each image against the golden model and the cycle model; "
                       "progress on stderr (the simulator build, then image by image).")
    common(v)
    v.add_argument("--images", type=int, default=20, help="how many test images (default 20)")
    v.add_argument("--seed", type=int, default=0, help="which images (default 0)")
    v.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                   help="HDL simulator (default verilator)")
    v.add_argument("--waves", action="store_true", help="dump waveforms (FST) into the simulation folder")
    v.add_argument("--root", help="data folder (Fashion-MNIST, CIFAR)")
    v.set_defaults(fn=_cmd_verify)
