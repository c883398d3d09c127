"""Fmax of one board build's netlist over several nextpnr placements (seeds), side by side.

Placement alone moves these designs' Fmax a long way: the OrangeCrab's digits build placed at
121.6, 141.3 and 144.5 MHz with three seeds for one netlist (session 16). A timing change judged
on one placement may be noise; judge it on the spread. This places the netlist that a board build
left (``csdformer build ARTIFACT --board B -o DIR``: its netlist ``top.json``, its constraints,
and ``build_top.json``, the tools' command lines) again with each seed, ``--jobs``
at a time, each in ``DIR/spread/seed-S``, and prints each placement's Fmax and critical path
(where it starts and ends, logic levels, routing), then the least, median and greatest Fmax.
Nothing is synthesized again and the build's own files are left as they are.

Usage: ``python bench/placement_spread.py DIR [--seeds own 2 3 4 5] [--jobs 2] [--json]``
(``own``: nextpnr's own seed, what ``csdformer build`` places first).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from csdformer.boards.build import find_tool, with_seed
from csdformer.boards.critical_path import critical_paths
from csdformer.boards.report import clock_rows

_INPUTS = ("--json", "--lpf", "--pcf", "--pre-pack", "--pre-place", "--sdc")  # files nextpnr reads


def nextpnr_command(build_dir: Path) -> list[str]:
    """The nextpnr command line of the build in ``build_dir`` (its ``build_<name>.json``)."""
    plans = sorted(build_dir.glob("build_*.json"))
    if not plans:
        raise SystemExit(f"{build_dir}: no build_*.json (not a csdformer build folder)")
    for cmd in json.loads(plans[0].read_text())["commands"]:
        argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)  # (as boards.build reads it)
        if argv[0].startswith("nextpnr"):
            return argv
    raise SystemExit(f"{plans[0]}: no nextpnr command")


def place(build_dir: Path, argv: list[str], seed: int | None) -> dict:
    """One placement of the build's netlist with ``seed`` (None: nextpnr's own) in its own folder:
    ``{"seed", "ok", "clocks": {name: [target, achieved]}, "worst_mhz", "path"}``."""
    run = build_dir / "spread" / f"seed-{'own' if seed is None else seed}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    for flag, value in zip(argv, argv[1:]):
        if flag in _INPUTS:
            shutil.copy2(build_dir / value, run / value)
    exe = find_tool(argv[0])
    if exe is None:
        raise SystemExit(f"{argv[0]} not found (pip install yowasp-{argv[0]})")
    with open(run / "nextpnr.out", "w") as log:
        rc = subprocess.run([exe, *with_seed(argv, seed)[1:]], cwd=run, stdout=log, stderr=subprocess.STDOUT).returncode
    report = next((v for f, v in zip(argv, argv[1:]) if f == "--report"), None)
    data = json.loads((run / report).read_text()) if report and (run / report).exists() else {}
    clocks = clock_rows(data)
    paths = critical_paths(data)
    worst = min(clocks, key=lambda c: c.achieved_mhz / c.target_mhz, default=None)
    path = next((p for p in paths if worst is not None and p.clock == worst.name), None)
    return {"seed": "own" if seed is None else seed, "ok": rc == 0 and bool(clocks),
            "clocks": {c.name: [c.target_mhz, round(c.achieved_mhz, 2)] for c in clocks},
            "worst_mhz": round(worst.achieved_mhz, 2) if worst else None,
            "path": path.to_dict() if path else None, "folder": str(run)}


def _seed(text: str) -> int | None:
    return None if text == "own" else int(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir", type=Path, help="a csdformer build folder (csdformer build ... -o DIR)")
    ap.add_argument("--seeds", nargs="+", default=["own", "2", "3", "4", "5"], help="nextpnr seeds ('own': its own)")
    ap.add_argument("--jobs", type=int, default=2, help="placements at once")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = ap.parse_args(argv)
    try:
        seeds = [_seed(s) for s in args.seeds]
    except ValueError:
        ap.error(f"--seeds: integers or 'own', not {args.seeds}")
    if args.jobs < 1:
        ap.error("--jobs: at least 1")
    cmd = nextpnr_command(args.build_dir)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda s: place(args.build_dir, cmd, s), seeds))
    got = [r["worst_mhz"] for r in runs if r["ok"]]
    summary = ({"placements": len(runs), "routed": len(got), "min_mhz": min(got), "median_mhz": statistics.median(got),
                "max_mhz": max(got)} if got else {"placements": len(runs), "routed": 0})
    if args.json:
        print(json.dumps({"build": str(args.build_dir), "runs": runs, "summary": summary}))
        return 0 if got else 1
    print(f"{'seed':>5} | {'Fmax MHz':>8} | critical path")
    for r in runs:
        p = r["path"]
        where = (f"{p['start']} -> {p['end']}, {p['logic_levels']} level{'s' * (p['logic_levels'] != 1)}, "
                 f"{p['routing_ns']:.2f} of "
                 f"{p['delay_ns']:.2f} ns routing" if p else "")
        print(f"{r['seed']!s:>5} | {r['worst_mhz'] if r['ok'] else 'FAILED':>8} | {where}")
    if got:
        print(f"{len(got)} of {len(runs)} placements routed: Fmax min {summary['min_mhz']:.2f}, "
              f"median {summary['median_mhz']:.2f}, max {summary['max_mhz']:.2f} MHz")
    else:
        print(f"none of {len(runs)} placements routed (see nextpnr.out in {args.build_dir / 'spread'})")
    return 0 if got else 1


if __name__ == "__main__":
    sys.exit(main())
