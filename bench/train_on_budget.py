"""Train a config within a wall-clock budget, then convert and measure every accuracy.

Used for the GPU machine, whose calls are limited in time: it times a few training steps, sets
the epoch count so that training ends inside ``--budget`` seconds (never above the config's
epochs), trains, converts with ``csdformer convert`` semantics and prints the metrics.

    python bench/train_on_budget.py fashion_mnist --budget 420 --out runs/fm
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from csdformer.artifact import save
from csdformer.datasets import load
from csdformer.quantize import config as C
from csdformer.quantize.convert import convert
from csdformer.quantize.evaluate import format_metrics, golden_accuracies, torch_accuracies
from csdformer.quantize.train import load_checkpoint, train


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--budget", type=float, required=True, help="seconds for training")
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", help="override model.arch")
    ap.add_argument("--heads", type=int, help="override model.heads")
    ap.add_argument("--batch-size", type=int, help="override train.batch_size")
    ap.add_argument("--lr", type=float, help="override train.lr")
    ap.add_argument("--no-golden", action="store_true", help="stop after saving the artifact")
    ap.add_argument("--delays", type=int, nargs="*", help="SNN delays to measure (default all)")
    args = ap.parse_args()
    cfg = C.load(args.config)
    if args.arch:
        cfg.model.arch = args.arch
    if args.heads:
        cfg.model.heads = args.heads
    if args.batch_size:
        cfg.train.batch_size = args.batch_size
    if args.lr:
        cfg.train.lr = args.lr
    C.validate(cfg)
    out = Path(args.out)
    # Time one short run (includes start-up costs, so the estimate is conservative).
    probe = train(cfg, out=out / "probe", progress=False, max_steps=60)
    n_train = len(load(cfg.data.name, "train", cfg.data.root)[1])
    steps_per_epoch = n_train // cfg.train.batch_size
    per_step = probe["train_seconds"] / 60
    epochs = int(min(cfg.train.epochs, max(2, args.budget / (per_step * steps_per_epoch * 1.1))))
    print(f"{per_step * 1000:.1f} ms/step (probe), {steps_per_epoch} steps/epoch -> {epochs} epochs", flush=True)
    cfg.train.epochs = epochs
    cfg.train.warmup_epochs = min(cfg.train.warmup_epochs, epochs - 1)
    t0 = time.time()
    res = train(cfg, out=out, progress=False)
    print(f"trained in {time.time() - t0:.0f}s, QANN test accuracy {res['test_acc']:.4f}", flush=True)
    cfg, model, _ = load_checkpoint(out)
    metrics = {"split": "test", **torch_accuracies(model, cfg)}
    metrics["train_epochs"] = epochs
    metrics["train_seconds"] = round(res["train_seconds"], 1)
    metrics["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    art = convert(model, cfg, metrics=metrics)
    save(art, out / "artifact", overwrite=True)  # before the (long) golden runs
    print(json.dumps(metrics), flush=True)
    if args.no_golden:
        return 0
    x, y = load(cfg.data.name, "test", cfg.data.root)
    metrics.update(golden_accuracies(art, x, y, delays=args.delays))
    metrics["n"] = int(len(y))
    art.metrics = metrics
    save(art, out / "artifact", overwrite=True)
    print(format_metrics(metrics))
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
