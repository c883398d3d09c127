"""Simulation speed of the Verilator cocotb benches: simulated cycles per wall-clock second.

Runs each unit's bench cases (``csdformer.sim.benches.cases``; for the frame-stream units
accumulate, encode_conv and tdec_matmul, ``csdformer.sim.benches.frames_cases``; builds are
cached, see ``csdformer.sim.benchlib.runner``) and prints, per case, the simulated cycles, the
bench's own wall time (from clock start to result, i.e. cocotb + Verilator, without simulator
start-up) and the whole run's wall time, with cycles per second for both.

Usage: ``python bench/hw_simspeed.py [--units dif,tdec_maxpool,residual_add,accumulate,encode_conv,tdec_matmul]
[--sim verilator]`` (default: all units)
"""

from __future__ import annotations

import argparse
import re
import sys

from csdformer.sim.benches import cases, frames_cases as fc
from csdformer.sim.benchlib import runner

UNITS = {
    "dif": ("csdformer.sim.benches.dif", cases.DIF_PARAMS, cases.dif_case),
    "tdec_maxpool": ("csdformer.sim.benches.tdec_maxpool", cases.MAXPOOL_PARAMS, cases.maxpool_case),
    "residual_add": ("csdformer.sim.benches.residual_add", cases.ADD_PARAMS, cases.add_case),
    # frame-stream units: the launchers' parameter sets (label -> dict), each case a (label, dict)
    "accumulate": ("csdformer.sim.benches.accumulate", list(fc.ACCUMULATE_PARAMS.items()), fc.accumulate_case),
    "encode_conv": ("csdformer.sim.benches.encode_conv", list(fc.ENCODE_PARAMS.items()), fc.encode_conv_case),
    "tdec_matmul": ("csdformer.sim.benches.tdec_matmul", list(fc.MATMUL_PARAMS.items()), fc.tdec_matmul_case),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", default=",".join(UNITS))
    ap.add_argument("--sim", default="verilator")
    args = ap.parse_args(argv)
    print(f"{'unit':<14} {'case':<22} {'sim cycles':>10} {'bench s':>8} {'cycles/s':>9} {'run s':>6} {'cycles/s':>9}  ok")
    failed = 0
    for unit in args.units.split(","):
        bench, params, make = UNITS[unit]
        for label, *p in params:
            u, data, meta = make(*p, seed=cases.seed_of(label))
            name = re.sub(r"\W", "_", f"{unit}_{label}")  # a Verilog module name
            res = runner.run_bench(u, name, bench, data=data, meta=meta, sim=args.sim, tag="speed")
            r = res.result
            cyc, bw = r.get("sim_cycles", 0), r.get("bench_wall_s") or float("nan")
            print(f"{unit:<14} {label:<22} {cyc:>10} {bw:>8.2f} {cyc / bw:>9.0f} {res.wall_s:>6.2f} "
                  f"{cyc / res.wall_s:>9.0f}  {'yes' if res.passed else 'NO'}", flush=True)
            failed += not res.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
