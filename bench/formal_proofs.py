"""Run every unit proof (sim/formal/proofs.py) and print a table: verdict, expected, depth, time,
and for a failing variant the step and assertion of its counterexample.

    python bench/formal_proofs.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from csdformer.sim.formal import proofs
from csdformer.sim.formal.runner import missing_tools


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="folder for the proofs' files and traces (default: a temporary one)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per proof")
    args = ap.parse_args(argv)
    if (why := missing_tools()) is not None:
        print(why, file=sys.stderr)
        return 2
    root = args.keep or Path(tempfile.mkdtemp(prefix="formal-proofs-"))
    print(f"{'proof':<20} {'verdict':<7} {'expected':<8} {'depth':>5} {'seconds':>8}  counterexample")
    ok = True
    for case in proofs.CASES:
        r = proofs.run_case(case, root / case.name, timeout=args.timeout)
        cex = f"step {r.step}: {r.where}" if r.status == "FAIL" else (r.where if r.status == "ERROR" else "")
        print(f"{case.name:<20} {r.status:<7} {case.expect:<8} {r.depth:>5} {r.seconds:>8.1f}  {cex}", flush=True)
        ok &= r.status == case.expect
    print(f"files: {root}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
