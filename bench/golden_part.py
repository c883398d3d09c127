"""One golden-model pass of an artifact over its test split, for running passes in parallel.

    python bench/golden_part.py ARTIFACT MODE OUT.json      # MODE: qann, or a delay 0..T-1

Writes {"mode", "delay", "accuracy", "n", "seconds", "predictions"}; bench/measure_artifact.py
--merge folds such files into the artifact's metrics.
"""

from __future__ import annotations

import json
import sys
import time

from csdformer.artifact import load, resolve_artifact
from csdformer.datasets import load as load_data
from csdformer.sim.runner import evaluate


def main() -> None:
    spec, mode, out = sys.argv[1:4]
    art = load(resolve_artifact(spec))
    x, y = load_data(art.input.dataset, "test")
    t0 = time.time()
    if mode == "qann":
        r = evaluate(art, x, y, mode="qann")
        rec = {"mode": "qann", "delay": None}
    else:
        r = evaluate(art, x, y, mode="snn", delay=int(mode))
        rec = {"mode": "snn", "delay": int(mode)}
    rec.update(accuracy=r["accuracy"], n=r["n"], seconds=round(time.time() - t0, 1),
               predictions=[int(p) for p in r["predictions"]])
    with open(out, "w") as f:
        json.dump(rec, f)
    print(f"{mode}: accuracy {r['accuracy']:.4f} over {r['n']} in {rec['seconds']}s")


if __name__ == "__main__":
    main()
