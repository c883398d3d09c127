"""Measure an artifact's integer-QANN and SNN (every delay) accuracies on its test split with the
golden model, print them, and store them in the artifact's metrics (re-saved atomically).

    python bench/measure_artifact.py ARTIFACT [--root DATA]
    python bench/measure_artifact.py ARTIFACT --merge part-*.json   # passes from bench/golden_part.py
"""

from __future__ import annotations

import argparse
import json
import time

from csdformer.artifact import load, resolve_artifact, save
from csdformer.datasets import load as load_data
from csdformer.quantize.evaluate import format_metrics, golden_accuracies


def merge(files: list[str], T: int, n: int) -> dict:
    parts = [json.load(open(f)) for f in files]
    qann = next(p for p in parts if p["mode"] == "qann")
    out = {"int_qann": qann["accuracy"], "snn": {}}
    for p in sorted((p for p in parts if p["mode"] == "snn"), key=lambda p: p["delay"]):
        assert p["n"] == n, p["n"]
        out["snn"][str(p["delay"])] = p["accuracy"]
        if p["delay"] == T - 1:
            same = [a == b for a, b in zip(p["predictions"], qann["predictions"])]
            out["snn_equals_int_qann"] = sum(same) / len(same)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--root")
    ap.add_argument("--merge", nargs="+", help="golden_part.py outputs to fold in instead of running")
    args = ap.parse_args()
    path = resolve_artifact(args.artifact)
    art = load(path)
    x, y = load_data(art.input.dataset, "test", args.root)
    t0 = time.time()
    m = dict(art.metrics)
    if args.merge:
        m.update(merge(args.merge, art.T, len(y)))
    else:
        m.update(golden_accuracies(art, x, y, progress=True))
    m["n"] = int(len(y))
    art.metrics = m
    save(art, path, overwrite=True)
    print(f"golden runs took {time.time() - t0:.0f}s")
    print(format_metrics(m) if "float" in m else json.dumps(m))
    print(json.dumps(m))


if __name__ == "__main__":
    main()
