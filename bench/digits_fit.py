"""Does an artifact fit the iCEBreaker (iCE40UP5K) in the flash-streamed design? (issue 12)

Weights stream from flash, so they take no block RAM; what must fit on chip is activations,
biases and neuron parameters. The program is compiled as the iCEBreaker build compiles it
(1 lane, spike words shared by liveness, ``cur`` and ``mem`` single-port) and every memory is
placed by this rule:

- two SPRAMs (16384 x 16 each) hold the weight double buffer: the largest single op's weight
  words must be <= 16384;
- ``cur`` takes the third SPRAM (width <= 16, depth <= 16384);
- ``mem`` takes the fourth SPRAM if width <= 16 and depth <= 16384, else block RAM;
- block RAM (30 blocks of 4 kbit: 256x16, 512x8, 1024x4, 2048x2; a memory takes the fewest
  blocks over the configurations) holds spk, acc, cnt, img, bias, threshold, v0 (and mem if it
  is not in SPRAM): at most 26 blocks (4 are kept for the loader and op staging).

Also printed: ``acc`` and ``mem`` widths (logic cells are tight, 5280 LCs: keep them <= ~20 bits)
and the artifact's stored accuracies.

    python bench/digits_fit.py digits [more artifact folders or shipped names ...] [--acc 0.9889] [--json]

Exit status 0 when every artifact fits, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from csdformer.artifact import load
from csdformer.artifact.io import resolve_artifact
from csdformer.hw.program import compile_program

BRAM_CONFIGS = ((256, 16), (512, 8), (1024, 4), (2048, 2))
BRAM_BUDGET = 26  # of 30: 4 for the loader and op staging
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16
WIDE = 20  # acc / mem widths above this cost logic cells the UP5K hardly has
BRAM_MEMORIES = ("spk", "acc", "cnt", "img", "bias", "threshold", "v0")


def bram_blocks(depth: int, width: int) -> int:
    """iCE40 4-kbit blocks for a depth x width memory: the best configuration."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in BRAM_CONFIGS)


def fits_spram(depth: int, width: int) -> bool:
    return width <= SPRAM_WIDTH and depth <= SPRAM_DEPTH


def fit(path: str) -> dict:
    art = load(resolve_artifact(path))  # a folder, or a shipped model's name
    p = compile_program(art, 1, keep_spikes=False, single_port=("cur", "mem"))
    shapes = {n: p.memory_shape(n) for n in p.MEMORIES}
    bases = sorted({op.f["w_base"] for op in p.ops if "w_base" in op.f} | {len(p.weights)})
    op_words = [int(v) for v in np.diff(bases)]
    max_op_words = max(op_words, default=0)
    mem_in_spram = fits_spram(*shapes["mem"])
    in_bram = list(BRAM_MEMORIES) + ([] if mem_in_spram else ["mem"])
    blocks = {n: bram_blocks(*shapes[n]) for n in in_bram}
    total = sum(blocks.values())
    checks = {
        "weights (2 SPRAM)": max_op_words <= SPRAM_DEPTH,
        "cur (SPRAM)": fits_spram(*shapes["cur"]),
        "block RAM": total <= BRAM_BUDGET,
    }
    m = art.metrics or {}
    return {
        "artifact": path, "name": art.name, "shapes": shapes, "blocks": blocks, "total_blocks": total,
        "mem_in_spram": mem_in_spram, "weight_words": int(len(p.weights)), "max_op_weight_words": max_op_words,
        "widths": {k: p.widths[k] for k in ("acc", "mem", "cur", "sum")},
        "wide": [k for k in ("acc", "mem") if p.widths[k] > WIDE],
        "checks": checks, "fits": all(checks.values()),
        "int_qann": m.get("int_qann"), "snn": (m.get("snn") or {}).get(str(art.delay)), "delay": art.delay,
    }


def table(r: dict, acc: float | None) -> str:
    lines = [f"{r['artifact']} ({r['name']})", "memory     depth x width   place     blocks"]
    for n, (d, w) in r["shapes"].items():
        if n == "weight":
            place = "flash"
        elif n == "cur":
            place = "SPRAM"
        elif n == "mem" and r["mem_in_spram"]:
            place = "SPRAM"
        else:
            place = "BRAM"
        b = r["blocks"].get(n, "")
        lines.append(f"{n:10s} {d:6d} x {w:<6d}  {place:8s}  {b}")
    lines.append(f"block RAM total {r['total_blocks']} / {BRAM_BUDGET}")
    lines.append(f"weights {r['weight_words']} words, largest op {r['max_op_weight_words']} <= {SPRAM_DEPTH}: "
                 f"{r['checks']['weights (2 SPRAM)']}")
    lines.append(f"cur in SPRAM: {r['checks']['cur (SPRAM)']}; mem in SPRAM: {r['mem_in_spram']}")
    w = r["widths"]
    lines.append(f"widths acc {w['acc']}, mem {w['mem']}, cur {w['cur']}, sum {w['sum']}"
                 + (f"  (wide: {', '.join(r['wide'])} > {WIDE})" if r["wide"] else ""))
    a = acc if acc is not None else r["int_qann"]
    if a is not None:
        lines.append(f"accuracy (int-QANN = SNN D={r['delay']}): {100 * a:.2f} %"
                     + ("" if acc is not None else " (stored in the artifact)"))
    lines.append("FITS" if r["fits"] else "DOES NOT FIT: " + ", ".join(k for k, v in r["checks"].items() if not v))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", help="artifact folders (or shipped model names)")
    ap.add_argument("--acc", type=float, help="accuracy to print (fraction; default: the artifact's int_qann)")
    ap.add_argument("--json", action="store_true", help="one JSON object per artifact")
    args = ap.parse_args()
    ok = True
    for path in args.artifacts:
        r = fit(path)
        ok &= r["fits"]
        print(json.dumps(r, default=list) if args.json else table(r, args.acc) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
