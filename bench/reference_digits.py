"""Issue #2 acceptance figures on this machine: train the default digits config from scratch,
convert it, and print float / QANN / integer-QANN / SNN (D = 0..T-1) test accuracies, the
SNN(D=T-1) = integer-QANN agreement, and the wall-clock time of each step.

    python bench/reference_digits.py [--out runs/bench-digits] [--ship]

``--ship`` replaces the packaged model (csdformer/models/digits) with the artifact just made.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from csdformer.artifact import save
from csdformer.datasets import load
from csdformer.quantize import config as C
from csdformer.quantize.convert import convert
from csdformer.quantize.evaluate import format_metrics, golden_accuracies, torch_accuracies
from csdformer.quantize.train import load_checkpoint, train
from csdformer.sim import runner

SHIP = Path(__file__).resolve().parent.parent / "csdformer" / "models" / "digits"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-digits")
    ap.add_argument("--ship", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    cfg = C.load("digits")
    t0 = time.time()
    res = train(cfg, out=out, progress=True)
    t_train = time.time() - t0
    cfg, model, _ = load_checkpoint(out)
    t0 = time.time()
    metrics = {"split": "test", **torch_accuracies(model, cfg)}
    art = convert(model, cfg)
    t_convert = time.time() - t0
    x, y = load("digits", "test")
    t0 = time.time()
    metrics.update(golden_accuracies(art, x, y))
    t_golden = time.time() - t0
    metrics["n"] = int(len(y))
    q = runner.run(art, x, mode="qann")
    s = runner.run(art, x, mode="snn", delay=art.T - 1)
    same_counts = all(np.array_equal(q.counts[k], s.counts[k]) for k in q.counts)
    metrics["train_seconds"] = round(t_train, 1)
    art.metrics = metrics
    path = save(art, out / "artifact", overwrite=True)
    print(f"train {t_train:.0f}s ({cfg.train.epochs} epochs, QANN {res['test_acc']:.4f})  convert {t_convert:.1f}s  "
          f"golden (int-QANN + SNN x{art.T}) {t_golden:.1f}s")
    print(format_metrics(metrics))
    print(f"every neuron's SNN(D=T-1) count equals its integer-QANN level: {same_counts}")
    print(json.dumps({k: v for k, v in metrics.items()}))
    if args.ship:
        shutil.rmtree(SHIP, ignore_errors=True)
        shutil.copytree(path, SHIP)
        print(f"shipped to {SHIP}")


if __name__ == "__main__":
    main()
