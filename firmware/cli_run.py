"""``csdformer run``: classify test images on the FPGA over its UART link.

``csdformer run ARTIFACT --port DEV [--baud B] [--images N] [--seed S] [--delay D] [--check]``
draws ``N`` images (seeded) from the artifact's data set's test split, sends them to the device
one at a time and reports accuracy, images/s and cycles; ``--check`` also runs the golden model
(:func:`csdformer.sim.runner.run`) on the same images and reports how many answers agree
(logits and class), exiting 1 if any differs.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .. import CsdformerError
from ..artifact import load, resolve_artifact
from ..datasets import load as load_dataset
from ..sim.runner import predict, run_batches
from .runtime import Device, run_images

__all__ = ["add_run_parser", "run_command"]


def add_run_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``run`` command on ``subparsers`` (an ``add_subparsers()`` result)."""
    r = subparsers.add_parser("run")  # its one-line help: csdformer/cli.py
    r.add_argument("artifact", help="artifact folder, or a shipped model name")
    r.add_argument("--port", required=True, help="serial device or pyserial URL (e.g. /dev/ttyUSB1)")
    r.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    r.add_argument("--images", type=int, default=100, help="number of test images (default 100)")
    r.add_argument("--seed", type=int, default=0, help="seed of the image draw (default 0)")
    r.add_argument("--delay", type=int, help="DIF delay D (default: the artifact's)")
    r.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
    r.add_argument("--check", action="store_true", help="compare every answer with the golden model")
    r.set_defaults(fn=run_command)
    return r


def _pick(art, n: int, seed: int):
    x, y = load_dataset(art.input.dataset, "test")
    if n < 1:
        raise CsdformerError(f"--images: must be >= 1, got {n}")
    idx = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    return x[idx], y[idx]


def run_command(args: argparse.Namespace) -> int:
    art = load(resolve_artifact(args.artifact))
    delay = art.delay if args.delay is None else args.delay
    if not 0 <= delay <= art.T - 1:
        raise CsdformerError(f"--delay: must be in 0..T-1 = 0..{art.T - 1}, got {delay}")
    x, y = _pick(art, args.images, args.seed)
    with Device(args.port, args.baud, timeout=args.timeout) as dev:
        info = dev.info()
        want = (int(np.prod(art.input.shape)), art.num_classes, art.T)
        if (info.n_pixels, info.num_classes, info.T) != want:
            raise CsdformerError(f"--port: the device runs a model with {info.n_pixels} pixels, "
                                 f"{info.num_classes} classes, T={info.T}; {art.name} has {want[0]}, "
                                 f"{want[1]}, T={want[2]}")
        t0 = time.monotonic()
        ans = run_images(dev, x, delay, progress=sys.stderr.isatty())
        dt = time.monotonic() - t0
    acc = float(np.mean(ans.predictions == y))
    print(f"{art.name} on the device (model id 0x{info.model_id:08x}, lanes={info.lanes}), D={delay}: "
          f"accuracy {acc * 100:.2f} % over {len(y)} images ({len(y) / max(dt, 1e-9):.1f} images/s over the "
          f"link), cycles per image mean {ans.cycles.mean():.0f} min {ans.cycles.min()} max {ans.cycles.max()}")
    if not args.check:
        return 0
    gold = np.concatenate([r.logits for r in run_batches(art, x, delay=delay)])
    same_logits = np.all(ans.logits == gold, axis=1)
    same_class = ans.predictions == predict(gold)
    print(f"check against the golden model: logits equal for {int(same_logits.sum())}/{len(y)} images, "
          f"classes equal for {int(same_class.sum())}/{len(y)}")
    if not same_logits.all():
        i = int(np.argmin(same_logits))
        print(f"first difference: image {i}: device {ans.logits[i].tolist()} golden {gold[i].tolist()}")
        return 1
    return 0
