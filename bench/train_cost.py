"""Training cost of the QANN beside the same architecture trained directly as an SNN (issue 15).

For a config, trains ``--steps`` steps of each (same batch, same T, same optimizer, same step:
``quantize/train.py``'s loop body) after ``--warmup`` untimed steps, each in a fresh process,
and prints time per step, peak memory over all the steps (GPU: torch's peak allocated; CPU: the
peak RSS, ``VmHWM`` reset through ``/proc/self/clear_refs`` before the first step), the memory
held before training (model, data, runtime) and the ratios direct / QANN of time, peak, and peak
above that. On a shared CPU, ``--threads 1 --repeats 3`` keeps other processes' load out of
the timings (OpenMP threads that wait for a pre-empted sibling inflate small steps many times).
The direct SNN is ``quantize/direct.py`` with delay ``D`` = the config's ``convert.delay``
(``--delay`` overrides it).

``--accuracy`` instead trains both for the same number of epochs (the config's, or
``--epochs``) and prints test accuracies: QANN (torch), its converted artifact as SNN at
``D = T-1`` (golden model), the direct SNN (float SNN in torch) and its converted artifact
(golden model, at its own delay).

    python bench/train_cost.py digits --steps 40                    # 2-core CPU
    python bench/train_cost.py fashion_mnist --steps 30 --random-data  # GPU; timing only
    python bench/train_cost.py fashion_mnist --body 4-384 --steps 20 --random-data
    python bench/train_cost.py digits --accuracy --out runs/cost-digits
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from csdformer.datasets import info as dataset_info
from csdformer.datasets import load as load_dataset
from csdformer.quantize import config as C
from csdformer.quantize.train import batch, build_model, lr_lambda, seed_everything, train, train_step

#: The paper-size body of SPEC §8 (also ``csdformer/configs/fashion_mnist-4-384.yaml``).
BODY_4_384 = {
    "arch": "csdformer-4-384",
    "heads": 12,
    "tokenizer": [{"channels": 48}, {"channels": 96}, {"channels": 192, "pool": True}, {"pool": True}],
}

PAPER = "paper (Table 3, vs Spikingformer): QANN 2-3x faster a step, ~25 % of the GPU memory (4x)"


def make_config(args: argparse.Namespace, direct: bool) -> C.Config:
    raw = C.load(args.config).to_dict()
    if args.body == "4-384":
        raw["model"].update(BODY_4_384)
        raw["name"] = f"{raw['name']}-4-384"
    if args.batch_size:
        raw["train"]["batch_size"] = args.batch_size
    if args.epochs:
        raw["train"]["epochs"] = args.epochs
        raw["train"]["warmup_epochs"] = min(raw["train"]["warmup_epochs"], args.epochs - 1)
    if args.delay is not None:
        raw["convert"]["delay"] = args.delay
    if args.threads:
        raw["train"]["threads"] = args.threads
    raw["train"]["direct"] = direct
    return C.from_dict(raw)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def worker(args: argparse.Namespace) -> dict:
    """One mode's timed steps, in this (fresh) process."""
    direct = args.worker == "direct"
    cfg = make_config(args, direct)
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    amp = tc.amp and dev.type == "cuda"
    seed_everything(tc.seed)
    di = dataset_info(cfg.data.name)
    n = args.warmup + args.steps
    b = tc.batch_size
    if args.random_data:
        g = torch.Generator().manual_seed(tc.seed)
        xtr = torch.randint(0, di.max_value + 1, (n * b, di.channels, di.height, di.width), generator=g,
                            dtype=torch.int64).to(torch.uint8)
        ytr = torch.randint(0, di.num_classes, (n * b,), generator=g)
    else:
        x, y = load_dataset(cfg.data.name, "train", cfg.data.root)
        xtr, ytr = torch.tensor(x), torch.tensor(y)
    xtr, ytr = xtr.to(dev), ytr.to(dev)  # the whole set on the device, as train() keeps it

    model = build_model(cfg).to(dev)
    decay = [p for _, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for _, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr)
    steps_per_epoch = max(1, len(xtr) // b)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_lambda(s, steps_per_epoch * tc.epochs, steps_per_epoch * tc.warmup_epochs))
    gen = torch.Generator(device=dev)
    gen.manual_seed(tc.seed)
    pad = max(1, cfg.model.image_size // 8)
    flip = cfg.data.name in ("cifar10", "cifar100", "fashion_mnist")
    model.train()

    def step(i: int) -> float:  # the body of train()'s loop
        idx = torch.arange(i * b, (i + 1) * b, device=dev) % len(xtr)
        x = batch(xtr, idx, di.max_value, cfg.data.augment and (gen, pad, flip))
        return train_step(model, opt, sched, x, ytr[idx], amp=amp)[1]

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    # Memory is measured over every step (warmup included: the first one allocates gradients and
    # optimizer states) against what is held before training starts (model, data, runtime).
    if dev.type == "cuda":
        sync()
        static = torch.cuda.memory_allocated(dev) / 2**20
        torch.cuda.reset_peak_memory_stats(dev)
        reset = True
    else:
        static = _rss_kib("VmRSS") / 1024
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
            reset = True
        except OSError:  # then VmHWM includes the set-up's peak
            reset = False
    for i in range(args.warmup):
        step(i)
    sync()
    out = {"mode": args.worker, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
           f"cpu ({torch.get_num_threads()} threads)", "batch": b, "T": cfg.model.levels,
           "delay": model.delay if direct else None, "amp": amp, "steps": args.steps,
           "params": sum(p.numel() for p in model.parameters()), "static_mib": static, "peak_reset": reset}
    times, cpu, losses = [], [], []
    for i in range(args.warmup, n):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(step(i))
        sync()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if dev.type == "cuda":
        out["peak_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        out["peak_mib"] = _rss_kib("VmHWM") / 1024
    out["ms_per_step"] = 1000 * float(np.mean(times))
    out["ms_per_step_median"] = 1000 * float(np.median(times))
    out["cpu_ms_per_step"] = 1000 * float(np.mean(cpu))  # process CPU time, all threads
    out["last_loss"] = float(losses[-1])
    return out


def _run_worker(mode: str, argv: list[str]) -> dict:
    p = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--worker", mode],
                       capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"{mode} worker failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def cost(args: argparse.Namespace, argv: list[str]) -> None:
    cfg = make_config(args, False)
    runs = {"qann": [], "direct": []}
    for _ in range(args.repeats):  # alternate, so that a busy spell of a shared machine hits both
        for m in runs:
            runs[m].append(_run_worker(m, argv))
    # Each mode's least disturbed run (lowest median step time).
    q, d = (min(runs[m], key=lambda r: r["ms_per_step_median"]) for m in ("qann", "direct"))
    what = "random data" if args.random_data else "real data"
    mem = "peak allocated (torch)" if "cpu" not in q["device"] else "peak RSS"
    print(f"{cfg.name} {cfg.model.arch}: batch {q['batch']}, T={q['T']}, direct D={d['delay']}, "
          f"{q['params']:,} parameters, {q['device']}, bf16 autocast {q['amp']}, {what}, "
          f"{args.steps} timed steps after {args.warmup}, best of {args.repeats}")
    print(f"| mode | ms/step (median / mean) | CPU ms/step | {mem} MiB | before training MiB |")
    print("|---|---|---|---|---|")
    for r in (q, d):
        print(f"| {r['mode']} | {r['ms_per_step_median']:.1f} / {r['ms_per_step']:.1f} | {r['cpu_ms_per_step']:.1f} | "
              f"{r['peak_mib']:.0f} | {r['static_mib']:.0f} |")
    t_ratio = d["ms_per_step_median"] / q["ms_per_step_median"]
    m_ratio = d["peak_mib"] / q["peak_mib"]
    a_ratio = (d["peak_mib"] - d["static_mib"]) / max(1e-9, q["peak_mib"] - q["static_mib"])
    print(f"direct / QANN: time per step (median) {t_ratio:.2f}x, peak memory {m_ratio:.2f}x "
          f"(above what was held before training: {a_ratio:.2f}x)")
    print(PAPER)
    print(json.dumps({"config": cfg.name, "arch": cfg.model.arch, "qann": q, "direct": d, "time_ratio": t_ratio,
                      "memory_ratio": m_ratio, "memory_ratio_above_static": a_ratio}))


def accuracy(args: argparse.Namespace) -> None:
    from csdformer.quantize.convert import convert
    from csdformer.quantize.evaluate import golden_accuracies
    from csdformer.quantize.train import load_checkpoint

    out = Path(args.out)
    x, y = load_dataset(make_config(args, False).data.name, "test")
    if args.golden_limit:
        x, y = x[: args.golden_limit], y[: args.golden_limit]
    rows = []
    for mode in ("qann", "direct"):
        cfg = make_config(args, mode == "direct")
        res = train(cfg, out=out / mode, progress=False)  # its test accuracy: the QANN's, or the float SNN's
        cfg, model, _ = load_checkpoint(out / mode)
        delay = model.delay if mode == "direct" else cfg.model.levels - 1
        art = convert(model, cfg, delay=delay)
        g = golden_accuracies(art, x, y, delays=[delay])
        rows.append({"mode": mode, "epochs": cfg.train.epochs, "train_s": res["train_seconds"],
                     "torch": res["test_acc"], "int_qann": g["int_qann"], "delay": delay,
                     "snn": g["snn"][str(delay)], "n_golden": len(y)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"{cfg.name} {cfg.model.arch}, {rows[0]['epochs']} epochs each, "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}")
    print("| training | seconds | torch test accuracy | artifact: SNN (golden) | at D |")
    print("|---|---|---|---|---|")
    for r in rows:
        what = "QANN" if r["mode"] == "qann" else "float SNN"
        print(f"| {r['mode']} | {r['train_s']:.0f} | {r['torch'] * 100:.2f} % ({what}) | "
              f"{r['snn'] * 100:.2f} % (n={r['n_golden']}) | {r['delay']} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="a YAML file or a built-in config name")
    ap.add_argument("--body", choices=("4-384",), help="replace the model by the paper-size body (SPEC §8)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps of each (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--batch-size", type=int, help="override train.batch_size")
    ap.add_argument("--delay", type=int, help="the direct SNN's DIF delay D (default convert.delay, else T-1)")
    ap.add_argument("--random-data", action="store_true", help="random images of the data set's shape (timing only)")
    ap.add_argument("--device", help="torch device (default cuda if available)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default train.threads, else torch's)")
    ap.add_argument("--repeats", type=int, default=1, help="alternate runs of each mode; keep each one's best")
    ap.add_argument("--accuracy", action="store_true", help="train both for equal epochs; print test accuracies")
    ap.add_argument("--epochs", type=int, help="override train.epochs")
    ap.add_argument("--out", default="runs/train-cost", help="run folder for --accuracy")
    ap.add_argument("--golden-limit", type=int, help="--accuracy: golden model on the first N test images only")
    ap.add_argument("--worker", choices=("qann", "direct"), help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
    elif args.accuracy:
        accuracy(args)
    else:
        cost(args, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
