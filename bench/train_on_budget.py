"""Train a config within a wall-clock budget, then convert and measure every accuracy.

Used for the GPU machine, whose calls are limited in time: it times a few training steps, sets
the epoch count so that training ends inside ``--budget`` seconds (never above the config's
epochs), trains, converts with ``csdformer convert`` semantics and prints the metrics.

    python bench/train_on_budget.py fashion_mnist --budget 420 --out runs/fm
    python bench/train_on_budget.py fashion_mnist-4-384 --budget 400 --max-seconds 480 \\
        --root .devdata/fashion-mnist --out runs/fm4 --no-golden --export $OUT
    python bench/train_on_budget.py fashion_mnist-4-384 --resume --max-seconds 480 --out runs/fm4 ...

``--max-seconds`` stops training after the first epoch that ends past it (the checkpoint of that
epoch written); ``--resume`` continues such a run from ``OUT/checkpoint.pt`` with the epoch
count it started with (no probe), and converts once the last epoch is done. ``--export DIR``
copies what a machine that is given back must hand over: the artifact (``DIR/artifact``), the
trained weights without optimizer state in parts of at most 15 MiB (``DIR/weights.pt.partN``;
``cat`` them into a checkpoint that ``csdformer convert`` reads) and ``DIR/train.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from csdformer.artifact import save
from csdformer.datasets import info, load
from csdformer.quantize import config as C
from csdformer.quantize.convert import convert
from csdformer.quantize.evaluate import format_metrics, golden_accuracies, torch_accuracies
from csdformer.quantize.train import CHECKPOINT, accuracy, load_checkpoint, train

PART = 15 * 2**20


def export_weights(ck_path: Path, dest: Path) -> list[str]:
    """The checkpoint's config, model and history (no optimizer state), split into parts."""
    ck = torch.load(ck_path, map_location="cpu", weights_only=False)
    buf = io.BytesIO()
    torch.save({k: ck[k] for k in ("config", "model", "epoch", "history")}, buf)
    data = buf.getvalue()
    names = []
    for i in range(0, len(data), PART):
        name = f"weights.pt.part{i // PART}"
        (dest / name).write_bytes(data[i : i + PART])
        names.append(name)
    return names


def total_seconds(history: list[dict]) -> float:
    """Training seconds over all calls (each call's ``elapsed_s`` restarts from 0 on resume)."""
    total = last = 0.0
    for h in history:
        if h["elapsed_s"] < last:
            total += last
        last = h["elapsed_s"]
    return total + last


def device_accuracies(model, cfg: C.Config) -> dict[str, float]:
    """float and QANN test accuracy (fp32, no TF32) on the GPU when there is one."""
    if not torch.cuda.is_available():
        return torch_accuracies(model, cfg)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    x, y = load(cfg.data.name, "test", cfg.data.root)
    x, y = torch.tensor(x, device="cuda"), torch.tensor(y, device="cuda")
    mv = info(cfg.data.name).max_value
    model = model.cuda().eval()
    try:
        model.set_quantized(False)
        f = accuracy(model, x, y, mv)
    finally:
        model.set_quantized(True)
    q = accuracy(model, x, y, mv)
    model.cpu()
    return {"float": f, "qann": q}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--budget", type=float, help="seconds for training (sets the epochs; required unless --resume)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--root", help="data folder (override data.root)")
    ap.add_argument("--arch", help="override model.arch")
    ap.add_argument("--heads", type=int, help="override model.heads")
    ap.add_argument("--batch-size", type=int, help="override train.batch_size")
    ap.add_argument("--lr", type=float, help="override train.lr")
    ap.add_argument("--max-seconds", type=float, help="stop after the epoch that ends past this (resume later)")
    ap.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt")
    ap.add_argument("--export", help="folder for the artifact, the weights (in parts) and train.json")
    ap.add_argument("--no-golden", action="store_true", help="stop after saving the artifact")
    ap.add_argument("--delays", type=int, nargs="*", help="SNN delays to measure (default all)")
    args = ap.parse_args()
    out = Path(args.out)
    t_call = time.time()
    if args.resume:
        cfg = C.from_dict(torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)["config"])
        epochs = cfg.train.epochs
    else:
        if args.budget is None:
            ap.error("--budget is required unless --resume")
        cfg = C.load(args.config)
        if args.arch:
            cfg.model.arch = args.arch
        if args.heads:
            cfg.model.heads = args.heads
        if args.batch_size:
            cfg.train.batch_size = args.batch_size
        if args.lr:
            cfg.train.lr = args.lr
    if args.root:
        cfg.data.root = args.root
    C.validate(cfg)
    if not args.resume:
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
    res = train(cfg, out=out, progress=False, resume=args.resume, max_seconds=args.max_seconds)
    for h in res["history"]:
        print(f"epoch {h['epoch']}/{epochs}  loss {h['loss']:.4f}  train {h['train_acc']:.4f}  "
              f"test {h['test_acc']:.4f}  ({h['elapsed_s']:.0f}s)", flush=True)
    print(f"trained {res['epochs_done']}/{epochs} epochs, {time.time() - t0:.0f}s in this call, "
          f"QANN test accuracy {res['test_acc']:.4f}", flush=True)
    record = {"config": cfg.name, "epochs": epochs, "epochs_done": res["epochs_done"], "history": res["history"],
              "call_train_seconds": round(res["train_seconds"], 1)}
    exp = Path(args.export) if args.export else None
    if exp:
        exp.mkdir(parents=True, exist_ok=True)
    if not res["finished"]:
        if exp:
            (exp / "train.json").write_text(json.dumps(record, indent=1))
        print(f"stopped at epoch {res['epochs_done']}: continue with --resume --out {out}")
        return 0
    cfg, model, ck = load_checkpoint(out)
    metrics = {"split": "test", **device_accuracies(model, cfg)}
    metrics["train_epochs"] = epochs
    metrics["train_seconds"] = round(total_seconds(ck["history"]), 1)
    metrics["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    art = convert(model, cfg, metrics=metrics)
    save(art, out / "artifact", overwrite=True)  # before the (long) golden runs
    print(json.dumps(metrics), flush=True)
    if exp:
        shutil.copytree(out / "artifact", exp / "artifact", dirs_exist_ok=True)
        record["weights"] = export_weights(out / CHECKPOINT, exp)
        record["metrics"] = metrics
        record["call_seconds"] = round(time.time() - t_call, 1)
        (exp / "train.json").write_text(json.dumps(record, indent=1))
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
