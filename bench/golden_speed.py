"""Golden-model speed: the digits test split through the time-stepped SNN (and the integer QANN).

    python bench/golden_speed.py [ARTIFACT] [--repeat 3]

Prints images/s for each mode (best of the repeats) and the wall time of the whole split.
"""

from __future__ import annotations

import argparse
import time

from csdformer.artifact import load, resolve_artifact
from csdformer.datasets import load as load_data
from csdformer.sim.runner import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", nargs="?", default="digits")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    art = load(resolve_artifact(args.artifact))
    x, y = load_data(art.input.dataset, "test")
    for mode, delay in (("snn", art.T - 1), ("snn", 0), ("qann", None)):
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            r = evaluate(art, x, y, mode=mode, delay=delay)
            best = min(best, time.perf_counter() - t0)
        what = f"snn D={delay}" if mode == "snn" else "int-qann"
        print(f"{art.name} {what:9s} {len(y)} images in {best:.2f}s = {len(y) / best:.0f} images/s "
              f"(accuracy {r['accuracy']:.4f})")


if __name__ == "__main__":
    main()
